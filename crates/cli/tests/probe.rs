//! Probes against real sockets and processes, driven by a poll loop the way the
//! supervisor drives them: poll the attempt's fds until its deadline, advance when one is
//! ready or the deadline has come.

use daemonic_test_support as support;

use std::io::{Read, Write};
use std::net::{Ipv4Addr, SocketAddr, TcpListener, TcpStream};
use std::os::fd::{AsRawFd, OwnedFd};
use std::path::Path;
use std::process::Command;
use std::thread::JoinHandle;
use std::time::{Duration, Instant};

use daemonic::Pid;
use daemonic_cli::supervisor::probe::{Attempt, Outcome, Probe};
use nix::poll::{PollTimeout, poll};
use nix::sys::socket::{
    AddressFamily, Backlog, SockFlag, SockType, SockaddrIn, bind, getsockname, listen, socket,
};
use support::*;

const SHORT: Duration = Duration::from_millis(200);

/// Runs an attempt to its end as the supervisor's loop would; fails the test if that
/// takes longer than `SOON`.
fn drive(attempt: &mut Attempt) -> Outcome {
    let guard = Instant::now() + SOON;
    loop {
        assert!(
            Instant::now() < guard,
            "attempt did not finish: {attempt:?}"
        );
        let deadline = attempt.deadline();
        let left = deadline.saturating_duration_since(Instant::now());
        let ms = left.as_micros().div_ceil(1000).min(i32::MAX as u128) as i32;
        let mut fds = attempt.poll_fds();
        match poll(&mut fds, PollTimeout::try_from(ms).unwrap()) {
            Ok(_) | Err(nix::errno::Errno::EINTR) => {}
            Err(e) => panic!("poll: {e}"),
        }
        let ready = fds
            .iter()
            .any(|f| f.revents().is_some_and(|r| !r.is_empty()));
        drop(fds);
        let now = Instant::now();
        if (ready || now >= deadline)
            && let Some(outcome) = attempt.advance(now)
        {
            assert_eq!(attempt.advance(now), None, "an outcome is reported once");
            assert!(attempt.poll_fds().is_empty());
            return outcome;
        }
    }
}

fn run(probe: &str, timeout: Duration, dir: &Path) -> Outcome {
    let probe = Probe::parse(probe).unwrap();
    drive(&mut probe.start(timeout, dir, Instant::now()))
}

fn failure(outcome: Outcome) -> String {
    match outcome {
        Outcome::Failure(why) => why,
        Outcome::Success => panic!("expected a failure"),
    }
}

/// A port nothing listens on (bound, then released).
fn closed_port() -> u16 {
    TcpListener::bind((Ipv4Addr::LOCALHOST, 0))
        .unwrap()
        .local_addr()
        .unwrap()
        .port()
}

fn tmp() -> TempDir {
    TempDir::new("probe")
}

#[test]
fn tcp_succeeds_against_a_listener() {
    let listener = TcpListener::bind((Ipv4Addr::LOCALHOST, 0)).unwrap();
    let port = listener.local_addr().unwrap().port();
    let dir = tmp();
    assert_eq!(
        run(&format!("tcp:{port}"), SOON, dir.path()),
        Outcome::Success
    );
    assert_eq!(
        run(&format!("tcp:127.0.0.1:{port}"), SOON, dir.path()),
        Outcome::Success
    );
}

#[test]
fn tcp_over_ipv6_and_localhost_tries_each_address() {
    let Ok(listener) = TcpListener::bind("[::1]:0") else {
        eprintln!("skipped: cannot bind [::1] here (no IPv6 loopback)");
        return;
    };
    let port = listener.local_addr().unwrap().port();
    let dir = tmp();
    assert_eq!(
        run(&format!("tcp:[::1]:{port}"), SOON, dir.path()),
        Outcome::Success
    );
    // 127.0.0.1 first (refused: the listener is IPv6 only), then ::1.
    assert_eq!(
        run(&format!("tcp:localhost:{port}"), SOON, dir.path()),
        Outcome::Success
    );
}

