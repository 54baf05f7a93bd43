//! What a new user meets running a first service: the logrotate recipe with `reopen`, a
//! probe's port held by someone else, `--pid-file`, a typo in a name, what a timed-out start
//! leaves, restarts of a killed service and of a crash loop, and what `start` and `stop`
//! say. Real supervisors and real programs (logrotate, sh, python3), as a user sees them.

use daemonic_test_support as support;

mod env;

use std::process::Command;

use env::{Env, text};
use support::{SOON, run, wait_for};

/// The logrotate recipe of docs/logging.md: `create`, then `daemonic reopen NAME` in
/// `postrotate`; a line written after the rotation lands in the new file.
#[test]
fn logrotate_create_with_daemonic_reopen_moves_the_writer_to_the_new_file() {
    if Command::new("logrotate").arg("--version").output().is_err() {
        eprintln!("skipping: logrotate is not installed");
        return;
    }
    let env = Env::new("reopen");
    let log = env.dir.join("rot.log");
    // Prints "before", then "after N" on each SIGUSR1 (`wait` is interrupted by it).
    let script = r#"trap 'n=$((n+1)); echo "after $n"' USR1; echo before; while :; do sleep 5 & wait $!; done"#;
    let out = env.daemonic(&[
        "start",
        "--name",
        "rot",
        "--log-file",
        log.to_str().unwrap(),
        "--",
        "sh",
        "-c",
        script,
    ]);
    assert!(out.status.success(), "{}", text(&out));
    let has = |path: &std::path::Path, what: &str| {
        std::fs::read_to_string(path).is_ok_and(|t| t.lines().any(|l| l == what))
    };
    wait_for("before in rot.log", SOON, || {
        has(&log, "before").then_some(())
    });

    let bin = env!("CARGO_BIN_EXE_daemonic");
    let state = env.dir.join("state");
    let conf = env.dir.join("logrotate.conf");
    std::fs::write(
        &conf,
        format!(
            "{log} {{\n  create\n  rotate 2\n  postrotate\n    DAEMONIC_STATE_DIR={state} {bin} reopen rot\n  endscript\n}}\n",
            log = log.display(),
            state = state.display(),
        ),
    )
    .unwrap();
    let out = Command::new("logrotate")
        .arg("-s")
        .arg(env.dir.join("logrotate.state"))
        .arg("-f")
        .arg(&conf)
        .output()
        .unwrap();
    assert!(out.status.success(), "logrotate: {}", text(&out));
    let rotated = env.dir.join("rot.log.1");
    assert!(has(&rotated, "before"), "rotated by logrotate");

    let out = env.daemonic(&["signal", "rot", "USR1"]);
    assert!(out.status.success(), "{}", text(&out));
    wait_for("after 1 in the new rot.log", SOON, || {
        has(&log, "after 1").then_some(())
    });
    assert!(
        !has(&rotated, "after 1"),
        "the supervisor still wrote to the rotated file"
    );

    // An unknown name is an error; `reopen` itself says what it did.
    let out = env.daemonic(&["reopen", "nosuch"]);
    assert_eq!(out.status.code(), Some(1), "{}", text(&out));
    let out = env.daemonic(&["reopen", "rot"]);
    assert!(out.status.success(), "{}", text(&out));
    assert_eq!(
        String::from_utf8_lossy(&out.stdout),
        "rot: 1 log file reopened\n"
    );
    let out = env.daemonic(&["stop", "rot"]);
    assert!(out.status.success(), "{}", text(&out));
}

