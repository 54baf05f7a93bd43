//! The sending side of the notify protocol: `READY=1`, `STATUS=…` and friends, as
//! newline-separated `KEY=VALUE` lines in one datagram to the unix socket named by
//! `NOTIFY_SOCKET` (a path, or an abstract address written with a leading `@`).
//!
//! The same datagram reaches systemd, the daemonic supervisor, or the daemonic launcher
//! waiting for a detaching daemon: whoever set `NOTIFY_SOCKET` for this process.
//!
//! ## Rules this module keeps
//!
//! - **The environment is read once.** [`manager`] reads `NOTIFY_SOCKET` the first time it
//!   is called and remembers the answer for the life of the process, so a later change to
//!   the environment (or a library that unsets it) does not change where messages go.
//! - **Not running under a manager is not an error**: [`notify`], [`barrier`] and
//!   [`store_fds`] return `Ok(false)`.
//! - **Descriptors travel with `SCM_RIGHTS`** in the same datagram as their `KEY=VALUE`
//!   lines: `BARRIER=1` carries the write end of a pipe, `FDSTORE=1` the descriptors to
//!   keep. The kernel duplicates them into the receiver; our copies stay ours.
//!
//! ## A barrier
//!
//! Datagrams are processed by the manager in the order they were sent, but *when* is up
//! to the manager. [`Notifier::barrier`] waits until everything sent before it has been
//! processed: it sends `BARRIER=1` with the write end of a fresh pipe, closes its own copy,
//! and waits for end-of-file on the read end — which happens when the manager closes the
//! copy it received, after it has handled all earlier datagrams. Use it before exiting
//! right after a `STATUS=`, or to make sure `MAINPID=` was seen before the old main
//! process goes away.
//!
//! ```
//! use daemonic::systemd::listen::{Message, NotifyListener};
//! use daemonic::systemd::notify::{Notifier, State};
//!
//! # fn main() -> daemonic::Result<()> {
//! // Our own listener stands in for systemd here.
//! let listener = NotifyListener::bind_private()?;
//! let notifier = Notifier::new(listener.env_value())?;
//! notifier.notify(&[State::Status("loading"), State::Ready])?;
//! let datagram = listener.recv()?;
//! assert_eq!(datagram.messages, vec![Message::Status("loading".into()), Message::Ready]);
//! # Ok(())
//! # }
//! ```

use std::io::IoSlice;
use std::os::fd::{AsFd, AsRawFd, BorrowedFd, OwnedFd};
use std::os::unix::net::UnixDatagram;
use std::sync::OnceLock;
use std::time::{Duration, Instant};

use nix::errno::Errno;
use nix::fcntl::OFlag;
use nix::poll::{PollFd, PollFlags, PollTimeout, poll};
use nix::sys::socket::{ControlMessage, MsgFlags, UnixAddr, sendmsg};
use nix::unistd::Pid;

use crate::{Error, ErrorKind, Result};

/// The longest name systemd accepts for `FDNAME=` (and so for `LISTEN_FDNAMES` entries).
pub const MAX_FDNAME: usize = 255;

/// One state to report; several may go in one datagram (see [`Notifier::notify`]).
#[derive(Debug, Clone, PartialEq, Eq)]
#[non_exhaustive]
pub enum State<'a> {
    /// `READY=1`: startup (or a reload) is finished.
    Ready,
    /// `RELOADING=1`, sent together with `MONOTONIC_USEC=` (the time of the reload on
    /// `CLOCK_MONOTONIC`, which systemd ≥ 253 requires for `Type=notify-reload`).
    Reloading,
    /// `STOPPING=1`: shutdown has begun.
    Stopping,
    /// `STATUS=…`: one line of free-form status text (newlines are replaced by spaces).
    Status(&'a str),
    /// `ERRNO=…`: the daemon failed with this errno.
    Errno(i32),
    /// `MAINPID=…`: the daemon's main process is this one.
    MainPid(Pid),
    /// `WATCHDOG=1`: keep-alive ping (see [`super::watchdog`] for when to send it).
    Watchdog,
    /// `WATCHDOG=trigger`: "treat me as if my watchdog had expired" (a self-detected hang).
    WatchdogTrigger,
    /// `WATCHDOG_USEC=…`: change the watchdog interval for this run.
    WatchdogInterval(Duration),
    /// `EXTEND_TIMEOUT_USEC=…`: ask for more time for the current start, reload or stop.
    ExtendTimeout(Duration),
}

