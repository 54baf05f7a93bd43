//! The receiving side of the notify protocol: what systemd does for its services, and what
//! the daemonic launcher and supervisor do for theirs.
//!
//! A [`NotifyListener`] binds a datagram socket with `SO_PASSCRED`, so every datagram
//! arrives with the sender's pid, uid and gid as the kernel saw them — the only trustworthy
//! way to tell which process said `READY=1`. [`NotifyListener::recv`] parses a datagram
//! into typed [`Message`]s and enforces the protocol's limits:
//!
//! - a datagram larger than [`MAX_DATAGRAM`] bytes, one that is not UTF-8, or one with a
//!   line that is not `KEY=VALUE` is rejected as a whole ([`ErrorKind::Protocol`]);
//! - file descriptors passed along (`FDSTORE=1`, `BARRIER=1`) are handed to the caller as
//!   [`OwnedFd`]s, so they are closed unless the caller keeps them — also when the datagram
//!   is rejected.

use std::io::IoSliceMut;
use std::os::fd::{AsFd, AsRawFd, BorrowedFd, OwnedFd, RawFd};
use std::os::linux::net::SocketAddrExt;
use std::os::unix::net::{SocketAddr, UnixDatagram};
use std::path::{Path, PathBuf};

use nix::sys::socket::{
    ControlMessageOwned, MsgFlags, UnixCredentials, recvmsg, setsockopt, sockopt,
};
use nix::unistd::Pid;

use crate::{Error, ErrorKind, Result};

/// The largest datagram accepted, in bytes (systemd's own limit, `PIPE_BUF`).
pub const MAX_DATAGRAM: usize = 4096;

/// The most descriptors accepted with one datagram (systemd's limit for `FDSTORE=1`).
const MAX_FDS: usize = 768;

/// One `KEY=VALUE` line of a notify datagram.
#[derive(Debug, Clone, PartialEq, Eq)]
#[non_exhaustive]
pub enum Message {
    /// `READY=1`
    Ready,
    /// `RELOADING=1`
    Reloading,
    /// `MONOTONIC_USEC=`, sent with `RELOADING=1`.
    MonotonicUsec(u64),
    /// `STOPPING=1`
    Stopping,
    /// `STATUS=`
    Status(String),
    /// `ERRNO=`
    Errno(i32),
    /// `MAINPID=`
    MainPid(Pid),
    /// `WATCHDOG=1`
    Watchdog,
    /// `WATCHDOG=trigger`: the service asks to be treated as if its watchdog expired.
    WatchdogTrigger,
    /// `WATCHDOG_USEC=`: the service changes its watchdog interval.
    WatchdogUsec(u64),
    /// `EXTEND_TIMEOUT_USEC=`
    ExtendTimeoutUsec(u64),
    /// `BARRIER=1`: close the passed descriptor once everything before was processed.
    Barrier,
    /// `FDSTORE=1`: keep the passed descriptors.
    FdStore,
    /// `FDSTOREREMOVE=1`
    FdStoreRemove,
    /// `FDNAME=`
    FdName(String),
    /// Any other key, kept verbatim (the protocol is open-ended).
    Other {
        /// The key.
        key: String,
        /// The value.
        value: String,
    },
}

/// The sender of a datagram, as the kernel reported it.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Sender {
    /// Process id.
    pub pid: Pid,
    /// User id.
    pub uid: u32,
    /// Group id.
    pub gid: u32,
}

/// One received datagram.
#[derive(Debug)]
pub struct Datagram {
    /// Who sent it (absent only if the kernel attached no credentials).
    pub sender: Option<Sender>,
    /// Its lines, in order.
    pub messages: Vec<Message>,
    /// Descriptors passed with it; dropped (closed) unless taken.
    pub fds: Vec<OwnedFd>,
}

/// A bound notify socket.
#[derive(Debug)]
pub struct NotifyListener {
    socket: UnixDatagram,
    env_value: String,
    path: Option<PathBuf>,
}

impl NotifyListener {
    /// Binds a socket at `path` (which must not exist) and enables sender credentials.
    /// The socket file is removed when the listener is dropped.
    pub fn bind(path: impl AsRef<Path>) -> Result<NotifyListener> {
        let path = path.as_ref();
        let socket = UnixDatagram::bind(path)
            .map_err(|e| Error::io(format!("bind notify socket {}", path.display()), e))?;
        let env_value = path.to_str().map(str::to_string).ok_or_else(|| {
            Error::new(
                ErrorKind::InvalidInput,
                format!("{}: path is not UTF-8", path.display()),
            )
        })?;
        Self::finish(socket, env_value, Some(path.to_path_buf()))
    }

