//! One supervised service inside the supervisor: its state machine, its child, its timers,
//! and the executor of its machine's actions.
//!
//! A `Unit` does not poll; the supervisor's loop (`supervisor/event_loop.rs`) polls for
//! every unit and hands each one the events that concern it: the unit's machine
//! decides ([`Unit::step`]), the unit carries out the actions ([`Unit::execute`]), and
//! what the whole supervisor must know comes back as [`Effects`].
//!
//! - [`spawn`]: starting the child (environment, output pipes, containment);
//! - [`exit`]: its end (reaping, emptying its cgroup in the poll set, what is said about
//!   the exit, the give-up hook);
//! - [`probes`]: readiness probes, health checks and the output watched for readiness;
//! - [`forking`]: taking over the daemon of a program that daemonizes itself;
//! - [`execute`]: the executor.

mod execute;
mod exit;
mod forking;
mod probes;
mod spawn;

pub use execute::Effects;
pub use exit::Resume;
pub use probes::ProbeRole;
pub use spawn::spawn_failure_status;

use std::time::{Duration, Instant, SystemTime};

use anyhow::{Context as _, Result};
use daemonic::Pid;
use daemonic::Signal;
use daemonic::process::PidFd;
use daemonic::sentinel::Sentinel;

use super::capture::{self, Capture, Sink};
use super::containment::Cgroup;
use super::hook::Hook;
use super::machine::{Action, Machine, State, Timer};
use super::probe::Attempt;
use super::status_file::{self, StatusFile};
use crate::service::Service;

/// Shared by every unit: how children reach the supervisor and who waits for it.
pub struct Shared<'a> {
    pub outer: &'a daemonic::Running,
    /// Where children's `NOTIFY_SOCKET` points.
    pub notify: &'a super::notify_socket::NotifySockets,
    pub sentinel: Option<&'a Sentinel>,
    /// The supervisor runs this one service only: its readiness, status and failures are
    /// the supervisor's own, forwarded to whoever waits for it.
    pub single: bool,
}

/// What the notify protocol has told about a unit's current child (reset at each spawn).
#[derive(Debug, Default)]
pub struct Told {
    /// `RELOADING=1` without `READY=1` since: the reload's `MONOTONIC_USEC`.
    pub reloading: Option<u64>,
    /// The `MONOTONIC_USEC` of the last reload that ended with `READY=1`.
    pub reloaded: Option<u64>,
    /// `MAINPID=`, checked to be in the tree (a pidfd: signals reach that process or
    /// none, even after its pid is reused).
    pub main_pid: Option<daemonic::process::PidFd>,
}

/// The process a unit supervises: the one it started, or the daemon a forking one left.
#[derive(Debug)]
pub struct Child {
    pub pidfd: PidFd,
    /// Its process group (the child leads its own; a daemon's is read when it is taken
    /// over), pinned while the child is unreaped.
    group: daemonic::Pid,
}

impl Child {
    /// Sends `sig` to the child's whole process group.
    pub fn signal_group(&self, sig: Signal) -> Result<()> {
        match nix::sys::signal::killpg(self.group, sig) {
            Ok(()) | Err(nix::errno::Errno::ESRCH) => Ok(()),
            Err(e) => Err(e).with_context(|| format!("send {sig} to process group {}", self.group)),
        }
    }
}

impl From<PidFd> for Child {
    fn from(pidfd: PidFd) -> Child {
        let group = pidfd.pid();
        Child { pidfd, group }
    }
}

