//! The supervisor end to end: watchdog, a killed supervisor, readiness probes, and the
//! supervisor under pressure (a notify flood from another user, no descriptors left).
//! Real supervisors, real fixture programs, observed as a user would. The control socket
//! is in `supervisor_control.rs`, log capture in `supervisor_logs.rs`.

use daemonic_test_support as support;

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

/// `WATCHDOG_PID` names the child itself, as systemd sets it (libsystemd's
/// `sd_watchdog_enabled` ignores `WATCHDOG_USEC` without it) — alone, beside `LISTEN_PID`
/// when the service has a socket, and for a child that drops privileges.
#[test]
fn a_watchdog_child_gets_its_own_pid_as_watchdog_pid() {
    let env = Env::new("watchdog-pid");
    let script = "echo \"pid=$$ watchdog=$WATCHDOG_PID listen=$LISTEN_PID\"; exec sleep 3600";
    let port = free_port().to_string();
    let socket = format!("web=tcp:127.0.0.1:{port}");
    let mut cases = vec![("wp", vec![]), ("wps", vec!["--socket", socket.as_str()])];
    if root("a_watchdog_child_gets_its_own_pid_as_watchdog_pid (as nobody)") {
        cases.push(("wpn", vec!["--user", "nobody"]));
    }
    for (name, extra) in cases {
        let log = env.dir.join(&format!("{name}.log"));
        let mut args = vec!["start", "--name", name, "--watchdog", "1h", "--log-file"];
        args.push(log.to_str().unwrap());
        args.extend(extra.iter().copied());
        args.extend(["--", "sh", "-c", script]);
        let out = env.daemonic(&args);
        assert!(out.status.success(), "{name}: {}", stderr(&out));
        let line = wait_for(&format!("{name}'s line"), SOON, || {
            let text = std::fs::read_to_string(&log).unwrap_or_default();
            text.lines().find(|l| l.contains("pid=")).map(str::to_owned)
        });
        let pid = env.child_pid(name).as_raw();
        let listen = if extra.first() == Some(&"--socket") {
            pid.to_string()
        } else {
            String::new()
        };
        assert!(
            line.ends_with(&format!("pid={pid} watchdog={pid} listen={listen}")),
            "{name}: {line}"
        );
        assert!(env.daemonic(&["stop", name]).status.success());
    }
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

    let supervisor = PidFd::open(env.supervisor_pid("k")).unwrap();
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
    let status = env.status_line("t");
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

/// A supervisor of one service from a config file (`up`), with its own log at
/// `supervisor.log`.
fn up_one(env: &Env, name: &str) -> std::path::PathBuf {
    let file = env.dir.join("daemonic.toml");
    let sleeper = fixture("sleeper");
    std::fs::write(
        &file,
        format!("[services.{name}]\ncommand = \"{sleeper} 600\"\n"),
    )
    .unwrap();
    let log = env.dir.join("supervisor.log");
    let out = env.daemonic(&[
        "up",
        "-f",
        file.to_str().unwrap(),
        "--supervisor-log",
        log.to_str().unwrap(),
    ]);
    assert!(
        out.status.success(),
        "{}",
        String::from_utf8_lossy(&out.stderr)
    );
    log
}

#[test]
fn a_notify_flood_from_another_user_neither_fills_the_log_nor_blocks_status() {
    if !root("a_notify_flood_from_another_user_neither_fills_the_log_nor_blocks_status") {
        return;
    }
    let env = Env::new("notify-flood");
    let log = up_one(&env, "f");
    let child = env.child_pid("f");
    let environ = std::fs::read(format!("/proc/{child}/environ")).unwrap();
    let socket = environ
        .split(|b| *b == 0)
        .find_map(|v| v.strip_prefix(b"NOTIFY_SOCKET="))
        .map(|v| String::from_utf8(v.to_vec()).unwrap())
        .expect("NOTIFY_SOCKET in the child's environment");
    use std::os::unix::process::CommandExt;
    let flooder = std::process::Command::new(fixture("notify-flood"))
        .args([&socket, "3000"])
        .uid(65534)
        .gid(65534)
        .stdout(std::process::Stdio::piped())
        .spawn()
        .unwrap();
    let guard = KillOnDrop::new(Pid::from_raw(flooder.id() as i32));
    let mut answered = 0;
    while alive(guard.pid()) {
        let started = std::time::Instant::now();
        let out = env.daemonic(&["status", "f"]);
        assert!(
            out.status.success(),
            "status during the flood: {}",
            stderr(&out)
        );
        assert!(started.elapsed() < std::time::Duration::from_secs(2));
        answered += 1;
    }
    let sent = flooder.wait_with_output().unwrap();
    let sent: u64 = String::from_utf8_lossy(&sent.stdout)
        .trim()
        .parse()
        .unwrap();
    assert!(
        answered > 0 && sent > 1000,
        "answered {answered}, sent {sent}"
    );
    let size = std::fs::metadata(&log).unwrap().len();
    assert!(
        size < 16 * 1024,
        "{size} bytes of supervisor log for {sent} datagrams"
    );
    assert!(
        env.daemonic(&[
            "down",
            "-f",
            env.dir.join("daemonic.toml").to_str().unwrap()
        ])
        .status
        .success()
    );
}

/// User plus system CPU time of `pid`, in clock ticks.
fn cpu_ticks(pid: Pid) -> u64 {
    let field = |n| stat_field(pid, n).unwrap().parse::<u64>().unwrap();
    field(11) + field(12)
}

#[test]
fn out_of_descriptors_the_supervisor_pauses_accepting_instead_of_spinning() {
    let prlimit = std::process::Command::new("prlimit")
        .arg("--version")
        .output();
    if !prlimit.is_ok_and(|o| o.status.success()) {
        eprintln!("skipping out_of_descriptors…: prlimit (util-linux) not installed");
        return;
    }
    let env = Env::new("emfile");
    let out = env.daemonic(&["start", "--name", "x", "--", &fixture("sleeper"), "600"]);
    assert!(out.status.success(), "{}", stderr(&out));
    let sup = env.supervisor_pid("x");
    let open = std::fs::read_dir(format!("/proc/{sup}/fd"))
        .unwrap()
        .count();
    let limit = format!("--nofile={}:{}", open + 2, open + 2);
    let out = run(std::process::Command::new("prlimit").args(["--pid", &sup.to_string(), &limit]));
    assert!(out.status.success(), "{}", stderr(&out));
    let socket = env.dir.join("state").join("x.sock");
    let held: Vec<_> = (0..6)
        .filter_map(|_| std::os::unix::net::UnixStream::connect(&socket).ok())
        .collect();
    assert!(!held.is_empty());
    wait_for("the supervisor's descriptors used up", SOON, || {
        let now = std::fs::read_dir(format!("/proc/{sup}/fd"))
            .unwrap()
            .count();
        (now >= open + 2).then_some(())
    });
    let (before, t0) = (cpu_ticks(sup), std::time::Instant::now());
    wait_for("a measuring window of 1 s", SOON, || {
        (t0.elapsed() >= std::time::Duration::from_secs(1)).then_some(())
    });
    let used = cpu_ticks(sup) - before;
    assert!(
        used < 20,
        "the supervisor used {used} ticks of CPU in 1 s out of descriptors"
    );
    drop(held);
    wait_for("status answering again", SOON, || {
        env.daemonic(&["status", "x"])
            .status
            .success()
            .then_some(())
    });
    assert!(env.daemonic(&["stop", "x"]).status.success());
}
