//! The systemd notify protocol, both directions.
//!
//! - [`notify`]: the sending side, `READY=1`, `STATUS=…`, … to `NOTIFY_SOCKET`.
//! - [`listen`]: the receiving side, with sender credentials, for launchers and supervisors.
//!
//! One protocol for readiness everywhere: a daemon that calls
//! [`notify::notify`]`(&[State::Ready])` tells systemd, the daemonic supervisor, or the
//! daemonic launcher, whichever started it.
//!
//! [`State::Ready`]: notify::State::Ready

pub mod listen;
pub mod notify;

/// True if this process appears to run under systemd (`NOTIFY_SOCKET` or `INVOCATION_ID`
/// is set), in which case a daemon must not fork.
pub fn under_systemd() -> bool {
    std::env::var_os("NOTIFY_SOCKET").is_some_and(|v| !v.is_empty())
        || std::env::var_os("INVOCATION_ID").is_some_and(|v| !v.is_empty())
}
