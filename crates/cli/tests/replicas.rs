//! Projects beyond one process per service: replicas (`instances = N`), `up --rerun` of
//! one-shots, readiness from a line of output (`ready = "log:REGEX"`), end to end with
//! real supervisors and fixture programs.

use daemonic_test_support as support;

mod env;

use std::path::PathBuf;

use env::{Env, config, fixture, up};
use support::*;

/// A project of one `worker` with `n` instances, each saying its number (from the
/// command and from its environment) and then sleeping.
fn workers(env: &Env, n: u32) -> PathBuf {
    let sleeper = fixture("sleeper");
    config(
        env,
        &format!(
            "[defaults]\ngrace = \"100ms\"\n\n[services.worker]\ninstances = {n}\n\
             command = [\"sh\", \"-c\", \"echo worker ${{DAEMONIC_INSTANCE}} env $$DAEMONIC_INSTANCE; exec {sleeper}\"]\n"
        ),
    )
}

#[test]
fn instances_run_each_with_its_number_and_an_edit_of_n_adds_or_removes_only_instances() {
    let env = Env::new("replicas");
    let file = workers(&env, 3);
    let out = up(&env, &file, &[]);
    assert!(out.status.success(), "{}{}", stdout(&out), stderr(&out));
    let mut pids = Vec::new();
    for i in 1..=3 {
        let name = format!("worker.{i}");
        pids.push(env.child_pid(&name));
        let said = format!("worker {i} env {i}");
        wait_for(&format!("{name} says its number"), SOON, || {
            let logs = stdout(&env.daemonic(&["logs", &name]));
            logs.contains(&said).then_some(())
        });
    }
    let list = stdout(&env.daemonic(&["list"]));
    for i in 1..=3 {
        assert!(list.contains(&format!("worker.{i} ")), "{list}");
    }

    let file = workers(&env, 2);
    let out = up(&env, &file, &[]);
    assert!(out.status.success(), "{}", stderr(&out));
    assert!(
        stdout(&out).starts_with("removed, stopped: worker.3; unchanged: worker.1 worker.2\n"),
        "{}",
        stdout(&out)
    );
    assert_eq!(env.child_pid("worker.1"), pids[0]);
    assert_eq!(env.child_pid("worker.2"), pids[1]);
    wait_for("worker.3 stopped", SOON, || (!alive(pids[2])).then_some(()));
    let gone = env.daemonic(&["status", "worker.3"]);
    assert_eq!(gone.status.code(), Some(3), "{}", stdout(&gone));

    let file = workers(&env, 4);
    let out = up(&env, &file, &[]);
    assert!(out.status.success(), "{}", stderr(&out));
    assert!(
        stdout(&out).starts_with("started: worker.3 worker.4; unchanged: worker.1 worker.2\n"),
        "{}",
        stdout(&out)
    );
    assert_eq!(env.child_pid("worker.1"), pids[0]);
    assert_eq!(env.child_pid("worker.2"), pids[1]);
    assert_ne!(env.child_pid("worker.3"), pids[2]);
    let last = [
        pids[0],
        pids[1],
        env.child_pid("worker.3"),
        env.child_pid("worker.4"),
    ];
    // `down worker` is every instance.
    let out = env.daemonic(&["down", "-f", file.to_str().unwrap(), "worker"]);
    assert!(out.status.success(), "{}", stderr(&out));
    for pid in last {
        wait_for("every instance stopped", SOON, || {
            (!alive(pid)).then_some(())
        });
    }
    let out = env.daemonic(&["down", "-f", file.to_str().unwrap()]);
    assert!(out.status.success(), "{}", stderr(&out));
}

#[test]
fn check_reports_a_bad_instances_value_at_its_line_and_column() {
    let env = Env::new("replicas-check");
    for (value, why) in [
        ("0", "`instances` is from 1 to 1000, not 0"),
        ("1001", "`instances` is from 1 to 1000, not 1001"),
        (
            "\"two\"",
            "`instances` is an integer from 1 to 1000, not a string",
        ),
    ] {
        let file = config(
            &env,
            &format!("[services.worker]\ncommand = \"sleep 1\"\ninstances = {value}\n"),
        );
        let out = env.daemonic(&["check", "-f", file.to_str().unwrap()]);
        assert_eq!(out.status.code(), Some(1));
        assert_eq!(
            stderr(&out),
            format!("{}:3:13: {why}\n1 error\n", file.display())
        );
    }
}

