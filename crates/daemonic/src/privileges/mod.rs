//! Least privilege: run as a user and group, keep only the capabilities you need.
//!
//! A daemon started by root should not stay root. Dropping privileges looks like one call
//! (`setuid`) and is not: done in the wrong order, or only half, the process keeps a way
//! back. Peers get it wrong in the same few ways — the `daemonize` crate keeps root's
//! *supplementary groups* (so the "unprivileged" daemon can still read every file of group
//! `root`, `disk` or `shadow`), and some supervisors change only the uid. This module does
//! every step, in the one order that works, and then checks that root cannot be regained.
//!
//! ## Two phases: prepare, then apply
//!
//! [`Privileges`] describes what you want: a user and group by name or number, the
//! supplementary groups, capabilities to keep, `no_new_privs`, a chroot, a umask.
//! [`Privileges::prepare`] does every *lookup* — `getpwnam_r`, `getgrnam_r`,
//! `getgrouplist`, reading `/proc/sys/kernel/cap_last_cap` — and returns a [`Prepared`]
//! holding only numbers and C strings. Lookups read files, allocate and may take locks, so
//! they happen first, while errors still reach the user's terminal (`unknown user
//! "nobdoy"`), and *never* between `fork` and `exec`.
//!
//! [`Prepared::apply`] then performs the switch in this process, and
//! [`process::spawn_as`](crate::process::spawn_as) performs it in a child between `fork`
//! and `exec`, where only async-signal-safe calls are allowed: the apply step allocates
//! nothing and calls nothing but system calls.
//!
//! ## The order, and why
//!
//! 1. `chroot(dir)`, then `chdir` to the working directory inside it (default `/`):
//!    `chroot` needs `CAP_SYS_CHROOT`, so it comes while still root; a chroot without the
//!    `chdir` would leave the old root reachable through `.`.
//! 2. Drop every capability not kept from the **bounding set** (needs `CAP_SETPCAP`,
//!    so still as root): no program run later, not even a set-user-ID-root one, can gain
//!    them back.
//! 3. `setgroups`: the supplementary groups — by default the user's own list from the group
//!    database (`getgrouplist`, as `initgroups(3)` does), never root's. Only root may call
//!    it, so it precedes the uid change.
//! 4. `setresgid(gid, gid, gid)`: real, effective *and saved* gid, so the old gid cannot be
//!    switched back to. Needs `CAP_SETGID`, so it precedes the uid change.
//! 5. `prctl(PR_SET_KEEPCAPS, 1)`, only when capabilities are kept: otherwise the next
//!    step clears the permitted set.
//! 6. `setresuid(uid, uid, uid)`: the point of no return.
//! 7. When capabilities are kept: `capset` with exactly the kept ones as effective,
//!    permitted and inheritable (everything else is gone from the permitted set for
//!    good), then `PR_CAP_AMBIENT_RAISE` for each, so they survive `execve` of an ordinary
//!    program — the modern answer to `setcap cap_net_bind_service+ep` on a binary. Then
//!    `PR_SET_KEEPCAPS` is cleared again.
//! 8. `prctl(PR_SET_NO_NEW_PRIVS, 1)` if asked: `execve` can no longer grant anything
//!    (set-user-ID bits and file capabilities are ignored). It also allows unprivileged
//!    seccomp filters.
//! 9. `umask`, if given.
//! 10. **Verify**: after switching to a non-root uid, `setuid(0)` must fail, and so must
//!     `setgid(0)` if the gid is not 0; the real, effective and saved ids must be the new
//!     ones. If any check fails, the switch is reported as failed
//!     ([`ErrorKind::RootRegainable`]) and the program is not run.
//!
//! Capabilities, like the ids at the system-call level, belong to a *thread*. That is why
//! [`Prepared::apply`] refuses ([`ErrorKind::Threaded`]) in a process that already runs
//! several threads: the others would keep root. Call it before starting threads, or let
//! [`Daemon::privileges`](crate::Daemon::privileges) call it at the right moment.
//!
//! ## The environment
//!
//! A process that switched users should not look in root's home: [`Prepared::env`] gives
//! `HOME`, `USER`, `LOGNAME` and `SHELL` of the user (when it has an entry in the user
//! database), and [`process::spawn_as`](crate::process::spawn_as) sets them on the child.
//!
//! ## Example
//!
//! ```no_run
//! use daemonic::privileges::{Capability, Privileges};
//!
//! # fn main() -> Result<(), Box<dyn std::error::Error>> {
//! // As root: look everything up first…
//! let prepared = Privileges::new()
//!     .user("www-data")
//!     .keep_capability(Capability::NET_BIND_SERVICE)
//!     .no_new_privs(true)
//!     .prepare()?;
//! // …then switch, before any thread exists.
//! prepared.apply()?;
//! let listener = std::net::TcpListener::bind("0.0.0.0:80")?; // allowed by the kept capability
//! # drop(listener);
//! # Ok(())
//! # }
//! ```
//!
//! ## Limitations
//!
//! Linux only. Switching users needs root (or `CAP_SETUID` and `CAP_SETGID`); asking for
//! the user and group the process already runs as is a no-op without them. Keeping
//! `CAP_SETUID` or `CAP_SETGID` is refused: either is a way back to root. The chroot is not
//! a security boundary on its own (a process that regains root escapes it); with the
//! switch to a non-root user and `no_new_privs`, it confines the file system view.

