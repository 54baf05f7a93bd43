//! Restarts end to end: real supervisors restarting real fixture programs. Tests assert the
//! delays the supervisor reports choosing (stderr: `restart N in Xms`), never how long
//! anything took on the wall clock.

use daemonic_test_support as support;

mod env;

use std::process::{Command, Output};
use std::time::Instant;

use daemonic::Pid;
use env::renames::Renames;
use env::{Env, fixture, text};
use support::*;

/// Runs a foreground `daemonic run` to its end (failing the test if that takes longer
/// than `SOON`; the supervisor, and with it its child, is killed either way).
fn run_to_end(cmd: &mut Command) -> Output {
    let (child, guard) = spawn_piped(cmd);
    assert!(guard.exited_within(SOON), "daemonic run did not end");
    child.wait_with_output().unwrap()
}

/// The restart delays reported on stderr, in order.
fn delays(out: &Output) -> Vec<u64> {
    stderr(out)
        .lines()
        .filter_map(|l| l.split("; restart ").nth(1))
        .map(|rest| {
            let ms = rest.split(" in ").nth(1).unwrap();
            ms.trim_end_matches("ms").parse().unwrap()
        })
        .collect()
}

#[test]
fn restart_delays_follow_the_backoff_sequence_up_to_the_cap() {
    let env = Env::new("backoff");
    let crasher = fixture("crasher");
    let out = run_to_end(env.cmd().args([
        "run",
        "--restart",
        "on-failure",
        "--backoff",
        "50ms",
        "--backoff-multiplier",
        "2",
        "--backoff-max",
        "400ms",
        "--start-limit",
        "6/1m",
        // Never ready (it crashes at once): more retries than the start limit allows.
        "--start-retries",
        "10",
        "--",
        &crasher,
        "3",
    ]));
    assert_eq!(delays(&out), [50, 100, 200, 400, 400], "{}", stderr(&out));
    assert_eq!(out.status.code(), Some(3), "the last exit's status");
}

#[test]
fn a_stable_run_is_restarted_at_once_and_resets_the_backoff() {
    let env = Env::new("reset");
    let runs = env.dir.join("runs");
    let flaky = fixture("flaky");
    // Runs 1-3 crash at once, run 4 lasts past --backoff-reset-after (stable: restarted at
    // once), 5-6 crash at once (the backoff starts over).
    let out = run_to_end(env.cmd().args([
        "run",
        "--restart",
        "always",
        "--backoff",
        "50ms",
        "--backoff-reset-after",
        "500ms",
        "--start-limit",
        "6/1m",
        "--start-retries",
        "10",
        "--",
        &flaky,
        runs.to_str().unwrap(),
        "0",
        "0",
        "0",
        "700",
        "0",
    ]));
    assert_eq!(delays(&out), [50, 100, 200, 0, 50], "{}", stderr(&out));
    assert_eq!(std::fs::read_to_string(&runs).unwrap().lines().count(), 6);
}

#[test]
fn the_start_limit_gives_up_and_runs_the_hook_once() {
    let env = Env::new("give-up");
    let alerts = env.dir.join("alerts");
    let hook = format!(
        r#"printf '%s|%s|%s\n' "$DAEMONIC_SERVICE" "$DAEMONIC_LAST_EXIT" "$DAEMONIC_REASON" >> {}"#,
        alerts.display()
    );
    let crasher = fixture("crasher");
    let out = run_to_end(env.cmd().args([
        "run",
        "--name",
        "svc",
        "--restart",
        "always",
        "--backoff",
        "10ms",
        "--backoff-multiplier",
        "1",
        "--start-limit",
        "3/1m",
        "--start-retries",
        "10",
        "--on-give-up",
        &hook,
        "--",
        &crasher,
        "5",
    ]));
    assert_eq!(out.status.code(), Some(5), "{}", stderr(&out));
    assert_eq!(delays(&out), [10, 10], "3 starts: 2 restarts");
    let reason = "start limit reached (3 starts within 60s); last: exited with status 5";
    assert!(
        stderr(&out).contains(&format!("daemonic: svc: gave up: {reason}")),
        "{}",
        stderr(&out)
    );
    let text = std::fs::read_to_string(&alerts).unwrap();
    assert_eq!(text, format!("svc|5|{reason}\n"), "the hook ran once");
    assert!(!env.pid_file("svc").exists(), "the supervisor ended");
    // `status` says why it is not running.
    let out = env.daemonic(&["status", "svc"]);
    assert_eq!(out.status.code(), Some(3));
    let line = String::from_utf8(out.stdout).unwrap();
    assert!(
        line.starts_with("svc: not running (gave-up ")
            && line.ends_with(" ago, last exited with status 5, restarts 2)\n"),
        "{line}"
    );
}

