//! journald's native protocol: one datagram per entry to `/run/systemd/journal/socket`.
//!
//! An entry is a list of `NAME=value` fields. A value without newlines is written as
//! `NAME=value\n`; any other value uses the binary-safe form, `NAME\n`, its length as a
//! little-endian `u64`, the bytes, `\n`. Field names are upper-case letters, digits and
//! `_`, must not start with `_` (journald reserves those for the fields it adds itself,
//! like `_PID`) or a digit, and are at most 64 bytes; [`field_name`] maps any name to that
//! shape.
//!
//! A datagram is limited by the socket buffer (about 200 KiB by default). An entry too
//! large for one is written to a sealed `memfd` instead, and the file descriptor is sent
//! with `SCM_RIGHTS` in an empty datagram; journald reads the entry from it. This is the
//! protocol `sd_journal_send(3)` speaks; see systemd's `JOURNAL_NATIVE_PROTOCOL` document.
//!
//! Sends block when journald is behind (backpressure, like the file writer); failures are
//! counted by the layer and never panic.

use std::fs::File;
use std::io::{self, IoSlice, Write};
use std::os::fd::AsRawFd;
use std::os::unix::net::UnixDatagram;
use std::path::{Path, PathBuf};

use nix::errno::Errno;
use nix::fcntl::{FcntlArg, SealFlag, fcntl};
use nix::sys::memfd::{MFdFlags, memfd_create};
use nix::sys::socket::{ControlMessage, MsgFlags, UnixAddr, sendmsg};
use tracing::Level;

use super::format::{Record, Value};
use crate::{Error, Result};

/// Where journald listens for native-protocol entries.
pub const JOURNAL_SOCKET: &str = "/run/systemd/journal/socket";

/// A sender of entries to journald.
#[derive(Debug)]
pub struct JournaldWriter {
    sock: UnixDatagram,
    path: PathBuf,
}

impl JournaldWriter {
    /// Connects to journald's socket ([`JOURNAL_SOCKET`]).
    pub fn connect() -> Result<JournaldWriter> {
        Self::connect_to(JOURNAL_SOCKET)
    }

    /// Connects to a socket at another path (a test, a container's bind mount).
    pub fn connect_to(path: impl AsRef<Path>) -> Result<JournaldWriter> {
        let path = path.as_ref();
        let sock = UnixDatagram::unbound().map_err(|e| Error::io("create journald socket", e))?;
        sock.connect(path)
            .map_err(|e| Error::io(format!("connect {}", path.display()), e))?;
        Ok(JournaldWriter {
            sock,
            path: path.to_owned(),
        })
    }

    /// Sends one entry made of `fields` (names are normalized with [`field_name`]).
    pub fn send(&self, fields: &[(&str, &[u8])]) -> Result<()> {
        let mut entry = Vec::with_capacity(256);
        for (name, value) in fields {
            encode_field(&mut entry, &field_name(name), value);
        }
        self.send_entry(&entry)
    }

    /// Sends an already encoded entry: as a datagram, or through a memfd if too large.
    pub fn send_entry(&self, entry: &[u8]) -> Result<()> {
        match self.sock.send(entry) {
            Ok(_) => Ok(()),
            Err(e) if matches!(e.raw_os_error(), Some(libc::EMSGSIZE) | Some(libc::ENOBUFS)) => {
                self.send_memfd(entry)
            }
            Err(e) => Err(Error::io(format!("send to {}", self.path.display()), e)),
        }
    }

