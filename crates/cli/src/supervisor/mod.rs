//! The supervisor: the process that owns a set of services' children.
//!
//! `start` and `run` give it one service (crash isolation, like runit/s6); a config file
//! (`up`, `run -f`) gives it many (cheap per service, like supervisord; see [`group`]).
//! Each service is a [`unit`]:
//! a pure state machine ([`machine`], restart policy in [`policy`]) and the executor of
//! its actions.
//!
//! One `poll(2)` loop waits on everything at once — signals (as events), the shared
//! notify socket, each child's pidfd (readable when it exits), probe attempts (readiness,
//! liveness and readiness checks: [`probe`], [`health`]), and the earliest armed timer of
//! any unit (readiness grace, stop timeout, restart delay, watchdog, health checks). It
//! turns what it sees into machine events for the unit concerned. Nothing ticks while
//! idle: with every child ready, no watchdog and no health check, `poll` sleeps until
//! something happens. The first time it has had nothing to do for a second (`QUIET_MS`:
//! its one wake-up without an event), it gives back the pages only its start-up used —
//! the executable's code and the heap's free pages ([`daemonic::memory`]).
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
//!
//! **systemd's watchdog on the supervisor** (`WatchdogSec=` in a unit that runs
//! `daemonic run`): the loop pings at half the interval once readiness was forwarded —
//! one more deadline of the poll, none without a watchdog. A missed ping means the
//! supervisor is stuck; a failing service is handled by its own policy, not by systemd
//! restarting the supervisor (`docs/systemd.md`, "The watchdog through daemonic run").

pub mod capture;
pub mod containment;
pub mod group;
pub mod health;
pub mod init;
pub mod limits;
pub mod machine;
mod notify;
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
use daemonic::systemd::listen::NotifyListener;
use daemonic::systemd::watchdog::Watchdog;
use daemonic::{Running, Signals};
use nix::poll::{PollFd, PollFlags, PollTimeout, poll};

use crate::control::{ControlServer, Request};
use crate::service::{Readiness, Service};
pub use group::Group;
use group::Slot;
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

/// How long the loop has nothing to do before the start-up's pages go back (once).
const QUIET_MS: u32 = 1000;

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
    /// A descriptor of unit N's probe attempt in slot K (`unit::Slot::index`).
    Probe(usize, usize),
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
    let pid1 = init.as_ref().is_some_and(Init::is_pid1);
    let ended = with_sentinel(outer, control, pid1, |server, sentinel| {
        run(Start::Entries(entries), outer, sentinel, server, init)
    })?;
    Ok(ended
        .into_iter()
        .map(|(_, exit)| exit.expect("every unit of a list is started"))
        .collect())
}

/// Supervises the services of a config file (see [`group`]) until `down` (detached) or
/// until they have all ended (in the foreground); `targets` are the services wanted up
/// at first (with what they depend on; all when empty). Serves its control socket at
/// `control` and each service's at `<state-dir>/NAME.sock`. Returns the last exit of the
/// file's `main` service (or of its only one), if it ran. With `init`, the supervisor is
/// an init (see [`init`]).
pub fn supervise_group(
    group: Group,
    targets: &[String],
    outer: &Running,
    control: PathBuf,
    init: Option<Init>,
) -> Result<Option<Exit>> {
    let main = group
        .config
        .main
        .clone()
        .or_else(|| match group.config.services.as_slice() {
            [only] => Some(only.name.clone()),
            _ => None,
        });
    let detached = group.detached;
    let pid1 = init.as_ref().is_some_and(Init::is_pid1);
    let ended = with_sentinel(outer, Some(control), pid1, |server, sentinel| {
        run(
            Start::Group(Box::new(group), targets),
            outer,
            sentinel,
            server,
            init,
        )
    })?;
    let exit = ended
        .into_iter()
        .rev()
        .find(|(name, _)| Some(name) == main.as_ref())
        .and_then(|(_, exit)| exit);
    match (main, exit) {
        // Its status is the supervisor's: no status is not success.
        (Some(main), None) if !detached => anyhow::bail!(
            "{main} never ran (stopped first, or what it depends on ended before it was ready)"
        ),
        (_, exit) => Ok(exit),
    }
}

