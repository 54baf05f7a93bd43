//! The health policy alone: thresholds and the verdict shown. Through the state machine
//! (the grace period, a liveness restart, a readiness check that never restarts):
//! `machine/health_tests.rs`.

use std::time::Duration;

use super::*;

pub(in crate::supervisor) fn ms(n: u64) -> Duration {
    Duration::from_millis(n)
}

pub(in crate::supervisor) fn rule(failures: u32, successes: u32) -> Rule {
    Rule {
        interval: ms(100),
        failures,
        successes,
    }
}

fn fail(why: &str) -> Result<(), String> {
    Err(why.to_string())
}

#[test]
fn a_verdict_changes_only_after_a_run_as_long_as_its_threshold() {
    let r = rule(3, 2);
    let mut t = Tally::new();
    assert_eq!(t.verdict, Verdict::Pending);
    assert_eq!(t.record(r, Ok(())), None, "one success of two");
    assert_eq!(t.record(r, fail("a")), None, "a failure breaks the run");
    assert_eq!(t.record(r, Ok(())), None);
    assert_eq!(t.record(r, Ok(())), Some(Change::Passing));
    assert_eq!(t.record(r, Ok(())), None, "a change is reported once");
    assert_eq!(t.record(r, fail("a")), None);
    assert_eq!(t.record(r, fail("b")), None);
    assert_eq!(t.record(r, fail("c")), Some(Change::Failing("c".into())));
    assert_eq!(t.record(r, fail("d")), None);
    assert_eq!((t.verdict, t.failures), (Verdict::Failing, 4));
    assert_eq!(t.last_failure.as_deref(), Some("d"));
    assert_eq!(t.record(r, Ok(())), None, "one success of two");
    assert_eq!(t.verdict, Verdict::Failing);
    assert_eq!(t.record(r, Ok(())), Some(Change::Passing));
}

#[test]
fn the_summary_says_the_verdict_and_the_failures_in_a_row() {
    let config = Config {
        liveness: Some(rule(3, 1)),
        readiness: Some(rule(2, 2)),
        grace: ms(0),
    };
    let mut h = Health::new(&config);
    assert_eq!(h.summary(&config).as_deref(), Some("checking"));
    assert!(!h.readiness_passes(), "pending is not ready");
    h.record(&config, Check::Readiness, Ok(()));
    h.record(&config, Check::Readiness, Ok(()));
    assert!(h.readiness_passes());
    assert_eq!(h.summary(&config).as_deref(), Some("healthy"));
    h.record(
        &config,
        Check::Liveness,
        fail("connect 127.0.0.1:1: refused"),
    );
    assert_eq!(
        h.summary(&config).as_deref(),
        Some("healthy; liveness failed once (restart at 3): connect 127.0.0.1:1: refused")
    );
    h.record(&config, Check::Readiness, fail("HTTP 503"));
    h.record(&config, Check::Readiness, fail("HTTP 503"));
    h.record(&config, Check::Readiness, fail("HTTP 500"));
    assert!(!h.readiness_passes());
    assert_eq!(
        h.summary(&config).as_deref(),
        Some(
            "unhealthy: readiness failed 3 times: HTTP 500; \
             liveness failed once (restart at 3): connect 127.0.0.1:1: refused"
        )
    );
    h.record(&config, Check::Liveness, Ok(()));
    h.record(&config, Check::Readiness, Ok(()));
    assert_eq!(
        h.summary(&config).as_deref(),
        Some("unhealthy: readiness passed 1 of 2 needed; last failure: HTTP 500")
    );
    assert_eq!(
        Health::new(&Config::default()).summary(&Config::default()),
        None
    );
    assert!(Health::new(&Config::default()).readiness_passes());
}
