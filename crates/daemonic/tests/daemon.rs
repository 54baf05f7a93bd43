//! `Daemon`: detach with readiness, the pid-file lock, re-exec mode and signal events,
//! observed from outside on real processes (the `daemon-probe` fixture).

use daemonic_test_support as support;

use std::process::Command;

use daemonic::{Pid, Signal};
use support::*;

/// The test process adopts orphans, so a detached daemon's parent is provably us.
fn become_subreaper() {
    nix::sys::prctl::set_child_subreaper(true).unwrap();
}

fn probe(dir: &TempDir) -> Command {
    let mut cmd = Command::new(example("daemon-probe"));
    cmd.arg("--report").arg(dir.join("report"));
    cmd
}

/// Starts the probe and returns its launcher's output and the daemon (killed on drop).
fn start(dir: &TempDir, args: &[&str]) -> (std::process::Output, Option<KillOnDrop>) {
    let out = run(probe(dir).args(args));
    let guard = out.status.success().then(|| {
        let pid: i32 = await_key(&dir.join("report"), "pid").parse().unwrap();
        KillOnDrop::new(Pid::from_raw(pid))
    });
    (out, guard)
}

fn fds_of(pid: Pid) -> Vec<(i32, String)> {
    let mut fds: Vec<(i32, String)> = std::fs::read_dir(format!("/proc/{pid}/fd"))
        .unwrap()
        .map(|e| {
            let e = e.unwrap();
            let target = std::fs::read_link(e.path())
                .map(|t| t.display().to_string())
                .unwrap_or_default();
            (e.file_name().to_string_lossy().parse().unwrap(), target)
        })
        .collect();
    fds.sort();
    fds
}

#[test]
fn detached_daemon_has_no_terminal_no_session_and_only_kept_fds() {
    if Command::new("script").arg("--version").output().is_err() {
        eprintln!(
            "skipped: script(1) (util-linux) is not installed; it provides the pseudo-terminal"
        );
        return;
    }
    become_subreaper();
    let dir = TempDir::new("detach");
    let out_file = dir.join("out.log");
    let cmd = format!(
        "exec 7</etc/hostname 8</etc/hostname; exec {} --report {} --pid-file {} --cwd {} --umask 077 --stdout {} --keep-fd 8",
        example("daemon-probe").display(),
        dir.join("report").display(),
        dir.join("p.pid").display(),
        dir.path().display(),
        out_file.display(),
    );
    // script(1) runs the launcher on a real pseudo-terminal.
    let out = run(Command::new("script").args(["-qec", &cmd, "/dev/null"]));
    assert!(out.status.success(), "launcher failed: {}", stderr(&out));
    let pid = Pid::from_raw(await_key(&dir.join("report"), "pid").parse().unwrap());
    let daemon = KillOnDrop::new(pid);
    await_key(&dir.join("report"), "signals");

    assert_eq!(
        stat_field(pid, 1).unwrap(),
        std::process::id().to_string(),
        "parent is the subreaper"
    );
    let sid = stat_field(pid, 3).unwrap();
    assert_ne!(sid, pid.to_string(), "not a session leader");
    assert_eq!(stat_field(pid, 4).unwrap(), "0", "no controlling terminal");
    let status = std::fs::read_to_string(format!("/proc/{pid}/status")).unwrap();
    assert!(status.contains("Umask:\t0077"), "{status}");
    assert_eq!(
        std::fs::read_link(format!("/proc/{pid}/cwd")).unwrap(),
        dir.path()
    );

    let fds = fds_of(pid);
    let pid_file = dir.join("p.pid").display().to_string();
    let expected_prefix = [
        (0, "/dev/null".to_string()),
        (1, out_file.display().to_string()),
        (2, "/dev/null".to_string()),
    ];
    assert_eq!(&fds[..3], &expected_prefix, "{fds:?}");
    let rest: Vec<_> = fds[3..]
        .iter()
        .filter(|(_, t)| !t.starts_with("socket:"))
        .collect();
    assert!(
        rest.iter().any(|(_, t)| *t == pid_file),
        "pid file kept: {fds:?}"
    );
    assert!(
        rest.iter().any(|(fd, t)| *fd == 8 && t == "/etc/hostname"),
        "fd 8 kept: {fds:?}"
    );
    // Inherited fd 7 (not kept) was closed; its number may since be reused by a socket.
    assert!(
        !fds.iter().any(|(fd, t)| *fd != 8 && t == "/etc/hostname"),
        "fd 7 closed: {fds:?}"
    );
    // Besides these, only the probe's own signal sockets, created after start().
    assert_eq!(rest.len(), 2, "no other descriptors: {fds:?}");
    assert_eq!(
        std::fs::read_to_string(dir.join("p.pid")).unwrap().trim(),
        pid.to_string()
    );
    drop(daemon);
}

