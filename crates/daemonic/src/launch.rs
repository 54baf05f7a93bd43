//! [`launch`]: a supervised child started without `fork`.
//!
//! [`process::spawn`] and its relatives go through `std::process::Command`, which
//! must `fork` as soon as a `pre_exec` hook is registered — and a supervised child always
//! has some (parent-death signal, signal reset, a user switch, a cgroup). `fork` copies
//! the supervisor's page tables, and being born in a cgroup then took a second process
//! (`into_cgroup`'s clone from the forked child). `launch` makes the child in one system
//! call instead: `clone3(CLONE_VM | CLONE_VFORK | CLONE_PIDFD | CLONE_INTO_CGROUP)` on
//! x86-64 (see `sys::spawn` for the fallbacks), and does everything std and the hooks did
//! in that child, in the same order:
//!
//! 1. enter the cgroup by writing `cgroup.procs` if it could not be born there; or carry
//!    the tree mark ([`crate::tree_mark`]) when there is no cgroup;
//! 2. lead its own process group (`setpgid(0, 0)`);
//! 3. standard streams (`dup2`), then the working directory (`chdir`);
//! 4. the user switch ([`Prepared`]), when there is one;
//! 5. the parent-death signal (after the switch, which clears it), the original soft
//!    limit on open files, every signal at its default and unblocked;
//! 6. the descriptors of socket activation moved to 3, 4, … and `LISTEN_PID` /
//!    `WATCHDOG_PID` written (see [`ListenFds`]), then `execve` of the program found
//!    before the clone in the child's `PATH` — or, for a child that `chroot`s, tried in
//!    each directory of that `PATH` by the child, inside its root, as `execvp` does.
//!
//! A step that fails writes its number and errno where the parent reads them, and exits
//! with 127: into the parent's memory when the child shares it (`CLONE_VM`; the clone
//! returns once the child has exec'd or exited), else into a close-on-exec pipe the
//! parent reads to its end. The parent turns that into an error naming the step
//! (`spawn /usr/bin/web: chdir "/srv/web": No such file or directory`). A program that is
//! not found fails before anything is started.
//!
//! Unlike `execvp`, a file without a `#!` line that the kernel refuses (`ENOEXEC`) is not
//! run with `/bin/sh`: the spawn fails with "Exec format error", as systemd's does.

use std::ffi::CString;
use std::os::fd::{AsFd, AsRawFd, OwnedFd, RawFd};
use std::os::unix::ffi::OsStrExt;
use std::process::Command;

use nix::errno::Errno;
use nix::fcntl::OFlag;
use nix::unistd::Pid;

use crate::privileges::Prepared;
use crate::privileges::apply::Step;
use crate::process::{self, PidFd, claim_cloned};
use crate::systemd::handoff::ListenFds;
use crate::tree_mark::TreeMark;
use crate::{Error, ErrorKind, Result};

/// Where one of a launched child's standard streams goes.
#[derive(Debug, Default)]
pub enum ChildIo {
    /// The supervisor's own.
    #[default]
    Inherit,
    /// `/dev/null`.
    Null,
    /// This descriptor (a pipe's write end, say), closed in the parent after the launch.
    Fd(OwnedFd),
}

/// What [`launch`] starts a child with, besides its [`Command`].
#[derive(Debug, Default)]
pub struct Launch<'a> {
    /// Standard input, output and error.
    pub stdio: [ChildIo; 3],
    /// The cgroup v2 directory the child is born in (see [`process::into_cgroup`] for why
    /// at birth, and for a group that `cgroup.kill` emptied).
    pub cgroup: Option<OwnedFd>,
    /// Carried by the child when it has no cgroup.
    pub mark: Option<TreeMark>,
    /// The user it runs as (see [`process::spawn_as`]).
    pub privileges: Option<&'a Prepared>,
    /// Descriptors passed by socket activation, and `WATCHDOG_PID`.
    pub fds: Option<&'a ListenFds>,
}

/// The size of a child's report of a failed step: the [`Stage`] (never 0), a number
/// within it, the errno.
const REPORT: usize = 6;

/// The steps of the [module docs](self) that report a failure of their own.
#[derive(Clone, Copy)]
#[repr(u8)]
enum Stage {
    Cgroup = 1,
    ProcessGroup,
    Stdio,
    Chdir,
    Privileges,
    Supervised,
    Exec,
}

/// Starts `cmd` as [`process::spawn`] does (with `with.privileges`: as
/// [`process::spawn_as`]; with `with.fds`: as
/// [`handoff::spawn`](crate::systemd::handoff::spawn)), without `fork`: see the
/// [module docs](self). Of `cmd` only the program, arguments, environment and working
/// directory count; its standard streams and `pre_exec` hooks are not used (`with`
/// says the streams). Returns the child's handle, claimed as [`process::spawn`]'s.
pub fn launch(cmd: &mut Command, with: Launch<'_>) -> Result<PidFd> {
    launch_in(crate::sys::Mode::DEFAULT, cmd, with)
}