impl State<'_> {
    fn write_to(&self, out: &mut String) {
        use std::fmt::Write;
        let _ = match self {
            State::Ready => writeln!(out, "READY=1"),
            State::Reloading => writeln!(out, "RELOADING=1\nMONOTONIC_USEC={}", monotonic_usec()),
            State::Stopping => writeln!(out, "STOPPING=1"),
            State::Status(text) => writeln!(out, "STATUS={}", text.replace(['\n', '\r'], " ")),
            State::Errno(errno) => writeln!(out, "ERRNO={errno}"),
            State::MainPid(pid) => writeln!(out, "MAINPID={pid}"),
            State::Watchdog => writeln!(out, "WATCHDOG=1"),
            State::WatchdogTrigger => writeln!(out, "WATCHDOG=trigger"),
            State::WatchdogInterval(d) => writeln!(out, "WATCHDOG_USEC={}", d.as_micros()),
            State::ExtendTimeout(d) => writeln!(out, "EXTEND_TIMEOUT_USEC={}", d.as_micros()),
        };
    }
}

/// Now on `CLOCK_MONOTONIC`, in microseconds (what systemd means by `MONOTONIC_USEC`).
pub(crate) fn monotonic_usec() -> u64 {
    nix::time::clock_gettime(nix::time::ClockId::CLOCK_MONOTONIC)
        .map(|t| t.tv_sec() as u64 * 1_000_000 + t.tv_nsec() as u64 / 1_000)
        .unwrap_or(0)
}

/// Checks a name for `FDNAME=` / `LISTEN_FDNAMES` the way systemd does: 1–255 printable
/// ASCII characters, no `:` (the separator in `LISTEN_FDNAMES`).
pub fn valid_fd_name(name: &str) -> bool {
    !name.is_empty()
        && name.len() <= MAX_FDNAME
        && name.bytes().all(|b| b.is_ascii_graphic() && b != b':')
}

fn check_fd_name(name: &str) -> Result<()> {
    if valid_fd_name(name) {
        return Ok(());
    }
    Err(Error::new(
        ErrorKind::InvalidInput,
        format!(
            "file descriptor name {name:?}: must be 1-{MAX_FDNAME} printable ASCII characters without ':' or spaces"
        ),
    ))
}

