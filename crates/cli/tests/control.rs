//! The control-socket commands (`status`, `list`, `restart`, `reload`, `signal`) as a user
//! runs them: the real `daemonic` binary against a real socket.
//!
//! The other end is a stand-in for the supervisor ([`Fake`]): a real `ControlServer` bound
//! in the test's state directory and driven from the test thread by a `poll(2)` loop, as
//! the supervisor's event loop drives it. Once the supervisor serves its socket, each test
//! becomes end to end by starting a real service instead of `Fake` (the commands and the
//! assertions on what the user sees stay as they are).

use daemonic_test_support as support;

use std::os::fd::AsFd;
use std::os::unix::fs::PermissionsExt;
use std::os::unix::process::CommandExt;
use std::path::{Path, PathBuf};
use std::process::{Command, Output};
use std::time::Instant;

use daemonic::{PidFile, Signal};
use daemonic_cli::control::{ControlServer, Request, Response, ServiceInfo};
use nix::poll::{PollFd, PollFlags, PollTimeout, poll};
use support::*;

const BIN: &str = env!("CARGO_BIN_EXE_daemonic");

/// A state directory with a stand-in supervisor for service `web` listening in it.
struct Fake {
    dir: TempDir,
    server: Option<ControlServer>,
    /// Held like a supervisor holds it: `status` trusts only a locked pid file.
    lock: Option<PidFile>,
}

impl Fake {
    /// The state directory only: no socket, no pid file.
    fn empty(tag: &str) -> Fake {
        let dir = TempDir::new(tag);
        std::fs::create_dir(dir.join("state")).unwrap();
        Fake {
            dir,
            server: None,
            lock: None,
        }
    }

    /// A supervisor of `web` that holds its pid file and listens on its socket.
    fn running(tag: &str) -> Fake {
        let mut fake = Fake::empty(tag);
        fake.lock = Some(PidFile::lock(fake.state().join("web.pid")).unwrap());
        fake.server = Some(ControlServer::bind(&fake.state().join("web.sock")).unwrap());
        fake
    }

    fn state(&self) -> PathBuf {
        self.dir.join("state")
    }

    fn cmd(&self, args: &[&str]) -> Command {
        self.cmd_as(Path::new(BIN), args)
    }

    fn cmd_as(&self, bin: &Path, args: &[&str]) -> Command {
        let mut c = Command::new(bin);
        c.args(args).env("DAEMONIC_STATE_DIR", self.state());
        c
    }

    /// Runs `cmd` to its end while answering its requests with `answer`, as the
    /// supervisor's loop would; returns its output and the requests it sent.
    fn serve(
        &mut self,
        cmd: &mut Command,
        mut answer: impl FnMut(&Request) -> Response,
    ) -> (Output, Vec<Request>) {
        let server = self.server.as_mut().expect("a listening fake");
        let (child, guard) = spawn_piped(cmd);
        let pidfd = guard.0.as_ref().expect("the client's pidfd");
        let deadline = Instant::now() + SOON;
        let mut seen = Vec::new();
        loop {
            for (conn, request) in server.poll_requests(Instant::now()) {
                server.reply(conn, &answer(&request));
                seen.push(request);
            }
            let left = deadline.saturating_duration_since(Instant::now());
            assert!(!left.is_zero(), "the client did not finish within {SOON:?}");
            let wake = server.next_deadline().map_or(left, |d| {
                d.saturating_duration_since(Instant::now()).min(left)
            });
            let mut fds = vec![PollFd::new(pidfd.as_fd(), PollFlags::POLLIN)];
            fds.extend(
                server
                    .fds()
                    .into_iter()
                    .map(|fd| PollFd::new(fd, PollFlags::POLLIN)),
            );
            let ms = i32::try_from(wake.as_millis()).unwrap_or(i32::MAX);
            poll(&mut fds, PollTimeout::try_from(ms).unwrap()).unwrap();
            let exited = fds[0].revents().is_some_and(|r| !r.is_empty());
            if exited {
                break;
            }
        }
        (child.wait_with_output().unwrap(), seen)
    }
}

