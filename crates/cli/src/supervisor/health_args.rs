//! The health-check flags of `run`/`start` (`--liveness`, `--readiness`, …) and what
//! they resolve to: [`Health`], a field of [`Service`](crate::service::Service).
//!
//! The policy (thresholds, grace, what a failure leads to) is in [`super::health`]; the
//! probe syntax in [`Probe::parse`].

use std::time::Duration;

use clap::Args;

use super::health::{self, Check, Rule};
use super::probe::{Probe, Schedule};

const HEADING: &str = "Health checks";

/// Ongoing checks of a ready service (see `docs/supervisor.md`, "Health checks").
#[derive(Args, Debug, Clone)]
pub struct HealthArgs {
    /// Liveness check once the service is ready: a probe (tcp:[HOST:]PORT,
    /// http://HOST[:PORT][/PATH][#200-399] or exec:COMMAND, as for --ready) run every
    /// --liveness-interval; --liveness-failures failures in a row restart the child (its
    /// stop signal, then SIGKILL after --stop-timeout), which counts as a failure for
    /// --restart [default: none].
    #[arg(long, value_parser = Probe::parse, value_name = "PROBE", help_heading = HEADING)]
    pub liveness: Option<Probe>,
    /// Time between the end of one liveness check and the start of the next.
    #[arg(long, value_parser = parse_positive, default_value = "10s", value_name = "DURATION", help_heading = HEADING)]
    pub liveness_interval: Duration,
    /// How long one liveness check may take before it counts as failed (an exec probe's
    /// process group is then killed).
    #[arg(long, value_parser = parse_positive, default_value = "1s", value_name = "DURATION", help_heading = HEADING)]
    pub liveness_timeout: Duration,
    /// Liveness checks that must fail in a row before the child is restarted.
    #[arg(long, value_parser = parse_count, default_value = "3", value_name = "N", help_heading = HEADING)]
    pub liveness_failures: u32,
    /// How long after the child became ready the first liveness check runs (a warming-up
    /// program is not restarted for being slow).
    #[arg(long, value_parser = crate::duration::parse, default_value = "0s", value_name = "DURATION", help_heading = HEADING)]
    pub health_grace: Duration,
    /// Readiness check once the service is ready: a probe (as --liveness) run every
    /// --readiness-interval; its verdict is shown by status and list (healthy, unhealthy:
    /// why) and tells dependents whether the service serves. It never restarts anything
    /// [default: none].
    #[arg(long, value_parser = Probe::parse, value_name = "PROBE", help_heading = HEADING)]
    pub readiness: Option<Probe>,
    /// Time between the end of one readiness check and the start of the next.
    #[arg(long, value_parser = parse_positive, default_value = "10s", value_name = "DURATION", help_heading = HEADING)]
    pub readiness_interval: Duration,
    /// How long one readiness check may take before it counts as failed.
    #[arg(long, value_parser = parse_positive, default_value = "1s", value_name = "DURATION", help_heading = HEADING)]
    pub readiness_timeout: Duration,
    /// Readiness checks that must fail in a row before the service counts as unhealthy.
    #[arg(long, value_parser = parse_count, default_value = "3", value_name = "N", help_heading = HEADING)]
    pub readiness_failures: u32,
    /// Readiness checks that must pass in a row before the service counts as healthy
    /// (after it became ready, and after being unhealthy).
    #[arg(long, value_parser = parse_count, default_value = "1", value_name = "N", help_heading = HEADING)]
    pub readiness_successes: u32,
}

/// The health checks of a service, resolved from [`HealthArgs`].
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct Health {
    pub liveness: Option<CheckSpec>,
    pub readiness: Option<CheckSpec>,
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
        let spec = |probe: Probe, interval, timeout, failures, successes| CheckSpec {
            probe,
            schedule: Schedule { interval, timeout },
            rule: Rule {
                interval,
                failures,
                successes,
            },
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

impl Health {
    pub fn check(&self, check: Check) -> Option<&CheckSpec> {
        match check {
            Check::Liveness => self.liveness.as_ref(),
            Check::Readiness => self.readiness.as_ref(),
        }
    }

    /// The state machine's part: intervals, thresholds, grace.
    pub fn config(&self) -> health::Config {
        health::Config {
            liveness: self.liveness.as_ref().map(|c| c.rule),
            readiness: self.readiness.as_ref().map(|c| c.rule),
            grace: self.grace,
        }
    }
}

/// A duration greater than zero (a zero interval would probe without pause).
fn parse_positive(text: &str) -> Result<Duration, String> {
    crate::duration::parse_positive(text)
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

#[cfg(test)]
mod tests {
    use super::*;
    use clap::Parser;

    #[derive(Parser)]
    struct Cli {
        #[command(flatten)]
        health: HealthArgs,
    }

    fn parse(args: &[&str]) -> Result<Health, String> {
        let argv = std::iter::once("x").chain(args.iter().copied());
        Cli::try_parse_from(argv)
            .map(|c| c.health.into())
            .map_err(|e| e.to_string())
    }

    #[test]
    fn no_flags_no_checks() {
        assert_eq!(parse(&[]).unwrap(), Health::default());
    }

    #[test]
    fn flags_resolve_to_checks_with_their_defaults() {
        let h = parse(&[
            "--liveness",
            "tcp:6379",
            "--readiness",
            "http://127.0.0.1:8080/health#200",
            "--readiness-successes",
            "2",
            "--health-grace",
            "30s",
        ])
        .unwrap();
        let live = h.liveness.as_ref().unwrap();
        assert_eq!(live.probe.to_string(), "tcp:127.0.0.1:6379");
        assert_eq!(live.schedule.interval, Duration::from_secs(10));
        assert_eq!(live.schedule.timeout, Duration::from_secs(1));
        assert_eq!((live.rule.failures, live.rule.successes), (3, 1));
        let ready = h.readiness.as_ref().unwrap();
        assert_eq!((ready.rule.failures, ready.rule.successes), (3, 2));
        assert_eq!(h.config().grace, Duration::from_secs(30));
    }

    #[test]
    fn bad_values_are_named_with_the_accepted_forms() {
        let e = parse(&["--liveness", "tcp:"]).unwrap_err();
        assert!(e.contains("invalid probe \"tcp:\": missing port"), "{e}");
        let e = parse(&["--liveness-failures", "0"]).unwrap_err();
        assert!(
            e.contains("invalid count \"0\" (expected a whole number >= 1"),
            "{e}"
        );
        let e = parse(&["--readiness-interval", "0s"]).unwrap_err();
        assert!(e.contains("expected more than 0"), "{e}");
        let e = parse(&["--liveness-timeout", "soon"]).unwrap_err();
        assert!(e.contains("invalid duration \"soon\""), "{e}");
    }
}