/// Runs `body` with a sentinel started first (not as PID 1) and the control socket bound.
fn with_sentinel<T>(
    outer: &Running,
    control: Option<PathBuf>,
    pid1: bool,
    body: impl FnOnce(Option<&mut ControlServer>, Option<&Sentinel>) -> Result<T>,
) -> Result<T> {
    // First, while the process runs one thread: the sentinel keeps the pid-file lock
    // until it has cleaned up after a killed supervisor. Not as PID 1, whose death kills
    // every process of its pid namespace.
    let keep: Vec<_> = outer.pid_file().map(|p| p.as_fd()).into_iter().collect();
    let sentinel = (!pid1).then(|| Sentinel::start("INVOCATION_ID", &keep));
    let sentinel = match sentinel.transpose() {
        Ok(s) => s,
        Err(e) => {
            eprintln!("daemonic: no sentinel, descendants may outlive a killed supervisor: {e}");
            None
        }
    };
    let result = match control.as_deref().map(ControlServer::bind).transpose() {
        Ok(mut server) => body(server.as_mut(), sentinel.as_ref()),
        Err(e) => Err(e),
    };
    if let Some(s) = sentinel {
        s.disarm().context("stop the sentinel")?;
    }
    result
}

/// What a supervisor starts from.
enum Start<'a> {
    /// Services given on the command line, all started at once.
    Entries(Vec<Entry>),
    /// A config file, and the services wanted up in it.
    Group(Box<Group>, &'a [String]),
}

/// Runs the loop; returns each unit's name and last exit (`None`: never started), in the
/// order the units were created.
fn run(
    start: Start<'_>,
    outer: &Running,
    sentinel: Option<&Sentinel>,
    mut control: Option<&mut ControlServer>,
    init: Option<Init>,
) -> Result<Vec<(String, Option<Exit>)>> {
    let mut signals = Signals::new().context("install signal handlers")?;
    if let Some(init) = &init {
        signals = init.catch(signals)?;
    }
    // A second SIGTERM escalates the stop instead of abandoning the children.
    signals
        .force_exit_on_second(false)
        .context("install signal handlers")?;
    // Many services need many descriptors; each child gets the usual limit back.
    if let Err(e) = daemonic::process::raise_nofile_limit() {
        eprintln!("daemonic: {e}");
    }
    let listener = NotifyListener::bind_private().context("bind notify socket")?;
    listener.set_nonblocking(true)?;
    let socket = listener.env_value();
    let cx = Context {
        outer,
        notify_socket: socket.as_ref(),
        sentinel,
        single: matches!(&start, Start::Entries(e) if e.len() == 1),
    };
    let mut sup = Supervisor {
        units: Vec::new(),
        by_name: Default::default(),
        slots: Vec::new(),
        ready_told: false,
        pending: Vec::new(),
        group: None,
        ending: false,
        init,
        watchdog: Watchdog::from_env().unwrap_or_else(|e| {
            eprintln!("daemonic: systemd watchdog: {e}");
            None
        }),
        notes: notify::Notes::new(Instant::now()),
        pages: Pages::Startup,
    };
    match start {
        Start::Entries(entries) => {
            let mut firsts = Vec::new();
            for (i, e) in entries.into_iter().enumerate() {
                let config = machine_config(&e.service, outer.detached());
                let (mut unit, first) = Unit::new(e.service, config, seed(i))?;
                if let Some(path) = e.status_file {
                    unit = unit.with_status_file(path);
                }
                sup.push(unit, Slot::default());
                firsts.push(first);
            }
            for (i, first) in firsts.into_iter().enumerate() {
                let out = sup.units[i].execute(first, &cx)?;
                sup.absorb(i, out, &cx);
            }
        }
        Start::Group(group, targets) => {
            let detached = group.detached;
            let config = group.config.clone();
            sup.group = Some(*group);
            let targets = (!targets.is_empty()).then_some(targets);
            sup.apply(config, targets, &[], control.as_deref_mut())?;
            if detached {
                // `up` follows the services' progress through the control socket.
                sup.ready_told = true;
                let _ = outer.ready();
            }
            sup.reconcile(&cx)?;
        }
    }
    let result = sup.run(&mut signals, &listener, control.as_deref_mut(), &cx);
    // Whatever waits for a unit that has finished gets its answer, even on the way out.
    if let Some(server) = control {
        sup.settle(server, true);
    }
    result?;
    Ok(sup
        .units
        .iter()
        .zip(&sup.slots)
        .map(|(u, s)| (u.name().to_string(), s.exit))
        .collect())
}