#[test]
fn restart_never_and_success_codes_end_after_one_exit() {
    let env = Env::new("never");
    let runs = env.dir.join("runs");
    let flaky = fixture("flaky");
    let path = runs.to_str().unwrap();
    let out = run_to_end(
        env.cmd()
            .args(["run", "--restart", "never", "--", &flaky, path, "0"]),
    );
    assert_eq!(out.status.code(), Some(1));
    assert_eq!(delays(&out), [] as [u64; 0], "{}", stderr(&out));
    assert_eq!(std::fs::read_to_string(&runs).unwrap(), "run 1\n");

    let crasher = fixture("crasher");
    let out = run_to_end(env.cmd().args([
        "run",
        "--restart",
        "on-failure",
        "--success-exit-codes",
        "0,3",
        "--",
        &crasher,
        "3",
    ]));
    assert_eq!(out.status.code(), Some(3));
    assert_eq!(delays(&out), [] as [u64; 0], "3 counts as success");
}

#[test]
fn stop_during_backoff_stops_at_once() {
    let env = Env::new("stop-backoff");
    let crasher = fixture("crasher");
    // Ready after 50 ms, exits at 300 ms, then an hour's backoff.
    let out = env.daemonic(&[
        "start",
        "--name",
        "b",
        "--restart",
        "always",
        "--grace",
        "50ms",
        "--backoff",
        "1h",
        "--backoff-max",
        "1h",
        "--",
        &crasher,
        "1",
        "300",
    ]);
    assert!(out.status.success(), "{}", stderr(&out));
    let status = wait_for("state backoff", SOON, || {
        let out = env.daemonic(&["status", "b"]);
        let text = String::from_utf8_lossy(&out.stdout).into_owned();
        text.starts_with("b: backoff").then_some(text)
    });
    assert!(
        status.contains("restarts 1, last exited with status 1, next start after 60m"),
        "{status}"
    );
    let asked = Instant::now();
    let out = env.daemonic(&["stop", "b"]);
    assert!(out.status.success(), "{}", stderr(&out));
    assert!(
        asked.elapsed() < SOON,
        "stopped without waiting out the backoff"
    );
    assert_eq!(env.daemonic(&["status", "b"]).status.code(), Some(3));
}

/// Regression: a zero restart delay starts the child at once (without a timer turn of
/// the loop) and still goes through the start limit.
#[test]
fn a_zero_backoff_restarts_at_once_and_still_gives_up() {
    let env = Env::new("zero-backoff");
    let out = run_to_end(env.cmd().args([
        "run",
        "--restart",
        "always",
        "--backoff",
        "0ms",
        "--start-limit",
        "4/1m",
        "--start-retries",
        "10",
        "--",
        &fixture("crasher"),
        "2",
    ]));
    assert_eq!(out.status.code(), Some(2), "{}", stderr(&out));
    assert_eq!(delays(&out), [0, 0, 0]);
    assert!(stderr(&out).contains("gave up: start limit reached (4 starts within 60s)"));
}

