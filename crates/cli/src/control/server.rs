//! The supervisor's side: a listener and its connections, driven by the caller's poll loop.
//!
//! A connection goes through three phases: *reading* (polled for input, with a deadline),
//! *answering* (its request was handed to the caller, who owes it a [`ControlServer::reply`];
//! no deadline, since the caller may answer only once a stop has finished), then closed.
//!
//! Writing a reply: the socket is switched to blocking with a send timeout of
//! [`WRITE_TIMEOUT`], and the frame written at once. That never waits in practice — a
//! response is at most 64 KiB and 9 bytes, and a fresh unix stream connection buffers more
//! than that — and if a peer that stopped reading somehow made it wait, the wait is
//! bounded and the connection is dropped. It keeps the caller's loop simple: nothing to
//! poll for writing. Sends use `MSG_NOSIGNAL`, so a peer that hung up costs an `EPIPE`,
//! never a SIGPIPE.
//!
//! Out of descriptors (`EMFILE`, `ENFILE`, or the kernel out of memory), `accept` fails
//! while the listener stays readable: polling it again at once would spin. Accepting is
//! paused for [`ACCEPT_PAUSE`] instead (the listener leaves the poll set and the pause is
//! a deadline of [`ControlServer::next_deadline`]), with one note when it starts and one
//! when accepting works again; clients meanwhile wait in the backlog or are refused by
//! the kernel, and are served again once descriptors are free.

use std::io::{self, Read};
use std::os::fd::{AsFd, AsRawFd, BorrowedFd};
use std::os::unix::fs::{FileTypeExt, MetadataExt};
use std::os::unix::net::{UnixListener, UnixStream};
use std::path::{Path, PathBuf};
use std::time::{Duration, Instant};

use anyhow::{Context, Result, bail};
use nix::sys::socket::{
    self, AddressFamily, Backlog, MsgFlags, SockFlag, SockType, UnixAddr, sockopt,
};
use nix::sys::stat::Mode;

use super::wire::FrameReader;
use super::{Request, Response, check_socket_path};

/// At most this many connections are open at once; more are refused.
pub const MAX_CONNECTIONS: usize = 16;
/// A client must send its whole request within this time of connecting.
pub const REQUEST_TIMEOUT: Duration = Duration::from_secs(5);
/// The longest a reply may wait for a peer to make room (see the module docs).
pub const WRITE_TIMEOUT: Duration = Duration::from_millis(200);
/// Accepted per [`ControlServer::poll_requests`] call at most, so a flood of connections
/// cannot keep the supervisor's loop from its other work.
const ACCEPTS_PER_POLL: usize = 64;
/// How long accepting pauses when the process (or system) is out of descriptors.
pub const ACCEPT_PAUSE: Duration = Duration::from_millis(100);

/// One connection, for [`ControlServer::reply`]. Never reused within a server.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, PartialOrd, Ord)]
pub struct ConnId(u64);

enum Phase {
    Reading {
        frame: FrameReader,
        deadline: Instant,
    },
    Answering,
}

struct Conn {
    id: ConnId,
    stream: UnixStream,
    phase: Phase,
}

/// The listening control socket(s) and their open connections (see the
/// [module docs](super)). A supervisor of many services listens at one path per service
/// (so every command finds a service at `<state-dir>/NAME.sock`) and at one of its own;
/// a request is answered the same whichever socket it came through.
pub struct ControlServer {
    /// The first is the one [`bind`](Self::bind) made.
    listeners: Vec<Listening>,
    conns: Vec<Conn>,
    next_id: u64,
    owner: u32,
    /// Out of descriptors: not accepting until then (module docs).
    paused_until: Option<Instant>,
    /// Accepting failed for lack of descriptors since the last success (noted once).
    exhausted: bool,
}

struct Listening {
    path: PathBuf,
    /// The socket file we created (device, inode): removed on drop only if still there.
    file: (u64, u64),
    listener: UnixListener,
}

