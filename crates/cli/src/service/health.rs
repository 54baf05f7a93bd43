//! The health-check options of a service (`--liveness`, `--readiness`, …) and what
//! they resolve to: [`Health`], a field of [`Service`](super::Service).
//!
//! The policy (thresholds, grace, what a failure leads to) is the supervisor's
//! (`supervisor::health`); the probe syntax is [`Probe::parse`].

use std::time::Duration;

use super::options::Systemd::Daemonic;
use super::options::put;
use super::options::{Blank, Opt};
use super::probe::{Probe, Schedule};
use crate::duration;

const HEADING: &str = "Health checks";

/// Ongoing checks of a ready service (see `docs/supervisor.md`, "Health checks").
#[derive(Debug, Clone)]
pub struct HealthArgs {
    pub liveness: Option<Probe>,
    pub liveness_interval: Duration,
    pub liveness_timeout: Duration,
    pub liveness_failures: u32,
    pub health_grace: Duration,
    pub readiness: Option<Probe>,
    pub readiness_interval: Duration,
    pub readiness_timeout: Duration,
    pub readiness_failures: u32,
    pub readiness_successes: u32,
}

impl Blank for HealthArgs {
    fn blank() -> HealthArgs {
        HealthArgs {
            liveness: None,
            liveness_interval: Duration::ZERO,
            liveness_timeout: Duration::ZERO,
            liveness_failures: 0,
            health_grace: Duration::ZERO,
            readiness: None,
            readiness_interval: Duration::ZERO,
            readiness_timeout: Duration::ZERO,
            readiness_failures: 0,
            readiness_successes: 0,
        }
    }
}

/// The table's entries of the health checks.
pub(super) fn options() -> Vec<Opt<HealthArgs>> {
    type O = Opt<HealthArgs>;
    vec![
        O::one("liveness", "PROBE", |a, v| {
            put(&mut a.liveness, Probe::parse(v).map(Some))
        })
        .systemd(Daemonic)
        .heading(HEADING)
        .help(
            "Liveness check once the service is ready: a probe (tcp:[HOST:]PORT, \
                 http://HOST[:PORT][/PATH][#200-399] or exec:COMMAND, as for --ready) run \
                 every --liveness-interval; --liveness-failures failures in a row restart \
                 the child (its stop signal, then SIGKILL after --stop-timeout), which \
                 counts as a failure for --restart [default: none]",
        ),
        O::one("liveness-interval", "DURATION", |a, v| {
            put(&mut a.liveness_interval, duration::parse_positive(v))
        })
        .systemd(Daemonic)
        .default("10s")
        .heading(HEADING)
        .help("Time between the end of one liveness check and the start of the next"),
        O::one("liveness-timeout", "DURATION", |a, v| {
            put(&mut a.liveness_timeout, duration::parse_positive(v))
        })
        .systemd(Daemonic)
        .default("1s")
        .heading(HEADING)
        .help(
            "How long one liveness check may take before it counts as failed (an exec \
                 probe's process group is then killed)",
        ),
        O::one("liveness-failures", "N", |a, v| {
            put(&mut a.liveness_failures, parse_count(v))
        })
        .systemd(Daemonic)
        .default("3")
        .heading(HEADING)
        .help("Liveness checks that must fail in a row before the child is restarted"),
        O::one("health-grace", "DURATION", |a, v| {
            put(&mut a.health_grace, duration::parse(v))
        })
        .systemd(Daemonic)
        .default("0s")
        .heading(HEADING)
        .help(
            "How long after the child became ready the first liveness check runs (a \
                 warming-up program is not restarted for being slow)",
        ),
        O::one("readiness", "PROBE", |a, v| {
            put(&mut a.readiness, Probe::parse(v).map(Some))
        })
        .systemd(Daemonic)
        .heading(HEADING)
        .help(
            "Readiness check once the service is ready: a probe (as --liveness) run \
                 every --readiness-interval; its verdict is shown by status and list \
                 (healthy, unhealthy: why) and tells dependents whether the service serves. \
                 It never restarts anything [default: none]",
        ),
        O::one("readiness-interval", "DURATION", |a, v| {
            put(&mut a.readiness_interval, duration::parse_positive(v))
        })
        .systemd(Daemonic)
        .default("10s")
        .heading(HEADING)
        .help("Time between the end of one readiness check and the start of the next"),
        O::one("readiness-timeout", "DURATION", |a, v| {
            put(&mut a.readiness_timeout, duration::parse_positive(v))
        })
        .systemd(Daemonic)
        .default("1s")
        .heading(HEADING)
        .help("How long one readiness check may take before it counts as failed"),
        O::one("readiness-failures", "N", |a, v| {
            put(&mut a.readiness_failures, parse_count(v))
        })
        .systemd(Daemonic)
        .default("3")
        .heading(HEADING)
        .help(
            "Readiness checks that must fail in a row before the service counts as \
                 unhealthy",
        ),
        O::one("readiness-successes", "N", |a, v| {
            put(&mut a.readiness_successes, parse_count(v))
        })
        .systemd(Daemonic)
        .default("1")
        .heading(HEADING)
        .help(
            "Readiness checks that must pass in a row before the service counts as \
                 healthy (after it became ready, and after being unhealthy)",
        ),
    ]
}

/// How often a check runs and how its results count. (Which probe it runs, and its
/// timeout, are the executor's business.)
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Rule {
    /// From the end of one attempt to the start of the next.
    pub interval: Duration,
    /// Failures in a row that make the check failing.
    pub failures: u32,
    /// Successes in a row that make the check passing (1 for liveness).
    pub successes: u32,
}

/// The health checks of a service, resolved from [`HealthArgs`].
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct Health {
    /// Boxed, as a service's other rarely set parts: the supervisor holds one `Service`
    /// per unit, and a check in place is 144 bytes each of them carries.
    pub liveness: Option<Box<CheckSpec>>,
    pub readiness: Option<Box<CheckSpec>>,
    /// Delay of the first liveness check after the child became ready.
    pub grace: Duration,
}

/// One check: what to probe, how often and for how long, and its thresholds.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct CheckSpec {
    pub probe: Probe,
    pub schedule: Schedule,
    pub rule: Rule,
}

impl From<HealthArgs> for Health {
    fn from(a: HealthArgs) -> Health {
        let spec = |probe: Probe, interval, timeout, failures, successes| {
            Box::new(CheckSpec {
                probe,
                schedule: Schedule { interval, timeout },
                rule: Rule {
                    interval,
                    failures,
                    successes,
                },
            })
        };
        Health {
            liveness: a.liveness.map(|p| {
                spec(
                    p,
                    a.liveness_interval,
                    a.liveness_timeout,
                    a.liveness_failures,
                    1,
                )
            }),
            readiness: a.readiness.map(|p| {
                spec(
                    p,
                    a.readiness_interval,
                    a.readiness_timeout,
                    a.readiness_failures,
                    a.readiness_successes,
                )
            }),
            grace: a.health_grace,
        }
    }
}

/// A threshold: a whole number, at least 1.
fn parse_count(text: &str) -> Result<u32, String> {
    match text.trim().parse::<u32>() {
        Ok(n) if n >= 1 => Ok(n),
        _ => Err(format!(
            "invalid count {text:?} (expected a whole number >= 1, e.g. 3)"
        )),
    }
}
