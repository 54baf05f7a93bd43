//! The server and client on real sockets in a temp dir. The server is driven the way the
//! supervisor drives it: `poll(2)` on its fds, then `poll_requests`; time is passed in, so
//! the request deadline is tested without waiting for it.

use std::io::{Read, Write};
use std::os::unix::fs::{FileTypeExt, PermissionsExt};
use std::os::unix::net::{UnixListener, UnixStream};
use std::path::{Path, PathBuf};
use std::time::{Duration, Instant};

use nix::poll::{PollFd, PollFlags, PollTimeout, poll};

use super::super::{
    ConnId, ControlServer, MAX_CONNECTIONS, NotListening, REQUEST_TIMEOUT, Request, Response, call,
};
use super::full_service;

const SOON: Duration = Duration::from_secs(10);

/// A directory removed with its contents on drop.
struct TempDir(PathBuf);

impl TempDir {
    fn new(tag: &str) -> TempDir {
        for n in 0.. {
            let p = std::env::temp_dir()
                .join(format!("daemonic-control-{tag}-{}-{n}", std::process::id()));
            if std::fs::create_dir(&p).is_ok() {
                return TempDir(p);
            }
        }
        unreachable!()
    }

    fn sock(&self) -> PathBuf {
        self.0.join("web.sock")
    }
}

impl Drop for TempDir {
    fn drop(&mut self) {
        let _ = std::fs::remove_dir_all(&self.0);
    }
}

/// Runs the server's side of a poll loop until a request arrives; fails after [`SOON`].
fn next_request(server: &mut ControlServer) -> (ConnId, Request) {
    let deadline = Instant::now() + SOON;
    loop {
        if let Some(r) = server.poll_requests(Instant::now()).into_iter().next() {
            return r;
        }
        let left = deadline.saturating_duration_since(Instant::now());
        assert!(!left.is_zero(), "no request within {SOON:?}");
        let mut fds: Vec<PollFd> = server
            .fds()
            .into_iter()
            .map(|fd| PollFd::new(fd, PollFlags::POLLIN))
            .collect();
        let ms = i32::try_from(left.as_millis()).unwrap_or(i32::MAX);
        poll(&mut fds, PollTimeout::try_from(ms).unwrap()).unwrap();
    }
}

fn connect(path: &Path) -> UnixStream {
    let s = UnixStream::connect(path).unwrap();
    s.set_read_timeout(Some(SOON)).unwrap();
    s
}

/// Everything the server sent before closing, decoded as one response frame.
fn response(mut stream: UnixStream) -> Response {
    let mut bytes = Vec::new();
    if let Err(e) = stream.read_to_end(&mut bytes) {
        // Closing with our unread bytes in its queue makes the kernel report a reset
        // after the data; the data is what counts.
        assert_eq!(e.kind(), std::io::ErrorKind::ConnectionReset, "{e}");
    }
    assert!(bytes.len() >= 9, "no response: {bytes:?}");
    Response::decode(&bytes[9..]).unwrap()
}

fn error_text(stream: UnixStream) -> String {
    match response(stream) {
        Response::Error(text) => text,
        other => panic!("expected an error, got {other:?}"),
    }
}

#[test]
fn a_valid_request_is_returned_once_complete_and_answered() {
    let dir = TempDir::new("valid");
    let mut server = ControlServer::bind(&dir.sock()).unwrap();
    let mut client = connect(&dir.sock());
    let frame = Request::Restart { name: "web".into() }.to_frame();
    // Half a header, then the rest: nothing is returned until the frame is whole.
    client.write_all(&frame[..5]).unwrap();
    let now = Instant::now();
    assert!(server.poll_requests(now).is_empty());
    assert_eq!(server.next_deadline(), Some(now + REQUEST_TIMEOUT));
    client.write_all(&frame[5..]).unwrap();
    let requests = server.poll_requests(now);
    assert_eq!(requests.len(), 1);
    let (conn, request) = requests.into_iter().next().unwrap();
    assert_eq!(request, Request::Restart { name: "web".into() });
    assert_eq!(
        server.next_deadline(),
        None,
        "an answered-to-be request has no deadline"
    );
    assert_eq!(
        server.fds().len(),
        1,
        "only the listener is polled while we answer"
    );
    server.reply(conn, &Response::Done("restarting web".into()));
    assert_eq!(response(client), Response::Done("restarting web".into()));
    assert_eq!(server.connections(), 0);
}

#[test]
fn call_round_trips_through_the_socket() {
    let dir = TempDir::new("call");
    let mut server = ControlServer::bind(&dir.sock()).unwrap();
    let path = dir.sock();
    let client = std::thread::spawn(move || call(&path, &Request::List, SOON));
    let (conn, request) = next_request(&mut server);
    assert_eq!(request, Request::List);
    let answer = Response::Services(vec![full_service()]);
    server.reply(conn, &answer);
    assert_eq!(client.join().unwrap().unwrap(), answer);
}

#[test]
fn a_malformed_request_gets_an_error_and_is_never_returned() {
    let dir = TempDir::new("malformed");
    let mut server = ControlServer::bind(&dir.sock()).unwrap();
    let good = Request::Stop { name: "web".into() }.to_frame();
    let mut bad_magic = good.clone();
    bad_magic[..4].copy_from_slice(b"GET ");
    let mut too_long = good[..5].to_vec();
    too_long.extend_from_slice(&(1u32 << 20).to_be_bytes());
    let unknown_op = super::framed("op=explode\nname=web\n");
    let cases: [(&str, &[u8], &str); 4] = [
        ("bad magic", &bad_magic, "bad magic \"GET \""),
        (
            "over-size length",
            &too_long,
            "payload of 1048576 bytes is over the limit",
        ),
        ("unknown op", &unknown_op, "unknown op \"explode\""),
        ("truncated", &good[..good.len() - 2], "truncated frame"),
    ];
    for (what, bytes, expected) in cases {
        let mut client = connect(&dir.sock());
        client.write_all(bytes).unwrap();
        if what == "truncated" {
            client.shutdown(std::net::Shutdown::Write).unwrap();
        }
        assert_eq!(server.poll_requests(Instant::now()), vec![], "{what}");
        let text = error_text(client);
        assert!(text.contains(expected), "{what}: {text}");
        assert_eq!(server.connections(), 0, "{what}: closed");
    }
}

