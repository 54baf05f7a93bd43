//! The supervisor's logic for one service as a pure state machine:
//! `(state, event, now) -> actions`.
//!
//! [`Machine::step`] holds every transition in one `match`; it touches no process, clock
//! or file. The executor (`Unit::execute` in `supervisor/unit/execute.rs`) carries out
//! the [`Action`]s and returns what it learned as follow-up [`Event`]s (`Spawned`,
//! `MemoryMeasured`, …), which the supervisor's loop feeds back here; the loop turns
//! every other real happening into events too. An event a state cannot receive is a bug
//! in the executor and panics naming both. The vocabulary — states, events, actions,
//! timers, configuration — is in `machine/vocabulary.rs`.
//!
//! Invariants:
//! - A child exists exactly in `Starting`, `Ready` and `Stopping` (after its exit, while
//!   its tree is torn down, the unit holds back the exit and every event but a stop or
//!   restart request: the machine sees the exit only once the tree is gone). A forking
//!   service (`ReadyWhen::Forked`) is the one exception: in `Starting`, after its started
//!   process has exited with a success status, the unit looks for the daemon it left
//!   (`unit/forking.rs`) and says `Forked` (its child now) or `ForkFailed`; a stop or
//!   start timeout meanwhile tears down what it left, and that is the exit.
//! - Timers are per kind ([`Timer`]); arming one replaces the armed one of the same kind.
//!   Of the lifecycle timers at most one is armed — grace or probe in `Starting`, the stop
//!   timeout in `Stopping`, the restart delay in `Backoff` — besides the start timeout in
//!   `Starting`; the watchdog, the health-check and the memory timers only in `Ready`. Leaving a child-bearing state cancels them all
//!   ([`Action::CancelTimers`]).
//! - Health checks ([`health`]) run only in `Ready`; their tallies start afresh each time
//!   the child becomes ready. A liveness check that fails enough times in a row stops the
//!   child as a missed watchdog does (the exit counts as a failure).
//! - `Stopped`, `Exited`, `GaveUp` and `Completed` are final and are entered with a
//!   `Finish`. `Completed` is a one-shot service's success (its child exited with a
//!   success status): its readiness, reported with `BecameReady`, not a failure.
//! - `--restart-on-memory` ([`Config::memory_restart`]): the memory timer is armed only
//!   when it is set; the executor reads the tree's memory and feeds it back
//!   ([`Event::MemoryMeasured`]); two reads in a row above the size restart the child as
//!   a restart asked for does. An exit after an OOM kill ([`Event::OomKilled`]) counts as
//!   a failure, as a missed watchdog does.
//! - Until a child has been ready once (or a one-shot completed), the restart policy's
//!   restarts are bounded by [`Policy::start_retries`]: one more exit goes to `GaveUp`
//!   (`not ready after N attempts`), so a start that can never succeed ends. Afterwards
//!   only the start limit ends a crash loop.
//! - `Stopping` remembers what comes after the exit ([`After`]): the end (a stop asked
//!   for), an immediate new start (a restart asked for), or the restart policy (the
//!   child stopped on its own with `STOPPING=1`, missed its watchdog, or failed its
//!   liveness check).

use std::collections::VecDeque;
use std::time::{Duration, Instant};

use daemonic::Signal;
use daemonic::process::Exit;

use super::health::{self, Check, Health};
use super::policy::{self, Jitter, StartLimit};

mod vocabulary;
pub use vocabulary::{Action, After, Config, Event, ReadyWhen, State, Timer};

/// How many restart delays are kept for `daemonic status` (the most recent).
const DELAYS_KEPT: usize = 32;

pub struct Machine {
    config: Config,
    jitter: Jitter,
    state: State,
    after: After,
    /// When the current (or last) child was spawned.
    started_at: Option<Instant>,
    /// The spawn times a start limit can still count, oldest first (bounded: see
    /// [`StartLimit::keep`]).
    starts: VecDeque<Instant>,
    step: u32,
    restarts: u32,
    last_exit: Option<Exit>,
    delays: VecDeque<Duration>,
    /// The health checks' results since the child became ready.
    health: Health,
    /// Reads in a row above `--restart-on-memory`.
    memory_over: u32,
    /// Whether a child has been ready (or a one-shot completed) since the machine began:
    /// until then, restarts are bounded by [`Policy::start_retries`].
    ever_ready: bool,
    /// Restarts of children that exited before the service was first ready.
    early_retries: u32,
}