pub(crate) mod apply;
mod caps;

use std::ffi::{CString, OsString};
use std::os::unix::ffi::OsStrExt;
use std::path::{Path, PathBuf};

use nix::sys::stat::Mode;
use nix::unistd::{Gid, Group, Uid, User};

pub use caps::Capability;

use crate::{Error, ErrorKind, Result};

/// What to switch to, by name or number; see the [module docs](self).
///
/// Every part is optional: an empty `Privileges` changes nothing.
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct Privileges {
    user: Option<String>,
    group: Option<String>,
    supplementary: Option<Vec<String>>,
    keep: Vec<Capability>,
    no_new_privs: bool,
    chroot: Option<PathBuf>,
    working_dir: Option<PathBuf>,
    umask: Option<u32>,
}

impl Privileges {
    /// Changes nothing until told otherwise.
    pub fn new() -> Privileges {
        Privileges::default()
    }

    /// Run as this user: a name (`nobody`) or a numeric uid (`65534`). Its primary group
    /// and its supplementary groups come along unless [`group`](Self::group) or
    /// [`supplementary_groups`](Self::supplementary_groups) say otherwise.
    pub fn user(mut self, user: impl Into<String>) -> Self {
        self.user = Some(user.into());
        self
    }

    /// Run with this group (name or numeric gid) instead of the user's primary group.
    pub fn group(mut self, group: impl Into<String>) -> Self {
        self.group = Some(group.into());
        self
    }

    /// Exactly these supplementary groups (names or numeric gids; none if empty), instead
    /// of the user's list from the group database.
    pub fn supplementary_groups<I, S>(mut self, groups: I) -> Self
    where
        I: IntoIterator<Item = S>,
        S: Into<String>,
    {
        self.supplementary = Some(groups.into_iter().map(Into::into).collect());
        self
    }

    /// Keep `cap` across the switch to the user (and across `execve`, as an ambient
    /// capability). Needs [`user`](Self::user).
    pub fn keep_capability(mut self, cap: Capability) -> Self {
        if !self.keep.contains(&cap) {
            self.keep.push(cap);
        }
        self
    }

    /// Set `PR_SET_NO_NEW_PRIVS`: nothing run afterwards can gain privileges.
    pub fn no_new_privs(mut self, on: bool) -> Self {
        self.no_new_privs = on;
        self
    }

