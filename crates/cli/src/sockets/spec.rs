//! The text of `--socket NAME=SPEC`, parsed (see the [module docs](super) for the grammar).
//! Every error quotes the whole flag value, so the user sees which socket is wrong.

use std::net::{IpAddr, Ipv4Addr, Ipv6Addr, SocketAddr};
use std::path::PathBuf;

/// Where a socket listens.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Address {
    Tcp(SocketAddr),
    Udp(SocketAddr),
    /// An absolute path (a unix stream socket).
    Unix(PathBuf),
}

/// One `--socket`, as given.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct SocketSpec {
    /// Its name in `LISTEN_FDNAMES` (and `FileDescriptorName=` in a generated unit).
    pub name: String,
    pub address: Address,
    /// No HOST was given: listen on every address (IPv6 and IPv4).
    pub any_host: bool,
    /// `listen(2)`'s backlog (TCP and unix).
    pub backlog: u32,
    /// `SO_REUSEPORT`.
    pub reuseport: bool,
    /// `IPV6_V6ONLY` on an IPv6 address (else dual-stack).
    pub ipv6_only: bool,
    /// The unix socket file's mode.
    pub mode: u32,
    /// The unix socket file's owner and group, as given (looked up when bound).
    pub owner: Option<String>,
    /// The flag's value as written, for messages.
    pub text: String,
}

/// systemd's default backlog (`Backlog=`, `SOMAXCONN` on current kernels).
pub const DEFAULT_BACKLOG: u32 = 4096;
/// systemd's default `SocketMode=`.
pub const DEFAULT_MODE: u32 = 0o666;

impl SocketSpec {
    /// Parses `NAME=SPEC[,OPTION…]`.
    pub fn parse(text: &str) -> Result<SocketSpec, String> {
        let fail = |why: String| format!("{text:?}: {why}");
        let (name, rest) = text.split_once('=').ok_or_else(|| {
            fail("expected NAME=tcp:[HOST:]PORT, NAME=udp:[HOST:]PORT or NAME=unix:/PATH".into())
        })?;
        if !valid_name(name) {
            return Err(fail(format!(
                "socket name {name:?}: 1 to 255 letters, digits, '-', '_' or '.'"
            )));
        }
        let mut parts = rest.split(',');
        let addr = parts.next().unwrap_or_default();
        let (address, any_host) = address(addr).map_err(fail)?;
        let mut spec = SocketSpec {
            name: name.to_string(),
            address,
            any_host,
            backlog: DEFAULT_BACKLOG,
            reuseport: false,
            ipv6_only: false,
            mode: DEFAULT_MODE,
            owner: None,
            text: text.to_string(),
        };
        for option in parts {
            spec.option(option).map_err(fail)?;
        }
        Ok(spec)
    }

    fn option(&mut self, option: &str) -> Result<(), String> {
        let unix = matches!(self.address, Address::Unix(_));
        let udp = matches!(self.address, Address::Udp(_));
        let (key, value) = match option.split_once('=') {
            Some((k, v)) => (k, Some(v)),
            None => (option, None),
        };
        match (key, value) {
            ("backlog", Some(v)) if !udp => {
                self.backlog = v
                    .parse()
                    .ok()
                    .filter(|n| (1..=65535).contains(n))
                    .ok_or_else(|| format!("backlog={v}: expected a number from 1 to 65535"))?;
            }
            ("reuseport", None) if !unix => self.reuseport = true,
            ("ipv6-only", None) if !unix => self.ipv6_only = true,
            ("mode", Some(v)) if unix => {
                self.mode = u32::from_str_radix(v, 8)
                    .ok()
                    .filter(|m| *m <= 0o777)
                    .ok_or_else(|| format!("mode={v}: expected octal permissions, e.g. 0660"))?;
            }
            ("owner", Some(v)) if unix && !v.is_empty() => self.owner = Some(v.to_string()),
            _ => {
                let allowed = if unix {
                    "backlog=N, mode=OCTAL, owner=USER[:GROUP]"
                } else if udp {
                    "reuseport, ipv6-only"
                } else {
                    "backlog=N, reuseport, ipv6-only"
                };
                return Err(format!(
                    "unknown option {option:?} here (expected {allowed})"
                ));
            }
        }
        Ok(())
    }

    /// The address family's word, for `status`: `tcp`, `udp` or `unix`.
    pub fn kind(&self) -> &'static str {
        match self.address {
            Address::Tcp(_) => "tcp",
            Address::Udp(_) => "udp",
            Address::Unix(_) => "unix",
        }
    }
}

