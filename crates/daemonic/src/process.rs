//! Processes by handle, not by number: spawning supervised children and signalling or
//! waiting for processes without ever hitting one that reused a pid.
//!
//! - [`PidFd`] wraps a Linux pidfd. Once opened it refers to one process for good:
//!   signals sent through it fail with `ESRCH` after that process has exited, instead of
//!   reaching whatever process got the number next; it becomes readable when the process
//!   exits, so it fits in a `poll(2)` loop.
//! - [`spawn`] starts a child as a supervisor wants it: leader of its own process group
//!   (so a stop reaches its grandchildren too), killed by the kernel if the supervisor dies
//!   (`PR_SET_PDEATHSIG`), signals reset to their defaults.
//! - [`spawn_as`] does the same for a child that runs as another user: the switch
//!   prepared beforehand ([`Prepared`]) is applied between fork and exec, before the
//!   parent-death signal is set (a credential change clears it).
//! - [`raise_nofile_limit`] lifts a supervisor's soft limit on open files to the hard
//!   one; children started by [`spawn`] get the original soft limit back.
//! - [`Exit`] is how a process ended, from the one place that calls `waitpid`:
//!   [`PidFd::reap`].
//! - [`reap_orphans`] is for an init (PID 1 of a container, or a
//!   [subreaper](become_subreaper)): it reaps the orphans the kernel hands over, and never
//!   a child [`spawn`] started, whose exit status belongs to [`PidFd::reap`].
//! - [`PidFd::adopt`] claims such an orphan as if [`spawn`] had started it (the daemon a
//!   self-daemonizing program leaves); [`PidFd::peek_exit`] reads a child's exit status
//!   without reaping it, while its pid and process group are still pinned.
//!
//! **Claimed children.** A child started by [`spawn`] is *claimed* from the moment it is
//! started until its [`PidFd`] has reaped it or is dropped. The claim is process-wide (the
//! kernel's list of children is), kept in a small registry behind a mutex.
//! [`reap_orphans`] peeks at exited children without reaping them
//! (`waitid(…, WNOWAIT)`) and reaps only unclaimed ones. A child whose handle was dropped
//! unreaped (abandoned) is reaped as an orphan when it exits, so no zombie stays behind.

use std::fmt;
use std::os::fd::{AsFd, BorrowedFd, OwnedFd};
use std::process::{Child, Command};
use std::sync::Mutex;
use std::sync::atomic::{AtomicBool, AtomicU64, Ordering};
use std::time::{Duration, Instant};

use nix::errno::Errno;
use nix::poll::{PollFd, PollFlags, PollTimeout, poll};
use nix::sys::signal::Signal;
use nix::sys::wait::{WaitPidFlag, WaitStatus, waitpid};
use nix::unistd::Pid;

use nix::fcntl::OFlag;

use crate::privileges::Prepared;
use crate::privileges::apply::Step;
use crate::{Error, Result};

/// How a process ended.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Exit {
    /// It exited with this status.
    Code(i32),
    /// It was killed by this signal (and dumped core, if `true`).
    Signal(Signal, bool),
}

impl Exit {
    /// The status a shell would report: the code, or 128 + the signal number.
    pub fn shell_status(self) -> i32 {
        match self {
            Exit::Code(c) => c,
            Exit::Signal(s, _) => 128 + s as i32,
        }
    }

    /// True for `Code(0)`.
    pub fn success(self) -> bool {
        self == Exit::Code(0)
    }
}

impl fmt::Display for Exit {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match self {
            Exit::Code(c) => write!(f, "exited with status {c}"),
            Exit::Signal(s, true) => write!(f, "killed by {s} (core dumped)"),
            Exit::Signal(s, false) => write!(f, "killed by {s}"),
        }
    }
}

/// A handle on one process (a Linux pidfd).
#[derive(Debug)]
pub struct PidFd {
    fd: OwnedFd,
    pid: Pid,
    /// Started by [`spawn`] and not reaped yet: [`reap_orphans`] leaves it alone.
    claimed: AtomicBool,
}

