//! What a probe checks ([`Probe`]), when it runs ([`Schedule`]), and its syntax:
//! [`Probe::parse`] and its inverse, `Display`. Running one is the supervisor's
//! (`supervisor::probe`).

use std::fmt;
use std::net::{IpAddr, Ipv4Addr, Ipv6Addr, SocketAddr, ToSocketAddrs};
use std::ops::RangeInclusive;
use std::time::Duration;

/// What to check, as given to `--ready` (see [`Probe::parse`] for the syntax).
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Probe {
    /// A TCP connection can be established.
    Tcp(Target),
    /// `GET path` over HTTP/1.1 answers with a status in `expect`.
    Http {
        target: Target,
        /// Starts with `/`; may carry a query (`/health?full=1`); sent as written.
        path: String,
        expect: RangeInclusive<u16>,
    },
    /// `/bin/sh -c command` exits with status 0.
    Exec { command: String },
}

/// Where a network probe connects.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Target {
    /// As written: an IP address (without brackets) or a host name.
    pub host: String,
    pub port: u16,
    /// What `host` resolved to when parsed, in the order they are tried; never empty.
    pub addrs: Vec<SocketAddr>,
}

/// When probes run: an attempt gets `timeout`; the next starts `interval` after the
/// previous one *finished* (Docker's rule), so attempts never overlap and a slow service
/// is not probed harder than a fast one. The supervisor's state machine applies the rule
/// (`Event::ProbeFailed` arms the probe timer).
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Schedule {
    pub interval: Duration,
    pub timeout: Duration,
}

impl fmt::Display for Target {
    /// `HOST:PORT`, an IPv6 address in brackets.
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        if self.host.contains(':') {
            write!(f, "[{}]:{}", self.host, self.port)
        } else {
            write!(f, "{}:{}", self.host, self.port)
        }
    }
}

/// The accepted forms, for error messages.
const FORMS: &str = "tcp:PORT, tcp:HOST:PORT, tcp:[IPV6]:PORT, \
http://HOST[:PORT][/PATH][#CODE or #LOW-HIGH], exec:COMMAND";

/// The status codes an HTTP probe accepts unless told otherwise: success and redirects.
pub const DEFAULT_EXPECT: RangeInclusive<u16> = 200..=399;

impl Probe {
    /// Parses a probe:
    ///
    /// | form | checks |
    /// |---|---|
    /// | `tcp:PORT` | a TCP connect to `127.0.0.1:PORT` |
    /// | `tcp:HOST:PORT`, `tcp:[IPV6]:PORT` | a TCP connect (every address of `HOST`, in turn) |
    /// | `http://HOST[:PORT][/PATH][#CODES]` | `GET /PATH` answers with a status in `CODES`: `#200` or `#200-299`; default `#200-399`; port 80 by default |
    /// | `exec:COMMAND` | `/bin/sh -c COMMAND` exits 0 |
    ///
    /// `HOST` is an IPv4 address, an IPv6 address in brackets, `localhost` (`127.0.0.1`,
    /// then `::1`), or a name, resolved here and only here (a blocking `getaddrinfo`; see
    /// the module docs). The `#` part of an HTTP probe is never sent (a URL fragment).
    /// Errors name the value, what is wrong and the accepted forms.
    pub fn parse(text: &str) -> Result<Probe, String> {
        parse(text).map_err(|why| format!("invalid probe {text:?}: {why} (expected {FORMS})"))
    }
}

fn parse(text: &str) -> Result<Probe, String> {
    if let Some(rest) = text.strip_prefix("tcp:") {
        let (host, port) = if rest.is_empty() {
            return Err("missing port".into());
        } else if rest.bytes().all(|b| b.is_ascii_digit()) {
            (Ipv4Addr::LOCALHOST.to_string(), port(rest)?)
        } else {
            host_port(rest, None)?
        };
        Ok(Probe::Tcp(target(host, port)?))
    } else if let Some(rest) = text.strip_prefix("http://") {
        let (url, expect) = match rest.split_once('#') {
            Some((url, codes)) => (url, expect(codes)?),
            None => (rest, DEFAULT_EXPECT),
        };
        let split = url.find(['/', '?']).unwrap_or(url.len());
        let (authority, path) = url.split_at(split);
        if authority.contains('@') {
            return Err("user information (USER@) is not supported".into());
        }
        let path = match path {
            "" => "/".to_string(),
            p if p.starts_with('?') => format!("/{p}"),
            p => p.to_string(),
        };
        if path
            .bytes()
            .any(|b| b.is_ascii_whitespace() || b.is_ascii_control())
        {
            return Err("the path has spaces or control characters (percent-encode them)".into());
        }
        let (host, port) = host_port(authority, Some(80))?;
        Ok(Probe::Http {
            target: target(host, port)?,
            path,
            expect,
        })
    } else if let Some(rest) = text.strip_prefix("exec:") {
        let command = rest.trim();
        if command.is_empty() {
            return Err("no command after exec:".into());
        }
        Ok(Probe::Exec {
            command: command.to_string(),
        })
    } else if text.starts_with("https://") {
        Err("https is not supported (use e.g. exec:curl -fsS https://…)".into())
    } else {
        Err("unknown kind of probe".into())
    }
}

