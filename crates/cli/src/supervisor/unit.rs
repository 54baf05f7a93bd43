//! One supervised service inside the supervisor: its state machine, its child, its timers,
//! and the executor of its machine's actions.
//!
//! A `Unit` does not poll; the loop in `supervisor/mod.rs` polls for every unit and hands
//! each one what concerns it (`handle`). What the whole supervisor must do in response
//! comes back as a [`Outcome`].

use std::collections::VecDeque;
use std::ffi::OsStr;
use std::process::{Command, Stdio};
use std::time::{Duration, Instant, SystemTime};

use anyhow::{Context as _, Result};
use daemonic::process::{self, Exit, Spawned};
use daemonic::sentinel::Sentinel;
use daemonic::{Pid, Signal};

use super::capture::{self, Capture, Sink};
use super::containment::Cgroup;
use super::health::Check;
use super::machine::{Action, Event, Machine, State, Timer};
use super::probe::{Attempt, Outcome as ProbeOutcome, listener};
use super::status_file::{self, StatusFile};
use crate::service::{Readiness, Service};

/// Variables that describe daemonic's own environment, never a child's. With every
/// `DAEMONIC_*` variable of daemonic's environment (`DAEMONIC_STATE_DIR`, …), they are
/// removed by [`strip_internal`]; the child then gets what it is given anew
/// (`NOTIFY_SOCKET`, `WATCHDOG_USEC`, `INVOCATION_ID`, and with `--user` the user's
/// `HOME`, `USER`, `LOGNAME`, `SHELL`). Everything else is inherited.
pub const NOT_FOR_CHILD: &[&str] = &[
    "NOTIFY_SOCKET",
    "WATCHDOG_USEC",
    "WATCHDOG_PID",
    "LISTEN_FDS",
    "LISTEN_PID",
    "LISTEN_FDNAMES",
    "DAEMONIC_REEXEC",
    "DAEMONIC_STATE_DIR",
    "INVOCATION_ID",
];

/// Removes from `cmd`'s environment what no child of daemonic gets (see [`NOT_FOR_CHILD`]);
/// call it before setting variables for the child.
pub fn strip_internal(cmd: &mut Command) {
    static OWN: std::sync::OnceLock<Vec<std::ffi::OsString>> = std::sync::OnceLock::new();
    let own = OWN.get_or_init(|| {
        use std::os::unix::ffi::OsStrExt;
        std::env::vars_os()
            .map(|(k, _)| k)
            .filter(|k| k.as_bytes().starts_with(b"DAEMONIC_"))
            .collect()
    });
    for var in NOT_FOR_CHILD
        .iter()
        .map(OsStr::new)
        .chain(own.iter().map(|k| k.as_os_str()))
    {
        cmd.env_remove(var);
    }
}

/// How many of the program's last lines a failed first start shows.
const TAIL_LINES: usize = 5;

/// What the supervisor as a whole learns from a unit's step.
#[derive(Debug, Default)]
pub struct Outcome {
    /// The child became ready.
    pub ready: bool,
    /// The service ended, with the child's last exit.
    pub finished: Option<Exit>,
}

/// Which of a unit's probe attempts: the startup probe (`--ready`, in `Starting`) or a
/// health check (in `Ready`). The two checks may be in flight at the same time.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Slot {
    Startup,
    Check(Check),
}

impl Slot {
    pub const ALL: [Slot; 3] = [
        Slot::Startup,
        Slot::Check(Check::Liveness),
        Slot::Check(Check::Readiness),
    ];

    pub fn index(self) -> usize {
        match self {
            Slot::Startup => 0,
            Slot::Check(Check::Liveness) => 1,
            Slot::Check(Check::Readiness) => 2,
        }
    }
}

/// Shared by every unit: how children reach the supervisor and who waits for it.
pub struct Context<'a> {
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
    pub main_pid: Option<process::PidFd>,
}

