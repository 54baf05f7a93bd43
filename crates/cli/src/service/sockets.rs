//! The socket options of a service: `--socket` (held by the supervisor, passed to every
//! start), `--fd-store-max` and `--socket-activation`. The sockets themselves — parsing a
//! spec, binding, the fd store — are `crate::sockets`; `docs/sockets.md` is the guide.

use super::options::Systemd::{Daemonic, Direct};
use super::options::{Blank, Opt, choice, push, put};
use crate::sockets::SocketSpec;

/// The socket options of a service (config keys of the same names; `socket` also as a
/// table `socket = { web = "tcp:8080" }`).
#[derive(Debug, Clone, Default)]
pub struct SocketArgs {
    pub sockets: Vec<SocketSpec>,
    /// `None`: the default (64), and no `FileDescriptorStoreMax=` in a generated unit.
    pub fd_store_max: Option<u32>,
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

impl Blank for SocketArgs {
    fn blank() -> SocketArgs {
        SocketArgs::default()
    }
}

/// The table's entries of the sockets.
pub(super) fn options() -> Vec<Opt<SocketArgs>> {
    type O = Opt<SocketArgs>;
    vec![
        O::many("socket", "NAME=SPEC", |a, v| {
            push(&mut a.sockets, SocketSpec::parse(v))
        })
        // A `.socket` unit each (`units::systemd::sockets`); `daemonic run` is given
        // them too, and takes systemd's sockets by name.
        .systemd(Direct("Sockets="))
        .heading("Sockets")
        .help(
            "Hold a listening socket for CMD and pass it to every start by systemd's \
             socket activation (LISTEN_FDS, LISTEN_PID, LISTEN_FDNAMES=NAME); it stays \
             open across restarts, so none refuses a connection. SPEC: tcp:[HOST:]PORT, \
             udp:[HOST:]PORT or unix:/PATH, then options: backlog=N (default 4096), \
             reuseport (SO_REUSEPORT, off by default), ipv6-only (an IPv6 HOST not \
             dual-stack); for unix: mode=0660 (default 0666), owner=USER[:GROUP]. Bound by \
             the supervisor before privileges are dropped (a --user service can use port \
             80). Repeatable; see docs/sockets.md",
        ),
        O::one("fd-store-max", "N", |a, v| {
            put(&mut a.fd_store_max, parse_fd_store_max(v).map(Some))
        })
        .systemd(Direct("FileDescriptorStoreMax="))
        .heading("Sockets")
        .help(
            "The most descriptors a program may keep in daemonic's fd store (FDSTORE=1 on \
             the notify socket, given back at the next start with their FDNAME=); 0 turns \
             the store off. systemd's FileDescriptorStoreMax= (written into a generated \
             unit only when given) [default: 64]",
        ),
        O::one("socket-activation", "MODE", |a, v| {
            put(&mut a.socket_activation, choice(v))
        })
        .systemd(Daemonic)
        .default("optional")
        .values::<Activation>()
        .heading("Sockets")
        .help(
            "optional: pass the sockets; a program that ignores them leaves daemonic \
             holding the addresses (reserved: nobody else can bind them). required: once \
             CMD is ready, check that it took each socket by socket activation (marked \
             close-on-exec, as sd_listen_fds and daemonic's library do); if not, the \
             start fails with why",
        ),
    ]
}

fn parse_fd_store_max(text: &str) -> Result<u32, String> {
    match text.trim().parse::<u32>() {
        Ok(n) if n <= 4096 => Ok(n),
        _ => Err(format!(
            "invalid fd store size {text:?} (expected a number from 0 to 4096)"
        )),
    }
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
