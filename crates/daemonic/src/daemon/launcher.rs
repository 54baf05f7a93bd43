//! The launcher's side: wait until the daemon is ready, has exited, or has run out of time,
//! then exit with the status in the [table](super#launcher-exit-codes).
//!
//! The launcher is a child subreaper, so the daemon (its grandchild) is re-parented to it
//! when the intermediate process exits; that makes the daemon's exit status available
//! through `waitpid`, and its pid cannot be reused before the launcher reaps it. A pidfd
//! makes the exit pollable together with the notify socket — and with the daemon's
//! forwarded stderr ([`super::relay`]), whose lines are printed as they come, and all of
//! them before the launcher exits.

use std::io::Read;
use std::os::fd::{AsFd, OwnedFd};
use std::time::{Duration, Instant};

use nix::errno::Errno;
use nix::poll::{PollFd, PollFlags, PollTimeout, poll};
use nix::sys::signal::Signal;
use nix::sys::wait::{WaitStatus, waitpid};
use nix::unistd::Pid;

use super::relay::Relay;
use crate::pidfile::PidFile;
use crate::systemd::listen::{Message, NotifyListener};

/// Exit status when the daemon is not ready in time (as `timeout(1)`).
const TIMED_OUT: i32 = 124;
/// Exit status when the launcher itself fails after forking.
const LAUNCHER_FAILED: i32 = crate::EXIT_INTERNAL;

/// What the launcher shows while it waits (see [`Daemon::progress`](super::Daemon::progress)
/// and [`Daemon::announce_ready`](super::Daemon::announce_ready)).
#[derive(Debug, Clone, Copy, Default)]
pub(super) struct Shown {
    pub progress: bool,
    pub announce_ready: bool,
}

pub(super) struct Wait<'a> {
    pub name: &'a str,
    pub shown: Shown,
    pub timeout: Duration,
    pub listener: NotifyListener,
    /// The first child, which exits as soon as it has forked the daemon.
    pub intermediate: Pid,
    /// Where the intermediate writes the daemon's pid.
    pub pid_pipe: OwnedFd,
    /// Held (shared with the daemon) until the daemon is ready; removed if it never is.
    pub pid_file: Option<PidFile>,
    /// The daemon's stderr until it is ready ([`super::Daemon::forward_stderr`]).
    pub forward: Option<super::setup::Forward>,
}

/// What the daemon said before it became ready or died.
#[derive(Default)]
struct Said {
    status: Option<String>,
    errno: Option<i32>,
    /// `EXTEND_TIMEOUT_USEC=` moved the deadline.
    extended: bool,
}

impl Said {
    /// A new `STATUS=` line: with progress on, the one before it is shown now (the newest
    /// waits: it may be the reason of a failure, shown then, or the ready line).
    fn status(&mut self, text: String, w: &Wait<'_>) {
        if w.shown.progress
            && let Some(previous) = self.status.take()
        {
            eprintln!(
                "{}: {}",
                w.name,
                crate::systemd::listen::printable(&previous)
            );
        }
        self.status = Some(text);
    }

    fn describe(&self) -> String {
        // The daemon's own words reach the user's terminal: control characters escaped.
        let mut out = self
            .status
            .as_deref()
            .map(|s| crate::systemd::listen::printable(s).into_owned())
            .unwrap_or_default();
        if let Some(n) = self.errno.filter(|&n| n > 0) {
            let text = std::io::Error::from_raw_os_error(n).to_string();
            if out.is_empty() {
                out = text;
            } else if !out.contains(&text) {
                out = format!("{out} ({text})");
            }
        }
        out
    }
}

pub(super) fn wait(mut w: Wait<'_>) -> ! {
    let mut relay = w.forward.take().map(Relay::new);
    let daemon = match read_daemon_pid(&w) {
        Ok(pid) => pid,
        Err(why) => {
            relay.iter_mut().for_each(|r| r.finish(true));
            finish(&w, LAUNCHER_FAILED, &why)
        }
    };
    let pidfd = match crate::sys::pidfd_open(daemon) {
        Ok(fd) => fd,
        Err(e) => finish(&w, LAUNCHER_FAILED, &format!("pidfd_open {daemon}: {e}")),
    };
    let mut deadline = Instant::now() + w.timeout;
    let mut said = Said::default();
    loop {
        let left = deadline.saturating_duration_since(Instant::now());
        if left.is_zero() {
            kill_and_reap(daemon);
            relay.iter_mut().for_each(|r| r.finish(true));
            let what = said.describe();
            let what = if what.is_empty() {
                String::new()
            } else {
                format!(" (last status: {what})")
            };
            let extended = if said.extended {
                " (and the time EXTEND_TIMEOUT_USEC= asked for)"
            } else {
                ""
            };
            let why = format!(
                "not ready within {:?}{extended}{what}; daemon (pid {daemon}) killed",
                w.timeout
            );
            finish(&w, TIMED_OUT, &why);
        }
        let ms = left.as_millis().clamp(1, i32::MAX as u128) as i32;
        let mut fds = vec![
            PollFd::new(w.listener.as_fd(), PollFlags::POLLIN),
            PollFd::new(pidfd.as_fd(), PollFlags::POLLIN),
        ];
        if let Some(fd) = relay.as_ref().and_then(Relay::fd) {
            fds.push(PollFd::new(fd, PollFlags::POLLIN));
        }
        match poll(
            &mut fds,
            PollTimeout::try_from(ms).unwrap_or(PollTimeout::MAX),
        ) {
            Ok(_) | Err(Errno::EINTR) => {}
            Err(e) => finish(&w, LAUNCHER_FAILED, &format!("poll: {e}")),
        }
        let exited = fds[1].revents().is_some_and(|r| !r.is_empty());
        drop(fds);
        relay.iter_mut().for_each(Relay::pump);
        // Datagrams first: a daemon that said READY=1 and then exited was ready.
        if drain(&w, daemon, &mut said, &mut deadline) {
            // Everything it wrote before: it put its own stderr back before READY=1.
            relay.iter_mut().for_each(|r| r.finish(false));
            if w.shown.announce_ready
                && let Some(line) = &said.status
            {
                println!("{}", crate::systemd::listen::printable(line));
            }
            std::process::exit(0);
        }
        if exited {
            let (code, how) = reap(daemon);
            relay.iter_mut().for_each(|r| r.finish(true));
            let what = said.describe();
            let why = if what.is_empty() {
                format!("not ready: daemon (pid {daemon}) {how}")
            } else {
                format!("not ready: {what} (daemon pid {daemon} {how})")
            };
            finish(&w, code, &why);
        }
    }
}

