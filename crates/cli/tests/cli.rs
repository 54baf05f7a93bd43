//! The `daemonic` command line, end to end: real supervisors, real children (the fixture
//! programs in tests/fixtures), observed the way a user would.

use daemonic_test_support as support;

mod env;

use std::process::Command;

use daemonic::process::PidFd;
use daemonic::systemd::listen::{Message, NotifyListener};
use daemonic::{Pid, Signal};
use env::{Env, fixture, start_notify};
use support::*;

#[test]
fn start_returns_when_ready_then_status_and_stop() {
    let env = Env::new("start-stop");
    let sleeper = fixture("sleeper");
    let out = env.daemonic(&["start", "--name", "web", "--grace", "200ms", "--", &sleeper]);
    assert!(out.status.success(), "{}", stderr(&out));
    let child = env.child_pid("web");
    assert!(alive(child));
    let status = env.status_line("web");
    assert!(
        status.starts_with(&format!("web: ready, pid {child} (supervisor ")),
        "{status}"
    );

    let out = env.daemonic(&["stop", "web"]);
    assert!(out.status.success(), "{}", stderr(&out));
    assert!(!alive(child), "child stopped");
    assert!(!env.pid_file("web").exists(), "pid file removed");
    let out = env.daemonic(&["status", "web"]);
    assert_eq!(out.status.code(), Some(3));
    let said = String::from_utf8_lossy(&out.stdout);
    assert!(said.starts_with("web: not running (stopped "), "{said}");
}

#[test]
fn start_waits_for_ready_1_from_a_notify_program() {
    let env = Env::new("notify");
    let prog = fixture("notify-ready");
    let out = start_notify(&env, "api", &[&prog, "300", "warmed up"]);
    assert!(out.status.success(), "{}", stderr(&out));
    // Had `start` returned before READY=1, the supervisor would still say "starting".
    let status = env.status_line("api");
    assert!(status.starts_with("api: ready, pid "), "{status}");
    assert!(status.ends_with("; status: warmed up\n"), "{status}");
}

#[test]
fn ready_grace_ignores_ready_1_and_waits_out_the_grace_period() {
    let env = Env::new("grace-only");
    let prog = fixture("notify-ready");
    // READY=1 at once, exit 100 ms later: well inside the 5 s grace period.
    let out = env.daemonic(&[
        "start", "--name", "g", "--ready", "grace", "--grace", "5s", "--", &prog, "0", "s", "100",
    ]);
    assert_eq!(out.status.code(), Some(1), "{}", stderr(&out));
    assert!(
        stderr(&out).contains("notify-ready exited with status 0 before it was ready"),
        "{}",
        stderr(&out)
    );
}

#[test]
fn start_fails_with_the_childs_status_and_reason() {
    let env = Env::new("crash");
    let crasher = fixture("crasher");
    let out = env.daemonic(&[
        "start", "--name", "c", "--grace", "5s", "--", &crasher, "4", "50",
    ]);
    assert_eq!(out.status.code(), Some(4), "{}", stderr(&out));
    assert!(
        stderr(&out)
            .contains("daemonic: c: not ready: crasher exited with status 4 before it was ready"),
        "{}",
        stderr(&out)
    );
    assert!(!env.pid_file("c").exists());

    let out = env.daemonic(&["start", "--name", "missing", "--", "/nonexistent/program"]);
    assert_eq!(out.status.code(), Some(127), "{}", stderr(&out));
    assert!(
        stderr(&out).contains("spawn /nonexistent/program: No such file or directory"),
        "{}",
        stderr(&out)
    );
}

#[test]
fn second_start_names_the_running_supervisor() {
    let env = Env::new("twice");
    let sleeper = fixture("sleeper");
    assert!(
        env.daemonic(&["start", "--name", "s", "--grace", "0s", "--", &sleeper])
            .status
            .success()
    );
    let pid = std::fs::read_to_string(env.pid_file("s")).unwrap();
    let out = env.daemonic(&["start", "--name", "s", "--grace", "0s", "--", &sleeper]);
    assert_eq!(out.status.code(), Some(1));
    assert!(
        stderr(&out).contains(&format!("s: already running (pid {}", pid.trim())),
        "{}",
        stderr(&out)
    );
}