/// A connection to one notify socket.
#[derive(Debug)]
pub struct Notifier {
    socket: UnixDatagram,
    addr: UnixAddr,
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
            UnixAddr::new_abstract(name.as_bytes()).map_err(|e| invalid(e.desc()))?
        } else if addr.starts_with('/') {
            UnixAddr::new(addr).map_err(|e| invalid(e.desc()))?
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
    ///
    /// This reads the environment each time; [`manager`] reads it once per process.
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
        self.notify_with_fds(states, &[])
    }

    /// Sends `states` in one datagram, with `fds` attached (`SCM_RIGHTS`). The receiver
    /// gets its own duplicates; ours stay open.
    pub fn notify_with_fds(&self, states: &[State<'_>], fds: &[BorrowedFd<'_>]) -> Result<()> {
        let mut msg = String::new();
        for state in states {
            state.write_to(&mut msg);
        }
        self.send(&msg, fds)
    }

    /// Sends a datagram of already formatted `KEY=VALUE` lines.
    pub fn send_raw(&self, msg: &str) -> Result<()> {
        self.send(msg, &[])
    }

    fn send(&self, msg: &str, fds: &[BorrowedFd<'_>]) -> Result<()> {
        let raw: Vec<_> = fds.iter().map(|fd| fd.as_raw_fd()).collect();
        let rights = [ControlMessage::ScmRights(&raw)];
        let cmsgs: &[ControlMessage<'_>] = if raw.is_empty() { &[] } else { &rights };
        let iov = [IoSlice::new(msg.as_bytes())];
        loop {
            match sendmsg(
                self.socket.as_raw_fd(),
                &iov,
                cmsgs,
                MsgFlags::MSG_NOSIGNAL,
                Some(&self.addr),
            ) {
                Err(Errno::EINTR) => continue,
                Err(e) => {
                    return Err(Error::sys(
                        format!("send to notify socket {}", self.display),
                        e,
                    ));
                }
                Ok(_) => return Ok(()),
            }
        }
    }

    /// Waits until the manager has processed every datagram sent before (`BARRIER=1`, see
    /// the [module docs](self#a-barrier)). [`ErrorKind::TimedOut`] if it has not within
    /// `timeout`.
    pub fn barrier(&self, timeout: Duration) -> Result<()> {
        let (read, write) = nix::unistd::pipe2(OFlag::O_CLOEXEC)
            .map_err(|e| Error::sys("pipe2 for BARRIER=1", e))?;
        self.send("BARRIER=1\n", &[write.as_fd()])?;
        // Only the manager's copy may keep the pipe open now.
        drop(write);
        wait_for_eof(&read, timeout, &self.display)
    }

    /// Hands `fds` to the manager's file descriptor store under `name` (`FDSTORE=1`,
    /// `FDNAME=name`). systemd keeps them while the service is stopped or restarting (up
    /// to `FileDescriptorStoreMax=`) and passes them back on the next start in
    /// `LISTEN_FDS`/`LISTEN_FDNAMES`, where [`super::activation`] finds them by `name`.
    pub fn store_fds(&self, name: &str, fds: &[BorrowedFd<'_>]) -> Result<()> {
        check_fd_name(name)?;
        self.send(&format!("FDSTORE=1\nFDNAME={name}\n"), fds)
    }

    /// Asks the manager to close and forget the stored descriptors named `name`
    /// (`FDSTOREREMOVE=1`).
    pub fn remove_stored_fds(&self, name: &str) -> Result<()> {
        check_fd_name(name)?;
        self.send(&format!("FDSTOREREMOVE=1\nFDNAME={name}\n"), &[])
    }
}

/// Waits for end-of-file on the read end of a barrier pipe.
fn wait_for_eof(read: &OwnedFd, timeout: Duration, display: &str) -> Result<()> {
    let deadline = Instant::now() + timeout;
    loop {
        let left = deadline.saturating_duration_since(Instant::now());
        if left.is_zero() {
            return Err(Error::new(
                ErrorKind::TimedOut,
                format!(
                    "BARRIER=1 on notify socket {display}: not acknowledged within {timeout:?}"
                ),
            ));
        }
        let ms = left.as_millis().clamp(1, i32::MAX as u128) as i32;
        let mut fds = [PollFd::new(read.as_fd(), PollFlags::POLLIN)];
        match poll(
            &mut fds,
            PollTimeout::try_from(ms).unwrap_or(PollTimeout::MAX),
        ) {
            // Nobody ever writes to the pipe: readable or hung up means every write end
            // is closed.
            Ok(n) if n > 0 => return Ok(()),
            Ok(_) | Err(Errno::EINTR) => continue,
            Err(e) => return Err(Error::sys(format!("poll barrier pipe for {display}"), e)),
        }
    }
}

impl AsFd for Notifier {
    fn as_fd(&self) -> BorrowedFd<'_> {
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

/// [`Notifier::barrier`] with this process's manager; `Ok(false)` without one.
pub fn barrier(timeout: Duration) -> Result<bool> {
    match manager() {
        Some(n) => n.barrier(timeout).map(|()| true),
        None => Ok(false),
    }
}

/// [`Notifier::store_fds`] with this process's manager; `Ok(false)` without one.
pub fn store_fds(name: &str, fds: &[BorrowedFd<'_>]) -> Result<bool> {
    match manager() {
        Some(n) => n.store_fds(name, fds).map(|()| true),
        None => Ok(false),
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn fd_names_follow_systemd_rules() {
        assert!(valid_fd_name("http"));
        assert!(valid_fd_name("web.socket"));
        assert!(!valid_fd_name(""));
        assert!(!valid_fd_name("a:b"));
        assert!(!valid_fd_name("a b"));
        assert!(!valid_fd_name(&"x".repeat(MAX_FDNAME + 1)));
    }

    #[test]
    fn rejects_relative_addresses() {
        let e = Notifier::new("run/notify").unwrap_err();
        assert_eq!(e.kind(), ErrorKind::InvalidInput);
        assert!(e.to_string().contains("run/notify"), "{e}");
    }
}
