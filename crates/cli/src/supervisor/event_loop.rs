//! The supervisor's loop, and how an event reaches a unit.
//!
//! One turn of [`Supervisor::run`]:
//!
//! 1. **Build the poll set** ([`PollSet`]): signals, the notify socket, the control
//!    socket and its connections, and per unit its child's pidfd, its output pipes, its
//!    probe attempts, its emptying cgroup's `cgroup.events` and its give-up hook's pidfd;
//!    the timeout is the earliest deadline of any of them ([`Supervisor::timeout`]).
//! 2. **Wait** in `poll(2)`. The first time the loop has had nothing to do for a second
//!    (its one shortened sleep), it gives back the pages only its start-up used, the
//!    executable's code and the heap's free pages ([`daemonic::memory`]; `Pages`).
//! 3. **Dispatch**: each descriptor that is ready is turned into events for the unit it
//!    belongs to (the other sources have handlers of their own: [`super::notify`] for
//!    datagrams, [`super::signals`] for signals, [`super::requests`] for control
//!    requests), then probe attempts and timers that are due.
//! 4. **Deliver** each event ([`Supervisor::deliver`]): the unit's machine returns
//!    actions, the unit carries them out and returns follow-up events, which go to the
//!    machine in turn until there are none; then what it means for the whole supervisor
//!    ([`Supervisor::absorb`]: readiness to forward, a service that ended).
//! 5. **Tidy**: a config file's rules are applied ([`super::group`]), pending requests
//!    answered, retired units forgotten, orphans reaped, systemd's watchdog pinged.

use std::collections::VecDeque;
use std::os::fd::AsFd;
use std::time::Instant;

use anyhow::{Context as _, Result};
use daemonic::systemd::watchdog::Watchdog;
use daemonic::{Running, Signals};
use nix::poll::{PollFd, PollFlags, PollTimeout, poll};

use super::group::Group;
use super::init::Init;
use super::machine::{Action, Event};
use super::notify::Notes;
use super::requests::Pending;
use super::unit::Unit;
use super::unit::{Effects, ProbeRole, Resume, Shared};
use super::units::Standing;
use super::units::{UnitId, Units};
use super::{Start, machine_config, seed};
use crate::control::ControlServer;

pub struct Supervisor {
    pub(super) units: Units,
    /// Readiness has been forwarded to whoever waits for the supervisor.
    pub(super) ready_told: bool,
    /// Control requests answered when their unit gets there.
    pub(super) pending: Vec<Pending>,
    /// The config file, for a supervisor of one.
    pub(super) group: Option<Group>,
    /// Everything is being stopped (a signal, or `down` of all); the supervisor ends when
    /// it has.
    pub(super) ending: bool,
    /// Init mode: reap orphans, forward signals.
    pub(super) init: Option<Init>,
    /// systemd's watchdog on this supervisor, pinged once readiness was forwarded (module
    /// docs of [`super`]).
    pub(super) watchdog: Option<Watchdog>,
    /// Rate-limited notes about dropped notify datagrams.
    pub(super) notes: Notes,
    /// Whether the start-up's pages were given back (`daemonic::memory`).
    pages: Pages,
}

/// How long the loop has nothing to do before the start-up's pages go back (once).
const QUIET_MS: u32 = 1000;

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

/// What the loop waits on besides the units.
pub(super) struct Io<'a> {
    pub signals: &'a mut Signals,
    pub notify: &'a super::notify_socket::NotifySockets,
    pub control: Option<&'a mut ControlServer>,
}

/// What a descriptor in the poll set belongs to.
#[derive(Debug, Clone, Copy)]
enum Source {
    Signals,
    /// Notify socket K (`NotifySockets::listeners`).
    Notify(usize),
    /// The control socket or one of its connections.
    Control,
    /// The pidfd of the unit's child.
    Exit(UnitId),
    /// Output pipe K of the unit.
    Output(UnitId, usize),
    /// A descriptor of the unit's probe attempt in role K ([`ProbeRole::index`]).
    Probe(UnitId, usize),
    /// `cgroup.events` of the unit's exited child's group, being emptied.
    Drain(UnitId),
    /// The pidfd of the unit's give-up hook.
    Hook(UnitId),
}

/// The descriptors of one turn, each with what it belongs to.
struct PollSet<'a> {
    fds: Vec<PollFd<'a>>,
    sources: Vec<Source>,
}

impl<'a> PollSet<'a> {
    fn add(&mut self, source: Source, fd: PollFd<'a>) {
        self.sources.push(source);
        self.fds.push(fd);
    }