    /// Change the root directory to `dir` (before the user switch, which `chroot` needs).
    pub fn chroot(mut self, dir: impl Into<PathBuf>) -> Self {
        self.chroot = Some(dir.into());
        self
    }

    /// Change to this directory as part of the switch; with a chroot it is a path inside
    /// the new root (default `/` there). Without either, the directory is left alone.
    pub fn working_dir(mut self, dir: impl Into<PathBuf>) -> Self {
        self.working_dir = Some(dir.into());
        self
    }

    /// Set this umask as part of the switch (e.g. `0o027`).
    pub fn umask(mut self, mask: u32) -> Self {
        self.umask = Some(mask & 0o777);
        self
    }

    /// The chroot directory, if one is set.
    pub fn chroot_dir(&self) -> Option<&Path> {
        self.chroot.as_deref()
    }

    /// True if applying would change nothing.
    pub fn is_empty(&self) -> bool {
        *self == Privileges::default()
    }

    /// Looks up everything the switch needs, now: users, groups, the group list. Fails
    /// with [`ErrorKind::InvalidInput`] naming an unknown user, group or a refused
    /// capability.
    pub fn prepare(&self) -> Result<Prepared> {
        let user = self.user.as_deref().map(lookup_user).transpose()?;
        let group = self.group.as_deref().map(lookup_group).transpose()?;
        let uid = user.as_ref().map(|u| u.uid);
        let gid = match (group, &user) {
            (Some(g), _) => Some(g),
            (None, Some(u)) => Some(u.gid.ok_or_else(|| {
                invalid(format!(
                    "user {} has no entry in the user database, so no primary group: \
                     give a group too",
                    u.uid
                ))
            })?),
            (None, None) => None,
        };
        let groups = match (&self.supplementary, &user, gid) {
            (Some(list), _, _) => Some(
                list.iter()
                    .map(|g| lookup_group(g))
                    .collect::<Result<Vec<_>>>()?,
            ),
            (None, Some(Account { name, .. }), Some(gid)) if !name.is_empty() => {
                let c = CString::new(name.as_str()).map_err(|_| invalid("user name has NUL"))?;
                Some(
                    nix::unistd::getgrouplist(&c, gid)
                        .map_err(|e| Error::sys(format!("getgrouplist {name}"), e))?,
                )
            }
            // A bare uid or a bare group: no supplementary groups at all (never root's).
            (None, _, Some(_)) => Some(Vec::new()),
            (None, _, None) => None,
        };
        for cap in &self.keep {
            if [Capability::SETUID, Capability::SETGID].contains(cap) {
                return Err(invalid(format!(
                    "keeping {cap} would allow regaining root; refused"
                )));
            }
        }
        if !self.keep.is_empty() && uid.is_none() {
            return Err(invalid(
                "keeping capabilities needs a user to switch to (root keeps all of them anyway)",
            ));
        }
        let mut p = Prepared {
            uid,
            gid,
            groups,
            account: user.filter(|u| !u.name.is_empty()),
            caps: self.keep.iter().fold(0, |m, c| m | c.bit()),
            bounding_last: None,
            no_new_privs: self.no_new_privs,
            chroot: self.chroot.as_deref().map(cstring).transpose()?,
            working_dir: self.working_dir.as_deref().map(cstring).transpose()?,
            umask: self
                .umask
                .map(|m| Mode::from_bits_truncate(m as libc::mode_t)),
        };
        if p.chroot.is_some() && p.working_dir.is_none() {
            p.working_dir = Some(c"/".to_owned());
        }
        p.check_allowed()?;
        Ok(p)
    }
}

/// A looked-up user.
#[derive(Debug, Clone)]
struct Account {
    uid: Uid,
    gid: Option<Gid>,
    /// Empty for a numeric uid without an entry in the user database.
    name: String,
    home: PathBuf,
    shell: PathBuf,
}

