//! Socket activation, sending side: start a child with descriptors passed the way systemd
//! passes them, so that any program that supports socket activation can be supervised
//! with its sockets held by the supervisor.
//!
//! The child must see its descriptors as 3, 4, … with close-on-exec cleared, and
//! `LISTEN_FDS`, `LISTEN_FDNAMES` and `LISTEN_PID` in its environment. `LISTEN_PID` must be
//! the child's *own* pid, which exists only after `fork` — and between `fork` and `exec`
//! only async-signal-safe code may run (another thread of ours may hold the allocator's
//! lock, frozen forever in the child). So [`ListenFds::install`] prepares everything before
//! the fork: the resolved program path, `argv`, the complete environment with a
//! `LISTEN_PID=` slot, and the descriptors. Its `pre_exec` hook then only moves
//! descriptors (`fcntl`, `dup2`), writes the pid's digits into the prepared slot
//! (`getpid`) and calls `execve` itself.
//!
//! ## Consequences
//!
//! - The hook performs the `exec`, so it must be the command's **last** `pre_exec` hook;
//!   [`spawn`] combines it correctly with [`process::spawn`].
//! - The environment is built from this process's plus the command's `env` and
//!   `env_remove` calls. `Command::env_clear` cannot be observed through std's API, so
//!   it has no effect here; remove variables one by one instead. Any `LISTEN_*` variables
//!   of our own are replaced.
//! - The program is looked up in `PATH` before the fork, so "not found" is an error of
//!   [`install`](ListenFds::install). If `execve` still fails in the child, the child
//!   exits with status 127 (descriptors 3… are already replaced by then, which may
//!   include std's private error pipe).
//! - [`ListenFds::set_watchdog_pid`] has the same hook set `WATCHDOG_PID` to the child's
//!   own pid too, as systemd does for a service with a watchdog — also with no descriptors
//!   (then no `LISTEN_*` variable is set).
//!
//! ```
//! use std::net::TcpListener;
//! use std::process::Command;
//! use daemonic::systemd::handoff::{self, ListenFds};
//!
//! # fn main() -> Result<(), Box<dyn std::error::Error>> {
//! let listener = TcpListener::bind("127.0.0.1:0")?;
//! let mut fds = ListenFds::new();
//! fds.push("http", &listener)?;
//! let mut cmd = Command::new("sh");
//! cmd.args(["-c", r#"test "$LISTEN_PID" = "$$" && test "$LISTEN_FDNAMES" = http && test -S /proc/self/fd/3"#]);
//! let mut child = handoff::spawn(&mut cmd, &fds)?;
//! assert!(child.child.wait()?.success());
//!
//! let mut watched = ListenFds::new();
//! watched.set_watchdog_pid();
//! let mut cmd = Command::new("sh");
//! cmd.env("WATCHDOG_USEC", "30000000")
//!     .args(["-c", r#"test "$WATCHDOG_PID" = "$$" && test -z "$LISTEN_PID$LISTEN_FDS""#]);
//! assert!(handoff::spawn(&mut cmd, &watched)?.child.wait()?.success());
//! # Ok(())
//! # }
//! ```

use std::ffi::{CString, OsStr, OsString};
use std::os::fd::{AsFd, OwnedFd};
use std::os::unix::ffi::OsStrExt;
use std::path::{Path, PathBuf};
use std::process::Command;

use super::activation::VARIABLES;
use super::notify::valid_fd_name;
use crate::process::{self, Spawned};
use crate::sys::ListenExec;
use crate::{Error, ErrorKind, Result};

/// Descriptors to pass to a child, each with a name for `LISTEN_FDNAMES`.
#[derive(Debug, Default)]
pub struct ListenFds {
    fds: Vec<(String, OwnedFd)>,
    watchdog_pid: bool,
}

impl ListenFds {
    /// An empty set.
    pub fn new() -> ListenFds {
        ListenFds::default()
    }

    /// Adds a duplicate of `fd` under `name` (the child finds it as descriptor
    /// `3 + position`). The caller keeps its own descriptor.
    pub fn push(&mut self, name: &str, fd: impl AsFd) -> Result<()> {
        if !valid_fd_name(name) {
            return Err(Error::new(
                ErrorKind::InvalidInput,
                format!(
                    "descriptor name {name:?}: must be printable ASCII without ':' or spaces, at most 255 characters"
                ),
            ));
        }
        let dup = fd
            .as_fd()
            .try_clone_to_owned()
            .map_err(|e| Error::io(format!("dup descriptor for {name:?}"), e))?;
        self.fds.push((name.to_string(), dup));
        Ok(())
    }