impl Machine {
    /// A machine about to start the first child; the caller carries out [`Action::Spawn`].
    pub fn new(config: Config, jitter: Jitter) -> (Machine, Vec<Action>) {
        let m = Machine {
            config,
            jitter,
            state: State::Starting,
            after: After::Finish,
            started_at: None,
            starts: VecDeque::new(),
            step: 0,
            restarts: 0,
            last_exit: None,
            delays: VecDeque::new(),
            health: Health::default(),
            memory_over: 0,
            ever_ready: false,
            early_retries: 0,
        };
        (m, vec![Action::Spawn])
    }

    pub fn state(&self) -> State {
        self.state
    }

    /// How many start times are kept for the start limit (bounded; tests).
    #[cfg(test)]
    pub fn starts_kept(&self) -> usize {
        self.starts.len()
    }

    pub fn restarts(&self) -> u32 {
        self.restarts
    }

    /// Before the service was first ready: the attempt that comes next (2 for the first
    /// restart) and how many `--start-retries` allow in all; `None` once it was ready.
    pub fn attempt(&self) -> Option<(u32, u32)> {
        let all = self.config.policy.start_retries.saturating_add(1);
        (!self.ever_ready).then(|| (self.early_retries.saturating_add(1), all))
    }

    pub fn last_exit(&self) -> Option<Exit> {
        self.last_exit
    }

    pub fn config(&self) -> &Config {
        &self.config
    }