impl PidFd {
    /// Opens a handle on the process that has `pid` now.
    ///
    /// To be sure that this is the process you mean, check something that only it can
    /// hold *after* opening (for a daemon: that it still holds its pid-file lock).
    pub fn open(pid: Pid) -> Result<PidFd> {
        let fd =
            crate::sys::pidfd_open(pid).map_err(|e| Error::io(format!("pidfd_open {pid}"), e))?;
        Ok(PidFd {
            fd,
            pid,
            claimed: AtomicBool::new(false),
        })
    }

    /// Opens a handle on `pid`, a child of this process that [`spawn`] did not start — an
    /// orphan it adopted as a [subreaper](become_subreaper) or init, such as the daemon a
    /// self-daemonizing program leaves behind — and claims it (see "Claimed children" in
    /// the module docs): its exit status is [`reap`](Self::reap)'s from now on, not
    /// [`reap_orphans`]'s. Fails with `ECHILD` if `pid` is not a child of this process once
    /// the handle is open (the kernel's list of children decides, not `/proc`), and with
    /// `EBUSY` if it is claimed already.
    pub fn adopt(pid: Pid) -> Result<PidFd> {
        use nix::sys::wait::{Id, waitid};
        let handle = PidFd::open(pid)?;
        let flags = WaitPidFlag::WEXITED | WaitPidFlag::WNOHANG | WaitPidFlag::WNOWAIT;
        loop {
            match waitid(Id::Pid(pid), flags) {
                Ok(_) => break,
                Err(Errno::EINTR) => continue,
                Err(e) => return Err(Error::sys(format!("adopt pid {pid}: waitid"), e)),
            }
        }
        let mut claimed = CLAIMED.lock().unwrap_or_else(|e| e.into_inner());
        if claimed.contains(&pid) {
            return Err(Error::sys(
                format!("adopt pid {pid}: claimed already"),
                Errno::EBUSY,
            ));
        }
        claimed.push(pid);
        handle.claimed.store(true, Ordering::SeqCst);
        Ok(handle)
    }

    /// The pid the process had when the handle was opened.
    pub fn pid(&self) -> Pid {
        self.pid
    }

    /// Sends `sig` to exactly this process; `ESRCH` if it has exited.
    pub fn signal(&self, sig: Signal) -> Result<()> {
        crate::sys::pidfd_send_signal(self.fd.as_fd(), sig)
            .map_err(|e| Error::io(format!("send {sig} to pid {}", self.pid), e))
    }

    /// Waits up to `timeout` for the process to exit; true if it has.
    pub fn wait_exit(&self, timeout: Duration) -> Result<bool> {
        let deadline = Instant::now() + timeout;
        loop {
            let left = deadline.saturating_duration_since(Instant::now());
            let ms = left.as_millis().min(i32::MAX as u128) as i32;
            let mut fds = [PollFd::new(self.fd.as_fd(), PollFlags::POLLIN)];
            match poll(
                &mut fds,
                PollTimeout::try_from(ms).unwrap_or(PollTimeout::MAX),
            ) {
                Ok(0) => return Ok(false),
                Ok(_) => return Ok(true),
                Err(Errno::EINTR) => continue,
                Err(e) => return Err(Error::sys(format!("poll pidfd of {}", self.pid), e)),
            }
        }
    }

    /// Reaps the process (our child) if it has exited: `None` while it runs.
    ///
    /// This is the one place in daemonic that calls `waitpid` for a child it started
    /// ([`reap_orphans`] reaps the others, by `waitid`).
    pub fn reap(&self) -> Result<Option<Exit>> {
        loop {
            match waitpid(self.pid, Some(WaitPidFlag::WNOHANG)) {
                Ok(WaitStatus::Exited(_, code)) => {
                    self.unclaim();
                    return Ok(Some(Exit::Code(code)));
                }
                Ok(WaitStatus::Signaled(_, sig, core)) => {
                    self.unclaim();
                    return Ok(Some(Exit::Signal(sig, core)));
                }
                Ok(WaitStatus::StillAlive) => return Ok(None),
                Ok(_) => return Ok(None),
                Err(Errno::EINTR) => continue,
                Err(e) => return Err(Error::sys(format!("waitpid {}", self.pid), e)),
            }
        }
    }