#[test]
fn stop_escalates_to_sigkill_for_a_child_that_ignores_sigterm() {
    let env = Env::new("stubborn");
    let prog = fixture("ignores-sigterm");
    let out = env.daemonic(&[
        "start",
        "--name",
        "x",
        "--grace",
        "300ms",
        "--stop-timeout",
        "300ms",
        "--",
        &prog,
    ]);
    assert!(out.status.success(), "{}", stderr(&out));
    let child = env.child_pid("x");
    let out = env.daemonic(&["stop", "x"]);
    assert!(out.status.success(), "{}", stderr(&out));
    assert!(!alive(child));
}

#[test]
fn stop_kills_the_childs_grandchildren() {
    let env = Env::new("grandchildren");
    let pids_file = env.dir.join("pids");
    let prog = fixture("forks-grandchildren");
    let out = env.daemonic(&[
        "start",
        "--name",
        "g",
        "--grace",
        "100ms",
        "--",
        &prog,
        pids_file.to_str().unwrap(),
        "3",
    ]);
    assert!(out.status.success(), "{}", stderr(&out));
    let text = wait_for("grandchildren pids", SOON, || {
        std::fs::read_to_string(&pids_file).ok()
    });
    let grandchildren: Vec<KillOnDrop> = text
        .lines()
        .map(|l| KillOnDrop::new(Pid::from_raw(l.parse().unwrap())))
        .collect();
    assert_eq!(grandchildren.len(), 3);
    assert!(env.daemonic(&["stop", "g"]).status.success());
    for g in &grandchildren {
        assert!(
            g.exited_within(SOON),
            "grandchild {} survived the stop",
            g.pid()
        );
    }
}

#[test]
fn stop_and_status_never_trust_a_pid_file_naming_an_unrelated_process() {
    let env = Env::new("bystander");
    let mut bystander = Command::new("sleep").arg("300").spawn().unwrap();
    std::fs::create_dir_all(env.dir.join("state")).unwrap();
    std::fs::write(env.pid_file("web"), format!("{}\n", bystander.id())).unwrap();
    let out = env.daemonic(&["stop", "web"]);
    assert!(out.status.success());
    assert!(
        stderr(&out).contains("web: not running"),
        "{}",
        stderr(&out)
    );
    assert_eq!(env.daemonic(&["status", "web"]).status.code(), Some(3));
    assert!(
        bystander.try_wait().unwrap().is_none(),
        "bystander untouched"
    );
    bystander.kill().unwrap();
    bystander.wait().unwrap();
}

#[test]
fn run_forwards_readiness_to_its_manager_and_exits_with_the_childs_status() {
    let env = Env::new("run");
    let socket = env.dir.join("notify.sock");
    let manager = NotifyListener::bind(&socket).unwrap();
    let prog = fixture("notify-ready");
    let mut run = env
        .cmd()
        .args(["run", "--ready", "notify", "--", &prog, "0", "hello"])
        .env("NOTIFY_SOCKET", &socket)
        .spawn()
        .unwrap();
    let handle = PidFd::open(Pid::from_raw(run.id() as i32)).unwrap();
    let guard = KillOnDrop(PidFd::open(handle.pid()).ok());
    let mut seen = Vec::new();
    while !seen.contains(&Message::Ready) {
        let d = manager.recv().unwrap();
        assert_eq!(
            d.sender.unwrap().pid,
            handle.pid(),
            "sent by daemonic run itself"
        );
        seen.extend(d.messages);
    }
    assert!(seen.contains(&Message::Status("hello".into())), "{seen:?}");
    handle.signal(Signal::SIGTERM).unwrap();
    assert!(
        run.wait().unwrap().success(),
        "the child exited 0 on SIGTERM"
    );
    drop(guard);

    let crasher = fixture("crasher");
    let out = env.daemonic(&["run", "--", &crasher, "7"]);
    assert_eq!(out.status.code(), Some(7));
}
