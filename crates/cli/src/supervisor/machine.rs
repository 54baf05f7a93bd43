//! The supervisor's logic as a pure state machine: `(state, event, now) -> actions`.
//!
//! [`Machine::step`] holds every transition in one `match`; it touches no process, clock
//! or file. The executor (`supervisor/mod.rs`) turns real happenings into [`Event`]s and
//! carries out the [`Action`]s. An event a state cannot receive is a bug in the executor
//! and panics naming both.
//!
//! Invariants: a child exists exactly in `Starting`, `Ready` and `Stopping`; at most one
//! timer is armed at a time (grace in `Starting`, the stop timeout in `Stopping`, the
//! restart delay in `Backoff`), so arming one replaces the other; `Stopped`, `Exited` and
//! `GaveUp` are final and are entered with a `Finish`.

use std::collections::VecDeque;
use std::time::{Duration, Instant};

use daemonic::Signal;
use daemonic::process::Exit;

use super::policy::{self, Jitter, Policy};

/// What a user sees in `daemonic status`.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum State {
    /// A child runs and is not ready yet.
    Starting,
    /// The child is ready.
    Ready,
    /// The child was asked to stop.
    Stopping,
    /// No child: waiting out the restart delay.
    Backoff,
    /// The start limit was reached; the supervisor ends.
    GaveUp,
    /// Stopped on request.
    Stopped,
    /// The child exited and the policy does not restart it.
    Exited,
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
        }
    }
}

#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Event {
    /// The child asked for by `Action::Spawn` runs.
    Spawned,
    /// The child sent `READY=1` (the executor drops it under `--ready grace`).
    ReadyMessage,
    GraceElapsed,
    /// The child exited and was reaped.
    ChildExited(Exit),
    StopRequested,
    StopTimeout,
    BackoffElapsed,
}

#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Timer {
    Grace,
    StopTimeout,
    Backoff,
}

impl Timer {
    /// The event this timer delivers when it expires.
    pub fn event(self) -> Event {
        match self {
            Timer::Grace => Event::GraceElapsed,
            Timer::StopTimeout => Event::StopTimeout,
            Timer::Backoff => Event::BackoffElapsed,
        }
    }
}

#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Action {
    Spawn,
    SignalGroup(Signal),
    KillGroup,
    /// Arm the one timer (replacing any armed one).
    ArmTimer(Timer, Instant),
    CancelTimer,
    NotifyReady,
    NotifyStopping,
    RunGiveUpHook {
        last_exit: Exit,
        reason: String,
    },
    /// The supervisor ends; `Exit` is the child's last.
    Finish(Exit),
}

/// Everything the machine decides by.
#[derive(Debug, Clone)]
pub struct Config {
    pub policy: Policy,
    /// Ready after this long without an exit (`None`: only `READY=1` counts).
    pub grace: Option<Duration>,
    pub stop_signal: Signal,
    pub stop_timeout: Duration,
}

/// How many restart delays are kept for `daemonic status` (the most recent).
const DELAYS_KEPT: usize = 32;

pub struct Machine {
    config: Config,
    jitter: Jitter,
    state: State,
    /// When the current (or last) child was spawned.
    started_at: Option<Instant>,
    /// Spawn times within the start-limit window, oldest first.
    starts: VecDeque<Instant>,
    step: u32,
    restarts: u32,
    last_exit: Option<Exit>,
    delays: VecDeque<Duration>,
}

impl Machine {
    /// A machine about to start the first child; the caller carries out [`Action::Spawn`].
    pub fn new(config: Config, jitter: Jitter) -> (Machine, Vec<Action>) {
        let m = Machine {
            config,
            jitter,
            state: State::Starting,
            started_at: None,
            starts: VecDeque::new(),
            step: 0,
            restarts: 0,
            last_exit: None,
            delays: VecDeque::new(),
        };
        (m, vec![Action::Spawn])
    }

    pub fn state(&self) -> State {
        self.state
    }

    pub fn restarts(&self) -> u32 {
        self.restarts
    }

    pub fn last_exit(&self) -> Option<Exit> {
        self.last_exit
    }

