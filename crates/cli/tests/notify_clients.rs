//! The notify protocol as sd_notify clients daemonic did not write speak it: the Rust
//! `sd-notify` crate (fixture `sd-notify-client`), libsystemd through python3-systemd,
//! PyPI `sdnotify` (in the venv `.ci/run` makes), and `systemd-notify` from a shell
//! script, as root and as uid 65534. Each must make `start --ready notify` return on
//! READY=1, show its STATUS=, keep a `--watchdog` alive with its pings, and pass a
//! `reload --wait` cycle (RELOADING=1, then READY=1). Then haproxy (`-Ws`, its own
//! notify support) under `--reload-signal USR2`. The protocol's rules (reloading state,
//! EXTEND_TIMEOUT_USEC=, notify-access, the socket's place) are in `notify_protocol.rs`.
//! A client or program that is not installed is skipped with the reason.

use daemonic_test_support as support;

mod env;
mod notify_support;

use std::path::{Path, PathBuf};
use std::process::Command;
use std::time::Duration;

use env::{Env, fixture};
use notify_support::*;
use support::*;
/// The watchdog the clients must keep alive; waited out twice over.
const WATCHDOG: &str = "1s";
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
#[test]
fn systemd_notify_from_a_shell_script_as_root() {
    if lacks("systemd-notify") {
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
    if lacks("systemd-notify") {
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
    let Some(python) = env::python3_systemd("libsystemd_through_python3_systemd") else {
        return;
    };
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
