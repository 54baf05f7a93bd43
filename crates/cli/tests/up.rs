//! Many services from one file: `check`, `up`, `down`, `run -f`, end to end with real
//! supervisors and fixture programs.

use daemonic_test_support as support;

mod env;

use std::path::Path;

use env::{Env, config, fixture, up};
use support::*;

fn down(env: &Env, file: &Path, extra: &[&str]) -> std::process::Output {
    let mut args = vec!["down", "-f", file.to_str().unwrap()];
    args.extend(extra);
    env.daemonic(&args)
}

/// A `lifecycle` service that writes to `log` and is ready after `delay_ms`.
fn lifecycle(name: &str, log: &std::path::Path, delay_ms: u64, deps: &[&str]) -> String {
    let deps: Vec<String> = deps.iter().map(|d| format!("{d:?}")).collect();
    format!(
        "[services.{name}]\ncommand = [{:?}, {name:?}, {:?}, \"{delay_ms}\"]\nready = \"notify\"\ndepends-on = [{}]\n\n",
        fixture("lifecycle"),
        log.display().to_string(),
        deps.join(", ")
    )
}

fn lines(path: &std::path::Path) -> Vec<String> {
    std::fs::read_to_string(path)
        .unwrap_or_default()
        .lines()
        .map(str::to_string)
        .collect()
}

fn position(lines: &[String], line: &str) -> usize {
    lines
        .iter()
        .position(|l| l == line)
        .unwrap_or_else(|| panic!("no {line:?} in {lines:?}"))
}

#[test]
fn dependents_start_once_their_dependencies_are_ready_and_stop_before_them() {
    let env = Env::new("up-order");
    let log = env.dir.join("events");
    // db takes 400 ms to be ready; web and worker wait for it, worker also for web.
    let file = config(
        &env,
        &format!(
            "{}{}{}",
            lifecycle("worker", &log, 0, &["web", "db"]),
            lifecycle("web", &log, 100, &["db"]),
            lifecycle("db", &log, 400, &[]),
        ),
    );
    let out = up(&env, &file, &[]);
    assert!(out.status.success(), "{}{}", stdout(&out), stderr(&out));
    let events = lines(&log);
    assert!(
        position(&events, "db ready") < position(&events, "web start"),
        "{events:?}"
    );
    assert!(
        position(&events, "web ready") < position(&events, "worker start"),
        "{events:?}"
    );
    // What `up` printed, as plain lines (not a terminal): each one ready.
    let shown = stdout(&out);
    for name in ["db", "web", "worker"] {
        assert!(shown.contains(&format!("{name}: ready (pid ")), "{shown}");
    }
    assert!(
        shown.contains("web: waiting: waiting for db to be ready"),
        "{shown}"
    );
    let list = stdout(&env.daemonic(&["list"]));
    assert_eq!(list.matches(" ready ").count(), 3, "{list}");

    let out = down(&env, &file, &[]);
    assert!(out.status.success(), "{}", stderr(&out));
    let events = lines(&log);
    assert!(
        position(&events, "worker stop") < position(&events, "web stop"),
        "{events:?}"
    );
    assert!(
        position(&events, "web stop") < position(&events, "db stop"),
        "{events:?}"
    );
    // The supervisor has ended: nothing left in the state directory but logs.
    let list = stdout(&env.daemonic(&["list"]));
    assert_eq!(list.lines().count(), 1, "only the header: {list}");
}