    /// How the process (our child) ended, if it has, *without* reaping it: its pid, and
    /// the process group it led, stay pinned until [`reap`](Self::reap). For a caller that
    /// decides by the status what to do before the reap (signal what is left of the
    /// group, or leave it alone).
    pub fn peek_exit(&self) -> Result<Option<Exit>> {
        use nix::sys::wait::{Id, waitid};
        let flags = WaitPidFlag::WEXITED | WaitPidFlag::WNOHANG | WaitPidFlag::WNOWAIT;
        loop {
            match waitid(Id::Pid(self.pid), flags) {
                Ok(WaitStatus::Exited(_, code)) => return Ok(Some(Exit::Code(code))),
                Ok(WaitStatus::Signaled(_, sig, core)) => return Ok(Some(Exit::Signal(sig, core))),
                Ok(_) => return Ok(None),
                Err(Errno::EINTR) => continue,
                Err(e) => return Err(Error::sys(format!("waitid {} (WNOWAIT)", self.pid), e)),
            }
        }
    }

    /// Releases the claim (once): the pid is no longer ours to reap.
    fn unclaim(&self) {
        if self.claimed.swap(false, Ordering::SeqCst) {
            let mut claimed = CLAIMED.lock().unwrap_or_else(|e| e.into_inner());
            if let Some(i) = claimed.iter().position(|p| *p == self.pid) {
                claimed.swap_remove(i);
            }
        }
    }
}

impl Drop for PidFd {
    /// An unreaped child whose handle goes away is no longer claimed: if it exits,
    /// [`reap_orphans`] reaps it.
    fn drop(&mut self) {
        self.unclaim();
    }
}

/// The children started by [`spawn`] (or [adopted](PidFd::adopt)) whose [`PidFd`] has
/// not reaped them yet.
static CLAIMED: Mutex<Vec<Pid>> = Mutex::new(Vec::new());

/// Whether `pid` is a child claimed by a [`PidFd`] of this process (started by [`spawn`]
/// or [adopted](PidFd::adopt), not reaped yet): not an orphan.
pub fn is_claimed(pid: Pid) -> bool {
    CLAIMED
        .lock()
        .unwrap_or_else(|e| e.into_inner())
        .contains(&pid)
}

/// Makes this process a *child subreaper* (`PR_SET_CHILD_SUBREAPER`): a descendant
/// whose parent dies is reparented to it, not to PID 1, so it must reap them (see
/// [`reap_orphans`]). What a container init does when it is not PID 1; PID 1 of a pid
/// namespace is its reaper already. Not inherited by children.
pub fn become_subreaper() -> Result<()> {
    nix::sys::prctl::set_child_subreaper(true)
        .map_err(|e| Error::sys("prctl PR_SET_CHILD_SUBREAPER", e))
}

/// Reaps every exited child that no [`PidFd`] from [`spawn`] claims — the orphans an init
/// or a subreaper adopts — and throws their statuses away (nobody is there to read them);
/// returns how many. Never blocks. Call it when SIGCHLD arrives and after reaping a child
/// of your own.
///
/// How, and why it never steals a status: `waitid(P_ALL, WEXITED | WNOHANG | WNOWAIT)`
/// *peeks* at the first exited child in the kernel's list (oldest first; adopted orphans
/// are appended) without reaping it. An unclaimed one is reaped by its pid (safe: the pid
/// of an unreaped zombie cannot be reused, and only its parent can reap it), and the
/// next is looked at. A claimed one ends the round: the kernel would report it again, so
/// the orphans behind it wait until its owner has reaped it (its pidfd is readable
/// already) and this is called again.
///
/// Call it from the thread that spawns children: between `fork` and the claim taken
/// when [`spawn`] returns, a child that exits at once (a failed `exec`, which std reaps
/// itself) is not claimed yet.
pub fn reap_orphans() -> Result<usize> {
    let mut reaped = 0;
    while let Some(pid) =
        crate::sys::peek_exited_child().map_err(|e| Error::io("waitid P_ALL WNOWAIT", e))?
    {
        let claimed = CLAIMED.lock().unwrap_or_else(|e| e.into_inner());
        if claimed.contains(&pid) {
            break;
        }
        drop(claimed);
        if !crate::sys::reap_exited_child(pid).map_err(|e| Error::io(format!("waitid {pid}"), e))? {
            break;
        }
        reaped += 1;
    }
    Ok(reaped)
}