/// [`launch`], the child made as `mode` says (a test runs both on x86-64).
fn launch_in(mode: crate::sys::Mode, cmd: &mut Command, with: Launch<'_>) -> Result<PidFd> {
    let program = cmd.get_program().to_string_lossy().into_owned();
    if let Some(p) = with.privileges {
        process::add_user_env(cmd, p);
    }
    let empty = ListenFds::new();
    let chrooted = with.privileges.is_some_and(|p| p.chroot_dir().is_some());
    let mut exec = with.fds.unwrap_or(&empty).prepare(cmd, chrooted)?;
    let mut null = None;
    let mut stdio: [RawFd; 3] = [-1; 3];
    for (slot, io) in stdio.iter_mut().zip(&with.stdio) {
        *slot = match io {
            ChildIo::Inherit => -1,
            ChildIo::Fd(fd) => fd.as_raw_fd(),
            ChildIo::Null => {
                if null.is_none() {
                    let fd = nix::fcntl::open(
                        "/dev/null",
                        OFlag::O_RDWR | OFlag::O_CLOEXEC,
                        nix::sys::stat::Mode::empty(),
                    )
                    .map_err(|e| Error::sys("open /dev/null", e))?;
                    null = Some(fd);
                }
                null.as_ref().map_or(-1, |fd| fd.as_raw_fd())
            }
        };
    }
    let cwd = match cmd.get_current_dir() {
        Some(dir) => Some(CString::new(dir.as_os_str().as_bytes()).map_err(|_| {
            Error::new(
                ErrorKind::InvalidInput,
                format!("spawn {program}: the working directory contains a NUL byte"),
            )
        })?),
        None => None,
    };
    // A child sharing our memory reports into `shared`; a copy, through a pipe.
    let report = match mode.shares_memory() {
        true => None,
        false => Some(nix::unistd::pipe2(OFlag::O_CLOEXEC).map_err(|e| Error::sys("pipe2", e))?),
    };
    // Read after the clone: the clone call is opaque to the compiler (assembly that may
    // run the body, which holds this cell), so the child's write is not assumed away.
    let shared = std::cell::Cell::new([0u8; REPORT]);
    let parent = Pid::this();
    let privileges = with.privileges;
    let mark = with.mark;
    let cgroup = with.cgroup.as_ref();
    // The child: system calls only, on what was prepared above (see `sys::spawn`).
    let mut body = |in_cgroup: bool| -> i32 {
        let fail = |stage: Stage, step: u8, errno: i32| -> i32 {
            let mut msg = [stage as u8, step, 0, 0, 0, 0];
            msg[2..].copy_from_slice(&errno.to_ne_bytes());
            match &report {
                Some((_, w)) => {
                    let _ = nix::unistd::write(w, &msg);
                }
                // The parent waits (CLONE_VFORK) until this child has exec'd or exited.
                None => shared.set(msg),
            }
            127
        };
        let errno = |e: Errno| e as i32;
        let io_errno = |e: std::io::Error| e.raw_os_error().unwrap_or(0);
        match cgroup {
            // Not born in the group (`clone3` refused): enter it.
            Some(dir) if !in_cgroup => {
                let entered = nix::fcntl::openat(
                    dir,
                    "cgroup.procs",
                    OFlag::O_WRONLY | OFlag::O_CLOEXEC,
                    nix::sys::stat::Mode::empty(),
                )
                .and_then(|procs| nix::unistd::write(&procs, b"0"));
                if let Err(e) = entered {
                    return fail(Stage::Cgroup, 0, errno(e));
                }
            }
            Some(_) => {}
            None => {
                if let Some(m) = mark {
                    m.mark_this_process();
                }
            }
        }
        if let Err(e) = nix::unistd::setpgid(Pid::from_raw(0), Pid::from_raw(0)) {
            return fail(Stage::ProcessGroup, 0, errno(e));
        }
        for (target, &fd) in stdio.iter().enumerate() {
            let target = target as RawFd;
            let done = match fd {
                -1 => Ok(()),
                fd if fd == target => crate::sys::clear_cloexec(fd),
                fd => crate::sys::dup_onto(fd, target),
            };
            if let Err(e) = done {
                return fail(Stage::Stdio, target as u8, io_errno(e));
            }
        }
        if let Some(dir) = &cwd
            && let Err(e) = nix::unistd::chdir(dir.as_c_str())
        {
            return fail(Stage::Chdir, 0, errno(e));
        }
        if let Some(p) = privileges
            && let Err((step, e)) = p.steps()
        {
            return fail(Stage::Privileges, step as u8, e.map_or(0, errno));
        }
        if let Err(e) = process::supervise_in_child(parent) {
            return fail(Stage::Supervised, 0, io_errno(e));
        }
        let e = exec.run();
        fail(Stage::Exec, 0, io_errno(e))
    };
    // SAFETY: the body makes system calls only (nix's thin wrappers, `Prepared::steps`
    // with its raw id calls, `ListenExec::run`), on data prepared above and borrowed, not
    // moved or dropped (it drops only the `cgroup.procs` descriptor it opened itself: a
    // `close`); it allocates nothing and takes no lock; its report is a `Cell` write.
    #[allow(unsafe_code)]
    let cloned = unsafe {
        crate::sys::clone_child(mode, with.cgroup.as_ref().map(|d| d.as_raw_fd()), &mut body)
    }
    .map_err(|e| Error::io(format!("spawn {program}: clone"), e))?;
    let pid = Pid::from_raw(cloned.pid);
    let msg = match report {
        Some((r, w)) => {
            drop(w);
            let mut msg = [0u8; REPORT];
            (read_report(r.as_fd(), &mut msg) == REPORT).then_some(msg)
        }
        // The child has exec'd (and left `shared` alone) or written it and exited.
        None => Some(shared.get()).filter(|msg| msg[0] != 0),
    };
    let Some(msg) = msg else {
        return Ok(claim_cloned(cloned.pidfd, pid));
    };
    // The child failed before exec and exited: reap it, and say why.
    while let Err(Errno::EINTR) = nix::sys::wait::waitpid(pid, None) {}
    let errno = i32::from_ne_bytes([msg[2], msg[3], msg[4], msg[5]]);
    let os = std::io::Error::from_raw_os_error(errno);
    Err(match msg[0] {
        s if s == Stage::Privileges as u8 => match (privileges, Step::from_u8(msg[1])) {
            (Some(p), Some(step)) => {
                let errno = (errno != 0).then(|| Errno::from_raw(errno));
                p.error((step, errno)).prefixed(&format!("spawn {program}"))
            }
            _ => Error::io(format!("spawn {program}: drop privileges"), os),
        },
        s if s == Stage::Cgroup as u8 => Error::io(
            format!("spawn {program}: enter its cgroup (write cgroup.procs)"),
            os,
        ),
        s if s == Stage::ProcessGroup as u8 => Error::io(format!("spawn {program}: setpgid"), os),
        s if s == Stage::Stdio as u8 => Error::io(
            format!("spawn {program}: redirect descriptor {} (dup2)", msg[1]),
            os,
        ),
        s if s == Stage::Chdir as u8 => Error::io(
            format!(
                "spawn {program}: chdir {:?}",
                cmd.get_current_dir().unwrap_or(std::path::Path::new(""))
            ),
            os,
        ),
        s if s == Stage::Supervised as u8 => Error::io(
            format!("spawn {program}: set the parent-death signal, limits and signals"),
            os,
        ),
        _ => Error::io(format!("spawn {program}"), os),
    })
}