pub struct Unit {
    pub service: Service,
    machine: Machine,
    /// Present exactly while the machine is in `Starting`, `Ready` or `Stopping`.
    child: Option<Spawned>,
    timers: [Option<Instant>; Timer::ALL.len()],
    /// The child's last `STATUS=`.
    pub status_text: String,
    /// What the notify protocol told about the current child (reloading, `MAINPID=`).
    pub told: Told,
    /// The state last published, and since when.
    shown: State,
    since: SystemTime,
    status_file: Option<StatusFile>,
    /// Children started so far (for `INVOCATION_ID`).
    spawned: u64,
    /// The last probe failure told to whoever waits (said again only when it changes).
    told_probe_failure: Option<String>,
    /// The size of the log file at the first spawn: where "the output of this start"
    /// begins, for the tail shown when the first start fails.
    log_start: Option<u64>,
    /// Whether the last spawn attempt failed (its error is already reported).
    spawn_failed: bool,
    /// The probe attempts in flight, by [`Slot::index`]: the readiness probe's only ever
    /// in `Starting`, the health checks' only ever in `Ready`.
    attempts: [Option<Attempt>; Slot::ALL.len()],
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
    /// The group's OOM kills when the child was spawned (with the memory controller).
    oom_kills: Option<u64>,
    /// The OOM killer killed in the group while the last child ran.
    oom: bool,
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
        let (machine, first) = Machine::new(config, super::policy::Jitter::new(seed));
        let unit = Unit {
            service,
            machine,
            child: None,
            timers: [None; Timer::ALL.len()],
            status_text: String::new(),
            told: Default::default(),
            shown: State::Starting,
            since: SystemTime::now(),
            status_file: None,
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
            oom_kills: None,
            oom: false,
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

    pub fn child(&self) -> Option<&Spawned> {
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

    /// The child's output pipes still open.
    pub fn captures(&self) -> &[Capture] {
        &self.captures
    }

    /// Copies what output pipe `k` holds to the log; forgets the pipe at its end. `true`
    /// when a line matched the `--ready log:…` pattern of a child still starting (the
    /// pattern is then no longer looked for).
    pub fn on_output(&mut self, k: usize) -> bool {
        let read = self.captures[k].on_readable();
        let matched = self.captures[k].take_match();
        match read {
            Ok(false) => {}
            Ok(true) => {
                self.captures.remove(k);
            }
            Err(e) => {
                self.captures.remove(k);
                self.note(&format!("{e}"));
            }
        }
        if !matched || self.machine.state() != State::Starting {
            return false;
        }
        self.captures.iter_mut().for_each(|c| c.watch(None));
        self.probe_failure = None;
        true
    }

    /// Reads whatever the child's pipes hold now (before its exit is reported, so its
    /// last lines come before the supervisor's note about the exit).
    pub fn drain_output(&mut self) {
        for k in (0..self.captures.len()).rev() {
            // A line that matched just before the exit makes no difference now.
            let _ = self.on_output(k);
        }
    }

    /// For `--ready log:…`: the new child's `pipes` look for the pattern (an older
    /// child's, still draining, no longer do), and until a line matches, that is why it
    /// is not ready.
    fn watch_output(&mut self, pipes: &mut [Capture], cx: &Context<'_>) {
        let Readiness::Log(pattern) = &self.service.ready else {
            return;
        };
        self.captures.iter_mut().for_each(|c| c.watch(None));
        pipes
            .iter_mut()
            .for_each(|c| c.watch(Some(pattern.clone())));
        let why = if pipes.is_empty() {
            format!("its output is not captured (no log file), so {pattern} cannot be seen")
        } else {
            format!("no line of its output matched {pattern} yet")
        };
        if cx.single {
            // What a launcher that times out prints.
            let _ = cx.outer.status(&format!("not ready: {why}"));
        }
        self.probe_failure = Some(why);
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
        if let (Some((out @ Sink::Log(_), _)), Some(cfg)) = (&self.logs, &self.service.log) {
            capture::note(out, cfg.timestamps, &line);
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

    /// The probe attempts in flight, for the poll set.
    pub fn attempts(&self) -> impl Iterator<Item = (Slot, &Attempt)> {
        Slot::ALL
            .into_iter()
            .filter_map(|s| Some((s, self.attempts[s.index()].as_ref()?)))
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

    /// The earliest armed timer or probe deadline.
    pub fn next_deadline(&self) -> Option<Instant> {
        let probes = self.attempts().map(|(_, a)| a.deadline());
        self.timers.iter().flatten().copied().chain(probes).min()
    }

    /// Moves each probe attempt on if its descriptors were ready (`woken`, by
    /// [`Slot::index`]) or its deadline has passed; the results of those that finished,
    /// as events.
    pub fn advance_probes(&mut self, woken: [bool; Slot::ALL.len()], now: Instant) -> Vec<Event> {
        let mut events = Vec::new();
        for slot in Slot::ALL {
            let Some(attempt) = self.attempts[slot.index()].as_mut() else {
                continue;
            };
            if !woken[slot.index()] && attempt.deadline() > now {
                continue;
            }
            let Some(mut outcome) = attempt.advance(now) else {
                continue;
            };
            // A port that answers may be held by another program (the service's own bind
            // then fails): ready only if the listener is the service's.
            if let (Slot::Startup, ProbeOutcome::Success, Some(addr)) =
                (slot, &outcome, attempt.connected_to())
            {
                let tree = self.pid().map_or(Vec::new(), listener::tree);
                if let Err(why) = listener::check(addr, &tree) {
                    outcome = ProbeOutcome::Failure(why);
                }
            }
            self.attempts[slot.index()] = None;
            events.push(match (slot, outcome) {
                (Slot::Startup, ProbeOutcome::Success) => {
                    self.probe_failure = None;
                    Event::ProbeSucceeded
                }
                (Slot::Startup, ProbeOutcome::Failure(why)) => {
                    self.probe_failure = Some(why.clone());
                    Event::ProbeFailed(why)
                }
                (Slot::Check(c), ProbeOutcome::Success) => Event::CheckPassed(c),
                (Slot::Check(c), ProbeOutcome::Failure(why)) => Event::CheckFailed(c, why),
            });
        }
        events
    }

    /// The events of timers that are due at `now` (and disarms them).
    pub fn due_timers(&mut self, now: Instant) -> Vec<Event> {
        let mut due = Vec::new();
        for (i, t) in self.timers.iter_mut().enumerate() {
            if t.is_some_and(|at| at <= now) {
                *t = None;
                due.push(Timer::ALL[i].event());
            }
        }
        due
    }

    /// Feeds one event to the machine, reports what it decided, carries out its actions.
    pub fn handle(&mut self, event: Event, cx: &Context<'_>) -> Result<Outcome> {
        let before = self.machine.state();
        let exit = match &event {
            Event::ChildExited(e) | Event::SpawnFailed(e) | Event::OomKilled(e) => Some(*e),
            _ => None,
        };
        let actions = self.machine.step(event, Instant::now());
        if let Some(exit) = exit {
            self.report_exit(before, exit, cx);
        }
        self.execute(actions, cx)
    }

    /// Carries out `actions` in order.
    pub fn execute(&mut self, actions: Vec<Action>, cx: &Context<'_>) -> Result<Outcome> {
        let mut out = Outcome::default();
        let mut queue = VecDeque::from(actions);
        while let Some(action) = queue.pop_front() {
            match action {
                Action::Spawn => {
                    let event = match self.spawn(cx) {
                        Ok(()) => Event::Spawned,
                        Err(exit) => {
                            // Not the OOM killer's, whatever the last exit was.
                            self.oom = false;
                            Event::SpawnFailed(exit)
                        }
                    };
                    let before = self.machine.state();
                    let failed = matches!(event, Event::SpawnFailed(_));
                    let next = self.machine.step(event.clone(), Instant::now());
                    if let (true, Event::SpawnFailed(exit)) = (failed, event) {
                        self.report_exit(before, exit, cx);
                    }
                    queue.extend(next);
                }
                Action::SignalMain(sig) => {
                    if let Some(m) = &self.told.main_pid {
                        let _ = m.signal(sig);
                    } else if let Some(c) = &self.child {
                        let _ = c.pidfd.signal(sig);
                    }
                }
                Action::SignalGroup(sig) => self.live_child()?.signal_group(sig)?,
                Action::KillGroup => {
                    self.live_child()?.signal_group(Signal::SIGKILL)?;
                    if let Some(Some(cg)) = &self.cgroup {
                        cg.kill()?;
                    }
                }
                // A restart delay of zero: start now, not after another turn of the loop
                // (and one status-file write less on the way).
                Action::ArmTimer(Timer::Backoff, at) if at <= Instant::now() => {
                    queue.extend(self.machine.step(Event::BackoffElapsed, Instant::now()));
                }
                Action::ArmTimer(timer, at) => self.timers[timer as usize] = Some(at),
                Action::CancelTimers => self.timers = [None; Timer::ALL.len()],
                Action::StartProbe => {
                    if let Readiness::Probe(p) = &self.service.ready {
                        let s = self.service.probe;
                        let privileges = self.service.privileges.as_ref();
                        self.attempts[Slot::Startup.index()] = Some(p.start_as(
                            s.timeout,
                            &self.service.dir,
                            privileges,
                            Instant::now(),
                        ));
                    }
                }
                Action::StartCheck(check) => {
                    if let Some(c) = self.service.health.check(check) {
                        let attempt = c.probe.start_as(
                            c.schedule.timeout,
                            &self.service.dir,
                            self.service.privileges.as_ref(),
                            Instant::now(),
                        );
                        self.attempts[Slot::Check(check).index()] = Some(attempt);
                    }
                }
                Action::MeasureMemory => {
                    let spare: Vec<i32> = self.sentinel.into_iter().collect();
                    let bytes = super::containment::tree_memory(
                        self.cgroup(),
                        self.subreaper.then_some(spare.as_slice()),
                        self.pid(),
                    );
                    queue.extend(
                        self.machine
                            .step(Event::MemoryMeasured(bytes), Instant::now()),
                    );
                }
                Action::BecameReady => out.ready = true,
                Action::NotifyStopping => {
                    if cx.single {
                        let _ = cx
                            .outer
                            .notify(&[daemonic::systemd::notify::State::Stopping]);
                    }
                }
                Action::Report(text) => self.note(&text),
                Action::RunGiveUpHook { last_exit, reason } => self.give_up(last_exit, &reason),
                Action::Finish(exit) => out.finished = Some(exit),
            }
        }
        // Dropping an exec attempt kills its process group.
        if self.machine.state() != State::Starting {
            self.attempts[Slot::Startup.index()] = None;
        }
        if self.machine.state() != State::Ready {
            for check in Check::ALL {
                self.attempts[Slot::Check(check).index()] = None;
            }
        }
        // The group stays from one start to the next, and goes with the service.
        if self.machine.state().is_final()
            && let Some(cg) = self.cgroup()
        {
            cg.remove();
        }
        if self.machine.state() != self.shown {
            self.shown = self.machine.state();
            self.since = SystemTime::now();
        }
        // Stopped, gave up or exited: the last snapshot stays, for `status` to say why
        // (and that the service ran here once: `stop` of a name that never ran is an error).
        self.publish();
        Ok(out)
    }

    fn live_child(&self) -> Result<&Spawned> {
        self.child
            .as_ref()
            .context("supervisor bug: no child to signal")
    }

    /// Starts a child; on failure reports why (stderr, and the launcher of a single
    /// service's first start) and returns the status a shell would give (127, 126).
    fn spawn(&mut self, cx: &Context<'_>) -> Result<(), Exit> {
        self.spawned += 1;
        if self.log_start.is_none()
            && let Some(l) = &self.service.log
        {
            self.log_start = Some(std::fs::metadata(&l.path).map_or(0, |m| m.len()));
        }
        self.told = Default::default();
        let mut cmd = Command::new(&self.service.program);
        strip_internal(&mut cmd);
        // The configured variables first: what daemonic sets for the protocol wins.
        cmd.envs(self.service.env.iter().map(|(k, v)| (k, v)));
        cmd.args(&self.service.args).current_dir(&self.service.dir);
        let chrooted = (self.service.privileges.as_ref()).is_some_and(|p| p.chroot_dir().is_some());
        match cx.notify.for_child(chrooted) {
            Ok(socket) => {
                cmd.env("NOTIFY_SOCKET", socket);
            }
            Err(e) => self.note(&format!("no notify socket for this child: {e:#}")),
        }
        if let Some(s) = cx.sentinel {
            cmd.env(s.var(), s.value(self.spawned));
        }
        if let Some(w) = self.machine.config().watchdog {
            cmd.env("WATCHDOG_USEC", w.as_micros().to_string());
        }
        let mut pipes = Vec::new();
        if let Some((out, err)) = &self.logs {
            let stamps = self.service.log.as_ref().is_some_and(|c| c.timestamps);
            let made =
                Capture::pipe(out, stamps).and_then(|o| Ok((o, Capture::pipe(err, stamps)?)));
            match made {
                Ok(((c_out, w_out), (c_err, w_err))) => {
                    // On the console (run -f) the child keeps the terminal's stdin.
                    if matches!(out, Sink::Log(_)) {
                        cmd.stdin(Stdio::null());
                    }
                    cmd.stdout(Stdio::from(w_out)).stderr(Stdio::from(w_err));
                    pipes = vec![c_out, c_err];
                }
                Err(e) => {
                    self.note(&format!("cannot capture output: {e}"));
                    self.spawn_failed = true;
                    return Err(Exit::Code(126));
                }
            }
        }
        match self.contain(cx) {
            Ok(Some(procs)) => process::into_cgroup(&mut cmd, procs),
            Ok(None) => {}
            Err(e) => {
                self.note(&format!("{e:#}"));
                if cx.single && self.spawned == 1 {
                    let _ = cx.outer.fail(&format!("{e:#}"), None);
                }
                self.spawn_failed = true;
                return Err(Exit::Code(126));
            }
        }
        let spawned = match &self.service.privileges {
            Some(p) => process::spawn_as(&mut cmd, p),
            None => process::spawn(&mut cmd),
        };
        // The parent's copies of the pipes' write ends go now, or end of file never comes.
        drop(cmd);
        match spawned {
            Ok(c) => {
                if let (Some((out, _)), Some(cfg)) = (&self.logs, &self.service.log) {
                    capture::mark_start(out, cfg.timestamps, &self.service.name, c.pidfd.pid());
                }
                self.watch_output(&mut pipes, cx);
                self.captures.extend(pipes);
                self.child = Some(c);
                self.spawn_failed = false;
                Ok(())
            }
            Err(e) => {
                self.note(&e.to_string());
                if cx.single && self.spawned == 1 {
                    let _ = cx.outer.fail(&e.to_string(), e.os_error());
                }
                self.spawn_failed = true;
                Err(Exit::Code(spawn_failure_status(e.os_error())))
            }
        }
    }

    /// The open `cgroup.procs` of the service's group for the child to enter, made
    /// empty first (see [`super::containment`]); `None` without a cgroup. The first call
    /// finds the group; one left populated by a killed supervisor is emptied, and said.
    fn contain(&mut self, cx: &Context<'_>) -> Result<Option<std::os::fd::OwnedFd>> {
        if self.cgroup.is_none() {
            let state_dir = match &self.status_file {
                Some(s) => s.path().parent().unwrap_or(s.path()).to_path_buf(),
                // No state directory: a name of this supervisor's own. The pid alone is
                // not unique (every container's init is pid 1); with its namespace it is.
                None => {
                    let ns = std::fs::read_link("/proc/self/ns/pid").unwrap_or_default();
                    let ns = ns.to_string_lossy();
                    let ns = ns.trim_start_matches("pid:[").trim_end_matches(']');
                    std::path::PathBuf::from(format!("supervisor-{ns}-{}", Pid::this()))
                }
            };
            let found = Cgroup::for_service(&state_dir, &self.service.name)?;
            if let Some(cg) = &found {
                if let Some(s) = cx.sentinel {
                    s.watch_cgroup(cg.dir())?;
                }
                let left = cg.empty(self.service.stop_timeout)?;
                if left > 0 {
                    self.note(&format!(
                        "killed {left} leftover process{} of an earlier run in cgroup {}",
                        if left == 1 { "" } else { "es" },
                        cg.dir().display()
                    ));
                }
            }
            // In a supervisor of many services an orphan's service cannot be told (its
            // group, session and environment may all be its own): the process group and
            // the sentinel's marker are all that hold there.
            if found.is_none() && cx.single {
                process::become_subreaper().context("containment")?;
                self.subreaper = true;
                self.sentinel = cx.sentinel.map(|s| s.pid().as_raw());
            }
            self.cgroup = Some(found);
        }
        match &self.cgroup {
            Some(Some(cg)) => {
                let procs = cg.prepare(&self.service.limits)?;
                self.oom_kills = cg.oom_kills();
                Ok(Some(procs))
            }
            _ => Ok(None),
        }
    }

    /// Whether the supervisor holds this service's tree as a subreaper.
    pub fn subreaper(&self) -> bool {
        self.subreaper
    }

    /// The service's cgroup, if it has one.
    pub fn cgroup(&self) -> Option<&Cgroup> {
        self.cgroup.as_ref().and_then(Option::as_ref)
    }

    /// Kills what is left of the exited child's group (with a cgroup: of the whole tree,
    /// and waits until it is gone), then reaps the child: its exit, as
    /// [`Event::OomKilled`] if the OOM killer killed in the group meanwhile.
    pub fn reap(&mut self) -> Result<Event> {
        let child = self
            .child
            .take()
            .context("supervisor bug: no child to reap")?;
        // The child is a zombie now: its pid still pins its process group id, so this
        // reaches only what is left of that group.
        child.signal_group(Signal::SIGKILL)?;
        let kills = self.cgroup().and_then(Cgroup::oom_kills);
        self.oom = matches!((self.oom_kills, kills), (Some(before), Some(now)) if now > before);
        if let Some(cg) = self.cgroup() {
            // SIGKILL cannot be held off: the wait is for the kernel to tear the
            // processes down, not for them to finish anything.
            if let Err(e) = cg.empty(self.service.stop_timeout) {
                self.note(&format!("{e:#}"));
            }
        }
        if self.subreaper {
            let spare: Vec<i32> = self.sentinel.into_iter().collect();
            super::containment::kill_descendants(&spare, self.service.stop_timeout);
        }
        let exit = loop {
            if let Some(exit) = child.pidfd.reap()? {
                break exit;
            }
        };
        // The killed orphans are this supervisor's children now; nobody else reaps them.
        if self.subreaper
            && let Err(e) = process::reap_orphans()
        {
            self.note(&format!("reap orphans: {e}"));
        }
        Ok(if self.oom {
            Event::OomKilled(exit)
        } else {
            Event::ChildExited(exit)
        })
    }

    /// The last exit as `status` shows it: `killed by the OOM killer: memory-max 256M`
    /// when it was (see [`reap`](Self::reap)).
    pub fn last_exit_text(&self) -> Option<String> {
        self.machine.last_exit().map(|e| self.exit_text(e))
    }

    fn exit_text(&self, exit: Exit) -> String {
        if !self.oom {
            return exit.to_string();
        }
        match self.service.limits.memory_max {
            Some(max) => format!(
                "killed by the OOM killer: memory-max {} ({exit})",
                super::limits::show_size(max)
            ),
            None => format!("killed by the OOM killer ({exit})"),
        }
    }

    /// Tells the user (stderr) and a waiting launcher what became of an exit.
    fn report_exit(&self, before: State, exit: Exit, cx: &Context<'_>) {
        let program = crate::service::default_name(&self.service.program);
        let exit = self.exit_text(exit);
        let state = self.machine.state();
        if cx.single
            && !self.spawn_failed
            && before == State::Starting
            && matches!(state, State::Exited | State::GaveUp)
        {
            // The program's own last words from this start, then the reason: what a
            // launcher waiting in a terminal shows (`start`'s progress).
            if cx.outer.detached() {
                for line in self.log_tail(TAIL_LINES) {
                    let _ = cx.outer.status(&format!("| {line}"));
                }
            }
            let _ = cx
                .outer
                .fail(&format!("{program} {exit} before it was ready"), None);
        }
        match state {
            State::Exited => self.note(&format!(
                "{program} {exit}; not restarted (--restart {})",
                self.service.policy.restart.as_str()
            )),
            State::Stopped => self.note(&format!("{program} {exit}; stopped")),
            _ => {}
        }
        if state == State::Backoff
            && let Some(delay) = self.machine.delays().last()
        {
            let text = format!(
                "{program} {exit}; restart {} in {}ms",
                self.machine.restarts(),
                delay.as_millis()
            );
            // A launcher still waiting shows each attempt (after readiness it is gone).
            if cx.single && cx.outer.detached() && before == State::Starting {
                let _ = cx.outer.status(&text);
            }
            self.note(&text);
        }
    }

    /// Whether `why` differs from the probe failure told last (and remembers it).
    pub fn probe_failure_changed(&mut self, why: &str) -> bool {
        if self.told_probe_failure.as_deref() == Some(why) {
            return false;
        }
        self.told_probe_failure = Some(why.to_string());
        true
    }

    /// The last `n` lines the program wrote since the supervisor first started it (its
    /// captured log from the first spawn on, without the supervisor's own notes), at most
    /// 64 KiB back from the end.
    fn log_tail(&self, n: usize) -> Vec<String> {
        use std::io::{Read, Seek, SeekFrom};
        let (Some(log), Some(start)) = (&self.service.log, self.log_start) else {
            return Vec::new();
        };
        let Ok(mut file) = daemonic::logging::open_log_file(&log.path) else {
            return Vec::new();
        };
        let end = file.metadata().map_or(0, |m| m.len());
        let from = start.max(end.saturating_sub(64 * 1024));
        let mut text = String::new();
        if file.seek(SeekFrom::Start(from)).is_err()
            || file.take(end - from).read_to_string(&mut text).is_err()
        {
            return Vec::new();
        }
        let prefix = format!("daemonic: {}: ", self.service.name);
        let lines: Vec<String> = text
            .lines()
            .filter(|l| !l.contains(&prefix))
            .map(str::to_string)
            .collect();
        lines[lines.len().saturating_sub(n)..].to_vec()
    }

    /// Runs the on-give-up hook once and waits for it (up to the stop timeout).
    fn give_up(&self, last_exit: Exit, reason: &str) {
        let name = &self.service.name;
        self.note(&format!("gave up: {reason}"));
        let Some(hook) = &self.service.on_give_up else {
            return;
        };
        let mut cmd = Command::new("/bin/sh");
        strip_internal(&mut cmd);
        cmd.arg("-c")
            .arg(hook)
            .current_dir(&self.service.dir)
            .env("DAEMONIC_SERVICE", name)
            .env("DAEMONIC_LAST_EXIT", last_exit.shell_status().to_string())
            .env("DAEMONIC_REASON", reason);
        match run_to_end(&mut cmd, self.service.stop_timeout) {
            Ok(exit) if exit.success() => {}
            Ok(exit) => self.note(&format!("on-give-up hook {exit}")),
            Err(e) => self.note(&format!("on-give-up hook: {e:#}")),
        }
    }

    /// Rewrites the status file (if this unit keeps one).
    pub fn publish(&self) {
        let Some(s) = &self.status_file else { return };
        let delays: Vec<Duration> = self.machine.delays().collect();
        let state = self.machine.state();
        s.write(&status_file::Snapshot {
            state,
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
        if let Some(cg) = self.cgroup() {
            cg.remove();
        }
    }
}

/// The shell's status for a command that could not be run: 127 not found, 126 found but
/// not executable (or any other failure to execute).
pub fn spawn_failure_status(errno: Option<i32>) -> i32 {
    match errno {
        Some(libc::ENOENT) => 127,
        _ => 126,
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