impl AsFd for PidFd {
    /// Readable once the process has exited.
    fn as_fd(&self) -> BorrowedFd<'_> {
        self.fd.as_fd()
    }
}

/// A child started by [`spawn`].
#[derive(Debug)]
pub struct Spawned {
    /// The handle to signal and reap it with.
    pub pidfd: PidFd,
    /// std's handle, for its pipes (`stdout`, `stderr`, `stdin`) if any were requested.
    /// After [`CgroupEntry::settle`] it is the first child's, which has exited and been
    /// reaped: use [`pidfd`](Self::pidfd) for the process itself.
    pub child: Child,
}

impl Spawned {
    /// Sends `sig` to the child's whole process group (it leads its own).
    ///
    /// The group id is the child's pid; while the child is unreaped (we reap it only
    /// through [`PidFd::reap`]) no other process can have that pid or group id.
    pub fn signal_group(&self, sig: Signal) -> Result<()> {
        match nix::sys::signal::killpg(self.pidfd.pid(), sig) {
            Ok(()) | Err(Errno::ESRCH) => Ok(()),
            Err(e) => Err(Error::sys(
                format!("send {sig} to process group {}", self.pidfd.pid()),
                e,
            )),
        }
    }
}

/// Spawns `cmd` as a supervised child: its own process group, SIGKILLed by the kernel if
/// the spawning thread dies, all signals at their defaults and unblocked.
pub fn spawn(cmd: &mut Command) -> Result<Spawned> {
    prepare_supervised(cmd);
    start(cmd)
}

/// Like [`spawn`], for a child that runs with `privileges` (see [`crate::privileges`]):
/// the switch happens in the child between fork and exec, with async-signal-safe calls
/// on data looked up before. The child also gets the user's `HOME`, `USER`, `LOGNAME` and
/// `SHELL` ([`Prepared::env`]).
///
/// If the switch fails, the child is not run and the error names the failed step:
/// `spawn /usr/bin/web: drop privileges to user www (uid 33, gid 33): setresuid 33:
/// Operation not permitted`. The hook is added to `cmd`'s `pre_exec` hooks: call this once
/// per `Command`.
pub fn spawn_as(cmd: &mut Command, privileges: &Prepared) -> Result<Spawned> {
    spawn_as_then(cmd, privileges, |_| Ok(()))
}

/// [`spawn_as`], calling `last` on `cmd` just before it starts: after the user's
/// variables are set and every other `pre_exec` hook is registered (socket activation's
/// hook must be the last one, see [`crate::systemd::handoff`]).
pub(crate) fn spawn_as_then(
    cmd: &mut Command,
    privileges: &Prepared,
    last: impl FnOnce(&mut Command) -> Result<()>,
) -> Result<Spawned> {
    add_user_env(cmd, privileges);
    // The child writes the number of a failed step here; non-blocking, so that reading
    // after a successful spawn (nothing written) returns at once.
    let (report_r, report_w) = nix::unistd::pipe2(OFlag::O_CLOEXEC | OFlag::O_NONBLOCK)
        .map_err(|e| Error::sys("pipe2", e))?;
    let p = privileges.clone();
    // First, so that the parent-death signal of `prepare_supervised` is set after the switch.
    // SAFETY: `apply_in_child` makes only async-signal-safe calls (setgroups, setgid,
    // setuid, capset, prctl, write) on data prepared before the fork.
    #[allow(unsafe_code)]
    unsafe {
        crate::sys::pre_exec(cmd, move || p.apply_in_child(report_w.as_fd()))
    };
    prepare_supervised(cmd);
    last(cmd)?;
    start(cmd).map_err(|e| {
        let mut step = [0u8];
        match nix::unistd::read(&report_r, &mut step) {
            Ok(1) => match Step::from_u8(step[0]) {
                Some(s) => {
                    let program = cmd.get_program().to_string_lossy().into_owned();
                    let errno = e.os_error().map(Errno::from_raw);
                    privileges
                        .error((s, errno))
                        .prefixed(&format!("spawn {program}"))
                }
                None => e,
            },
            _ => e,
        }
    })
}

