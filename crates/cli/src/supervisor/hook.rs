//! The on-give-up hook of a service, run as an attempt in the poll set.
//!
//! When a service gives up (its start limit reached), `--on-give-up CMD` runs once as
//! `/bin/sh -c CMD` in its own process group, with `DAEMONIC_SERVICE`,
//! `DAEMONIC_LAST_EXIT` and `DAEMONIC_REASON` set. The supervisor does not wait for it:
//! its pidfd is one more descriptor of the poll set, and its time limit (the service's
//! stop timeout) one more deadline, so every other service goes on being supervised and
//! answered while a slow hook runs. At the limit its group is SIGKILLed; its exit is then
//! waited for in the poll set too. Once it has exited, what is left of its group is
//! SIGKILLed and it is reaped (the group first, while the hook's pid pins its id).
//!
//! A service whose hook runs is final (`gave-up`) but not gone: the supervisor ends, and a
//! retired unit is forgotten, only once its hook has ended.

use std::path::Path;
use std::process::Command;
use std::time::{Duration, Instant};

use anyhow::Result;
use daemonic::Signal;
use daemonic::process::{self, Exit, Spawned};
use nix::poll::{PollFd, PollFlags};

/// A running hook.
#[derive(Debug)]
pub struct Hook {
    child: Spawned,
    /// When its group is SIGKILLed; `None` once it was.
    kill_at: Option<Instant>,
}

/// What the hook gets to know.
pub struct Given<'a> {
    pub service: &'a str,
    pub last_exit: Exit,
    pub reason: &'a str,
    pub dir: &'a Path,
}

impl Hook {
    /// Starts `command` for the service in `given`; it is killed `limit` from `now`.
    pub fn start(command: &str, given: &Given<'_>, limit: Duration, now: Instant) -> Result<Hook> {
        let mut cmd = Command::new("/bin/sh");
        super::child_env::strip_internal(&mut cmd);
        cmd.arg("-c")
            .arg(command)
            .current_dir(given.dir)
            .env("DAEMONIC_SERVICE", given.service)
            .env(
                "DAEMONIC_LAST_EXIT",
                given.last_exit.shell_status().to_string(),
            )
            .env("DAEMONIC_REASON", given.reason);
        let child = process::spawn(&mut cmd)?;
        Ok(Hook {
            child,
            kill_at: Some(now + limit),
        })
    }

    /// Its pidfd, readable once it has exited.
    pub fn poll_fd(&self) -> PollFd<'_> {
        PollFd::new(
            std::os::fd::AsFd::as_fd(&self.child.pidfd),
            PollFlags::POLLIN,
        )
    }

    /// When it is due to be killed, if it has not been.
    pub fn deadline(&self) -> Option<Instant> {
        self.kill_at
    }

    /// Moves the hook on: kills it if its time is up; reaps it if it has exited
    /// (`exited`: its pidfd was readable). Its exit once it has ended, `None` while it
    /// runs.
    pub fn advance(&mut self, exited: bool, now: Instant) -> Result<Option<Exit>> {
        if exited {
            // A zombie now: its pid still pins its group id.
            self.child.signal_group(Signal::SIGKILL)?;
            if let Some(exit) = self.child.pidfd.reap()? {
                return Ok(Some(exit));
            }
        }
        if self.kill_at.is_some_and(|at| at <= now) {
            self.kill_at = None;
            self.child.signal_group(Signal::SIGKILL)?;
        }
        Ok(None)
    }
}