/// A name systemd accepts in `FileDescriptorName=` and that needs no quoting anywhere.
fn valid_name(name: &str) -> bool {
    (1..=255).contains(&name.len())
        && name
            .bytes()
            .all(|b| b.is_ascii_alphanumeric() || matches!(b, b'-' | b'_' | b'.'))
}

/// `tcp:…`, `udp:…` or `unix:…`; and whether no host was given.
fn address(text: &str) -> Result<(Address, bool), String> {
    if let Some(path) = text.strip_prefix("unix:") {
        let path = PathBuf::from(path);
        if !path.is_absolute() || path.file_name().is_none() {
            return Err(format!(
                "unix socket path {:?}: must be an absolute path to a file",
                path.display()
            ));
        }
        // sockaddr_un's sun_path is 108 bytes with its NUL.
        if path.as_os_str().len() > 107 {
            return Err(format!(
                "unix socket path {:?}: longer than 107 bytes",
                path.display()
            ));
        }
        return Ok((Address::Unix(path), false));
    }
    let (udp, rest) = match (text.strip_prefix("tcp:"), text.strip_prefix("udp:")) {
        (Some(r), _) => (false, r),
        (_, Some(r)) => (true, r),
        _ => {
            return Err(format!(
                "{text:?}: expected tcp:[HOST:]PORT, udp:[HOST:]PORT or unix:/PATH"
            ));
        }
    };
    let (host, port) = match rest.rsplit_once(':') {
        Some((h, p)) => (Some(h), p),
        None => (None, rest),
    };
    let port: u16 = port
        .parse()
        .map_err(|_| format!("port {port:?}: expected a number from 0 to 65535"))?;
    let ip = match host {
        None => IpAddr::V6(Ipv6Addr::UNSPECIFIED),
        Some(h) => {
            let bare = h
                .strip_prefix('[')
                .and_then(|h| h.strip_suffix(']'))
                .unwrap_or(h);
            match bare {
                "localhost" => IpAddr::V4(Ipv4Addr::LOCALHOST),
                _ => bare.parse().map_err(|_| {
                    format!("host {h:?}: expected an IP address (e.g. 127.0.0.1 or [::1])")
                })?,
            }
        }
    };
    let addr = SocketAddr::new(ip, port);
    let address = if udp {
        Address::Udp(addr)
    } else {
        Address::Tcp(addr)
    };
    Ok((address, host.is_none()))
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn tcp_udp_and_unix_with_their_options() {
        let s = SocketSpec::parse("web=tcp:127.0.0.1:8080,backlog=16,reuseport").unwrap();
        assert_eq!(s.address, Address::Tcp("127.0.0.1:8080".parse().unwrap()));
        assert_eq!((s.backlog, s.reuseport, s.any_host), (16, true, false));
        let s = SocketSpec::parse("web=tcp:80").unwrap();
        assert_eq!(s.address, Address::Tcp("[::]:80".parse().unwrap()));
        assert!(s.any_host && !s.ipv6_only);
        let s = SocketSpec::parse("dns=udp:[::1]:53,ipv6-only").unwrap();
        assert_eq!(s.address, Address::Udp("[::1]:53".parse().unwrap()));
        assert!(s.ipv6_only);
        let s = SocketSpec::parse("api=unix:/run/app/api.sock,mode=0660,owner=www:adm").unwrap();
        assert_eq!(s.address, Address::Unix("/run/app/api.sock".into()));
        assert_eq!((s.mode, s.owner.as_deref()), (0o660, Some("www:adm")));
    }

    #[test]
    fn errors_quote_the_flag_and_say_what_is_expected() {
        let e = |t: &str| SocketSpec::parse(t).unwrap_err();
        assert!(e("tcp:80").contains("expected NAME="), "{}", e("tcp:80"));
        assert!(e("a b=tcp:80").contains("socket name"));
        assert!(e("web=tcp:99999").contains("port \"99999\""));
        assert!(e("web=tcp:example.com:80").contains("expected an IP address"));
        assert!(e("web=http:80").contains("expected tcp:"));
        assert!(e("api=unix:run/api.sock").contains("absolute path"));
        assert!(e("api=unix:/run/api.sock,reuseport").contains("unknown option \"reuseport\""));
        assert!(e("web=tcp:80,mode=0600").contains("unknown option"));
        assert!(e("web=tcp:80,backlog=0").contains("backlog=0"));
        assert!(e("dns=udp:53,backlog=5").contains("unknown option"));
        let long = format!("api=unix:/{}", "x".repeat(120));
        assert!(e(&long).contains("longer than 107 bytes"));
        assert!(e("web=tcp:80,bogus").starts_with("\"web=tcp:80,bogus\": "));
    }
}