/// A tcp probe whose port is already held by another process does not declare the service
/// ready (its own bind would fail a moment later): the start fails and names the holder.
#[test]
fn a_port_held_by_another_process_is_not_readiness_and_the_holder_is_named() {
    let env = Env::new("held-port");
    let held = std::net::TcpListener::bind("127.0.0.1:0").unwrap();
    let port = held.local_addr().unwrap().port();
    let me = std::process::id();
    let sleeper = env::fixture("sleeper");
    let ready = format!("tcp:127.0.0.1:{port}");
    let out = env.daemonic(&[
        "start",
        "--name",
        "held",
        "--ready",
        &ready,
        "--timeout",
        "2s",
        "--",
        &sleeper,
    ]);
    assert_eq!(out.status.code(), Some(124), "not ready: {}", text(&out));
    let err = String::from_utf8_lossy(&out.stderr);
    assert!(
        err.contains(&format!("127.0.0.1:{port} answers, but the listener is not this service's: it is held by pid {me} (")),
        "{err}"
    );

    // A program that crashes on the held port: its own exit is reported, with the holder.
    let script = format!(
        "exec python3 -c 'import socket; s = socket.socket(); s.bind((\"127.0.0.1\", {port})); s.listen(); input()'"
    );
    let out = env.daemonic(&[
        "start", "--name", "py", "--ready", &ready, "--", "sh", "-c", &script,
    ]);
    assert_eq!(out.status.code(), Some(1), "{}", text(&out));
    drop(held);
}

/// `--pid-file` for init scripts: names the supervisor, locked while it runs (a second
/// start with the same file fails), removed on stop; a relative path is the caller's.
#[test]
fn pid_file_names_the_locked_supervisor_and_goes_away_on_stop() {
    let env = Env::new("pid-file");
    let sleeper = env::fixture("sleeper");
    let mut cmd = env.cmd();
    cmd.current_dir(env.dir.path()).args([
        "start",
        "--name",
        "pf",
        "--pid-file",
        "pf.pid",
        "--",
        &sleeper,
    ]);
    let out = run(&mut cmd);
    assert!(out.status.success(), "{}", text(&out));
    let path = env.dir.join("pf.pid");
    let written: i32 = std::fs::read_to_string(&path)
        .unwrap()
        .trim()
        .parse()
        .unwrap();
    let status = env.status_line("pf");
    assert!(
        status.contains(&format!("(supervisor {written})")),
        "{status}"
    );
    assert_eq!(
        daemonic::PidFile::holder(&path).unwrap(),
        daemonic::pidfile::Holder::Locked(Some(daemonic::Pid::from_raw(written)))
    );

    let out = env.daemonic(&[
        "start",
        "--name",
        "pf2",
        "--pid-file",
        path.to_str().unwrap(),
        "--",
        &sleeper,
    ]);
    assert_eq!(out.status.code(), Some(1), "{}", text(&out));
    assert!(
        text(&out).contains(&format!("already running (pid {written}")),
        "{}",
        text(&out)
    );

    let out = env.daemonic(&["stop", "pf"]);
    assert!(out.status.success(), "{}", text(&out));
    assert!(!path.exists(), "removed when the supervisor ended");
}

/// A typo must not pass as "already stopped": `stop` of a name that never ran is an error
/// with the closest name that did; `status` tells "never started" from "stopped".
#[test]
fn stop_of_a_name_that_never_ran_is_an_error_and_status_tells_stopped_from_never() {
    let env = Env::new("typo");
    let sleeper = env::fixture("sleeper");
    let out = env.daemonic(&["start", "--name", "webapp", "--", &sleeper]);
    assert!(out.status.success(), "{}", text(&out));
    let out = env.daemonic(&["stop", "webap"]);
    assert_eq!(out.status.code(), Some(1), "{}", text(&out));
    assert!(
        text(&out).contains("webap: no such service (never started in"),
        "{}",
        text(&out)
    );
    assert!(
        text(&out).contains("did you mean `webapp`?"),
        "{}",
        text(&out)
    );

    let out = env.daemonic(&["stop", "webapp"]);
    assert!(out.status.success(), "{}", text(&out));
    let out = env.daemonic(&["status", "webapp"]);
    assert_eq!(out.status.code(), Some(3));
    assert!(
        String::from_utf8_lossy(&out.stdout).starts_with("webapp: not running (stopped "),
        "{}",
        text(&out)
    );
    // Stopping it again is fine (it ran here): a note, exit 0.
    let out = env.daemonic(&["stop", "webapp"]);
    assert!(out.status.success(), "{}", text(&out));
    let out = env.daemonic(&["status", "nosuch"]);
    assert_eq!(out.status.code(), Some(3));
    assert!(
        String::from_utf8_lossy(&out.stdout).starts_with("nosuch: not running (never started in "),
        "{}",
        text(&out)
    );

    // `down NAME` of a name the file does not have, even with nothing running.
    let file = env.dir.join("daemonic.toml");
    std::fs::write(
        &file,
        format!("[services.worker]\ncommand = [{sleeper:?}]\n"),
    )
    .unwrap();
    let out = env.daemonic(&["down", "-f", file.to_str().unwrap(), "wroker"]);
    assert_eq!(out.status.code(), Some(1), "{}", text(&out));
    assert!(
        text(&out).contains("did you mean `worker`?"),
        "{}",
        text(&out)
    );
}