fn now_unix() -> u64 {
    std::time::SystemTime::now()
        .duration_since(std::time::UNIX_EPOCH)
        .unwrap()
        .as_secs()
}

fn web() -> ServiceInfo {
    ServiceInfo {
        name: "web".into(),
        state: "ready".into(),
        pid: Some(4242),
        supervisor_pid: 4241,
        since_unix: now_unix() - 300,
        status: "serving \"all\"".into(),
        ready: true,
        cpu_ms: Some(1234),
        rss_bytes: Some(12_900_000),
        ..ServiceInfo::default()
    }
}

/// Regression: `status --ready` read readiness back from the health text (anything but
/// `checking…` and `unhealthy…` counted as ready); now it is the supervisor's typed
/// verdict (`ready` in the record), whatever the text says.
#[test]
fn status_ready_is_the_supervisors_verdict_not_the_health_text() {
    let mut fake = Fake::running("ready-typed");
    let verdict = |ready| ServiceInfo {
        health: Some("healthy".into()),
        ready,
        ..web()
    };
    let (out, _) = fake.serve(&mut fake.cmd(&["status", "web", "--ready"]), |_| {
        Response::Services(vec![verdict(false)])
    });
    assert_eq!(out.status.code(), Some(3), "{}", stderr(&out));
    let (out, _) = fake.serve(&mut fake.cmd(&["status", "web", "--ready"]), |_| {
        Response::Services(vec![verdict(true)])
    });
    assert_eq!(out.status.code(), Some(0), "{}", stderr(&out));
}

#[test]
fn status_shows_what_the_supervisor_reports() {
    let mut fake = Fake::running("status");
    let (out, seen) = fake.serve(&mut fake.cmd(&["status", "web"]), |_| {
        Response::Services(vec![web()])
    });
    assert_eq!(out.status.code(), Some(0), "{}", stderr(&out));
    assert_eq!(
        stdout(&out),
        "web: ready, pid 4242 (supervisor 4241), ready for 5m, cpu 1.23s, mem 12.3M; status: serving \"all\"\n"
    );
    assert_eq!(
        seen,
        [Request::Status {
            name: Some("web".into())
        }]
    );
}

#[test]
fn status_json_is_an_array_of_objects() {
    let mut fake = Fake::running("json");
    let (out, _) = fake.serve(&mut fake.cmd(&["status", "web", "--json"]), |_| {
        Response::Services(vec![web()])
    });
    assert_eq!(out.status.code(), Some(0), "{}", stderr(&out));
    let text = stdout(&out);
    assert!(
        text.starts_with("[\n  {\"name\":\"web\",\"state\":\"ready\",\"pid\":4242,"),
        "{text}"
    );
    assert!(
        text.contains(
            r#""status":"serving \"all\"","cpu_ms":1234,"rss_bytes":12900000,"log_file":null,"group":null,"health":null,"ready":true,"containment":null,"tree_processes":null,"tree_memory_bytes":null,"tree_cpu_ms":null,"log_lines_dropped":null,"log_error":null,"sockets":[],"fd_store":null}"#
        ),
        "{text}"
    );
    assert!(text.ends_with("}\n]\n"), "{text}");
}

#[test]
fn status_reads_the_status_file_while_the_supervisor_cannot_answer_yet() {
    let mut fake = Fake::empty("fallback");
    // The pid file is locked (a supervisor is starting) but nothing listens yet.
    fake.lock = Some(PidFile::lock(fake.state().join("web.pid")).unwrap());
    let out = run(&mut fake.cmd(&["status", "web"]));
    assert_eq!(out.status.code(), Some(0), "{}", stderr(&out));
    assert_eq!(
        stdout(&out),
        format!("web: starting (supervisor {})\n", std::process::id())
    );
    let out = run(&mut fake.cmd(&["list"]));
    assert!(
        stdout(&out).contains("\nweb   starting  -"),
        "{}",
        stdout(&out)
    );
}

