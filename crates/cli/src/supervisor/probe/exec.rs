//! Exec attempts: `/bin/sh -c COMMAND` in its own process group, watched through its
//! pidfd (readable at exit) and its output pipe (drained as it fills; the tail is kept).
//!
//! Order at the end, as in the supervisor: the exited shell is a zombie until reaped and
//! its pid pins its process group id, so its group is SIGKILLed *first* (whatever it left
//! running in the background), *then* it is reaped through [`PidFd::reap`] — the one
//! `waitpid`.
//!
//! [`PidFd::reap`]: daemonic::process::PidFd::reap

use std::io::{self, PipeReader, Read};
use std::os::fd::AsFd;
use std::path::Path;
use std::process::{Command, Stdio};
use std::time::{Duration, Instant};

use daemonic::Signal;
use daemonic::process::{self, Exit, Spawned};
use nix::fcntl::{FcntlArg, OFlag, fcntl};
use nix::poll::{PollFd, PollFlags, PollTimeout, poll};

use super::{Outcome, human};

/// How long a probe SIGKILLed at its timeout may take to die before the attempt gives up
/// waiting for it. Death after SIGKILL is normally a matter of microseconds; only a
/// process stuck in uninterruptible sleep (`D` state) takes longer.
pub const KILL_WAIT: Duration = Duration::from_secs(1);

/// The most of the command's output kept (its end) for the failure message.
const TAIL: usize = 1024;

/// The most output read per `advance`.
const DRAIN: usize = 64 * 1024;

/// The longest failure message taken from the output (a line, in characters).
const TAIL_LINE: usize = 200;

/// Variables that describe daemonic's own environment, never a probe's (the same list as
/// the supervisor's children).

#[derive(Debug)]
pub(super) struct Exec {
    command: String,
    /// Until reaped (also after a finish at `KILL_WAIT`: `Drop` tries again).
    child: Option<Spawned>,
    /// Read end of the stdout+stderr pipe, non-blocking; until end of file or the finish.
    output: Option<PipeReader>,
    tail: Vec<u8>,
    timeout: Duration,
    deadline: Instant,
    /// SIGKILLed at the timeout; `deadline` is now the end of `KILL_WAIT`.
    killed: bool,
    finished: bool,
}

impl Exec {
    pub(super) fn start(
        command: &str,
        dir: &Path,
        privileges: Option<&daemonic::privileges::Prepared>,
        timeout: Duration,
        now: Instant,
    ) -> Result<Exec, Outcome> {
        let failed = |why: String| Outcome::Failure(format!("exec `{command}`: {why}"));
        let (read, write) = io::pipe().map_err(|e| failed(format!("pipe: {e}")))?;
        let flags = OFlag::from_bits_retain(
            fcntl(&read, FcntlArg::F_GETFL).map_err(|e| failed(format!("fcntl: {e}")))?,
        );
        fcntl(&read, FcntlArg::F_SETFL(flags | OFlag::O_NONBLOCK))
            .map_err(|e| failed(format!("fcntl: {e}")))?;
        let write_err = write.try_clone().map_err(|e| failed(format!("dup: {e}")))?;
        let mut cmd = Command::new("/bin/sh");
        cmd.arg("-c")
            .arg(command)
            .current_dir(dir)
            .stdin(Stdio::null())
            .stdout(write)
            .stderr(write_err);
        crate::supervisor::child_env::strip_internal(&mut cmd);
        let spawned = match privileges {
            Some(p) => process::spawn_as(&mut cmd, p),
            None => process::spawn(&mut cmd),
        };
        let child = spawned.map_err(|e| failed(format!("in {}: {e}", dir.display())))?;
        // Our copies of the write end go with `cmd`, so end of file means the command
        // (and everything it started) has closed its output.
        drop(cmd);
        Ok(Exec {
            command: command.to_string(),
            child: Some(child),
            output: Some(read),
            tail: Vec::new(),
            timeout,
            deadline: now + timeout,
            killed: false,
            finished: false,
        })
    }

