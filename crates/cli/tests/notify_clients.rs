//! The notify protocol as sd_notify clients daemonic did not write speak it: the Rust
//! `sd-notify` crate (fixture `sd-notify-client`), libsystemd through python3-systemd,
//! PyPI `sdnotify` (in the venv `.ci/run` makes), and `systemd-notify` from a shell
//! script, as root and as uid 65534. Each must make `start --ready notify` return on
//! READY=1, show its STATUS=, keep a `--watchdog` alive with its pings, and pass a
//! `reload --wait` cycle (RELOADING=1, then READY=1). Then haproxy (`-Ws`, its own
//! notify support) under `--reload-signal USR2`; EXTEND_TIMEOUT_USEC= past `--timeout`;
//! and a helper's READY=1 ignored under `notify-access = main`, named in the timeout
//! message. A client or program that is not installed is skipped with the reason.

use daemonic_test_support as support;

mod env;

use std::path::{Path, PathBuf};
use std::process::Command;
use std::time::Duration;

use env::{Env, fixture};
use support::*;

/// Starting, reloading: generous (a loaded 2-core machine), never asserted as speed.
const LIMIT: Duration = Duration::from_secs(20);
/// The watchdog the clients must keep alive; waited out twice over.
const WATCHDOG: &str = "1s";

fn out_text(o: &std::process::Output) -> String {
    String::from_utf8_lossy(&o.stdout).into_owned()
}

/// A shell script in the test's directory, readable and executable by everyone (the
/// uid 65534 case runs it).
fn script(env: &Env, name: &str, body: &str) -> String {
    use std::os::unix::fs::PermissionsExt;
    let path = env.dir.join(name);
    std::fs::write(&path, body).unwrap();
    std::fs::set_permissions(&path, std::fs::Permissions::from_mode(0o755)).unwrap();
    std::fs::set_permissions(env.dir.path(), std::fs::Permissions::from_mode(0o755)).unwrap();
    path.display().to_string()
}

/// `status NAME`'s line.
fn status(env: &Env, name: &str) -> String {
    out_text(&env.daemonic(&["status", name]))
}

/// The child's `NOTIFY_SOCKET`, from its environment.
fn notify_socket_of(pid: daemonic::Pid) -> String {
    let environ = std::fs::read(format!("/proc/{pid}/environ")).unwrap();
    environ
        .split(|&b| b == 0)
        .find_map(|v| v.strip_prefix(b"NOTIFY_SOCKET="))
        .map(|v| String::from_utf8_lossy(v).into_owned())
        .unwrap_or_default()
}

/// The whole contract for one client: `cmd` sends READY=1 with `STATUS=serving`, pings
/// the watchdog, and on SIGHUP reloads, ending with a status that contains `reloaded`.
fn contract(env: &Env, name: &str, extra: &[&str], cmd: &[&str]) {
    let mut args = vec![
        "start",
        "--name",
        name,
        "--ready",
        "notify",
        "--timeout",
        "20s",
        "--watchdog",
        WATCHDOG,
        "--dir",
        "/",
    ];
    args.extend(extra);
    args.push("--");
    args.extend(cmd);
    let out = env.daemonic(&args);
    assert!(
        out.status.success(),
        "{name}: start failed: {}{}",
        out_text(&out),
        stderr(&out)
    );
    assert!(
        out_text(&out).contains(&format!("{name}: ready")),
        "{}",
        out_text(&out)
    );
    let pid = env.child_pid(name);
    let socket = notify_socket_of(pid);
    assert!(
        socket.starts_with('/') && Path::new(&socket).exists(),
        "{name}: NOTIFY_SOCKET={socket:?}: not a filesystem socket"
    );
    wait_for(&format!("{name}: STATUS=serving"), LIMIT, || {
        status(env, name).contains("status: serving").then_some(())
    });
    // Two watchdog intervals and more: still the same child, never restarted.
    let line = wait_for(&format!("{name}: ready for 3s"), LIMIT, || {
        let s = status(env, name);
        let secs = s
            .split("ready for ")
            .nth(1)
            .and_then(|r| r.split('s').next())
            .and_then(|n| n.parse::<u64>().ok());
        secs.is_some_and(|n| n >= 3).then_some(s)
    });
    assert!(line.contains(&format!(", pid {pid} ")), "{name}: {line}");
    assert!(!line.contains("restart"), "{name}: restarted: {line}");
    let out = env.daemonic(&["reload", "--wait", "--timeout", "20s", name]);
    assert!(
        out.status.success(),
        "{name}: reload --wait: {}",
        stderr(&out)
    );
    let after = status(env, name);
    assert!(
        after.contains(&format!("{name}: ready, pid {pid} ")),
        "{after}"
    );
    assert!(
        after.contains("reloaded"),
        "{name}: after reload --wait: {after}"
    );
    assert!(env.daemonic(&["stop", name]).status.success());
    assert!(
        !Path::new(&socket).exists(),
        "{name}: {socket} left behind after stop"
    );
}