#[test]
fn nothing_running_is_exit_3_for_status_and_a_bare_header_for_list() {
    let fake = Fake::empty("nothing");
    let out = run(&mut fake.cmd(&["status", "web"]));
    assert_eq!(out.status.code(), Some(3));
    assert_eq!(
        stdout(&out),
        format!(
            "web: not running (never started in {})\n",
            fake.state().display()
        )
    );
    let out = run(&mut fake.cmd(&["status"]));
    assert_eq!(out.status.code(), Some(3));
    assert_eq!(stderr(&out), "daemonic: no service is running\n");
    let out = run(&mut fake.cmd(&["status", "--json"]));
    assert_eq!(
        (out.status.code(), stdout(&out).as_str()),
        (Some(3), "[]\n")
    );
    let out = run(&mut fake.cmd(&["list"]));
    assert_eq!(out.status.code(), Some(0));
    assert_eq!(
        stdout(&out),
        "NAME  STATE  PID  UPTIME  RESTARTS  LAST-EXIT  CPU  MEM  HEALTH\n"
    );
}

#[test]
fn list_shows_a_row_per_service_and_removes_a_stale_socket() {
    let mut fake = Fake::running("list");
    // What a killed supervisor leaves behind: a socket file nobody listens on.
    let ghost = fake.state().join("ghost.sock");
    drop(std::os::unix::net::UnixListener::bind(&ghost).unwrap());
    let api = ServiceInfo {
        name: "api".into(),
        state: "backoff".into(),
        supervisor_pid: 17,
        since_unix: now_unix() - 3,
        restarts: 2,
        last_exit: Some("exited with status 1".into()),
        ..ServiceInfo::default()
    };
    let (out, seen) = fake.serve(&mut fake.cmd(&["list"]), |_| {
        Response::Services(vec![web(), api.clone()])
    });
    assert_eq!(out.status.code(), Some(0), "{}", stderr(&out));
    let text = stdout(&out);
    let lines: Vec<&str> = text.lines().collect();
    assert_eq!(lines.len(), 3, "{text}");
    assert!(
        lines[0].starts_with("NAME  STATE    PID   UPTIME  RESTARTS  LAST-EXIT"),
        "{text}"
    );
    assert!(lines[1].starts_with("api   backoff  -     "), "{text}");
    assert!(
        lines[1].contains("2         exited with status 1  -      -"),
        "{text}"
    );
    assert!(
        lines[2].starts_with("web   ready    4242  5m      0  "),
        "{text}"
    );
    assert!(lines[2].ends_with("1.23s  12.3M  -"), "{text}");
    assert_eq!(seen, [Request::List]);
    // Proven stale (nobody holds ghost.pid): removed, so that no later `list` trips on it.
    assert_eq!(stderr(&out), "");
    assert!(!ghost.exists(), "the stale socket was removed");
    assert!(
        !fake.state().join("ghost.pid").exists(),
        "nothing new was left"
    );
}

#[test]
fn restart_reload_and_signal_send_their_request_and_are_silent_on_success() {
    let mut fake = Fake::running("commands");
    let done = |_: &Request| Response::Done("ok".into());
    for (args, expected) in [
        (
            &["restart", "web"][..],
            Request::Restart { name: "web".into() },
        ),
        (
            &["reload", "web"][..],
            Request::Reload {
                name: "web".into(),
                wait: false,
            },
        ),
        (
            &["signal", "web", "usr1"][..],
            Request::Signal {
                name: "web".into(),
                signal: Signal::SIGUSR1,
            },
        ),
    ] {
        let (out, seen) = fake.serve(&mut fake.cmd(args), done);
        assert_eq!(out.status.code(), Some(0), "{args:?}: {}", stderr(&out));
        assert_eq!((stdout(&out), stderr(&out)), (String::new(), String::new()));
        assert_eq!(seen, [expected]);
    }
    let out = run(&mut fake.cmd(&["signal", "web", "SIGNOPE"]));
    assert_eq!(out.status.code(), Some(2), "a usage error, nothing sent");
    assert!(
        stderr(&out).contains("unknown signal \"SIGNOPE\""),
        "{}",
        stderr(&out)
    );
}