pub struct Unit {
    pub service: Service,
    machine: Machine,
    /// Present exactly while the machine is in `Starting`, `Ready` or `Stopping` (but
    /// while a forking service's daemon is looked for: [`forking`]).
    child: Option<Child>,
    /// `ready = "forking"`: the started process has exited, its daemon is looked for.
    awaiting: Option<forking::Awaiting>,
    /// Why the last forking start left no daemon to take over (said with its exit).
    fork_failure: Option<String>,
    timers: [Option<Instant>; Timer::ALL.len()],
    /// The child's last `STATUS=`.
    pub status_text: String,
    /// What the notify protocol told about the current child (reloading, `MAINPID=`).
    pub told: Told,
    /// The state last published, and since when.
    shown: State,
    since: SystemTime,
    status_file: Option<StatusFile>,
    /// Whether the status file is behind (see [`publish`](Self::publish)).
    unpublished: std::cell::Cell<bool>,
    /// Children started so far (for `INVOCATION_ID`).
    spawned: u64,
    /// The last probe failure told to whoever waits (said again only when it changes).
    told_probe_failure: Option<String>,
    /// The size of the log file at the first spawn: where "the output of this start"
    /// begins, for the tail shown when the first start fails.
    log_start: Option<u64>,
    /// Whether the last spawn attempt failed (its error is already reported).
    spawn_failed: bool,
    /// The probe attempts in flight, by [`ProbeRole::index`]: the readiness probe's only ever
    /// in `Starting`, the health checks' only ever in `Ready`.
    /// (Boxed: 216 bytes each, in every unit, for what most services never run.)
    attempts: [Option<Box<Attempt>>; ProbeRole::ALL.len()],
    /// Why the last readiness probe failed (shown by `status` while starting).
    pub probe_failure: Option<String>,
    /// The log writers for the child's stdout and stderr (the same file unless
    /// `--log-stderr-file`), when its output is captured.
    logs: Option<(Sink, Sink)>,
    /// The child's output pipes still open: a child's pipes outlive it until read to the
    /// end, so none of its last lines is lost.
    captures: Vec<Capture>,
    /// The service's cgroup, once the first spawn has looked for one (`None` inside:
    /// none can be made here, see [`super::containment`]).
    cgroup: Option<Option<Cgroup>>,
    /// No cgroup, and this is the supervisor's only service: the supervisor is a child
    /// subreaper, and every descendant of it but the sentinel belongs to this service.
    subreaper: bool,
    /// The sentinel's pid, spared by the subreaper's sweep.
    sentinel: Option<i32>,
    /// No cgroup: the tree mark every child carries (see `daemonic::tree_mark`),
    /// by which the sentinel and a later supervisor of the service find its processes.
    mark: Option<daemonic::tree_mark::TreeMark>,
    /// The group's OOM kills when the child was spawned (with the memory controller).
    oom_kills: Option<u64>,
    /// The OOM killer killed in the group while the last child ran.
    oom: bool,
    /// `--socket`: bound once, passed to every child (see `super::sockets`).
    pub(super) sockets: Vec<std::sync::Arc<crate::sockets::Bound>>,
    /// What the child stored with `FDSTORE=1`, given back at the next start.
    pub(super) fd_store: crate::sockets::fdstore::FdStore,
    /// The exited child's cgroup being emptied, before its exit is reported.
    draining: Option<exit::Drain>,
    /// The on-give-up hook, while it runs.
    hook: Option<Hook>,
}
impl Unit {
    /// A unit about to start its first child (the caller carries out the actions); opens
    /// its log files.
    pub fn new(
        service: Service,
        config: super::machine::Config,
        seed: u64,
    ) -> Result<(Unit, Vec<Action>)> {
        let logs = match (&service.log, &service.console) {
            (Some(l), _) => {
                let out = l.open().with_context(|| service.name.clone())?;
                let err = l.open_stderr(&out).with_context(|| service.name.clone())?;
                Some((Sink::Log(out), Sink::Log(err)))
            }
            (None, Some(c)) => Some((Sink::Console(c.clone()), Sink::Console(c.stderr()))),
            (None, None) => None,
        };
        // Before any child runs (and as the supervisor: a --user service gets port 80).
        let sockets =
            crate::sockets::bind_all(&service.sockets).with_context(|| service.name.clone())?;
        let fd_store = crate::sockets::fdstore::FdStore::new(service.fd_store_max);
        let (machine, first) = Machine::new(config, super::policy::Jitter::new(seed));
        let unit = Unit {
            service,
            machine,
            child: None,
            awaiting: None,
            fork_failure: None,
            timers: [None; Timer::ALL.len()],
            status_text: String::new(),
            told: Default::default(),
            shown: State::Starting,
            since: SystemTime::now(),
            status_file: None,
            unpublished: std::cell::Cell::new(false),
            spawned: 0,
            told_probe_failure: None,
            log_start: None,
            spawn_failed: false,
            attempts: [None, None, None],
            probe_failure: None,
            logs,
            captures: Vec::new(),
            cgroup: None,
            subreaper: false,
            sentinel: None,
            mark: None,
            oom_kills: None,
            oom: false,
            sockets,
            fd_store,
            draining: None,
            hook: None,
        };
        Ok((unit, first))
    }

