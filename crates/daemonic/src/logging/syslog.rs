//! syslog over the local datagram socket `/dev/log`.
//!
//! Two message shapes, chosen with [`SyslogFormat`]:
//!
//! * RFC 3164, as glibc's `syslog(3)` sends it locally, minus the timestamp:
//!   `<PRI>TAG[PID]: MSG`. The local daemon (rsyslog, syslog-ng, journald) stamps the
//!   message on receipt; leaving our own out avoids a local-time stamp that RFC 3164 cannot
//!   mark with a zone.
//! * RFC 5424: `<PRI>1 TIMESTAMP HOSTNAME APP-NAME PROCID - - MSG`, with a UTC timestamp.
//!
//! `PRI` is `facility * 8 + severity`. The message is the compact text line (spans, target,
//! message, fields, context). If the daemon restarts, the socket is reconnected once per
//! failed send; failures are counted by the layer.

use std::os::unix::net::UnixDatagram;
use std::path::{Path, PathBuf};
use std::sync::Mutex;
use std::time::SystemTime;

use super::clock::Utc;
use crate::{Error, Result};

/// The conventional local syslog socket.
pub const SYSLOG_SOCKET: &str = "/dev/log";

/// The syslog message format.
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq)]
pub enum SyslogFormat {
    /// `<PRI>TAG[PID]: MSG` (BSD syslog, what local daemons expect).
    #[default]
    Rfc3164,
    /// `<PRI>1 TIMESTAMP HOSTNAME APP PID - - MSG`.
    Rfc5424,
}

/// syslog facilities a daemon uses.
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq)]
#[allow(missing_docs)]
pub enum Facility {
    User,
    #[default]
    Daemon,
    Local0,
    Local1,
    Local2,
    Local3,
    Local4,
    Local5,
    Local6,
    Local7,
}

impl Facility {
    fn code(self) -> u8 {
        match self {
            Facility::User => 1,
            Facility::Daemon => 3,
            Facility::Local0 => 16,
            Facility::Local1 => 17,
            Facility::Local2 => 18,
            Facility::Local3 => 19,
            Facility::Local4 => 20,
            Facility::Local5 => 21,
            Facility::Local6 => 22,
            Facility::Local7 => 23,
        }
    }
}

/// A sender of syslog messages to a local socket.
#[derive(Debug)]
pub struct SyslogWriter {
    sock: Mutex<UnixDatagram>,
    path: PathBuf,
    format: SyslogFormat,
    facility: Facility,
    tag: String,
    hostname: String,
    pid: u32,
}

impl SyslogWriter {
    /// Connects to `path` (normally [`SYSLOG_SOCKET`]); `tag` is the program name shown.
    pub fn connect_to(
        path: impl AsRef<Path>,
        tag: &str,
        format: SyslogFormat,
        facility: Facility,
    ) -> Result<SyslogWriter> {
        let path = path.as_ref().to_owned();
        let sock = connect(&path)?;
        let hostname = std::fs::read_to_string("/proc/sys/kernel/hostname")
            .map(|h| h.trim().to_owned())
            .ok()
            .filter(|h| !h.is_empty())
            .unwrap_or_else(|| "-".into());
        Ok(SyslogWriter {
            sock: Mutex::new(sock),
            path,
            format,
            facility,
            tag: tag.to_owned(),
            hostname,
            pid: std::process::id(),
        })
    }

    /// Formats and sends one message with syslog `severity` (0 emerg … 7 debug).
    pub fn send(&self, severity: u8, msg: &str) -> Result<()> {
        let line = self.format_message(severity, msg, SystemTime::now());
        let mut sock = self.sock.lock().unwrap_or_else(|e| e.into_inner());
        if sock.send(line.as_bytes()).is_ok() {
            return Ok(());
        }
        // The daemon may have restarted and bound a new socket: reconnect once.
        *sock = connect(&self.path)?;
        sock.send(line.as_bytes())
            .map(drop)
            .map_err(|e| Error::io(format!("send to {}", self.path.display()), e))
    }

    /// The datagram for `msg` (without a trailing newline).
    pub(crate) fn format_message(&self, severity: u8, msg: &str, now: SystemTime) -> String {
        let pri = self.facility.code() * 8 + severity.min(7);
        let msg = msg.trim_end_matches('\n');
        match self.format {
            SyslogFormat::Rfc3164 => format!("<{pri}>{}[{}]: {msg}", self.tag, self.pid),
            SyslogFormat::Rfc5424 => {
                let mut ts = String::new();
                Utc::from_system_time(now).write_rfc3339(&mut ts);
                format!(
                    "<{pri}>1 {ts} {} {} {} - - {msg}",
                    self.hostname, self.tag, self.pid
                )
            }
        }
    }
}

fn connect(path: &Path) -> Result<UnixDatagram> {
    let sock = UnixDatagram::unbound().map_err(|e| Error::io("create syslog socket", e))?;
    sock.connect(path)
        .map_err(|e| Error::io(format!("connect {}", path.display()), e))?;
    Ok(sock)
}
