//! Small system helpers: the monotonic clock, signals, reaping, an inotify watch, files and spawning.

use std::fs::{self, File, OpenOptions};
use std::io;
use std::os::fd::AsRawFd;
use std::os::unix::fs::PermissionsExt;
use std::path::Path;
use std::process::{Command, Stdio};
use std::time::Duration;

use crate::Res;

pub fn mono_ns() -> u64 {
    let mut ts = libc::timespec {
        tv_sec: 0,
        tv_nsec: 0,
    };
    // SAFETY: a valid pointer to a timespec.
    unsafe { libc::clock_gettime(libc::CLOCK_MONOTONIC, &mut ts) };
    ts.tv_sec as u64 * 1_000_000_000 + ts.tv_nsec as u64
}

pub fn kill(pid: i32, sig: i32) -> bool {
    // SAFETY: kill has no memory preconditions; pid > 0 is checked (never a group).
    pid > 0 && unsafe { libc::kill(pid, sig) } == 0
}

/// Reaps every exited child (we are a subreaper: orphans of the tools are ours too).
pub fn reap() {
    loop {
        let mut status = 0;
        // SAFETY: a valid pointer to an int.
        let r = unsafe { libc::waitpid(-1, &mut status, libc::WNOHANG) };
        if r <= 0 {
            break;
        }
    }
}

/// An inotify watch on one file: `wait` returns when it was written to (or on timeout).
pub struct Watch(File);

impl Watch {
    pub fn new(path: &Path) -> Res<Watch> {
        use std::os::fd::FromRawFd;
        use std::os::unix::ffi::OsStrExt;
        // SAFETY: plain syscalls; the path is NUL-terminated below.
        let fd = unsafe { libc::inotify_init1(libc::IN_CLOEXEC | libc::IN_NONBLOCK) };
        if fd < 0 {
            return Err(format!("inotify_init1: {}", io::Error::last_os_error()));
        }
        // SAFETY: fd is a fresh descriptor we own.
        let f = unsafe { File::from_raw_fd(fd) };
        let mut c = path.as_os_str().as_bytes().to_vec();
        c.push(0);
        // SAFETY: c is NUL-terminated and outlives the call.
        let wd = unsafe { libc::inotify_add_watch(fd, c.as_ptr().cast(), libc::IN_MODIFY) };
        if wd < 0 {
            return Err(format!(
                "inotify_add_watch {}: {}",
                path.display(),
                io::Error::last_os_error()
            ));
        }
        Ok(Watch(f))
    }

    pub fn wait(&self, timeout: Duration) {
        let mut p = libc::pollfd {
            fd: self.0.as_raw_fd(),
            events: libc::POLLIN,
            revents: 0,
        };
        // SAFETY: one valid pollfd.
        unsafe { libc::poll(&mut p, 1, timeout.as_millis().min(i32::MAX as u128) as i32) };
        let mut buf = [0u8; 4096];
        // Drain (non-blocking); the events themselves do not matter.
        // SAFETY: reads into a buffer of the given length.
        while unsafe { libc::read(self.0.as_raw_fd(), buf.as_mut_ptr().cast(), buf.len()) } > 0 {}
    }
}

pub fn write_file(path: &Path, text: &str, mode: u32) -> Res<()> {
    fs::write(path, text).map_err(|e| format!("{}: {e}", path.display()))?;
    fs::set_permissions(path, fs::Permissions::from_mode(mode))
        .map_err(|e| format!("{}: {e}", path.display()))
}

pub fn mkdir(path: &Path) -> Res<()> {
    fs::create_dir_all(path).map_err(|e| format!("{}: {e}", path.display()))
}

/// `cmd` with stdin from /dev/null and stdout+stderr appended to `log`.
fn logged<'c>(cmd: &'c mut Command, log: &Path) -> Res<&'c mut Command> {
    let out = OpenOptions::new()
        .create(true)
        .append(true)
        .open(log)
        .map_err(|e| format!("{}: {e}", log.display()))?;
    let err = out.try_clone().map_err(|e| e.to_string())?;
    Ok(cmd.stdin(Stdio::null()).stdout(out).stderr(err))
}

/// Runs `cmd` to its end with stdin from /dev/null and stdout+stderr appended to `log`.
pub fn run_logged(cmd: &mut Command, log: &Path) -> Res<std::process::ExitStatus> {
    logged(cmd, log)?
        .status()
        .map_err(|e| format!("run {:?}: {e}", cmd.get_program()))
}

/// Spawns `cmd` with stdin from /dev/null and stdout+stderr appended to `log`; its pid.
pub fn spawn(cmd: &mut Command, log: &Path) -> Res<i32> {
    let child = logged(cmd, log)?
        .spawn()
        .map_err(|e| format!("spawn {:?}: {e}", cmd.get_program()))?;
    // Reaped by `reap`, never by the Child handle (dropping it neither waits nor kills).
    Ok(child.id() as i32)
}