    /// Binds a socket at `path` (which must not exist) whose file has exactly `mode`,
    /// and is never wider: the unbound socket is `fchmod`ed first, since `bind` gives the
    /// file the socket inode's mode minus the umask; then the file is `chmod`ed to `mode`
    /// (what the umask took away). The process-wide umask is left alone. Removed on drop
    /// like [`bind`](Self::bind).
    pub fn bind_with_mode(path: impl AsRef<Path>, mode: u32) -> Result<NotifyListener> {
        use nix::sys::socket::{AddressFamily, SockFlag, SockType, UnixAddr, bind, socket};
        let path = path.as_ref();
        let ctx = || format!("bind notify socket {}", path.display());
        let env_value = path.to_str().map(str::to_string).ok_or_else(|| {
            Error::new(
                ErrorKind::InvalidInput,
                format!("{}: path is not UTF-8", path.display()),
            )
        })?;
        let fd = socket(
            AddressFamily::Unix,
            SockType::Datagram,
            SockFlag::SOCK_CLOEXEC,
            None,
        )
        .map_err(|e| Error::sys(ctx(), e))?;
        let mode = nix::sys::stat::Mode::from_bits_truncate(mode);
        nix::sys::stat::fchmod(&fd, mode)
            .map_err(|e| Error::sys(format!("fchmod socket for {}", path.display()), e))?;
        let addr = UnixAddr::new(path).map_err(|e| Error::sys(ctx(), e))?;
        bind(fd.as_raw_fd(), &addr).map_err(|e| Error::sys(ctx(), e))?;
        // Owned from here: removed on drop, also if what follows fails.
        let listener = Self::finish(UnixDatagram::from(fd), env_value, Some(path.to_path_buf()))?;
        // The umask took bits away, never added any: widen to `mode` now.
        use std::os::unix::fs::PermissionsExt;
        std::fs::set_permissions(path, std::fs::Permissions::from_mode(mode.bits()))
            .map_err(|e| Error::io(format!("chmod {:o} {}", mode.bits(), path.display()), e))?;
        Ok(listener)
    }

    /// Binds an abstract socket `@name` (nothing to clean up in the filesystem; reachable
    /// from the same network namespace).
    pub fn bind_abstract(name: &str) -> Result<NotifyListener> {
        let ctx = || format!("bind notify socket @{name}");
        let addr =
            SocketAddr::from_abstract_name(name.as_bytes()).map_err(|e| Error::io(ctx(), e))?;
        let socket = UnixDatagram::bind_addr(&addr).map_err(|e| Error::io(ctx(), e))?;
        Self::finish(socket, format!("@{name}"), None)
    }

    /// Binds an abstract socket with an unguessable name: `@daemonic/notify/<pid>/<random>`.
    pub fn bind_private() -> Result<NotifyListener> {
        let token = crate::random::token()?;
        Self::bind_abstract(&format!("daemonic/notify/{}/{token}", Pid::this()))
    }

    fn finish(socket: UnixDatagram, env_value: String, path: Option<PathBuf>) -> Result<Self> {
        setsockopt(&socket, sockopt::PassCred, &true)
            .map_err(|e| Error::sys(format!("setsockopt SO_PASSCRED on {env_value}"), e))?;
        Ok(NotifyListener {
            socket,
            env_value,
            path,
        })
    }

    /// The address for a child's `NOTIFY_SOCKET`.
    pub fn env_value(&self) -> &str {
        &self.env_value
    }

    /// Makes [`recv`](Self::recv) return `WouldBlock` instead of waiting.
    pub fn set_nonblocking(&self, nonblocking: bool) -> Result<()> {
        self.socket
            .set_nonblocking(nonblocking)
            .map_err(|e| Error::io(format!("set O_NONBLOCK on {}", self.env_value), e))
    }

    /// Receives and parses one datagram. With a non-blocking listener, an empty queue is
    /// an [`ErrorKind::Io`] error whose `os_error()` is `EAGAIN`.
    pub fn recv(&self) -> Result<Datagram> {
        self.recv_from(|_| true)
            .map(|d| d.expect("every sender accepted"))
    }

