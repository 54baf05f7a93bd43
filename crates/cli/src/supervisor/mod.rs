//! The supervisor: the process that owns a service's child.
//!
//! One `poll(2)` loop waits on exactly four things — signals (as events), the child's
//! pidfd (readable when it exits), the child's private notify socket, and the next
//! deadline (end of the readiness grace period, or of the stop timeout). Nothing ticks
//! while idle.
//!
//! States, as `daemonic status` shows them: `starting` → `ready` → `stopping` → `exited`.
//! Readiness is forwarded to whoever waits for the supervisor itself (the `daemonic start`
//! launcher, systemd, an outer supervisor) with the same notify protocol.
//!
//! When the child exits, whatever is left of its process group is killed before the child
//! is reaped (while its pid still pins the group id), so no grandchild outlives it.
//! Restarts, backoff and log capture grow here (see the supervisor issue).

pub mod status_file;

use std::os::fd::AsFd;
use std::path::PathBuf;
use std::process::Command;
use std::time::{Instant, SystemTime};

use anyhow::{Context, Result};
use daemonic::process::{self, Exit, Spawned};
use daemonic::systemd::listen::{Message, NotifyListener};
use daemonic::systemd::notify::State as Notify;
use daemonic::{Event, Running, Signal, Signals};
use nix::poll::{PollFd, PollFlags, PollTimeout, poll};

use crate::service::{Readiness, Service};
pub use status_file::StatusFile;

/// What a user sees in `daemonic status`.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum State {
    Starting,
    Ready,
    Stopping,
}

impl State {
    pub fn as_str(self) -> &'static str {
        match self {
            State::Starting => "starting",
            State::Ready => "ready",
            State::Stopping => "stopping",
        }
    }
}

/// Variables that describe daemonic's own environment, never the child's.
const NOT_FOR_CHILD: &[&str] = &[
    "NOTIFY_SOCKET",
    "WATCHDOG_USEC",
    "WATCHDOG_PID",
    "LISTEN_FDS",
    "LISTEN_PID",
    "LISTEN_FDNAMES",
    "DAEMONIC_REEXEC",
];

struct Supervisor<'a> {
    service: &'a Service,
    outer: &'a Running,
    status: Option<StatusFile>,
    state: State,
    child: Spawned,
    status_text: String,
    state_since: SystemTime,
    ready_at: Option<Instant>,
    kill_at: Option<Instant>,
}

/// Runs `service` until its child exits; returns how it ended.
///
/// Failing to start the child is reported to `outer` (`STATUS=` and `ERRNO=`) before the
/// error is returned, so a waiting launcher prints it.
pub fn supervise(service: &Service, outer: &Running, status_path: Option<PathBuf>) -> Result<Exit> {
    let mut signals = Signals::new().context("install signal handlers")?;
    // A second SIGTERM escalates the stop instead of abandoning the child.
    signals
        .force_exit_on_second(false)
        .context("install signal handlers")?;
    let listener = NotifyListener::bind_private().context("bind notify socket")?;
    listener.set_nonblocking(true)?;

    let mut cmd = Command::new(&service.program);
    cmd.args(&service.args)
        .current_dir(&service.dir)
        .env("NOTIFY_SOCKET", listener.env_value());
    for var in NOT_FOR_CHILD.iter().filter(|v| **v != "NOTIFY_SOCKET") {
        cmd.env_remove(var);
    }
    let child = match process::spawn(&mut cmd) {
        Ok(c) => c,
        Err(e) => {
            let _ = outer.fail(&e.to_string(), e.os_error());
            return Err(e.into());
        }
    };
    let now = Instant::now();
    let ready_at = (service.ready != Readiness::Notify).then(|| now + service.grace);
    let mut sup = Supervisor {
        service,
        outer,
        status: status_path.map(StatusFile::new),
        state: State::Starting,
        child,
        status_text: String::new(),
        state_since: SystemTime::now(),
        ready_at,
        kill_at: None,
    };
    sup.publish();
    sup.run(&mut signals, &listener)
}