    pub fn with_status_file(mut self, path: std::path::PathBuf) -> Unit {
        self.status_file = Some(StatusFile::new(path));
        self
    }

    /// Stops keeping a status file (a replacement keeps it now).
    pub fn forget_status_file(&mut self) {
        self.status_file = None;
    }

    pub fn name(&self) -> &str {
        &self.service.name
    }

    pub fn state(&self) -> State {
        self.machine.state()
    }

    pub fn machine(&self) -> &Machine {
        &self.machine
    }

    pub fn since(&self) -> SystemTime {
        self.since
    }

    pub fn child(&self) -> Option<&Child> {
        self.child.as_ref()
    }

    /// How many children have been started so far; grows with every start.
    pub fn generation(&self) -> u64 {
        self.spawned
    }

    /// Where the child's output is captured, if daemonic captures it.
    pub fn log_file(&self) -> Option<&std::path::Path> {
        self.service.log.as_ref().map(|l| l.path.as_path())
    }

    /// The lines its log files dropped on write errors and the last such error (see
    /// [`capture::losses`]); `None` when none were dropped.
    pub fn log_losses(&self) -> Option<(u64, Option<String>)> {
        let (out, err) = self.logs.as_ref()?;
        // Without its own file, stderr's writer is a clone of stdout's: counted once.
        let separate = self.service.log.as_ref()?.stderr_path.is_some();
        capture::losses(std::iter::once(out).chain(separate.then_some(err)))
    }

    /// The child's output pipes still open.
    pub fn captures(&self) -> &[Capture] {
        &self.captures
    }

    /// Reopens the log files (after an external logrotate renamed them): how many were
    /// reopened, or the first error (each error is also noted; a file that could not be
    /// reopened stays the one written to).
    pub fn reopen_logs(&self) -> Result<usize, String> {
        let mut first_error = None;
        let mut reopened = 0;
        if let (Some((out, err)), Some(cfg)) = (&self.logs, &self.service.log) {
            // Without its own file, stderr's writer is a clone of stdout's.
            let separate = cfg.stderr_path.is_some().then_some(err);
            for w in std::iter::once(out).chain(separate) {
                match w.reopen() {
                    Ok(()) => reopened += 1,
                    Err(e) => {
                        self.note(&format!("{e}"));
                        first_error.get_or_insert(e.to_string());
                    }
                }
            }
        }
        first_error.map_or(Ok(reopened), Err)
    }

    /// A line of the supervisor's own about this service: on its stderr, and in the
    /// service's log when its output is captured.
    pub fn note(&self, text: &str) {
        let line = format!("daemonic: {}: {text}", self.service.name);
        // One write(2) for the whole line (eprintln! may make several).
        let _ = std::io::Write::write_all(&mut std::io::stderr(), format!("{line}\n").as_bytes());
        if let Some((out @ Sink::Log(_), _)) = &self.logs {
            capture::note(out, &line);
        }
    }

    pub fn pid(&self) -> Option<Pid> {
        self.child.as_ref().map(|c| c.pidfd.pid())
    }

    /// The main process: the one `MAINPID=` named, else the child.
    pub fn main_pid(&self) -> Option<Pid> {
        self.child.as_ref()?;
        (self.told.main_pid.as_ref().map(|p| p.pid())).or_else(|| self.pid())
    }

