//! The supervisor: the process that owns a set of services' children.
//!
//! `start` and `run` give it one service (crash isolation, like runit/s6); a config file
//! will give it many (cheap per service, like supervisord). Each service is a [`unit`]:
//! a pure state machine ([`machine`], restart policy in [`policy`]) and the executor of
//! its actions.
//!
//! One `poll(2)` loop waits on everything at once — signals (as events), the shared
//! notify socket, each child's pidfd (readable when it exits), and the earliest armed
//! timer of any unit (readiness grace, stop timeout, restart delay, watchdog). It turns
//! what it sees into machine events for the unit concerned. Nothing ticks while idle: with
//! every child ready and no watchdog, `poll` sleeps until something happens.
//!
//! States, as `daemonic status` shows them: `starting` → `ready` → `stopping`, and after an
//! exit `backoff` → `starting` again, or one of the final `stopped`, `exited`, `gave-up`.
//! The supervisor ends when every unit is final. Readiness is forwarded to whoever waits
//! for the supervisor itself (the `daemonic start` launcher, systemd, an outer
//! supervisor) once every unit has been ready.
//!
//! Notify messages: one socket for the supervisor; a datagram speaks for the unit whose
//! *main* process sent it (the kernel-verified sender pid; systemd's `NotifyAccess=main`).
//!
//! When a child exits, whatever is left of its process group is killed before the child
//! is reaped (while its pid still pins the group id), so no grandchild outlives it. If the
//! supervisor itself is killed, its children die with it (`PR_SET_PDEATHSIG`) and a
//! [`Sentinel`] kills their descendants, found by the `INVOCATION_ID` each child gets.
//!
//! In [`init`] mode (a container's PID 1, or `run --init`) the loop also reaps adopted
//! orphans and forwards signals to the services.

pub mod capture;
pub mod init;
pub mod machine;
pub mod policy;
pub mod probe;
mod requests;
pub mod status_file;
pub mod unit;

use std::os::fd::AsFd;
use std::path::PathBuf;
use std::time::{Instant, SystemTime};

use anyhow::{Context as _, Result};
use daemonic::process::Exit;
use daemonic::sentinel::Sentinel;
use daemonic::systemd::listen::{Message, NotifyListener};
use daemonic::{Running, Signals};
use nix::poll::{PollFd, PollFlags, PollTimeout, poll};

use crate::control::ControlServer;
use crate::service::{Readiness, Service};
use init::Init;
use machine::Event;
pub use machine::State;
use requests::{Answer, Pending};
pub use status_file::StatusFile;
use unit::Context;
pub use unit::Unit;

/// A service to supervise, and where to keep its status file (if anywhere).
pub struct Entry {
    pub service: Service,
    pub status_file: Option<PathBuf>,
}

/// What a descriptor in the poll set belongs to.
#[derive(Debug, Clone, Copy)]
enum Source {
    Signals,
    Notify,
    /// The control socket or one of its connections.
    Control,
    /// The pidfd of unit N's child.
    Exit(usize),
    /// Output pipe K of unit N.
    Output(usize, usize),
    /// A descriptor of unit N's readiness probe attempt.
    Probe(usize),
}

/// Supervises `entries` until every one has finished (stopped, exited without restart, or
/// gave up); returns each child's last exit, in the order given. With `control`, serves
/// the control socket at that path (the caller holds the pid-file lock that makes it
/// ours).
///
/// For a single service, failing to start the child is reported to `outer` (`STATUS=` and
/// `ERRNO=`) so a waiting launcher prints it. With `init`, the supervisor is an init
/// (see [`init`]).
pub fn supervise(
    entries: Vec<Entry>,
    outer: &Running,
    control: Option<PathBuf>,
    init: Option<Init>,
) -> Result<Vec<Exit>> {
    // First, while the process runs one thread: the sentinel keeps the pid-file lock
    // until it has cleaned up after a killed supervisor. Not as PID 1, whose death kills
    // every process of its pid namespace.
    let keep: Vec<_> = outer.pid_file().map(|p| p.as_fd()).into_iter().collect();
    let pid1 = init.as_ref().is_some_and(Init::is_pid1);
    let sentinel = (!pid1).then(|| Sentinel::start("INVOCATION_ID", &keep));
    let sentinel = match sentinel.transpose() {
        Ok(s) => s,
        Err(e) => {
            eprintln!("daemonic: no sentinel, descendants may outlive a killed supervisor: {e}");
            None
        }
    };
    let result = match control.as_deref().map(ControlServer::bind).transpose() {
        Ok(mut server) => run(entries, outer, sentinel.as_ref(), server.as_mut(), init),
        Err(e) => Err(e),
    };
    if let Some(s) = sentinel {
        s.disarm().context("stop the sentinel")?;
    }
    result
}