/// A start that timed out (its supervisor SIGKILLed by the launcher) leaves a socket; the
/// next `list` removes what it can prove stale instead of warning about it forever.
#[test]
fn what_a_timed_out_start_leaves_is_cleaned_up_by_list() {
    let env = Env::new("timed-out");
    let sleeper = env::fixture("sleeper");
    let out = env.daemonic(&[
        "start",
        "--name",
        "slow",
        "--ready",
        "tcp:127.0.0.1:1",
        "--timeout",
        "300ms",
        "--",
        &sleeper,
    ]);
    assert_eq!(out.status.code(), Some(124), "{}", text(&out));
    for _ in 0..2 {
        let out = env.daemonic(&["list"]);
        assert!(out.status.success(), "{}", text(&out));
        assert_eq!(
            String::from_utf8_lossy(&out.stderr),
            "",
            "no note about a stale socket"
        );
    }
    assert!(!env.dir.join("state").join("slow.sock").exists());
}

/// With the default `--restart on-failure`, a service that ran for a while and is killed
/// with `kill -9` comes back at once (runit's rule: a run of 1 s is stable); only a crash
/// loop backs off.
#[test]
fn a_default_start_killed_comes_back_at_once_and_a_crash_loop_still_backs_off() {
    let env = Env::new("stable");
    let sleeper = env::fixture("sleeper");
    let out = env.daemonic(&["start", "--name", "st", "--", &sleeper]);
    assert!(out.status.success(), "{}", text(&out));
    let first = env.child_pid("st");
    // Until the child has run for more than a second (its age from /proc: starttime is
    // field 22 of stat, the 20th after the command name).
    let ticks = nix::unistd::sysconf(nix::unistd::SysconfVar::CLK_TCK)
        .unwrap()
        .unwrap() as f64;
    let uptime = || -> f64 {
        let boot: f64 = std::fs::read_to_string("/proc/uptime")
            .unwrap()
            .split(' ')
            .next()
            .unwrap()
            .parse()
            .unwrap();
        let start: f64 = support::stat_field(first, 19).unwrap().parse().unwrap();
        boot - start / ticks
    };
    wait_for("a run of more than 1.1 s", SOON, || {
        (uptime() > 1.1).then_some(())
    });
    nix::sys::signal::kill(first, nix::sys::signal::Signal::SIGKILL).unwrap();
    let log = env.dir.join("state").join("st.log");
    let note = wait_for("the restart note", SOON, || {
        std::fs::read_to_string(&log)
            .ok()?
            .lines()
            .find(|l| l.contains("; restart 1 in "))
            .map(str::to_string)
    });
    assert!(note.ends_with("; restart 1 in 0ms"), "{note}");
    // A new child runs, and `status` counts the restart.
    let second = wait_for("the second child", SOON, || {
        let out = env.daemonic(&["status", "st"]);
        let text = String::from_utf8_lossy(&out.stdout).into_owned();
        (text.starts_with("st: ready") && text.contains("restarts 1")).then_some(())?;
        Some(env.child_pid("st")).filter(|p| *p != first)
    });
    assert!(support::alive(second), "the restarted child runs");

    // A crash loop: each run shorter than a second waits longer than the one before.
    let out = env.daemonic(&[
        "start",
        "--name",
        "loop",
        "--backoff",
        "20ms",
        "--grace",
        "10ms",
        "--",
        "sh",
        "-c",
        "sleep 0.1; exit 1",
    ]);
    // Ready after 10 ms, dead at 100 ms: a crash loop of short runs once started.
    assert!(out.status.success(), "{}", text(&out));
    let log = env.dir.join("state").join("loop.log");
    let delays = wait_for("three restarts", SOON, || {
        let text = std::fs::read_to_string(&log).ok()?;
        let d: Vec<String> = text
            .lines()
            .filter_map(|l| l.split("; restart ").nth(1))
            .map(|r| r.split(" in ").nth(1).unwrap_or("").to_string())
            .collect();
        (d.len() >= 3).then_some(d)
    });
    assert_eq!(delays[..3], ["20ms", "40ms", "80ms"], "{delays:?}");
    for name in ["st", "loop"] {
        let _ = env.daemonic(&["stop", name]);
    }
}

