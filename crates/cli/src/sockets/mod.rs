//! Sockets the supervisor holds for a service (`--socket NAME=SPEC`, config key `socket`;
//! the options are `service::sockets`).
//!
//! The supervisor binds and listens on each socket once, as itself (root, say) and before
//! any child runs, and passes them to *every* start of the service by systemd's socket
//! activation protocol (`LISTEN_FDS`, `LISTEN_PID`, `LISTEN_FDNAMES`; see
//! [`daemonic::systemd::handoff`]). They stay open across restarts, so a client that
//! connects while the program restarts waits in the listen backlog instead of being
//! refused; and a service that runs as another user can listen on port 80 without any
//! capability.
//!
//! The text of one socket (module [`spec`] parses it, [`bind`] opens it):
//!
//! ```text
//! NAME=tcp:[HOST:]PORT[,backlog=N][,reuseport][,ipv6-only]
//! NAME=udp:[HOST:]PORT[,reuseport][,ipv6-only]
//! NAME=unix:/ABSOLUTE/PATH[,backlog=N][,mode=0660][,owner=USER[:GROUP]]
//! ```
//!
//! Without a HOST, a TCP or UDP socket listens on every address, IPv6 and IPv4 alike
//! (`[::]` dual-stack, or `0.0.0.0` where the kernel has no IPv6).
//!
//! [`fdstore`] keeps what a program stores with `FDSTORE=1` and gives it back, after the
//! held sockets, at the next start.

pub mod bind;
pub mod fdstore;
pub mod holder;
pub mod spec;
pub mod taken;

pub use bind::{Bound, bind_all};
pub use spec::{Address, SocketSpec};

/// Launches a service's child ([`daemonic::launch::launch`]) with the held sockets and
/// then the stored descriptors passed by socket activation, and with `WATCHDOG_PID` set
/// to the child's pid when `watchdog_pid`.
pub fn launch(
    cmd: &mut std::process::Command,
    with: daemonic::launch::Launch<'_>,
    held: &[std::sync::Arc<Bound>],
    store: &fdstore::FdStore,
    watchdog_pid: bool,
) -> daemonic::Result<daemonic::process::PidFd> {
    use daemonic::systemd::handoff::ListenFds;
    let mut fds = ListenFds::new();
    if watchdog_pid {
        fds.set_watchdog_pid();
    }
    for b in held {
        fds.push(b.name(), &**b)?;
    }
    for (name, fd) in store.iter() {
        fds.push(name, fd)?;
    }
    let with = daemonic::launch::Launch {
        fds: Some(&fds),
        ..with
    };
    daemonic::launch::launch(cmd, with)
}