impl ControlServer {
    /// Binds `path`, listening, with mode 0600 from the moment the file exists.
    ///
    /// A socket already at `path` is removed first: the caller holds the service's
    /// pid-file lock, so no live supervisor owns it. Anything else at `path` (a regular
    /// file, a directory, a symlink) is refused, never removed.
    ///
    /// The mode comes from the socket itself, not from the umask: on Linux, `bind` creates
    /// the file with the mode of the unbound socket's inode (minus the umask), so the
    /// socket is `fchmod`ed to 0600 before `bind` and the file is never briefly wider.
    /// The process-wide umask is left alone (changing it would race with other threads
    /// creating files).
    pub fn bind(path: &Path) -> Result<ControlServer> {
        Ok(ControlServer {
            listeners: vec![Listening::bind(path)?],
            conns: Vec::new(),
            next_id: 0,
            owner: nix::unistd::geteuid().as_raw(),
            paused_until: None,
            exhausted: false,
        })
    }

    /// Listens at `path` too, bound as [`bind`](Self::bind) binds.
    pub fn listen_also(&mut self, path: &Path) -> Result<()> {
        if !self.listeners.iter().any(|l| l.path == path) {
            self.listeners.push(Listening::bind(path)?);
        }
        Ok(())
    }

    /// Stops listening at `path` (not the first socket) and removes its file; open
    /// connections stay.
    pub fn stop_listening(&mut self, path: &Path) {
        if let Some(i) = self.listeners.iter().skip(1).position(|l| l.path == path) {
            self.listeners.remove(i + 1);
        }
    }

    /// The path of the socket [`bind`](Self::bind) made.
    pub fn path(&self) -> &Path {
        &self.listeners[0].path
    }

    /// The fds to poll for POLLIN (listener + open connections that are still reading).
    pub fn fds(&self) -> Vec<BorrowedFd<'_>> {
        let reading = self
            .conns
            .iter()
            .filter(|c| matches!(c.phase, Phase::Reading { .. }))
            .map(|c| c.stream.as_fd());
        let listening = self.paused_until.is_none().then_some(&self.listeners);
        listening
            .into_iter()
            .flatten()
            .map(|l| l.listener.as_fd())
            .chain(reading)
            .collect()
    }

    /// Accepts and reads whatever is ready without blocking; returns complete, valid
    /// requests. Rejects peers whose uid (SO_PEERCRED) is neither our euid nor 0 (reply
    /// Error "permission denied: uid N is not the owner", close). Malformed frames → Error
    /// reply + close. Connections past their deadline (`now`) are dropped first.
    pub fn poll_requests(&mut self, now: Instant) -> Vec<(ConnId, Request)> {
        self.expire(now);
        self.accept(now);
        let mut requests = Vec::new();
        let mut i = 0;
        while i < self.conns.len() {
            match read_request(&mut self.conns[i]) {
                Progress::Waiting => i += 1,
                Progress::Request(request) => {
                    self.conns[i].phase = Phase::Answering;
                    requests.push((self.conns[i].id, request));
                    i += 1;
                }
                Progress::Malformed(why) => {
                    let conn = self.conns.remove(i);
                    send_and_close(conn.stream, &Response::Error(why));
                }
                Progress::Gone => {
                    self.conns.remove(i);
                }
            }
        }
        requests
    }

    /// Sends the response (see the module docs for how it avoids blocking) and closes the
    /// connection. An unknown or already answered `conn` is ignored.
    pub fn reply(&mut self, conn: ConnId, response: &Response) {
        if let Some(i) = self.conns.iter().position(|c| c.id == conn) {
            let conn = self.conns.remove(i);
            send_and_close(conn.stream, response);
        }
    }

    /// The earliest moment an idle/slow connection must be dropped (None when no
    /// connection is reading), so the loop has no timer while idle. Call
    /// [`poll_requests`](Self::poll_requests) at that moment.
    pub fn next_deadline(&self) -> Option<Instant> {
        self.conns
            .iter()
            .filter_map(|c| match c.phase {
                Phase::Reading { deadline, .. } => Some(deadline),
                Phase::Answering => None,
            })
            .chain(self.paused_until)
            .min()
    }

    /// Open connections (reading, or waiting for the caller's reply).
    pub fn connections(&self) -> usize {
        self.conns.len()
    }

    fn expire(&mut self, now: Instant) {
        let (expired, kept): (Vec<Conn>, Vec<Conn>) = std::mem::take(&mut self.conns)
            .into_iter()
            .partition(|c| matches!(c.phase, Phase::Reading { deadline, .. } if deadline <= now));
        self.conns = kept;
        for conn in expired {
            let why = format!(
                "no complete request within {}s; closing",
                REQUEST_TIMEOUT.as_secs()
            );
            send_and_close(conn.stream, &Response::Error(why));
        }
    }

    fn accept(&mut self, now: Instant) {
        match self.paused_until {
            Some(until) if until > now => return,
            _ => self.paused_until = None,
        }
        for l in 0..self.listeners.len() {
            self.accept_from(l, now);
        }
    }

    fn accept_from(&mut self, l: usize, now: Instant) {
        for _ in 0..ACCEPTS_PER_POLL {
            let listening = &self.listeners[l];
            let stream = match listening.listener.accept() {
                Ok((stream, _)) => stream,
                Err(e) if e.kind() == io::ErrorKind::WouldBlock => return,
                Err(e) if transient_accept_error(&e) => continue,
                Err(e) if out_of_descriptors(&e) => {
                    if !self.exhausted {
                        eprintln!(
                            "daemonic: accept on {}: {e}; pausing for {}ms at a time until \
                             descriptors are free",
                            listening.path.display(),
                            ACCEPT_PAUSE.as_millis()
                        );
                    }
                    self.exhausted = true;
                    self.paused_until = Some(now + ACCEPT_PAUSE);
                    return;
                }
                Err(e) => {
                    eprintln!("daemonic: accept on {}: {e}", listening.path.display());
                    return;
                }
            };
            if std::mem::take(&mut self.exhausted) {
                eprintln!(
                    "daemonic: accept on {}: accepting again",
                    listening.path.display()
                );
            }
            if let Some(why) = self.refusal(&stream) {
                send_and_close(stream, &Response::Error(why));
                continue;
            }
            if stream.set_nonblocking(true).is_err() {
                continue;
            }
            self.conns.push(Conn {
                id: ConnId(self.next_id),
                stream,
                phase: Phase::Reading {
                    frame: FrameReader::new(),
                    deadline: now + REQUEST_TIMEOUT,
                },
            });
            self.next_id += 1;
        }
    }

    /// Why a new connection is refused, if it is.
    fn refusal(&self, stream: &UnixStream) -> Option<String> {
        let uid = match socket::getsockopt(stream, sockopt::PeerCredentials) {
            Ok(cred) => cred.uid(),
            Err(e) => return Some(format!("cannot check who is asking (SO_PEERCRED): {e}")),
        };
        if uid != self.owner && uid != 0 {
            return Some(format!("permission denied: uid {uid} is not the owner"));
        }
        if self.conns.len() >= MAX_CONNECTIONS {
            return Some(format!(
                "too many connections ({MAX_CONNECTIONS} open); try again"
            ));
        }
        None
    }
}