/// The switch, looked up and ready to apply: numbers and C strings only.
///
/// Made by [`Privileges::prepare`]; used by [`Prepared::apply`] (this process) and
/// [`process::spawn_as`](crate::process::spawn_as) (a child, between fork and exec).
#[derive(Debug, Clone)]
pub struct Prepared {
    uid: Option<Uid>,
    gid: Option<Gid>,
    /// `None`: leave the supplementary groups alone (no user or group given).
    groups: Option<Vec<Gid>>,
    account: Option<Account>,
    /// Kept capabilities, one bit per capability number.
    caps: u64,
    /// When switching away from root: the highest capability number the kernel knows, for
    /// dropping every capability not kept from the bounding set.
    bounding_last: Option<u8>,
    no_new_privs: bool,
    chroot: Option<CString>,
    working_dir: Option<CString>,
    umask: Option<Mode>,
}

impl Prepared {
    /// The uid the switch sets, if it sets one.
    pub fn uid(&self) -> Option<Uid> {
        self.uid
    }

    /// The directory the switch `chroot`s into, if any.
    pub fn chroot_dir(&self) -> Option<&Path> {
        use std::os::unix::ffi::OsStrExt;
        self.chroot
            .as_deref()
            .map(|c| Path::new(std::ffi::OsStr::from_bytes(c.to_bytes())))
    }

    /// The gid the switch sets, if it sets one.
    pub fn gid(&self) -> Option<Gid> {
        self.gid
    }

    /// The supplementary groups the switch sets, if it sets them.
    pub fn supplementary_groups(&self) -> Option<&[Gid]> {
        self.groups.as_deref()
    }

    /// The capabilities kept across the switch.
    pub fn kept_capabilities(&self) -> Vec<Capability> {
        (0..64u8)
            .filter(|n| self.caps & (1 << n) != 0)
            .filter_map(Capability::from_number)
            .collect()
    }

    /// `HOME`, `USER`, `LOGNAME` and `SHELL` of the user switched to, when it has an entry
    /// in the user database; empty otherwise.
    pub fn env(&self) -> Vec<(&'static str, OsString)> {
        let Some(u) = &self.account else {
            return Vec::new();
        };
        vec![
            ("HOME", u.home.clone().into_os_string()),
            ("USER", u.name.clone().into()),
            ("LOGNAME", u.name.clone().into()),
            ("SHELL", u.shell.clone().into_os_string()),
        ]
    }

    /// Who the switch makes us, for messages: `user nobody (uid 65534, gid 65534)`.
    pub fn describe(&self) -> String {
        match (self.uid, self.gid) {
            (Some(u), Some(g)) => match &self.account {
                Some(a) => format!("user {} (uid {u}, gid {g})", a.name),
                None => format!("uid {u}, gid {g}"),
            },
            (None, Some(g)) => format!("gid {g}"),
            _ => "the same user".to_string(),
        }
    }

    /// Decides what needs root, and whether we have it. Not root: only a switch to the ids
    /// we already have is allowed, and it is then a no-op (plus the rest: no_new_privs,
    /// umask, working directory).
    fn check_allowed(&mut self) -> Result<()> {
        let euid = nix::unistd::geteuid();
        if euid.is_root() {
            if self.uid.is_some_and(|u| !u.is_root()) {
                self.bounding_last = Some(cap_last_cap());
            }
            return Ok(());
        }
        let same_uid = self.uid.is_none_or(|u| u == euid);
        let same_gid = self.gid.is_none_or(|g| g == nix::unistd::getegid());
        let same_groups = match &self.groups {
            None => true,
            Some(want) => nix::unistd::getgroups().is_ok_and(|mut have| {
                let mut want = want.clone();
                have.sort_unstable_by_key(|g| g.as_raw());
                want.sort_unstable_by_key(|g| g.as_raw());
                have == want
            }),
        };
        if !(same_uid && same_gid && same_groups) {
            return Err(invalid(format!(
                "run as {}: only root can switch users and groups (this process runs as uid {euid})",
                self.describe()
            )));
        }
        if self.caps != 0 {
            return Err(invalid(
                "keeping capabilities needs root (this process has none to keep)",
            ));
        }
        (self.uid, self.gid, self.groups) = (None, None, None);
        Ok(())
    }
}

