//! Detaching by starting the program again (re-exec mode), for processes that already run
//! threads and so must not `fork` and go on running Rust code.
//!
//! The launcher spawns `/proc/self/exe` with its own arguments. Between fork and exec — in
//! async-signal-safe calls only — the child calls `setsid`, forks once more (the
//! intermediate writes the grandchild's pid to a pipe and `_exit`s), sets the umask and
//! working directory, resets signals, closes inherited descriptors and clears
//! close-on-exec on the locked pid file, on the hand-over and (when stderr is forwarded to
//! the launcher) on the configured stderr, kept for `ready()`. The hand-over is a memfd
//! named [`HANDOVER`] holding `v2:<pid-file fd or ->:<stderr fd or ->:<notify address>`
//! (the address ends in 128 random bits); `Daemon::start` in the new program finds it by
//! its name in `/proc/self/fd`, reads it and closes it, so the daemon's own children never
//! see it. A relative pid-file path is resolved through the handed-over descriptor
//! (`/proc/self/fd/N`): the new program starts in the daemon's working directory, not the
//! launcher's.
//!
//! Not an environment variable: removing one from the environment races any thread that
//! reads it through libc (`getenv` in C code, DNS resolution, time zones), and the
//! re-executed program usually runs threads already — it starts them again before it
//! calls `start`, as it did the first time. A descriptor is closed without touching
//! anything another thread may read, and nothing in `/proc/PID/environ` shows it.

use std::ffi::OsString;
use std::fs::File;
use std::os::fd::{AsFd, AsRawFd, OwnedFd, RawFd};

use nix::errno::Errno;
use nix::fcntl::OFlag;
use std::process::{Command, Stdio};

use nix::unistd::Pid;

use super::setup::Prepared;
use super::{Daemon, Running, launcher};
use crate::pidfile::PidFile;
use crate::privileges::Prepared as Switch;
use crate::privileges::apply::Step;
use crate::systemd::notify::Notifier;
use crate::{Error, ErrorKind, Result};

/// The name of the memfd that carries the hand-over into the re-executed program.
pub const HANDOVER: &str = "daemonic-reexec";

/// The longest hand-over: `v2:`, two descriptor numbers and a notify address (at most 108
/// bytes), with room to spare.
const HANDOVER_MAX: usize = 512;

/// What the launcher handed over.
pub(super) struct Handover {
    pid_fd: Option<RawFd>,
    /// The configured stderr, for `ready()` (stderr is the pipe to the launcher).
    stderr_fd: Option<RawFd>,
    notify: String,
}

/// Reads and closes the hand-over, if this process was started by a re-exec launcher.
pub(super) fn take_handover() -> Result<Option<Handover>> {
    let Some(fd) = crate::sys::take_inherited_memfd(HANDOVER) else {
        return Ok(None);
    };
    let file = File::from(fd);
    let mut buf = [0u8; HANDOVER_MAX];
    // At offset 0: the launcher's write left the shared offset at the end.
    let n = std::os::unix::fs::FileExt::read_at(&file, &mut buf, 0)
        .map_err(|e| Error::io("read the re-exec hand-over", e))?;
    drop(file);
    let value = String::from_utf8_lossy(&buf[..n]).into_owned();
    let bad = || {
        Error::new(
            ErrorKind::InvalidInput,
            format!("re-exec hand-over {value:?}: not a daemonic hand-over"),
        )
    };
    let mut parts = value.splitn(4, ':');
    let (Some("v2"), Some(pid_fd), Some(stderr_fd), Some(notify)) =
        (parts.next(), parts.next(), parts.next(), parts.next())
    else {
        return Err(bad());
    };
    let fd = |text: &str| match text {
        "-" => Ok(None),
        n => n
            .parse::<RawFd>()
            .ok()
            .filter(|&n| n > 2)
            .map(Some)
            .ok_or_else(bad),
    };
    Ok(Some(Handover {
        pid_fd: fd(pid_fd)?,
        stderr_fd: fd(stderr_fd)?,
        notify: notify.to_string(),
    }))
}

