//! The control socket through a real supervisor: `restart` waits for the new child's
//! readiness, `reload` and `signal` reach the main process, `list` and `status --json`
//! describe what runs, garbage on the control and notify sockets changes nothing, another
//! uid is refused, and status text is printed escaped. Real supervisors, real fixture
//! programs, observed as a user would.

use daemonic_test_support as support;

mod env;

use env::{Env, fixture, start_notify_ready};
use support::*;

#[test]
fn restart_returns_once_the_new_child_is_ready() {
    let env = Env::new("ctl-restart");
    start_notify_ready(&env, "api");
    let before = env.child_pid("api");
    let out = env.daemonic(&["restart", "api"]);
    assert!(out.status.success(), "{}", stderr(&out));
    let after = env.child_pid("api");
    assert_ne!(before, after);
    assert!(!alive(before), "the old child was stopped");
    // Ready at once: `restart` waited for READY=1 of the new child.
    let line = env.status_line("api");
    assert!(
        line.starts_with(&format!("api: ready, pid {after} ")),
        "{line}"
    );
    assert!(line.contains("restarts 1"), "{line}");
    assert!(env.daemonic(&["stop", "api"]).status.success());
}

#[test]
fn reload_and_signal_reach_the_main_process() {
    let env = Env::new("ctl-signal");
    start_notify_ready(&env, "api");
    let pid = env.child_pid("api");
    let out = env.daemonic(&["reload", "api"]);
    assert!(out.status.success(), "{}", stderr(&out));
    // notify-ready answers SIGHUP with RELOADING=1, then STATUS=reloaded and READY=1.
    wait_for("status: reloaded", SOON, || {
        env.status_line("api")
            .ends_with("; status: reloaded\n")
            .then_some(())
    });
    assert_eq!(env.child_pid("api"), pid, "a reload is not a restart");
    let out = env.daemonic(&["signal", "api", "TERM"]);
    assert!(out.status.success(), "{}", stderr(&out));
    // notify-ready exits 0 on SIGTERM; without --restart the service is over.
    wait_for("the service gone", SOON, || (!alive(pid)).then_some(()));
    let out = env.daemonic(&["signal", "nope", "TERM"]);
    assert_eq!(out.status.code(), Some(1));
}

#[test]
fn list_and_status_json_describe_the_running_services() {
    let env = Env::new("ctl-list");
    start_notify_ready(&env, "a");
    start_notify_ready(&env, "b");
    let out = env.daemonic(&["list"]);
    let table = String::from_utf8(out.stdout).unwrap();
    let rows: Vec<&str> = table.lines().collect();
    assert!(rows[0].starts_with("NAME"), "{table}");
    assert!(
        rows[1].starts_with("a ") && rows[1].contains(" ready "),
        "{table}"
    );
    assert!(
        rows[2].starts_with("b ") && rows[2].contains(" ready "),
        "{table}"
    );
    let json = String::from_utf8(env.daemonic(&["status", "a", "--json"]).stdout).unwrap();
    let pid = env.child_pid("a");
    assert!(json.trim_start().starts_with('['), "{json}");
    assert!(
        json.contains("{\"name\":\"a\",\"state\":\"ready\""),
        "{json}"
    );
    assert!(json.contains(&format!("\"pid\":{pid}")), "{json}");
    assert!(json.contains("\"status\":\"warm\""), "{json}");
    for n in ["a", "b"] {
        assert!(env.daemonic(&["stop", n]).status.success());
    }
}

#[test]
fn a_malformed_control_message_is_refused_and_changes_nothing() {
    use std::io::{Read, Write};
    let env = Env::new("ctl-garbage");
    start_notify_ready(&env, "api");
    let pid = env.child_pid("api");
    let socket = env.dir.join("state").join("api.sock");
    for garbage in [
        &b"GET / HTTP/1.0\r\n\r\n"[..],
        b"dmnc\x01\x00\x00\x00\x0bop=explode\n",
        b"dmnc\x01\xff\xff\xff\xff",
    ] {
        let mut conn = std::os::unix::net::UnixStream::connect(&socket).unwrap();
        conn.set_read_timeout(Some(SOON)).unwrap();
        conn.write_all(garbage).unwrap();
        let mut answer = Vec::new();
        let _ = conn.read_to_end(&mut answer);
        let text = String::from_utf8_lossy(&answer);
        assert!(text.contains("response=error"), "{garbage:?} -> {text}");
    }
    assert_eq!(env.child_pid("api"), pid);
    assert!(env.status_line("api").starts_with("api: ready"));
    assert!(env.daemonic(&["stop", "api"]).status.success());
}