fn run(
    entries: Vec<Entry>,
    outer: &Running,
    sentinel: Option<&Sentinel>,
    mut control: Option<&mut ControlServer>,
    init: Option<Init>,
) -> Result<Vec<Exit>> {
    let mut signals = Signals::new().context("install signal handlers")?;
    if let Some(init) = &init {
        signals = init.catch(signals)?;
    }
    // A second SIGTERM escalates the stop instead of abandoning the children.
    signals
        .force_exit_on_second(false)
        .context("install signal handlers")?;
    let listener = NotifyListener::bind_private().context("bind notify socket")?;
    listener.set_nonblocking(true)?;
    let socket = listener.env_value();
    let cx = Context {
        outer,
        notify_socket: socket.as_ref(),
        sentinel,
        single: entries.len() == 1,
    };
    let mut sup = Supervisor {
        units: Vec::new(),
        exits: vec![None; entries.len()],
        been_ready: vec![false; entries.len()],
        ready_told: false,
        pending: Vec::new(),
        init,
    };
    let mut firsts = Vec::new();
    for (i, e) in entries.into_iter().enumerate() {
        let (mut unit, first) = Unit::new(e.service.clone(), machine_config(&e.service), seed(i))?;
        if let Some(path) = e.status_file {
            unit = unit.with_status_file(path);
        }
        sup.units.push(unit);
        firsts.push(first);
    }
    for (i, first) in firsts.into_iter().enumerate() {
        let out = sup.units[i].execute(first, &cx)?;
        sup.absorb(i, out, &cx);
    }
    let result = sup.run(&mut signals, &listener, control.as_deref_mut(), &cx);
    // Whatever waits for a unit that has finished gets its answer, even on the way out.
    if let Some(server) = control {
        sup.settle(server, true);
    }
    result?;
    Ok(sup
        .exits
        .into_iter()
        .map(|e| e.expect("every unit finished"))
        .collect())
}

/// The machine's configuration for a service.
fn machine_config(s: &Service) -> machine::Config {
    machine::Config {
        policy: s.policy.clone(),
        readiness: match s.ready {
            Readiness::Auto => machine::Readiness::NotifyOrGrace(s.grace),
            Readiness::Notify => machine::Readiness::Notify,
            Readiness::Grace => machine::Readiness::Grace(s.grace),
            Readiness::Probe(_) => machine::Readiness::Probe(s.probe.interval),
        },
        stop_signal: s.stop_signal,
        stop_timeout: s.stop_timeout,
        watchdog: s.watchdog,
    }
}

/// A jitter seed that differs between supervisors and units started at the same moment.
fn seed(unit: usize) -> u64 {
    let nanos = SystemTime::now()
        .duration_since(SystemTime::UNIX_EPOCH)
        .map_or(0, |d| d.as_nanos() as u64);
    nanos ^ (u64::from(std::process::id()) << 32) ^ (unit as u64).wrapping_mul(0x9e37_79b9)
}

struct Supervisor {
    units: Vec<Unit>,
    /// The last exit of each finished unit.
    exits: Vec<Option<Exit>>,
    /// Which units have been ready at least once.
    been_ready: Vec<bool>,
    /// Readiness has been forwarded to whoever waits for the supervisor.
    ready_told: bool,
    /// Control requests answered when their unit gets there.
    pending: Vec<Pending>,
    /// Init mode: reap orphans, forward signals.
    init: Option<Init>,
}