#[test]
fn a_silent_peer_is_dropped_at_the_deadline_and_a_hang_up_is_forgotten() {
    let dir = TempDir::new("silent");
    let mut server = ControlServer::bind(&dir.sock()).unwrap();
    assert_eq!(server.next_deadline(), None, "no timer while idle");
    let silent = connect(&dir.sock());
    let t0 = Instant::now();
    assert!(server.poll_requests(t0).is_empty());
    let deadline = server
        .next_deadline()
        .expect("a deadline for the open connection");
    assert_eq!(deadline, t0 + REQUEST_TIMEOUT);
    assert!(
        server
            .poll_requests(deadline - Duration::from_millis(1))
            .is_empty()
    );
    assert_eq!(server.connections(), 1, "not yet");
    assert!(server.poll_requests(deadline).is_empty());
    assert_eq!(server.connections(), 0);
    assert_eq!(server.next_deadline(), None);
    assert!(error_text(silent).contains("no complete request within 5s"));

    drop(connect(&dir.sock()));
    assert!(server.poll_requests(Instant::now()).is_empty());
    assert_eq!(server.connections(), 0, "a peer that hung up is not kept");
}

#[test]
fn connections_beyond_the_limit_are_refused() {
    let dir = TempDir::new("limit");
    let mut server = ControlServer::bind(&dir.sock()).unwrap();
    let mut open = Vec::new();
    for _ in 0..MAX_CONNECTIONS {
        open.push(connect(&dir.sock()));
        assert!(server.poll_requests(Instant::now()).is_empty());
    }
    assert_eq!(server.connections(), MAX_CONNECTIONS);
    let extra = connect(&dir.sock());
    assert!(server.poll_requests(Instant::now()).is_empty());
    assert!(error_text(extra).contains("too many connections"));
    assert_eq!(server.connections(), MAX_CONNECTIONS);
    // The ones already open still work.
    open[0].write_all(&Request::List.to_frame()).unwrap();
    let requests = server.poll_requests(Instant::now());
    assert_eq!(requests.len(), 1);
}

#[test]
fn bind_creates_the_socket_with_mode_0600() {
    let dir = TempDir::new("mode");
    let _server = ControlServer::bind(&dir.sock()).unwrap();
    let meta = std::fs::symlink_metadata(dir.sock()).unwrap();
    assert!(meta.file_type().is_socket());
    assert_eq!(meta.permissions().mode() & 0o7777, 0o600);
}

#[test]
fn bind_refuses_to_remove_anything_but_a_socket() {
    let dir = TempDir::new("refuse");
    std::fs::write(dir.sock(), "precious").unwrap();
    let err = format!("{:#}", ControlServer::bind(&dir.sock()).err().unwrap());
    assert!(err.contains("a regular file is in the way"), "{err}");
    assert!(err.contains(&dir.sock().display().to_string()), "{err}");
    assert_eq!(std::fs::read_to_string(dir.sock()).unwrap(), "precious");

    let link = dir.0.join("link.sock");
    std::os::unix::fs::symlink(dir.sock(), &link).unwrap();
    let err = format!("{:#}", ControlServer::bind(&link).err().unwrap());
    assert!(err.contains("a symbolic link is in the way"), "{err}");
}

#[test]
fn bind_replaces_a_stale_socket_and_drop_removes_its_own() {
    let dir = TempDir::new("stale");
    // A listener dropped without unlinking: what a killed supervisor leaves behind.
    drop(UnixListener::bind(dir.sock()).unwrap());
    let err = call(&dir.sock(), &Request::List, SOON).unwrap_err();
    let not_listening = err.downcast_ref::<NotListening>().expect("NotListening");
    assert_eq!(not_listening.errno, nix::errno::Errno::ECONNREFUSED);
    assert_eq!(
        err.to_string(),
        format!(
            "connect {}: Connection refused (a stale socket: its supervisor is gone)",
            dir.sock().display()
        )
    );

    let server = ControlServer::bind(&dir.sock()).unwrap();
    assert!(dir.sock().exists());
    drop(server);
    assert!(!dir.sock().exists(), "removed on drop");
}

#[test]
fn call_names_the_socket_when_there_is_none() {
    let dir = TempDir::new("none");
    let err = call(&dir.sock(), &Request::List, SOON).unwrap_err();
    assert!(err.downcast_ref::<NotListening>().is_some());
    assert_eq!(
        err.to_string(),
        format!(
            "connect {}: No such file or directory (is the service running?)",
            dir.sock().display()
        )
    );
}

#[test]
fn call_gives_up_at_its_timeout_when_the_supervisor_does_not_answer() {
    let dir = TempDir::new("timeout");
    let mut server = ControlServer::bind(&dir.sock()).unwrap();
    let path = dir.sock();
    let client = std::thread::spawn(move || call(&path, &Request::List, Duration::from_millis(50)));
    // The request arrives, and is deliberately never answered.
    let (_conn, _request) = next_request(&mut server);
    let err = client.join().unwrap().unwrap_err().to_string();
    assert_eq!(
        err,
        format!(
            "read response from {}: no answer within 50ms",
            dir.sock().display()
        )
    );
}