#[test]
fn the_sd_notify_crate_reaches_the_filesystem_socket() {
    let env = Env::new("nc-crate");
    contract(&env, "crate", &[], &[&fixture("sd-notify-client")]);
}

/// The shell script for `systemd-notify`: every message from a helper process.
const SYSTEMD_NOTIFY: &str = r#"#!/bin/sh
n=0
trap 'n=$((n+1)); systemd-notify RELOADING=1; systemd-notify --ready --status="serving, reloaded $n"' HUP
trap 'exit 0' TERM
systemd-notify --status=starting
systemd-notify --ready --status=serving
while :; do
    systemd-notify WATCHDOG=1
    sleep 0.25 & wait $!
done
"#;

fn have(program: &str) -> bool {
    Command::new("sh")
        .args(["-c", &format!("command -v {program} >/dev/null")])
        .status()
        .is_ok_and(|s| s.success())
}

#[test]
fn systemd_notify_from_a_shell_script_as_root() {
    if !have("systemd-notify") {
        eprintln!("skipped: systemd-notify is not installed");
        return;
    }
    let env = Env::new("nc-sdn-root");
    let s = script(&env, "notify.sh", SYSTEMD_NOTIFY);
    contract(&env, "sdnroot", &[], &[&s]);
}

#[test]
fn systemd_notify_from_a_shell_script_as_uid_65534() {
    if !root("systemd_notify_from_a_shell_script_as_uid_65534") {
        return;
    }
    if !have("systemd-notify") {
        eprintln!("skipped: systemd-notify is not installed");
        return;
    }
    let env = Env::new("nc-sdn-nobody");
    let s = script(&env, "notify.sh", SYSTEMD_NOTIFY);
    contract(&env, "sdnnobody", &["--user", "65534"], &[&s]);
}

/// A python3 service; `notify` is how the client library sends one datagram.
fn python_service(setup: &str, notify: &str) -> String {
    format!(
        r#"import signal, sys, time
{setup}
def say(text):
    {notify}
reloads = 0
def hup(sig, frame):
    global reloads
    reloads += 1
    usec = time.clock_gettime_ns(time.CLOCK_MONOTONIC) // 1000
    say("RELOADING=1\nMONOTONIC_USEC=%d" % usec)
    say("READY=1\nSTATUS=serving, reloaded %d" % reloads)
signal.signal(signal.SIGHUP, hup)
signal.signal(signal.SIGTERM, lambda s, f: sys.exit(0))
say("STATUS=starting")
say("READY=1\nSTATUS=serving")
while True:
    say("WATCHDOG=1")
    time.sleep(0.25)
"#
    )
}

#[test]
fn libsystemd_through_python3_systemd() {
    let python = "/usr/bin/python3";
    let ok = Command::new(python)
        .args(["-c", "import systemd.daemon"])
        .status()
        .is_ok_and(|s| s.success());
    if !ok {
        eprintln!(
            "skipped: python3-systemd is not installed ({python} -c 'import systemd.daemon')"
        );
        return;
    }
    let env = Env::new("nc-libsystemd");
    let body = python_service("from systemd import daemon", "daemon.notify(text)");
    let s = script(&env, "svc.py", &body);
    contract(&env, "libsystemd", &[], &[python, &s]);
}

/// The venv `.ci/run` creates with PyPI's `sdnotify` (`target/notify-venv`).
fn sdnotify_python() -> Option<PathBuf> {
    let venv = Path::new(env!("CARGO_MANIFEST_DIR")).join("../../target/notify-venv");
    let python = venv.join("bin/python3");
    let ok = Command::new(&python)
        .args(["-c", "import sdnotify"])
        .status()
        .is_ok_and(|s| s.success());
    ok.then_some(python)
}