    /// The state as `status` shows it: `reloading` is a ready child between
    /// `RELOADING=1` and `READY=1`.
    pub fn shown_str(&self) -> &'static str {
        match self.state() {
            State::Ready if self.told.reloading.is_some() => "reloading",
            s => s.as_str(),
        }
    }

    /// `EXTEND_TIMEOUT_USEC=`: the armed start timeout (while starting) or stop timeout
    /// (while stopping) runs until at least `now + more`.
    pub fn extend_timeout(&mut self, more: Duration, now: Instant) {
        let timer = match self.machine.state() {
            State::Starting => Timer::StartTimeout,
            State::Stopping => Timer::StopTimeout,
            _ => return,
        };
        if let Some(at) = &mut self.timers[timer as usize] {
            *at = (*at).max(now + more);
        }
    }

    /// The child is ready and, if it has a readiness check, that check passes — or a
    /// one-shot service has completed: what a dependent waits for. (`State::Ready` alone
    /// says the startup is over.)
    pub fn is_ready(&self) -> bool {
        match self.state() {
            State::Ready => self.machine.health().readiness_passes(),
            State::Completed => true,
            _ => false,
        }
    }

    /// The health checks' verdict, as `status` shows it (`healthy`, `unhealthy: why`,
    /// see [`Health::summary`](super::health::Health::summary)); `None` when the service
    /// has no checks or is not ready.
    pub fn health(&self) -> Option<String> {
        if self.state() != State::Ready {
            return None;
        }
        self.machine.health().summary(&self.machine.config().health)
    }

    /// The earliest armed timer, probe, hook or next look for a forking service's daemon;
    /// while the exited child's tree
    /// is torn down, when that is given up on.
    pub fn next_deadline(&self) -> Option<Instant> {
        let hook = self.hook.as_ref().and_then(Hook::deadline);
        if let Some(at) = self.drain_deadline() {
            return Some(hook.map_or(at, |h| h.min(at)));
        }
        let probes = self.attempts().map(|(_, a)| a.deadline());
        self.timers
            .iter()
            .flatten()
            .copied()
            .chain(probes)
            .chain(hook)
            .chain(self.fork_deadline())
            .min()
    }

    /// Marks the status file (if this unit keeps one) as behind: [`write_status`]
    /// rewrites it. The supervisor does so once per turn of its loop, before it sleeps or
    /// tells a launcher that the service is ready, so the states a turn passes through
    /// (`starting` then `ready` at once, or a burst of `STATUS=` messages) cost one
    /// rewrite, not one each. Nothing reads the file while the control socket answers.
    ///
    /// [`write_status`]: Self::write_status
    pub fn publish(&self) {
        self.unpublished.set(self.status_file.is_some());
    }

    /// Rewrites the status file if it is behind (see [`publish`](Self::publish)).
    pub fn write_status(&self) {
        if !self.unpublished.replace(false) {
            return;
        }
        let Some(s) = &self.status_file else { return };
        let delays: Vec<Duration> = self.machine.delays().collect();
        let state = self.machine.state();
        s.write(&status_file::Snapshot {
            state,
            ready: state == State::Ready && self.is_ready(),
            reloading: self.told.reloading.is_some(),
            pid: self.pid(),
            supervisor: Pid::this(),
            since: self.since,
            status: &self.status_text,
            restarts: self.machine.restarts(),
            last_exit: self.machine.last_exit(),
            next_delay: delays.last().copied().filter(|_| state == State::Backoff),
            delays: &delays,
            cgroup: self.cgroup().map(Cgroup::dir),
        });
    }
}

impl Drop for Unit {
    /// Removes the service's group if it is still there: one the kernel would not let go
    /// when the service ended (killed orphans of an init, unreaped until the loop's next
    /// turn, still pin it) is free by the time the supervisor ends.
    fn drop(&mut self) {
        // The last snapshot, if a turn ended without writing it (an error left the loop).
        self.write_status();
        if let Some(cg) = self.cgroup() {
            cg.remove();
        }
    }
}