#[test]
fn tcp_to_a_closed_port_is_refused() {
    let port = closed_port();
    let why = failure(run(&format!("tcp:{port}"), SOON, tmp().path()));
    assert_eq!(why, format!("connect 127.0.0.1:{port}: Connection refused"));
}

/// A listener whose accept queue is full: the kernel drops further SYNs, so a connect
/// neither succeeds nor fails until the client gives up — a server that does not answer.
struct Unanswering {
    _listener: OwnedFd,
    _queued: Vec<TcpStream>,
    addr: SocketAddr,
}

impl Unanswering {
    fn new() -> Unanswering {
        let fd = socket(
            AddressFamily::Inet,
            SockType::Stream,
            SockFlag::SOCK_CLOEXEC,
            None,
        )
        .unwrap();
        bind(fd.as_raw_fd(), &SockaddrIn::new(127, 0, 0, 1, 0)).unwrap();
        listen(&fd, Backlog::new(0).unwrap()).unwrap();
        let port = getsockname::<SockaddrIn>(fd.as_raw_fd()).unwrap().port();
        let addr = SocketAddr::from((Ipv4Addr::LOCALHOST, port));
        // Fill the queue (backlog 0 holds one) until a connect goes unanswered.
        let mut queued = Vec::new();
        for _ in 0..16 {
            // Loopback connects complete at once; this only waits for the one that won't.
            match TcpStream::connect_timeout(&addr, Duration::from_millis(500)) {
                Ok(s) => queued.push(s),
                Err(e) if e.kind() == std::io::ErrorKind::TimedOut => {
                    return Unanswering {
                        _listener: fd,
                        _queued: queued,
                        addr,
                    };
                }
                Err(e) => panic!("connect {addr}: {e}"),
            }
        }
        panic!("the accept queue of {addr} never filled");
    }
}

#[test]
fn tcp_times_out_against_a_server_that_does_not_answer() {
    let server = Unanswering::new();
    let probe = Probe::parse(&format!("tcp:{}", server.addr)).unwrap();
    let mut attempt = probe.start(SHORT, tmp().path(), Instant::now());
    // Advancing before anything is ready or due is harmless.
    assert_eq!(attempt.advance(Instant::now()), None);
    let why = failure(drive(&mut attempt));
    assert_eq!(
        why,
        format!("connect {}: timed out after 200ms", server.addr)
    );
}

/// A one-connection HTTP server: reads the request, then writes `response` in pieces
/// (`None`: never answers, holds the connection until the client closes it). Returns the
/// port and, from the thread, the request it read.
fn serve(response: Option<Vec<&'static [u8]>>) -> (u16, JoinHandle<String>) {
    let listener = TcpListener::bind((Ipv4Addr::LOCALHOST, 0)).unwrap();
    let port = listener.local_addr().unwrap().port();
    let thread = std::thread::spawn(move || {
        let (mut conn, _) = listener.accept().unwrap();
        conn.set_read_timeout(Some(SOON)).unwrap();
        let mut request = Vec::new();
        let mut byte = [0u8];
        while !request.ends_with(b"\r\n\r\n") && conn.read(&mut byte).unwrap() == 1 {
            request.push(byte[0]);
        }
        match response {
            Some(pieces) => {
                for piece in pieces {
                    // The client may have judged the status line and gone already.
                    let _ = conn.write_all(piece).and_then(|()| conn.flush());
                }
            }
            // Until the client closes (or `SOON`, if the test has failed).
            None => while conn.read(&mut byte).is_ok_and(|n| n > 0) {},
        }
        String::from_utf8(request).unwrap()
    });
    (port, thread)
}

/// An HTTP probe of a [`serve`]d `response`: the outcome, the request, the port.
fn http(response: Option<Vec<&'static [u8]>>, path_and_codes: &str) -> (Outcome, String, u16) {
    // Only a server that never answers should see the probe time out.
    let timeout = if response.is_some() { SOON } else { SHORT };
    let (port, server) = serve(response);
    let outcome = run(
        &format!("http://127.0.0.1:{port}{path_and_codes}"),
        timeout,
        tmp().path(),
    );
    (outcome, server.join().unwrap(), port)
}