#[test]
fn pypi_sdnotify() {
    let Some(python) = sdnotify_python() else {
        eprintln!(
            "skipped: no venv with PyPI sdnotify at target/notify-venv (.ci/run makes it: \
             python3 -m venv target/notify-venv && target/notify-venv/bin/pip install sdnotify)"
        );
        return;
    };
    let env = Env::new("nc-sdnotify");
    let body = python_service(
        "import sdnotify\nn = sdnotify.SystemdNotifier(debug=True)",
        "n.notify(text)",
    );
    let s = script(&env, "svc.py", &body);
    contract(&env, "sdnotify", &[], &[python.to_str().unwrap(), &s]);
}

/// A free port on 127.0.0.1 (bound and released).
fn free_port() -> u16 {
    std::net::TcpListener::bind("127.0.0.1:0")
        .unwrap()
        .local_addr()
        .unwrap()
        .port()
}

/// `GET /` on 127.0.0.1:`port`: the answer's text.
fn http_get(port: u16) -> String {
    use std::io::{Read, Write};
    let Ok(mut s) = std::net::TcpStream::connect(("127.0.0.1", port)) else {
        return String::new();
    };
    let _ = s.set_read_timeout(Some(Duration::from_secs(5)));
    let _ = s.write_all(b"GET / HTTP/1.0\r\nHost: x\r\n\r\n");
    let mut text = String::new();
    let _ = s.read_to_string(&mut text);
    text
}

#[test]
fn haproxy_master_worker_reloads_with_usr2_and_stays_ready() {
    let haproxy = "/usr/sbin/haproxy";
    if !Path::new(haproxy).exists() {
        eprintln!("skipped: haproxy is not installed ({haproxy})");
        return;
    }
    let env = Env::new("nc-haproxy");
    let port = free_port();
    let cfg = env.dir.join("haproxy.cfg");
    std::fs::write(
        &cfg,
        format!(
            "global\n    log stderr format raw local0\ndefaults\n    mode http\n    \
             timeout connect 1s\n    timeout client 5s\n    timeout server 5s\n\
             frontend web\n    bind 127.0.0.1:{port}\n    \
             http-request return status 200 content-type text/plain string daemonic-ok\n"
        ),
    )
    .unwrap();
    let out = env.daemonic(&[
        "start",
        "--name",
        "hap",
        "--ready",
        "notify",
        "--reload-signal",
        "USR2",
        "--timeout",
        "20s",
        "--",
        haproxy,
        "-Ws",
        "-f",
        cfg.to_str().unwrap(),
    ]);
    assert!(out.status.success(), "{}", stderr(&out));
    assert!(http_get(port).contains("daemonic-ok"));
    // haproxy says RELOADING=1 while it starts: the state is ready, no status text
    // "reloading" (haproxy 2.6 sends no STATUS=).
    let s = status(&env, "hap");
    assert!(s.starts_with("hap: ready, pid "), "{s}");
    assert!(!s.contains("reloading"), "after start: {s}");
    let master = env.child_pid("hap");
    let out = env.daemonic(&["reload", "--wait", "--timeout", "20s", "hap"]);
    assert!(out.status.success(), "reload --wait: {}", stderr(&out));
    let s = status(&env, "hap");
    assert!(s.starts_with(&format!("hap: ready, pid {master} ")), "{s}");
    assert!(!s.contains("reloading"), "after reload: {s}");
    assert!(http_get(port).contains("daemonic-ok"));
    let logs = out_text(&env.daemonic(&["logs", "hap"]));
    assert!(logs.contains("Reloading HAProxy"), "{logs}");
    assert!(env.daemonic(&["stop", "hap"]).status.success());
}

#[test]
fn reloading_is_a_state_and_keeps_the_status_text() {
    if !have("systemd-notify") {
        eprintln!("skipped: systemd-notify is not installed");
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
    if !have("systemd-notify") {
        eprintln!("skipped: systemd-notify is not installed");
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
        let out = env.daemonic(&[
            "start",
            "--name",
            name,
            "--ready",
            "notify",
            "--",
            &fixture("sd-notify-client"),
        ]);
        assert!(out.status.success(), "{}", stderr(&out));
        notify_socket_of(env.child_pid(name))
    };
    let first = start("a");
    let supervisor = std::fs::read_to_string(env.pid_file("a")).unwrap();
    let supervisor = daemonic::Pid::from_raw(supervisor.trim().parse().unwrap());
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
    if !have("runuser") {
        eprintln!("skipped: runuser is not installed");
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
    if !have("systemd-notify") {
        eprintln!("skipped: systemd-notify is not installed");
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
