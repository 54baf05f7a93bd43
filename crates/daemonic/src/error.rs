//! The library's one error type: what went wrong (`kind()`), the operation and path it
//! happened to (`context`), and the OS error underneath, if any.
//!
//! Display reads like `lock /run/web.pid: Resource temporarily unavailable`, and so does
//! Debug: `fn main() -> daemonic::Result<()>` prints `Error: ` and the message, not the
//! struct (`{:#?}` still shows every field).

use std::fmt;
use std::io;

/// A specialized `Result` for daemonic.
pub type Result<T, E = Error> = std::result::Result<T, E>;

/// What kind of failure an [`Error`] is; match on this, never on the message text.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
#[non_exhaustive]
pub enum ErrorKind {
    /// A system call failed; [`Error::os_error`] has the errno.
    Io,
    /// Another instance holds the pid-file lock.
    AlreadyRunning,
    /// The process already runs several threads, so forking would be unsafe.
    Threaded,
    /// The daemon did not become ready (it failed, exited, or timed out).
    NotReady,
    /// A value given by the caller, a file or the environment is not valid.
    InvalidInput,
    /// A peer spoke a protocol wrongly (malformed or oversized message).
    Protocol,
    /// Stored data failed its integrity check (bad checksum, impossible length, a gap in
    /// sequence numbers) somewhere other than a torn tail, or could not be decoded.
    Corrupt,
    /// A resource (such as a journal directory) is locked by another process.
    Locked,
    /// An object is unusable after an earlier failure it cannot undo (a failed write or
    /// fsync, or a panic while it was held); reopening it recovers from what is on disk.
    Poisoned,
    /// A wait ran out of time (e.g. a notify `BARRIER=1` was not acknowledged).
    TimedOut,
    /// After dropping privileges, root could still be regained (`setuid(0)` or
    /// `setgid(0)` succeeded): the switch is treated as failed.
    RootRegainable,
}

/// An error from daemonic: a kind, the operation it happened in, and its cause.
pub struct Error {
    kind: ErrorKind,
    context: String,
    source: Option<io::Error>,
    pid: Option<nix::unistd::Pid>,
}

impl Error {
    /// An error of `kind` with a message that names the operation and its subject.
    pub fn new(kind: ErrorKind, context: impl Into<String>) -> Self {
        Error {
            kind,
            context: context.into(),
            source: None,
            pid: None,
        }
    }

    /// A failed system call: `context` names the call and its subject (`open /run/x.pid`).
    pub fn io(context: impl Into<String>, source: impl Into<io::Error>) -> Self {
        Error {
            kind: ErrorKind::Io,
            context: context.into(),
            source: Some(source.into()),
            pid: None,
        }
    }

    /// Wraps a `nix` errno as [`ErrorKind::Io`].
    pub(crate) fn sys(context: impl Into<String>, errno: nix::errno::Errno) -> Self {
        Self::io(context, io::Error::from_raw_os_error(errno as i32))
    }

    /// Attaches the pid of the process the error is about (the running instance).
    pub(crate) fn with_pid(mut self, pid: Option<nix::unistd::Pid>) -> Self {
        self.pid = pid;
        self
    }

    /// Puts `prefix: ` before the context (the operation this one was part of).
    pub(crate) fn prefixed(mut self, prefix: &str) -> Self {
        self.context = format!("{prefix}: {}", self.context);
        self
    }

    /// For [`ErrorKind::AlreadyRunning`]: the pid of the running instance, when known.
    pub fn pid(&self) -> Option<nix::unistd::Pid> {
        self.pid
    }

    /// What kind of failure this is.
    pub fn kind(&self) -> ErrorKind {
        self.kind
    }

    /// The OS error underneath, if this came from a system call.
    pub fn io_error(&self) -> Option<&io::Error> {
        self.source.as_ref()
    }

    /// The errno of the failed system call, if this came from one.
    pub fn os_error(&self) -> Option<i32> {
        self.source.as_ref().and_then(io::Error::raw_os_error)
    }
}

impl fmt::Display for Error {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match &self.source {
            Some(e) => write!(f, "{}: {e}", self.context),
            None => f.write_str(&self.context),
        }
    }
}

/// The message, as [`Display`](fmt::Display) writes it, so that an error returned from
/// `main` reads as one (`Error: lock /run/web.pid: already running (pid 4242)`); the
/// alternate form (`{:#?}`) shows the fields.
impl fmt::Debug for Error {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        if !f.alternate() {
            return fmt::Display::fmt(self, f);
        }
        f.debug_struct("Error")
            .field("kind", &self.kind)
            .field("context", &self.context)
            .field("source", &self.source)
            .field("pid", &self.pid)
            .finish()
    }
}

/// `source()` is `None` on purpose: the cause is already part of the message, and error
/// reporters that walk the chain (anyhow's `{:#}`) would print it twice. Use
/// [`Error::io_error`] or [`Error::os_error`] to inspect it.
impl std::error::Error for Error {}

impl From<Error> for io::Error {
    fn from(e: Error) -> io::Error {
        match e.source {
            Some(src) => io::Error::new(src.kind(), format!("{}: {src}", e.context)),
            None => io::Error::other(e.context),
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn debug_reads_as_the_message_for_an_error_returned_from_main() {
        let e = Error::io(
            "bind 127.0.0.1:7878",
            io::Error::from_raw_os_error(libc::EADDRINUSE),
        );
        let text = "bind 127.0.0.1:7878: Address already in use (os error 98)";
        assert_eq!(format!("{e:?}"), text);
        assert_eq!(e.to_string(), text);
        assert!(format!("{e:#?}").contains("kind: Io"));
    }
}
