use super::*;
use crate::supervisor::policy::{Backoff, Policy, Restart, StartLimit};

fn ms(n: u64) -> Duration {
    Duration::from_millis(n)
}

/// A machine configuration for tests (also the health checks'): 50 ms backoff doubling to
/// 400 ms, readiness by notify or 100 ms grace, 500 ms stop timeout, no watchdog.
pub(in crate::supervisor) fn config(restart: Restart, start_limit: Option<&str>) -> Config {
    Config {
        policy: Policy {
            restart,
            success_codes: vec![0],
            backoff: Backoff {
                initial: ms(50),
                multiplier: 2.0,
                max: ms(400),
                jitter: false,
                reset_after: ms(1000),
            },
            start_limit: start_limit.map(|s| StartLimit::parse(s).unwrap()),
            start_retries: u32::MAX,
        },
        readiness: ReadyWhen::NotifyOrGrace(ms(100)),
        stop_signal: Signal::SIGTERM,
        stop_timeout: ms(500),
        watchdog: None,
        start_timeout: None,
        first_start_watched: false,
        health: Default::default(),
        memory_restart: None,
    }
}

fn machine(c: Config) -> Machine {
    let (m, actions) = Machine::new(c, Jitter::new(0));
    assert_eq!(actions, [Action::Spawn]);
    m
}

/// Runs a child that exits with `code` after `run`; returns the actions of the exit.
fn crash(m: &mut Machine, t: &mut Instant, run: Duration, code: i32) -> Vec<Action> {
    if m.state() == State::Backoff {
        assert_eq!(m.step(Event::BackoffElapsed, *t), [Action::Spawn]);
    }
    m.step(Event::Spawned, *t);
    *t += run;
    m.step(Event::ChildExited(Exit::Code(code)), *t)
}

#[test]
fn start_ready_stop() {
    let mut m = machine(config(Restart::Always, None));
    let t = Instant::now();
    assert_eq!(
        m.step(Event::Spawned, t),
        [Action::ArmTimer(Timer::Grace, t + ms(100))]
    );
    let ready = m.step(Event::GraceElapsed, t + ms(100));
    assert_eq!(ready, [Action::CancelTimers, Action::BecameReady]);
    assert_eq!(m.state(), State::Ready);
    assert_eq!(
        m.step(Event::ReadyMessage, t),
        [],
        "a late READY=1 is harmless"
    );
    let stop = m.step(Event::StopRequested, t);
    assert_eq!(
        stop,
        [
            Action::CancelTimers,
            Action::NotifyStopping,
            Action::SignalGroup(Signal::SIGTERM),
            Action::ArmTimer(Timer::StopTimeout, t + ms(500)),
        ]
    );
    assert_eq!(m.step(Event::StopTimeout, t), [Action::KillGroup]);
    let killed = Exit::Signal(Signal::SIGKILL, false);
    let end = m.step(Event::ChildExited(killed), t);
    assert_eq!(end, [Action::CancelTimers, Action::Finish(killed)]);
    assert_eq!(m.state(), State::Stopped);
    assert_eq!(m.restarts(), 0, "a requested stop is not restarted");
}

#[test]
fn ready_1_ends_starting_without_grace() {
    let mut m = machine(Config {
        readiness: ReadyWhen::Notify,
        ..config(Restart::Never, None)
    });
    let t = Instant::now();
    assert_eq!(m.step(Event::Spawned, t), []);
    m.step(Event::ReadyMessage, t);
    assert_eq!(m.state(), State::Ready);
}

#[test]
fn never_finishes_with_the_first_exit() {
    let mut m = machine(config(Restart::Never, None));
    let mut t = Instant::now();
    let end = crash(&mut m, &mut t, ms(0), 3);
    assert_eq!(end, [Action::CancelTimers, Action::Finish(Exit::Code(3))]);
    assert_eq!(m.state(), State::Exited);
}

#[test]
fn on_failure_restarts_with_growing_delays_and_finishes_on_success() {
    let mut m = machine(config(Restart::OnFailure, None));
    let mut t = Instant::now();
    for want in [50, 100, 200, 400, 400] {
        let a = crash(&mut m, &mut t, ms(1), 1);
        assert_eq!(
            a,
            [
                Action::CancelTimers,
                Action::ArmTimer(Timer::Backoff, t + ms(want))
            ]
        );
        assert_eq!(m.state(), State::Backoff);
        t += ms(want);
    }
    assert_eq!(m.restarts(), 5);
    let d: Vec<_> = m.delays().collect();
    assert_eq!(d, [50, 100, 200, 400, 400].map(ms));
    let end = crash(&mut m, &mut t, ms(1), 0);
    assert_eq!(end, [Action::CancelTimers, Action::Finish(Exit::Code(0))]);
}