#[test]
fn second_start_names_running_pid_and_kill_9_frees_the_lock() {
    let dir = TempDir::new("second");
    let pid_file = dir.join("p.pid").display().to_string();
    let (out, first) = start(&dir, &["--pid-file", &pid_file]);
    assert!(out.status.success(), "{}", stderr(&out));
    let first = first.unwrap();

    let dir2 = TempDir::new("second-b");
    let out = run(probe(&dir2).args(["--pid-file", &pid_file]));
    assert!(!out.status.success());
    assert!(
        stderr(&out).contains(&format!("already running (pid {}", first.pid())),
        "{}",
        stderr(&out)
    );

    // kill -9: the lock dies with the process; the stale file is reclaimed.
    first.0.as_ref().unwrap().signal(Signal::SIGKILL).unwrap();
    assert!(first.exited_within(SOON));
    let dir3 = TempDir::new("second-c");
    let (out, third) = start(&dir3, &["--pid-file", &pid_file]);
    assert!(out.status.success(), "{}", stderr(&out));
    let third = third.unwrap();
    assert_eq!(
        std::fs::read_to_string(&pid_file).unwrap().trim(),
        third.pid().to_string()
    );
}

#[test]
fn pid_file_naming_a_live_unrelated_process_is_not_trusted_or_signalled() {
    let dir = TempDir::new("unrelated");
    let mut bystander = Command::new("sleep").arg("300").spawn().unwrap();
    let bystander_pid = Pid::from_raw(bystander.id() as i32);
    let pid_file = dir.join("p.pid");
    std::fs::write(&pid_file, format!("{bystander_pid}\n")).unwrap();

    let (out, daemon) = start(&dir, &["--pid-file", pid_file.to_str().unwrap()]);
    assert!(out.status.success(), "{}", stderr(&out));
    let daemon = daemon.unwrap();
    assert_eq!(
        std::fs::read_to_string(&pid_file).unwrap().trim(),
        daemon.pid().to_string()
    );
    assert!(
        bystander.try_wait().unwrap().is_none(),
        "the bystander was not signalled"
    );
    bystander.kill().unwrap();
    bystander.wait().unwrap();
}

#[test]
fn launcher_exits_zero_when_ready() {
    let dir = TempDir::new("ready");
    let (out, daemon) = start(&dir, &[]);
    assert_eq!(out.status.code(), Some(0), "{}", stderr(&out));
    assert!(stderr(&out).is_empty());
    let daemon = daemon.unwrap();
    assert!(alive(daemon.pid()));
}

#[test]
fn launcher_prints_the_daemons_own_error() {
    let dir = TempDir::new("fail");
    let pid_file = dir.join("p.pid");
    let out = run(probe(&dir).args([
        "--fail",
        "cannot bind 0.0.0.0:80",
        "--pid-file",
        pid_file.to_str().unwrap(),
    ]));
    assert_eq!(
        out.status.code(),
        Some(3),
        "the daemon's exit status: {}",
        stderr(&out)
    );
    let err = stderr(&out);
    assert!(
        err.contains("cannot bind 0.0.0.0:80 (Address already in use"),
        "{err}"
    );
    assert!(err.contains("exited with status 3"), "{err}");
    assert!(!pid_file.exists(), "no pid file left behind");
}

#[test]
fn launcher_reports_an_exit_before_ready() {
    let dir = TempDir::new("exit");
    let out = run(probe(&dir).args(["--exit", "5"]));
    assert_eq!(out.status.code(), Some(5));
    assert!(
        stderr(&out).contains("exited with status 5"),
        "{}",
        stderr(&out)
    );
}

