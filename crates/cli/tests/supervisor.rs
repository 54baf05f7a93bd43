//! The supervisor end to end: watchdog, a killed supervisor, and (with their own sections)
//! readiness probes, log capture and the control socket. Real supervisors, real fixture
//! programs, observed as a user would.

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

// --- The control socket, through a real supervisor ---

fn status_line(env: &Env, name: &str) -> String {
    String::from_utf8(env.daemonic(&["status", name]).stdout).unwrap()
}

fn start_notify_ready(env: &Env, name: &str) {
    let out = env.daemonic(&[
        "start",
        "--name",
        name,
        "--ready",
        "notify",
        "--",
        &fixture("notify-ready"),
        "100",
        "warm",
    ]);
    assert!(out.status.success(), "{}", stderr(&out));
}

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
    let line = status_line(&env, "api");
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
        status_line(&env, "api")
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
    assert!(status_line(&env, "api").starts_with("api: ready"));
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
    let line = status_line(&env, "g");
    assert!(line.starts_with("g: ready"), "{line}");
    assert!(line.ends_with("; status: survived\n"), "{line}");
    assert!(env.daemonic(&["stop", "g"]).status.success());
}

// --- Log capture ---

/// Checks a chatter line (see tests/fixtures/chatter.rs); returns its number and stream.
fn chatter_line(line: &str, len: usize) -> (u64, &str) {
    assert_eq!(line.len(), len - 1, "torn line: {line:?}");
    let n: u64 = line[..10].parse().unwrap_or_else(|_| panic!("{line:?}"));
    let fill = b'a' + (n % 26) as u8;
    assert!(
        line.as_bytes()[15..].iter().all(|b| *b == fill),
        "spliced line {n}: {line:?}"
    );
    (n, &line[11..14])
}

#[test]
fn a_hundred_megabytes_captured_while_rotating_lose_no_line() {
    let env = Env::new("capture-100m");
    let log = env.dir.join("logs").join("c.log");
    let total: u64 = 100_000_000;
    let len = 100;
    let mut cmd = env.cmd();
    cmd.args([
        "run",
        "--name",
        "c",
        "--log-file",
        log.to_str().unwrap(),
        "--log-max-size",
        "1M",
        "--log-keep",
        "1000",
        "--",
        &fixture("chatter"),
        "--bytes",
        &total.to_string(),
        "--line-len",
        &len.to_string(),
        "--stderr-every",
        "7",
    ]);
    let mut child = cmd.spawn().unwrap();
    let guard = KillOnDrop::new(Pid::from_raw(child.id() as i32));
    assert!(guard.exited_within(std::time::Duration::from_secs(120)));
    assert!(child.wait().unwrap().success());
    let mut files = daemonic::logging::rotated_files(&log).unwrap();
    files.push(log.clone());
    assert!(files.len() > 90, "rotated {} times", files.len() - 1);
    let lines_total = total.div_ceil(len as u64);
    let mut seen = vec![false; lines_total as usize];
    let (mut last_out, mut last_err) = (None, None);
    let mut notes = Vec::new();
    for f in &files {
        let size = std::fs::metadata(f).unwrap().len();
        assert!(size <= 1 << 20, "{} is {size} bytes", f.display());
        let text = std::fs::read_to_string(f).unwrap();
        for line in text.lines() {
            if let Some(note) = note_of(line) {
                notes.push(note.to_string());
                continue;
            }
            let (n, stream) = chatter_line(line, len);
            let last = if stream == "out" {
                &mut last_out
            } else {
                assert_eq!(stream, "err");
                assert_eq!(n % 7, 6, "line {n} on stderr");
                &mut last_err
            };
            assert!(*last < Some(n), "line {n} after {last:?} on {stream}");
            *last = Some(n);
            assert!(
                !std::mem::replace(&mut seen[n as usize], true),
                "line {n} twice"
            );
        }
    }
    let missing = seen.iter().filter(|s| !**s).count();
    assert_eq!(missing, 0, "{missing} lines lost");
    // The start mark, then the exit.
    assert_eq!(notes.len(), 2, "{notes:?}");
    assert!(
        notes[0].starts_with("daemonic: c: started (pid "),
        "{notes:?}"
    );
    assert_eq!(
        notes[1],
        "daemonic: c: chatter exited with status 0; not restarted (--restart on-failure)"
    );
}

#[test]
fn logs_shows_a_started_services_output_and_the_supervisors_notes() {
    let env = Env::new("capture-logs");
    let out = env.daemonic(&[
        "start",
        "--name",
        "w",
        "--grace",
        "100ms",
        "--",
        &fixture("chatter"),
        "--lines",
        "50",
        "--line-len",
        "20",
        "--then-sleep",
    ]);
    assert!(out.status.success(), "{}", stderr(&out));
    let last = |n: &str| {
        let out = env.daemonic(&["logs", "w", "-n", n]);
        assert!(out.status.success(), "{}", stderr(&out));
        String::from_utf8(out.stdout).unwrap()
    };
    let text = wait_for("line 49 captured", SOON, || {
        let t = last("3");
        t.contains("0000000049 out").then_some(t)
    });
    assert_eq!(text.lines().count(), 3, "{text}");
    let json = String::from_utf8(env.daemonic(&["status", "w", "--json"]).stdout).unwrap();
    let file = env.dir.join("state").join("w.log");
    assert!(
        json.contains(&format!("\"log_file\":\"{}\"", file.display())),
        "{json}"
    );
    // The supervisor's own notes go into the log too, each with the time it was written
    // (the log has no --log-timestamps: the child's lines have none).
    assert!(env.daemonic(&["signal", "w", "KILL"]).status.success());
    let note = wait_for("the note about the exit", SOON, || {
        let text = last("200");
        let line = text.lines().find(|l| l.contains("w: chatter killed by"))?;
        Some(line.to_string())
    });
    assert!(
        note_of(&note).is_some_and(|n| n.starts_with("daemonic: w: chatter killed by")),
        "{note}"
    );
    let _ = env.daemonic(&["stop", "w"]);
}

/// The text of a supervisor's note in a captured log: after the time prefix every note
/// has (`2025-03-09T14:07:02.123456Z `, RFC 3339 in UTC), `daemonic: NAME: …`.
fn note_of(line: &str) -> Option<&str> {
    let (stamp, text) = (line.get(..28)?, line.get(28..)?);
    let b = stamp.as_bytes();
    let digits = [0..4, 5..7, 8..10, 11..13, 14..16, 17..19, 20..26];
    let shape = (b[4], b[7], b[10], b[13], b[16], b[19], b[26], b[27])
        == (b'-', b'-', b'T', b':', b':', b'.', b'Z', b' ');
    let numeric = digits
        .into_iter()
        .all(|r| b[r].iter().all(u8::is_ascii_digit));
    (shape && numeric && text.starts_with("daemonic: ")).then_some(text)
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
    let sup = supervisor_pid(&env, "x");
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
