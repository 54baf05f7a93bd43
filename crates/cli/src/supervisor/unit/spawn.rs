//! Starting a unit's child: its command, environment, output pipes and containment.

use std::os::fd::OwnedFd;
use std::process::Command;
use std::time::Instant;

use anyhow::{Context as _, Result};
use daemonic::Pid;
use daemonic::launch::{self, ChildIo};
use daemonic::process::{self, Exit};
use daemonic::tree_mark::TreeMark;

use super::exit::Drain;
use super::{Shared, Unit};
use crate::supervisor::capture::{self, Capture, Sink};
use crate::supervisor::child_env::strip_internal;
use crate::supervisor::containment::Cgroup;
use crate::supervisor::proc_table::ProcTable;

/// How a child is to be contained (see [`Unit::contain`]).
pub(super) enum Containment {
    /// In the service's cgroup: its directory, for the child to be born in.
    Cgroup(OwnedFd),
    /// By its process group (and in subreaper mode, the supervisor's parentage).
    Process,
    /// Not yet: an earlier run's leftovers in the group are being killed.
    Wait,
}

impl Unit {
    /// Starts a child (`true`), or not yet (`false`: an earlier run's leftovers in the
    /// service's group are being killed, in the poll set; the spawn is made again once
    /// they are gone). On failure reports why (stderr, and the launcher of a single
    /// service's first start) and returns the status a shell would give (127, 126).
    pub(super) fn spawn(&mut self, cx: &Shared<'_>) -> Result<bool, Exit> {
        self.spawned += 1;
        if self.log_start.is_none()
            && let Some(l) = &self.service.log
        {
            self.log_start = Some(std::fs::metadata(&l.path).map_or(0, |m| m.len()));
        }
        self.told = Default::default();
        self.fork_failure = None;
        let mut cmd = Command::new(&self.service.program);
        strip_internal(&mut cmd);
        // The configured variables first: what daemonic sets for the protocol wins.
        cmd.envs(self.service.env.iter().map(|(k, v)| (k, v)));
        cmd.args(&self.service.args).current_dir(&self.service.dir);
        let chrooted = (self.service.privileges.as_ref()).is_some_and(|p| p.chroot_dir().is_some());
        match cx.notify.for_child(chrooted) {
            Ok(socket) => {
                cmd.env("NOTIFY_SOCKET", socket);
            }
            Err(e) => self.note(&format!("no notify socket for this child: {e:#}")),
        }
        if let Some(s) = cx.sentinel {
            cmd.env(s.var(), s.value(self.spawned));
        }
        // WATCHDOG_PID, the child's own pid, is written between fork and exec (see spawn).
        let watchdog = self.machine.config().watchdog;
        if let Some(w) = watchdog {
            cmd.env("WATCHDOG_USEC", w.as_micros().to_string());
        }
        let mut with = launch::Launch::default();
        let mut pipes = self.capture(&mut with)?;
        let contained = self.contain(cx).map(|c| match c {
            Containment::Cgroup(dir) => with.cgroup = Some(dir),
            Containment::Process => with.mark = self.mark,
            // Not a start yet: it is made again once the group is empty.
            Containment::Wait => {}
        });
        match contained {
            Ok(()) => {}
            Err(e) => {
                self.note(&format!("{e:#}"));
                if cx.single && self.spawned == 1 {
                    let _ = cx.outer.fail(&format!("{e:#}"), None);
                }
                self.spawn_failed = true;
                return Err(Exit::Code(126));
            }
        }
        if self.draining() {
            self.spawned -= 1;
            return Ok(false);
        }
        // The parent's copies of the pipes' write ends go with `with`, in the launch, or
        // end of file never comes.
        with.privileges = self.service.privileges.as_deref();
        let spawned = crate::sockets::launch(
            &mut cmd,
            with,
            &self.sockets,
            &self.fd_store,
            watchdog.is_some(),
        );
        match spawned {
            Ok(c) => {
                if let Some((out, _)) = &self.logs {
                    capture::mark_start(out, &self.service.name, c.pid());
                }
                self.watch_output(&mut pipes, cx);
                self.captures.extend(pipes);
                self.child = Some(c.into());
                self.spawn_failed = false;
                Ok(true)
            }
            Err(e) => {
                self.note(&e.to_string());
                if cx.single && self.spawned == 1 {
                    let _ = cx.outer.fail(&e.to_string(), e.os_error());
                }
                self.spawn_failed = true;
                Err(Exit::Code(spawn_failure_status(e.os_error())))
            }
        }
    }