    pub(super) fn poll_fds(&self) -> Vec<PollFd<'_>> {
        if self.finished {
            return Vec::new();
        }
        let pidfd = self.child.as_ref().map(|c| c.pidfd.as_fd());
        let output = self.output.as_ref().map(|o| o.as_fd());
        pidfd
            .into_iter()
            .chain(output)
            .map(|fd| PollFd::new(fd, PollFlags::POLLIN))
            .collect()
    }

    pub(super) fn deadline(&self) -> Instant {
        self.deadline
    }

    pub(super) fn advance(&mut self, now: Instant) -> Option<Outcome> {
        if self.finished {
            return None;
        }
        self.drain();
        if let Some(child) = &self.child
            && exited(child)
            && let Some(reaped) = reap(child)
        {
            self.child = None;
            self.drain();
            return Some(self.finish(reaped));
        }
        if now < self.deadline {
            return None;
        }
        if !self.killed {
            if let Some(child) = &self.child {
                let _ = child.signal_group(Signal::SIGKILL);
            }
            self.killed = true;
            self.deadline = now + KILL_WAIT;
            return None;
        }
        self.finished = true;
        self.output = None;
        Some(Outcome::Failure(format!(
            "exec `{}` timed out after {}, and was still running {} after SIGKILL",
            self.command,
            human(self.timeout),
            human(KILL_WAIT)
        )))
    }

    fn finish(&mut self, reaped: Result<Exit, String>) -> Outcome {
        self.finished = true;
        self.output = None;
        let command = &self.command;
        let why = match reaped {
            Err(e) => format!("exec `{command}`: {e}"),
            Ok(_) if self.killed => {
                format!("exec `{command}` timed out after {}", human(self.timeout))
            }
            Ok(exit) if exit.success() => return Outcome::Success,
            Ok(exit) => format!("exec `{command}` {exit}"),
        };
        match last_line(&self.tail) {
            Some(line) => Outcome::Failure(format!("{why}: {line}")),
            None => Outcome::Failure(why),
        }
    }

    /// Reads what the command wrote so far, keeping the last `TAIL` bytes. At most
    /// `DRAIN` bytes per call, so that a command writing without pause cannot keep the
    /// loop here: what is left keeps the pipe readable for the next round.
    fn drain(&mut self) {
        let Some(reader) = &mut self.output else {
            return;
        };
        let mut chunk = [0u8; 4096];
        let mut read = 0;
        let closed = loop {
            if read >= DRAIN {
                break false;
            }
            match reader.read(&mut chunk) {
                Ok(0) => break true,
                Ok(n) => {
                    read += n;
                    self.tail.extend_from_slice(&chunk[..n]);
                    if self.tail.len() > TAIL {
                        self.tail.drain(..self.tail.len() - TAIL);
                    }
                }
                Err(e) if e.kind() == io::ErrorKind::Interrupted => {}
                Err(e) if e.kind() == io::ErrorKind::WouldBlock => break false,
                // Not for a pipe; if it happens, stop reading rather than spin on it.
                Err(_) => break true,
            }
        };
        if closed {
            self.output = None;
        }
    }
}

impl Drop for Exec {
    /// An abandoned command: SIGKILL its group, reap it. This waits for the death
    /// (blocking, normally microseconds; at most `KILL_WAIT`, after which a command stuck
    /// in uninterruptible sleep is left unreaped) because there is no later moment to reap
    /// it at: an attempt is dropped when the loop has stopped caring about it.
    fn drop(&mut self) {
        if let Some(child) = self.child.take() {
            let _ = child.signal_group(Signal::SIGKILL);
            if child.pidfd.wait_exit(KILL_WAIT).unwrap_or(false) {
                let _ = child.pidfd.reap();
            }
        }
    }
}

/// Whether the child has exited (its pidfd is readable), without waiting.
fn exited(child: &Spawned) -> bool {
    let mut fds = [PollFd::new(child.pidfd.as_fd(), PollFlags::POLLIN)];
    matches!(poll(&mut fds, PollTimeout::ZERO), Ok(n) if n > 0)
}

/// Kills what the exited child left in its group, then reaps it; `None` if `waitpid`
/// does not have it yet (the pidfd stays readable: the next round tries again).
fn reap(child: &Spawned) -> Option<Result<Exit, String>> {
    if let Err(e) = child.signal_group(Signal::SIGKILL) {
        return Some(Err(e.to_string()));
    }
    child.pidfd.reap().map_err(|e| e.to_string()).transpose()
}

/// The last non-empty line of `tail`, shortened.
fn last_line(tail: &[u8]) -> Option<String> {
    let text = String::from_utf8_lossy(tail);
    let line = text.lines().map(str::trim).rfind(|l| !l.is_empty())?;
    let mut short: String = line.chars().take(TAIL_LINE).collect();
    if short.len() < line.len() {
        short.push('…');
    }
    Some(short)
}