#[test]
fn a_stable_run_restarts_at_once_and_resets_the_backoff() {
    let mut m = machine(config(Restart::Always, None));
    let mut t = Instant::now();
    for run in [0, 0, 0, 1000, 0, 0] {
        crash(&mut m, &mut t, ms(run), 1);
    }
    let d: Vec<_> = m.delays().collect();
    // A crash loop backs off; the crash after a stable run comes back at once; the next
    // quick crash starts the backoff over.
    assert_eq!(d, [50, 100, 200, 0, 50, 100].map(ms));
}

#[test]
fn the_start_limit_gives_up_once_with_the_last_exit() {
    let mut m = machine(config(Restart::Always, Some("3/1m")));
    let mut t = Instant::now();
    crash(&mut m, &mut t, ms(0), 1);
    crash(&mut m, &mut t, ms(0), 1);
    let end = crash(&mut m, &mut t, ms(0), 7);
    assert_eq!(m.state(), State::GaveUp);
    assert_eq!(
        end,
        [
            Action::CancelTimers,
            Action::RunGiveUpHook {
                last_exit: Exit::Code(7),
                reason: "start limit reached (3 starts within 60s); last: exited with status 7"
                    .into(),
            },
            Action::Finish(Exit::Code(7)),
        ]
    );
    assert_eq!(m.restarts(), 2);
}

/// `--start-retries`: a service never ready gives up after its retries (so `start` ends
/// with its error); once it was ready, crashes before the next ready are not counted.
#[test]
fn start_retries_bound_only_the_restarts_before_the_first_ready() {
    let mut c = config(Restart::OnFailure, None);
    c.policy.start_retries = 2;
    let mut m = machine(c.clone());
    let mut t = Instant::now();
    assert_eq!(m.attempt(), Some((1, 3)));
    crash(&mut m, &mut t, ms(0), 1);
    assert_eq!((m.state(), m.attempt()), (State::Backoff, Some((2, 3))));
    crash(&mut m, &mut t, ms(0), 1);
    assert_eq!((m.state(), m.attempt()), (State::Backoff, Some((3, 3))));
    let end = crash(&mut m, &mut t, ms(0), 4);
    assert_eq!(m.state(), State::GaveUp);
    assert!(
        end.contains(&Action::RunGiveUpHook {
            last_exit: Exit::Code(4),
            reason: "not ready after 3 attempts (--start-retries 2); last: exited with status 4"
                .into(),
        }),
        "{end:?}"
    );

    let mut m = machine(c);
    m.step(Event::Spawned, t);
    m.step(Event::GraceElapsed, t + ms(100));
    assert_eq!(m.attempt(), None);
    m.step(Event::ChildExited(Exit::Code(1)), t + ms(200));
    t += ms(200);
    for _ in 0..10 {
        crash(&mut m, &mut t, ms(0), 1);
        assert_eq!(m.state(), State::Backoff);
    }
}

#[test]
fn starts_outside_the_window_do_not_count() {
    let mut m = machine(config(Restart::Always, Some("2/1s")));
    let mut t = Instant::now();
    for _ in 0..5 {
        crash(&mut m, &mut t, ms(600), 1);
        assert_eq!(m.state(), State::Backoff);
    }
}

#[test]
fn stop_during_backoff_finishes_at_once() {
    let mut m = machine(config(Restart::Always, None));
    let mut t = Instant::now();
    crash(&mut m, &mut t, ms(0), 2);
    let end = m.step(Event::StopRequested, t);
    assert_eq!(end, [Action::CancelTimers, Action::Finish(Exit::Code(2))]);
    assert_eq!(m.state(), State::Stopped);
}

#[test]
#[should_panic(expected = "event BackoffElapsed in state Ready")]
fn an_impossible_event_is_a_bug() {
    let mut m = machine(config(Restart::Always, None));
    let t = Instant::now();
    m.step(Event::Spawned, t);
    m.step(Event::ReadyMessage, t);
    m.step(Event::BackoffElapsed, t);
}

