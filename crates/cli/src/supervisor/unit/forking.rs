//! `ready = "forking"`: a program that daemonizes itself (systemd's `Type=forking`). The
//! process daemonic started forks and exits; when it exits with a success status while
//! starting, the daemon it left is looked for and, once found, taken over: it becomes
//! the unit's child (a claimed pidfd, [`PidFd::adopt`]), and the service is ready.
//!
//! Which process is the daemon, in this order: the one a `MAINPID=` named (checked to be
//! in the tree when it came, see [`crate::supervisor::notify`]); else the pid in the
//! program's own pid file (`forking:PATH`); else the only child of the supervisor left.
//! The supervisor is a child subreaper whenever a service forks (see
//! [`Unit::contain`]), so the daemon is re-parented to it and its exit is reaped here.
//!
//! A pid file is hostile input (the service's user may write it): the directories to it
//! are walked following only symlinks nobody but root could have made, the file itself is
//! opened without following one, at most [`PID_FILE_MAX`] bytes are read,
//! and the pid it names is taken only if that process is in the service's tree — in its
//! cgroup if it has one, running as its user if it has one, and an orphan the supervisor
//! adopted (the kernel's list of its children says so, and no other handle claims it),
//! never the sentinel. Until the pid
//! file names such a process (a daemon may write it after its parent has exited), it is
//! read again every [`LOOK_INTERVAL`]; when the start timeout has passed since the exit,
//! the start fails, and the message names the file and what it held.

use std::io::Read as _;
use std::path::{Path, PathBuf};
use std::time::{Duration, Instant};

use anyhow::Result;
use daemonic::Pid;
use daemonic::logging::{Contents, LogDir};
use daemonic::process::{Exit, PidFd};
use nix::errno::Errno;
use nix::fcntl::{OFlag, openat};
use nix::sys::stat::Mode;

use super::{Child, Unit};
use crate::service::Readiness;
use crate::supervisor::in_group::{cgroup_of, in_cgroup};
use crate::supervisor::machine::{Event, ReadyWhen};

/// How often the daemon is looked for while it cannot be found yet.
pub(super) const LOOK_INTERVAL: Duration = Duration::from_millis(20);
/// The most bytes read from a pid file (a pid and a newline need a dozen).
pub(super) const PID_FILE_MAX: u64 = 64;

/// A forking service's started process has exited; its daemon is looked for.
#[derive(Debug)]
pub(super) struct Awaiting {
    /// The started process's exit (a success).
    exit: Exit,
    /// When the look is given up on.
    deadline: Instant,
    /// When to look next.
    next: Instant,
}

impl Unit {
    /// Whether this service's program daemonizes itself (`ready = "forking"`; not for a
    /// one-shot, whose readiness is its exit whatever `ready` says).
    pub fn forking(&self) -> bool {
        self.machine.config().readiness == ReadyWhen::Forked
    }

    /// Whether the supervisor must reap orphans for this unit: it holds its tree as a
    /// subreaper, or its program forks (its daemon's children are re-parented to the
    /// supervisor when the daemon dies).
    pub fn adopts_orphans(&self) -> bool {
        self.subreaper || self.forking()
    }

    /// Whether its started process has exited and its daemon is being looked for.
    pub fn awaiting_daemon(&self) -> bool {
        self.awaiting.is_some()
    }

    /// The program's own pid file (`forking:PATH`), relative to the working directory.
    fn pid_file(&self) -> Option<PathBuf> {
        match &self.service.ready {
            Readiness::Forking(Some(path)) => Some(self.service.dir.join(path)),
            _ => None,
        }
    }

    /// The started process exited with `exit` (a success) while starting: takes over its
    /// daemon if it can be found now, else looks again at [`LOOK_INTERVAL`].
    pub(super) fn look_for_daemon(&mut self, exit: Exit, now: Instant) -> Result<Option<Event>> {
        self.awaiting = Some(Awaiting {
            exit,
            deadline: now + self.service.start_timeout,
            next: now,
        });
        self.advance_fork(now)
    }

