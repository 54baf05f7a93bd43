//! The options that shape a generated systemd unit (`unit-*` keys in `daemonic.toml`).
//!
//! They are part of [`ServiceArgs`](super::ServiceArgs), so every one is also a flag
//! and a config key with the same name and checks (`unit-hardening = "relaxed"`), but
//! they only matter to `daemonic unit` and `daemonic install`: `run`, `start` and `up`
//! ignore them. What each level turns on is in `units::systemd` and `docs/systemd.md`.

use std::path::PathBuf;

use clap::ValueEnum;

use super::options::Systemd::Unit;
use super::options::{Blank, Opt, choice, push, put, switch};

const HEADING: &str = "systemd unit";

/// How much sandboxing a generated unit asks systemd for.
#[derive(Debug, Clone, Copy, PartialEq, Eq, ValueEnum)]
pub enum Hardening {
    /// Everything a typical network service can live with: a dynamic user unless
    /// --user is given, a read-only system, no home, private /tmp and /dev, no
    /// capabilities, a system-call filter without privileged and resource calls, only
    /// unix and IP sockets, … (exposure 1.1; 1.3 with ready = "notify"). JIT runtimes
    /// still work.
    Strict,
    /// What rarely breaks a program: no new privileges, /usr /boot /etc read-only, home
    /// read-only, private /tmp, kernel and cgroup settings protected; runs as root
    /// unless --user is given; no system-call, address-family or memory restrictions.
    Relaxed,
    /// No sandboxing at all (only what other flags ask for, e.g. --no-new-privs).
    Off,
}

/// `ProtectSystem=`: which parts of the file system the service sees read-only.
#[derive(Debug, Clone, Copy, PartialEq, Eq, ValueEnum)]
pub enum ProtectSystem {
    /// Everything but /dev, /proc, /sys and the unit's own directories.
    Strict,
    /// /usr, /boot, /efi and /etc.
    Full,
    /// /usr, /boot and /efi.
    Yes,
    /// Nothing.
    No,
}

/// `ProtectHome=`: what the service sees of /home, /root and /run/user.
#[derive(Debug, Clone, Copy, PartialEq, Eq, ValueEnum)]
pub enum ProtectHome {
    /// Nothing: they appear empty and inaccessible.
    Yes,
    /// Everything, read-only.
    ReadOnly,
    /// Empty writable directories in place of them.
    Tmpfs,
    /// Everything, as is.
    No,
}

/// How a generated systemd unit sandboxes the service (`daemonic unit`, `install`).
#[derive(Debug, Clone)]
pub struct UnitArgs {
    pub unit_hardening: Hardening,
    pub unit_protect_system: Option<ProtectSystem>,
    pub unit_protect_home: Option<ProtectHome>,
    pub unit_address_families: Option<Families>,
    pub unit_writable: Vec<PathBuf>,
    pub unit_deny_write_execute: bool,
    pub unit_state_directory: Vec<String>,
    pub unit_runtime_directory: Vec<String>,
    pub unit_logs_directory: Vec<String>,
    pub unit_limit_nofile: Option<String>,
    pub unit_set: Vec<Directive>,
}

impl Blank for UnitArgs {
    fn blank() -> UnitArgs {
        UnitArgs {
            unit_hardening: Hardening::Strict,
            unit_protect_system: None,
            unit_protect_home: None,
            unit_address_families: None,
            unit_writable: Vec::new(),
            unit_deny_write_execute: false,
            unit_state_directory: Vec::new(),
            unit_runtime_directory: Vec::new(),
            unit_logs_directory: Vec::new(),
            unit_limit_nofile: None,
            unit_set: Vec::new(),
        }
    }
}