/// In the re-executed program: adopt the pid file and the notify address.
pub(super) fn become_daemon(d: &Daemon, h: Handover) -> Result<Running> {
    let notifier = Notifier::new(&h.notify)?;
    let pid_file = match (h.pid_fd, &d.pid_file) {
        (Some(fd), Some(path)) => {
            // Relative to the launcher's directory: the descriptor knows which file it is.
            let path = match path.is_relative() {
                true => std::fs::read_link(format!("/proc/self/fd/{fd}"))
                    .map_err(|e| Error::io(format!("readlink /proc/self/fd/{fd}"), e))?,
                false => path.clone(),
            };
            let file: File = crate::sys::adopt_inherited_fd(fd)
                .map_err(|e| Error::io(format!("adopt handed-over descriptor {fd}"), e))?
                .into();
            let p = PidFile::adopt(&path, file)?;
            p.write_pid(Pid::this())?;
            Some(p)
        }
        (None, None) => None,
        _ => {
            return Err(Error::new(
                ErrorKind::InvalidInput,
                "re-executed daemon: pid file configuration differs from the launcher's",
            ));
        }
    };
    let stderr_later = h
        .stderr_fd
        .map(|fd| {
            crate::sys::adopt_inherited_fd(fd)
                .map_err(|e| Error::io(format!("adopt handed-over descriptor {fd}"), e))
        })
        .transpose()?;
    Ok(Running::new(pid_file, Some(notifier), true).with_stderr_later(stderr_later))
}

/// In the launcher: spawn the program again, detached, and wait for its readiness.
pub(super) fn launch(d: &Daemon, privileges: Option<Switch>) -> Result<Running> {
    let Prepared {
        pid_file,
        listener,
        mut streams,
        forward,
        pid_r,
        pid_w,
    } = Prepared::new(d)?;

    let pid_fd = pid_file.as_ref().map(AsRawFd::as_raw_fd);
    let stderr_later = streams.stderr_later.take();
    let stderr_fd = stderr_later.as_ref().map(AsRawFd::as_raw_fd);
    let number = |fd: Option<RawFd>| fd.map_or("-".to_string(), |fd| fd.to_string());
    let marker = format!(
        "v2:{}:{}:{}",
        number(pid_fd),
        number(stderr_fd),
        listener.env_value()
    );
    let handover = handover(&marker)?;
    let mut keep = super::setup::kept_fds(d, pid_file.as_ref());
    keep.push(pid_w.as_raw_fd());
    keep.push(handover.as_raw_fd());
    keep.extend(stderr_fd);
    // Sorted now: the pre_exec hook must not allocate.
    keep.sort_unstable();
    let mut cmd = Command::new("/proc/self/exe");
    let mut args = std::env::args_os();
    if let Some(arg0) = args.next() {
        std::os::unix::process::CommandExt::arg0(&mut cmd, arg0);
    }
    cmd.args(args.collect::<Vec<OsString>>())
        .current_dir(&d.working_dir)
        .stdin(Stdio::from(streams.stdin))
        .stdout(Stdio::from(streams.stdout))
        .stderr(Stdio::from(streams.stderr));
    let (umask, pid_w_raw) = (d.umask_mode(), pid_w.as_raw_fd());
    if let Some(p) = &privileges {
        for (key, value) in p.env() {
            cmd.env(key, value);
        }
    }
    // The child writes the number of a failed privilege step here (see `spawn_as`).
    let (report_r, report_w) = nix::unistd::pipe2(OFlag::O_CLOEXEC | OFlag::O_NONBLOCK)
        .map_err(|e| Error::sys("pipe2", e))?;
    let steps = ChildSteps {
        switch: privileges.clone(),
        report_w,
        pid_w: pid_w_raw,
        umask,
        keep,
        pid_fd,
        stderr_fd,
        handover: handover.as_raw_fd(),
    };
    steps.install(&mut cmd);
    // The intermediate is reaped by `launcher::wait` (std's `Child` does not wait on drop).
    let intermediate = cmd
        .spawn()
        .map_err(|e| spawn_error(privileges.as_ref(), &report_r, e))?;
    drop((cmd, pid_w, handover, stderr_later));
    launcher::wait(launcher::Wait {
        name: &d.name,
        shown: d.shown,
        timeout: d.ready_timeout,
        listener,
        intermediate: Pid::from_raw(intermediate.id() as i32),
        pid_pipe: pid_r,
        pid_file,
        forward,
    })
}