/// The machine's configuration for a service; `first_start_watched`: a launcher waits for
/// its first start with the same timeout (`daemonic start`).
fn machine_config(s: &Service, first_start_watched: bool) -> machine::Config {
    machine::Config {
        policy: s.policy.clone(),
        readiness: match s.ready {
            _ if s.kind == crate::service::Kind::Oneshot => machine::Readiness::Exit,
            Readiness::Auto => machine::Readiness::NotifyOrGrace(s.grace),
            Readiness::Notify => machine::Readiness::Notify,
            Readiness::Grace => machine::Readiness::Grace(s.grace),
            Readiness::Probe(_) => machine::Readiness::Probe(s.probe.interval),
            Readiness::Log(_) => machine::Readiness::Output,
        },
        stop_signal: s.stop_signal,
        stop_timeout: s.stop_timeout,
        watchdog: s.watchdog,
        start_timeout: Some(s.start_timeout),
        first_start_watched,
        health: s.health.config(),
        memory_restart: s.memory_restart,
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
    /// Each name's units, oldest first (see `group::Supervisor::find`).
    by_name: std::collections::HashMap<String, Vec<usize>>,
    /// Beside each unit: how it ended, and what a config file adds to it.
    slots: Vec<Slot>,
    /// Readiness has been forwarded to whoever waits for the supervisor.
    ready_told: bool,
    /// Control requests answered when their unit gets there.
    pending: Vec<Pending>,
    /// The config file, for a supervisor of one.
    group: Option<Group>,
    /// Everything is being stopped (a signal, or `down` of all); the supervisor ends when
    /// it has.
    ending: bool,
    /// Init mode: reap orphans, forward signals.
    init: Option<Init>,
    /// systemd's watchdog on this supervisor, pinged once readiness was forwarded (module
    /// docs).
    watchdog: Option<Watchdog>,
    /// Rate-limited notes about dropped notify datagrams.
    notes: notify::Notes,
    /// Whether the start-up's pages were given back (`daemonic::memory`).
    pages: Pages,
}

/// The start-up's pages: kept, about to go (a QUIET without events passed), gone.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
enum Pages {
    Startup,
    Quiet,
    Released,
}

impl Pages {
    /// The poll's timeout instead of `timeout`, and whether it is the one QUIET wait
    /// after which the start-up's pages go (`daemonic::memory`): a long sleep (no
    /// deadline within twice QUIET, so not just before a 1 s grace fires) is cut to QUIET
    /// once; when that passes without an event, they go here, right before the next
    /// sleep, so that only the code between the release and `poll` is faulted back in
    /// before it sleeps.
    fn poll_timeout(&mut self, timeout: PollTimeout) -> (PollTimeout, bool) {
        match *self {
            Pages::Startup
                if timeout.is_none()
                    // (nix's `as_millis` panics on NONE: `is_none` first.)
                    || timeout.as_millis().is_some_and(|ms| ms >= 2 * QUIET_MS) =>
            {
                (PollTimeout::from(QUIET_MS as u16), true)
            }
            Pages::Quiet => {
                *self = Pages::Released;
                if let Err(e) = daemonic::memory::release_startup_pages() {
                    eprintln!("daemonic: {e}");
                }
                (timeout, false)
            }
            _ => (timeout, false),
        }
    }
}

impl Supervisor {
    fn run(
        &mut self,
        signals: &mut Signals,
        listener: &NotifyListener,
        mut control: Option<&mut ControlServer>,
        cx: &Context<'_>,
    ) -> Result<()> {
        while !self.over() {
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
                for (slot, a) in u.attempts() {
                    for fd in a.poll_fds() {
                        sources.push(Source::Probe(i, slot.index()));
                        fds.push(fd);
                    }
                }
            }
            let control_due = control.as_deref().and_then(ControlServer::next_deadline);
            let (timeout, quiet) = self.pages.poll_timeout(self.timeout(control_due));
            match poll(&mut fds, timeout) {
                Ok(0) if quiet => self.pages = Pages::Quiet,
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
            let mut probed = vec![[false; unit::Slot::ALL.len()]; self.units.len()];
            let mut requests = control_due.is_some_and(|at| at <= Instant::now());
            for source in ready {
                match source {
                    Source::Probe(i, k) => probed[i][k] = true,
                    Source::Control => requests = true,
                    Source::Signals => self.on_signals(signals, cx, control.as_deref_mut())?,
                    Source::Notify => self.on_datagrams(listener, cx)?,
                    Source::Output(i, k) => {
                        if self.units[i].on_output(k) {
                            self.deliver(i, Event::OutputMatched, cx)?;
                        }
                    }
                    Source::Exit(i) => {
                        self.units[i].drain_output();
                        let exit = self.units[i].reap()?;
                        self.deliver(i, exit, cx)?;
                    }
                }
            }
            let now = Instant::now();
            for (i, probed) in probed.into_iter().enumerate() {
                for event in self.units[i].advance_probes(probed, now) {
                    if let (Event::ProbeFailed(why), true) = (&event, cx.single)
                        && (self.units[i].probe_failure_changed(why) || !cx.outer.detached())
                    {
                        // What a launcher that times out prints, and shows as progress: told
                        // only when it changes. A service manager is told every time (the
                        // program's own STATUS= may have replaced it meanwhile).
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
            if let Some(server) = control.as_deref_mut()
                && requests
            {
                self.answer_requests(server, cx);
            }
            if self.group.is_some() {
                self.reconcile(cx)?;
            }
            if let Some(server) = control.as_deref_mut() {
                self.settle(server, false);
            }
            if self.group.is_some() {
                self.sweep(control.as_deref_mut());
            }
            if let Some(init) = &self.init {
                init.reap_orphans();
            }
            if let Some(w) = self.watchdog.as_mut().filter(|_| self.ready_told)
                && let Err(e) = w.kick()
            {
                eprintln!("daemonic: systemd watchdog: {e}");
            }
        }
        Ok(())
    }

    /// Reads the requests that have arrived; answers each now or when its unit gets there.
    fn answer_requests(&mut self, server: &mut ControlServer, cx: &Context<'_>) {
        for (conn, request) in server.poll_requests(Instant::now()) {
            if let Request::Up { names, rerun } = &request {
                let response = requests::up::answer(self, names, rerun, server);
                server.reply(conn, &response);
                continue;
            }
            match requests::answer(self, request, cx) {
                (_, Answer::Now(response)) => server.reply(conn, &response),
                (Some(unit), Answer::Later(wait)) => {
                    self.pending.push(Pending { conn, unit, wait })
                }
                (None, Answer::Later(_)) => unreachable!("a pending answer names a unit"),
            }
        }
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
            .chain(
                self.watchdog
                    .as_ref()
                    .filter(|_| self.ready_told)
                    .map(|w| Instant::now() + w.until_due()),
            )
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

    /// Hands `event` to unit `i` unless it has finished (or not started).
    fn deliver(&mut self, i: usize, event: Event, cx: &Context<'_>) -> Result<()> {
        if self.slots[i].finished || self.slots[i].held.is_some() {
            return Ok(());
        }
        let out = self.units[i].handle(event, cx)?;
        self.absorb(i, out, cx);
        Ok(())
    }

    /// Takes note of what a unit's step means for the whole supervisor.
    fn absorb(&mut self, i: usize, out: unit::Outcome, cx: &Context<'_>) {
        if let Some(exit) = out.finished {
            self.slots[i].exit = Some(exit);
            self.slots[i].finished = true;
            // In the foreground, the file's main service ending ends the rest too.
            let main = self
                .group
                .as_ref()
                .and_then(|g| (!g.detached).then_some(g.config.main.as_deref()).flatten());
            if main == Some(self.units[i].name()) && !self.slots[i].retired {
                self.shut_down(cx);
            }
        }
        self.slots[i].been_ready |= out.ready;
        let settled = |s: &Slot| s.been_ready || s.finished;
        if out.ready && !self.ready_told && self.slots.iter().all(settled) {
            self.ready_told = true;
            // The line `daemonic start` prints on success (its launcher announces the last
            // status before READY=1).
            if cx.single && cx.outer.detached() {
                let u = &self.units[i];
                let pid = u.pid().map_or(String::new(), |p| format!(" (pid {p})"));
                let _ = cx
                    .outer
                    .status(&format!("{}: {}{pid}", u.name(), u.state().as_str()));
            }
            let _ = cx.outer.ready();
        }
    }

    /// Stops every service: dependents first, for a config file.
    fn shut_down(&mut self, cx: &Context<'_>) {
        self.ending = true;
        if self.group.is_some() {
            self.take_down(&[]);
        } else {
            for i in 0..self.units.len() {
                if let Err(e) = self.deliver(i, Event::StopRequested, cx) {
                    eprintln!("daemonic: {}: {e:#}", self.units[i].name());
                }
            }
        }
    }

    fn on_signals(
        &mut self,
        signals: &mut Signals,
        cx: &Context<'_>,
        mut control: Option<&mut ControlServer>,
    ) -> Result<()> {
        let mut events = signals.pending();
        if let Some(init) = &self.init {
            events = init.on_signals(events, &self.units);
        }
        for event in events {
            match event {
                daemonic::Event::Shutdown => self.shut_down(cx),
                // A config file's supervisor reads the file again and applies it, as `up`.
                daemonic::Event::Reload if self.group.is_some() => {
                    match requests::up::apply(self, &[], &[], control.as_deref_mut()) {
                        crate::control::Response::Error(why) => {
                            eprintln!("daemonic: SIGHUP: {why}")
                        }
                        other => eprintln!("daemonic: SIGHUP: {other:?}"),
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
                daemonic::Event::ReopenLogs => {
                    // Errors are noted in the service's log by `reopen_logs` itself.
                    self.units.iter().for_each(|u| drop(u.reopen_logs()))
                }
                daemonic::Event::Signal(_) => {}
            }
        }
        Ok(())
    }
}