/// The table's entries of the unit options.
pub(super) fn options() -> Vec<Opt<UnitArgs>> {
    type O = Opt<UnitArgs>;
    vec![
        O::one("unit-hardening", "LEVEL", |a, v| {
            put(&mut a.unit_hardening, choice(v))
        })
        .systemd(Unit)
        .default("strict")
        .values::<Hardening>()
        .heading(HEADING)
        .help(
            "How much sandboxing the systemd unit asks for: strict, relaxed or off. \
                 Only for `daemonic unit`/`install`; the other unit-* flags adjust one \
                 setting of it",
        ),
        O::one("unit-protect-system", "HOW", |a, v| {
            put(&mut a.unit_protect_system, choice(v).map(Some))
        })
        .systemd(Unit)
        .values::<ProtectSystem>()
        .heading(HEADING)
        .help(
            "The unit's ProtectSystem= (strict, full, yes, no) [default: strict with \
                 strict hardening, full with relaxed]",
        ),
        O::one("unit-protect-home", "HOW", |a, v| {
            put(&mut a.unit_protect_home, choice(v).map(Some))
        })
        .systemd(Unit)
        .values::<ProtectHome>()
        .heading(HEADING)
        .help(
            "The unit's ProtectHome= (yes, read-only, tmpfs, no) [default: yes with \
                 strict hardening (tmpfs when the service needs a path in a home, which is \
                 bound in), read-only with relaxed]",
        ),
        O::one("unit-address-families", "FAMILIES", |a, v| {
            put(&mut a.unit_address_families, parse_families(v).map(Some))
        })
        .systemd(Unit)
        .heading(HEADING)
        .help(
            "The socket families the service may create, for RestrictAddressFamilies= \
                 (space- or comma-separated, e.g. \"AF_UNIX AF_INET AF_INET6 AF_NETLINK\"; \
                 \"none\"; \"any\" lifts the restriction) [default: AF_UNIX AF_INET \
                 AF_INET6 with strict hardening]",
        ),
        O::many("unit-writable", "DIR", |a, v| {
            push(&mut a.unit_writable, Ok(PathBuf::from(v)))
        })
        .systemd(Unit)
        .heading(HEADING)
        .help(
            "A directory the service may write to despite ProtectSystem= \
                 (ReadWritePaths=, or BindPaths= under /tmp or a home; repeatable). Its own \
                 state directory (/var/lib/NAME, $STATE_DIRECTORY) always is",
        ),
        O::switch("unit-deny-write-execute", |a, v| {
            put(&mut a.unit_deny_write_execute, switch(v))
        })
        .systemd(Unit)
        .heading(HEADING)
        .help(
            "Forbid memory that is writable and executable \
                 (MemoryDenyWriteExecute=yes): breaks every JIT — PostgreSQL's, node, java, \
                 .NET, PyPy, LuaJIT — so not part of any level",
        ),
        O::many("unit-state-directory", "NAME", |a, v| {
            push(&mut a.unit_state_directory, parse_subdir(v))
        })
        .systemd(Unit)
        .heading(HEADING)
        .help(
            "A directory below /var/lib the service owns and writes, for \
                 StateDirectory= (repeatable; e.g. \"redis-data\" is /var/lib/redis-data, \
                 $STATE_DIRECTORY) [default: the service's name, with \
                 ProtectSystem=strict]",
        ),
        O::many("unit-runtime-directory", "NAME", |a, v| {
            push(&mut a.unit_runtime_directory, parse_subdir(v))
        })
        .systemd(Unit)
        .heading(HEADING)
        .help(
            "A directory below /run the service owns while it runs, for \
                 RuntimeDirectory= (repeatable; lock and socket files, e.g. PostgreSQL's \
                 \"postgresql\")",
        ),
        O::many("unit-logs-directory", "NAME", |a, v| {
            push(&mut a.unit_logs_directory, parse_subdir(v))
        })
        .systemd(Unit)
        .heading(HEADING)
        .help(
            "A directory below /var/log the service owns, for LogsDirectory= \
                 (repeatable; the log files' own directories below /var/log are added by \
                 themselves)",
        ),
        O::one("unit-limit-nofile", "N", |a, v| {
            put(&mut a.unit_limit_nofile, parse_nofile(v).map(Some))
        })
        .systemd(Unit)
        .heading(HEADING)
        .help(
            "The open-file limit of the service, for LimitNOFILE= (N, or SOFT:HARD, or \
                 \"infinity\") [default: systemd's, 1024:524288]",
        ),
        O::many("unit-set", "KEY=VALUE", |a, v| {
            push(&mut a.unit_set, parse_directive(v))
        })
        .systemd(Unit)
        .heading(HEADING)
        .help(
            "Any directive, over the generated ones: [SECTION.]KEY=VALUE (section Unit, \
                 Service or Install; default Service), e.g. MemoryDenyWriteExecute=no, \
                 Unit.Documentation=https://…; KEY= (empty) removes the directive \
                 (repeatable)",
        ),
    ]
}

/// The value of `--unit-address-families`.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Families {
    /// No restriction (no `RestrictAddressFamilies=` line).
    Any,
    /// `RestrictAddressFamilies=none`: no sockets at all.
    None,
    /// These families only.
    Only(Vec<String>),
}

/// One `--unit-set` directive.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Directive {
    pub section: Section,
    pub key: String,
    /// Empty: remove the generated directive of that key.
    pub value: String,
}

/// A section of a service unit file.
#[derive(Debug, Clone, Copy, PartialEq, Eq, PartialOrd, Ord)]
pub enum Section {
    Unit,
    Service,
    Install,
}

impl Section {
    pub fn name(self) -> &'static str {
        match self {
            Section::Unit => "Unit",
            Section::Service => "Service",
            Section::Install => "Install",
        }
    }
}