#[test]
fn a_missed_watchdog_aborts_and_restarts_even_a_clean_exit() {
    let mut m = machine(Config {
        watchdog: Some(ms(300)),
        ..config(Restart::OnFailure, None)
    });
    let t = Instant::now();
    m.step(Event::Spawned, t);
    let ready = m.step(Event::ReadyMessage, t);
    assert_eq!(
        ready,
        [
            Action::CancelTimers,
            Action::BecameReady,
            Action::ArmTimer(Timer::Watchdog, t + ms(300)),
        ]
    );
    assert_eq!(
        m.step(Event::WatchdogPing, t + ms(200)),
        [Action::ArmTimer(Timer::Watchdog, t + ms(500))]
    );
    let expired = m.step(Event::WatchdogExpired, t + ms(500));
    assert_eq!(m.state(), State::Stopping);
    assert!(expired.contains(&Action::SignalMain(Signal::SIGABRT)));
    assert!(expired.contains(&Action::ArmTimer(Timer::StopTimeout, t + ms(1000))));
    // Even exit status 0 counts as a failure after a watchdog timeout.
    let after = m.step(Event::ChildExited(Exit::Code(0)), t + ms(600));
    assert_eq!(m.state(), State::Backoff);
    assert_eq!(after[1], Action::ArmTimer(Timer::Backoff, t + ms(650)));
}

#[test]
fn stopping_1_lets_the_policy_decide() {
    let mut m = machine(config(Restart::OnFailure, None));
    let t = Instant::now();
    m.step(Event::Spawned, t);
    m.step(Event::StoppingMessage, t);
    assert_eq!(m.state(), State::Stopping);
    m.step(Event::ChildExited(Exit::Code(0)), t);
    assert_eq!(m.state(), State::Exited, "a clean exit is not restarted");
}

#[test]
fn a_restart_request_stops_then_starts_at_once() {
    let mut m = machine(config(Restart::Never, None));
    let t = Instant::now();
    m.step(Event::Spawned, t);
    let stop = m.step(Event::RestartRequested, t);
    assert!(stop.contains(&Action::SignalGroup(Signal::SIGTERM)));
    assert!(
        !stop.contains(&Action::NotifyStopping),
        "the service stays up"
    );
    let again = m.step(Event::ChildExited(Exit::Signal(Signal::SIGTERM, false)), t);
    assert_eq!(again, [Action::CancelTimers, Action::Spawn]);
    assert_eq!((m.state(), m.restarts()), (State::Starting, 1));
}

#[test]
fn a_restart_request_cuts_the_backoff_short() {
    let mut m = machine(config(Restart::Always, None));
    let mut t = Instant::now();
    crash(&mut m, &mut t, ms(0), 1);
    assert_eq!(
        m.step(Event::RestartRequested, t),
        [Action::CancelTimers, Action::Spawn]
    );
    assert_eq!(m.state(), State::Starting);
}

#[test]
fn a_stop_during_a_restart_wins() {
    let mut m = machine(config(Restart::Always, None));
    let t = Instant::now();
    m.step(Event::Spawned, t);
    m.step(Event::RestartRequested, t);
    m.step(Event::StopRequested, t);
    m.step(Event::ChildExited(Exit::Code(0)), t);
    assert_eq!(m.state(), State::Stopped);
}

#[test]
fn a_failed_spawn_counts_as_a_start_and_can_give_up() {
    let mut m = machine(config(Restart::Always, Some("2/1m")));
    let t = Instant::now();
    m.step(Event::Spawned, t);
    m.step(Event::ChildExited(Exit::Code(1)), t);
    m.step(Event::BackoffElapsed, t);
    let end = m.step(Event::SpawnFailed(Exit::Code(127)), t);
    assert_eq!(m.state(), State::GaveUp);
    assert_eq!(end.last(), Some(&Action::Finish(Exit::Code(127))));
}

#[test]
fn probe_readiness_retries_until_success() {
    let mut m = machine(Config {
        readiness: ReadyWhen::Probe(ms(250)),
        ..config(Restart::Never, None)
    });
    let t = Instant::now();
    assert_eq!(m.step(Event::Spawned, t), [Action::StartProbe]);
    assert_eq!(
        m.step(Event::ProbeFailed("refused".into()), t),
        [Action::ArmTimer(Timer::Probe, t + ms(250))]
    );
    assert_eq!(m.step(Event::ProbeDue, t), [Action::StartProbe]);
    m.step(Event::ProbeSucceeded, t);
    assert_eq!(m.state(), State::Ready);
}