/// The user's `HOME`, `USER`, `LOGNAME` and `SHELL` for `cmd`'s child, unless the caller
/// set them on `cmd`.
pub(crate) fn add_user_env(cmd: &mut Command, privileges: &Prepared) {
    for (key, value) in privileges.env() {
        if !cmd
            .get_envs()
            .any(|(k, v)| k == std::ffi::OsStr::new(key) && v.is_some())
        {
            cmd.env(key, value);
        }
    }
}

/// Registers what [`spawn`] does to the child before `exec` (own process group, parent
/// death signal, default signals); other `pre_exec` hooks may follow.
pub(crate) fn prepare_supervised(cmd: &mut Command) {
    use std::os::unix::process::CommandExt;
    cmd.process_group(0);
    let parent = Pid::this();
    // SAFETY: the hook is `supervise_in_child`: async-signal-safe calls only, on data
    // (`parent`, the limit saved at start) prepared before the fork.
    #[allow(unsafe_code)]
    unsafe {
        crate::sys::pre_exec(cmd, move || supervise_in_child(parent))
    };
}

/// In a child between fork (or clone) and exec, as the last of [`spawn`]'s steps: the
/// parent-death signal (after any user switch, which clears it), the original soft limit
/// on open files, every signal at its default and unblocked. Exits at once if `parent`
/// has died already. Async-signal-safe: prctl, getppid, _exit, setrlimit (after atomic
/// loads), sigaction, rt_sigaction and sigprocmask.
pub(crate) fn supervise_in_child(parent: Pid) -> std::io::Result<()> {
    nix::sys::prctl::set_pdeathsig(Signal::SIGKILL)?;
    // The parent may have died before the line above took effect.
    if nix::unistd::getppid() != parent {
        crate::sys::exit_immediately(1);
    }
    restore_nofile_limit()?;
    crate::sys::reset_realtime_signals_before_exec();
    crate::sys::reset_signals(false)
}

/// Spawns a command prepared by [`prepare_supervised`] and opens its pidfd.
pub(crate) fn start(cmd: &mut Command) -> Result<Spawned> {
    let program = cmd.get_program().to_string_lossy().into_owned();
    let child = cmd
        .spawn()
        .map_err(|e| Error::io(format!("spawn {program}"), e))?;
    let pidfd = claim(Pid::from_raw(child.id() as i32))?;
    Ok(Spawned { pidfd, child })
}

/// The handle of a child [`crate::launch`] made, with the pidfd the kernel gave for it,
/// claimed as [`claim`] claims.
pub(crate) fn claim_cloned(fd: OwnedFd, pid: Pid) -> PidFd {
    claimed(PidFd {
        fd,
        pid,
        claimed: AtomicBool::new(false),
    })
}

/// Opens a pidfd for our child `pid`, ours to reap through it: see "Claimed children"
/// in the module docs.
fn claim(pid: Pid) -> Result<PidFd> {
    Ok(claimed(PidFd::open(pid)?))
}

/// `pidfd`, registered as claimed.
fn claimed(pidfd: PidFd) -> PidFd {
    CLAIMED
        .lock()
        .unwrap_or_else(|e| e.into_inner())
        .push(pidfd.pid);
    pidfd.claimed.store(true, Ordering::SeqCst);
    pidfd
}

/// The soft and hard `RLIMIT_NOFILE` this process had before [`raise_nofile_limit`]
/// raised it (0 and 0: not raised), for the children.
static CHILD_NOFILE: [AtomicU64; 2] = [AtomicU64::new(0), AtomicU64::new(0)];

