//! Sockets the supervisor holds for a service (`--socket NAME=SPEC`, config key `socket`).
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

/// Spawns a service's child (as [`daemonic::process::spawn`] or `spawn_as` do) with the
/// held sockets and then the stored descriptors passed by socket activation; without any,
/// exactly as those do.
pub fn spawn(
    cmd: &mut std::process::Command,
    privileges: Option<&daemonic::privileges::Prepared>,
    held: &[std::sync::Arc<Bound>],
    store: &fdstore::FdStore,
) -> daemonic::Result<daemonic::process::Spawned> {
    use daemonic::process;
    use daemonic::systemd::handoff::{self, ListenFds};
    if held.is_empty() && store.is_empty() {
        return match privileges {
            Some(p) => process::spawn_as(cmd, p),
            None => process::spawn(cmd),
        };
    }
    let mut fds = ListenFds::new();
    for b in held {
        fds.push(b.name(), &**b)?;
    }
    for (name, fd) in store.iter() {
        fds.push(name, fd)?;
    }
    match privileges {
        Some(p) => handoff::spawn_as(cmd, p, &fds),
        None => handoff::spawn(cmd, &fds),
    }
}

/// The socket flag of `run`/`start` (config key `socket`: an array of the same strings,
/// or a table `socket = { web = "tcp:8080" }`).
#[derive(clap::Args, Debug, Clone, Default)]
pub struct SocketArgs {
    /// Hold a listening socket for CMD and pass it to every start by systemd's socket
    /// activation (LISTEN_FDS, LISTEN_PID, LISTEN_FDNAMES=NAME); it stays open across
    /// restarts, so none refuses a connection. SPEC: tcp:[HOST:]PORT, udp:[HOST:]PORT or
    /// unix:/PATH, then options: backlog=N (default 4096), reuseport (SO_REUSEPORT, off by
    /// default), ipv6-only (an IPv6 HOST not dual-stack); for unix: mode=0660 (default
    /// 0666), owner=USER[:GROUP]. Bound by the supervisor before privileges are dropped
    /// (a --user service can use port 80). Repeatable; see docs/sockets.md.
    #[arg(long = "socket", value_parser = SocketSpec::parse, value_name = "NAME=SPEC", help_heading = "Sockets")]
    pub sockets: Vec<SocketSpec>,
    /// The most descriptors a program may keep in daemonic's fd store (FDSTORE=1 on the
    /// notify socket, given back at the next start with their FDNAME=); 0 turns the store
    /// off. systemd's FileDescriptorStoreMax= (written into a generated unit only when
    /// given) [default: 64].
    #[arg(long, value_parser = clap::value_parser!(u32).range(0..=4096), value_name = "N", help_heading = "Sockets")]
    pub fd_store_max: Option<u32>,
    /// optional: pass the sockets; a program that ignores them leaves daemonic holding
    /// the addresses (reserved: nobody else can bind them). required: once CMD is ready,
    /// check that it took each socket by socket activation (marked close-on-exec, as
    /// sd_listen_fds and daemonic's library do); if not, the start fails with why.
    #[arg(
        long,
        value_enum,
        default_value = "optional",
        value_name = "MODE",
        help_heading = "Sockets"
    )]
    pub socket_activation: Activation,
}

/// `--socket-activation`: whether the program must take its sockets.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Default, clap::ValueEnum)]
pub enum Activation {
    /// The sockets are passed; whether the program uses them is its business.
    #[default]
    Optional,
    /// Checked once ready: a program that did not take them fails its start.
    Required,
}

impl SocketArgs {
    /// The sockets, checked as a set: every name once.
    pub fn specs(&self) -> anyhow::Result<Vec<SocketSpec>> {
        if self.socket_activation == Activation::Required && self.sockets.is_empty() {
            anyhow::bail!("--socket-activation required: the service has no --socket");
        }
        for (i, s) in self.sockets.iter().enumerate() {
            if let Some(first) = self.sockets[..i].iter().find(|o| o.name == s.name) {
                anyhow::bail!(
                    "--socket {}: the name {:?} is already used by --socket {}",
                    s.text,
                    s.name,
                    first.text
                );
            }
        }
        Ok(self.sockets.clone())
    }
}
