//! The executor: a unit's machine steps, and its actions are carried out.

use std::collections::VecDeque;
use std::time::{Instant, SystemTime};

use anyhow::{Context as _, Result};
use daemonic::Signal;
use daemonic::process::Spawned;

use super::{Context, Outcome, Slot, Unit};
use crate::service::Readiness;
use crate::supervisor::containment::{self};
use crate::supervisor::health::Check;
use crate::supervisor::machine::{Action, Event, State, Timer};

impl Unit {
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
                    if let Some(c) = &self.child {
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
                    let bytes = containment::tree_memory(
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

    pub(super) fn live_child(&self) -> Result<&Spawned> {
        self.child
            .as_ref()
            .context("supervisor bug: no child to signal")
    }
}