/// Raises this process's soft limit on open files to its hard limit and returns the
/// limits before and after (soft). A supervisor of many services needs many descriptors
/// (a pidfd and output pipes per service, control connections); the common soft limit of
/// 1024 is not a choice anyone made for it. Children started by [`spawn`] get the
/// original soft limit back, as systemd does for its services: many programs misbehave
/// with a huge one (`select(2)` past `FD_SETSIZE`, loops that close every possible fd).
pub fn raise_nofile_limit() -> Result<(u64, u64)> {
    use nix::sys::resource::{Resource, getrlimit, setrlimit};
    let (soft, hard) =
        getrlimit(Resource::RLIMIT_NOFILE).map_err(|e| Error::sys("getrlimit RLIMIT_NOFILE", e))?;
    if soft < hard {
        setrlimit(Resource::RLIMIT_NOFILE, hard, hard)
            .map_err(|e| Error::sys(format!("setrlimit RLIMIT_NOFILE to {hard}"), e))?;
        CHILD_NOFILE[0].store(soft, Ordering::SeqCst);
        CHILD_NOFILE[1].store(hard, Ordering::SeqCst);
    }
    Ok((soft, hard.max(soft)))
}

/// In a child between fork and exec: the soft limit on open files the supervisor had
/// before [`raise_nofile_limit`] (async-signal-safe: atomic loads and `setrlimit`).
fn restore_nofile_limit() -> nix::Result<()> {
    let soft = CHILD_NOFILE[0].load(Ordering::SeqCst);
    let hard = CHILD_NOFILE[1].load(Ordering::SeqCst);
    if hard == 0 {
        return Ok(());
    }
    nix::sys::resource::setrlimit(nix::sys::resource::Resource::RLIMIT_NOFILE, soft, hard)
}

/// Whether systemd (251 and later) delegated the cgroup v2 directory `dir` to its unit
/// (`Delegate=yes`): it marks such a group with the extended attribute `user.delegate`
/// (readable by anyone) and `trusted.delegate` (readable by root) set to `1`. A manager
/// may build its own groups below a delegated group, and below no other of systemd's.
pub fn cgroup_delegated(dir: &std::path::Path) -> bool {
    ["user.delegate", "trusted.delegate"]
        .iter()
        .any(|name| crate::sys::getxattr(dir, name).is_ok_and(|v| v == b"1"))
}

