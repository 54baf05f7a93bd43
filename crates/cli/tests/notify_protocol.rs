//! The notify protocol's rules, as a user sees them: `RELOADING=1` is a state that keeps
//! the status text; `EXTEND_TIMEOUT_USEC=` past `--timeout` and `--stop-timeout`; who may
//! speak for a service (`notify-access`, the service's tree only), named in `start`'s
//! timeout message; and where the notify socket lives and that it goes with its
//! supervisor (swept or replaced after a SIGKILL); a datagram of many `STATUS=` lines
//! costs one status-file write. The clients themselves are in `notify_clients.rs`.

use daemonic_test_support as support;

mod env;
mod notify_support;

use std::path::Path;
use std::process::Command;

use env::{Env, fixture, start_notify};
use notify_support::*;
use support::*;

#[test]
fn reloading_is_a_state_and_keeps_the_status_text() {
    if lacks("systemd-notify") {
        return;
    }
    let env = Env::new("nc-reloading");
    let go = env.dir.join("go");
    let s = script(
        &env,
        "slow-reload.sh",
        &format!(
            "#!/bin/sh\ntrap 'systemd-notify RELOADING=1; while [ ! -e {go} ]; do sleep 0.05; done; \
             systemd-notify --ready' HUP\ntrap 'exit 0' TERM\n\
             systemd-notify --ready --status='serving 3 clients'\n\
             while :; do sleep 1 & wait $!; done\n",
            go = go.display()
        ),
    );
    let out = env.daemonic(&["start", "--name", "rl", "--ready", "notify", "--", &s]);
    assert!(out.status.success(), "{}", stderr(&out));
    assert!(env.daemonic(&["reload", "rl"]).status.success());
    let during = wait_for("state reloading", LIMIT, || {
        let s = status(&env, "rl");
        s.starts_with("rl: reloading, pid ").then_some(s)
    });
    assert!(during.contains("status: serving 3 clients"), "{during}");
    std::fs::write(&go, "").unwrap();
    let after = wait_for("ready again", LIMIT, || {
        let s = status(&env, "rl");
        s.starts_with("rl: ready, pid ").then_some(s)
    });
    assert!(after.contains("status: serving 3 clients"), "{after}");
    assert!(env.daemonic(&["stop", "rl"]).status.success());
}

#[test]
fn extend_timeout_usec_keeps_a_slow_starter_alive_past_the_timeout() {
    if lacks("systemd-notify") {
        return;
    }
    let env = Env::new("nc-extend");
    let slow = |extend: bool| {
        let ext = if extend {
            "systemd-notify EXTEND_TIMEOUT_USEC=3000000\n"
        } else {
            ""
        };
        format!(
            "#!/bin/sh\n{ext}sleep 1.5\n{ext}sleep 1.5\nsystemd-notify --ready --status=recovered\n\
             exec sleep 600\n"
        )
    };
    let with = script(&env, "extends.sh", &slow(true));
    let start = |name: &str, cmd: &str| {
        env.daemonic(&[
            "start",
            "--name",
            name,
            "--ready",
            "notify",
            "--timeout",
            "1s",
            "--",
            cmd,
        ])
    };
    let out = start("ext", &with);
    assert!(out.status.success(), "{}", stderr(&out));
    assert!(status(&env, "ext").contains("status: recovered"));
    assert!(env.daemonic(&["stop", "ext"]).status.success());
    // The same start without EXTEND_TIMEOUT_USEC= is killed at the timeout.
    let without = script(&env, "plain.sh", &slow(false));
    let out = start("plain", &without);
    assert_eq!(out.status.code(), Some(124), "{}", stderr(&out));
    // In the foreground the supervisor's own start timeout is the one extended.
    let mut run = env
        .cmd()
        .args([
            "run",
            "--name",
            "fg",
            "--ready",
            "notify",
            "--timeout",
            "1s",
            "--",
            &with,
        ])
        .stdout(std::process::Stdio::null())
        .stderr(std::process::Stdio::null())
        .spawn()
        .unwrap();
    // Killed (and its child with it) even if an assertion fails first.
    let guard = KillOnDrop::new(daemonic::Pid::from_raw(run.id() as i32));
    let s = wait_for("fg ready", LIMIT, || {
        let s = status(&env, "fg");
        s.starts_with("fg: ready").then_some(s)
    });
    assert!(
        s.contains("status: recovered") && !s.contains("restart"),
        "{s}"
    );
    drop(guard);
    let _ = run.wait();
}