/// `HOST:PORT`, `[IPV6]:PORT`, or without `:PORT` when there is a default.
fn host_port(text: &str, default_port: Option<u16>) -> Result<(String, u16), String> {
    let (host, port_text) = if let Some(rest) = text.strip_prefix('[') {
        let (v6, after) = rest
            .split_once(']')
            .ok_or_else(|| format!("no ] after [{rest}"))?;
        v6.parse::<Ipv6Addr>()
            .map_err(|_| format!("invalid IPv6 address {v6:?}"))?;
        match after {
            "" => (v6, None),
            _ => match after.strip_prefix(':') {
                Some(p) => (v6, Some(p)),
                None => return Err(format!("unexpected {after:?} after [{v6}]")),
            },
        }
    } else if text.matches(':').count() > 1 {
        return Err("an IPv6 address goes in brackets, e.g. [::1]:8080".into());
    } else {
        match text.split_once(':') {
            Some((h, p)) => (h, Some(p)),
            None => (text, None),
        }
    };
    if host.is_empty() {
        return Err("missing host".into());
    }
    let valid_name = |h: &str| {
        h.bytes()
            .all(|b| b.is_ascii_alphanumeric() || b == b'-' || b == b'.' || b == b'_')
    };
    if !host.contains(':') && !valid_name(host) {
        return Err(format!("invalid host {host:?}"));
    }
    let port = match (port_text, default_port) {
        (Some(p), _) => port(p)?,
        (None, Some(p)) => p,
        (None, None) => return Err("missing port".into()),
    };
    Ok((host.to_string(), port))
}

fn port(text: &str) -> Result<u16, String> {
    if text.is_empty() {
        return Err("missing port".into());
    }
    match text.parse::<u16>() {
        Ok(p) if p > 0 => Ok(p),
        _ => Err(format!("invalid port {text:?} (expected 1-65535)")),
    }
}

/// `200` or `200-399`, each a status code (100-599), low to high.
fn expect(text: &str) -> Result<RangeInclusive<u16>, String> {
    let bad = || format!("invalid expected status {text:?} (e.g. #200 or #200-399)");
    let code = |t: &str| match t.parse::<u16>() {
        Ok(c) if (100..=599).contains(&c) => Ok(c),
        _ => Err(bad()),
    };
    let (low, high) = match text.split_once('-') {
        Some((l, h)) => (code(l)?, code(h)?),
        None => (code(text)?, code(text)?),
    };
    if low > high {
        return Err(bad());
    }
    Ok(low..=high)
}

/// Resolves `host` now: numbers and `localhost` without a resolver, names with one.
fn target(host: String, port: u16) -> Result<Target, String> {
    let addrs = if let Ok(ip) = host.parse::<IpAddr>() {
        vec![SocketAddr::new(ip, port)]
    } else if host.eq_ignore_ascii_case("localhost") {
        vec![
            SocketAddr::new(Ipv4Addr::LOCALHOST.into(), port),
            SocketAddr::new(Ipv6Addr::LOCALHOST.into(), port),
        ]
    } else {
        let mut addrs: Vec<SocketAddr> = Vec::new();
        let found = (host.as_str(), port)
            .to_socket_addrs()
            .map_err(|e| format!("resolve {host}: {e}"))?;
        for a in found {
            if !addrs.contains(&a) {
                addrs.push(a);
            }
        }
        if addrs.is_empty() {
            return Err(format!("resolve {host}: no address"));
        }
        addrs
    };
    Ok(Target { host, port, addrs })
}

