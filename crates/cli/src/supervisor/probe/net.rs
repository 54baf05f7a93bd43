//! TCP and HTTP attempts: a non-blocking connect, then (HTTP) request and status line on
//! the same socket. Stages: `Connecting` (`POLLOUT`, then `SO_ERROR`) → `Sending`
//! (`POLLOUT`) → `Receiving` (`POLLIN`) → done. A failed connect moves on to the target's
//! next address, under the same deadline.

use std::io::{self, Read, Write};
use std::net::{SocketAddr, TcpStream};
use std::ops::RangeInclusive;
use std::os::fd::{AsFd, AsRawFd};
use std::time::{Duration, Instant};

use nix::errno::Errno;
use nix::poll::{PollFd, PollFlags, PollTimeout, poll};
use nix::sys::socket::{AddressFamily, SockFlag, SockType, SockaddrStorage, socket};

use super::{Outcome, Target, human};

/// The most an HTTP probe reads: the status line must end within it.
pub const MAX_STATUS_LINE: usize = 1024;

/// An HTTP request to send once connected, and how to judge the answer.
#[derive(Debug)]
pub(super) struct Request {
    bytes: Vec<u8>,
    /// `http://HOST:PORT/PATH`, for messages.
    url: String,
    expect: RangeInclusive<u16>,
}

impl Request {
    pub(super) fn get(target: &Target, path: &str, expect: RangeInclusive<u16>) -> Request {
        let text = format!(
            "GET {path} HTTP/1.1\r\nHost: {target}\r\nUser-Agent: daemonic\r\n\
             Accept: */*\r\nConnection: close\r\n\r\n"
        );
        Request {
            bytes: text.into_bytes(),
            url: format!("http://{target}{path}"),
            expect,
        }
    }
}

#[derive(Debug)]
pub(super) struct Net {
    /// Addresses not tried yet, in order.
    next: std::vec::IntoIter<SocketAddr>,
    /// Why each address tried so far failed.
    errors: Vec<String>,
    request: Option<Request>,
    stage: Stage,
    timeout: Duration,
    deadline: Instant,
    /// The address the connect succeeded to (once it has).
    connected: Option<SocketAddr>,
}

#[derive(Debug)]
enum Stage {
    Connecting(TcpStream, SocketAddr),
    Sending(TcpStream, usize),
    Receiving(TcpStream, Vec<u8>),
    Done,
}

/// What became of one step: carry on, or finished with this outcome.
type Step = Result<Stage, Outcome>;

impl Net {
    /// Starts connecting to the first address that does not fail at once.
    pub(super) fn start(
        target: &Target,
        request: Option<Request>,
        timeout: Duration,
        now: Instant,
    ) -> Result<Net, Outcome> {
        let mut net = Net {
            next: target.addrs.clone().into_iter(),
            errors: Vec::new(),
            request,
            stage: Stage::Done,
            timeout,
            deadline: now + timeout,
            connected: None,
        };
        net.stage = net.connect_next()?;
        Ok(net)
    }