#[test]
fn up_after_an_edit_restarts_what_changed_and_leaves_the_rest_alone() {
    let env = Env::new("up-diff");
    let sleeper = fixture("sleeper");
    let head = format!(
        "[defaults]\ngrace = \"100ms\"\n\n[services.keep]\ncommand = \"{sleeper}\"\n\n[services.gone]\ncommand = \"{sleeper}\"\n\n"
    );
    let file = config(
        &env,
        &format!("{head}[services.edit]\ncommand = \"{sleeper} 1000\"\n"),
    );
    let out = up(&env, &file, &[]);
    assert!(out.status.success(), "{}", stderr(&out));
    let keep = env.child_pid("keep");
    let edit = env.child_pid("edit");

    let head = head.replace(&format!("[services.gone]\ncommand = \"{sleeper}\"\n\n"), "");
    let file = config(
        &env,
        &format!(
            "{head}[services.edit]\ncommand = \"{sleeper} 2000\"\n\n[services.new]\ncommand = \"{sleeper}\"\n"
        ),
    );
    let out = up(&env, &file, &[]);
    assert!(out.status.success(), "{}", stderr(&out));
    assert!(
        stdout(&out).starts_with(
            "started: new; changed, restarted: edit; removed, stopped: gone; unchanged: keep\n"
        ),
        "{}",
        stdout(&out)
    );
    assert_eq!(
        env.child_pid("keep"),
        keep,
        "an unchanged service keeps its pid"
    );
    assert_ne!(env.child_pid("edit"), edit, "a changed service runs anew");
    assert!(!alive(edit), "and its old process is gone");
    env.child_pid("new");
    let gone = env.daemonic(&["status", "gone"]);
    assert_eq!(gone.status.code(), Some(3), "{}", stdout(&gone));

    // SIGHUP to the supervisor does the same as `up`.
    let file = config(
        &env,
        &format!("{head}[services.edit]\ncommand = \"{sleeper} 2000\"\n"),
    );
    let supervisor = env.supervisor_pid("keep");
    nix::sys::signal::kill(supervisor, nix::sys::signal::Signal::SIGHUP).unwrap();
    wait_for("new removed", SOON, || {
        (env.daemonic(&["status", "new"]).status.code() == Some(3)).then_some(())
    });
    assert_eq!(env.child_pid("keep"), keep);
    assert!(down(&env, &file, &[]).status.success());
}

#[test]
fn check_reports_every_error_at_its_line_and_column() {
    let env = Env::new("check");
    let file = config(
        &env,
        "[services.a]\ncommand = \"sleep 1\"\ndepends-on = [\"b\"]\nrestrat = \"always\"\n\n\
         [services.b]\ncommand = \"sleep 1\"\ndepends-on = [\"a\"]\nstop-timeout = \"soon\"\n",
    );
    let out = env.daemonic(&["check", "-f", file.to_str().unwrap()]);
    assert_eq!(out.status.code(), Some(1));
    let text = stderr(&out);
    let f = file.display();
    assert_eq!(
        text,
        format!(
            "{f}:3:15: dependency cycle: a → b → a\n\
             {f}:4:1: unknown key `restrat` in a service\n  hint: did you mean `restart`?\n\
             {f}:9:16: `stop-timeout`: invalid duration \"soon\" (expected e.g. 500ms, 30s, 2m, 1h, 1m30s)\n\
             3 errors\n"
        )
    );
    let good = config(&env, "[services.a]\ncommand = \"sleep 1\"\n");
    let out = env.daemonic(&["check", "-f", good.to_str().unwrap()]);
    assert!(out.status.success(), "{}", stderr(&out));
    assert!(stdout(&out).contains("ok, 1 service"), "{}", stdout(&out));
}

