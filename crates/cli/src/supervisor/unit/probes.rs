//! A unit's probe attempts (readiness and health checks) and the output it watches
//! for `--ready log:…`.

use std::time::Instant;

use super::{Context, Unit};
use crate::service::Readiness;
use crate::supervisor::capture::Capture;
use crate::supervisor::health::Check;
use crate::supervisor::machine::{Event, State};
use crate::supervisor::probe::{Attempt, Outcome as ProbeOutcome, listener};

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
    pub(super) fn watch_output(&mut self, pipes: &mut [Capture], cx: &Context<'_>) {
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
    pub fn attempts(&self) -> impl Iterator<Item = (Slot, &Attempt)> {
        Slot::ALL
            .into_iter()
            .filter_map(|s| Some((s, self.attempts[s.index()].as_ref()?)))
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

    /// Whether `why` differs from the probe failure told last (and remembers it).
    pub fn probe_failure_changed(&mut self, why: &str) -> bool {
        if self.told_probe_failure.as_deref() == Some(why) {
            return false;
        }
        self.told_probe_failure = Some(why.to_string());
        true
    }
}
