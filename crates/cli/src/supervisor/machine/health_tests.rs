//! The health policy through the state machine: the grace period, a liveness restart, a
//! readiness check that never restarts (the policy alone: `health/tests.rs`).

use std::time::{Duration, Instant};

use daemonic::Signal;
use daemonic::process::Exit;

use super::{Action, Config as MachineConfig, Event, Machine, ReadyWhen, State, Timer};
use crate::supervisor::health::tests::{ms, rule};
use crate::supervisor::health::{Check, Config, Verdict};
use crate::supervisor::policy::{Jitter, Restart};

fn machine(health: Config, restart: Restart) -> Machine {
    let config = MachineConfig {
        readiness: ReadyWhen::Notify,
        health,
        ..crate::supervisor::machine::tests::config(restart, None)
    };
    let (m, first) = Machine::new(config, Jitter::new(0));
    assert_eq!(first, [Action::Spawn]);
    m
}

/// Spawns the child and makes it ready at `t`; returns the actions of becoming ready.
fn ready(m: &mut Machine, t: Instant) -> Vec<Action> {
    m.step(Event::Spawned, t);
    let actions = m.step(Event::ReadyMessage, t);
    assert_eq!(m.state(), State::Ready);
    actions
}

fn liveness(failures: u32, grace: Duration) -> Config {
    Config {
        liveness: Some(rule(failures, 1)),
        readiness: None,
        grace,
    }
}

#[test]
fn becoming_ready_starts_readiness_at_once_and_liveness_after_the_grace() {
    let t = Instant::now();
    let mut m = machine(
        Config {
            readiness: Some(rule(1, 1)),
            ..liveness(3, ms(2000))
        },
        Restart::Always,
    );
    assert_eq!(
        ready(&mut m, t),
        [
            Action::CancelTimers,
            Action::BecameReady,
            Action::StartCheck(Check::Readiness),
            Action::ArmTimer(Timer::Liveness, t + ms(2000)),
        ]
    );
    // Without a grace period the first liveness check runs at once.
    let mut m = machine(liveness(3, ms(0)), Restart::Always);
    assert_eq!(
        ready(&mut m, t),
        [
            Action::CancelTimers,
            Action::BecameReady,
            Action::StartCheck(Check::Liveness),
        ]
    );
    assert_eq!(
        m.step(Event::CheckDue(Check::Liveness), t),
        [Action::StartCheck(Check::Liveness)]
    );
}

#[test]
fn each_result_arms_the_next_check_one_interval_after_it() {
    let t = Instant::now();
    let mut m = machine(liveness(3, ms(0)), Restart::Always);
    ready(&mut m, t);
    assert_eq!(
        m.step(Event::CheckPassed(Check::Liveness), t + ms(7)),
        [Action::ArmTimer(Timer::Liveness, t + ms(107))]
    );
    assert_eq!(
        m.step(Event::CheckFailed(Check::Liveness, "x".into()), t + ms(300)),
        [Action::ArmTimer(Timer::Liveness, t + ms(400))]
    );
}

#[test]
fn liveness_failing_n_times_in_a_row_restarts_and_counts_as_a_failure() {
    let t = Instant::now();
    // on-failure: a clean exit after the stop would not be restarted, but this one is.
    let mut m = machine(liveness(3, ms(0)), Restart::OnFailure);
    ready(&mut m, t);
    let refused = || Event::CheckFailed(Check::Liveness, "connect 127.0.0.1:1: refused".into());
    m.step(refused(), t);
    m.step(Event::CheckPassed(Check::Liveness), t);
    m.step(refused(), t);
    m.step(refused(), t);
    assert_eq!(m.state(), State::Ready, "a success broke the first run");
    let stop = m.step(refused(), t);
    assert_eq!(
        stop,
        [
            Action::CancelTimers,
            Action::Report("liveness failed 3 times in a row: connect 127.0.0.1:1: refused".into()),
            Action::SignalGroup(Signal::SIGTERM),
            Action::ArmTimer(Timer::StopTimeout, t + ms(500)),
        ]
    );
    assert_eq!(m.state(), State::Stopping);
    // A result that was in flight is late news now.
    assert_eq!(m.step(Event::CheckPassed(Check::Liveness), t), []);
    let after = m.step(Event::ChildExited(Exit::Code(0)), t);
    assert_eq!(m.state(), State::Backoff);
    assert_eq!(after[1], Action::ArmTimer(Timer::Backoff, t + ms(50)));
    assert_eq!(m.restarts(), 1);
}

#[test]
fn liveness_failing_under_restart_never_ends_the_service() {
    let t = Instant::now();
    let mut m = machine(liveness(1, ms(0)), Restart::Never);
    ready(&mut m, t);
    m.step(Event::CheckFailed(Check::Liveness, "x".into()), t);
    m.step(Event::ChildExited(Exit::Signal(Signal::SIGTERM, false)), t);
    assert_eq!(m.state(), State::Exited);
}

#[test]
fn readiness_failing_reports_but_never_restarts() {
    let t = Instant::now();
    let mut m = machine(
        Config {
            readiness: Some(rule(2, 1)),
            ..Config::default()
        },
        Restart::Always,
    );
    ready(&mut m, t);
    m.step(Event::CheckPassed(Check::Readiness), t);
    assert!(m.health().readiness_passes());
    m.step(Event::CheckFailed(Check::Readiness, "HTTP 503".into()), t);
    assert!(m.health().readiness_passes(), "one failure of two");
    let failing = m.step(Event::CheckFailed(Check::Readiness, "HTTP 503".into()), t);
    assert_eq!(
        failing,
        [
            Action::Report("unhealthy: readiness failed 2 times in a row: HTTP 503".into()),
            Action::ArmTimer(Timer::Readiness, t + ms(100)),
        ]
    );
    for _ in 0..10 {
        let more = m.step(Event::CheckFailed(Check::Readiness, "HTTP 503".into()), t);
        assert_eq!(more, [Action::ArmTimer(Timer::Readiness, t + ms(100))]);
    }
    assert_eq!((m.state(), m.restarts()), (State::Ready, 0));
    assert!(!m.health().readiness_passes());
    let back = m.step(Event::CheckPassed(Check::Readiness), t);
    assert_eq!(
        back[0],
        Action::Report("healthy again: readiness passed once".into())
    );
    assert!(m.health().readiness_passes());
}

#[test]
fn a_new_child_starts_with_fresh_tallies() {
    let t = Instant::now();
    let mut m = machine(
        Config {
            readiness: Some(rule(1, 1)),
            ..Config::default()
        },
        Restart::Always,
    );
    ready(&mut m, t);
    m.step(Event::CheckFailed(Check::Readiness, "down".into()), t);
    assert!(!m.health().readiness_passes());
    m.step(Event::RestartRequested, t);
    m.step(Event::ChildExited(Exit::Code(0)), t);
    ready(&mut m, t);
    let fresh = m.health().tally(Check::Readiness).unwrap();
    assert_eq!((fresh.verdict, fresh.failures), (Verdict::Pending, 0));
}