#[test]
fn launcher_times_out_kills_and_reaps_the_daemon() {
    let dir = TempDir::new("timeout");
    let pid_file = dir.join("p.pid");
    let out = run(probe(&dir).args([
        "--never-ready",
        "--timeout-ms",
        "300",
        "--pid-file",
        pid_file.to_str().unwrap(),
    ]));
    assert_eq!(out.status.code(), Some(124), "{}", stderr(&out));
    assert!(
        stderr(&out).contains("not ready within 300ms"),
        "{}",
        stderr(&out)
    );
    let pid = Pid::from_raw(await_key(&dir.join("report"), "pid").parse().unwrap());
    // Killed and reaped by the launcher: the pid is gone, not a zombie.
    assert!(!std::path::Path::new(&format!("/proc/{pid}")).exists() || !alive(pid));
    assert!(!pid_file.exists());
}

/// The probe with a thread running, in re-exec mode with a pid file, once ready: its
/// handle and its pid file.
fn start_threaded_reexec(dir: &TempDir) -> (KillOnDrop, std::path::PathBuf) {
    let pid_file = dir.join("p.pid");
    let (out, daemon) = start(
        dir,
        &[
            "--thread",
            "--reexec",
            "--pid-file",
            pid_file.to_str().unwrap(),
        ],
    );
    assert!(out.status.success(), "{}", stderr(&out));
    await_key(&dir.join("report"), "ready");
    (daemon.unwrap(), pid_file)
}

#[test]
fn fork_after_threads_is_refused_and_reexec_works_there() {
    let dir = TempDir::new("threads");
    let out = run(probe(&dir).args(["--thread"]));
    assert_eq!(out.status.code(), Some(1));
    assert!(
        stderr(&out).contains("already runs 2 threads"),
        "{}",
        stderr(&out)
    );
    assert!(stderr(&out).contains("Daemon::reexec"), "{}", stderr(&out));

    let (daemon, pid_file) = start_threaded_reexec(&dir);
    let report_path = dir.join("report");
    assert_eq!(
        get(&report(&report_path), "marker").as_deref(),
        Some("false"),
        "marker removed"
    );
    assert_eq!(
        std::fs::read_to_string(&pid_file).unwrap().trim(),
        daemon.pid().to_string()
    );
    let sid = stat_field(daemon.pid(), 3).unwrap();
    assert_ne!(sid, daemon.pid().to_string(), "not a session leader");
    assert_eq!(stat_field(daemon.pid(), 4).unwrap(), "0");
}

/// Regression: the re-executed daemon found its hand-over in an environment variable and
/// removed it with `remove_var` while its threads ran (it starts them again before
/// `start`), racing their reads of the environment. The hand-over is a memfd now: the
/// daemon's environment never held it (`/proc/PID/environ` is the one it was started
/// with), and the daemon keeps no descriptor of it.
#[test]
fn a_reexecuted_daemon_with_threads_gets_its_hand_over_outside_its_environment() {
    let dir = TempDir::new("handover");
    let (daemon, _) = start_threaded_reexec(&dir);
    let report_path = dir.join("report");
    let facts = report(&report_path);
    assert_eq!(get(&facts, "threads").as_deref(), Some("2"), "{facts:?}");
    let environ = std::fs::read(format!("/proc/{}/environ", daemon.pid())).unwrap();
    let environ = String::from_utf8_lossy(&environ);
    assert!(!environ.contains("DAEMONIC_REEXEC"), "{environ}");
    let fds = get(&facts, "fds").unwrap();
    assert!(!fds.contains("memfd:"), "{fds}");
}

#[test]
fn sigterm_is_a_clean_shutdown_and_sighup_a_reload() {
    let dir = TempDir::new("signals");
    let pid_file = dir.join("p.pid");
    let (out, daemon) = start(&dir, &["--pid-file", pid_file.to_str().unwrap()]);
    assert!(out.status.success(), "{}", stderr(&out));
    let daemon = daemon.unwrap();
    let report_path = dir.join("report");
    await_key(&report_path, "signals");
    let handle = daemon.0.as_ref().unwrap();
    handle.signal(Signal::SIGHUP).unwrap();
    assert_eq!(await_key(&report_path, "event"), "Reload");
    handle.signal(Signal::SIGTERM).unwrap();
    assert!(daemon.exited_within(SOON));
    assert_eq!(
        get(&report(&report_path), "event").as_deref(),
        Some("Shutdown")
    );
    assert_eq!(get(&report(&report_path), "finished").as_deref(), Some("1"));
    assert!(!pid_file.exists(), "pid file removed on clean exit");
}