impl Supervisor {
    fn run(
        &mut self,
        signals: &mut Signals,
        listener: &NotifyListener,
        mut control: Option<&mut ControlServer>,
        cx: &Context<'_>,
    ) -> Result<()> {
        while self.exits.iter().any(Option::is_none) {
            let mut sources = vec![Source::Signals, Source::Notify];
            let mut fds = vec![
                PollFd::new(signals.as_fd(), PollFlags::POLLIN),
                PollFd::new(listener.as_fd(), PollFlags::POLLIN),
            ];
            if let Some(server) = control.as_deref() {
                for fd in server.fds() {
                    sources.push(Source::Control);
                    fds.push(PollFd::new(fd, PollFlags::POLLIN));
                }
            }
            for (i, u) in self.units.iter().enumerate() {
                if let Some(c) = u.child() {
                    sources.push(Source::Exit(i));
                    fds.push(PollFd::new(c.pidfd.as_fd(), PollFlags::POLLIN));
                }
                for (k, c) in u.captures().iter().enumerate() {
                    sources.push(Source::Output(i, k));
                    fds.push(PollFd::new(c.fd(), PollFlags::POLLIN));
                }
                if let Some(a) = u.probe() {
                    for fd in a.poll_fds() {
                        sources.push(Source::Probe(i));
                        fds.push(fd);
                    }
                }
            }
            let control_due = control.as_deref().and_then(ControlServer::next_deadline);
            match poll(&mut fds, self.timeout(control_due)) {
                Ok(_) | Err(nix::errno::Errno::EINTR) => {}
                Err(e) => return Err(e).context("poll"),
            }
            let mut ready: Vec<Source> = fds
                .iter()
                .zip(&sources)
                .filter(|(f, _)| f.revents().is_some_and(|r| !r.is_empty()))
                .map(|(_, s)| *s)
                .collect();
            drop(fds);
            // Output first, and pipes of a unit from the last (removing one at its end
            // leaves the indices of the others valid); exits after, so a child's last
            // lines come before the note about its exit.
            ready.sort_by_key(|s| match *s {
                Source::Output(i, k) => (0, i, usize::MAX - k),
                _ => (1, 0, 0),
            });
            let mut probed = vec![false; self.units.len()];
            let mut requests = control_due.is_some_and(|at| at <= Instant::now());
            for source in ready {
                match source {
                    Source::Probe(i) => probed[i] = true,
                    Source::Control => requests = true,
                    Source::Signals => self.on_signals(signals, cx)?,
                    Source::Notify => self.on_datagrams(listener, cx)?,
                    Source::Output(i, k) => self.units[i].on_output(k),
                    Source::Exit(i) => {
                        self.units[i].drain_output();
                        let exit = self.units[i].reap()?;
                        self.deliver(i, Event::ChildExited(exit), cx)?;
                    }
                }
            }
            let now = Instant::now();
            for (i, probed) in probed.into_iter().enumerate() {
                if let Some(event) = self.units[i].advance_probe(probed, now) {
                    if let (Event::ProbeFailed(why), true) = (&event, cx.single) {
                        // What a launcher that times out prints.
                        let _ = cx.outer.status(&format!("not ready: {why}"));
                    }
                    self.deliver(i, event, cx)?;
                }
            }
            let now = Instant::now();
            for i in 0..self.units.len() {
                for event in self.units[i].due_timers(now) {
                    self.deliver(i, event, cx)?;
                }
            }
            if let Some(server) = control.as_deref_mut() {
                if requests {
                    for (conn, request) in server.poll_requests(Instant::now()) {
                        match requests::answer(self, request, cx) {
                            (_, Answer::Now(response)) => server.reply(conn, &response),
                            (Some(unit), Answer::Later(wait)) => {
                                self.pending.push(Pending { conn, unit, wait })
                            }
                            (None, Answer::Later(_)) => {
                                unreachable!("a pending answer names a unit")
                            }
                        }
                    }
                }
                self.settle(server, false);
            }
            if let Some(init) = &self.init {
                init.reap_orphans();
            }
        }
        Ok(())
    }

    /// Answers the pending requests whose units got where they waited for; with `all`
    /// (the supervisor is ending), every one left.
    fn settle(&mut self, server: &mut ControlServer, all: bool) {
        let pending = std::mem::take(&mut self.pending);
        for p in pending {
            match requests::settle(self, &p) {
                Some(response) => server.reply(p.conn, &response),
                None if all => server.reply(
                    p.conn,
                    &crate::control::Response::Error("the supervisor is ending".into()),
                ),
                None => self.pending.push(p),
            }
        }
    }