    /// Receives one datagram and, only if `accept` takes its sender (as the kernel
    /// reported it), parses it; a datagram from anyone else is dropped unread — `Ok(None)`,
    /// its descriptors closed — so a flood from a stranger costs no parsing and produces
    /// no error to log.
    pub fn recv_from(
        &self,
        accept: impl FnOnce(Option<Sender>) -> bool,
    ) -> Result<Option<Datagram>> {
        let mut buf = [0u8; MAX_DATAGRAM + 1];
        let mut cmsg = nix::cmsg_space!(UnixCredentials, [RawFd; MAX_FDS]);
        let mut iov = [IoSliceMut::new(&mut buf)];
        let flags = MsgFlags::MSG_CMSG_CLOEXEC | MsgFlags::MSG_TRUNC;
        let msg = recvmsg::<()>(self.socket.as_raw_fd(), &mut iov, Some(&mut cmsg), flags)
            .map_err(|e| Error::sys(format!("recvmsg on notify socket {}", self.env_value), e))?;
        let (mut sender, mut fds) = (None, Vec::new());
        let truncated = msg
            .flags
            .intersects(MsgFlags::MSG_TRUNC | MsgFlags::MSG_CTRUNC);
        let len = msg.bytes;
        for c in msg
            .cmsgs()
            .map_err(|e| Error::sys("parse control messages", e))?
        {
            match c {
                ControlMessageOwned::ScmCredentials(cred) => {
                    sender = Some(Sender {
                        pid: Pid::from_raw(cred.pid()),
                        uid: cred.uid(),
                        gid: cred.gid(),
                    })
                }
                ControlMessageOwned::ScmRights(raw) => {
                    // SAFETY of ownership: the kernel just installed these descriptors in
                    // our table for us (close-on-exec); nothing else refers to them.
                    fds.extend(raw.into_iter().map(owned_fd))
                }
                _ => {}
            }
        }
        if !accept(sender) {
            return Ok(None);
        }
        let reject = |why: String| {
            let from = sender
                .map(|s| format!(" from pid {}", s.pid))
                .unwrap_or_default();
            Err(Error::new(
                ErrorKind::Protocol,
                format!("notify datagram{from} rejected: {why}"),
            ))
        };
        if truncated {
            return reject(format!(
                "larger than {MAX_DATAGRAM} bytes or too many descriptors"
            ));
        }
        let messages = match parse(&buf[..len]) {
            Ok(m) => m,
            Err(why) => return reject(why),
        };
        Ok(Some(Datagram {
            sender,
            messages,
            fds,
        }))
    }
}

fn owned_fd(fd: RawFd) -> OwnedFd {
    crate::sys::own_received_fd(fd)
}

impl AsFd for NotifyListener {
    fn as_fd(&self) -> BorrowedFd<'_> {
        self.socket.as_fd()
    }
}

impl Drop for NotifyListener {
    fn drop(&mut self) {
        if let Some(path) = &self.path {
            let _ = std::fs::remove_file(path);
        }
    }
}

/// Parses a datagram's bytes into messages; the error says what is wrong.
pub fn parse(bytes: &[u8]) -> std::result::Result<Vec<Message>, String> {
    if bytes.len() > MAX_DATAGRAM {
        return Err(format!("{} bytes, more than {MAX_DATAGRAM}", bytes.len()));
    }
    let text = std::str::from_utf8(bytes).map_err(|e| format!("not UTF-8 ({e})"))?;
    // systemd reads the datagram as a C string: a NUL would silently cut it short there.
    if let Some(at) = text.find('\0') {
        return Err(format!("contains a NUL byte at offset {at}"));
    }
    let mut out = Vec::new();
    for (n, line) in text.split('\n').enumerate() {
        if line.is_empty() {
            continue;
        }
        let Some((key, value)) = line.split_once('=') else {
            return Err(format!("line {} is not KEY=VALUE: {:?}", n + 1, clip(line)));
        };
        if key.is_empty()
            || !key
                .bytes()
                .all(|b| b.is_ascii_uppercase() || b.is_ascii_digit() || b == b'_')
        {
            return Err(format!("line {}: invalid key {:?}", n + 1, clip(key)));
        }
        out.push(
            message(key, value)
                .map_err(|why| format!("line {}: {key}={:?}: {why}", n + 1, clip(value)))?,
        );
    }
    Ok(out)
}