impl Drop for Listening {
    /// Removes the socket file, if it is still the one this server created.
    fn drop(&mut self) {
        if let Ok(meta) = std::fs::symlink_metadata(&self.path)
            && (meta.dev(), meta.ino()) == self.file
        {
            let _ = std::fs::remove_file(&self.path);
        }
    }
}

/// Removes a socket left at `path` by an earlier supervisor; refuses anything else.
fn remove_stale(path: &Path) -> Result<()> {
    match std::fs::symlink_metadata(path) {
        Ok(meta) if meta.file_type().is_socket() => std::fs::remove_file(path)
            .with_context(|| format!("remove stale socket {}", path.display())),
        Ok(meta) => bail!(
            "bind {}: a {} is in the way; refusing to remove anything but a socket",
            path.display(),
            describe(&meta.file_type())
        ),
        Err(e) if e.kind() == io::ErrorKind::NotFound => Ok(()),
        Err(e) => Err(e).with_context(|| format!("stat {}", path.display())),
    }
}

fn describe(t: &std::fs::FileType) -> &'static str {
    if t.is_dir() {
        "directory"
    } else if t.is_symlink() {
        "symbolic link"
    } else if t.is_file() {
        "regular file"
    } else {
        "special file"
    }
}

/// `accept` errors that concern one connection only (it was aborted, or the call was
/// interrupted); the next may succeed.
fn transient_accept_error(e: &io::Error) -> bool {
    matches!(
        e.kind(),
        io::ErrorKind::Interrupted | io::ErrorKind::ConnectionAborted
    ) || e.raw_os_error() == Some(libc::EPROTO)
}