#[test]
fn http_200_is_success_and_the_request_is_a_plain_get() {
    let (outcome, request, port) = http(
        Some(vec![b"HTTP/1.1 200 OK\r\nContent-Length: 0\r\n\r\n"]),
        "/health?full=1",
    );
    assert_eq!(outcome, Outcome::Success);
    assert!(
        request.starts_with(&format!(
            "GET /health?full=1 HTTP/1.1\r\nHost: 127.0.0.1:{port}\r\n"
        )),
        "{request}"
    );
    assert!(request.contains("Connection: close\r\n"), "{request}");
}

#[test]
fn http_status_line_in_pieces_is_read_to_its_end() {
    let pieces: Vec<&'static [u8]> = vec![b"HTTP/1.0 2", b"04 No Content", b"\r\n\r\n"];
    assert_eq!(http(Some(pieces), "/").0, Outcome::Success);
}

#[test]
fn http_503_fails_unless_expected() {
    let answer: &'static [u8] = b"HTTP/1.1 503 Service Unavailable\r\n\r\n";
    let (outcome, _, port) = http(Some(vec![answer]), "/health");
    assert_eq!(
        failure(outcome),
        format!("HTTP 503 from http://127.0.0.1:{port}/health (expected 200-399)")
    );
    assert_eq!(http(Some(vec![answer]), "/#500-599").0, Outcome::Success);
    let (outcome, _, port) = http(Some(vec![b"HTTP/1.1 301 Moved\r\n\r\n"]), "/#200");
    assert_eq!(
        failure(outcome),
        format!("HTTP 301 from http://127.0.0.1:{port}/ (expected 200-200)")
    );
}

#[test]
fn http_garbage_is_not_a_status_line() {
    let (outcome, _, port) = http(Some(vec![b"SSH-2.0-OpenSSH_9.6\r\n"]), "/");
    assert_eq!(
        failure(outcome),
        format!("GET http://127.0.0.1:{port}/: not an HTTP status line: \"SSH-2.0-OpenSSH_9.6\"")
    );
    let endless: &'static [u8] = &[b'x'; 4096];
    let why = failure(http(Some(vec![endless]), "/").0);
    assert!(
        why.ends_with("no status line in the first 1024 bytes"),
        "{why}"
    );
}

#[test]
fn http_closed_without_an_answer_fails() {
    let (outcome, _, port) = http(Some(vec![]), "/");
    assert_eq!(
        failure(outcome),
        format!("GET http://127.0.0.1:{port}/: connection closed without a response")
    );
}

#[test]
fn http_times_out_when_the_server_never_answers() {
    let (outcome, request, port) = http(None, "/slow");
    assert!(request.starts_with("GET /slow "), "{request}");
    assert_eq!(
        failure(outcome),
        format!("GET http://127.0.0.1:{port}/slow: timed out after 200ms")
    );
}

#[test]
fn http_to_a_closed_port_is_refused() {
    let port = closed_port();
    let why = failure(run(
        &format!("http://127.0.0.1:{port}/"),
        SOON,
        tmp().path(),
    ));
    assert_eq!(why, format!("connect 127.0.0.1:{port}: Connection refused"));
}

#[test]
fn exec_status_decides() {
    let dir = tmp();
    assert_eq!(run("exec:true", SOON, dir.path()), Outcome::Success);
    assert_eq!(
        failure(run("exec:exit 3", SOON, dir.path())),
        "exec `exit 3` exited with status 3"
    );
    assert_eq!(
        failure(run("exec:kill -SEGV $$", SOON, dir.path())),
        "exec `kill -SEGV $$` killed by SIGSEGV"
    );
}

#[test]
fn exec_failure_quotes_the_last_line_of_output() {
    let dir = tmp();
    assert_eq!(
        failure(run(
            "exec:echo starting; echo 'connection refused' >&2; exit 7",
            SOON,
            dir.path()
        )),
        "exec `echo starting; echo 'connection refused' >&2; exit 7` exited with status 7: \
         connection refused"
    );
}

/// Megabytes of output: drained as they come (a full pipe would block the command until
/// the timeout), only the end kept.
#[test]
fn exec_output_is_drained_however_much_there_is() {
    let command = "head -c 4000000 /dev/zero | tr '\\0' x; echo; echo last words; exit 1";
    let why = failure(run(&format!("exec:{command}"), SOON, tmp().path()));
    assert_eq!(
        why,
        format!("exec `{command}` exited with status 1: last words")
    );
}