    /// How many descriptors will be passed.
    pub fn len(&self) -> usize {
        self.fds.len()
    }

    /// True if none will be passed.
    pub fn is_empty(&self) -> bool {
        self.fds.is_empty()
    }

    /// Also sets `WATCHDOG_PID` to the child's own pid, as systemd does for a service with
    /// `WatchdogSec=`: clients such as libsystemd's `sd_watchdog_enabled` only accept
    /// `WATCHDOG_USEC` (which the caller sets) when `WATCHDOG_PID` names them. Like
    /// `LISTEN_PID`, it is written between fork and exec; it works with no descriptors too.
    pub fn set_watchdog_pid(&mut self) {
        self.watchdog_pid = true;
    }

    /// Prepares `cmd` so that its child receives these descriptors (see the
    /// [module docs](self)): registers a `pre_exec` hook that must stay the last one.
    /// The hook holds its own duplicates of the descriptors until `cmd` is dropped, so a
    /// `Command` can be spawned again (a restart) with the same sockets.
    pub fn install(&self, cmd: &mut Command) -> Result<()> {
        self.install_in(cmd, false)
    }

    /// [`install`](Self::install) for a child that `chroot`s before its `exec`
    /// (`chrooted`): its program is then looked for inside the new root, by the child.
    fn install_in(&self, cmd: &mut Command, chrooted: bool) -> Result<()> {
        if self.fds.is_empty() {
            // Nothing to pass: only make sure the child does not take ours.
            for k in VARIABLES {
                cmd.env_remove(k);
            }
            if !self.watchdog_pid {
                return Ok(());
            }
        }
        let exec = self.prepare(cmd, chrooted)?;
        crate::sys::pre_exec_listen(cmd, exec);
        Ok(())
    }

    /// The `execve` of `cmd`'s child with these descriptors, prepared now: the program
    /// found in the child's `PATH`, its arguments and environment (without daemonic's
    /// socket-activation variables when there are no descriptors), and the descriptors.
    ///
    /// For a child that `chroot`s first (`chrooted`) nothing is looked up here (this
    /// root's files say nothing about the new one's, which the service's user may write):
    /// the child tries each directory of its `PATH` in turn, as `execvp` does, inside its
    /// root.
    pub(crate) fn prepare(&self, cmd: &Command, chrooted: bool) -> Result<crate::sys::ListenExec> {
        let mut pid_vars = Vec::with_capacity(2);
        if !self.fds.is_empty() {
            pid_vars.push("LISTEN_PID");
        }
        if self.watchdog_pid {
            pid_vars.push("WATCHDOG_PID");
        }
        let program = cmd.get_program().to_owned();
        let env = child_env(cmd, &self.fds, &pid_vars);
        let paths = if chrooted {
            candidates(&program, &env)
        } else {
            vec![resolve(&program, cmd.get_current_dir(), &env)?]
        };
        let cstr = |s: &[u8], what: &str| {
            CString::new(s).map_err(|_| {
                Error::new(
                    ErrorKind::InvalidInput,
                    format!(
                        "spawn {}: {what} contains a NUL byte",
                        program.to_string_lossy()
                    ),
                )
            })
        };
        let mut argv = vec![cstr(program.as_bytes(), "program name")?];
        for a in cmd.get_args() {
            argv.push(cstr(a.as_bytes(), "an argument")?);
        }
        let env = env
            .iter()
            .map(|e| cstr(e.as_bytes(), "an environment variable"))
            .collect::<Result<Vec<_>>>()?;
        let fds = self
            .fds
            .iter()
            .map(|(name, fd)| {
                fd.try_clone()
                    .map_err(|e| Error::io(format!("dup descriptor for {name:?}"), e))
            })
            .collect::<Result<Vec<_>>>()?;
        let paths = paths
            .iter()
            .map(|p| cstr(p.as_os_str().as_bytes(), "program path"))
            .collect::<Result<Vec<_>>>()?;
        Ok(ListenExec::new(paths, argv, env, &pid_vars, fds))
    }
}

