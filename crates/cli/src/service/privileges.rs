//! The privilege options of a service: who the child runs as, and what it keeps.
//!
//! They become a [`daemonic::privileges::Privileges`], looked up once when the service is
//! built (so `unknown user "nobdoy"` reaches the terminal) and applied in every child
//! between fork and exec by [`daemonic::process::spawn_as`]. The supervisor itself stays
//! root: it must signal and reap the child, bind its sockets and write its logs (owned by
//! root, mode 0640, so the service cannot rewrite its own history).

use std::path::PathBuf;

use anyhow::{Context, Result};
use daemonic::privileges::{Capability, Prepared, Privileges};

use super::options::Systemd::Said;
use super::options::{Blank, Opt, push, put, switch};

/// Who the child runs as, and which privileges it keeps.
#[derive(Debug, Clone, Default)]
pub struct PrivilegeArgs {
    pub user: Option<String>,
    pub group: Option<String>,
    /// `Some(empty)`: none (`--supplementary-groups ""`); `None`: the user's.
    pub supplementary_groups: Option<Vec<String>>,
    pub keep_caps: Vec<Capability>,
    pub no_new_privs: bool,
    pub chroot: Option<PathBuf>,
    pub umask: Option<u32>,
}

impl Blank for PrivilegeArgs {
    fn blank() -> PrivilegeArgs {
        PrivilegeArgs::default()
    }
}

/// The table's entries of the privileges.
pub(super) fn options() -> Vec<Opt<PrivilegeArgs>> {
    type O = Opt<PrivilegeArgs>;
    vec![
        O::one("user", "USER", |a, v| {
            put(&mut a.user, Ok(Some(v.to_string())))
        })
        .systemd(Said("User="))
        .heading("Privileges")
        .help(
            "Run CMD as USER (a name or a numeric uid), with the user's primary group \
                 and its supplementary groups from the group database (never root's), and \
                 HOME, USER, LOGNAME and SHELL set to the user's. daemonic checks that the \
                 child cannot become root again before running it. Needs root",
        ),
        O::one("group", "GROUP", |a, v| {
            put(&mut a.group, Ok(Some(v.to_string())))
        })
        .systemd(Said("Group="))
        .heading("Privileges")
        .help(
            "Run CMD with GROUP (a name or a numeric gid) instead of the user's primary \
                 group",
        ),
        O::many("supplementary-groups", "GROUPS", |a, v| {
            push(
                a.supplementary_groups.get_or_insert_default(),
                Ok(v.to_string()),
            )
        })
        .systemd(Said("SupplementaryGroups="))
        .delimiter(',')
        .heading("Privileges")
        .help(
            "Exactly these supplementary groups (names or gids, comma-separated; \"\" \
                 for none) instead of the user's",
        ),
        O::many("keep-caps", "CAPS", |a, v| {
            push(&mut a.keep_caps, parse_capability(v))
        })
        .systemd(Said("AmbientCapabilities="))
        .delimiter(',')
        .heading("Privileges")
        .help(
            "Keep these capabilities as --user (comma-separated, e.g. net_bind_service \
                 or CAP_NET_BIND_SERVICE to bind ports below 1024): they stay effective \
                 across exec as ambient capabilities, no `setcap` on the binary needed. \
                 Every other capability is dropped, from the bounding set too. cap_setuid \
                 and cap_setgid are refused",
        ),
        O::switch("no-new-privs", |a, v| put(&mut a.no_new_privs, switch(v)))
            .systemd(Said("NoNewPrivileges="))
            .heading("Privileges")
            .help(
                "Set no_new_privs on the child: nothing it runs can gain privileges \
                 (set-user-ID bits and file capabilities are ignored)",
            ),
        O::one("chroot", "DIR", |a, v| {
            put(&mut a.chroot, Ok(Some(PathBuf::from(v))))
        })
        .systemd(Said("RootDirectory="))
        .heading("Privileges")
        .help(
            "Change the child's root directory to DIR (before switching user); --dir is \
                 then a path inside DIR [default: /], and CMD is found inside DIR",
        ),
        O::one("umask", "MODE", |a, v| {
            put(&mut a.umask, parse_umask(v).map(Some))
        })
        .systemd(Said("UMask="))
        .heading("Privileges")
        .help("The child's umask, in octal (e.g. 027) [default: the supervisor's]"),
    ]
}