#[test]
fn exec_runs_in_the_given_directory() {
    let dir = tmp();
    std::fs::write(dir.join("marker"), "").unwrap();
    assert_eq!(
        run("exec:test -f marker", SOON, dir.path()),
        Outcome::Success
    );
}

fn pid_in(path: &Path) -> Pid {
    let text = wait_for(&format!("a pid in {}", path.display()), SOON, || {
        std::fs::read_to_string(path)
            .ok()
            .filter(|t| t.ends_with('\n'))
    });
    Pid::from_raw(text.trim().parse().unwrap())
}

#[test]
fn exec_timeout_kills_the_whole_group() {
    let dir = tmp();
    let command = "sleep 5 & echo $! > bg; echo $$ > pid; wait";
    let probe = Probe::parse(&format!("exec:{command}")).unwrap();
    let mut attempt = probe.start(Duration::from_millis(100), dir.path(), Instant::now());
    let shell = pid_in(&dir.join("pid"));
    let background = pid_in(&dir.join("bg"));
    let _guards = (KillOnDrop::new(shell), KillOnDrop::new(background));
    assert_eq!(
        failure(drive(&mut attempt)),
        format!("exec `{command}` timed out after 100ms")
    );
    // The shell was our child and is reaped; the background sleep was SIGKILLed with the
    // group (reaped by whoever inherited it).
    assert!(reaped(shell), "shell {shell} still there");
    wait_for("the background sleep to die", SOON, || {
        (!alive(background)).then_some(())
    });
}

#[test]
fn exec_ends_with_its_shell_even_if_a_background_child_holds_its_output() {
    let dir = tmp();
    let outcome = run("exec:sleep 5 & echo $! > bg", SOON, dir.path());
    let background = pid_in(&dir.join("bg"));
    let _guard = KillOnDrop::new(background);
    assert_eq!(outcome, Outcome::Success);
    wait_for("the background sleep to die", SOON, || {
        (!alive(background)).then_some(())
    });
}

#[test]
fn dropping_an_exec_attempt_kills_and_reaps_it() {
    let dir = tmp();
    let probe = Probe::parse("exec:echo $$ > pid; exec sleep 5").unwrap();
    let attempt = probe.start(SOON, dir.path(), Instant::now());
    let shell = pid_in(&dir.join("pid"));
    let _guard = KillOnDrop::new(shell);
    assert!(alive(shell));
    drop(attempt);
    // Reaped by the drop itself: no zombie left, nothing to wait for.
    assert!(reaped(shell), "pid {shell} still there after the drop");
}

/// Run in a child process (the environment is process-wide): daemonic's own variables
/// are not passed to an exec probe, others are.
#[test]
fn exec_probe_hides_daemonics_variables() {
    if std::env::var_os("PROBE_TEST_CHILD").is_none() {
        let out = support::run(
            Command::new(std::env::current_exe().unwrap())
                .args(["--exact", "exec_probe_hides_daemonics_variables"])
                .env("PROBE_TEST_CHILD", "1")
                .env("NOTIFY_SOCKET", "/run/x")
                .env("WATCHDOG_USEC", "1")
                .env("WATCHDOG_PID", "1")
                .env("LISTEN_FDS", "1")
                .env("LISTEN_PID", "1")
                .env("LISTEN_FDNAMES", "x")
                .env("DAEMONIC_REEXEC", "1"),
        );
        let report = String::from_utf8_lossy(&out.stdout);
        assert!(
            out.status.success() && report.contains("1 passed"),
            "{report}"
        );
        return;
    }
    let command = "test \"$PROBE_TEST_CHILD\" = 1 && \
        test -z \"$NOTIFY_SOCKET$WATCHDOG_USEC$WATCHDOG_PID$LISTEN_FDS$LISTEN_PID$LISTEN_FDNAMES$DAEMONIC_REEXEC\"";
    assert_eq!(
        run(&format!("exec:{command}"), SOON, tmp().path()),
        Outcome::Success
    );
}