#[test]
fn a_service_that_fails_is_reported_with_why_and_its_dependents_as_blocked() {
    let env = Env::new("up-fail");
    let log = env.dir.join("events");
    let file = config(
        &env,
        &format!(
            "[services.db]\ncommand = [{:?}, \"5\"]\nrestart = \"never\"\n\n{}",
            fixture("crasher"),
            lifecycle("web", &log, 0, &["db"])
        ),
    );
    let out = up(&env, &file, &["--json"]);
    assert_eq!(out.status.code(), Some(1), "{}", stdout(&out));
    let plain = up(&env, &file, &[]);
    assert_eq!(plain.status.code(), Some(1), "{}", stdout(&plain));
    // Its own words, from its log, on stderr.
    assert!(
        stderr(&plain).contains("last lines of db's log")
            && stderr(&plain).contains("crasher: crashing with status 5"),
        "{}",
        stderr(&plain)
    );
    let shown = stdout(&out);
    assert!(
        shown.contains(r#""service":"db","state":"exited""#)
            && shown.contains("exited with status 5"),
        "{shown}"
    );
    assert!(
        shown.contains(r#""service":"web","state":"waiting""#)
            && shown.contains("db cannot become ready"),
        "{shown}"
    );
    assert!(lines(&log).is_empty(), "web never started");
    assert!(down(&env, &file, &[]).status.success());
}

/// With the default policy (`restart = "on-failure"`, `start-retries = 3`), a service
/// that can never start is retried, then given up: `up` fails with its error rather than
/// wait out its timeout, and `status` says why.
#[test]
fn a_service_that_never_starts_is_given_up_after_its_start_retries() {
    let env = Env::new("up-retries");
    let file = config(
        &env,
        &format!(
            "[services.db]\ncommand = [{:?}, \"5\"]\nbackoff = \"10ms\"\n",
            fixture("crasher")
        ),
    );
    let out = up(&env, &file, &[]);
    assert_eq!(out.status.code(), Some(1), "{}", stdout(&out));
    assert!(
        stderr(&out).contains("crasher: crashing with status 5"),
        "{}",
        stderr(&out)
    );
    let log = std::fs::read_to_string(env.dir.join("state").join("db.log")).unwrap();
    for (n, delay) in [(1, "10ms"), (2, "20ms"), (3, "40ms")] {
        let note = format!("restart {n} (attempt {} of 4) in {delay}", n + 1);
        assert!(log.contains(&note), "{note}: {log}");
    }
    assert!(
        log.contains(
            "gave up: not ready after 4 attempts (--start-retries 3); last: exited with status 5"
        ),
        "{log}"
    );
    let status = env.status_line("db");
    assert!(status.contains("gave-up"), "{status}");
    assert!(down(&env, &file, &[]).status.success());
}

#[test]
fn stop_of_one_service_leaves_the_others_running() {
    let env = Env::new("up-stop");
    let sleeper = fixture("sleeper");
    let file = config(
        &env,
        &format!(
            "[defaults]\ngrace = \"100ms\"\n[services.a]\ncommand = \"{sleeper}\"\n[services.b]\ncommand = \"{sleeper}\"\n"
        ),
    );
    assert!(up(&env, &file, &[]).status.success());
    let a = env.child_pid("a");
    let b = env.child_pid("b");
    let out = env.daemonic(&["stop", "a"]);
    assert!(out.status.success(), "{}", stderr(&out));
    assert!(!alive(a));
    assert_eq!(env.child_pid("b"), b);
    // `up a` starts it again.
    assert!(up(&env, &file, &["a"]).status.success());
    assert_ne!(env.child_pid("a"), a);
    assert!(down(&env, &file, &[]).status.success());
}

#[test]
fn run_f_exits_with_the_main_services_status_and_stops_the_rest() {
    let env = Env::new("run-f");
    let log = env.dir.join("events");
    let file = config(
        &env,
        &format!(
            "main = \"job\"\n\n{}[services.job]\ncommand = [{:?}, \"7\"]\ndepends-on = [\"db\"]\n",
            lifecycle("db", &log, 0, &[]),
            fixture("crasher"),
        ),
    );
    let out = env.daemonic(&["run", "-f", file.to_str().unwrap()]);
    assert_eq!(out.status.code(), Some(7), "{}", stderr(&out));
    assert_eq!(lines(&log), ["db start", "db ready", "db stop"]);
}

#[test]
fn a_failing_readiness_check_holds_back_dependents_until_it_passes() {
    let env = Env::new("up-health");
    let log = env.dir.join("events");
    let flag = env.dir.join("db-is-healthy");
    let file = config(
        &env,
        &format!(
            "[services.db]\ncommand = {:?}\ngrace = \"100ms\"\nreadiness = \"exec:test -e {}\"\nreadiness-interval = \"100ms\"\nreadiness-failures = 1\n\n{}",
            fixture("sleeper"),
            flag.display(),
            lifecycle("web", &log, 0, &["db"])
        ),
    );
    let out = up(&env, &file, &["--timeout", "1s"]);
    assert_eq!(out.status.code(), Some(124), "{}", stdout(&out));
    assert!(
        stdout(&out).contains("): unhealthy: readiness failed once: exec `test -e"),
        "{}",
        stdout(&out)
    );
    assert_eq!(
        stdout(&out).matches("unhealthy").count(),
        1,
        "a line per change, not per failed attempt: {}",
        stdout(&out)
    );
    assert!(
        lines(&log).is_empty(),
        "web must not start: {:?}",
        lines(&log)
    );
    // What a container's probes would see: alive, not ready.
    assert_eq!(env.daemonic(&["status", "db"]).status.code(), Some(0));
    assert_eq!(
        env.daemonic(&["status", "db", "--ready"]).status.code(),
        Some(3)
    );
    std::fs::write(&flag, "").unwrap();
    let out = up(&env, &file, &[]);
    assert!(out.status.success(), "{}", stdout(&out));
    assert_eq!(lines(&log), ["web start", "web ready"]);
    assert_eq!(env.daemonic(&["status", "--ready"]).status.code(), Some(0));
    assert!(down(&env, &file, &[]).status.success());
}

#[test]
fn on_a_terminal_up_redraws_one_line_per_service_in_place() {
    if std::process::Command::new("script")
        .arg("--version")
        .output()
        .is_err()
    {
        eprintln!("skipped: script(1) (util-linux) is not installed; it provides the terminal");
        return;
    }
    let env = Env::new("up-tty");
    let log = env.dir.join("events");
    let file = config(
        &env,
        &format!(
            "{}{}",
            lifecycle("db", &log, 300, &[]),
            lifecycle("web", &log, 0, &["db"])
        ),
    );
    let bin = env!("CARGO_BIN_EXE_daemonic");
    let cmd = format!(
        "DAEMONIC_STATE_DIR={} {bin} up -f {}",
        env.dir.join("state").display(),
        file.display()
    );
    let out = run(std::process::Command::new("script").args(["-qec", &cmd, "/dev/null"]));
    assert!(out.status.success(), "{}", stderr(&out));
    let screen = stdout(&out);
    // The block of two lines is redrawn: cursor up two lines, each line cleared first.
    assert!(screen.contains("\x1b[2A\x1b[2K"), "{screen:?}");
    let last = screen.rsplit("\x1b[2A").next().unwrap();
    assert!(
        last.contains("✓\x1b[0m db") && last.contains("✓\x1b[0m web"),
        "{last:?}"
    );
    assert!(down(&env, &file, &[]).status.success());
}

#[test]
fn run_f_fails_when_the_main_service_never_ran() {
    let env = Env::new("run-f-never");
    let log = env.dir.join("events");
    let file = config(
        &env,
        &format!(
            "main = \"web\"\n\n[services.db]\ncommand = [{:?}, \"5\"]\n\n{}",
            fixture("crasher"),
            lifecycle("web", &log, 0, &["db"]),
        ),
    );
    let out = env.daemonic(&["run", "-f", file.to_str().unwrap()]);
    assert_eq!(out.status.code(), Some(1), "{}", stderr(&out));
    assert!(stderr(&out).contains("web never ran"), "{}", stderr(&out));
    assert!(lines(&log).is_empty());
}

#[test]
fn a_broken_edit_changes_nothing_by_up_or_by_sighup() {
    let env = Env::new("up-broken");
    let sleeper = fixture("sleeper");
    let good = format!("[services.a]\ncommand = \"{sleeper}\"\ngrace = \"100ms\"\n");
    let file = config(&env, &good);
    let sup_log = env.dir.join("supervisor.log");
    let out = up(
        &env,
        &file,
        &["--supervisor-log", sup_log.to_str().unwrap()],
    );
    assert!(out.status.success(), "{}", stderr(&out));
    let a = env.child_pid("a");

    config(&env, &format!("{good}restrat = \"always\"\n"));
    let out = up(&env, &file, &[]);
    assert_eq!(out.status.code(), Some(1));
    assert!(
        stderr(&out).contains("4:1: unknown key `restrat`"),
        "{}",
        stderr(&out)
    );

    let supervisor = env.supervisor_pid("a");
    nix::sys::signal::kill(supervisor, nix::sys::signal::Signal::SIGHUP).unwrap();
    let said = wait_for("the supervisor's answer to SIGHUP", SOON, || {
        let text = std::fs::read_to_string(&sup_log).unwrap_or_default();
        text.contains("SIGHUP").then_some(text)
    });
    assert!(
        said.contains("unknown key `restrat`") && said.contains("nothing changed"),
        "{said}"
    );
    assert_eq!(env.child_pid("a"), a, "still the same process");
    config(&env, &good);
    assert!(down(&env, &file, &[]).status.success());
}

#[test]
fn nonsense_intervals_and_exit_codes_are_refused_by_check_and_by_start() {
    let env = Env::new("nonsense");
    let cases = [
        ("success-exit-codes = [256]", "invalid exit code \"256\""),
        ("success-exit-codes = [-1]", "invalid exit code \"-1\""),
        (
            "watchdog = \"0s\"",
            "invalid duration \"0s\" (expected more than 0",
        ),
        ("probe-interval = \"0ms\"", "invalid probe interval \"0ms\""),
        (
            "probe-timeout = \"0s\"",
            "invalid duration \"0s\" (expected more than 0",
        ),
        ("backoff-multiplier = 0.5", "invalid multiplier \"0.5\""),
        ("backoff-multiplier = \"NaN\"", "invalid multiplier \"NaN\""),
    ];
    for (line, want) in cases {
        let file = config(
            &env,
            &format!("[services.a]\ncommand = \"sleep 1\"\n{line}\n"),
        );
        let out = env.daemonic(&["check", "-f", file.to_str().unwrap()]);
        assert_eq!(out.status.code(), Some(1), "{line}");
        assert!(stderr(&out).contains(want), "{line}: {}", stderr(&out));
        let (key, value) = line.split_once(" = ").unwrap();
        let value = value.trim_matches(['[', ']', '"']);
        let flag = format!("--{key}={value}");
        let out = env.daemonic(&["start", "--name", "a", &flag, "--", "sleep", "1"]);
        assert_eq!(out.status.code(), Some(2), "{flag}");
        assert!(stderr(&out).contains(want), "{flag}: {}", stderr(&out));
    }
}

#[test]
fn many_services_under_a_low_soft_fd_limit_all_start_and_keep_that_limit() {
    let prlimit = std::process::Command::new("prlimit")
        .arg("--version")
        .output();
    if !prlimit.is_ok_and(|o| o.status.success()) {
        eprintln!("skipping many_services_under_a_low_soft_fd_limit…: prlimit not installed");
        return;
    }
    let env = Env::new("nofile");
    let sleeper = fixture("sleeper");
    let text: String = (0..24)
        .map(|n| format!("[services.s{n}]\ncommand = \"{sleeper} 600\"\n\n"))
        .collect();
    let file = config(&env, &text);
    let out = run(std::process::Command::new("prlimit")
        .args(["--nofile=64:4096", env!("CARGO_BIN_EXE_daemonic")])
        .args(["up", "-f", file.to_str().unwrap()])
        .env("DAEMONIC_STATE_DIR", env.dir.join("state")));
    assert!(out.status.success(), "{}", stderr(&out));
    let list = String::from_utf8_lossy(&env.daemonic(&["list"]).stdout).into_owned();
    assert_eq!(
        list.lines().filter(|l| l.contains(" ready ")).count(),
        24,
        "{list}"
    );
    let limits = std::fs::read_to_string(format!("/proc/{}/limits", env.child_pid("s7"))).unwrap();
    let open = limits
        .lines()
        .find(|l| l.starts_with("Max open files"))
        .unwrap();
    assert_eq!(
        open.split_whitespace().collect::<Vec<_>>()[3..5],
        ["64", "4096"],
        "{open}"
    );
    assert!(down(&env, &file, &[]).status.success());
}
