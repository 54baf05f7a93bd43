//! The supervisor: the process that owns a service's child.
//!
//! A thin executor around a pure state machine ([`machine`], with the restart policy in
//! [`policy`]). One `poll(2)` loop waits on exactly four things — signals (as events), the
//! child's pidfd (readable when it exits), the child's private notify socket, and the one
//! armed timer (readiness grace, stop timeout, or restart delay). It turns what it sees
//! into machine events and carries out the actions that come back. Nothing ticks while
//! idle.
//!
//! States, as `daemonic status` shows them: `starting` → `ready` → `stopping`, and after an
//! exit `backoff` → `starting` again, or one of the final `stopped`, `exited`, `gave-up`.
//! Readiness of the first start is forwarded to whoever waits for the supervisor itself
//! (the `daemonic start` launcher, systemd, an outer supervisor) with the same notify
//! protocol.
//!
//! When the child exits, whatever is left of its process group is killed before the child
//! is reaped (while its pid still pins the group id), so no grandchild outlives it. Each
//! restart delay is reported on stderr and kept in the status file.

pub mod capture;
pub mod machine;
pub mod policy;
pub mod status_file;

use std::collections::VecDeque;
use std::os::fd::AsFd;
use std::path::PathBuf;
use std::process::Command;
use std::time::{Duration, Instant, SystemTime};

use anyhow::{Context, Result};
use daemonic::process::{self, Exit, Spawned};
use daemonic::systemd::listen::{Message, NotifyListener};
use daemonic::systemd::notify::State as Notify;
use daemonic::{Running, Signal, Signals};
use nix::poll::{PollFd, PollFlags, PollTimeout, poll};

use crate::service::{Readiness, Service};
pub use machine::State;
use machine::{Action, Event, Machine, Timer};
pub use status_file::StatusFile;

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
    listener: &'a NotifyListener,
    status: Option<StatusFile>,
    machine: Machine,
    /// Present exactly while the machine is in `Starting`, `Ready` or `Stopping`.
    child: Option<Spawned>,
    timer: Option<(Timer, Instant)>,
    status_text: String,
    /// The state last published, and since when.
    shown: State,
    state_since: SystemTime,
}

/// Runs `service` until the machine finishes (stopped, exited without restart, or gave
/// up); returns the child's last exit.
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
    let config = machine::Config {
        policy: service.policy.clone(),
        grace: (service.ready != Readiness::Notify).then_some(service.grace),
        stop_signal: service.stop_signal,
        stop_timeout: service.stop_timeout,
    };
    let (machine, first) = Machine::new(config, policy::Jitter::new(seed()));
    let mut sup = Supervisor {
        service,
        outer,
        listener: &listener,
        status: status_path.map(StatusFile::new),
        machine,
        child: None,
        timer: None,
        status_text: String::new(),
        shown: State::Starting,
        state_since: SystemTime::now(),
    };
    if let Some(exit) = sup.execute(first)? {
        return Ok(exit);
    }
    sup.run(&mut signals)
}

/// A jitter seed that differs between supervisors started at the same moment.
fn seed() -> u64 {
    let nanos = SystemTime::now()
        .duration_since(SystemTime::UNIX_EPOCH)
        .map_or(0, |d| d.as_nanos() as u64);
    nanos ^ (u64::from(std::process::id()) << 32)
}