#[test]
fn under_systemd_nothing_forks() {
    let dir = TempDir::new("systemd");
    let (mut child, guard) = spawn_guarded(probe(&dir).env("INVOCATION_ID", "0123456789abcdef"));
    let pid: u32 = await_key(&dir.join("report"), "pid").parse().unwrap();
    assert_eq!(pid, child.id(), "the process itself is the daemon");
    await_key(&dir.join("report"), "signals");
    guard.0.as_ref().unwrap().signal(Signal::SIGTERM).unwrap();
    assert!(child.wait().unwrap().success());
}

#[test]
fn echod_example_is_ready_only_once_its_port_is_bound() {
    use std::io::{BufRead, BufReader, Write};
    let dir = TempDir::new("echod");
    let port = std::net::TcpListener::bind("127.0.0.1:0")
        .unwrap()
        .local_addr()
        .unwrap()
        .port()
        .to_string();
    let pid_file = dir.join("echod.pid");
    let echod = example("echod");
    let out = run(Command::new(&echod).args([
        "-d",
        "--port",
        &port,
        "--pid-file",
        pid_file.to_str().unwrap(),
    ]));
    assert!(out.status.success(), "{}", stderr(&out));
    let daemon = KillOnDrop::new(Pid::from_raw(
        std::fs::read_to_string(&pid_file)
            .unwrap()
            .trim()
            .parse()
            .unwrap(),
    ));
    // No retry: the launcher returned, so the port is bound.
    let mut conn = std::net::TcpStream::connect(format!("127.0.0.1:{port}")).unwrap();
    conn.write_all(b"hello\n").unwrap();
    let mut line = String::new();
    BufReader::new(&conn).read_line(&mut line).unwrap();
    assert_eq!(line, "hello\n");

    // The port is taken now: a second echod (another pid file) fails in the terminal.
    let out = run(Command::new(&echod).args([
        "-d",
        "--port",
        &port,
        "--pid-file",
        dir.join("b.pid").to_str().unwrap(),
    ]));
    assert_eq!(out.status.code(), Some(1));
    assert!(
        stderr(&out).contains(&format!("bind 127.0.0.1:{port}: Address already in use")),
        "{}",
        stderr(&out)
    );
    drop(daemon);
}

#[test]
fn a_second_sigterm_forces_exit_and_a_deadline_ends_a_hung_shutdown() {
    let dir = TempDir::new("force");
    let (mut child, guard) =
        spawn_guarded(probe(&dir).args(["--foreground", "--hang-on-shutdown"]));
    await_key(&dir.join("report"), "signals");
    let h = guard.0.as_ref().unwrap();
    h.signal(Signal::SIGTERM).unwrap();
    assert_eq!(await_key(&dir.join("report"), "event"), "Shutdown");
    h.signal(Signal::SIGTERM).unwrap();
    assert_eq!(
        child.wait().unwrap().code(),
        Some(128 + 15),
        "forced exit status"
    );
    drop(guard);

    let dir = TempDir::new("deadline");
    let (mut child, guard) = spawn_guarded(probe(&dir).args([
        "--foreground",
        "--hang-on-shutdown",
        "--deadline-ms",
        "200",
    ]));
    await_key(&dir.join("report"), "signals");
    guard.0.as_ref().unwrap().signal(Signal::SIGINT).unwrap();
    let out = child.wait().unwrap();
    assert_eq!(out.code(), Some(1), "the deadline ended the hung shutdown");
}