/// Has the child of `cmd` start in the cgroup v2 directory open as `dir`, before it runs
/// a line of the program, so nothing it starts is ever outside that group.
///
/// How: the first `pre_exec` hook clones the forked child once more with
/// `clone3(CLONE_INTO_CGROUP | CLONE_PARENT)`: the copy is born in the group, as a child
/// of the caller, leads its own process group, and goes on to `exec`; the first child
/// reports the copy's pid and exits. Being born in a group is cheap, where moving a
/// process in (a write of `cgroup.procs`) takes the kernel's cgroup lock for writing and
/// may wait for an RCU grace period — 6 to 26 ms measured here after an idle second,
/// against 0.8 ms for the clone: most of a restart's latency. Where `clone3` cannot do
/// it (before Linux 5.7), the child writes `0` to the group's `cgroup.procs` (opened
/// here, before the fork) instead; if that fails the child is not run and the spawn fails
/// with that errno.
///
/// A group that `cgroup.kill` has emptied must be made anew (`rmdir`, `mkdir`) before a
/// child is cloned into it: Linux (seen on 6.18) SIGKILLs such a child at birth, the
/// group's kill count differing from the spawner's.
///
/// Call it before [`spawn`] or [`spawn_as`], before any other `pre_exec` hook (it must
/// run while the child still has the supervisor's privileges: a switched user may not
/// enter a root-owned group), and hand what that returns to [`CgroupEntry::settle`]: the
/// [`Spawned`] it gives back is the process in the group (std's `child` in it is the
/// first child's handle, kept for its pipes; that process has exited and been reaped).
pub fn into_cgroup(cmd: &mut Command, dir: OwnedFd) -> Result<CgroupEntry> {
    use std::os::fd::AsRawFd;
    let procs = nix::fcntl::openat(
        &dir,
        "cgroup.procs",
        OFlag::O_WRONLY | OFlag::O_CLOEXEC,
        nix::sys::stat::Mode::empty(),
    )
    .map_err(|e| Error::sys("open cgroup.procs of the service's cgroup", e))?;
    let (report_r, report_w) = nix::unistd::pipe2(OFlag::O_CLOEXEC | OFlag::O_NONBLOCK)
        .map_err(|e| Error::sys("pipe2", e))?;
    // SAFETY: the hook runs first in the freshly forked child (this function's contract),
    // as `clone_into_cgroup_in_pre_exec` requires; then only setpgid, write, getpid and
    // _exit, all async-signal-safe, on descriptors opened before the fork.
    #[allow(unsafe_code)]
    unsafe {
        crate::sys::pre_exec(cmd, move || {
            let report = |pid: i32| nix::unistd::write(&report_w, &pid.to_ne_bytes()).map(drop);
            match crate::sys::clone_into_cgroup_in_pre_exec(dir.as_raw_fd()) {
                // The copy, in the group: it leads its own process group, as spawn's
                // child does (std made the first child the leader).
                Ok(None) => nix::unistd::setpgid(Pid::from_raw(0), Pid::from_raw(0))?,
                Ok(Some(copy)) => {
                    let ok = report(copy).is_ok();
                    crate::sys::exit_immediately(if ok { 0 } else { 1 })
                }
                Err(_) => {
                    nix::unistd::write(&procs, b"0")?;
                    report(Pid::this().as_raw())?;
                }
            }
            Ok(())
        })
    };
    Ok(CgroupEntry {
        report: Some(report_r),
    })
}

/// The other half of [`into_cgroup`]: which process the spawned child is.
#[derive(Debug)]
pub struct CgroupEntry {
    report: Option<OwnedFd>,
}

impl CgroupEntry {
    /// The child in the group, from what [`spawn`] (or [`spawn_as`]) returned for `cmd`:
    /// that same child if it entered by writing `cgroup.procs`; else the copy it cloned
    /// into the group, claimed as [`spawn`]'s children are, once the first child (which
    /// exits at once) is reaped.
    pub fn settle(mut self, spawned: Spawned) -> Result<Spawned> {
        let Some(pid) = self.reported() else {
            return Err(Error::new(
                crate::ErrorKind::Protocol,
                format!(
                    "child {} did not say where it runs (cgroup entry)",
                    spawned.pidfd.pid()
                ),
            ));
        };
        if pid == spawned.pidfd.pid() {
            return Ok(spawned);
        }
        // The copy is our child (CLONE_PARENT) and unreaped: its pid is not reused.
        let pidfd = claim(pid)?;
        spawned.pidfd.wait_exit(Duration::from_secs(10))?;
        spawned.pidfd.reap()?;
        Ok(Spawned {
            pidfd,
            child: spawned.child,
        })
    }

    /// The pid the first child reported, once.
    fn reported(&mut self) -> Option<Pid> {
        let fd = self.report.take()?;
        let mut buf = [0u8; 4];
        match nix::unistd::read(&fd, &mut buf) {
            Ok(4) => Some(Pid::from_raw(i32::from_ne_bytes(buf))),
            _ => None,
        }
    }
}

impl Drop for CgroupEntry {
    /// A spawn that failed after the clone (the copy's `exec` failed): std reaped the
    /// first child; the copy is exiting, and is reaped here (briefly waited for) rather
    /// than left a zombie.
    fn drop(&mut self) {
        let Some(pid) = self.reported() else {
            return;
        };
        let deadline = Instant::now() + Duration::from_millis(200);
        loop {
            match waitpid(pid, Some(WaitPidFlag::WNOHANG)) {
                Ok(WaitStatus::StillAlive) if Instant::now() < deadline => {
                    std::thread::sleep(Duration::from_millis(1));
                }
                _ => return,
            }
        }
    }
}