#[test]
fn up_rerun_runs_a_completed_unchanged_oneshot_again_and_nothing_else() {
    let env = Env::new("rerun");
    let runs = env.dir.join("migrations");
    let sleeper = fixture("sleeper");
    let file = config(
        &env,
        &format!(
            "[defaults]\ngrace = \"100ms\"\n\n[services.migrate]\ntype = \"oneshot\"\n\
             command = [\"sh\", \"-c\", \"echo run >> {}\"]\n\n\
             [services.web]\ncommand = [{sleeper:?}]\ndepends-on = [\"migrate\"]\n",
            runs.display()
        ),
    );
    let out = up(&env, &file, &[]);
    assert!(out.status.success(), "{}{}", stdout(&out), stderr(&out));
    let web = env.child_pid("web");
    let out = up(&env, &file, &[]);
    assert!(
        stdout(&out).contains("unchanged: migrate web"),
        "{}",
        stdout(&out)
    );
    assert_eq!(std::fs::read_to_string(&runs).unwrap(), "run\n");

    let out = up(&env, &file, &["--rerun", "migrate"]);
    assert_eq!(
        out.status.code(),
        Some(0),
        "{}{}",
        stdout(&out),
        stderr(&out)
    );
    assert!(
        stdout(&out).starts_with("started: migrate; unchanged: web\n"),
        "{}",
        stdout(&out)
    );
    assert!(
        stdout(&out).contains("migrate: completed"),
        "{}",
        stdout(&out)
    );
    assert_eq!(std::fs::read_to_string(&runs).unwrap(), "run\nrun\n");
    assert_eq!(
        env.child_pid("web"),
        web,
        "its dependents are not restarted"
    );

    // Only one-shots are rerun: a long-running service is `restart`ed.
    let out = up(&env, &file, &["--rerun", "web"]);
    assert_eq!(out.status.code(), Some(1));
    assert!(
        stderr(&out).contains("--rerun web: not a one-shot"),
        "{}",
        stderr(&out)
    );
    let out = env.daemonic(&["down", "-f", file.to_str().unwrap()]);
    assert!(out.status.success(), "{}", stderr(&out));
}

#[test]
fn ready_log_waits_for_a_matching_line_of_output() {
    let env = Env::new("ready-log");
    let says = fixture("says-after");
    let started = std::time::Instant::now();
    let out = env.daemonic(&[
        "start",
        "--name",
        "web",
        "--ready",
        r"log:^listening on \d+$",
        "--",
        &says,
        "300",
        "listening on 8080",
    ]);
    assert_eq!(
        out.status.code(),
        Some(0),
        "{}{}",
        stdout(&out),
        stderr(&out)
    );
    assert!(
        started.elapsed() >= std::time::Duration::from_millis(300),
        "returned before the line came"
    );
    // The line is in the log when `start` returns (it was read, matched and written).
    let logs = stdout(&env.daemonic(&["logs", "web"]));
    assert!(logs.contains("starting\nlistening on 8080\n"), "{logs}");
    let status = stdout(&env.daemonic(&["status", "web"]));
    assert!(status.starts_with("web: ready"), "{status}");
    assert!(env.daemonic(&["stop", "web"]).status.success());
}

#[test]
fn ready_log_that_never_matches_times_out_saying_what_it_waited_for() {
    let env = Env::new("ready-log-never");
    let says = fixture("says-after");
    let out = env.daemonic(&[
        "start",
        "--name",
        "mute",
        "--ready",
        "log:listening",
        "--timeout",
        "1s",
        "--",
        &says,
        "never",
        "listening",
    ]);
    assert_eq!(
        out.status.code(),
        Some(124),
        "{}{}",
        stdout(&out),
        stderr(&out)
    );
    assert!(
        stderr(&out).contains("no line of its output matched log:listening yet"),
        "{}",
        stderr(&out)
    );
}

#[test]
fn a_dependency_ready_by_its_output_holds_its_dependents_until_the_line() {
    let env = Env::new("ready-log-up");
    let says = fixture("says-after");
    let sleeper = fixture("sleeper");
    let file = config(
        &env,
        &format!(
            "[services.api]\ncommand = [{says:?}, \"300\", \"api listening\"]\nready = \"log:listening$$\"\n\n\
             [services.web]\ncommand = [{sleeper:?}]\ngrace = \"100ms\"\ndepends-on = [\"api\"]\n"
        ),
    );
    let out = up(&env, &file, &[]);
    assert!(out.status.success(), "{}{}", stdout(&out), stderr(&out));
    assert!(
        stdout(&out).contains("web: waiting: waiting for api to be ready"),
        "{}",
        stdout(&out)
    );
    let logs = stdout(&env.daemonic(&["logs", "api"]));
    assert!(logs.contains("api listening"), "{logs}");
    let out = env.daemonic(&["down", "-f", file.to_str().unwrap()]);
    assert!(out.status.success(), "{}", stderr(&out));

    // A bad pattern is an error of the file, at its place.
    let bad = env.dir.join("bad.toml");
    std::fs::write(
        &bad,
        format!("[services.api]\ncommand = [{says:?}]\nready = \"log:(\"\n"),
    )
    .unwrap();
    let out = env.daemonic(&["check", "-f", bad.to_str().unwrap()]);
    assert_eq!(out.status.code(), Some(1));
    assert!(
        stderr(&out).contains(":3:9: `ready`: invalid `log:` pattern \"(\""),
        "{}",
        stderr(&out)
    );
}