    /// Every source to watch this turn.
    #[inline(never)] // see `Supervisor::run`: off the idle stack
    fn build(units: &'a Units, io: &'a Io<'_>) -> PollSet<'a> {
        let mut set = PollSet {
            fds: Vec::new(),
            sources: Vec::new(),
        };
        set.add(
            Source::Signals,
            PollFd::new(io.signals.as_fd(), PollFlags::POLLIN),
        );
        for (k, l) in io.notify.listeners().enumerate() {
            set.add(Source::Notify(k), PollFd::new(l.as_fd(), PollFlags::POLLIN));
        }
        for fd in io.control.as_deref().into_iter().flat_map(|s| s.fds()) {
            set.add(Source::Control, PollFd::new(fd, PollFlags::POLLIN));
        }
        for (id, m) in units.iter() {
            let u = &m.unit;
            if let Some(c) = u.child() {
                set.add(
                    Source::Exit(id),
                    PollFd::new(c.pidfd.as_fd(), PollFlags::POLLIN),
                );
            }
            for (k, c) in u.captures().iter().enumerate() {
                set.add(
                    Source::Output(id, k),
                    PollFd::new(c.fd(), PollFlags::POLLIN),
                );
            }
            for (role, a) in u.attempts() {
                for fd in a.poll_fds() {
                    set.add(Source::Probe(id, role.index()), fd);
                }
            }
            for fd in u.drain_fds() {
                set.add(Source::Drain(id), fd);
            }
            if let Some(fd) = u.hook_fd() {
                set.add(Source::Hook(id), fd);
            }
        }
        set
    }

    /// Waits until a descriptor is ready or `timeout`; what is ready, output first and
    /// the pipes of a unit from the last (removing one at its end leaves the indices of
    /// the others valid); exits after, so a child's last lines come before the note
    /// about its exit.
    fn wait(mut self, timeout: PollTimeout) -> Result<Vec<Source>> {
        match poll(&mut self.fds, timeout) {
            Ok(_) | Err(nix::errno::Errno::EINTR) => {}
            Err(e) => return Err(e).context("poll"),
        }
        let mut ready: Vec<Source> = self
            .fds
            .iter()
            .zip(&self.sources)
            .filter(|(f, _)| f.revents().is_some_and(|r| !r.is_empty()))
            .map(|(_, s)| *s)
            .collect();
        ready.sort_by_key(|s| match *s {
            Source::Output(id, k) => (0, Some(id), usize::MAX - k),
            _ => (1, None, 0),
        });
        Ok(ready)
    }
}

/// What woke a unit's attempts this turn.
#[derive(Default, Clone, Copy)]
struct Woken {
    probes: [bool; ProbeRole::ALL.len()],
    drain: bool,
    hook: bool,
}

impl Supervisor {
    pub(super) fn new(init: Option<Init>) -> Supervisor {
        Supervisor {
            units: Units::default(),
            ready_told: false,
            pending: Vec::new(),
            group: None,
            ending: false,
            init,
            watchdog: Watchdog::from_env().unwrap_or_else(|e| {
                eprintln!("daemonic: systemd watchdog: {e}");
                None
            }),
            notes: Notes::new(Instant::now()),
            pages: Pages::Startup,
        }
    }

    /// Creates the first units: each entry's, started at once, or a config file's, started
    /// as their dependencies allow.
    #[inline(never)] // see `Supervisor::run`: off the idle stack
    pub(super) fn begin(
        &mut self,
        start: Start<'_>,
        outer: &Running,
        control: Option<&mut ControlServer>,
        cx: &Shared<'_>,
    ) -> Result<()> {
        match start {
            Start::Entries(entries) => {
                let mut firsts = Vec::new();
                for e in entries {
                    let config = machine_config(&e.service, outer.detached());
                    let (mut unit, first) =
                        Unit::new(e.service, config, seed(self.units.next_id()))?;
                    if let Some(path) = e.status_file {
                        unit = unit.with_status_file(path);
                    }
                    firsts.push((self.units.add(unit, Standing::default()), first));
                }
                for (id, first) in firsts {
                    self.carry_out(id, first, cx)?;
                }
            }
            Start::Group(group, targets) => {
                let detached = group.detached;
                let config = group.config.clone();
                self.group = Some(*group);
                let targets = (!targets.is_empty()).then_some(targets);
                self.apply(config, targets, &[], control)?;
                if detached {
                    // `up` follows the services' progress through the control socket.
                    self.ready_told = true;
                    let _ = outer.ready();
                }
                self.reconcile(cx)?;
            }
        }
        Ok(())
    }