#[test]
fn zero_backoff_stays_zero_for_2000_restarts() {
    let mut c = config(Restart::Always, None);
    c.policy.backoff.initial = Duration::ZERO;
    c.policy.backoff.max = Duration::from_secs(60);
    let mut m = machine(c);
    let mut t = Instant::now();
    for n in 1..=2000 {
        let a = crash(&mut m, &mut t, ms(1), 1);
        assert_eq!(
            a,
            [Action::CancelTimers, Action::ArmTimer(Timer::Backoff, t)],
            "restart {n} waits"
        );
    }
    assert_eq!(m.restarts(), 2000);
}

#[test]
fn memory_stays_flat_over_20000_restarts() {
    for (limit, most) in [(None, 0), (Some("50/1h"), 50)] {
        let mut m = machine(config(Restart::Always, limit));
        let mut t = Instant::now();
        for n in 0..20_000 {
            if m.state() == State::GaveUp {
                break;
            }
            crash(&mut m, &mut t, ms(1), 1);
            assert!(m.starts_kept() <= most.max(1), "{limit:?} after {n}");
            t += ms(400);
        }
        assert!(m.starts_kept() <= most.max(1));
        assert!(m.delays().count() <= DELAYS_KEPT);
    }
    let mut m = machine(config(Restart::Always, None));
    let mut t = Instant::now();
    for _ in 0..20_000 {
        crash(&mut m, &mut t, ms(1), 1);
        t += ms(400);
    }
    assert_eq!(m.restarts(), 20_000);
    assert_eq!(m.starts_kept(), 0, "no limit, no start times");
}

#[test]
fn a_start_not_ready_in_time_is_stopped_and_counts_as_a_failure() {
    let mut c = config(Restart::OnFailure, None);
    c.readiness = ReadyWhen::Notify;
    c.start_timeout = Some(ms(300));
    let mut m = machine(c.clone());
    let t = Instant::now();
    assert_eq!(
        m.step(Event::Spawned, t),
        [Action::ArmTimer(Timer::StartTimeout, t + ms(300))]
    );
    let a = m.step(Event::StartTimedOut, t + ms(300));
    assert_eq!(m.state(), State::Stopping);
    assert!(a.contains(&Action::SignalGroup(Signal::SIGTERM)), "{a:?}");
    assert!(
        a.iter()
            .any(|x| matches!(x, Action::Report(r) if r.starts_with("not ready within 300ms"))),
        "{a:?}"
    );
    // SIGTERM's status would be a clean exit under on-failure; a timed-out start is not.
    let a = m.step(Event::ChildExited(Exit::Code(0)), t + ms(310));
    assert_eq!(m.state(), State::Backoff, "{a:?}");

    // Ready in time: the timer is cancelled with the others, and a late one is ignored.
    let mut m = machine(c.clone());
    m.step(Event::Spawned, t);
    let a = m.step(Event::ReadyMessage, t + ms(10));
    assert_eq!(a.first(), Some(&Action::CancelTimers));
    assert_eq!(m.step(Event::StartTimedOut, t + ms(300)), []);
    assert_eq!(m.state(), State::Ready);

    // Watched by `start`'s launcher: the first start's timer is not armed, later ones are.
    c.first_start_watched = true;
    let mut m = machine(c);
    assert_eq!(m.step(Event::Spawned, t), []);
    m.step(Event::ChildExited(Exit::Code(1)), t + ms(5));
    m.step(Event::BackoffElapsed, t + ms(60));
    assert_eq!(
        m.step(Event::Spawned, t + ms(60)),
        [Action::ArmTimer(Timer::StartTimeout, t + ms(360))]
    );
}

#[test]
fn a_oneshot_that_exits_with_success_is_completed_not_failed() {
    let mut c = config(Restart::OnFailure, None);
    c.readiness = ReadyWhen::Exit;
    let mut m = machine(c.clone());
    let t = Instant::now();
    assert_eq!(m.step(Event::Spawned, t), [], "no grace, no probe");
    assert_eq!(
        m.step(Event::ReadyMessage, t),
        [],
        "READY=1 is not completion"
    );
    let a = m.step(Event::ChildExited(Exit::Code(0)), t + ms(5));
    assert_eq!(
        a,
        [
            Action::CancelTimers,
            Action::BecameReady,
            Action::Finish(Exit::Code(0))
        ]
    );
    assert_eq!(m.state(), State::Completed);
    assert!(m.state().is_final());
    // A failure is one: restarted under on-failure.
    let mut m = machine(c);
    m.step(Event::Spawned, t);
    m.step(Event::ChildExited(Exit::Code(3)), t + ms(5));
    assert_eq!(m.state(), State::Backoff);
}