    /// When the daemon is looked for next, while it is.
    pub(super) fn fork_deadline(&self) -> Option<Instant> {
        self.awaiting.as_ref().map(|a| a.next)
    }

    /// Looks for the daemon if that is due: [`Event::Forked`] once it is taken over, or
    /// (the look given up on) the failed start's exit once the tree is torn down.
    pub fn advance_fork(&mut self, now: Instant) -> Result<Option<Event>> {
        let Some(a) = &self.awaiting else {
            return Ok(None);
        };
        if a.next > now {
            return Ok(None);
        }
        let (exit, deadline) = (a.exit, a.deadline);
        match self.find_daemon() {
            Ok(pidfd) => {
                self.awaiting = None;
                self.probe_failure = None;
                let pid = pidfd.pid();
                let group = nix::unistd::getpgid(Some(pid)).unwrap_or(pid);
                self.child = Some(Child { pidfd, group });
                // The daemon is the child now: MAINPID= may name another process later.
                self.told.main_pid = None;
                let program = crate::service::default_name(&self.service.program);
                self.note(&format!("{program} forked: main process pid {pid}"));
                Ok(Some(Event::Forked))
            }
            Err(why) if now < deadline => {
                if let Some(a) = &mut self.awaiting {
                    a.next = (now + LOOK_INTERVAL).min(deadline);
                }
                // What `status` shows while starting, and a waiting launcher last.
                self.probe_failure = Some(why);
                Ok(None)
            }
            Err(why) => {
                self.awaiting = None;
                self.probe_failure = None;
                let why = format!(
                    "still after {} (--timeout): {why}",
                    crate::human::span(self.service.start_timeout)
                );
                self.fork_failure = Some(why);
                self.tear_down(Event::ForkFailed(exit), now)
            }
        }
    }

    /// A stop (or a start timeout) while the daemon is looked for: the look ends, and
    /// what the started process left is torn down; its exit once it is gone.
    pub(super) fn abandon_fork(&mut self, now: Instant) -> Result<Option<Event>> {
        let Some(a) = self.awaiting.take() else {
            return Ok(None);
        };
        // Why the daemon was not found by then: said with the exit.
        if let Some(why) = self.probe_failure.take() {
            self.note(&why);
            self.fork_failure = Some(why);
        }
        self.tear_down(Event::ChildExited(a.exit), now)
    }

    /// The daemon, adopted: or why it cannot be taken over (yet).
    fn find_daemon(&self) -> Result<PidFd, String> {
        let pid = match (&self.told.main_pid, self.pid_file()) {
            // Its handle says whether it is still that process.
            (Some(m), _) if m.wait_exit(Duration::ZERO).unwrap_or(true) => {
                return Err(format!("pid {} (MAINPID=) has exited", m.pid()));
            }
            (Some(m), _) => m.pid(),
            (None, Some(path)) => read_pid_file(&path)?,
            (None, None) => self.only_child()?,
        };
        let what = match self.pid_file() {
            Some(path) if self.told.main_pid.is_none() => {
                format!("pid file {} names pid {pid}", path.display())
            }
            _ => format!("pid {pid}"),
        };
        let foreign = || format!("{what}, which is not a process of its tree");
        // Checked with the handle open (and claimed): the pid cannot be another's since.
        let handle = PidFd::adopt(pid).map_err(|e| format!("{} ({e})", foreign()))?;
        if !self.in_tree(pid) {
            return Err(foreign());
        }
        Ok(handle)
    }

    /// Whether `pid` may be this service's daemon: a child of the supervisor that nothing
    /// claims (what [`PidFd::adopt`] checks too) and [in its tree](Self::in_tree).
    fn may_adopt(&self, pid: Pid) -> bool {
        !daemonic::process::is_claimed(pid) && self.in_tree(pid)
    }