impl fmt::Display for Probe {
    /// The probe as it would be written (`tcp:PORT` as `tcp:127.0.0.1:PORT`; the
    /// default expected range of an HTTP probe left out).
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match self {
            Probe::Tcp(target) => write!(f, "tcp:{target}"),
            Probe::Http {
                target,
                path,
                expect,
            } => {
                write!(f, "http://{target}{path}")?;
                match (expect.start(), expect.end()) {
                    _ if *expect == DEFAULT_EXPECT => Ok(()),
                    (l, h) if l == h => write!(f, "#{l}"),
                    (l, h) => write!(f, "#{l}-{h}"),
                }
            }
            Probe::Exec { command } => write!(f, "exec:{command}"),
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn tcp(text: &str) -> Target {
        match Probe::parse(text) {
            Ok(Probe::Tcp(t)) => t,
            other => panic!("{text}: {other:?}"),
        }
    }

    fn err(text: &str) -> String {
        let e = Probe::parse(text).unwrap_err();
        assert!(e.contains(&format!("{text:?}")), "{e}");
        assert!(
            e.contains("tcp:HOST:PORT") && e.contains("exec:COMMAND"),
            "{e}"
        );
        e
    }

    #[test]
    fn tcp_forms() {
        let t = tcp("tcp:8080");
        assert_eq!((t.host.as_str(), t.port), ("127.0.0.1", 8080));
        assert_eq!(t.addrs, ["127.0.0.1:8080".parse().unwrap()]);
        assert_eq!(
            tcp("tcp:10.0.0.5:5432").addrs,
            ["10.0.0.5:5432".parse().unwrap()]
        );
        let t = tcp("tcp:[::1]:9000");
        assert_eq!(t.host, "::1");
        assert_eq!(t.addrs, ["[::1]:9000".parse().unwrap()]);
        assert_eq!(
            tcp("tcp:localhost:80").addrs,
            [
                "127.0.0.1:80".parse::<SocketAddr>().unwrap(),
                "[::1]:80".parse().unwrap()
            ]
        );
    }

    #[test]
    fn http_forms() {
        let p = Probe::parse("http://127.0.0.1:8080/health?full=1").unwrap();
        let Probe::Http {
            target,
            path,
            expect,
        } = &p
        else {
            panic!("{p:?}")
        };
        assert_eq!((target.host.as_str(), target.port), ("127.0.0.1", 8080));
        assert_eq!(path, "/health?full=1");
        assert_eq!(*expect, 200..=399);

        let p = Probe::parse("http://localhost").unwrap();
        assert_eq!(p.to_string(), "http://localhost:80/");
        let p = Probe::parse("http://[::1]:81?x#204").unwrap();
        assert_eq!(p.to_string(), "http://[::1]:81/?x#204");
        let Probe::Http { expect, .. } = Probe::parse("http://127.0.0.1:1/#200-299").unwrap()
        else {
            panic!()
        };
        assert_eq!(expect, 200..=299);
    }

    #[test]
    fn exec_form() {
        assert_eq!(
            Probe::parse("exec: pg_isready -q ").unwrap(),
            Probe::Exec {
                command: "pg_isready -q".into()
            }
        );
    }

    #[test]
    fn display_round_trips() {
        for text in [
            "tcp:127.0.0.1:8080",
            "tcp:[::1]:8080",
            "tcp:localhost:1",
            "http://127.0.0.1:8080/health",
            "http://127.0.0.1:8080/#503",
            "http://127.0.0.1:8080/x#200-204",
            "exec:test -e /tmp/ready",
        ] {
            assert_eq!(Probe::parse(text).unwrap().to_string(), text);
        }
        assert_eq!(
            Probe::parse("tcp:8080").unwrap().to_string(),
            "tcp:127.0.0.1:8080"
        );
    }

    #[test]
    fn errors_say_what_is_wrong() {
        assert!(err("tcp:").contains("missing port"));
        assert!(err("tcp:99999").contains("invalid port \"99999\" (expected 1-65535)"));
        assert!(err("tcp:0").contains("invalid port \"0\""));
        assert!(err("tcp:host").contains("missing port"));
        assert!(err("tcp::80").contains("missing host"));
        assert!(err("tcp:::1:80").contains("in brackets"));
        assert!(err("tcp:[::1").contains("no ]"));
        assert!(err("tcp:[nope]:80").contains("invalid IPv6 address"));
        assert!(err("tcp:[::1]80").contains("unexpected"));
        assert!(err("tcp:a b:80").contains("invalid host"));
        assert!(err("http://x:port").contains("invalid port \"port\""));
        assert!(err("http://").contains("missing host"));
        assert!(err("http://u@h:80/").contains("user information"));
        assert!(err("http://h:80/a b").contains("percent-encode"));
        assert!(err("http://h:80/#600").contains("invalid expected status"));
        assert!(err("http://h:80/#399-200").contains("invalid expected status"));
        assert!(err("exec:").contains("no command"));
        assert!(err("exec:   ").contains("no command"));
        assert!(err("https://h/").contains("https is not supported"));
        assert!(err("ftp://h/").contains("unknown kind of probe"));
        assert!(err("8080").contains("unknown kind of probe"));
    }
}
