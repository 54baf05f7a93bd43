//! A unit's probe attempts (readiness and health checks) and the output it watches
//! for `--ready log:…`.

use std::time::Instant;

use super::{Shared, Unit};
use crate::service::Readiness;
use crate::supervisor::capture::Capture;
use crate::supervisor::health::Check;
use crate::supervisor::machine::{Event, State};
use crate::supervisor::probe::{Attempt, Outcome as ProbeOutcome, listener};

/// Which of a unit's probe attempts: the startup probe (`--ready`, in `Starting`) or a
/// health check (in `Ready`). The two checks may be in flight at the same time.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum ProbeRole {
    Startup,
    Check(Check),
}

impl ProbeRole {
    pub const ALL: [ProbeRole; 3] = [
        ProbeRole::Startup,
        ProbeRole::Check(Check::Liveness),
        ProbeRole::Check(Check::Readiness),
    ];

    pub fn index(self) -> usize {
        match self {
            ProbeRole::Startup => 0,
            ProbeRole::Check(Check::Liveness) => 1,
            ProbeRole::Check(Check::Readiness) => 2,
        }
    }
}

impl Unit {
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
    pub(super) fn watch_output(&mut self, pipes: &mut [Capture], cx: &Shared<'_>) {
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

    /// The probe attempts in flight, for the poll set.
    /// None while the exited child's tree is torn down (they are of no use any more,
    /// and are dropped with the exit).
    pub fn attempts(&self) -> impl Iterator<Item = (ProbeRole, &Attempt)> {
        let live = !self.draining();
        ProbeRole::ALL
            .into_iter()
            .filter(move |_| live)
            .filter_map(|s| Some((s, self.attempts[s.index()].as_deref()?)))
    }

    /// Moves each probe attempt on if its descriptors were ready (`woken`, by
    /// [`ProbeRole::index`]) or its deadline has passed; the results of those that finished,
    /// as events.
    pub fn advance_probes(
        &mut self,
        woken: [bool; ProbeRole::ALL.len()],
        now: Instant,
    ) -> Vec<Event> {
        let mut events = Vec::new();
        if self.draining() {
            return events;
        }
        for role in ProbeRole::ALL {
            let Some(attempt) = self.attempts[role.index()].as_deref_mut() else {
                continue;
            };
            if !woken[role.index()] && attempt.deadline() > now {
                continue;
            }
            let Some(mut outcome) = attempt.advance(now) else {
                continue;
            };
            // A port that answers may be held by another program (the service's own bind
            // then fails): ready only if the listener is the service's.
            if let (ProbeRole::Startup, ProbeOutcome::Success, Some(addr)) =
                (role, &outcome, attempt.connected_to())
            {
                let tree = self.pid().map_or(Vec::new(), listener::tree);
                if let Err(why) = listener::check(addr, &tree) {
                    outcome = ProbeOutcome::Failure(why);
                }
            }
            self.attempts[role.index()] = None;
            events.push(match (role, outcome) {
                (ProbeRole::Startup, ProbeOutcome::Success) => {
                    self.probe_failure = None;
                    Event::ProbeSucceeded
                }
                (ProbeRole::Startup, ProbeOutcome::Failure(why)) => {
                    self.probe_failure = Some(why.clone());
                    Event::ProbeFailed(why)
                }
                (ProbeRole::Check(c), ProbeOutcome::Success) => Event::CheckPassed(c),
                (ProbeRole::Check(c), ProbeOutcome::Failure(why)) => Event::CheckFailed(c, why),
            });
        }
        events
    }

    /// Whether `why` differs from the probe failure told last (and remembers it).
    pub fn probe_failure_changed(&mut self, why: &str) -> bool {
        if self.told_probe_failure.as_deref() == Some(why) {
            return false;
        }
        self.told_probe_failure = Some(why.to_string());
        true
    }
}