    /// The health checks' results since the child became ready (meaningful in `Ready`).
    pub fn health(&self) -> &Health {
        &self.health
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
            (S::Starting, E::SpawnFailed(exit)) => {
                self.on_spawned(now);
                self.on_exit(exit, false, now)
            }
            // A one-shot is ready when it has completed, whatever it says before.
            (S::Starting, E::ReadyMessage) if self.config.readiness == ReadyWhen::Exit => {
                (S::Starting, vec![])
            }
            (S::Starting, E::ChildExited(exit))
                if self.config.readiness == ReadyWhen::Exit
                    && policy::is_success(&self.config.policy.success_codes, exit) =>
            {
                self.last_exit = Some(exit);
                self.ever_ready = true;
                (
                    S::Completed,
                    vec![
                        Action::CancelTimers,
                        Action::BecameReady,
                        Action::Finish(exit),
                    ],
                )
            }
            (
                S::Starting,
                E::ReadyMessage | E::GraceElapsed | E::ProbeSucceeded | E::OutputMatched,
            ) => (S::Ready, self.on_ready(now)),
            (S::Starting, E::Forked) if self.config.readiness == ReadyWhen::Forked => {
                (S::Ready, self.on_ready(now))
            }
            (S::Starting, E::ForkFailed(exit)) => self.on_exit(exit, true, now),
            (S::Starting, E::ProbeDue) => (S::Starting, vec![Action::StartProbe]),
            (S::Starting, E::StartTimedOut) => {
                let limit = self.config.start_timeout.unwrap_or_default();
                self.stopping(
                    After::Policy { failed: true },
                    vec![
                        Action::Report(format!(
                            "not ready within {} (--timeout); stopping it",
                            crate::human::span(limit)
                        )),
                        Action::SignalGroup(self.config.stop_signal),
                    ],
                    now,
                )
            }
            // A timer of a start that was ready (or stopping) in the meantime.
            (S::Ready | S::Stopping, E::StartTimedOut) => (self.state, vec![]),
            (S::Starting, E::ProbeFailed(_)) => {
                let ReadyWhen::Probe(interval) = self.config.readiness else {
                    unreachable!("supervisor bug: a probe result without probe readiness")
                };
                (
                    S::Starting,
                    vec![Action::ArmTimer(Timer::Probe, now + interval)],
                )
            }
            (S::Ready, E::ReadyMessage | E::ProbeFailed(_)) => (S::Ready, vec![]),
            (S::Ready, E::CheckDue(check)) => (S::Ready, vec![Action::StartCheck(check)]),
            (S::Ready, E::CheckPassed(check)) => self.on_check(check, Ok(()), now),
            (S::Ready, E::CheckFailed(check, why)) => self.on_check(check, Err(why), now),
            (S::Starting | S::Stopping, E::WatchdogPing) => (self.state, vec![]),
            (S::Ready, E::WatchdogPing) => (S::Ready, self.arm_watchdog(now)),
            (S::Starting | S::Ready, E::WatchdogExpired) => {
                let limit = self.config.watchdog;
                self.stopping(
                    After::Policy { failed: true },
                    vec![
                        Action::Report(match limit {
                            Some(l) => format!(
                                "watchdog timeout (no WATCHDOG=1 within {})",
                                crate::human::span(l)
                            ),
                            None => "watchdog triggered by the service".to_string(),
                        }),
                        // Like systemd's WatchdogSignal: a core dump shows where it hung.
                        Action::SignalMain(Signal::SIGABRT),
                    ],
                    now,
                )
            }
            (S::Starting | S::Ready, E::StoppingMessage) => {
                self.stopping(After::Policy { failed: false }, vec![], now)
            }
            (S::Starting | S::Ready, E::ChildExited(exit)) => self.on_exit(exit, false, now),
            (S::Starting | S::Ready, E::OomKilled(exit)) => self.on_exit(exit, true, now),
            (S::Stopping, E::OomKilled(exit)) if matches!(self.after, After::Policy { .. }) => {
                self.on_exit(exit, true, now)
            }
            // A stop or restart asked for: what was asked for happens.
            (S::Stopping, E::OomKilled(exit)) => return self.step(E::ChildExited(exit), now),
            (S::Ready, E::MemoryDue) => (S::Ready, vec![Action::MeasureMemory]),
            (S::Ready, E::MemoryMeasured(bytes)) => self.on_memory(bytes, now),
            (S::Starting | S::Ready, E::StopRequested) => self.stopping(
                After::Finish,
                vec![
                    Action::NotifyStopping,
                    Action::SignalGroup(self.config.stop_signal),
                ],
                now,
            ),
            (S::Starting | S::Ready, E::RestartRequested) => self.stopping(
                After::Restart,
                vec![Action::SignalGroup(self.config.stop_signal)],
                now,
            ),
            // Late or irrelevant news about a child on its way out.
            (
                S::Stopping,
                E::ReadyMessage
                | E::StoppingMessage
                | E::ProbeSucceeded
                | E::ProbeFailed(_)
                | E::OutputMatched
                | E::CheckPassed(_)
                | E::CheckFailed(..)
                | E::WatchdogExpired,
            ) => (S::Stopping, vec![]),
            (S::Stopping, E::RestartRequested) => {
                if self.after != After::Finish {
                    self.after = After::Restart;
                }
                (S::Stopping, vec![])
            }
            // Stopping on its own, by a restart, or by the watchdog: a stop asked for now
            // is what happens after; asked twice, stop waiting.
            (S::Stopping, E::StopRequested) if self.after != After::Finish => {
                self.after = After::Finish;
                (S::Stopping, vec![Action::NotifyStopping])
            }
            (S::Stopping, E::StopRequested | E::StopTimeout) => {
                (S::Stopping, vec![Action::KillGroup])
            }
            (S::Stopping, E::ChildExited(exit)) => match self.after {
                After::Finish => {
                    self.last_exit = Some(exit);
                    (S::Stopped, vec![Action::CancelTimers, Action::Finish(exit)])
                }
                After::Restart => {
                    self.last_exit = Some(exit);
                    self.step = 0;
                    self.restarts += 1;
                    (S::Starting, vec![Action::CancelTimers, Action::Spawn])
                }
                After::Policy { failed } => self.on_exit(exit, failed, now),
            },
            (S::Backoff, E::BackoffElapsed) => (S::Starting, vec![Action::Spawn]),
            (S::Backoff, E::RestartRequested) => {
                self.step = 0;
                (S::Starting, vec![Action::CancelTimers, Action::Spawn])
            }
            (S::Backoff, E::StopRequested) => {
                let exit = self.last_exit.expect("backoff follows an exit");
                (S::Stopped, vec![Action::CancelTimers, Action::Finish(exit)])
            }
            (state, event) => unreachable!("supervisor bug: event {event:?} in state {state:?}"),
        };
        self.state = next;
        actions
    }

    /// Enters `Stopping` with `first` actions, then the stop timeout.
    fn stopping(
        &mut self,
        after: After,
        mut first: Vec<Action>,
        now: Instant,
    ) -> (State, Vec<Action>) {
        self.after = after;
        let mut actions = vec![Action::CancelTimers];
        actions.append(&mut first);
        actions.push(Action::ArmTimer(
            Timer::StopTimeout,
            now + self.config.stop_timeout,
        ));
        (State::Stopping, actions)
    }

    fn on_spawned(&mut self, now: Instant) -> Vec<Action> {
        let first = self.started_at.is_none();
        self.started_at = Some(now);
        self.starts.push_back(now);
        StartLimit::keep(self.config.policy.start_limit, &mut self.starts, now);
        let mut actions = match self.config.readiness {
            ReadyWhen::NotifyOrGrace(grace) | ReadyWhen::Grace(grace) => {
                vec![Action::ArmTimer(Timer::Grace, now + grace)]
            }
            ReadyWhen::Notify | ReadyWhen::Exit | ReadyWhen::Output | ReadyWhen::Forked => {
                vec![]
            }
            ReadyWhen::Probe(_) => vec![Action::StartProbe],
        };
        if let Some(limit) = self.config.start_timeout
            && !(first && self.config.first_start_watched)
        {
            actions.push(Action::ArmTimer(Timer::StartTimeout, now + limit));
        }
        actions
    }

    fn on_ready(&mut self, now: Instant) -> Vec<Action> {
        self.ever_ready = true;
        let mut actions = vec![Action::CancelTimers, Action::BecameReady];
        actions.extend(self.arm_watchdog(now));
        self.memory_over = 0;
        if let Some((_, interval)) = self.config.memory_restart {
            actions.push(Action::ArmTimer(Timer::Memory, now + interval));
        }
        let checks = self.config.health;
        self.health = Health::new(&checks);
        if checks.readiness.is_some() {
            actions.push(Action::StartCheck(Check::Readiness));
        }
        if checks.liveness.is_some() {
            actions.push(match checks.grace {
                g if g.is_zero() => Action::StartCheck(Check::Liveness),
                g => Action::ArmTimer(Timer::Liveness, now + g),
            });
        }
        actions
    }

    /// Counts a health check's result: the next attempt after its interval, a note when
    /// the readiness verdict changes, a restart when liveness fails.
    fn on_check(
        &mut self,
        check: Check,
        result: Result<(), String>,
        now: Instant,
    ) -> (State, Vec<Action>) {
        let checks = self.config.health;
        let Some(rule) = checks.rule(check) else {
            unreachable!(
                "supervisor bug: a {} result without the check",
                check.as_str()
            )
        };
        let was = self.health.tally(check).map(|t| t.verdict);
        let change = self.health.record(&checks, check, result);
        let mut actions = Vec::new();
        match (check, change) {
            (Check::Liveness, Some(health::Change::Failing(why))) => {
                let times = health::in_a_row(rule.failures);
                let report = format!("liveness failed {times}: {why}");
                return self.stopping(
                    After::Policy { failed: true },
                    vec![
                        Action::Report(report),
                        Action::SignalGroup(self.config.stop_signal),
                    ],
                    now,
                );
            }
            (Check::Readiness, Some(health::Change::Failing(why))) => {
                actions.push(Action::Report(format!(
                    "unhealthy: readiness failed {}: {why}",
                    health::in_a_row(rule.failures)
                )))
            }
            // Passing from the start is what is expected: nothing to say.
            (Check::Readiness, Some(health::Change::Passing))
                if was == Some(health::Verdict::Failing) =>
            {
                actions.push(Action::Report(format!(
                    "healthy again: readiness passed {}",
                    health::in_a_row(rule.successes)
                )))
            }
            (_, Some(health::Change::Passing)) | (_, None) => {}
        }
        actions.push(Action::ArmTimer(Timer::of(check), now + rule.interval));
        (State::Ready, actions)
    }

    /// Counts a read of the tree's memory: two in a row above `--restart-on-memory`
    /// restart the service (whatever `--restart` says, as pm2 does); else the next read.
    fn on_memory(&mut self, bytes: u64, now: Instant) -> (State, Vec<Action>) {
        let Some((limit, interval)) = self.config.memory_restart else {
            unreachable!("supervisor bug: a memory reading without --restart-on-memory")
        };
        self.memory_over = if bytes > limit {
            self.memory_over + 1
        } else {
            0
        };
        if self.memory_over < 2 {
            return (
                State::Ready,
                vec![Action::ArmTimer(Timer::Memory, now + interval)],
            );
        }
        let report = format!(
            "memory {} above --restart-on-memory {} at 2 reads {} apart; restarting",
            super::limits::show_size(bytes),
            super::limits::show_size(limit),
            crate::human::span(interval)
        );
        self.stopping(
            After::Restart,
            vec![
                Action::Report(report),
                Action::SignalGroup(self.config.stop_signal),
            ],
            now,
        )
    }

    fn arm_watchdog(&self, now: Instant) -> Vec<Action> {
        match self.config.watchdog {
            Some(limit) => vec![Action::ArmTimer(Timer::Watchdog, now + limit)],
            None => vec![],
        }
    }

    fn on_exit(&mut self, exit: Exit, failed: bool, now: Instant) -> (State, Vec<Action>) {
        self.last_exit = Some(exit);
        let p = &self.config.policy;
        let restart = match (failed, p.restart) {
            (true, policy::Restart::Never) => false,
            (true, _) => true,
            (false, r) => policy::restarts(r, &p.success_codes, exit),
        };
        if !restart {
            return (
                State::Exited,
                vec![Action::CancelTimers, Action::Finish(exit)],
            );
        }
        let uptime = self.started_at.map_or(Duration::ZERO, |t| now - t);
        // A stable run (it lasted --backoff-reset-after) comes back at once and starts the
        // backoff over; only a crash loop waits.
        let stable = p.backoff.is_stable(uptime);
        self.step = p.backoff.next_step(self.step, uptime);
        let delay = if stable {
            Duration::ZERO
        } else {
            p.backoff.delay(self.step, &mut self.jitter)
        };
        let give_up = if !self.ever_ready && self.early_retries >= p.start_retries {
            let attempts = p.start_retries.saturating_add(1);
            Some(format!(
                "not ready after {attempts} attempts (--start-retries {}); last: {exit}",
                p.start_retries
            ))
        } else {
            p.start_limit
                .filter(|limit| !limit.allows(&self.starts, now + delay))
                .map(|limit| format!("start limit reached ({limit}); last: {exit}"))
        };
        if let Some(reason) = give_up {
            return (
                State::GaveUp,
                vec![
                    Action::CancelTimers,
                    Action::RunGiveUpHook {
                        last_exit: exit,
                        reason,
                    },
                    Action::Finish(exit),
                ],
            );
        }
        if !self.ever_ready {
            self.early_retries += 1;
        }
        if !stable {
            self.step = self.step.saturating_add(1);
        }
        self.restarts += 1;
        if self.delays.len() == DELAYS_KEPT {
            self.delays.pop_front();
        }
        self.delays.push_back(delay);
        (
            State::Backoff,
            vec![
                Action::CancelTimers,
                Action::ArmTimer(Timer::Backoff, now + delay),
            ],
        )
    }
}

#[cfg(test)]
mod health_tests;
#[cfg(test)]
pub(super) mod tests;
