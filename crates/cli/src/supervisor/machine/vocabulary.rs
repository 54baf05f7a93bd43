//! What the machine speaks: the states a user sees, the events it is fed, the actions it
//! returns, its timers, and the configuration it decides by.

use std::time::{Duration, Instant};

use daemonic::Signal;
use daemonic::process::Exit;

use crate::supervisor::health::{self, Check};
use crate::supervisor::policy::Policy;

/// What a user sees in `daemonic status`.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum State {
    /// A child runs and is not ready yet.
    Starting,
    /// The child is ready.
    Ready,
    /// The child was asked to stop (or said it is stopping).
    Stopping,
    /// No child: waiting out the restart delay.
    Backoff,
    /// The start limit was reached.
    GaveUp,
    /// Stopped on request.
    Stopped,
    /// The child exited and the policy does not restart it.
    Exited,
    /// A one-shot service's child exited with a success status: done, not a failure.
    Completed,
}

impl State {
    pub fn as_str(self) -> &'static str {
        match self {
            State::Starting => "starting",
            State::Ready => "ready",
            State::Stopping => "stopping",
            State::Backoff => "backoff",
            State::GaveUp => "gave-up",
            State::Stopped => "stopped",
            State::Exited => "exited",
            State::Completed => "completed",
        }
    }

    /// No child and nothing more will happen.
    pub fn is_final(self) -> bool {
        matches!(
            self,
            State::GaveUp | State::Stopped | State::Exited | State::Completed
        )
    }
}

/// What follows the exit of a child in `Stopping`.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum After {
    /// `Stopped`: the stop was asked for.
    Finish,
    /// A new child at once: a restart was asked for.
    Restart,
    /// The restart policy decides, as for any exit; `failed` makes the exit count as a
    /// failure whatever its status (a missed watchdog).
    Policy { failed: bool },
}

#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Event {
    /// The child asked for by `Action::Spawn` runs.
    Spawned,
    /// `Action::Spawn` failed (program missing, not executable…): counts as a start that
    /// exited at once with this status (127, 126).
    SpawnFailed(Exit),
    /// The child sent `READY=1` (the executor drops it when readiness is not by notify).
    ReadyMessage,
    GraceElapsed,
    /// A readiness probe attempt is due.
    ProbeDue,
    ProbeSucceeded,
    /// A readiness probe attempt failed, with why.
    ProbeFailed(String),
    /// A line of the child's output matched its `--ready log:REGEX` (the executor looks
    /// only while it is `Starting`).
    OutputMatched,
    /// The child was not ready within the start timeout.
    StartTimedOut,
    /// The child sent `WATCHDOG=1`.
    WatchdogPing,
    /// The watchdog timer ran out, or the child sent `WATCHDOG=trigger`.
    WatchdogExpired,
    /// The child sent `STOPPING=1`.
    StoppingMessage,
    /// A health check attempt is due.
    CheckDue(Check),
    CheckPassed(Check),
    /// A health check attempt failed, with why.
    CheckFailed(Check, String),
    /// `ReadyWhen::Forked`: the process daemonic started exited with a success status and
    /// the daemon it left is known; that daemon is the child from now on.
    Forked,
    /// `ReadyWhen::Forked`: the process daemonic started exited (with this status) but no
    /// daemon could be taken over (no pid file, a foreign pid, none left): a failed start
    /// whatever the status (the executor says why).
    ForkFailed(Exit),
    /// The child exited and was reaped.
    ChildExited(Exit),
    /// The child exited and the OOM killer killed in its cgroup meanwhile: a failure for
    /// the restart policy whatever the status.
    OomKilled(Exit),
    /// `--restart-on-memory`: the tree's memory is due to be read.
    MemoryDue,
    /// The tree's memory, read for `--restart-on-memory`.
    MemoryMeasured(u64),
    StopRequested,
    RestartRequested,
    StopTimeout,
    BackoffElapsed,
}