#[test]
fn a_helpers_ready_under_notify_access_main_is_named_in_the_timeout_message() {
    let env = Env::new("nc-access");
    // The fixture runs as a child of the shell: a helper, not the main process.
    let cmd = format!("{} & wait", fixture("sd-notify-client"));
    let start = |name: &str, access: &str| {
        env.daemonic(&[
            "start",
            "--name",
            name,
            "--ready",
            "notify",
            "--notify-access",
            access,
            "--timeout",
            "2s",
            "--",
            "sh",
            "-c",
            &cmd,
        ])
    };
    let out = start("main", "main");
    assert_eq!(out.status.code(), Some(124), "{}", stderr(&out));
    let err = stderr(&out);
    let why = err
        .split("READY=1 from pid ")
        .nth(1)
        .unwrap_or_else(|| panic!("no READY=1 note in: {err}"));
    let pid: i32 = why.split(' ').next().unwrap().parse().unwrap();
    assert!(pid > 1, "{err}");
    assert!(
        why.contains("ignored: not the main process (notify-access = main)"),
        "{err}"
    );
    // The default (all) takes the helper's READY=1.
    let out = start("all", "all");
    assert!(out.status.success(), "{}", stderr(&out));
    assert!(env.daemonic(&["stop", "all"]).status.success());
}

#[test]
fn a_ready_from_outside_the_services_tree_never_counts() {
    let env = Env::new("nc-outside");
    let start = env
        .cmd()
        .args([
            "start",
            "--name",
            "quiet",
            "--ready",
            "notify",
            "--timeout",
            "3s",
            "--",
            "sleep",
            "600",
        ])
        .stdout(std::process::Stdio::piped())
        .stderr(std::process::Stdio::piped())
        .spawn()
        .unwrap();
    let pid = wait_for("the child's pid", LIMIT, || {
        let s = status(&env, "quiet");
        s.contains(", pid ").then(|| env.child_pid("quiet"))
    });
    let socket = notify_socket_of(pid);
    // This test process is in no service's tree, whatever it says (notify-access = all).
    let n = daemonic::systemd::notify::Notifier::new(&socket).unwrap();
    n.notify(&[
        daemonic::systemd::notify::State::Ready,
        daemonic::systemd::notify::State::Status("spoofed"),
    ])
    .unwrap();
    let out = start.wait_with_output().unwrap();
    assert_eq!(out.status.code(), Some(124), "{}", stderr(&out));
    assert!(!stderr(&out).contains("spoofed"), "{}", stderr(&out));
}

#[test]
fn a_killed_supervisors_notify_socket_is_swept_or_replaced_by_the_next() {
    let env = Env::new("nc-sweep");
    let start = |name: &str| {
        let out = start_notify(&env, name, &[&fixture("sd-notify-client")]);
        assert!(out.status.success(), "{}", stderr(&out));
        notify_socket_of(env.child_pid(name))
    };
    let first = start("a");
    let supervisor = env.supervisor_pid("a");
    // SIGKILL: nothing of the supervisor's runs to remove its socket.
    let guard = KillOnDrop::new(supervisor);
    nix::sys::signal::kill(supervisor, daemonic::Signal::SIGKILL).unwrap();
    assert!(guard.exited_within(LIMIT));
    assert!(
        Path::new(&first).exists(),
        "{first}: removed by a killed supervisor?"
    );
    // As root the next supervisor sweeps /run/daemonic-notify; otherwise the next start of
    // the same name replaces <state-dir>/a.notify.
    let root = nix::unistd::geteuid().is_root();
    let second = start(if root { "b" } else { "a" });
    if root {
        assert!(!Path::new(&first).exists(), "{first} not swept");
        assert_ne!(first, second);
    } else {
        assert_eq!(first, second);
    }
    for name in ["a", "b"] {
        let _ = env.daemonic(&["stop", name]);
    }
    assert!(!Path::new(&second).exists(), "{second} left behind");
}

#[test]
fn not_root_the_socket_lies_beside_the_control_socket_and_goes_with_the_supervisor() {
    if !root("not_root_the_socket_lies_beside_the_control_socket") {
        return;
    }
    if lacks("runuser") {
        return;
    }
    use std::os::unix::fs::PermissionsExt;
    let env = Env::new("nc-user");
    // Copies nobody can run, in a directory of nobody's.
    let dir = env.dir.join("nobody");
    std::fs::create_dir(&dir).unwrap();
    std::fs::set_permissions(env.dir.path(), std::fs::Permissions::from_mode(0o755)).unwrap();
    std::os::unix::fs::chown(&dir, Some(65534), Some(65534)).unwrap();
    let bin = dir.join("daemonic");
    let client = dir.join("sd-notify-client");
    std::fs::copy(env!("CARGO_BIN_EXE_daemonic"), &bin).unwrap();
    std::fs::copy(fixture("sd-notify-client"), &client).unwrap();
    let state = dir.join("state");
    let as_nobody = |args: &[&str]| {
        let mut c = Command::new("runuser");
        c.args(["-u", "nobody", "--", bin.to_str().unwrap(), "--state-dir"])
            .arg(&state)
            .args(args)
            .current_dir("/")
            .env_remove("XDG_RUNTIME_DIR");
        run(&mut c)
    };
    let out = as_nobody(&[
        "start",
        "--name",
        "u",
        "--ready",
        "notify",
        "--",
        client.to_str().unwrap(),
    ]);
    // Killed by pid file if an assertion fails (the Env's state dir is elsewhere).
    let pid_file = state.join("u.pid");
    let _guard = std::fs::read_to_string(&pid_file)
        .ok()
        .and_then(|t| t.trim().parse().ok())
        .map(|p| KillOnDrop::new(daemonic::Pid::from_raw(p)));
    assert!(out.status.success(), "{}", stderr(&out));
    let socket = state.join("u.notify");
    let meta = std::fs::symlink_metadata(&socket).unwrap();
    assert_eq!(meta.permissions().mode() & 0o777, 0o600);
    assert!(as_nobody(&["reload", "--wait", "u"]).status.success());
    assert!(as_nobody(&["stop", "u"]).status.success());
    assert!(!socket.exists(), "{} left behind", socket.display());
}