    /// Runs the loop until every unit is done (see the module docs).
    ///
    /// What it calls per event is kept out of line (`#[inline(never)]`): inlined, their
    /// locals made this one frame 25 KiB, stack that stays resident for as long as the
    /// supervisor sleeps in `poll` below it. Out of line, their frames live only while
    /// they run, and the idle release (`daemonic::memory`) drops their pages.
    pub(super) fn run(&mut self, io: &mut Io<'_>, cx: &Shared<'_>) -> Result<()> {
        while !self.over() {
            self.write_statuses();
            let control_due = io.control.as_deref().and_then(ControlServer::next_deadline);
            let set = PollSet::build(&self.units, io);
            // After the set is built: a release runs as little code as it can before the sleep.
            let (timeout, quiet) = self.pages.poll_timeout(self.timeout(control_due));
            let ready = set.wait(timeout)?;
            if quiet && ready.is_empty() {
                self.pages = Pages::Quiet;
            }
            let mut woken = std::collections::HashMap::<UnitId, Woken>::new();
            let mut requests = control_due.is_some_and(|at| at <= Instant::now());
            for source in ready {
                match source {
                    Source::Probe(id, k) => woken.entry(id).or_default().probes[k] = true,
                    Source::Drain(id) => woken.entry(id).or_default().drain = true,
                    Source::Hook(id) => woken.entry(id).or_default().hook = true,
                    Source::Control => requests = true,
                    Source::Signals => self.on_signals(io, cx)?,
                    Source::Notify(k) => {
                        if let Some(l) = io.notify.listeners().nth(k) {
                            self.on_datagrams(l, cx)?;
                        }
                    }
                    Source::Output(id, k) => self.on_output(id, k, cx)?,
                    Source::Exit(id) => self.on_exit(id, cx)?,
                }
            }
            self.advance(&woken, cx)?;
            if requests && let Some(server) = io.control.as_deref_mut() {
                self.answer_requests(server, cx);
            }
            self.tidy(io, cx)?;
        }
        Ok(())
    }

    #[inline(never)] // see `Supervisor::run`: off the idle stack
    fn on_output(&mut self, id: UnitId, k: usize, cx: &Shared<'_>) -> Result<()> {
        if self.units[id].unit.on_output(k) {
            self.deliver(id, Event::OutputMatched, cx)?;
        }
        Ok(())
    }

    #[inline(never)] // see `Supervisor::run`: off the idle stack
    fn on_exit(&mut self, id: UnitId, cx: &Shared<'_>) -> Result<()> {
        let unit = &mut self.units[id].unit;
        unit.drain_output();
        if let Some(exit) = unit.on_exited(Instant::now())? {
            self.deliver(id, exit, cx)?;
        }
        Ok(())
    }

    /// Moves on what is due by time or was woken: emptying cgroups, give-up hooks, the
    /// look for a forking service's daemon, probe attempts, then timers.
    #[inline(never)] // see `Supervisor::run`: off the idle stack
    fn advance(
        &mut self,
        woken: &std::collections::HashMap<UnitId, Woken>,
        cx: &Shared<'_>,
    ) -> Result<()> {
        let now = Instant::now();
        for id in self.units.ids() {
            let w = woken.get(&id).copied().unwrap_or_default();
            let unit = &mut self.units[id].unit;
            unit.advance_hook(w.hook, now);
            if let Some((resume, deferred)) = unit.advance_drain(w.drain, now) {
                match resume {
                    Resume::Event(event) => self.deliver(id, event, cx)?,
                    Resume::Spawn => self.carry_out(id, vec![Action::Spawn], cx)?,
                }
                for event in deferred {
                    if !self.units[id].unit.state().is_final() {
                        self.deliver(id, event, cx)?;
                    }
                }
            }
            match self.units[id].unit.advance_fork(now)? {
                Some(event) => self.deliver(id, event, cx)?,
                None => self.tell_fork_wait(id, cx),
            }
            for event in self.units[id].unit.advance_probes(w.probes, now) {
                self.tell_probe_failure(id, &event, cx);
                self.deliver(id, event, cx)?;
            }
        }
        let now = Instant::now();
        for id in self.units.ids() {
            for event in self.units[id].unit.due_timers(now) {
                self.deliver(id, event, cx)?;
            }
        }
        Ok(())
    }

    /// What a launcher that times out prints, and shows as progress: told only when it
    /// changes. A service manager is told every time (the program's own STATUS= may have
    /// replaced it meanwhile).
    fn tell_probe_failure(&mut self, id: UnitId, event: &Event, cx: &Shared<'_>) {
        if let (Event::ProbeFailed(why), true) = (event, cx.single)
            && (self.units[id].unit.probe_failure_changed(why) || !cx.outer.detached())
        {
            let _ = cx.outer.status(&format!("not ready: {why}"));
        }
    }

    /// Why a forking service's daemon cannot be taken over yet, told as a probe's
    /// failure is (when it changes).
    fn tell_fork_wait(&mut self, id: UnitId, cx: &Shared<'_>) {
        let u = &mut self.units[id].unit;
        if cx.single
            && u.awaiting_daemon()
            && let Some(why) = u.probe_failure.clone()
            && u.probe_failure_changed(&why)
        {
            let _ = cx.outer.status(&format!("not ready: {why}"));
        }
    }