#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Timer {
    Grace,
    Probe,
    StartTimeout,
    StopTimeout,
    Backoff,
    Watchdog,
    Liveness,
    Readiness,
    Memory,
}

impl Timer {
    pub const ALL: [Timer; 9] = [
        Timer::Grace,
        Timer::Probe,
        Timer::StartTimeout,
        Timer::StopTimeout,
        Timer::Backoff,
        Timer::Watchdog,
        Timer::Liveness,
        Timer::Readiness,
        Timer::Memory,
    ];

    /// The event this timer delivers when it expires.
    pub fn event(self) -> Event {
        match self {
            Timer::Grace => Event::GraceElapsed,
            Timer::Probe => Event::ProbeDue,
            Timer::StartTimeout => Event::StartTimedOut,
            Timer::StopTimeout => Event::StopTimeout,
            Timer::Backoff => Event::BackoffElapsed,
            Timer::Watchdog => Event::WatchdogExpired,
            Timer::Liveness => Event::CheckDue(Check::Liveness),
            Timer::Readiness => Event::CheckDue(Check::Readiness),
            Timer::Memory => Event::MemoryDue,
        }
    }

    /// The timer of a health check.
    pub fn of(check: Check) -> Timer {
        match check {
            Check::Liveness => Timer::Liveness,
            Check::Readiness => Timer::Readiness,
        }
    }
}

#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Action {
    Spawn,
    /// Signal the main process only.
    SignalMain(Signal),
    /// Signal the child's whole process group.
    SignalGroup(Signal),
    KillGroup,
    /// Arm a timer (replacing an armed one of the same kind).
    ArmTimer(Timer, Instant),
    /// Cancel every timer.
    CancelTimers,
    /// Start one readiness probe attempt (its own deadline is the executor's).
    StartProbe,
    /// Start one attempt of a health check (its own deadline is the executor's).
    StartCheck(Check),
    /// Read the tree's memory and feed it back as [`Event::MemoryMeasured`].
    MeasureMemory,
    /// The child became ready (first start or after a restart).
    BecameReady,
    NotifyStopping,
    /// Tell the user why the child is being stopped or restarted.
    Report(String),
    RunGiveUpHook {
        last_exit: Exit,
        reason: String,
    },
    /// The service ends; `Exit` is the child's last.
    Finish(Exit),
}

/// How readiness is decided.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum ReadyWhen {
    /// `READY=1`, or this long without an exit, whichever comes first.
    NotifyOrGrace(Duration),
    /// `READY=1` only.
    Notify,
    /// This long without an exit only.
    Grace(Duration),
    /// A probe succeeding; attempts this far apart.
    Probe(Duration),
    /// A one-shot service: its child exiting with a success status (`Completed`).
    Exit,
    /// A line of its output matching (`Event::OutputMatched`).
    Output,
    /// A program that daemonizes itself: its daemon taken over (`Event::Forked`).
    Forked,
}

/// Everything the machine decides by.
#[derive(Debug, Clone)]
pub struct Config {
    pub policy: Policy,
    pub readiness: ReadyWhen,
    pub stop_signal: Signal,
    pub stop_timeout: Duration,
    /// The child must send `WATCHDOG=1` at least this often once ready.
    pub watchdog: Option<Duration>,
    /// A child not ready this long after it was spawned is stopped, and the exit counts
    /// as a failure (`--timeout`).
    pub start_timeout: Option<Duration>,
    /// The first start's timeout is someone else's (`daemonic start`'s launcher waits for
    /// it and kills everything when it runs out): not armed for the first spawn.
    pub first_start_watched: bool,
    /// Liveness and readiness checks once ready.
    pub health: health::Config,
    /// `--restart-on-memory`: restart when the tree's memory is above this many bytes at
    /// two reads in a row, this far apart (reads only in `Ready`).
    pub memory_restart: Option<(u64, Duration)>,
}