/// Reads the child's report until end of file (its `execve` closed the pipe) or a full
/// message; returns the number of bytes read.
fn read_report(fd: std::os::fd::BorrowedFd<'_>, msg: &mut [u8; REPORT]) -> usize {
    let mut got = 0;
    while got < msg.len() {
        match nix::unistd::read(fd, &mut msg[got..]) {
            Ok(0) => break,
            Ok(n) => got += n,
            Err(Errno::EINTR) => continue,
            Err(_) => break,
        }
    }
    got
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::process::Exit;
    use std::io::Read;

    /// What the other architectures run: the child made as a copy, not sharing memory.
    #[test]
    fn a_copied_child_is_launched_and_its_failures_reported_alike() {
        let (r, w) = nix::unistd::pipe2(OFlag::O_CLOEXEC).unwrap();
        let mut cmd = Command::new("sh");
        cmd.args(["-c", "echo \"$X\"; exit 4"]).env("X", "copied");
        let with = Launch {
            stdio: [ChildIo::Null, ChildIo::Fd(w), ChildIo::Inherit],
            ..Default::default()
        };
        let child = launch_in(crate::sys::Mode::Copied, &mut cmd, with).unwrap();
        let mut text = String::new();
        std::fs::File::from(r).read_to_string(&mut text).unwrap();
        assert!(child.wait_exit(std::time::Duration::from_secs(10)).unwrap());
        assert_eq!(child.reap().unwrap(), Some(Exit::Code(4)));
        assert_eq!(text, "copied\n");

        let mut cmd = Command::new("true");
        cmd.current_dir("/nonexistent/daemonic-launch-test");
        let e = launch_in(crate::sys::Mode::Copied, &mut cmd, Launch::default()).unwrap_err();
        assert!(e.to_string().starts_with("spawn true: chdir "), "{e}");
        assert_eq!(e.os_error(), Some(libc::ENOENT));
    }
}
