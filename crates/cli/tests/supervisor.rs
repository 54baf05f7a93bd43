//! The supervisor end to end: watchdog, a killed supervisor, and (with their own sections)
//! readiness probes, log capture and the control socket. Real supervisors, real fixture
//! programs, observed as a user would.

#[path = "../../daemonic/tests/support/mod.rs"]
mod support;

mod env;

use daemonic::process::PidFd;
use daemonic::{Pid, Signal};
use env::{Env, fixture};
use support::*;

fn pids_in(path: &std::path::Path) -> Vec<Pid> {
    let text = wait_for(&format!("pids in {}", path.display()), SOON, || {
        std::fs::read_to_string(path).ok()
    });
    text.lines()
        .map(|l| Pid::from_raw(l.parse().unwrap()))
        .collect()
}

fn supervisor_pid(env: &Env, name: &str) -> Pid {
    let text = std::fs::read_to_string(env.pid_file(name)).unwrap();
    Pid::from_raw(text.trim().parse().unwrap())
}

#[test]
fn a_missed_watchdog_ping_restarts_the_child() {
    let env = Env::new("watchdog");
    let starts = env.dir.join("starts");
    let log = env.dir.join("log");
    let out = env.daemonic(&[
        "start",
        "--name",
        "w",
        "--ready",
        "notify",
        "--watchdog",
        "400ms",
        "--restart",
        "on-failure",
        "--backoff",
        "10ms",
        "--log",
        log.to_str().unwrap(),
        "--",
        &fixture("watchdog-pinger"),
        "3",
        starts.to_str().unwrap(),
    ]);
    assert!(out.status.success(), "{}", stderr(&out));
    let lines = wait_for("a second start", SOON, || {
        let text = std::fs::read_to_string(&starts).unwrap_or_default();
        (text.lines().count() >= 2).then_some(text)
    });
    assert!(
        lines.starts_with("start 400000\n"),
        "WATCHDOG_USEC: {lines}"
    );
    let log = std::fs::read_to_string(&log).unwrap();
    assert!(
        log.contains("w: watchdog timeout (no WATCHDOG=1 within 400ms)"),
        "{log}"
    );
    assert!(
        log.contains("watchdog-pinger killed by SIGABRT; restart 1"),
        "{log}"
    );
    assert!(env.daemonic(&["stop", "w"]).status.success());
}

#[test]
fn a_killed_supervisor_leaves_no_orphans_and_a_new_one_starts_once() {
    let env = Env::new("sigkill");
    let first = env.dir.join("first");
    let prog = fixture("forks-grandchildren");
    let start = |file: &std::path::Path| {
        env.daemonic(&[
            "start",
            "--name",
            "k",
            "--grace",
            "100ms",
            "--",
            &prog,
            file.to_str().unwrap(),
            "3",
        ])
    };
    let out = start(&first);
    assert!(out.status.success(), "{}", stderr(&out));
    let child = env.child_pid("k");
    let mut tree: Vec<KillOnDrop> = pids_in(&first).into_iter().map(KillOnDrop::new).collect();
    tree.push(KillOnDrop::new(child));

    let supervisor = PidFd::open(supervisor_pid(&env, "k")).unwrap();
    supervisor.signal(Signal::SIGKILL).unwrap();
    for p in &tree {
        let pid = p.pid();
        wait_for(&format!("pid {pid} gone"), SOON, || {
            (!alive(pid)).then_some(())
        });
    }

    // The lock is free once the sentinel is done; a new supervisor starts exactly one tree.
    let second = env.dir.join("second");
    wait_for("the pid file unlocked", SOON, || {
        matches!(
            daemonic::PidFile::holder(env.pid_file("k")),
            Ok(daemonic::pidfile::Holder::None)
        )
        .then_some(())
    });
    let out = start(&second);
    assert!(out.status.success(), "{}", stderr(&out));
    let new_child = env.child_pid("k");
    let grandchildren = pids_in(&second);
    tree.extend(grandchildren.iter().copied().map(KillOnDrop::new));
    assert_ne!(new_child, child);
    assert_eq!(grandchildren.len(), 3);
    for g in &grandchildren {
        assert_eq!(
            stat_field(*g, 1),
            Some(new_child.to_string()),
            "parent of {g}"
        );
    }
    let old_alive: Vec<_> = tree[..4].iter().filter(|p| alive(p.pid())).collect();
    assert!(old_alive.is_empty(), "old processes came back?");
    assert!(env.daemonic(&["stop", "k"]).status.success());
    for g in grandchildren {
        assert!(!alive(g), "grandchild {g} outlived the stop");
    }
}

/// A port nobody listens on (bound, then released).
fn free_port() -> u16 {
    std::net::TcpListener::bind("127.0.0.1:0")
        .unwrap()
        .local_addr()
        .unwrap()
        .port()
}

#[test]
fn start_waits_for_a_tcp_port_to_accept() {
    let env = Env::new("ready-tcp");
    let port = free_port();
    let out = env.daemonic(&[
        "start",
        "--name",
        "t",
        "--ready",
        &format!("tcp:{port}"),
        "--probe-interval",
        "50ms",
        "--",
        &fixture("late-listener"),
        &port.to_string(),
        "400",
    ]);
    assert!(out.status.success(), "{}", stderr(&out));
    // Had `start` returned before the port accepted, this would be refused.
    std::net::TcpStream::connect(("127.0.0.1", port)).expect("port accepts once start returns");
    let status = String::from_utf8(env.daemonic(&["status", "t"]).stdout).unwrap();
    assert!(status.starts_with("t: ready, pid "), "{status}");
    assert!(env.daemonic(&["stop", "t"]).status.success());
}

#[test]
fn start_waits_for_an_exec_probe_to_succeed() {
    let env = Env::new("ready-exec");
    let flag = env.dir.join("listening");
    let out = env.daemonic(&[
        "start",
        "--name",
        "e",
        "--ready",
        &format!("exec:test -e {}", flag.display()),
        "--probe-interval",
        "50ms",
        "--",
        &fixture("late-listener"),
        &free_port().to_string(),
        "400",
        flag.to_str().unwrap(),
    ]);
    assert!(out.status.success(), "{}", stderr(&out));
    assert!(
        flag.exists(),
        "start returned before the probe could succeed"
    );
    assert!(env.daemonic(&["stop", "e"]).status.success());
}

#[test]
fn a_probe_that_never_succeeds_times_out_start_with_the_reason() {
    let env = Env::new("ready-never");
    let port = free_port();
    let out = env.daemonic(&[
        "start",
        "--name",
        "n",
        "--timeout",
        "500ms",
        "--ready",
        &format!("tcp:127.0.0.1:{port}"),
        "--probe-interval",
        "50ms",
        "--",
        &fixture("sleeper"),
    ]);
    assert_eq!(out.status.code(), Some(124), "{}", stderr(&out));
    assert!(
        stderr(&out).contains(&format!(
            "not ready: connect 127.0.0.1:{port}: Connection refused"
        )),
        "{}",
        stderr(&out)
    );
}