fn parse_families(text: &str) -> Result<Families, String> {
    let words: Vec<&str> = text
        .split(|c: char| c == ',' || c.is_whitespace())
        .filter(|w| !w.is_empty())
        .collect();
    match words.as_slice() {
        ["any"] => return Ok(Families::Any),
        ["none"] => return Ok(Families::None),
        [] => {
            return Err(
                "no address family given (expected e.g. AF_UNIX AF_INET, none or any)".into(),
            );
        }
        _ => {}
    }
    for w in &words {
        let name = w.strip_prefix("AF_").unwrap_or("");
        if name.is_empty()
            || !name
                .chars()
                .all(|c| c.is_ascii_uppercase() || c.is_ascii_digit())
        {
            return Err(format!(
                "invalid address family {w:?} (expected e.g. AF_UNIX, AF_INET, AF_INET6, AF_NETLINK; or none, any)"
            ));
        }
    }
    Ok(Families::Only(
        words.iter().map(|w| w.to_string()).collect(),
    ))
}

/// A relative directory name for `StateDirectory=` and its kin: no `..`, no leading `/`.
fn parse_subdir(text: &str) -> Result<String, String> {
    let good = !text.is_empty()
        && !text.starts_with('/')
        && text
            .split('/')
            .all(|part| !part.is_empty() && part != "." && part != "..")
        && text
            .chars()
            .all(|c| c.is_ascii_alphanumeric() || matches!(c, '-' | '_' | '.' | '/'));
    if good {
        Ok(text.to_string())
    } else {
        Err(format!(
            "invalid directory {text:?} (expected a relative name such as \"redis-data\" or \"app/cache\": letters, digits, - _ . /, no \"..\")"
        ))
    }
}

/// `LimitNOFILE=`'s value: `N`, `SOFT:HARD` or `infinity`.
fn parse_nofile(text: &str) -> Result<String, String> {
    let one = |v: &str| v == "infinity" || (!v.is_empty() && v.parse::<u64>().is_ok());
    let good = match text.split_once(':') {
        Some((soft, hard)) => one(soft) && one(hard),
        None => one(text),
    };
    if good {
        Ok(text.to_string())
    } else {
        Err(format!(
            "invalid open-file limit {text:?} (expected N, SOFT:HARD or infinity, e.g. 65536)"
        ))
    }
}

fn parse_directive(text: &str) -> Result<Directive, String> {
    let (key, value) = text
        .split_once('=')
        .ok_or_else(|| format!("invalid directive {text:?} (expected [SECTION.]KEY=VALUE)"))?;
    let (section, key) = match key.split_once('.') {
        Some(("Unit", k)) => (Section::Unit, k),
        Some(("Service", k)) => (Section::Service, k),
        Some(("Install", k)) => (Section::Install, k),
        Some((s, _)) => {
            return Err(format!(
                "invalid section {s:?} in {text:?} (expected Unit, Service or Install)"
            ));
        }
        None => (Section::Service, key),
    };
    let good_key = key.chars().next().is_some_and(|c| c.is_ascii_uppercase())
        && key.chars().all(|c| c.is_ascii_alphanumeric());
    if !good_key {
        return Err(format!(
            "invalid directive name {key:?} in {text:?} (expected e.g. MemoryDenyWriteExecute)"
        ));
    }
    if value.contains('\n') {
        return Err(format!(
            "invalid directive {text:?}: the value has a line break"
        ));
    }
    Ok(Directive {
        section,
        key: key.to_string(),
        value: value.to_string(),
    })
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn families_in_either_separator_or_the_two_words() {
        assert_eq!(
            parse_families("AF_UNIX, AF_INET6"),
            Ok(Families::Only(vec!["AF_UNIX".into(), "AF_INET6".into()]))
        );
        assert_eq!(parse_families("any"), Ok(Families::Any));
        assert_eq!(parse_families(" none "), Ok(Families::None));
        assert!(parse_families("inet").unwrap_err().contains("\"inet\""));
        assert!(parse_families("").is_err());
    }

    #[test]
    fn directives_default_to_the_service_section() {
        let d = parse_directive("MemoryDenyWriteExecute=no").unwrap();
        assert_eq!(
            (d.section, d.key.as_str(), d.value.as_str()),
            (Section::Service, "MemoryDenyWriteExecute", "no")
        );
        let d = parse_directive("Unit.Documentation=https://x/a=b").unwrap();
        assert_eq!(
            (d.section, d.value.as_str()),
            (Section::Unit, "https://x/a=b")
        );
        assert_eq!(parse_directive("PrivateTmp=").unwrap().value, "");
        assert!(
            parse_directive("Socket.X=1")
                .unwrap_err()
                .contains("Socket")
        );
        assert!(parse_directive("private-tmp=no").is_err());
        assert!(parse_directive("PrivateTmp").is_err());
    }

    #[test]
    fn directories_are_relative_names_and_limits_numbers() {
        assert_eq!(parse_subdir("app/cache"), Ok("app/cache".into()));
        for bad in ["", "/var/lib/x", "../etc", "a//b", "a b", "x/.."] {
            assert!(parse_subdir(bad).is_err(), "{bad:?}");
        }
        assert!(parse_nofile("65536").is_ok());
        assert!(parse_nofile("1024:infinity").is_ok());
        assert!(parse_nofile("lots").unwrap_err().contains("\"lots\""));
        assert!(parse_nofile("1:").is_err());
    }
}