    /// The end of a turn: a config file's rules, pending answers, retired units, orphans,
    /// systemd's watchdog.
    #[inline(never)] // see `Supervisor::run`: off the idle stack
    fn tidy(&mut self, io: &mut Io<'_>, cx: &Shared<'_>) -> Result<()> {
        if self.group.is_some() {
            self.reconcile(cx)?;
        }
        if let Some(server) = io.control.as_deref_mut() {
            self.settle(server, false);
        }
        if self.group.is_some() {
            self.sweep(io.control.as_deref_mut());
        }
        if let Some(init) = &self.init {
            init.reap_orphans();
        } else if self.units.units().any(super::unit::Unit::adopts_orphans)
            && let Err(e) = daemonic::process::reap_orphans()
        {
            eprintln!("daemonic: reap orphans: {e}");
        }
        if let Some(w) = self.watchdog.as_mut().filter(|_| self.ready_told)
            && let Err(e) = w.kick()
        {
            eprintln!("daemonic: systemd watchdog: {e}");
        }
        Ok(())
    }

    /// Until the earliest deadline of any unit (or `also`); forever if none is armed.
    fn timeout(&self, also: Option<Instant>) -> PollTimeout {
        let next = self
            .units
            .units()
            .filter_map(super::unit::Unit::next_deadline)
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

    /// Hands `event` to unit `id` unless it has finished (or not started): its machine
    /// decides, and [`carry_out`](Self::carry_out) acts.
    pub(super) fn deliver(&mut self, id: UnitId, event: Event, cx: &Shared<'_>) -> Result<()> {
        let m = &mut self.units[id];
        if m.standing.finished || m.standing.held.is_some() {
            return Ok(());
        }
        let Some(event) = m.unit.admit(event) else {
            return Ok(());
        };
        let actions = m.unit.step(event, cx);
        self.carry_out(id, actions, cx)
    }

    /// Has unit `id` carry out `actions`, and its machine take each follow-up event the
    /// executor returns (and the unit carry out what it decides), until there are none;
    /// then takes note of what it all means for the supervisor.
    pub(super) fn carry_out(
        &mut self,
        id: UnitId,
        actions: Vec<Action>,
        cx: &Shared<'_>,
    ) -> Result<()> {
        let unit = &mut self.units[id].unit;
        let mut total = Effects::default();
        let mut next = VecDeque::from([actions]);
        while let Some(actions) = next.pop_front() {
            let effects = unit.execute(actions, cx)?;
            total.ready |= effects.ready;
            total.finished = total.finished.or(effects.finished);
            for event in effects.follow_ups {
                next.push_back(unit.step(event, cx));
            }
        }
        unit.settle();
        self.absorb(id, total, cx);
        Ok(())
    }

    /// Takes note of what a unit's step means for the whole supervisor.
    fn absorb(&mut self, id: UnitId, out: Effects, cx: &Shared<'_>) {
        if let Some(exit) = out.finished {
            let m = &mut self.units[id];
            m.standing.exit = Some(exit);
            m.standing.finished = true;
            // In the foreground, the file's main service ending ends the rest too.
            let main = self
                .group
                .as_ref()
                .and_then(|g| (!g.detached).then_some(g.config.main.as_deref()).flatten());
            let m = &self.units[id];
            if main == Some(m.unit.name()) && !m.standing.retired {
                self.shut_down(cx);
            }
        }
        self.units[id].standing.been_ready |= out.ready;
        let settled =
            |(_, m): (UnitId, &super::units::Member)| m.standing.been_ready || m.standing.finished;
        if out.ready && !self.ready_told && self.units.iter().all(settled) {
            self.ready_told = true;
            // The line `daemonic start` prints on success (its launcher announces the last
            // status before READY=1).
            if cx.single && cx.outer.detached() {
                let u = &self.units[id].unit;
                let pid = u.pid().map_or(String::new(), |p| format!(" (pid {p})"));
                let _ = cx
                    .outer
                    .status(&format!("{}: {}{pid}", u.name(), u.state().as_str()));
            }
            // Whoever is told "ready" finds the status files saying so.
            self.write_statuses();
            let _ = cx.outer.ready();
        }
    }

    /// Rewrites the status files that are behind (see [`Unit::publish`]).
    pub(super) fn write_statuses(&self) {
        for unit in self.units.units() {
            unit.write_status();
        }
    }

    /// Stops every service: dependents first, for a config file.
    pub(super) fn shut_down(&mut self, cx: &Shared<'_>) {
        self.ending = true;
        if self.group.is_some() {
            self.take_down(&[]);
        } else {
            for id in self.units.ids() {
                if let Err(e) = self.deliver(id, Event::StopRequested, cx) {
                    eprintln!("daemonic: {}: {e:#}", self.units[id].unit.name());
                }
            }
        }
    }
}