    /// The restart delays chosen so far (the most recent [`DELAYS_KEPT`]), oldest first.
    pub fn delays(&self) -> impl Iterator<Item = Duration> + '_ {
        self.delays.iter().copied()
    }

    /// The transition table.
    pub fn step(&mut self, event: Event, now: Instant) -> Vec<Action> {
        use Event as E;
        use State as S;
        let (next, actions) = match (self.state, event) {
            (S::Starting, E::Spawned) => (S::Starting, self.on_spawned(now)),
            (S::Starting, E::ReadyMessage | E::GraceElapsed) => {
                (S::Ready, vec![Action::CancelTimer, Action::NotifyReady])
            }
            (S::Ready, E::ReadyMessage) => (S::Ready, vec![]),
            (S::Starting | S::Ready, E::ChildExited(exit)) => self.on_exit(exit, now),
            (S::Starting | S::Ready, E::StopRequested) => (
                S::Stopping,
                vec![
                    Action::NotifyStopping,
                    Action::SignalGroup(self.config.stop_signal),
                    Action::ArmTimer(Timer::StopTimeout, now + self.config.stop_timeout),
                ],
            ),
            (S::Stopping, E::ReadyMessage) => (S::Stopping, vec![]),
            // Asked twice, or not gone in time: stop waiting.
            (S::Stopping, E::StopRequested | E::StopTimeout) => {
                (S::Stopping, vec![Action::KillGroup])
            }
            (S::Stopping, E::ChildExited(exit)) => {
                self.last_exit = Some(exit);
                (S::Stopped, vec![Action::CancelTimer, Action::Finish(exit)])
            }
            (S::Backoff, E::BackoffElapsed) => (S::Starting, vec![Action::Spawn]),
            (S::Backoff, E::StopRequested) => {
                let exit = self.last_exit.expect("backoff follows an exit");
                (S::Stopped, vec![Action::CancelTimer, Action::Finish(exit)])
            }
            (state, event) => unreachable!("supervisor bug: event {event:?} in state {state:?}"),
        };
        self.state = next;
        actions
    }

    fn on_spawned(&mut self, now: Instant) -> Vec<Action> {
        self.started_at = Some(now);
        self.starts.push_back(now);
        if let Some(limit) = self.config.policy.start_limit {
            while self
                .starts
                .front()
                .is_some_and(|t| now.saturating_duration_since(*t) >= limit.window)
            {
                self.starts.pop_front();
            }
        }
        match self.config.grace {
            Some(grace) => vec![Action::ArmTimer(Timer::Grace, now + grace)],
            None => vec![],
        }
    }

    fn on_exit(&mut self, exit: Exit, now: Instant) -> (State, Vec<Action>) {
        self.last_exit = Some(exit);
        let p = &self.config.policy;
        if !policy::restarts(p.restart, &p.success_codes, exit) {
            return (
                State::Exited,
                vec![Action::CancelTimer, Action::Finish(exit)],
            );
        }
        let uptime = self.started_at.map_or(Duration::ZERO, |t| now - t);
        self.step = p.backoff.next_step(self.step, uptime);
        let delay = p.backoff.delay(self.step, &mut self.jitter);
        if let Some(limit) = p.start_limit
            && !limit.allows(&self.starts, now + delay)
        {
            let reason = format!("start limit reached ({limit}); last: {exit}");
            return (
                State::GaveUp,
                vec![
                    Action::CancelTimer,
                    Action::RunGiveUpHook {
                        last_exit: exit,
                        reason,
                    },
                    Action::Finish(exit),
                ],
            );
        }
        self.step = self.step.saturating_add(1);
        self.restarts += 1;
        if self.delays.len() == DELAYS_KEPT {
            self.delays.pop_front();
        }
        self.delays.push_back(delay);
        (
            State::Backoff,
            vec![Action::ArmTimer(Timer::Backoff, now + delay)],
        )
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::supervisor::policy::{Backoff, Restart, StartLimit};

    fn ms(n: u64) -> Duration {
        Duration::from_millis(n)
    }

    fn config(restart: Restart, start_limit: Option<&str>) -> Config {
        Config {
            policy: Policy {
                restart,
                success_codes: vec![0],
                backoff: Backoff {
                    initial: ms(50),
                    multiplier: 2.0,
                    max: ms(400),
                    jitter: false,
                    reset_after: ms(1000),
                },
                start_limit: start_limit.map(|s| StartLimit::parse(s).unwrap()),
            },
            grace: Some(ms(100)),
            stop_signal: Signal::SIGTERM,
            stop_timeout: ms(500),
        }
    }

    fn machine(c: Config) -> Machine {
        let (m, actions) = Machine::new(c, Jitter::new(0));
        assert_eq!(actions, [Action::Spawn]);
        m
    }

    /// Runs a child that exits with `code` after `run`; returns the actions of the exit.
    fn crash(m: &mut Machine, t: &mut Instant, run: Duration, code: i32) -> Vec<Action> {
        if m.state() == State::Backoff {
            assert_eq!(m.step(Event::BackoffElapsed, *t), [Action::Spawn]);
        }
        m.step(Event::Spawned, *t);
        *t += run;
        m.step(Event::ChildExited(Exit::Code(code)), *t)
    }

    #[test]
    fn start_ready_stop() {
        let mut m = machine(config(Restart::Always, None));
        let t = Instant::now();
        assert_eq!(
            m.step(Event::Spawned, t),
            [Action::ArmTimer(Timer::Grace, t + ms(100))]
        );
        let ready = m.step(Event::GraceElapsed, t + ms(100));
        assert_eq!(ready, [Action::CancelTimer, Action::NotifyReady]);
        assert_eq!(m.state(), State::Ready);
        assert_eq!(
            m.step(Event::ReadyMessage, t),
            [],
            "a late READY=1 is harmless"
        );
        let stop = m.step(Event::StopRequested, t);
        assert_eq!(
            stop,
            [
                Action::NotifyStopping,
                Action::SignalGroup(Signal::SIGTERM),
                Action::ArmTimer(Timer::StopTimeout, t + ms(500)),
            ]
        );
        assert_eq!(m.step(Event::StopTimeout, t), [Action::KillGroup]);
        let killed = Exit::Signal(Signal::SIGKILL, false);
        let end = m.step(Event::ChildExited(killed), t);
        assert_eq!(end, [Action::CancelTimer, Action::Finish(killed)]);
        assert_eq!(m.state(), State::Stopped);
        assert_eq!(m.restarts(), 0, "a requested stop is not restarted");
    }

    #[test]
    fn ready_1_ends_starting_without_grace() {
        let mut m = machine(Config {
            grace: None,
            ..config(Restart::Never, None)
        });
        let t = Instant::now();
        assert_eq!(m.step(Event::Spawned, t), []);
        m.step(Event::ReadyMessage, t);
        assert_eq!(m.state(), State::Ready);
    }

    #[test]
    fn never_finishes_with_the_first_exit() {
        let mut m = machine(config(Restart::Never, None));
        let mut t = Instant::now();
        let end = crash(&mut m, &mut t, ms(0), 3);
        assert_eq!(end, [Action::CancelTimer, Action::Finish(Exit::Code(3))]);
        assert_eq!(m.state(), State::Exited);
    }

    #[test]
    fn on_failure_restarts_with_growing_delays_and_finishes_on_success() {
        let mut m = machine(config(Restart::OnFailure, None));
        let mut t = Instant::now();
        for want in [50, 100, 200, 400, 400] {
            let a = crash(&mut m, &mut t, ms(1), 1);
            assert_eq!(a, [Action::ArmTimer(Timer::Backoff, t + ms(want))]);
            assert_eq!(m.state(), State::Backoff);
            t += ms(want);
        }
        assert_eq!(m.restarts(), 5);
        let d: Vec<_> = m.delays().collect();
        assert_eq!(d, [50, 100, 200, 400, 400].map(ms));
        let end = crash(&mut m, &mut t, ms(1), 0);
        assert_eq!(end, [Action::CancelTimer, Action::Finish(Exit::Code(0))]);
    }

    #[test]
    fn a_stable_run_resets_the_backoff() {
        let mut m = machine(config(Restart::Always, None));
        let mut t = Instant::now();
        for run in [0, 0, 0, 1000, 0] {
            crash(&mut m, &mut t, ms(run), 1);
        }
        let d: Vec<_> = m.delays().collect();
        assert_eq!(d, [50, 100, 200, 50, 100].map(ms));
    }

    #[test]
    fn the_start_limit_gives_up_once_with_the_last_exit() {
        let mut m = machine(config(Restart::Always, Some("3/1m")));
        let mut t = Instant::now();
        crash(&mut m, &mut t, ms(0), 1);
        crash(&mut m, &mut t, ms(0), 1);
        let end = crash(&mut m, &mut t, ms(0), 7);
        assert_eq!(m.state(), State::GaveUp);
        assert_eq!(
            end,
            [
                Action::CancelTimer,
                Action::RunGiveUpHook {
                    last_exit: Exit::Code(7),
                    reason: "start limit reached (3 starts within 60s); last: exited with status 7"
                        .into(),
                },
                Action::Finish(Exit::Code(7)),
            ]
        );
        assert_eq!(m.restarts(), 2);
    }

    #[test]
    fn starts_outside_the_window_do_not_count() {
        let mut m = machine(config(Restart::Always, Some("2/1s")));
        let mut t = Instant::now();
        for _ in 0..5 {
            crash(&mut m, &mut t, ms(600), 1);
            assert_eq!(m.state(), State::Backoff);
        }
    }

    #[test]
    fn stop_during_backoff_finishes_at_once() {
        let mut m = machine(config(Restart::Always, None));
        let mut t = Instant::now();
        crash(&mut m, &mut t, ms(0), 2);
        let end = m.step(Event::StopRequested, t);
        assert_eq!(end, [Action::CancelTimer, Action::Finish(Exit::Code(2))]);
        assert_eq!(m.state(), State::Stopped);
    }

    #[test]
    #[should_panic(expected = "event BackoffElapsed in state Ready")]
    fn an_impossible_event_is_a_bug() {
        let mut m = machine(config(Restart::Always, None));
        let t = Instant::now();
        m.step(Event::Spawned, t);
        m.step(Event::ReadyMessage, t);
        m.step(Event::BackoffElapsed, t);
    }
}