/// Reads the daemon's pid from the intermediate process and reaps the intermediate.
fn read_daemon_pid(w: &Wait<'_>) -> Result<Pid, String> {
    let mut bytes = [0u8; 4];
    let mut pipe = std::fs::File::from(w.pid_pipe.try_clone().map_err(|e| format!("dup: {e}"))?);
    let read = pipe.read_exact(&mut bytes);
    let status = loop {
        match waitpid(w.intermediate, None) {
            Err(Errno::EINTR) => continue,
            other => break other,
        }
    };
    match (read, status) {
        (Ok(()), Ok(WaitStatus::Exited(_, 0))) => Ok(Pid::from_raw(i32::from_ne_bytes(bytes))),
        (_, Ok(WaitStatus::Exited(_, code))) => Err(format!(
            "detaching failed (intermediate process exited with status {code})"
        )),
        (_, other) => Err(format!(
            "detaching failed (intermediate process: {other:?})"
        )),
    }
}

/// Processes queued datagrams; true once the daemon said `READY=1`. `EXTEND_TIMEOUT_USEC=`
/// moves `deadline` to at least that long from now (as systemd does for a start).
fn drain(w: &Wait<'_>, daemon: Pid, said: &mut Said, deadline: &mut Instant) -> bool {
    let listener = &w.listener;
    loop {
        // Only the daemon itself speaks for the daemon (systemd's NotifyAccess=main):
        // anyone else's datagram is dropped before it is parsed.
        let datagram = match listener.recv_from(|s| s.map(|s| s.pid) == Some(daemon)) {
            Ok(Some(d)) => d,
            Ok(None) => continue,
            Err(e) if e.os_error() == Some(libc::EAGAIN) => return false,
            // A malformed datagram is dropped; keep waiting for a good one.
            Err(_) => continue,
        };
        for m in datagram.messages {
            match m {
                Message::Ready => return true,
                Message::Status(s) => said.status(s, w),
                Message::Errno(n) => said.errno = Some(n),
                Message::ExtendTimeoutUsec(usec) => {
                    let until = Instant::now() + Duration::from_micros(usec);
                    if until > *deadline {
                        *deadline = until;
                        said.extended = true;
                    }
                }
                _ => {}
            }
        }
    }
}

/// Reaps the daemon: the launcher's exit code and how the daemon ended, in words.
fn reap(daemon: Pid) -> (i32, String) {
    loop {
        match waitpid(daemon, None) {
            Err(Errno::EINTR) => continue,
            Ok(WaitStatus::Exited(_, 0)) => return (1, "exited with status 0".into()),
            Ok(WaitStatus::Exited(_, code)) => return (code, format!("exited with status {code}")),
            Ok(WaitStatus::Signaled(_, sig, core)) => {
                let core = if core { " (core dumped)" } else { "" };
                return (128 + sig as i32, format!("was killed by {sig}{core}"));
            }
            Ok(_) => continue,
            Err(e) => return (LAUNCHER_FAILED, format!("could not be waited for ({e})")),
        }
    }
}

/// Kills the daemon's whole process group (it may have started helpers), then reaps it.
fn kill_and_reap(daemon: Pid) {
    // The daemon is our unreaped child, so neither its pid nor its group id can have been
    // reused by another process.
    if let Ok(pgid) = nix::unistd::getpgid(Some(daemon)) {
        let _ = nix::sys::signal::killpg(pgid, Signal::SIGKILL);
    }
    let _ = nix::sys::signal::kill(daemon, Signal::SIGKILL);
    reap(daemon);
}

/// Prints the failure, removes the pid file (the daemon never became ready) and exits.
fn finish(w: &Wait<'_>, code: i32, why: &str) -> ! {
    eprintln!("{}: {why}", w.name);
    // We still hold the lock through the descriptor shared with the dead daemon, so the
    // file cannot have been taken over: removing it leaves no stale pid behind.
    if let Some(p) = &w.pid_file {
        let _ = std::fs::remove_file(p.path());
    }
    std::process::exit(code)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn the_daemons_own_words_are_shown_with_control_characters_escaped() {
        let said = Said {
            status: Some("\x1b[2J\x1b]0;owned\x07bind failed".into()),
            errno: Some(libc::EADDRINUSE),
            extended: false,
        };
        assert_eq!(
            said.describe(),
            "\\x1b[2J\\x1b]0;owned\\x07bind failed (Address already in use (os error 98))"
        );
    }
}
