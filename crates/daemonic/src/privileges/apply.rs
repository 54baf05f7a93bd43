//! The switch itself, in the order the [module docs](super) explain.
//!
//! [`Prepared::steps`] is async-signal-safe: it reads only what `prepare` stored, allocates
//! nothing, and makes system calls only (nix's wrappers over `chroot`, `chdir`, `prctl`,
//! `umask`, `sys::capset` / `sys::cap_ambient_raise` / `sys::capbset_drop`, and the raw
//! `setgroups`, `setresgid`, `setresuid`, `setuid`, `setgid` of `sys`: glibc's wrappers
//! mark and signal every thread in glibc's list, which in a child sharing its parent's
//! memory (`daemonic::launch`) are the parent's). It reports the failed step as a
//! [`Step`] and an errno, which become a full message only afterwards: in this process
//! ([`Prepared::apply`]), or in the parent of a child that failed before `exec`
//! ([`Prepared::error`]).

use std::os::fd::BorrowedFd;

use nix::errno::Errno;
use nix::unistd::Gid;

use super::Prepared;
use crate::{Error, ErrorKind, Result};

/// The step that failed. The numbers travel through a pipe from a child to its parent.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
#[repr(u8)]
pub(crate) enum Step {
    Chroot = 1,
    Chdir,
    Bounding,
    SetGroups,
    SetGid,
    KeepCaps,
    SetUid,
    Capset,
    Ambient,
    NoNewPrivs,
    /// `setuid(0)` succeeded after the switch.
    RegainUid,
    /// `setgid(0)` succeeded after the switch.
    RegainGid,
    /// The ids read back are not the ones set.
    ReadBack,
}

const STEPS: [Step; 13] = [
    Step::Chroot,
    Step::Chdir,
    Step::Bounding,
    Step::SetGroups,
    Step::SetGid,
    Step::KeepCaps,
    Step::SetUid,
    Step::Capset,
    Step::Ambient,
    Step::NoNewPrivs,
    Step::RegainUid,
    Step::RegainGid,
    Step::ReadBack,
];

impl Step {
    pub(crate) fn from_u8(n: u8) -> Option<Step> {
        STEPS.iter().copied().find(|s| *s as u8 == n)
    }
}

/// A failed step and its errno (`None` for the verification steps, which fail by a call
/// *succeeding*).
pub(crate) type Failed = (Step, Option<Errno>);

impl Prepared {
    /// Switches this process: see the [module docs](super) for the steps and their order.
    ///
    /// Refuses ([`ErrorKind::Threaded`]) if the process runs more than one thread, because
    /// capabilities (and ids, at the system-call level) belong to a thread: the others
    /// would keep root. On failure the process may be half switched; exit.
    pub fn apply(&self) -> Result<()> {
        let threads =
            crate::sys::thread_count().map_err(|e| Error::io("read /proc/self/task", e))?;
        if threads > 1 {
            return Err(Error::new(
                ErrorKind::Threaded,
                format!(
                    "drop privileges to {}: this process already runs {threads} threads, \
                     which would keep their privileges; drop them before starting threads",
                    self.describe()
                ),
            ));
        }
        self.steps().map_err(|f| self.error(f))
    }

    /// In a child between fork and exec: the switch; on failure the step's number is
    /// written to `report` (for [`Prepared::error`] in the parent) and the errno returned.
    pub(crate) fn apply_in_child(&self, report: BorrowedFd<'_>) -> std::io::Result<()> {
        self.steps().map_err(|(step, errno)| {
            let _ = nix::unistd::write(report, &[step as u8]);
            std::io::Error::from_raw_os_error(errno.unwrap_or(Errno::EPERM) as i32)
        })
    }