/// [`process::spawn`] with `fds` passed by socket activation: the child leads its own
/// process group, dies with its parent, and finds its sockets by name.
pub fn spawn(cmd: &mut Command, fds: &ListenFds) -> Result<Spawned> {
    process::prepare_supervised(cmd);
    fds.install(cmd)?;
    process::start(cmd)
}

/// [`process::spawn_as`] with `fds` passed by socket activation: the child drops to
/// `privileges` first, then finds its sockets by name. The sockets were opened by the
/// caller (as root, say), so a service that runs as another user can still listen on a
/// privileged port without any capability.
pub fn spawn_as(
    cmd: &mut Command,
    privileges: &crate::privileges::Prepared,
    fds: &ListenFds,
) -> Result<Spawned> {
    let chrooted = privileges.chroot_dir().is_some();
    process::spawn_as_then(cmd, privileges, |cmd| fds.install_in(cmd, chrooted))
}

/// The child's environment as `KEY=VALUE` strings, without `pid_vars` (set in the child);
/// `LISTEN_FDS` and `LISTEN_FDNAMES` only when there are descriptors.
fn child_env(cmd: &Command, fds: &[(String, OwnedFd)], pid_vars: &[&str]) -> Vec<OsString> {
    let mut vars: std::collections::BTreeMap<OsString, OsString> = std::env::vars_os().collect();
    for (k, v) in cmd.get_envs() {
        match v {
            Some(v) => vars.insert(k.to_owned(), v.to_owned()),
            None => vars.remove(k),
        };
    }
    for k in VARIABLES.iter().chain(pid_vars) {
        vars.remove(OsStr::new(k));
    }
    if !fds.is_empty() {
        let names: Vec<&str> = fds.iter().map(|(n, _)| n.as_str()).collect();
        vars.insert("LISTEN_FDS".into(), fds.len().to_string().into());
        vars.insert("LISTEN_FDNAMES".into(), names.join(":").into());
    }
    vars.into_iter()
        .map(|(mut k, v)| {
            k.push("=");
            k.push(v);
            k
        })
        .collect()
}

/// The `PATH` of the child's environment, or the default one.
fn child_path(env: &[OsString]) -> OsString {
    env.iter()
        .find_map(|e| e.as_bytes().strip_prefix(b"PATH="))
        .map(|p| OsStr::from_bytes(p).to_owned())
        .unwrap_or_else(|| "/usr/local/bin:/usr/bin:/bin".into())
}

/// Where a chrooted child tries to run `program` from, in order: itself if it names a
/// path, else each absolute directory of the child's `PATH` with it.
fn candidates(program: &OsStr, env: &[OsString]) -> Vec<PathBuf> {
    if program.as_bytes().contains(&b'/') {
        return vec![PathBuf::from(program)];
    }
    std::env::split_paths(&child_path(env))
        .filter(|dir| dir.is_absolute())
        .map(|dir| dir.join(program))
        .collect()
}

/// Finds `program` as `execvp` would, in the `PATH` of the child's environment.
fn resolve(program: &OsStr, cwd: Option<&Path>, env: &[OsString]) -> Result<PathBuf> {
    // The errno `execvp` would fail with, so that callers map it as they map a failed
    // exec (127 not found, 126 not executable).
    let failed = |why: &str, errno: i32| {
        Error::io(
            format!("spawn {}{why}", program.to_string_lossy()),
            std::io::Error::from_raw_os_error(errno),
        )
    };
    let not_found = |why: &str| failed(why, libc::ENOENT);
    if program.as_bytes().contains(&b'/') {
        let full = match cwd {
            Some(dir) if !Path::new(program).is_absolute() => dir.join(program),
            _ => PathBuf::from(program),
        };
        return if executable(&full) {
            Ok(PathBuf::from(program))
        } else if full.exists() {
            Err(failed("", libc::EACCES))
        } else {
            Err(not_found(""))
        };
    }
    std::env::split_paths(&child_path(env))
        .map(|dir| dir.join(program))
        .find(|p| p.is_absolute() && executable(p))
        .ok_or_else(|| not_found(" (not found in PATH)"))
}

fn executable(path: &Path) -> bool {
    path.is_file() && nix::unistd::access(path, nix::unistd::AccessFlags::X_OK).is_ok()
}