fn invalid(msg: impl Into<String>) -> Error {
    Error::new(ErrorKind::InvalidInput, msg)
}

fn cstring(p: &Path) -> Result<CString> {
    CString::new(p.as_os_str().as_bytes())
        .map_err(|_| invalid(format!("{}: path contains a NUL byte", p.display())))
}

/// A user by name or numeric uid; an unknown name is an error that names it.
fn lookup_user(text: &str) -> Result<Account> {
    let entry = match text.parse::<u32>() {
        Ok(n) => {
            let uid = Uid::from_raw(n);
            match User::from_uid(uid).map_err(|e| Error::sys(format!("look up uid {n}"), e))? {
                Some(u) => u,
                // A numeric uid without a database entry: allowed (containers often have
                // none), but it brings no primary group and no group list.
                None => {
                    return Ok(Account {
                        uid,
                        gid: None,
                        name: String::new(),
                        home: PathBuf::new(),
                        shell: PathBuf::new(),
                    });
                }
            }
        }
        Err(_) => User::from_name(text)
            .map_err(|e| Error::sys(format!("look up user {text:?}"), e))?
            .ok_or_else(|| invalid(format!("unknown user {text:?}")))?,
    };
    Ok(Account {
        uid: entry.uid,
        gid: Some(entry.gid),
        name: entry.name,
        home: entry.dir,
        shell: entry.shell,
    })
}

/// A group by name or numeric gid; an unknown name is an error that names it.
fn lookup_group(text: &str) -> Result<Gid> {
    if let Ok(n) = text.parse::<u32>() {
        return Ok(Gid::from_raw(n));
    }
    match Group::from_name(text).map_err(|e| Error::sys(format!("look up group {text:?}"), e))? {
        Some(g) => Ok(g.gid),
        None => Err(invalid(format!("unknown group {text:?}"))),
    }
}

/// The highest capability number the running kernel knows.
fn cap_last_cap() -> u8 {
    std::fs::read_to_string("/proc/sys/kernel/cap_last_cap")
        .ok()
        .and_then(|s| s.trim().parse().ok())
        .unwrap_or(40)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn unknown_names_are_errors_that_name_them() {
        let e = Privileges::new()
            .user("no-such-user-x9")
            .prepare()
            .unwrap_err();
        assert_eq!(e.kind(), ErrorKind::InvalidInput);
        assert_eq!(e.to_string(), "unknown user \"no-such-user-x9\"");
        let e = Privileges::new()
            .group("no-such-group-x9")
            .prepare()
            .unwrap_err();
        assert_eq!(e.to_string(), "unknown group \"no-such-group-x9\"");
    }

    #[test]
    fn a_way_back_to_root_is_never_kept() {
        let e = Privileges::new()
            .user("0")
            .keep_capability(Capability::SETUID)
            .prepare()
            .unwrap_err();
        assert!(e.to_string().contains("CAP_SETUID"), "{e}");
        let e = Privileges::new()
            .keep_capability(Capability::NET_BIND_SERVICE)
            .prepare()
            .unwrap_err();
        assert!(e.to_string().contains("needs a user"), "{e}");
    }

    #[test]
    fn a_numeric_uid_without_an_entry_needs_a_group() {
        let e = Privileges::new().user("3999999").prepare().unwrap_err();
        assert!(e.to_string().contains("give a group"), "{e}");
    }

    #[test]
    fn empty_changes_nothing() {
        assert!(Privileges::new().is_empty());
        assert!(!Privileges::new().umask(0o027).is_empty());
    }
}
