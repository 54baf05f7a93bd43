//! Linux capabilities by name: `net_bind_service`, `CAP_NET_BIND_SERVICE` and `10` all
//! name the same one. The numbers are the kernel's ABI (`linux/capability.h`); they never
//! change, new capabilities only get added at the end.

use std::fmt;

use crate::{Error, ErrorKind, Result};

/// One Linux capability, such as [`Capability::NET_BIND_SERVICE`].
#[derive(Debug, Clone, Copy, PartialEq, Eq, PartialOrd, Ord, Hash)]
pub struct Capability(u8);

/// Every capability the kernel defines today, by number (the index).
const NAMES: &[&str] = &[
    "chown",
    "dac_override",
    "dac_read_search",
    "fowner",
    "fsetid",
    "kill",
    "setgid",
    "setuid",
    "setpcap",
    "linux_immutable",
    "net_bind_service",
    "net_broadcast",
    "net_admin",
    "net_raw",
    "ipc_lock",
    "ipc_owner",
    "sys_module",
    "sys_rawio",
    "sys_chroot",
    "sys_ptrace",
    "sys_pacct",
    "sys_admin",
    "sys_boot",
    "sys_nice",
    "sys_resource",
    "sys_time",
    "sys_tty_config",
    "mknod",
    "lease",
    "audit_write",
    "audit_control",
    "setfcap",
    "mac_override",
    "mac_admin",
    "syslog",
    "wake_alarm",
    "block_suspend",
    "audit_read",
    "perfmon",
    "bpf",
    "checkpoint_restore",
];

impl Capability {
    /// `CAP_NET_BIND_SERVICE`: bind TCP/UDP ports below 1024.
    pub const NET_BIND_SERVICE: Capability = Capability(10);
    /// `CAP_NET_RAW`: raw and packet sockets (ping, packet capture).
    pub const NET_RAW: Capability = Capability(13);
    /// `CAP_NET_ADMIN`: interface, routing and firewall configuration.
    pub const NET_ADMIN: Capability = Capability(12);
    /// `CAP_SETUID`: change user ids at will — a way back to root, never kept.
    pub const SETUID: Capability = Capability(7);
    /// `CAP_SETGID`: change group ids at will — a way back to root, never kept.
    pub const SETGID: Capability = Capability(6);

    /// The capability with this kernel number, if the kernel defines one.
    pub fn from_number(n: u8) -> Option<Capability> {
        ((n as usize) < NAMES.len()).then_some(Capability(n))
    }

    /// Parses `net_bind_service`, `CAP_NET_BIND_SERVICE` (any case) or a number.
    pub fn parse(text: &str) -> Result<Capability> {
        let t = text.trim().to_ascii_lowercase();
        let name = t.strip_prefix("cap_").unwrap_or(&t);
        let found = match name.parse::<u8>() {
            Ok(n) => Capability::from_number(n),
            Err(_) => NAMES
                .iter()
                .position(|n| *n == name)
                .map(|i| Capability(i as u8)),
        };
        found.ok_or_else(|| {
            Error::new(
                ErrorKind::InvalidInput,
                format!(
                    "unknown capability {text:?} (expected a name such as net_bind_service or \
                     CAP_NET_BIND_SERVICE, see capabilities(7))"
                ),
            )
        })
    }

    /// The kernel's number for it.
    pub fn number(self) -> u8 {
        self.0
    }

    /// Its name as capabilities(7) writes it: `CAP_NET_BIND_SERVICE`.
    pub fn name(self) -> String {
        format!("CAP_{}", NAMES[self.0 as usize].to_ascii_uppercase())
    }

    /// Its bit in a 64-bit capability set.
    pub(crate) fn bit(self) -> u64 {
        1 << self.0
    }
}

impl fmt::Display for Capability {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(&self.name())
    }
}

impl std::str::FromStr for Capability {
    type Err = Error;
    fn from_str(s: &str) -> Result<Capability> {
        Capability::parse(s)
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn names_in_every_spelling_and_numbers_agree() {
        for text in [
            "net_bind_service",
            "CAP_NET_BIND_SERVICE",
            "Cap_Net_Bind_Service",
            "10",
        ] {
            assert_eq!(
                Capability::parse(text).unwrap(),
                Capability::NET_BIND_SERVICE
            );
        }
        assert_eq!(Capability::NET_BIND_SERVICE.name(), "CAP_NET_BIND_SERVICE");
        assert_eq!(Capability::parse("setuid").unwrap(), Capability::SETUID);
        assert_eq!(
            Capability::parse("checkpoint_restore").unwrap().number(),
            40
        );
        let e = Capability::parse("net_bind").unwrap_err();
        assert_eq!(e.kind(), ErrorKind::InvalidInput);
        assert!(e.to_string().contains("\"net_bind\""), "{e}");
        assert!(Capability::parse("41").is_err());
    }
}