    /// The message for a failed step: `drop privileges to user nobody (uid 65534, gid
    /// 65534): setresuid 65534: Operation not permitted`.
    pub(crate) fn error(&self, (step, errno): Failed) -> Error {
        let uid = self.uid.map_or(-1, |u| u.as_raw() as i64);
        let gid = self.gid.map_or(-1, |g| g.as_raw() as i64);
        let what = match step {
            Step::Chroot => format!("chroot {:?}", self.chroot.as_deref().unwrap_or(c"")),
            Step::Chdir => format!("chdir {:?}", self.working_dir.as_deref().unwrap_or(c"")),
            Step::Bounding => "drop capabilities from the bounding set".to_string(),
            Step::SetGroups => format!("setgroups {:?}", self.groups.as_deref().unwrap_or(&[])),
            Step::SetGid => format!("setresgid {gid}"),
            Step::KeepCaps => "prctl PR_SET_KEEPCAPS".to_string(),
            Step::SetUid => format!("setresuid {uid}"),
            Step::Capset => format!("capset {}", self.caps_text()),
            Step::Ambient => format!("raise ambient capabilities {}", self.caps_text()),
            Step::NoNewPrivs => "prctl PR_SET_NO_NEW_PRIVS".to_string(),
            Step::RegainUid | Step::RegainGid | Step::ReadBack => {
                let which = match step {
                    Step::RegainUid => "setuid(0) still succeeds".to_string(),
                    Step::RegainGid => "setgid(0) still succeeds".to_string(),
                    _ => "the ids read back differ from those set".to_string(),
                };
                return Error::new(
                    ErrorKind::RootRegainable,
                    format!(
                        "drop privileges to {}: verify: {which}; refusing to run with a way \
                         back to root",
                        self.describe()
                    ),
                );
            }
        };
        let context = format!("drop privileges to {}: {what}", self.describe());
        match errno {
            Some(e) => Error::sys(context, e),
            None => Error::new(ErrorKind::Io, context),
        }
    }

    fn caps_text(&self) -> String {
        let names: Vec<String> = self.kept_capabilities().iter().map(|c| c.name()).collect();
        names.join(",")
    }

    /// Every step, in order. Async-signal-safe (see the module docs above).
    pub(crate) fn steps(&self) -> Result<(), Failed> {
        let at = |step: Step| move |e: Errno| (step, Some(e));
        let io_at = |step: Step| {
            move |e: std::io::Error| (step, Some(Errno::from_raw(e.raw_os_error().unwrap_or(0))))
        };
        if let Some(root) = &self.chroot {
            nix::unistd::chroot(root.as_c_str()).map_err(at(Step::Chroot))?;
        }
        if let Some(dir) = &self.working_dir {
            nix::unistd::chdir(dir.as_c_str()).map_err(at(Step::Chdir))?;
        }
        if let Some(last) = self.bounding_last {
            for cap in (0..=last).filter(|n| self.caps & (1 << n) == 0) {
                crate::sys::capbset_drop(cap).map_err(io_at(Step::Bounding))?;
            }
        }
        if let Some(groups) = &self.groups {
            crate::sys::raw_setgroups(groups).map_err(io_at(Step::SetGroups))?;
        }
        if let Some(gid) = self.gid {
            crate::sys::raw_setresgid(gid.as_raw()).map_err(io_at(Step::SetGid))?;
        }
        let keep = self.caps != 0;
        if keep {
            nix::sys::prctl::set_keepcaps(true).map_err(at(Step::KeepCaps))?;
        }
        if let Some(uid) = self.uid {
            crate::sys::raw_setresuid(uid.as_raw()).map_err(io_at(Step::SetUid))?;
        }
        if keep {
            crate::sys::capset(self.caps, self.caps, self.caps).map_err(io_at(Step::Capset))?;
            for cap in (0..64u8).filter(|n| self.caps & (1 << n) != 0) {
                crate::sys::cap_ambient_raise(cap).map_err(io_at(Step::Ambient))?;
            }
            nix::sys::prctl::set_keepcaps(false).map_err(at(Step::KeepCaps))?;
        }
        if self.no_new_privs {
            nix::sys::prctl::set_no_new_privs().map_err(at(Step::NoNewPrivs))?;
        }
        if let Some(mask) = self.umask {
            nix::sys::stat::umask(mask);
        }
        self.verify()
    }

    /// After a switch away from root: no way back, and the ids are the ones set.
    fn verify(&self) -> Result<(), Failed> {
        let Some(uid) = self.uid.filter(|u| !u.is_root()) else {
            return Ok(());
        };
        if crate::sys::raw_setuid(0).is_ok() {
            return Err((Step::RegainUid, None));
        }
        let gid = self.gid.unwrap_or(Gid::from_raw(0));
        if gid.as_raw() != 0 && crate::sys::raw_setgid(0).is_ok() {
            return Err((Step::RegainGid, None));
        }
        let ids = nix::unistd::getresuid().map_err(|e| (Step::ReadBack, Some(e)))?;
        let gids = nix::unistd::getresgid().map_err(|e| (Step::ReadBack, Some(e)))?;
        let same_uid = [ids.real, ids.effective, ids.saved]
            .iter()
            .all(|u| *u == uid);
        let same_gid = [gids.real, gids.effective, gids.saved]
            .iter()
            .all(|g| *g == gid);
        if !same_uid || !same_gid {
            return Err((Step::ReadBack, None));
        }
        Ok(())
    }
}