    /// Whether `pid`, a child of the supervisor, is of this service's tree: not the
    /// sentinel, running as the service's user when it has one (another service's orphan,
    /// or root's, is not its daemon), and in its cgroup when it has one.
    fn in_tree(&self, pid: Pid) -> bool {
        if self.sentinel == Some(pid.as_raw()) {
            return false;
        }
        if let Some(uid) = self.service.privileges.as_ref().and_then(|p| p.uid())
            && real_uid(pid) != Some(uid.as_raw())
        {
            return false;
        }
        match self.cgroup() {
            Some(cg) => cgroup_of(pid).is_some_and(|of| in_cgroup(&of, cg.dir())),
            None => true,
        }
    }

    /// The only child of the supervisor that may be this service's daemon.
    fn only_child(&self) -> Result<Pid, String> {
        let left: Vec<Pid> = children()
            .into_iter()
            .filter(|&p| self.may_adopt(p))
            .collect();
        match left[..] {
            [pid] => Ok(pid),
            [] => Err("no process of it was left to supervise".into()),
            _ => Err(format!(
                "{} processes were left ({}): which one is the daemon cannot be told \
                 (name its pid file: ready = \"forking:PATH\", or send MAINPID=)",
                left.len(),
                left.iter()
                    .map(Pid::to_string)
                    .collect::<Vec<_>>()
                    .join(", ")
            )),
        }
    }
}

/// The pid in a program's pid file; why not, naming the file and what it holds. The
/// directories to it are walked as a log's are ([`LogDir`]: a symlink on the way is
/// followed only if nobody but root could have made it, so `/var/run -> /run` works and a
/// link the service planted does not), the file itself is never a symlink.
pub(super) fn read_pid_file(path: &Path) -> Result<Pid, String> {
    let shown = path.display();
    let missing = || format!("pid file {shown} did not appear");
    let name = path
        .file_name()
        .ok_or_else(|| format!("pid file {shown}: not a file name"))?;
    let parent = match path.parent() {
        Some(p) if !p.as_os_str().is_empty() => p,
        _ => Path::new("."),
    };
    let dir = match LogDir::open_for(parent, false, Contents::PidFiles) {
        Ok(d) => d,
        // Its directory may be made by the program too.
        Err(e) if e.os_error() == Some(libc::ENOENT) => return Err(missing()),
        Err(e) => return Err(format!("pid file {shown}: {e}")),
    };
    let flags = OFlag::O_RDONLY | OFlag::O_CLOEXEC | OFlag::O_NOFOLLOW | OFlag::O_NONBLOCK;
    let file = match openat(&dir, name, flags | OFlag::O_NOCTTY, Mode::empty()) {
        Ok(fd) => std::fs::File::from(fd),
        Err(Errno::ENOENT) => return Err(missing()),
        Err(Errno::ELOOP) => {
            return Err(format!(
                "pid file {shown} is a symbolic link (not followed)"
            ));
        }
        Err(e) => return Err(format!("pid file {shown}: {}", e.desc())),
    };
    match file.metadata() {
        // One link: not a hard link the service made to a file it may not read.
        Ok(m) if m.is_file() && std::os::unix::fs::MetadataExt::nlink(&m) == 1 => {}
        Ok(m) if m.is_file() => {
            let links = std::os::unix::fs::MetadataExt::nlink(&m);
            return Err(format!("pid file {shown} has {links} links (refused)"));
        }
        Ok(_) => return Err(format!("pid file {shown} is not a regular file")),
        Err(e) => return Err(format!("pid file {shown}: {e}")),
    }
    let mut text = String::new();
    if let Err(e) = file.take(PID_FILE_MAX).read_to_string(&mut text) {
        return Err(format!("pid file {shown}: {e}"));
    }
    parse_pid(&text).ok_or_else(|| {
        let value = daemonic::systemd::listen::printable(text.trim());
        format!("pid file {shown} holds \"{value}\", not a pid")
    })
}

/// A pid as a pid file holds it: decimal digits, optional blanks around, above 0.
fn parse_pid(text: &str) -> Option<Pid> {
    let digits = text.trim();
    if digits.is_empty() || !digits.bytes().all(|b| b.is_ascii_digit()) {
        return None;
    }
    digits
        .parse::<i32>()
        .ok()
        .filter(|&n| n > 0)
        .map(Pid::from_raw)
}