/// The quick start (`examples/quickstart.rs`, which the crate docs include as a doctest)
/// keeps its promise: with `?` on `bind` and the port held, the terminal that started it
/// shows the real bind error (its stderr is forwarded until ready) and the command exits
/// 1; on a free port it serves, and its relative pid file is where it was started, and
/// removed from there at SIGTERM.
#[test]
fn the_quick_start_shows_its_bind_error_where_it_was_started_and_keeps_its_pid_file_there() {
    use std::io::{BufRead, BufReader};
    let dir = TempDir::new("quickstart");
    let pid_file = dir.join("quickstart.pid");
    let held = std::net::TcpListener::bind("127.0.0.1:0").unwrap();
    let addr = held.local_addr().unwrap().to_string();
    let quickstart = || {
        let mut cmd = Command::new(example("quickstart"));
        cmd.current_dir(dir.path());
        cmd
    };
    let out = run(quickstart().arg(&addr));
    assert_eq!(out.status.code(), Some(1), "{}", stderr(&out));
    let err = stderr(&out);
    let lines: Vec<&str> = err.lines().collect();
    assert_eq!(
        lines[0],
        format!("Error: bind {addr}: Address already in use (os error 98)"),
        "{err}"
    );
    assert!(
        lines[1].starts_with("quickstart: not ready: daemon (pid ")
            && lines[1].ends_with(" exited with status 1"),
        "{err}"
    );
    assert!(!pid_file.exists(), "no pid file left behind");
    drop(held);

    let free = std::net::TcpListener::bind("127.0.0.1:0").unwrap();
    let addr = free.local_addr().unwrap().to_string();
    drop(free);
    let out = run(quickstart().arg(&addr));
    assert!(out.status.success(), "{}", stderr(&out));
    assert!(stderr(&out).is_empty(), "{}", stderr(&out));
    let pid: i32 = std::fs::read_to_string(&pid_file)
        .unwrap()
        .trim()
        .parse()
        .unwrap();
    let daemon = KillOnDrop::new(Pid::from_raw(pid));
    let conn = std::net::TcpStream::connect(&addr).unwrap();
    let mut line = String::new();
    BufReader::new(&conn).read_line(&mut line).unwrap();
    assert_eq!(line, "hello\n");
    nix::sys::signal::kill(daemon.pid(), Signal::SIGTERM).unwrap();
    assert!(daemon.exited_within(SOON), "SIGTERM ends it");
    assert!(!pid_file.exists(), "removed where it was created");
    assert!(!std::path::Path::new("/quickstart.pid").exists());
}

/// Until ready, the daemon's stderr (to `/dev/null` by default) reaches the launcher's,
/// escaped; after `ready()` it is `/dev/null`, and no descriptor of the forwarding is left
/// in the daemon — detached by fork and by re-exec alike. With a stderr file, the file has
/// every line in order, and a failed start shows the lines it appended. With
/// `forward_stderr(false)` the launcher shows nothing of it.
#[test]
fn stderr_is_forwarded_to_the_launcher_until_ready_in_both_modes() {
    for mode in [&[][..], &["--thread", "--reexec"][..]] {
        let dir = TempDir::new("forward");
        let mut args = vec!["--say", "hi\x1b[2J"];
        args.extend_from_slice(mode);
        let (out, daemon) = start(&dir, &args);
        assert!(out.status.success(), "{mode:?}: {}", stderr(&out));
        let daemon = daemon.unwrap();
        assert_eq!(stderr(&out), "before ready: hi\\x1b[2J\n", "{mode:?}");
        await_key(&dir.join("report"), "ready");
        let fds = fds_of(daemon.pid());
        assert_eq!(fds[2].1, "/dev/null", "{mode:?}: {fds:?}");
        assert!(
            !fds.iter().any(|(_, t)| t.starts_with("pipe:")),
            "{mode:?}: no pipe left: {fds:?}"
        );

        let log = dir.join("err.log");
        std::fs::write(&log, "an earlier run\n").unwrap();
        let mut args = vec!["--stderr", log.to_str().unwrap(), "--say", "no config"];
        args.extend_from_slice(mode);
        args.extend(["--exit", "4"]);
        let (out, _) = start(&dir, &args);
        assert_eq!(out.status.code(), Some(4), "{mode:?}: {}", stderr(&out));
        let err = stderr(&out);
        assert!(
            err.starts_with("before ready: no config\n"),
            "{mode:?}: {err}"
        );
        assert!(!err.contains("an earlier run"), "{mode:?}: {err}");
        let file = std::fs::read_to_string(&log).unwrap();
        assert_eq!(
            file, "an earlier run\nbefore ready: no config\n",
            "{mode:?}"
        );
    }
    let dir = TempDir::new("no-forward");
    let (out, _daemon) = start(&dir, &["--say", "hidden", "--no-forward"]);
    assert!(out.status.success(), "{}", stderr(&out));
    assert_eq!(stderr(&out), "");
}