    /// Until the earliest timer of any unit (or `also`); forever if none is armed.
    fn timeout(&self, also: Option<Instant>) -> PollTimeout {
        let next = self
            .units
            .iter()
            .filter_map(Unit::next_deadline)
            .chain(also)
            .min();
        let Some(at) = next else {
            return PollTimeout::NONE;
        };
        let left = at.saturating_duration_since(Instant::now());
        // Round a partial millisecond up, so we never wake early and spin; a deadline
        // already due polls without waiting.
        let ms = left.as_micros().div_ceil(1000);
        PollTimeout::try_from(ms.min(i32::MAX as u128) as i32).unwrap_or(PollTimeout::MAX)
    }

    /// Hands `event` to unit `i` unless it has finished.
    fn deliver(&mut self, i: usize, event: Event, cx: &Context<'_>) -> Result<()> {
        if self.exits[i].is_some() {
            return Ok(());
        }
        let out = self.units[i].handle(event, cx)?;
        self.absorb(i, out, cx);
        Ok(())
    }

    /// Takes note of what a unit's step means for the whole supervisor.
    fn absorb(&mut self, i: usize, out: unit::Outcome, cx: &Context<'_>) {
        if let Some(exit) = out.finished {
            self.exits[i] = Some(exit);
        }
        self.been_ready[i] |= out.ready;
        let settled = |j: usize| self.been_ready[j] || self.exits[j].is_some();
        if out.ready && !self.ready_told && (0..self.units.len()).all(settled) {
            self.ready_told = true;
            let _ = cx.outer.ready();
        }
    }

    fn on_signals(&mut self, signals: &mut Signals, cx: &Context<'_>) -> Result<()> {
        let mut events = signals.pending();
        if let Some(init) = &self.init {
            events = init.on_signals(events, &self.units);
        }
        for event in events {
            match event {
                daemonic::Event::Shutdown => {
                    for i in 0..self.units.len() {
                        self.deliver(i, Event::StopRequested, cx)?;
                    }
                }
                // Like systemd's `kill -HUP $MAINPID`: each main process only.
                daemonic::Event::Reload => {
                    for u in &self.units {
                        if let Some(c) = u.child() {
                            let _ = c.pidfd.signal(u.service.reload_signal);
                        }
                    }
                }
                daemonic::Event::ReopenLogs => self.units.iter().for_each(Unit::reopen_logs),
                daemonic::Event::Signal(_) => {}
            }
        }
        Ok(())
    }

    /// Drains the notify socket into events of the units whose main process spoke.
    fn on_datagrams(&mut self, listener: &NotifyListener, cx: &Context<'_>) -> Result<()> {
        loop {
            let datagram = match listener.recv() {
                Ok(d) => d,
                Err(e) if e.os_error() == Some(libc::EAGAIN) => return Ok(()),
                Err(e) => {
                    eprintln!("daemonic: notify socket: {e}");
                    continue;
                }
            };
            let Some(sender) = datagram.sender.map(|s| s.pid) else {
                continue;
            };
            let Some(i) = self.units.iter().position(|u| u.pid() == Some(sender)) else {
                continue;
            };
            for m in datagram.messages {
                let event = match m {
                    // `--ready grace` or a probe: that only, by the user's choice.
                    Message::Ready
                        if matches!(
                            self.units[i].service.ready,
                            Readiness::Auto | Readiness::Notify
                        ) =>
                    {
                        Event::ReadyMessage
                    }
                    Message::Stopping => Event::StoppingMessage,
                    Message::Watchdog => Event::WatchdogPing,
                    Message::WatchdogTrigger => Event::WatchdogExpired,
                    Message::Reloading => {
                        self.set_status(i, "reloading", cx);
                        continue;
                    }
                    Message::Status(text) => {
                        self.set_status(i, &text, cx);
                        continue;
                    }
                    Message::Errno(n) if cx.single => {
                        let _ = cx
                            .outer
                            .notify(&[daemonic::systemd::notify::State::Errno(n)]);
                        continue;
                    }
                    _ => continue,
                };
                self.deliver(i, event, cx)?;
            }
        }
    }

    fn set_status(&mut self, i: usize, text: &str, cx: &Context<'_>) {
        if cx.single {
            let _ = cx.outer.status(text);
        }
        self.units[i].status_text = text.to_string();
        self.units[i].publish();
    }
}