    /// The child's output pipes, when its output is captured (the child's stdout and
    /// stderr in `with` are their write ends); a failure is noted and is the spawn's (126).
    fn capture(&mut self, with: &mut launch::Launch<'_>) -> Result<Vec<Capture>, Exit> {
        let Some((out, err)) = &self.logs else {
            return Ok(Vec::new());
        };
        let stamps = self.service.log.as_ref().is_some_and(|c| c.timestamps);
        let made = Capture::pipe(out, stamps).and_then(|o| Ok((o, Capture::pipe(err, stamps)?)));
        match made {
            Ok(((c_out, w_out), (c_err, w_err))) => {
                // On the console (run -f) the child keeps the terminal's stdin.
                if matches!(out, Sink::Log(_)) {
                    with.stdio[0] = ChildIo::Null;
                }
                with.stdio[1] = ChildIo::Fd(w_out);
                with.stdio[2] = ChildIo::Fd(w_err);
                Ok(vec![c_out, c_err])
            }
            Err(e) => {
                self.note(&format!("cannot capture output: {e}"));
                self.spawn_failed = true;
                Err(Exit::Code(126))
            }
        }
    }

    /// How the child is contained: the open `cgroup.procs` of the service's group for it
    /// to enter (see [`containment`](crate::supervisor::containment)), or its process
    /// group without a cgroup. The first call finds the group; one left populated by a
    /// killed supervisor is emptied first — `cgroup.kill`, then `populated 0` watched in
    /// the poll set, [`Containment::Wait`] until then — and said.
    pub(super) fn contain(&mut self, cx: &Shared<'_>) -> Result<Containment> {
        if self.cgroup.is_none() {
            let state_dir = match &self.status_file {
                Some(s) => s.path().parent().unwrap_or(s.path()).to_path_buf(),
                // No state directory: a name of this supervisor's own. The pid alone is
                // not unique (every container's init is pid 1); with its namespace it is.
                None => {
                    let ns = std::fs::read_link("/proc/self/ns/pid").unwrap_or_default();
                    let ns = ns.to_string_lossy();
                    let ns = ns.trim_start_matches("pid:[").trim_end_matches(']');
                    std::path::PathBuf::from(format!("supervisor-{ns}-{}", Pid::this()))
                }
            };
            let found = Cgroup::for_service(&state_dir, &self.service.name)?;
            if let Some(cg) = &found {
                if let Some(s) = cx.sentinel {
                    s.watch_cgroup(cg.dir())?;
                }
                let left = cg.pids().len();
                match cg.start_emptying()? {
                    Some(emptying) => {
                        let deadline = Instant::now() + self.service.stop_timeout;
                        self.draining = Some(Drain::leftovers(emptying, left, deadline));
                    }
                    None => self.note_leftovers(left, &format!("in cgroup {}", cg.dir().display())),
                }
            }
            // In a supervisor of many services an orphan's parentage cannot tell its
            // service (it went to init): the tree mark does, there and here.
            if found.is_none() && cx.single {
                process::become_subreaper().context("containment")?;
                self.subreaper = true;
            } else if self.forking() {
                // The daemon a forking program leaves is re-parented to the supervisor,
                // which takes it over and reaps it (see `forking`).
                process::become_subreaper().context("ready = \"forking\"")?;
            }
            self.sentinel = cx.sentinel.map(|s| s.pid().as_raw());
            if found.is_none() {
                self.mark_tree(&state_dir, cx);
            }
            self.cgroup = Some(found);
        }
        if self.draining() {
            return Ok(Containment::Wait);
        }
        match &self.cgroup {
            Some(Some(cg)) => {
                let procs = cg.prepare(&self.service.limits)?;
                self.oom_kills = cg.oom_kills();
                Ok(Containment::Cgroup(procs))
            }
            _ => Ok(Containment::Process),
        }
    }