impl Supervisor<'_> {
    fn run(&mut self, signals: &mut Signals, listener: &NotifyListener) -> Result<Exit> {
        loop {
            let timeout = self.next_timeout();
            let mut fds = [
                PollFd::new(signals.as_fd(), PollFlags::POLLIN),
                PollFd::new(listener.as_fd(), PollFlags::POLLIN),
                PollFd::new(self.child.pidfd.as_fd(), PollFlags::POLLIN),
            ];
            match poll(&mut fds, timeout) {
                Ok(_) | Err(nix::errno::Errno::EINTR) => {}
                Err(e) => return Err(e).context("poll"),
            }
            let exited = fds[2].revents().is_some_and(|r| !r.is_empty());
            for event in signals.pending() {
                self.on_signal(event)?;
            }
            self.on_datagrams(listener);
            if exited {
                return self.on_exit();
            }
            self.on_deadlines()?;
        }
    }

    fn next_timeout(&self) -> PollTimeout {
        let next = [self.ready_at, self.kill_at].into_iter().flatten().min();
        match next {
            None => PollTimeout::NONE,
            Some(t) => {
                let left = t.saturating_duration_since(Instant::now());
                // Round a partial millisecond up, so we never wake early and spin; a
                // deadline already due polls without waiting.
                let ms = left.as_micros().div_ceil(1000);
                PollTimeout::try_from(ms.min(i32::MAX as u128) as i32).unwrap_or(PollTimeout::MAX)
            }
        }
    }

    fn on_signal(&mut self, event: Event) -> Result<()> {
        match event {
            Event::Shutdown if self.state == State::Stopping => {
                // Asked twice: stop waiting.
                self.child.signal_group(Signal::SIGKILL)?;
            }
            Event::Shutdown => {
                self.set_state(State::Stopping);
                let _ = self.outer.notify(&[Notify::Stopping]);
                self.child.signal_group(self.service.stop_signal)?;
                self.kill_at = Some(Instant::now() + self.service.stop_timeout);
                self.ready_at = None;
                self.publish();
            }
            Event::Reload => {
                // Like systemd's `kill -HUP $MAINPID`: the main process only.
                let _ = self.child.pidfd.signal(self.service.reload_signal);
            }
            Event::ReopenLogs | Event::Signal(_) => {}
        }
        Ok(())
    }

    fn on_datagrams(&mut self, listener: &NotifyListener) {
        loop {
            let datagram = match listener.recv() {
                Ok(d) => d,
                Err(e) if e.os_error() == Some(libc::EAGAIN) => return,
                Err(e) => {
                    eprintln!("daemonic: {}: {e}", self.service.name);
                    continue;
                }
            };
            // Only the main process speaks for the service (systemd's NotifyAccess=main).
            if datagram.sender.map(|s| s.pid) != Some(self.child.pidfd.pid()) {
                continue;
            }
            for m in datagram.messages {
                match m {
                    // `--ready grace` means the grace period only, by the user's choice.
                    Message::Ready if self.service.ready != Readiness::Grace => self.become_ready(),
                    Message::Status(text) => {
                        let _ = self.outer.status(&text);
                        self.status_text = text;
                        self.publish();
                    }
                    Message::Errno(n) => {
                        let _ = self.outer.notify(&[Notify::Errno(n)]);
                    }
                    _ => {}
                }
            }
        }
    }

    fn on_deadlines(&mut self) -> Result<()> {
        let now = Instant::now();
        if self.ready_at.is_some_and(|t| t <= now) {
            self.ready_at = None;
            self.become_ready();
        }
        if self.kill_at.is_some_and(|t| t <= now) {
            self.kill_at = None;
            self.child.signal_group(Signal::SIGKILL)?;
        }
        Ok(())
    }

    fn become_ready(&mut self) {
        if self.state == State::Starting {
            self.set_state(State::Ready);
            self.ready_at = None;
            let _ = self.outer.ready();
            self.publish();
        }
    }

    fn on_exit(&mut self) -> Result<Exit> {
        // The child is a zombie now: its pid still pins its process group id, so this
        // reaches only what is left of that group.
        self.child.signal_group(Signal::SIGKILL)?;
        let exit = loop {
            if let Some(exit) = self.child.pidfd.reap()? {
                break exit;
            }
        };
        if let Some(s) = &self.status {
            s.remove();
        }
        if self.state == State::Starting {
            let program = crate::service::default_name(&self.service.program);
            let _ = self
                .outer
                .fail(&format!("{program} {exit} before it was ready"), None);
        }
        Ok(exit)
    }

    fn set_state(&mut self, state: State) {
        self.state = state;
        self.state_since = SystemTime::now();
    }

    fn publish(&self) {
        if let Some(s) = &self.status {
            s.write(&status_file::Snapshot {
                state: self.state,
                pid: self.child.pidfd.pid(),
                supervisor: daemonic::Pid::this(),
                since: self.state_since,
                status: &self.status_text,
            });
        }
    }
}