/// `accept` errors that mean no descriptor (or kernel memory) is left for a new
/// connection: retrying at once would fail the same way.
fn out_of_descriptors(e: &io::Error) -> bool {
    matches!(
        e.raw_os_error(),
        Some(libc::EMFILE | libc::ENFILE | libc::ENOBUFS | libc::ENOMEM)
    )
}

enum Progress {
    /// Nothing (more) to read now.
    Waiting,
    Request(Request),
    /// Answer this error and close.
    Malformed(String),
    /// The peer went away (or the socket failed) before a whole frame; nothing to answer.
    Gone,
}

/// Reads what `conn` has ready, never past its frame.
fn read_request(conn: &mut Conn) -> Progress {
    let Phase::Reading { frame, .. } = &mut conn.phase else {
        return Progress::Waiting;
    };
    let mut buf = [0u8; 4096];
    loop {
        let want = frame.wanted().min(buf.len());
        if want == 0 {
            let payload = frame.payload().expect("complete");
            return match Request::decode(payload) {
                Ok(request) => Progress::Request(request),
                Err(e) => Progress::Malformed(e.to_string()),
            };
        }
        match conn.stream.read(&mut buf[..want]) {
            // A peer that connects and hangs up without a byte (a liveness probe) is not
            // an error worth answering.
            Ok(0) if frame.is_empty() => return Progress::Gone,
            Ok(0) => return Progress::Malformed(frame.truncated().to_string()),
            Ok(n) => {
                if let Err(e) = frame.feed(&buf[..n]) {
                    return Progress::Malformed(e.to_string());
                }
            }
            Err(e) if e.kind() == io::ErrorKind::WouldBlock => return Progress::Waiting,
            Err(e) if e.kind() == io::ErrorKind::Interrupted => {}
            Err(_) => return Progress::Gone,
        }
    }
}

/// Best effort: the peer may have gone; nothing to do about a failed reply but close.
fn send_and_close(stream: UnixStream, response: &Response) {
    let _ = send_all(&stream, &response.to_frame(), WRITE_TIMEOUT);
}

/// Writes all of `bytes` on a blocking socket, waiting at most `timeout` for room;
/// `MSG_NOSIGNAL`, so a peer that hung up is an `EPIPE`, not a SIGPIPE.
pub(super) fn send_all(stream: &UnixStream, mut bytes: &[u8], timeout: Duration) -> io::Result<()> {
    stream.set_nonblocking(false)?;
    stream.set_write_timeout(Some(timeout.max(Duration::from_millis(1))))?;
    while !bytes.is_empty() {
        match socket::send(stream.as_raw_fd(), bytes, MsgFlags::MSG_NOSIGNAL) {
            Ok(n) => bytes = &bytes[n..],
            Err(nix::errno::Errno::EINTR) => {}
            Err(e) => return Err(e.into()),
        }
    }
    Ok(())
}

impl Listening {
    fn bind(path: &Path) -> Result<Listening> {
        check_socket_path("bind", path)?;
        remove_stale(path)?;
        let fd = socket::socket(
            AddressFamily::Unix,
            SockType::Stream,
            SockFlag::SOCK_CLOEXEC | SockFlag::SOCK_NONBLOCK,
            None,
        )
        .with_context(|| format!("create socket for {}", path.display()))?;
        nix::sys::stat::fchmod(&fd, Mode::S_IRUSR | Mode::S_IWUSR)
            .with_context(|| format!("fchmod socket for {}", path.display()))?;
        let addr = UnixAddr::new(path).with_context(|| format!("bind {}", path.display()))?;
        socket::bind(fd.as_raw_fd(), &addr).with_context(|| format!("bind {}", path.display()))?;
        let listening = Backlog::new(MAX_CONNECTIONS as i32)
            .and_then(|backlog| socket::listen(&fd, backlog))
            .with_context(|| format!("listen on {}", path.display()));
        let meta = listening.and_then(|()| {
            std::fs::symlink_metadata(path).with_context(|| format!("stat {}", path.display()))
        });
        let meta = match meta {
            Ok(m) => m,
            Err(e) => {
                let _ = std::fs::remove_file(path);
                return Err(e);
            }
        };
        Ok(Listening {
            path: path.to_path_buf(),
            file: (meta.dev(), meta.ino()),
            listener: UnixListener::from(fd),
        })
    }
}