#[test]
fn extend_timeout_usec_while_stopping_holds_off_the_sigkill() {
    if lacks("systemd-notify") {
        return;
    }
    let env = Env::new("nc-extend-stop");
    // A final save that takes longer than --stop-timeout, announced.
    let s = script(
        &env,
        "saves.sh",
        "#!/bin/sh\ntrap 'systemd-notify EXTEND_TIMEOUT_USEC=5000000; sleep 2; exit 0' TERM\n\
         systemd-notify --ready\nwhile :; do sleep 1 & wait $!; done\n",
    );
    let out = env.daemonic(&[
        "start",
        "--name",
        "db",
        "--ready",
        "notify",
        "--stop-timeout",
        "1s",
        "--",
        &s,
    ]);
    assert!(out.status.success(), "{}", stderr(&out));
    let out = env.daemonic(&["stop", "db"]);
    assert!(out.status.success(), "{}", stderr(&out));
    let logs = out_text(&env.daemonic(&["logs", "db"]));
    assert!(logs.contains("exited with status 0; stopped"), "{logs}");
}

#[test]
fn mainpid_names_the_process_that_gets_the_signals() {
    if lacks("systemd-notify") {
        return;
    }
    let env = Env::new("nc-mainpid");
    // The shell starts the real daemon and names it; it then only waits for it.
    let s = script(
        &env,
        "mainpid.sh",
        "#!/bin/sh\nsleep 600 &\nsystemd-notify --ready --pid=$!\nwait $!\nexit 0\n",
    );
    let out = env.daemonic(&["start", "--name", "mp", "--ready", "notify", "--", &s]);
    assert!(out.status.success(), "{}", stderr(&out));
    // SIGTERM reaches the named process (sleep), not the shell: the shell's `wait`
    // returns and it exits 0. Sent to the shell, it would be killed by SIGTERM.
    assert!(env.daemonic(&["signal", "mp", "TERM"]).status.success());
    let s = wait_for("mp exited", LIMIT, || {
        let s = status(&env, "mp");
        s.contains("exited").then_some(s)
    });
    assert!(s.contains("exited with status 0"), "{s}");
}

/// Regression: each `STATUS=` of a datagram rewrote the status file, so one datagram of
/// 200 lines cost the supervisor 200 rewrites (and a child could keep it busy writing).
/// Now the supervisor writes the turn's last state once; `status` still shows the last
/// text.
#[test]
fn a_datagram_of_many_status_lines_rewrites_the_status_file_once() {
    use std::os::unix::fs::DirBuilderExt;
    if lacks("python3") {
        return;
    }
    let env = Env::new("nc-status-burst");
    let state = env.dir.join("state");
    std::fs::DirBuilder::new()
        .mode(0o700)
        .create(&state)
        .unwrap();
    let go = env.dir.join("go");
    let sender = script(
        &env,
        "burst.py",
        &format!(
            "#!/usr/bin/env python3\nimport os, socket, time\n\
             addr = os.environ['NOTIFY_SOCKET']\n\
             addr = '\\0' + addr[1:] if addr.startswith('@') else addr\n\
             s = socket.socket(socket.AF_UNIX, socket.SOCK_DGRAM)\n\
             s.sendto(b'READY=1', addr)\n\
             while not os.path.exists({go:?}):\n    time.sleep(0.01)\n\
             s.sendto('\\n'.join(f'STATUS=step {{i}}' for i in range(200)).encode(), addr)\n\
             time.sleep(1000)\n",
            go = go.display().to_string()
        ),
    );
    let out = start_notify(&env, "sb", &[&sender]);
    assert!(out.status.success(), "{}", stderr(&out));
    let renames = env::renames::Renames::watch(&state);
    std::fs::write(&go, "").unwrap();
    wait_for("the last status text", LIMIT, || {
        status(&env, "sb")
            .contains("status: step 199")
            .then_some(())
    });
    let rewrites = renames.onto("sb.status");
    assert!(
        (1..=3).contains(&rewrites),
        "200 STATUS= lines in one datagram, {rewrites} rewrites of the status file"
    );
    assert!(env.daemonic(&["stop", "sb"]).status.success());
}