#[test]
fn the_supervisors_refusal_is_the_commands_error() {
    let mut fake = Fake::running("refusal");
    let (out, _) = fake.serve(&mut fake.cmd(&["reload", "web"]), |_| {
        Response::Error("web is stopping".into())
    });
    assert_eq!(out.status.code(), Some(1));
    assert_eq!(stderr(&out), "daemonic: web: web is stopping\n");
}

#[test]
fn a_command_for_a_service_without_a_socket_names_the_socket() {
    let fake = Fake::empty("nosocket");
    let out = run(&mut fake.cmd(&["restart", "web"]));
    assert_eq!(out.status.code(), Some(1));
    assert_eq!(
        stderr(&out),
        format!(
            "daemonic: web: connect {}: No such file or directory (is the service running?)\n",
            fake.state().join("web.sock").display()
        )
    );
}

/// Guards `SO_PEERCRED`: with the directory and socket opened wide (so file modes let
/// anyone in), a client running as another uid is still refused, and root is answered.
#[test]
fn another_uid_is_refused_by_its_peer_credentials() {
    if !nix::unistd::geteuid().is_root() {
        eprintln!("skipped: needs root to run a client as another uid");
        return;
    }
    let mut fake = Fake::running("peercred");
    let wide = |p: &Path, mode| std::fs::set_permissions(p, std::fs::Permissions::from_mode(mode));
    wide(fake.dir.path(), 0o755).unwrap();
    wide(&fake.state(), 0o755).unwrap();
    wide(&fake.state().join("web.sock"), 0o666).unwrap();
    // The binary is run where cargo built it (a copy could not be executed reliably: a
    // child forked meanwhile by another test would hold it open for writing, ETXTBSY).
    if let Some(closed) = closed_to_others(Path::new(BIN)) {
        eprintln!("skipped: {} is not open to other users", closed.display());
        return;
    }
    let bin = Path::new(BIN);
    // The stranger's commands refuse root's state directory before connecting; the
    // server's own check is reached through a state directory of theirs whose `web.sock`
    // leads to root's socket.
    let theirs = fake.dir.join("stranger");
    std::fs::create_dir(&theirs).unwrap();
    std::os::unix::fs::chown(&theirs, Some(65534), Some(65534)).unwrap();
    std::os::unix::fs::symlink(fake.state().join("web.sock"), theirs.join("web.sock")).unwrap();
    let mut stranger = fake.cmd_as(bin, &["restart", "web"]);
    stranger
        .env("DAEMONIC_STATE_DIR", &theirs)
        .uid(65534)
        .gid(65534);
    let (out, seen) = fake.serve(&mut stranger, |r| {
        panic!("a stranger's request got through: {r:?}")
    });
    assert_eq!(out.status.code(), Some(1), "{}", stderr(&out));
    assert_eq!(
        stderr(&out),
        "daemonic: web: permission denied: uid 65534 is not the owner\n"
    );
    assert_eq!(seen, []);

    let (out, seen) = fake.serve(&mut fake.cmd_as(bin, &["restart", "web"]), |_| {
        Response::Done("restarting".into())
    });
    assert_eq!(out.status.code(), Some(0), "{}", stderr(&out));
    assert_eq!(seen, [Request::Restart { name: "web".into() }]);
}

/// The first of `bin` and its directories that other users cannot execute or search.
fn closed_to_others(bin: &Path) -> Option<PathBuf> {
    bin.ancestors().find_map(|p| {
        let mode = std::fs::metadata(p).ok()?.permissions().mode();
        (mode & 0o001 == 0).then(|| p.to_path_buf())
    })
}