/// With the state directory and socket opened wide, only the peer-credential check stands
/// between another uid and the service.
#[test]
fn the_control_socket_refuses_another_uid() {
    use std::os::unix::fs::PermissionsExt;
    use std::os::unix::process::CommandExt;
    if !nix::unistd::geteuid().is_root() {
        eprintln!("skipped: needs root to run a client as another uid");
        return;
    }
    let bin = std::path::Path::new(env!("CARGO_BIN_EXE_daemonic"));
    if let Some(closed) = bin
        .ancestors()
        .find(|p| std::fs::metadata(p).is_ok_and(|m| m.permissions().mode() & 0o001 == 0))
    {
        eprintln!("skipped: {} is not open to other users", closed.display());
        return;
    }
    let env = Env::new("ctl-uid");
    start_notify_ready(&env, "api");
    let pid = env.child_pid("api");
    let wide = |p: &std::path::Path, mode| {
        std::fs::set_permissions(p, std::fs::Permissions::from_mode(mode)).unwrap()
    };
    wide(env.dir.path(), 0o755);
    wide(&env.dir.join("state"), 0o755);
    wide(&env.dir.join("state").join("api.sock"), 0o666);
    // The stranger's commands refuse root's state directory before connecting; the
    // supervisor's own check is reached through a state directory of theirs whose
    // `api.sock` leads to root's socket.
    let theirs = env.dir.join("stranger");
    std::fs::create_dir(&theirs).unwrap();
    std::os::unix::fs::chown(&theirs, Some(65534), Some(65534)).unwrap();
    let sock = env.dir.join("state").join("api.sock");
    std::os::unix::fs::symlink(&sock, theirs.join("api.sock")).unwrap();
    let out = run(env
        .cmd()
        .args(["restart", "api"])
        .env("DAEMONIC_STATE_DIR", &theirs)
        .uid(65534)
        .gid(65534));
    assert_eq!(out.status.code(), Some(1), "{}", stderr(&out));
    assert_eq!(
        stderr(&out),
        "daemonic: api: permission denied: uid 65534 is not the owner\n"
    );
    assert_eq!(env.child_pid("api"), pid, "the service was touched");
    assert!(env.daemonic(&["stop", "api"]).status.success());
}

#[test]
fn malformed_notify_messages_are_dropped_and_the_service_goes_on() {
    let env = Env::new("notify-garbage");
    let out = env.daemonic(&[
        "start",
        "--name",
        "g",
        "--ready",
        "notify",
        "--timeout",
        "5s",
        "--",
        &fixture("notify-garbage"),
    ]);
    assert!(out.status.success(), "{}", stderr(&out));
    let line = env.status_line("g");
    assert!(line.starts_with("g: ready"), "{line}");
    assert!(line.ends_with("; status: survived\n"), "{line}");
    assert!(env.daemonic(&["stop", "g"]).status.success());
}

#[test]
fn escape_sequences_in_status_text_are_not_printed_raw() {
    let env = Env::new("escapes");
    let said = "\x1b]0;owned\x07\x1b[2Jcleared\u{9b}31m";
    let out = env.daemonic(&[
        "start",
        "--name",
        "e",
        "--",
        &fixture("notify-ready"),
        "0",
        said,
    ]);
    assert!(
        out.status.success(),
        "{}",
        String::from_utf8_lossy(&out.stderr)
    );
    for args in [&["status", "e"][..], &["list"]] {
        let out = env.daemonic(args);
        let text = String::from_utf8_lossy(&out.stdout);
        assert!(
            !text.chars().any(|c| c.is_control() && c != '\n'),
            "{args:?}: {text:?}"
        );
        if args[0] == "status" {
            assert!(
                text.contains("status: \\x1b]0;owned\\x07\\x1b[2Jcleared\\u{9b}31m"),
                "{text:?}"
            );
        }
    }
    let out = env.daemonic(&["status", "e", "--json"]);
    assert!(String::from_utf8_lossy(&out.stdout).contains("\\u001b]0;owned"));
    assert!(env.daemonic(&["stop", "e"]).status.success());
}