impl Supervisor<'_> {
    fn run(&mut self, signals: &mut Signals) -> Result<Exit> {
        loop {
            let timeout = self.next_timeout();
            let mut fds = vec![
                PollFd::new(signals.as_fd(), PollFlags::POLLIN),
                PollFd::new(self.listener.as_fd(), PollFlags::POLLIN),
            ];
            if let Some(child) = &self.child {
                fds.push(PollFd::new(child.pidfd.as_fd(), PollFlags::POLLIN));
            }
            match poll(&mut fds, timeout) {
                Ok(_) | Err(nix::errno::Errno::EINTR) => {}
                Err(e) => return Err(e).context("poll"),
            }
            let exited = fds
                .get(2)
                .and_then(|f| f.revents())
                .is_some_and(|r| !r.is_empty());
            drop(fds);
            let mut events = Vec::new();
            for event in signals.pending() {
                match event {
                    daemonic::Event::Shutdown => events.push(Event::StopRequested),
                    // Like systemd's `kill -HUP $MAINPID`: the main process only.
                    daemonic::Event::Reload => {
                        if let Some(child) = &self.child {
                            let _ = child.pidfd.signal(self.service.reload_signal);
                        }
                    }
                    daemonic::Event::ReopenLogs | daemonic::Event::Signal(_) => {}
                }
            }
            events.extend(self.on_datagrams());
            if exited {
                events.push(Event::ChildExited(self.reap()?));
            }
            for event in events {
                if let Some(exit) = self.handle(event)? {
                    return Ok(exit);
                }
            }
            if let Some((timer, at)) = self.timer
                && at <= Instant::now()
            {
                self.timer = None;
                if let Some(exit) = self.handle(timer.event())? {
                    return Ok(exit);
                }
            }
        }
    }

    fn next_timeout(&self) -> PollTimeout {
        match self.timer {
            None => PollTimeout::NONE,
            Some((_, t)) => {
                let left = t.saturating_duration_since(Instant::now());
                // Round a partial millisecond up, so we never wake early and spin; a
                // deadline already due polls without waiting.
                let ms = left.as_micros().div_ceil(1000);
                PollTimeout::try_from(ms.min(i32::MAX as u128) as i32).unwrap_or(PollTimeout::MAX)
            }
        }
    }

    /// Feeds one event to the machine, reports what it decided, carries out its actions.
    fn handle(&mut self, event: Event) -> Result<Option<Exit>> {
        let before = self.machine.state();
        let actions = self.machine.step(event, Instant::now());
        if let Event::ChildExited(exit) = event {
            self.report_exit(before, exit);
        }
        self.execute(actions)
    }

    /// Carries out `actions` in order; `Some(exit)` once the machine has finished.
    fn execute(&mut self, actions: Vec<Action>) -> Result<Option<Exit>> {
        let mut queue = VecDeque::from(actions);
        let mut finished = None;
        while let Some(action) = queue.pop_front() {
            match action {
                Action::Spawn => {
                    self.spawn()?;
                    queue.extend(self.machine.step(Event::Spawned, Instant::now()));
                }
                Action::SignalGroup(sig) => self.child()?.signal_group(sig)?,
                Action::KillGroup => self.child()?.signal_group(Signal::SIGKILL)?,
                Action::ArmTimer(timer, at) => self.timer = Some((timer, at)),
                Action::CancelTimer => self.timer = None,
                Action::NotifyReady => {
                    let _ = self.outer.ready();
                }
                Action::NotifyStopping => {
                    let _ = self.outer.notify(&[Notify::Stopping]);
                }
                Action::RunGiveUpHook { last_exit, reason } => self.give_up(last_exit, &reason),
                Action::Finish(exit) => finished = Some(exit),
            }
        }
        if finished.is_some() {
            if let Some(s) = &self.status {
                s.remove();
            }
        } else {
            if self.machine.state() != self.shown {
                self.shown = self.machine.state();
                self.state_since = SystemTime::now();
            }
            self.publish();
        }
        Ok(finished)
    }

    /// Drains the notify socket: `READY=1` of the current child as an event; `STATUS=` and
    /// `ERRNO=` passed on to whoever waits for the supervisor.
    fn on_datagrams(&mut self) -> Vec<Event> {
        let mut events = Vec::new();
        loop {
            let datagram = match self.listener.recv() {
                Ok(d) => d,
                Err(e) if e.os_error() == Some(libc::EAGAIN) => return events,
                Err(e) => {
                    eprintln!("daemonic: {}: {e}", self.service.name);
                    continue;
                }
            };
            // Only the main process speaks for the service (systemd's NotifyAccess=main).
            let main = self.child.as_ref().map(|c| c.pidfd.pid());
            if main.is_none() || datagram.sender.map(|s| s.pid) != main {
                continue;
            }
            for m in datagram.messages {
                match m {
                    // `--ready grace` means the grace period only, by the user's choice.
                    Message::Ready if self.service.ready != Readiness::Grace => {
                        events.push(Event::ReadyMessage);
                    }
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

    fn child(&self) -> Result<&Spawned> {
        self.child
            .as_ref()
            .context("supervisor bug: no child to signal")
    }

    fn spawn(&mut self) -> Result<()> {
        let mut cmd = Command::new(&self.service.program);
        cmd.args(&self.service.args)
            .current_dir(&self.service.dir)
            .env("NOTIFY_SOCKET", self.listener.env_value());
        for var in NOT_FOR_CHILD.iter().filter(|v| **v != "NOTIFY_SOCKET") {
            cmd.env_remove(var);
        }
        match process::spawn(&mut cmd) {
            Ok(c) => {
                self.child = Some(c);
                Ok(())
            }
            Err(e) => {
                let _ = self.outer.fail(&e.to_string(), e.os_error());
                Err(e.into())
            }
        }
    }

    /// Kills what is left of the exited child's group, then reaps the child.
    fn reap(&mut self) -> Result<Exit> {
        let child = self
            .child
            .take()
            .context("supervisor bug: no child to reap")?;
        // The child is a zombie now: its pid still pins its process group id, so this
        // reaches only what is left of that group.
        child.signal_group(Signal::SIGKILL)?;
        loop {
            if let Some(exit) = child.pidfd.reap()? {
                return Ok(exit);
            }
        }
    }

    /// Tells the user (stderr) and a waiting launcher what became of an exit.
    fn report_exit(&self, before: State, exit: Exit) {
        let name = &self.service.name;
        let program = crate::service::default_name(&self.service.program);
        let state = self.machine.state();
        if before == State::Starting && matches!(state, State::Exited | State::GaveUp) {
            let _ = self
                .outer
                .fail(&format!("{program} {exit} before it was ready"), None);
        }
        if state == State::Backoff
            && let Some(delay) = self.machine.delays().last()
        {
            eprintln!(
                "daemonic: {name}: {program} {exit}; restart {} in {}ms",
                self.machine.restarts(),
                delay.as_millis()
            );
        }
    }

    /// Runs the on-give-up hook once and waits for it (up to the stop timeout).
    fn give_up(&self, last_exit: Exit, reason: &str) {
        let name = &self.service.name;
        eprintln!("daemonic: {name}: gave up: {reason}");
        let Some(hook) = &self.service.on_give_up else {
            return;
        };
        let mut cmd = Command::new("/bin/sh");
        cmd.arg("-c")
            .arg(hook)
            .current_dir(&self.service.dir)
            .env("DAEMONIC_SERVICE", name)
            .env("DAEMONIC_LAST_EXIT", last_exit.shell_status().to_string())
            .env("DAEMONIC_REASON", reason);
        for var in NOT_FOR_CHILD {
            cmd.env_remove(var);
        }
        match run_to_end(&mut cmd, self.service.stop_timeout) {
            Ok(exit) if exit.success() => {}
            Ok(exit) => eprintln!("daemonic: {name}: on-give-up hook {exit}"),
            Err(e) => eprintln!("daemonic: {name}: on-give-up hook: {e:#}"),
        }
    }

    fn publish(&self) {
        let Some(s) = &self.status else { return };
        let delays: Vec<Duration> = self.machine.delays().collect();
        let state = self.machine.state();
        s.write(&status_file::Snapshot {
            state,
            pid: self.child.as_ref().map(|c| c.pidfd.pid()),
            supervisor: daemonic::Pid::this(),
            since: self.state_since,
            status: &self.status_text,
            restarts: self.machine.restarts(),
            last_exit: self.machine.last_exit(),
            next_delay: delays.last().copied().filter(|_| state == State::Backoff),
            delays: &delays,
        });
    }
}

/// Runs a helper command (own process group) to its end, SIGKILLing its group after
/// `limit`.
fn run_to_end(cmd: &mut Command, limit: Duration) -> Result<Exit> {
    let child = process::spawn(cmd)?;
    if !child.pidfd.wait_exit(limit)? {
        child.signal_group(Signal::SIGKILL)?;
        child.pidfd.wait_exit(Duration::from_secs(3600))?;
    }
    child.signal_group(Signal::SIGKILL)?;
    loop {
        if let Some(exit) = child.pidfd.reap()? {
            return Ok(exit);
        }
    }
}