    fn send_memfd(&self, entry: &[u8]) -> Result<()> {
        let fd = memfd_create(
            "journal-entry",
            MFdFlags::MFD_CLOEXEC | MFdFlags::MFD_ALLOW_SEALING,
        )
        .map_err(|e| Error::sys("memfd_create for a journald entry", e))?;
        let mut file = File::from(fd);
        file.write_all(entry)
            .map_err(|e| Error::io("write journald entry to memfd", e))?;
        // journald accepts only sealed memfds: the entry cannot change once sent.
        let seals = SealFlag::F_SEAL_SHRINK
            | SealFlag::F_SEAL_GROW
            | SealFlag::F_SEAL_WRITE
            | SealFlag::F_SEAL_SEAL;
        fcntl(&file, FcntlArg::F_ADD_SEALS(seals))
            .map_err(|e| Error::sys("seal journald memfd", e))?;
        let addr = UnixAddr::new(&self.path)
            .map_err(|e| Error::sys(format!("address {}", self.path.display()), e))?;
        let fds = [file.as_raw_fd()];
        let empty: [IoSlice<'_>; 0] = [];
        let sent = sendmsg(
            self.sock.as_raw_fd(),
            &empty,
            &[ControlMessage::ScmRights(&fds)],
            MsgFlags::empty(),
            Some(&addr),
        );
        match sent {
            Ok(_) => Ok(()),
            // Connected sockets refuse an explicit address on some kernels; retry without.
            Err(Errno::EISCONN) => sendmsg::<UnixAddr>(
                self.sock.as_raw_fd(),
                &empty,
                &[ControlMessage::ScmRights(&fds)],
                MsgFlags::empty(),
                None,
            )
            .map(drop)
            .map_err(|e| Error::sys(format!("send memfd to {}", self.path.display()), e)),
            Err(e) => Err(Error::sys(
                format!("send memfd to {}", self.path.display()),
                e,
            )),
        }
    }
}

/// Appends one field in the native format (binary-safe form when `value` has a newline).
pub fn encode_field(out: &mut Vec<u8>, name: &str, value: &[u8]) {
    out.extend_from_slice(name.as_bytes());
    if value.contains(&b'\n') {
        out.push(b'\n');
        out.extend_from_slice(&(value.len() as u64).to_le_bytes());
        out.extend_from_slice(value);
    } else {
        out.push(b'=');
        out.extend_from_slice(value);
    }
    out.push(b'\n');
}

/// Maps `name` to a valid journald field name: upper-case, `[A-Z0-9_]` only, no leading
/// `_` or digit, at most 64 bytes (`request.id` → `REQUEST_ID`, `_x` → `X`, `2xx` → `F_2XX`).
pub fn field_name(name: &str) -> String {
    let mut s: String = name
        .chars()
        .map(|c| {
            if c.is_ascii_alphanumeric() {
                c.to_ascii_uppercase()
            } else {
                '_'
            }
        })
        .collect();
    let trimmed = s.trim_start_matches('_').len();
    s.drain(..s.len() - trimmed);
    if s.is_empty() || s.starts_with(|c: char| c.is_ascii_digit()) {
        s.insert_str(0, "F_");
    }
    s.truncate(64);
    s
}

/// syslog priority of a `tracing` level (as journald's `PRIORITY` and stderr's `<N>`).
pub(crate) fn priority(level: Level) -> u8 {
    match level {
        Level::ERROR => 3,
        Level::WARN => 4,
        Level::INFO => 6,
        _ => 7,
    }
}

/// Encodes an event as a journal entry: `MESSAGE`, `PRIORITY`, `SYSLOG_IDENTIFIER`,
/// `TARGET`, `CODE_FILE`, `CODE_LINE`, then context, span and event fields.
pub(crate) fn encode_record(rec: &Record<'_>, identifier: &str) -> Vec<u8> {
    let mut e = Vec::with_capacity(256);
    encode_field(&mut e, "MESSAGE", rec.message.as_bytes());
    encode_field(
        &mut e,
        "PRIORITY",
        priority(rec.level).to_string().as_bytes(),
    );
    encode_field(&mut e, "SYSLOG_IDENTIFIER", identifier.as_bytes());
    encode_field(&mut e, "TARGET", rec.target.as_bytes());
    if let Some(f) = rec.file {
        encode_field(&mut e, "CODE_FILE", f.as_bytes());
    }
    if let Some(l) = rec.line {
        encode_field(&mut e, "CODE_LINE", l.to_string().as_bytes());
    }
    for (k, v) in rec.context {
        encode_field(&mut e, &field_name(k), v.as_bytes());
    }
    let span_fields = rec.spans.iter().flat_map(|s| s.fields.iter());
    for (k, v) in span_fields.chain(rec.fields.iter()) {
        encode_field(&mut e, &field_name(k), Value::plain(v).as_bytes());
    }
    e
}

/// Whether journald reads this process's stderr: `JOURNAL_STREAM` (`DEV:INODE`, set by
/// systemd for services whose output goes to the journal) names the same file as fd 2.
/// A child whose stderr was redirected inherits the variable but not the stream, hence the
/// comparison.
pub(crate) fn reads_stderr(journal_stream: Option<&str>) -> bool {
    let Some((dev, ino)) = journal_stream.and_then(parse_journal_stream) else {
        return false;
    };
    nix::sys::stat::fstat(io::stderr()).is_ok_and(|st| same_file(st.st_dev, st.st_ino, dev, ino))
}

/// `dev_t`/`ino_t` widths differ between targets; compare as `u64`.
#[allow(clippy::useless_conversion)]
fn same_file(st_dev: libc::dev_t, st_ino: libc::ino_t, dev: u64, ino: u64) -> bool {
    u64::from(st_dev) == dev && u64::from(st_ino) == ino
}

/// Parses `DEV:INODE` (both decimal).
pub(crate) fn parse_journal_stream(s: &str) -> Option<(u64, u64)> {
    let (dev, ino) = s.trim().split_once(':')?;
    Some((dev.parse().ok()?, ino.parse().ok()?))
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn field_names_are_normalized() {
        assert_eq!(field_name("request.id"), "REQUEST_ID");
        assert_eq!(field_name("_PID"), "PID");
        assert_eq!(field_name("2xx"), "F_2XX");
        assert_eq!(field_name(""), "F_");
        assert_eq!(field_name(&"a".repeat(80)).len(), 64);
    }

    #[test]
    fn newline_values_use_the_length_prefixed_form() {
        let mut e = Vec::new();
        encode_field(&mut e, "A", b"one line");
        encode_field(&mut e, "B", b"two\nlines");
        let mut expected = b"A=one line\nB\n".to_vec();
        expected.extend_from_slice(&9u64.to_le_bytes());
        expected.extend_from_slice(b"two\nlines\n");
        assert_eq!(e, expected);
    }

    #[test]
    fn journal_stream_parses_dev_and_inode() {
        assert_eq!(parse_journal_stream("8:12345"), Some((8, 12345)));
        assert_eq!(parse_journal_stream("x:1"), None);
        assert_eq!(parse_journal_stream("81"), None);
        assert!(!reads_stderr(Some("0:0")));
        assert!(!reads_stderr(None));
    }
}