/// Why the re-exec's spawn failed: the privilege step the child reported on `report_r`
/// before it died, if it got that far, else the spawn's own error.
fn spawn_error(privileges: Option<&Switch>, report_r: &OwnedFd, e: std::io::Error) -> Error {
    let mut step = [0u8];
    let failed = nix::unistd::read(report_r, &mut step)
        .ok()
        .filter(|&n| n == 1);
    match (privileges, failed.and_then(|_| Step::from_u8(step[0]))) {
        (Some(p), Some(s)) => p
            .error((s, e.raw_os_error().map(Errno::from_raw)))
            .prefixed("spawn /proc/self/exe (re-exec)"),
        _ => Error::io("spawn /proc/self/exe (re-exec)", e),
    }
}

/// The hand-over memfd, holding `marker` (close-on-exec until the child's hook clears it).
fn handover(marker: &str) -> Result<OwnedFd> {
    use nix::sys::memfd::{MFdFlags, memfd_create};
    let fd =
        memfd_create(HANDOVER, MFdFlags::MFD_CLOEXEC).map_err(|e| Error::sys("memfd_create", e))?;
    let mut file = File::from(fd);
    std::io::Write::write_all(&mut file, marker.as_bytes())
        .map_err(|e| Error::io("write the re-exec hand-over", e))?;
    Ok(file.into())
}

/// What the re-executed child does between fork and exec (see the module docs), prepared
/// before the fork so that the hook only makes async-signal-safe calls.
struct ChildSteps {
    switch: Option<Switch>,
    /// Where the child writes the number of a failed privilege step.
    report_w: OwnedFd,
    /// Where the intermediate writes the grandchild's pid.
    pid_w: RawFd,
    umask: nix::sys::stat::Mode,
    /// Descriptors to keep, sorted (the hook must not allocate).
    keep: Vec<RawFd>,
    pid_fd: Option<RawFd>,
    /// The configured stderr, kept across exec for `ready()`.
    stderr_fd: Option<RawFd>,
    /// The hand-over memfd (kept open across exec).
    handover: RawFd,
}

impl ChildSteps {
    fn install(self, cmd: &mut Command) {
        let hook = move || {
            // First, while descriptors are all open: the switch and its failure report.
            if let Some(p) = &self.switch {
                p.apply_in_child(self.report_w.as_fd())?;
            }
            nix::unistd::setsid()?;
            // SAFETY: this runs in the pre_exec hook, as `fork_in_pre_exec` requires.
            #[allow(unsafe_code)]
            unsafe { crate::sys::fork_in_pre_exec(self.pid_w) }?;
            nix::sys::stat::umask(self.umask);
            crate::sys::reset_signals(false)?;
            crate::sys::close_all_but(&self.keep)?;
            for fd in self.pid_fd.into_iter().chain(self.stderr_fd) {
                crate::sys::clear_cloexec(fd)?;
            }
            crate::sys::clear_cloexec(self.handover)?;
            Ok(())
        };
        // SAFETY: the hook calls only async-signal-safe functions on data prepared before
        // the fork: the privilege switch (setgroups/setgid/setuid/capset/prctl/write, see
        // `apply_in_child`), setsid, fork/write/_exit, umask, sigaction/sigprocmask,
        // close_range and fcntl; `keep` is sorted already, so nothing allocates.
        #[allow(unsafe_code)]
        unsafe {
            crate::sys::pre_exec(cmd, hook)
        };
    }
}
