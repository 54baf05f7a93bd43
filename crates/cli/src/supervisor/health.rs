//! Health checks of a ready service, with Kubernetes' semantics, as pure policy: how
//! consecutive probe results count against thresholds.
//!
//! Three probes may watch a service, each for one question:
//!
//! | probe | flag | runs | on failure |
//! |---|---|---|---|
//! | startup | `--ready` | in `starting`, until it succeeds once | retried; `start` times out |
//! | liveness | `--liveness` | in `ready`, every interval, after the grace period | N in a row: the child is restarted |
//! | readiness | `--readiness` | in `ready`, every interval, from the start | N in a row: shown unhealthy, never restarted |
//!
//! This module holds the last two (the startup probe is `machine::ReadyWhen::Probe`). It
//! only counts: the [`machine`](super::machine) asks it what a result means and turns the
//! answer into actions (arm the next check, restart); the executor runs the probes.
//!
//! Rules, as Kubernetes' prober applies them:
//! - A check's verdict changes only after a run of identical results as long as its
//!   threshold: `failures` failures in a row make it failing, `successes` successes in a
//!   row make it passing (liveness: always one success). A result that breaks a run starts
//!   a new one.
//! - A readiness check starts *pending* — not ready — each time the child becomes ready,
//!   and needs its successes to pass. [`Health::readiness_passes`] is what dependents wait
//!   for.
//! - A liveness check that becomes failing means a restart: the machine stops the child
//!   and the exit counts as a failure for the restart policy, like a missed watchdog.
//! - The next attempt of a check starts one interval after the previous one *finished*
//!   (the rule of the startup probe too), so attempts of one check never overlap; the two
//!   checks are independent and may run at the same time.
//! - The grace period delays the first liveness check (Kubernetes' `initialDelaySeconds`):
//!   a program that is ready but still warming up is not killed for it.

use std::time::Duration;

pub use crate::service::health::Rule;
use crate::service::health::{CheckSpec, Health as Checks};

impl Checks {
    pub fn check(&self, check: Check) -> Option<&CheckSpec> {
        match check {
            Check::Liveness => self.liveness.as_deref(),
            Check::Readiness => self.readiness.as_deref(),
        }
    }

    /// The state machine's part: intervals, thresholds, grace.
    pub fn config(&self) -> Config {
        Config {
            liveness: self.liveness.as_ref().map(|c| c.rule),
            readiness: self.readiness.as_ref().map(|c| c.rule),
            grace: self.grace,
        }
    }
}

/// One of the two ongoing checks.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Check {
    /// Failing means the child is restarted.
    Liveness,
    /// Failing means the service is shown unhealthy and is not ready for its dependents.
    Readiness,
}

impl Check {
    pub const ALL: [Check; 2] = [Check::Liveness, Check::Readiness];

    pub fn as_str(self) -> &'static str {
        match self {
            Check::Liveness => "liveness",
            Check::Readiness => "readiness",
        }
    }
}

/// The checks of one service.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Default)]
pub struct Config {
    pub liveness: Option<Rule>,
    pub readiness: Option<Rule>,
    /// How long after the child became ready the first liveness check runs.
    pub grace: Duration,
}

impl Config {
    pub fn rule(&self, check: Check) -> Option<Rule> {
        match check {
            Check::Liveness => self.liveness,
            Check::Readiness => self.readiness,
        }
    }
}

/// Where a check stands.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Verdict {
    /// Not enough results yet (counts as not ready).
    Pending,
    Passing,
    Failing,
}

/// A verdict that a result changed.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Change {
    Passing,
    /// With the last failure's reason.
    Failing(String),
}

/// One check's results so far (since the child became ready).
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Tally {
    pub verdict: Verdict,
    /// The current run: consecutive successes, or consecutive failures (one is 0).
    pub successes: u32,
    pub failures: u32,
    /// Why the last failed attempt failed.
    pub last_failure: Option<String>,
}

impl Tally {
    fn new() -> Tally {
        Tally {
            verdict: Verdict::Pending,
            successes: 0,
            failures: 0,
            last_failure: None,
        }
    }