    pub(super) fn poll_fd(&self) -> Option<PollFd<'_>> {
        let (stream, events) = match &self.stage {
            Stage::Connecting(s, _) | Stage::Sending(s, _) => (s, PollFlags::POLLOUT),
            Stage::Receiving(s, _) => (s, PollFlags::POLLIN),
            Stage::Done => return None,
        };
        Some(PollFd::new(stream.as_fd(), events))
    }

    pub(super) fn deadline(&self) -> Instant {
        self.deadline
    }

    pub(super) fn connected_to(&self) -> Option<SocketAddr> {
        self.connected
    }

    pub(super) fn advance(&mut self, now: Instant) -> Option<Outcome> {
        // Run the stages as far as they go now; stop where one would have to wait.
        loop {
            let stage = std::mem::replace(&mut self.stage, Stage::Done);
            let before = std::mem::discriminant(&stage);
            let step = match stage {
                Stage::Connecting(stream, addr) => self.connecting(stream, addr),
                Stage::Sending(stream, written) => self.sending(stream, written),
                Stage::Receiving(stream, buf) => self.receiving(stream, buf),
                Stage::Done => return None,
            };
            match step {
                Err(outcome) => return Some(outcome),
                Ok(stage) => {
                    let waiting = std::mem::discriminant(&stage) == before;
                    self.stage = stage;
                    if waiting {
                        break;
                    }
                }
            }
        }
        if now < self.deadline {
            return None;
        }
        let waiting = std::mem::replace(&mut self.stage, Stage::Done);
        let why = match (waiting, &self.request) {
            (Stage::Connecting(_, addr), _) => format!("connect {addr}"),
            (_, Some(r)) => format!("GET {}", r.url),
            (_, None) => "tcp probe".to_string(),
        };
        self.errors
            .push(format!("{why}: timed out after {}", human(self.timeout)));
        Some(Outcome::Failure(self.errors.join("; ")))
    }

    /// The connect has finished when the socket is writable; `SO_ERROR` says how.
    fn connecting(&mut self, stream: TcpStream, addr: SocketAddr) -> Step {
        if !ready(&stream, PollFlags::POLLOUT) {
            return Ok(Stage::Connecting(stream, addr));
        }
        match stream.take_error() {
            Ok(None) => {
                self.connected = Some(addr);
                self.connected(stream)
            }
            Ok(Some(e)) | Err(e) => {
                self.errors
                    .push(format!("connect {addr}: {}", describe(&e)));
                self.connect_next()
            }
        }
    }

    fn connected(&mut self, stream: TcpStream) -> Step {
        match self.request {
            None => Err(Outcome::Success),
            Some(_) => Ok(Stage::Sending(stream, 0)),
        }
    }

    /// Connects to the next address; all failing at once is the attempt's failure.
    fn connect_next(&mut self) -> Step {
        while let Some(addr) = self.next.next() {
            match connect(addr) {
                Ok((stream, false)) => return Ok(Stage::Connecting(stream, addr)),
                Ok((stream, true)) => {
                    self.connected = Some(addr);
                    return self.connected(stream);
                }
                Err(e) => self.errors.push(e),
            }
        }
        Err(Outcome::Failure(self.errors.join("; ")))
    }

    fn sending(&mut self, mut stream: TcpStream, mut written: usize) -> Step {
        let request = self
            .request
            .as_ref()
            .expect("an HTTP attempt has a request");
        while written < request.bytes.len() {
            match stream.write(&request.bytes[written..]) {
                Ok(n) => written += n,
                Err(e) if e.kind() == io::ErrorKind::WouldBlock => {
                    return Ok(Stage::Sending(stream, written));
                }
                Err(e) if e.kind() == io::ErrorKind::Interrupted => {}
                Err(e) => return Err(self.fail(format!("send: {}", describe(&e)))),
            }
        }
        Ok(Stage::Receiving(stream, Vec::new()))
    }

    fn receiving(&mut self, mut stream: TcpStream, mut buf: Vec<u8>) -> Step {
        let mut chunk = [0u8; 512];
        loop {
            let room = (MAX_STATUS_LINE - buf.len()).min(chunk.len());
            match stream.read(&mut chunk[..room]) {
                Ok(0) if buf.is_empty() => {
                    return Err(self.fail("connection closed without a response".into()));
                }
                Ok(0) => return Err(self.judge(&buf)),
                Ok(n) => {
                    buf.extend_from_slice(&chunk[..n]);
                    if buf.contains(&b'\n') {
                        return Err(self.judge(&buf));
                    }
                    if buf.len() >= MAX_STATUS_LINE {
                        return Err(self.fail(format!(
                            "no status line in the first {MAX_STATUS_LINE} bytes"
                        )));
                    }
                }
                Err(e) if e.kind() == io::ErrorKind::WouldBlock => {
                    return Ok(Stage::Receiving(stream, buf));
                }
                Err(e) if e.kind() == io::ErrorKind::Interrupted => {}
                Err(e) => return Err(self.fail(format!("receive: {}", describe(&e)))),
            }
        }
    }

    /// Judges the status line at the start of `buf`: `HTTP/1.1 200 OK`.
    fn judge(&self, buf: &[u8]) -> Outcome {
        let request = self
            .request
            .as_ref()
            .expect("an HTTP attempt has a request");
        let line = buf.split(|b| *b == b'\n').next().unwrap_or_default();
        let line = String::from_utf8_lossy(line);
        let line = line.trim_end_matches('\r');
        let mut words = line.split(' ');
        let code = match (words.next(), words.next()) {
            (Some(version), Some(code))
                if version.starts_with("HTTP/")
                    && code.len() == 3
                    && code.bytes().all(|b| b.is_ascii_digit()) =>
            {
                code.parse::<u16>().ok()
            }
            _ => None,
        };
        match code {
            None => {
                let shown: String = line.chars().take(80).collect();
                self.fail(format!("not an HTTP status line: {shown:?}"))
            }
            Some(c) if request.expect.contains(&c) => Outcome::Success,
            Some(c) => Outcome::Failure(format!(
                "HTTP {c} from {} (expected {}-{})",
                request.url,
                request.expect.start(),
                request.expect.end()
            )),
        }
    }

    fn fail(&self, why: String) -> Outcome {
        let url = self.request.as_ref().map_or("", |r| r.url.as_str());
        Outcome::Failure(format!("GET {url}: {why}"))
    }
}

/// Starts a connect on a new non-blocking socket; `true` if it completed at once.
fn connect(addr: SocketAddr) -> Result<(TcpStream, bool), String> {
    let family = match addr {
        SocketAddr::V4(_) => AddressFamily::Inet,
        SocketAddr::V6(_) => AddressFamily::Inet6,
    };
    let flags = SockFlag::SOCK_NONBLOCK | SockFlag::SOCK_CLOEXEC;
    let fd = socket(family, SockType::Stream, flags, None)
        .map_err(|e| format!("socket for {addr}: {}", e.desc()))?;
    match nix::sys::socket::connect(fd.as_raw_fd(), &SockaddrStorage::from(addr)) {
        Ok(()) => Ok((TcpStream::from(fd), true)),
        // EINTR: the connect goes on asynchronously, as with EINPROGRESS.
        Err(Errno::EINPROGRESS | Errno::EINTR) => Ok((TcpStream::from(fd), false)),
        Err(e) => Err(format!("connect {addr}: {}", e.desc())),
    }
}

/// Whether `stream` has `events` (or an error or hangup) now, without waiting.
fn ready(stream: &TcpStream, events: PollFlags) -> bool {
    let mut fds = [PollFd::new(stream.as_fd(), events)];
    match poll(&mut fds, PollTimeout::ZERO) {
        Ok(n) => n > 0,
        // Let the caller look (SO_ERROR will say what is wrong) rather than wait forever.
        Err(_) => true,
    }
}

/// The system's words for an error, without std's `(os error N)`.
fn describe(e: &io::Error) -> String {
    match e.raw_os_error() {
        Some(n) => Errno::from_raw(n).desc().to_string(),
        None => e.to_string(),
    }
}
