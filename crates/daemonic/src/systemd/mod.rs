//! The systemd protocols, both directions.
//!
//! | module | direction | what |
//! |---|---|---|
//! | [`notify`] | daemon → manager | `READY=1`, `STATUS=`, `RELOADING=1`, `STOPPING=1`, `ERRNO=`, `MAINPID=`, `EXTEND_TIMEOUT_USEC=`, `BARRIER=1`, the fd store |
//! | [`watchdog`] | daemon → manager | `WATCHDOG=1` from the main loop, at half of `WATCHDOG_USEC` |
//! | [`activation`] | manager → daemon | `LISTEN_FDS` / `LISTEN_FDNAMES`: sockets (and stored descriptors) by name |
//! | [`listen`] | manager's side | receive and parse notify datagrams, with sender credentials |
//! | [`handoff`] | manager's side | start a child with sockets passed by activation |
//!
//! One protocol for readiness everywhere: a daemon that calls
//! [`notify::notify`]`(&[State::Ready])` tells systemd, the daemonic supervisor, or the
//! daemonic launcher, whichever started it. Not running under any of them is not an
//! error: the calls return `Ok(false)` (or an empty [`activation::Activation`], or no
//! [`watchdog::Watchdog`]).
//!
//! See `docs/systemd.md` in the repository for how all of it is tested against a real
//! systemd.
//!
//! [`State::Ready`]: notify::State::Ready

pub mod activation;
pub mod handoff;
pub mod listen;
pub mod notify;
pub mod watchdog;

/// True if this process appears to run under systemd (`NOTIFY_SOCKET` or `INVOCATION_ID`
/// is set), in which case a daemon must not fork.
pub fn under_systemd() -> bool {
    std::env::var_os("NOTIFY_SOCKET").is_some_and(|v| !v.is_empty())
        || std::env::var_os("INVOCATION_ID").is_some_and(|v| !v.is_empty())
}