    /// Counts one result; the new verdict if it changed.
    pub fn record(&mut self, rule: Rule, result: Result<(), String>) -> Option<Change> {
        match result {
            Ok(()) => {
                self.failures = 0;
                self.successes = self.successes.saturating_add(1);
                (self.verdict != Verdict::Passing && self.successes >= rule.successes).then(|| {
                    self.verdict = Verdict::Passing;
                    Change::Passing
                })
            }
            Err(why) => {
                self.successes = 0;
                self.failures = self.failures.saturating_add(1);
                self.last_failure = Some(why.clone());
                (self.verdict != Verdict::Failing && self.failures >= rule.failures).then(|| {
                    self.verdict = Verdict::Failing;
                    Change::Failing(why)
                })
            }
        }
    }
}

/// The tallies of a ready child's checks.
#[derive(Debug, Clone, PartialEq, Eq, Default)]
pub struct Health {
    liveness: Option<Tally>,
    readiness: Option<Tally>,
}

impl Health {
    /// Fresh tallies (everything pending) for the checks `config` has.
    pub fn new(config: &Config) -> Health {
        Health {
            liveness: config.liveness.map(|_| Tally::new()),
            readiness: config.readiness.map(|_| Tally::new()),
        }
    }

    pub fn tally(&self, check: Check) -> Option<&Tally> {
        match check {
            Check::Liveness => self.liveness.as_ref(),
            Check::Readiness => self.readiness.as_ref(),
        }
    }

    /// Counts a result of `check`; the new verdict if it changed. A check that is not
    /// configured is a bug in the caller.
    pub fn record(
        &mut self,
        config: &Config,
        check: Check,
        result: Result<(), String>,
    ) -> Option<Change> {
        let (tally, rule) = match check {
            Check::Liveness => (self.liveness.as_mut(), config.liveness),
            Check::Readiness => (self.readiness.as_mut(), config.readiness),
        };
        let (Some(tally), Some(rule)) = (tally, rule) else {
            unreachable!(
                "supervisor bug: a {} result without the check",
                check.as_str()
            )
        };
        tally.record(rule, result)
    }

    /// The readiness check passes, or there is none.
    pub fn readiness_passes(&self) -> bool {
        self.readiness
            .as_ref()
            .is_none_or(|t| t.verdict == Verdict::Passing)
    }

    /// What `status` shows, or `None` without checks: a word — `checking` (readiness has
    /// no verdict yet), `healthy` or `unhealthy` (the readiness verdict; liveness only
    /// ever passes, failing is a restart) — then the failures in a row, if any:
    ///
    /// ```text
    /// healthy
    /// unhealthy: readiness failed 4 times: HTTP 503 from http://127.0.0.1:8080/ (expected 200-399)
    /// healthy; liveness failed once (restart at 3): connect 127.0.0.1:6379: Connection refused
    /// ```
    pub fn summary(&self, config: &Config) -> Option<String> {
        if self.liveness.is_none() && self.readiness.is_none() {
            return None;
        }
        let word = match self.readiness.as_ref().map(|t| t.verdict) {
            Some(Verdict::Pending) => "checking",
            Some(Verdict::Failing) => "unhealthy",
            Some(Verdict::Passing) | None => "healthy",
        };
        let mut details = Vec::new();
        for check in [Check::Readiness, Check::Liveness] {
            let (Some(t), Some(rule)) = (self.tally(check), config.rule(check)) else {
                continue;
            };
            let why = t.last_failure.as_deref().unwrap_or_default();
            if t.failures > 0 {
                let limit = match check {
                    Check::Liveness => format!(" (restart at {})", rule.failures),
                    Check::Readiness => String::new(),
                };
                details.push(format!(
                    "{} failed {}{limit}: {why}",
                    check.as_str(),
                    times(t.failures)
                ));
            } else if t.verdict == Verdict::Failing {
                // Recovering: some successes, not enough yet.
                details.push(format!(
                    "{} passed {} of {} needed; last failure: {why}",
                    check.as_str(),
                    t.successes,
                    rule.successes
                ));
            }
        }
        Some(match (word, details.is_empty()) {
            (w, true) => w.to_string(),
            ("healthy", false) => format!("healthy; {}", details.join("; ")),
            (w, false) => format!("{w}: {}", details.join("; ")),
        })
    }
}

/// `once`, `2 times`.
pub fn times(n: u32) -> String {
    match n {
        1 => "once".to_string(),
        n => format!("{n} times"),
    }
}

/// `once`, `3 times in a row`.
pub fn in_a_row(n: u32) -> String {
    match n {
        1 => "once".to_string(),
        n => format!("{n} times in a row"),
    }
}

#[cfg(test)]
pub(super) mod tests;
