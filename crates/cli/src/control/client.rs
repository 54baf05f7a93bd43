//! The client's side: connect, send one request, read one response, all within one
//! deadline.
//!
//! The server must be this user or root (`SO_PEERCRED`): anything else listening at the
//! path is refused before its answer is read, so a socket planted by another user can
//! neither show forged status nor name pids.
//!
//! `connect` itself is bounded too: a supervisor that stopped accepting (wedged, or
//! stopped with SIGSTOP) fills its backlog, and a blocking `connect` on a unix socket
//! would then wait forever. The socket's send timeout (`SO_SNDTIMEO`), set before
//! `connect`, bounds that wait on Linux.

use std::fmt;
use std::io::{self, Read};
use std::os::fd::AsRawFd;
use std::os::unix::net::UnixStream;
use std::path::{Path, PathBuf};
use std::time::{Duration, Instant};

use anyhow::{Context, Result, anyhow, bail};
use nix::errno::Errno;
use nix::sys::socket::{self, AddressFamily, SockFlag, SockType, UnixAddr, sockopt};
use nix::sys::time::TimeVal;

use super::server::send_all;
use super::wire::FrameReader;
use super::{Request, Response, check_socket_path};

/// Nobody listens at the socket path: no file there (`ENOENT`), or a file nobody has
/// open (`ECONNREFUSED`, left by a supervisor that was killed). Either way no live
/// supervisor answers there; find it with `err.downcast_ref::<NotListening>()`.
#[derive(Debug)]
pub struct NotListening {
    pub path: PathBuf,
    pub errno: Errno,
}

impl fmt::Display for NotListening {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        let hint = if self.errno == Errno::ENOENT {
            "is the service running?"
        } else {
            "a stale socket: its supervisor is gone"
        };
        write!(
            f,
            "connect {}: {} ({hint})",
            self.path.display(),
            self.errno.desc()
        )
    }
}

impl std::error::Error for NotListening {}

/// Sends `request` to the supervisor listening at `path` and returns its response; gives
/// up after `timeout` in all. Errors name the socket path and the step that failed
/// (connect, send, read, decode); "nobody listens" is a [`NotListening`].
///
/// A failed send is not the end: a supervisor that refuses a connection (another uid,
/// too many connections) answers and closes at once, possibly before the request is
/// written, so the send fails with `EPIPE` while its answer waits to be read. The
/// response is read either way, and the send's error reported only if there is none.
pub fn call(path: &Path, request: &Request, timeout: Duration) -> Result<Response> {
    let deadline = Instant::now() + timeout;
    let mut stream = connect(path, timeout)?;
    let sent = send_all(&stream, &request.to_frame(), remaining(deadline));
    match read_response(&mut stream, path, deadline, timeout) {
        Ok(response) => Ok(response),
        Err(e) => match sent {
            Err(send_error) => Err(step_error("send request to", path, &send_error, timeout)),
            Ok(()) => Err(e),
        },
    }
}

fn read_response(
    stream: &mut UnixStream,
    path: &Path,
    deadline: Instant,
    timeout: Duration,
) -> Result<Response> {
    let mut frame = FrameReader::within(super::wire::MAX_RESPONSE);
    let mut buf = [0u8; 4096];
    while frame.wanted() > 0 {
        stream
            .set_read_timeout(Some(remaining(deadline)))
            .with_context(|| format!("read response from {}", path.display()))?;
        let want = frame.wanted().min(buf.len());
        match stream.read(&mut buf[..want]) {
            Ok(0) => bail!(
                "read response from {}: {}",
                path.display(),
                frame.truncated()
            ),
            Ok(n) => frame
                .feed(&buf[..n])
                .with_context(|| format!("read response from {}", path.display()))?,
            Err(e) if e.kind() == io::ErrorKind::Interrupted => {}
            Err(e) => return Err(step_error("read response from", path, &e, timeout)),
        }
    }
    let payload = frame.payload().expect("complete");
    Response::decode(payload).with_context(|| format!("decode response from {}", path.display()))
}

fn connect(path: &Path, timeout: Duration) -> Result<UnixStream> {
    check_socket_path("connect", path)?;
    let fd = socket::socket(
        AddressFamily::Unix,
        SockType::Stream,
        SockFlag::SOCK_CLOEXEC,
        None,
    )
    .with_context(|| format!("create socket to connect to {}", path.display()))?;
    // A zero timeout would mean "wait forever" to the kernel.
    let t = timeout.max(Duration::from_millis(1));
    let tv = TimeVal::new(t.as_secs() as _, t.subsec_micros() as _);
    socket::setsockopt(&fd, sockopt::SendTimeout, &tv)
        .with_context(|| format!("set a send timeout to connect to {}", path.display()))?;
    let addr = UnixAddr::new(path).with_context(|| format!("connect {}", path.display()))?;
    match socket::connect(fd.as_raw_fd(), &addr) {
        Ok(()) => {
            check_server(&fd, path)?;
            Ok(UnixStream::from(fd))
        }
        Err(errno @ (Errno::ENOENT | Errno::ECONNREFUSED)) => Err(NotListening {
            path: path.to_path_buf(),
            errno,
        }
        .into()),
        Err(Errno::EAGAIN) => bail!(
            "connect {}: no connection within {timeout:?} (the supervisor is not accepting)",
            path.display()
        ),
        Err(e) => Err(anyhow!("connect {}: {}", path.display(), e.desc())),
    }
}

/// Refuses a server that is neither this user nor root (`SO_PEERCRED`, the credentials
/// it had when it called `listen`), before a byte of its answer is read: a socket at the
/// path may have been planted by whoever could write there, and its status text, pids
/// and answers would be theirs.
fn check_server(fd: &std::os::fd::OwnedFd, path: &Path) -> Result<()> {
    let cred = socket::getsockopt(fd, sockopt::PeerCredentials)
        .with_context(|| format!("read the credentials of the server at {}", path.display()))?;
    let me = nix::unistd::geteuid().as_raw();
    if cred.uid() != me && cred.uid() != 0 {
        return Err(ForeignServer {
            path: path.to_path_buf(),
            uid: cred.uid(),
            pid: cred.pid(),
        }
        .into());
    }
    Ok(())
}

/// The server at the socket path is neither this user nor root: nothing it says is
/// trusted, nor is the service described otherwise (find it with
/// `err.downcast_ref::<ForeignServer>()`).
#[derive(Debug)]
pub struct ForeignServer {
    pub path: PathBuf,
    pub uid: u32,
    pub pid: i32,
}

impl fmt::Display for ForeignServer {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(
            f,
            "connect {}: refused: the server there runs as uid {} (pid {}), neither this \
             user (uid {}) nor root; not a supervisor of ours (a socket planted by another \
             user?)",
            self.path.display(),
            self.uid,
            self.pid,
            nix::unistd::geteuid()
        )
    }
}

impl std::error::Error for ForeignServer {}

/// Time left until `deadline`, at least 1 ms (a zero timeout means "none" to the kernel).
fn remaining(deadline: Instant) -> Duration {
    deadline
        .saturating_duration_since(Instant::now())
        .max(Duration::from_millis(1))
}

fn step_error(step: &str, path: &Path, e: &io::Error, timeout: Duration) -> anyhow::Error {
    if matches!(
        e.kind(),
        io::ErrorKind::WouldBlock | io::ErrorKind::TimedOut
    ) {
        anyhow!("{step} {}: no answer within {timeout:?}", path.display())
    } else {
        anyhow!("{step} {}: {e}", path.display())
    }
}
