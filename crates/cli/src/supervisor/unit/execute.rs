//! The executor: a unit's machine steps ([`Unit::step`]), and the actions it returns are
//! carried out ([`Unit::execute`]). The executor never steps the machine itself: what
//! it learns while acting (the child runs, the spawn failed, the tree's memory) comes
//! back as follow-up events in [`Effects`], which the supervisor feeds to the machine in
//! turn ([`Supervisor::deliver`](crate::supervisor::Supervisor)), until there are none.
//! Then [`Unit::settle`] tidies up after the state the unit has come to, once.

use std::time::{Instant, SystemTime};

use anyhow::{Context as _, Result};
use daemonic::Signal;
use daemonic::process::Exit;

use super::{Child, ProbeRole, Shared, Unit};
use crate::service::Readiness;
use crate::supervisor::containment;
use crate::supervisor::health::Check;
use crate::supervisor::machine::{Action, Event, State, Timer};
use crate::supervisor::proc_table::ProcTable;

/// What a unit's actions bring about, for the supervisor.
#[derive(Debug, Default)]
pub struct Effects {
    /// The child became ready.
    pub ready: bool,
    /// The service ended, with the child's last exit.
    pub finished: Option<Exit>,
    /// What the executor learned while acting, for the machine next (in order).
    pub follow_ups: Vec<Event>,
}

impl Unit {
    /// The events of timers that are due at `now` (and disarms them); none while the
    /// exited child's tree is torn down (its timers are of no use any more).
    pub fn due_timers(&mut self, now: Instant) -> Vec<Event> {
        if self.draining() {
            return Vec::new();
        }
        let mut due = Vec::new();
        for (i, t) in self.timers.iter_mut().enumerate() {
            if t.is_some_and(|at| at <= now) {
                *t = None;
                due.push(Timer::ALL[i].event());
            }
        }
        due
    }

    /// Feeds one event to the machine and reports what it decided about an exit; the
    /// actions to carry out.
    pub fn step(&mut self, event: Event, cx: &Shared<'_>) -> Vec<Action> {
        let before = self.machine.state();
        let exit = match &event {
            Event::ChildExited(e)
            | Event::SpawnFailed(e)
            | Event::OomKilled(e)
            | Event::ForkFailed(e) => Some(*e),
            _ => None,
        };
        let actions = self.machine.step(event, Instant::now());
        if let Some(exit) = exit {
            self.report_exit(before, exit, cx);
        }
        actions
    }

    /// Carries out `actions` in order.
    pub fn execute(&mut self, actions: Vec<Action>, cx: &Shared<'_>) -> Result<Effects> {
        let mut out = Effects::default();
        for action in actions {
            match action {
                Action::Spawn => match self.spawn(cx) {
                    Ok(true) => out.follow_ups.push(Event::Spawned),
                    // Made again once the group is empty (`Resume::Spawn`).
                    Ok(false) => {}
                    Err(exit) => {
                        // Not the OOM killer's, whatever the last exit was.
                        self.oom = false;
                        out.follow_ups.push(Event::SpawnFailed(exit))
                    }
                },
                Action::SignalMain(sig) => {
                    if let Some(m) = &self.told.main_pid {
                        let _ = m.signal(sig);
                    } else if let Some(c) = &self.child {
                        let _ = c.pidfd.signal(sig);
                    }
                }
                // While a forking service's daemon is looked for, no process is signalled:
                // what the started process left is torn down, and that is its exit.
                Action::SignalGroup(_) | Action::KillGroup if self.awaiting_daemon() => {
                    out.follow_ups.extend(self.abandon_fork(Instant::now())?)
                }
                Action::SignalGroup(sig) => self.live_child()?.signal_group(sig)?,
                Action::KillGroup => {
                    self.live_child()?.signal_group(Signal::SIGKILL)?;
                    if let Some(cg) = self.cgroup() {
                        cg.kill()?;
                    }
                }
                // A restart delay of zero: start now, not after another turn of the loop
                // (and one status-file write less on the way).
                Action::ArmTimer(Timer::Backoff, at) if at <= Instant::now() => {
                    out.follow_ups.push(Event::BackoffElapsed)
                }
                Action::ArmTimer(timer, at) => self.timers[timer as usize] = Some(at),
                Action::CancelTimers => self.timers = [None; Timer::ALL.len()],
                Action::StartProbe => self.start_probe(),
                Action::StartCheck(check) => self.start_check(check),
                Action::MeasureMemory => {
                    let tree = if self.cgroup().is_some() {
                        Vec::new()
                    } else {
                        self.tree(&ProcTable::read())
                    };
                    let bytes = containment::tree_memory(self.cgroup(), &tree);
                    out.follow_ups.push(Event::MemoryMeasured(bytes));
                }
                Action::BecameReady => out.ready |= self.took_its_sockets(cx)?,
                Action::NotifyStopping => {
                    if cx.single {
                        let _ = cx
                            .outer
                            .notify(&[daemonic::systemd::notify::State::Stopping]);
                    }
                }
                Action::Report(text) => self.note(&text),
                Action::RunGiveUpHook { last_exit, reason } => {
                    self.give_up(last_exit, &reason, Instant::now())
                }
                Action::Finish(exit) => out.finished = Some(exit),
            }
        }
        Ok(out)
    }

    /// After the machine has taken every follow-up: drops the attempts the state it came
    /// to has no use for, removes the group of a service that ended, publishes the state.
    pub fn settle(&mut self) {
        // Dropping an exec attempt kills its process group.
        if self.machine.state() != State::Starting {
            self.attempts[ProbeRole::Startup.index()] = None;
        }
        if self.machine.state() != State::Ready {
            for check in Check::ALL {
                self.attempts[ProbeRole::Check(check).index()] = None;
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
    }

    fn start_probe(&mut self) {
        if let Readiness::Probe(p) = &self.service.ready {
            let s = self.service.probe;
            let privileges = self.service.privileges.as_deref();
            self.attempts[ProbeRole::Startup.index()] = Some(Box::new(p.start_as(
                s.timeout,
                &self.service.dir,
                privileges,
                Instant::now(),
            )));
        }
    }

    fn start_check(&mut self, check: Check) {
        if let Some(c) = self.service.health.check(check) {
            let attempt = c.probe.start_as(
                c.schedule.timeout,
                &self.service.dir,
                self.service.privileges.as_deref(),
                Instant::now(),
            );
            self.attempts[ProbeRole::Check(check).index()] = Some(Box::new(attempt));
        }
    }

    pub(super) fn live_child(&self) -> Result<&Child> {
        self.child
            .as_ref()
            .context("supervisor bug: no child to signal")
    }
}