/// `start` and `stop` say what they did in one line (nothing with `-q`); a start that
/// fails shows each attempt and the program's last lines from this start above the reason.
#[test]
fn start_and_stop_say_what_happened_and_a_failed_start_shows_attempts_and_the_log_tail() {
    let env = Env::new("say");
    let sleeper = env::fixture("sleeper");
    let out = env.daemonic(&["start", "--name", "web", "--", &sleeper]);
    assert!(out.status.success(), "{}", text(&out));
    let child = env.child_pid("web");
    assert_eq!(
        String::from_utf8_lossy(&out.stdout),
        format!("web: ready (pid {child})\n")
    );
    let out = env.daemonic(&["stop", "web"]);
    assert_eq!(String::from_utf8_lossy(&out.stdout), "web: stopped\n");
    let out = env.daemonic(&["start", "-q", "--name", "web", "--", &sleeper]);
    assert!(
        out.status.success() && out.stdout.is_empty() && out.stderr.is_empty(),
        "{}",
        text(&out)
    );
    let out = env.daemonic(&["stop", "-q", "web"]);
    assert!(
        out.status.success() && out.stdout.is_empty(),
        "{}",
        text(&out)
    );

    let script =
        "echo starting; echo 'python3: OSError: [Errno 98] Address already in use' >&2; exit 3";
    // The defaults: restarted on failure, at most 3 times before it was first ready.
    let out = env.daemonic(&[
        "start",
        "--name",
        "bad",
        "--backoff",
        "10ms",
        "--",
        "sh",
        "-c",
        script,
    ]);
    assert_eq!(out.status.code(), Some(3), "{}", text(&out));
    let err = String::from_utf8_lossy(&out.stderr);
    for (n, delay) in [(1, "10ms"), (2, "20ms"), (3, "40ms")] {
        let attempt = n + 1;
        let note = format!(
            "bad: sh exited with status 3; restart {n} (attempt {attempt} of 4) in {delay}"
        );
        assert!(err.contains(&note), "{note}: {err}");
    }
    assert!(!err.contains("restart 4"), "{err}");
    // The last 5 of the 8 lines four runs wrote (each run's two lines in either order).
    let tail = err
        .matches("| python3: OSError: [Errno 98] Address already in use")
        .count()
        + err.matches("| starting").count();
    assert_eq!(tail, 5, "{err}");
    let last = err.lines().last().unwrap_or("");
    assert!(
        last.starts_with("daemonic: bad: not ready: sh exited with status 3 before it was ready"),
        "{err}"
    );
    assert!(
        !err.contains("daemonic: bad: sh exited with status 3; not restarted"),
        "supervisor notes are not part of the tail: {err}"
    );
}