#[test]
fn memory_above_restart_on_memory_twice_in_a_row_restarts() {
    let mut m = machine(Config {
        memory_restart: Some((1000, ms(200))),
        ..config(Restart::Never, None)
    });
    let t = Instant::now();
    m.step(Event::Spawned, t);
    let ready = m.step(Event::GraceElapsed, t);
    assert!(ready.contains(&Action::ArmTimer(Timer::Memory, t + ms(200))));
    assert_eq!(m.step(Event::MemoryDue, t), [Action::MeasureMemory]);
    // Once above, then below: the count starts over.
    for bytes in [2000, 500, 2000] {
        assert_eq!(
            m.step(Event::MemoryMeasured(bytes), t),
            [Action::ArmTimer(Timer::Memory, t + ms(200))]
        );
    }
    let restart = m.step(Event::MemoryMeasured(2000), t);
    assert_eq!(m.state(), State::Stopping);
    assert!(
        matches!(&restart[1], Action::Report(r) if r.contains("above --restart-on-memory 1000")),
        "{restart:?}"
    );
    assert_eq!(restart[2], Action::SignalGroup(Signal::SIGTERM));
    // Restarted whatever --restart says (pm2's max_memory_restart).
    let again = m.step(Event::ChildExited(Exit::Code(143)), t);
    assert_eq!(again, [Action::CancelTimers, Action::Spawn]);
    assert_eq!(m.restarts(), 1);
}

#[test]
fn no_memory_timer_without_restart_on_memory() {
    let mut m = machine(config(Restart::Never, None));
    let t = Instant::now();
    m.step(Event::Spawned, t);
    let ready = m.step(Event::GraceElapsed, t);
    assert!(
        !ready
            .iter()
            .any(|a| matches!(a, Action::ArmTimer(Timer::Memory, _))),
        "{ready:?}"
    );
}

#[test]
fn an_oom_kill_is_a_failure_even_with_a_success_status() {
    let mut m = machine(config(Restart::OnFailure, None));
    let t = Instant::now();
    m.step(Event::Spawned, t);
    m.step(Event::GraceElapsed, t);
    let a = m.step(Event::OomKilled(Exit::Code(0)), t);
    assert_eq!(m.state(), State::Backoff, "{a:?}");
    // A stop asked for stays a stop.
    m.step(Event::BackoffElapsed, t);
    m.step(Event::Spawned, t);
    m.step(Event::StopRequested, t);
    let killed = Exit::Signal(Signal::SIGKILL, false);
    m.step(Event::OomKilled(killed), t);
    assert_eq!(m.state(), State::Stopped);
}

#[test]
fn a_forking_service_is_ready_when_its_daemon_is_taken_over() {
    let mut c = config(Restart::OnFailure, None);
    c.readiness = ReadyWhen::Forked;
    let mut m = machine(c);
    let t = Instant::now();
    assert_eq!(m.step(Event::Spawned, t), [], "no grace: the fork decides");
    let ready = m.step(Event::Forked, t + ms(10));
    assert_eq!(m.state(), State::Ready);
    assert_eq!(ready[..2], [Action::CancelTimers, Action::BecameReady]);
    // The daemon crashing is an exit like any other: restarted.
    let killed = Exit::Signal(Signal::SIGKILL, false);
    m.step(Event::ChildExited(killed), t + ms(2000));
    assert_eq!(m.state(), State::Backoff);
}

#[test]
fn a_fork_that_leaves_no_daemon_is_a_failed_start_even_with_status_0() {
    let mut c = config(Restart::OnFailure, None);
    c.readiness = ReadyWhen::Forked;
    let mut m = machine(c);
    let t = Instant::now();
    m.step(Event::Spawned, t);
    m.step(Event::ForkFailed(Exit::Code(0)), t);
    assert_eq!(m.state(), State::Backoff, "on-failure restarts it");
    let mut c = config(Restart::Never, None);
    c.readiness = ReadyWhen::Forked;
    let mut m = machine(c);
    m.step(Event::Spawned, t);
    m.step(Event::ForkFailed(Exit::Code(0)), t);
    assert_eq!(m.state(), State::Exited);
    assert_eq!(m.last_exit(), Some(Exit::Code(0)));
}