impl PrivilegeArgs {
    /// The switch for the child, looked up now, and the child's working directory as the
    /// supervisor sees it (`dir` is inside the chroot, if there is one).
    pub fn resolve(&self, dir: Option<PathBuf>) -> Result<(PathBuf, Option<Prepared>)> {
        let mut p = Privileges::new();
        if let Some(u) = &self.user {
            p = p.user(u);
        }
        if let Some(g) = &self.group {
            p = p.group(g);
        }
        if let Some(list) = &self.supplementary_groups {
            p = p.supplementary_groups(list.iter().filter(|g| !g.is_empty()).cloned());
        }
        for cap in &self.keep_caps {
            p = p.keep_capability(*cap);
        }
        p = p.no_new_privs(self.no_new_privs);
        if let Some(mask) = self.umask {
            p = p.umask(mask);
        }
        let dir = match (&self.chroot, dir) {
            (Some(root), inside) => {
                let inside = inside.unwrap_or_else(|| PathBuf::from("/"));
                p = p.chroot(root).working_dir(&inside);
                root.join(inside.strip_prefix("/").unwrap_or(&inside))
            }
            (None, Some(d)) => d,
            (None, None) => std::env::current_dir().context("current directory")?,
        };
        if p.is_empty() {
            return Ok((dir, None));
        }
        let prepared = p.prepare()?;
        Ok((dir, Some(prepared)))
    }
}

/// `net_bind_service`, `CAP_NET_BIND_SERVICE` or a capability number.
fn parse_capability(text: &str) -> Result<Capability, String> {
    Capability::parse(text).map_err(|e| e.to_string())
}

/// An octal umask: `027`, `0027`, `0o027`.
fn parse_umask(text: &str) -> Result<u32, String> {
    let t = text.trim();
    let digits = t.strip_prefix("0o").unwrap_or(t);
    match u32::from_str_radix(digits, 8) {
        Ok(m) if m <= 0o777 => Ok(m),
        _ => Err(format!(
            "invalid umask {text:?} (expected octal, at most 0777, e.g. 027)"
        )),
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use std::path::Path;

    #[test]
    fn umask_is_octal_and_bounded() {
        assert_eq!(parse_umask("027"), Ok(0o027));
        assert_eq!(parse_umask("0o077"), Ok(0o077));
        assert!(parse_umask("8").unwrap_err().contains("\"8\""));
        assert!(parse_umask("1777").is_err());
    }

    #[test]
    fn capabilities_in_either_spelling() {
        assert_eq!(
            parse_capability("net_bind_service"),
            Ok(Capability::NET_BIND_SERVICE)
        );
        assert_eq!(
            parse_capability("CAP_NET_BIND_SERVICE"),
            Ok(Capability::NET_BIND_SERVICE)
        );
        assert!(
            parse_capability("bind")
                .unwrap_err()
                .contains("unknown capability")
        );
    }

    #[test]
    fn with_a_chroot_the_dir_is_inside_it() {
        let a = PrivilegeArgs {
            chroot: Some("/srv/jail".into()),
            ..Default::default()
        };
        // Preparing a chroot needs no lookups; applying it would need root.
        let (dir, p) = a.resolve(Some("/app".into())).unwrap();
        assert_eq!(dir, Path::new("/srv/jail/app"));
        assert!(p.is_some());
        let (dir, _) = a.resolve(None).unwrap();
        assert_eq!(dir, Path::new("/srv/jail/"));
    }
}