/// Regression: the give-up hook ran to its end inside the loop (up to `--stop-timeout`,
/// then up to an hour), so in a config-file supervisor every other service stalled while
/// it ran. Now it is an attempt in the poll set: with one service's hook blocked (on a
/// fifo only the test opens), another service is restarted and answered for.
#[test]
fn a_slow_give_up_hook_does_not_stall_the_other_services() {
    let env = Env::new("slow-hook");
    let fifo = env.dir.join("release");
    nix::unistd::mkfifo(&fifo, nix::sys::stat::Mode::from_bits_truncate(0o600)).unwrap();
    let hook_pid = env.dir.join("hook.pid");
    // `$$$$`: the config file's `$$` is a `$`.
    let hook = format!(
        "echo $$$$ > {}; read line < {}",
        hook_pid.display(),
        fifo.display()
    );
    let file = env.dir.join("daemonic.toml");
    let text = format!(
        "[services.flaky]\ncommand = [{crasher:?}, \"5\"]\nrestart = \"always\"\n\
         start-limit = \"1/1m\"\nstop-timeout = \"1m\"\non-give-up = {hook:?}\n\n\
         [services.web]\ncommand = [{sleeper:?}]\n",
        crasher = fixture("crasher"),
        sleeper = fixture("sleeper"),
    );
    std::fs::write(&file, &text).unwrap();
    let file = file.to_str().unwrap();
    // flaky gives up at once: `up` may say so; what matters is what follows.
    let out = env.daemonic(&["up", "-f", file]);
    let pid = wait_for(
        &format!("the hook to run (up: {})", stderr(&out)),
        SOON,
        || {
            let text = std::fs::read_to_string(&hook_pid).ok()?;
            text.trim().parse().ok().map(Pid::from_raw)
        },
    );
    // Blocked inside the loop, the hook held `up` until its time limit killed it.
    assert!(alive(pid), "the hook was killed before it was released");
    let hook = KillOnDrop::new(pid);
    let old = env.child_pid("web");
    let restart = env.daemonic(&["restart", "web"]);
    assert!(
        restart.status.success(),
        "restart while another service's hook runs: {}\n(up: {})",
        stderr(&restart),
        stderr(&out)
    );
    let new = env.child_pid("web");
    assert_ne!(new, old, "web was restarted");
    let flaky = env.daemonic(&["status", "flaky"]);
    assert!(
        String::from_utf8_lossy(&flaky.stdout).contains("gave-up"),
        "{}",
        String::from_utf8_lossy(&flaky.stdout)
    );
    assert!(alive(hook.pid()), "the hook still ran meanwhile");
    // Released, the hook ends, and the supervisor goes down as usual.
    std::fs::OpenOptions::new()
        .write(true)
        .open(&fifo)
        .and_then(|mut f| std::io::Write::write_all(&mut f, b"go\n"))
        .unwrap();
    assert!(hook.exited_within(SOON), "the hook ended once released");
    let out = env.daemonic(&["down", "-f", file]);
    assert!(out.status.success(), "{}", stderr(&out));
}

/// Regression: each state a turn of the loop passed through rewrote the status file — a
/// crash, the restart, and readiness at once (`--grace 0s`): two rewrites per restart,
/// most of a crash loop's CPU on ext4. Now a turn rewrites it once: as many rewrites as
/// starts, give or take the first and the last.
#[test]
fn a_crash_loop_rewrites_the_status_file_once_per_start() {
    use std::os::unix::fs::DirBuilderExt;
    let env = Env::new("status-writes");
    let state = env.dir.join("state");
    std::fs::DirBuilder::new()
        .mode(0o700)
        .create(&state)
        .unwrap();
    let renames = Renames::watch(&state);
    let out = env.daemonic(&[
        "start",
        "--name",
        "cl",
        "--ready",
        "grace",
        "--grace",
        "0s",
        "--restart",
        "always",
        "--backoff",
        "0ms",
        "--start-limit",
        "20/1m",
        "--",
        "/bin/false",
    ]);
    assert!(out.status.success(), "{}", text(&out));
    let line = wait_for("the start limit", SOON, || {
        let out = env.daemonic(&["status", "cl"]);
        let line = String::from_utf8_lossy(&out.stdout).into_owned();
        line.contains("gave-up").then_some(line)
    });
    assert!(line.contains("restarts 19"), "{line}");
    let rewrites = renames.onto("cl.status");
    assert!(
        (20..=24).contains(&rewrites),
        "20 starts, {rewrites} rewrites of the status file"
    );
}