/// `pid`'s real uid, from `/proc/PID/status`.
fn real_uid(pid: Pid) -> Option<u32> {
    let status = std::fs::read_to_string(format!("/proc/{pid}/status")).ok()?;
    let line = status.lines().find_map(|l| l.strip_prefix("Uid:"))?;
    line.split_whitespace().next()?.parse().ok()
}

/// The supervisor's live children, from `/proc/self/task/*/children` (each thread's).
fn children() -> Vec<Pid> {
    let mut out = Vec::new();
    let Ok(tasks) = std::fs::read_dir("/proc/self/task") else {
        return out;
    };
    for task in tasks.flatten() {
        let Ok(text) = std::fs::read_to_string(task.path().join("children")) else {
            continue;
        };
        out.extend(
            text.split_whitespace()
                .filter_map(|p| p.parse().ok())
                .map(Pid::from_raw),
        );
    }
    out
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn a_pid_file_holds_one_pid() {
        assert_eq!(parse_pid("4242\n"), Some(Pid::from_raw(4242)));
        assert_eq!(parse_pid("  17 "), Some(Pid::from_raw(17)));
        // A pid, which the tree check refuses.
        assert_eq!(parse_pid("1"), Some(Pid::from_raw(1)));
        for bad in [
            "",
            "\n",
            "0",
            "-5",
            "+5",
            "12 13",
            "0x10",
            "99999999999",
            "web",
        ] {
            assert_eq!(parse_pid(bad), None, "{bad:?}");
        }
    }

    #[test]
    fn a_pid_file_or_a_directory_to_it_that_the_service_could_plant_is_not_followed() {
        let dir = std::env::temp_dir().join(format!("daemonic-pidfile-{}", std::process::id()));
        std::fs::create_dir_all(&dir).unwrap();
        let real = dir.join("real.pid");
        std::fs::write(&real, "1234\n").unwrap();
        let link = dir.join("link.pid");
        let _ = std::fs::remove_file(&link);
        std::os::unix::fs::symlink(&real, &link).unwrap();
        // A directory on the way that is a symlink: followed only if root (or we) made it.
        std::fs::create_dir_all(dir.join("run")).unwrap();
        std::fs::write(dir.join("run/web.pid"), "4321\n").unwrap();
        let var_run = dir.join("var-run");
        let _ = std::fs::remove_file(&var_run);
        std::os::unix::fs::symlink(dir.join("run"), &var_run).unwrap();
        let trusted = read_pid_file(&var_run.join("web.pid"));
        let planted = nix::unistd::geteuid().is_root().then(|| {
            let nobody = Some(nix::unistd::Uid::from_raw(65534));
            std::os::unix::fs::lchown(&var_run, nobody.map(|u| u.as_raw()), None).unwrap();
            read_pid_file(&var_run.join("web.pid"))
        });
        let read = (read_pid_file(&real), read_pid_file(&link));
        let missing = read_pid_file(&dir.join("none.pid"));
        std::fs::write(&real, "12 lines\u{1b}[2J").unwrap();
        let garbage = read_pid_file(&real);
        std::fs::hard_link(&real, dir.join("hard.pid")).unwrap();
        let hard = read_pid_file(&dir.join("hard.pid"));
        std::fs::remove_dir_all(&dir).unwrap();
        assert_eq!(trusted, Ok(Pid::from_raw(4321)));
        if let Some(planted) = planted {
            let why = planted.unwrap_err();
            assert!(why.contains("open pid file directory"), "{why}");
        }
        assert_eq!(read.0, Ok(Pid::from_raw(1234)));
        assert!(
            read.1
                .unwrap_err()
                .contains("is a symbolic link (not followed)")
        );
        assert!(missing.unwrap_err().ends_with("none.pid did not appear"));
        assert!(
            hard.unwrap_err()
                .ends_with("hard.pid has 2 links (refused)")
        );
        let garbage = garbage.unwrap_err();
        assert!(
            garbage.ends_with(r#"holds "12 lines\x1b[2J", not a pid"#),
            "{garbage}"
        );
    }
}