    /// Without a cgroup: the service's tree mark, for every child and the sentinel; what an
    /// earlier supervisor of the service left (killed with its sentinel: nothing cleaned
    /// up) is found by it and SIGKILLed, and the first start waits, in the poll set, until
    /// those have died.
    fn mark_tree(&mut self, state_dir: &std::path::Path, cx: &Shared<'_>) {
        use std::os::unix::ffi::OsStrExt;
        let mut identity = state_dir.as_os_str().as_bytes().to_vec();
        identity.push(0);
        identity.extend_from_slice(self.service.name.as_bytes());
        let mark = TreeMark::of(&identity);
        self.mark = Some(mark);
        if let Some(s) = cx.sentinel
            && let Err(e) = s.watch_mark(mark)
        {
            self.note(&format!("{e}"));
        }
        // Whether anything carries the mark is read from one reading of `/proc` that every
        // unit's first start shares (a scan per unit would make an `up` of a thousand
        // services read `/proc` a thousand times): what a supervisor killed before this one
        // started left is in it, and what that forks later descends from it. (Leftovers of
        // one that held a service's lock while this one ran, and died after it started,
        // are not looked for.)
        static AT_START: std::sync::OnceLock<ProcTable> = std::sync::OnceLock::new();
        if AT_START
            .get_or_init(ProcTable::read)
            .marked(mark)
            .is_empty()
        {
            return;
        }
        let killed = mark.kill(&[]);
        if !killed.is_empty() {
            let deadline = Instant::now() + self.service.stop_timeout;
            self.draining = Some(Drain::marked_leftovers(killed, deadline));
        }
    }

    /// Where the leftovers of an earlier run were found: in the service's group, or by its
    /// tree mark.
    pub(super) fn leftovers_found(&self) -> String {
        match (self.cgroup(), self.mark) {
            (Some(cg), _) => format!("in cgroup {}", cg.dir().display()),
            (None, Some(mark)) => format!("(found by its tree mark {})", mark.value()),
            (None, None) => String::new(),
        }
    }

    /// Says how many processes an earlier run left, `found` where (none: nothing).
    pub(super) fn note_leftovers(&self, left: usize, found: &str) {
        if left == 0 {
            return;
        }
        self.note(&format!(
            "killed {left} leftover process{} of an earlier run {found}",
            if left == 1 { "" } else { "es" },
        ));
    }

    /// The processes of this service's tree without a cgroup, as `procs` shows them: in
    /// subreaper mode every descendant of this supervisor but the sentinel, otherwise the
    /// main process and its descendants; with those elsewhere that carry the service's
    /// tree mark. Empty with a cgroup (its `cgroup.procs` says).
    pub fn tree(&self, procs: &ProcTable) -> Vec<i32> {
        if self.cgroup().is_some() {
            return Vec::new();
        }
        let mut tree = match (self.subreaper, self.pid()) {
            (true, _) => {
                let spare: Vec<i32> = self.sentinel.into_iter().collect();
                procs.descendants(std::process::id() as i32, &spare)
            }
            (false, Some(main)) => {
                let mut tree = procs.descendants(main.as_raw(), &[]);
                tree.push(main.as_raw());
                tree
            }
            (false, None) => Vec::new(),
        };
        for &pid in self.mark.map_or(&[][..], |m| procs.marked(m)) {
            if !tree.contains(&pid) {
                tree.push(pid);
            }
        }
        tree
    }

    /// Whether the supervisor holds this service's tree as a subreaper.
    pub fn subreaper(&self) -> bool {
        self.subreaper
    }

    /// The service's cgroup, if it has one.
    pub fn cgroup(&self) -> Option<&Cgroup> {
        self.cgroup.as_ref().and_then(Option::as_ref)
    }
}

/// The shell's status for a command that could not be run: 127 not found, 126 found but
/// not executable (or any other failure to execute).
pub fn spawn_failure_status(errno: Option<i32>) -> i32 {
    match errno {
        Some(libc::ENOENT) => 127,
        _ => 126,
    }
}