fn message(key: &str, value: &str) -> std::result::Result<Message, String> {
    let flag = |m: Message| {
        if value == "1" {
            Ok(m)
        } else {
            Err("expected 1".to_string())
        }
    };
    let num = || {
        value
            .parse::<u64>()
            .map_err(|_| "expected an unsigned integer".to_string())
    };
    Ok(match key {
        "READY" => flag(Message::Ready)?,
        "RELOADING" => flag(Message::Reloading)?,
        "STOPPING" => flag(Message::Stopping)?,
        "BARRIER" => flag(Message::Barrier)?,
        "FDSTORE" => flag(Message::FdStore)?,
        "FDSTOREREMOVE" => flag(Message::FdStoreRemove)?,
        "MONOTONIC_USEC" => Message::MonotonicUsec(num()?),
        "WATCHDOG_USEC" => Message::WatchdogUsec(num()?),
        "EXTEND_TIMEOUT_USEC" => Message::ExtendTimeoutUsec(num()?),
        "STATUS" => Message::Status(value.to_string()),
        "FDNAME" => Message::FdName(value.to_string()),
        "WATCHDOG" => match value {
            "1" => Message::Watchdog,
            "trigger" => Message::WatchdogTrigger,
            _ => return Err("expected 1 or trigger".to_string()),
        },
        "ERRNO" => match value.parse::<i32>() {
            Ok(n) if n >= 0 => Message::Errno(n),
            _ => return Err("expected a non-negative errno".to_string()),
        },
        "MAINPID" => match value.parse::<i32>() {
            Ok(n) if n > 0 => Message::MainPid(Pid::from_raw(n)),
            _ => return Err("expected a positive pid".to_string()),
        },
        _ => Message::Other {
            key: key.to_string(),
            value: value.to_string(),
        },
    })
}

fn clip(s: &str) -> &str {
    match s.char_indices().nth(64) {
        Some((i, _)) => &s[..i],
        None => s,
    }
}

/// Text a service sent (`STATUS=`, an error it reported) made safe to print for people:
/// every control character (C0, DEL, C1) and every bidirectional override is shown as an
/// escape (`\x1b`, `\n`, `\u{202e}`), so a service cannot move the cursor, recolour,
/// retitle or rewrite the terminal of whoever reads `status`. Text without such
/// characters is returned as it is, without a copy. Machine output (JSON) has its own
/// escaping and does not need this.
pub fn printable(text: &str) -> std::borrow::Cow<'_, str> {
    use std::fmt::Write as _;
    let unsafe_char =
        |c: char| c.is_control() || matches!(c, '\u{202a}'..='\u{202e}' | '\u{2066}'..='\u{2069}');
    if !text.chars().any(unsafe_char) {
        return std::borrow::Cow::Borrowed(text);
    }
    let mut out = String::with_capacity(text.len() + 8);
    for c in text.chars() {
        match c {
            '\n' => out.push_str("\\n"),
            '\r' => out.push_str("\\r"),
            '\t' => out.push_str("\\t"),
            c if u32::from(c) < 0x80 && unsafe_char(c) => {
                let _ = write!(out, "\\x{:02x}", u32::from(c));
            }
            c if unsafe_char(c) => {
                let _ = write!(out, "\\u{{{:x}}}", u32::from(c));
            }
            c => out.push(c),
        }
    }
    std::borrow::Cow::Owned(out)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn parses_every_kind() {
        let m = parse(b"READY=1\nSTATUS=up: 3 workers\nERRNO=98\nMAINPID=42\nWATCHDOG=trigger\nX_CUSTOM=a=b\n").unwrap();
        assert_eq!(
            m,
            vec![
                Message::Ready,
                Message::Status("up: 3 workers".into()),
                Message::Errno(98),
                Message::MainPid(Pid::from_raw(42)),
                Message::WatchdogTrigger,
                Message::Other {
                    key: "X_CUSTOM".into(),
                    value: "a=b".into()
                },
            ]
        );
    }

    #[test]
    fn printable_shows_control_characters_as_escapes() {
        assert!(matches!(
            printable("ok: 3 workers"),
            std::borrow::Cow::Borrowed(_)
        ));
        assert_eq!(
            printable("\x1b]0;pwned\x07\x1b[2Jred\r\n\t\u{9b}31m\u{202e}x\x7f"),
            "\\x1b]0;pwned\\x07\\x1b[2Jred\\r\\n\\t\\u{9b}31m\\u{202e}x\\x7f"
        );
    }

    #[test]
    fn rejects_malformed() {
        assert!(
            parse(b"READY")
                .unwrap_err()
                .contains("line 1 is not KEY=VALUE")
        );
        assert!(parse(b"READY=2").unwrap_err().contains("expected 1"));
        assert!(parse(b"MAINPID=-1").is_err());
        assert!(parse(b"ready=1").unwrap_err().contains("invalid key"));
        assert!(
            parse(&[b'S', b'=', 0xff])
                .unwrap_err()
                .contains("not UTF-8")
        );
        assert!(parse(&vec![b'A'; MAX_DATAGRAM + 1]).is_err());
        assert!(parse(b"READY=1\0STATUS=x").unwrap_err().contains("NUL"));
    }
}
