//! The sending side of the notify protocol: `READY=1`, `STATUS=…` and friends, as
//! newline-separated `KEY=VALUE` lines in one datagram to the unix socket named by
//! `NOTIFY_SOCKET` (a path, or an abstract address written with a leading `@`).
//!
//! The same datagram reaches systemd, the daemonic supervisor, or the daemonic launcher
//! waiting for a detaching daemon: whoever set `NOTIFY_SOCKET` for this process.
//! Not running under any of them is not an error: [`notify`] returns `Ok(false)`.

use std::os::linux::net::SocketAddrExt;
use std::os::unix::net::{SocketAddr, UnixDatagram};
use std::sync::OnceLock;
use std::time::Duration;

use nix::unistd::Pid;

use crate::{Error, ErrorKind, Result};

/// One state to report; several may go in one datagram (see [`Notifier::notify`]).
#[derive(Debug, Clone, PartialEq, Eq)]
#[non_exhaustive]
pub enum State<'a> {
    /// `READY=1`: startup (or a reload) is finished.
    Ready,
    /// `RELOADING=1`, sent together with `MONOTONIC_USEC=` by [`Notifier::notify`].
    Reloading,
    /// `STOPPING=1`: shutdown has begun.
    Stopping,
    /// `STATUS=…`: one line of free-form status text (newlines are replaced by spaces).
    Status(&'a str),
    /// `ERRNO=…`: the daemon failed with this errno.
    Errno(i32),
    /// `MAINPID=…`: the daemon's main process is this one.
    MainPid(Pid),
    /// `WATCHDOG=1`: keep-alive ping.
    Watchdog,
    /// `EXTEND_TIMEOUT_USEC=…`: ask for more time for the current start, reload or stop.
    ExtendTimeout(Duration),
}

impl State<'_> {
    fn write_to(&self, out: &mut String) {
        use std::fmt::Write;
        let _ = match self {
            State::Ready => writeln!(out, "READY=1"),
            State::Reloading => {
                let now = nix::time::clock_gettime(nix::time::ClockId::CLOCK_MONOTONIC)
                    .map(|t| t.tv_sec() as u64 * 1_000_000 + t.tv_nsec() as u64 / 1_000)
                    .unwrap_or(0);
                writeln!(out, "RELOADING=1\nMONOTONIC_USEC={now}")
            }
            State::Stopping => writeln!(out, "STOPPING=1"),
            State::Status(text) => writeln!(out, "STATUS={}", text.replace(['\n', '\r'], " ")),
            State::Errno(errno) => writeln!(out, "ERRNO={errno}"),
            State::MainPid(pid) => writeln!(out, "MAINPID={pid}"),
            State::Watchdog => writeln!(out, "WATCHDOG=1"),
            State::ExtendTimeout(d) => writeln!(out, "EXTEND_TIMEOUT_USEC={}", d.as_micros()),
        };
    }
}

/// A connection to one notify socket.
#[derive(Debug)]
pub struct Notifier {
    socket: UnixDatagram,
    addr: SocketAddr,
    display: String,
}

impl Notifier {
    /// A notifier for the socket address `addr`: a filesystem path, or `@name` for an
    /// abstract address (as systemd writes them in `NOTIFY_SOCKET`).
    pub fn new(addr: &str) -> Result<Notifier> {
        let invalid = |why: &str| {
            Error::new(
                ErrorKind::InvalidInput,
                format!("notify socket address {addr:?}: {why}"),
            )
        };
        let sockaddr = if let Some(name) = addr.strip_prefix('@') {
            SocketAddr::from_abstract_name(name.as_bytes()).map_err(|e| invalid(&e.to_string()))?
        } else if addr.starts_with('/') {
            SocketAddr::from_pathname(addr).map_err(|e| invalid(&e.to_string()))?
        } else {
            return Err(invalid("neither an absolute path nor an @abstract name"));
        };
        let socket =
            UnixDatagram::unbound().map_err(|e| Error::io("socket AF_UNIX/SOCK_DGRAM", e))?;
        Ok(Notifier {
            socket,
            addr: sockaddr,
            display: addr.to_string(),
        })
    }

    /// The notifier named by `NOTIFY_SOCKET`, or `None` when it is unset or empty.
    pub fn from_env() -> Result<Option<Notifier>> {
        match std::env::var_os("NOTIFY_SOCKET") {
            None => Ok(None),
            Some(v) if v.is_empty() => Ok(None),
            Some(v) => match v.to_str() {
                Some(addr) => Notifier::new(addr).map(Some),
                None => Err(Error::new(
                    ErrorKind::InvalidInput,
                    "NOTIFY_SOCKET is not valid UTF-8",
                )),
            },
        }
    }

    /// The address, as it would appear in `NOTIFY_SOCKET`.
    pub fn address(&self) -> &str {
        &self.display
    }

    /// Sends `states` in one datagram.
    pub fn notify(&self, states: &[State<'_>]) -> Result<()> {
        let mut msg = String::new();
        for state in states {
            state.write_to(&mut msg);
        }
        self.send_raw(&msg)
    }

    /// Sends a datagram of already formatted `KEY=VALUE` lines.
    pub fn send_raw(&self, msg: &str) -> Result<()> {
        self.socket
            .send_to_addr(msg.as_bytes(), &self.addr)
            .map_err(|e| Error::io(format!("send to notify socket {}", self.display), e))?;
        Ok(())
    }
}

impl std::os::fd::AsFd for Notifier {
    fn as_fd(&self) -> std::os::fd::BorrowedFd<'_> {
        self.socket.as_fd()
    }
}

/// The notifier of this process's manager, read from `NOTIFY_SOCKET` once per process.
///
/// `None` when not running under a manager (or when `NOTIFY_SOCKET` is malformed; call
/// [`Notifier::from_env`] to see that error).
pub fn manager() -> Option<&'static Notifier> {
    static MANAGER: OnceLock<Option<Notifier>> = OnceLock::new();
    MANAGER
        .get_or_init(|| Notifier::from_env().ok().flatten())
        .as_ref()
}

/// Sends `states` to this process's manager: `Ok(true)` if sent, `Ok(false)` if there is
/// no manager to tell.
pub fn notify(states: &[State<'_>]) -> Result<bool> {
    match manager() {
        Some(n) => n.notify(states).map(|()| true),
        None => Ok(false),
    }
}
