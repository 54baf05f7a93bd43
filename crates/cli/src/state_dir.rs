//! Where daemonic keeps a service's pid file, status file, control socket and captured
//! output.
//!
//! State: `--state-dir` / `DAEMONIC_STATE_DIR` if given; else `$XDG_RUNTIME_DIR/daemonic`;
//! else `/run/daemonic` for root; else `/tmp/daemonic-<uid>`. Created with mode 0700.
//! As root, an `XDG_RUNTIME_DIR` that is not a directory of root's (another user's, kept
//! by `su` or `sudo -E`) is ignored, with a note on stderr, and `/run/daemonic` is used.
//!
//! Whoever can write to the state directory can replace a pid file, a status file or a
//! control socket in it, so [`StateDir::ensure`] — called by *every* command that uses
//! the directory, `status` and `stop` as much as `start` — refuses a directory that is a
//! symlink (opened with `O_NOFOLLOW`), that belongs to another user (root's must belong to
//! root) or that group or others may write to — even with the sticky bit:
//! `/tmp/daemonic-<uid>` made in advance by someone else must not become ours. Its parent
//! must belong to this user or root and not be writable by others unless sticky, so that
//! nobody can swap the checked directory for another afterwards. What it holds, and with
//! which modes: `NAME.pid` 0644 (the pid is no secret), `NAME.status` 0644, `NAME.sock`
//! 0600 (only the owner may control), logs 0640 in a 0700 directory.
//!
//! Logs (a service's captured stdout/stderr, see [`default_log_path`]) outlive a reboot,
//! so by default they do not go to the runtime directory: `/var/log/daemonic` for root,
//! else `$XDG_STATE_HOME/daemonic/log` (`~/.local/state/daemonic/log`). An explicit state
//! directory holds the logs too, so that one `--state-dir` keeps a test or a sandbox
//! entirely in one place.

use std::os::unix::fs::DirBuilderExt;
use std::path::{Path, PathBuf};

use anyhow::{Context, Result, bail};

#[derive(Debug, Clone)]
pub struct StateDir {
    dir: PathBuf,
    /// Given by `--state-dir` / `DAEMONIC_STATE_DIR` (it then holds the logs too).
    explicit: bool,
    /// As root: why `XDG_RUNTIME_DIR` was not used, and what is used instead (said once,
    /// by [`StateDir::ensure`]).
    ignored: Option<String>,
}

impl StateDir {
    pub fn new(explicit: Option<PathBuf>) -> StateDir {
        let given = explicit.is_some();
        let mut ignored = None;
        let dir = explicit.unwrap_or_else(|| {
            let root = nix::unistd::geteuid().is_root();
            let runtime = std::env::var_os("XDG_RUNTIME_DIR")
                .filter(|v| !v.is_empty())
                .map(PathBuf::from)
                .filter(|x| {
                    let why = if root { foreign_to_root(x) } else { None };
                    ignored =
                        why.map(|why| format!("ignoring XDG_RUNTIME_DIR={}: {why}", x.display()));
                    ignored.is_none()
                });
            if let Some(x) = runtime {
                x.join("daemonic")
            } else if root {
                PathBuf::from("/run/daemonic")
            } else {
                PathBuf::from(format!("/tmp/daemonic-{}", nix::unistd::geteuid()))
            }
        });
        let ignored = ignored.map(|note| format!("{note}; using {}", dir.display()));
        StateDir {
            dir,
            explicit: given,
            ignored,
        }
    }

    /// The directory, created (0700) if missing; refused if it is a symlink, if another
    /// user could write to it or replace it (see the module docs). Every command that uses
    /// the directory calls this first, not only those that create files in it: a
    /// directory someone else controls holds pid files, status files and sockets of their
    /// choosing.
    pub fn ensure(&self) -> Result<&Path> {
        if let Some(note) = &self.ignored {
            static NOTED: std::sync::Once = std::sync::Once::new();
            NOTED.call_once(|| eprintln!("daemonic: {note}"));
        }
        std::fs::DirBuilder::new()
            .recursive(true)
            .mode(0o700)
            .create(&self.dir)
            .with_context(|| format!("create state directory {}", self.dir.display()))?;
        check_private(&self.dir)?;
        Ok(&self.dir)
    }

    pub fn pid_file(&self, name: &str) -> PathBuf {
        self.dir.join(format!("{name}.pid"))
    }

    pub fn status_file(&self, name: &str) -> PathBuf {
        self.dir.join(format!("{name}.status"))
    }

    /// The supervisor's control socket, `<state-dir>/<name>.sock` (see [`crate::control`]).
    /// A unix socket path holds at most 107 bytes; binding or connecting to a longer one
    /// fails with a message saying so.
    pub fn control_socket(&self, name: &str) -> PathBuf {
        self.dir.join(format!("{name}.sock"))
    }

    /// A config file's supervisor (`daemonic up`): `<state-dir>/up/<project>.pid` and
    /// `.sock`, apart from the services' own files (`list` does not take it for a
    /// service). The `up` directory is created (0700) if missing.
    pub fn group_files(&self, project: &str) -> Result<(PathBuf, PathBuf)> {
        let dir = self.dir.join("up");
        std::fs::DirBuilder::new()
            .recursive(true)
            .mode(0o700)
            .create(&dir)
            .with_context(|| format!("create {}", dir.display()))?;
        Ok((
            dir.join(format!("{project}.pid")),
            dir.join(format!("{project}.sock")),
        ))
    }

    /// The directory, if it was given (`--state-dir`, `DAEMONIC_STATE_DIR`) rather than
    /// the default.
    pub fn given(&self) -> Option<&Path> {
        self.explicit.then_some(self.dir.as_path())
    }

    /// The directory, whether or not it exists.
    pub fn path(&self) -> &Path {
        &self.dir
    }

    /// Where service `name`'s captured output goes unless `--log-file` says otherwise;
    /// see [`default_log_path`].
    pub fn log_file(&self, name: &str) -> PathBuf {
        default_log_path(self.explicit.then_some(self.dir.as_path()), name)
    }
}

/// The default log file of service `name`: `<log-dir>/<name>.log`, where the log directory
/// is
///
/// 1. the state directory, when one was given explicitly (`--state-dir` /
///    `DAEMONIC_STATE_DIR`): everything of a sandboxed run in one place;
/// 2. `/var/log/daemonic` for root (effective uid 0), as system daemons log;
/// 3. `$XDG_STATE_HOME/daemonic/log` (an absolute `XDG_STATE_HOME` only, as the XDG spec
///    says), else `$HOME/.local/state/daemonic/log` — the XDG place for "logs and history"
///    that should survive a reboot (unlike `$XDG_RUNTIME_DIR`, a tmpfs), with the home
///    directory from the password database if `HOME` is unset.
///
/// Nothing is created here; [`LogConfig::open`](crate::service::log::LogConfig::open)
/// creates the directory.
pub fn default_log_path(state_dir_explicit: Option<&Path>, name: &str) -> PathBuf {
    let dir = match state_dir_explicit {
        Some(d) => d.to_path_buf(),
        None if nix::unistd::geteuid().is_root() => PathBuf::from("/var/log/daemonic"),
        None => user_log_dir(),
    };
    dir.join(format!("{name}.log"))
}

/// `$XDG_STATE_HOME/daemonic/log`, or `~/.local/state/daemonic/log`.
fn user_log_dir() -> PathBuf {
    let uid = nix::unistd::geteuid();
    let state_home = std::env::var_os("XDG_STATE_HOME")
        .map(PathBuf::from)
        .filter(|x| x.is_absolute())
        .or_else(|| {
            let home = std::env::var_os("HOME")
                .filter(|h| !h.is_empty())
                .map(PathBuf::from)
                .or_else(|| {
                    nix::unistd::User::from_uid(uid)
                        .ok()
                        .flatten()
                        .map(|u| u.dir)
                })?;
            Some(home.join(".local").join("state"))
        });
    match state_home {
        Some(s) => s.join("daemonic").join("log"),
        // No home at all (a stripped-down container): beside the fallback state directory.
        None => PathBuf::from(format!("/tmp/daemonic-{uid}/log")),
    }
}

/// Refuses a directory that is a symlink, that another user owns or that group or others
/// may write to, or whose parent lets an untrusted user replace it.
fn check_private(dir: &Path) -> Result<()> {
    use std::os::unix::fs::{MetadataExt, OpenOptionsExt};
    // O_NOFOLLOW: a symlink planted at the directory itself is refused (ELOOP), not
    // followed to a directory of the planter's choosing.
    let opened = std::fs::OpenOptions::new()
        .read(true)
        .custom_flags(libc::O_DIRECTORY | libc::O_NOFOLLOW)
        .open(dir);
    let meta = match opened {
        Ok(d) => d.metadata(),
        // ENOTDIR: O_DIRECTORY is checked before O_NOFOLLOW.
        Err(e)
            if matches!(e.raw_os_error(), Some(libc::ELOOP | libc::ENOTDIR))
                && std::fs::symlink_metadata(dir).is_ok_and(|m| m.file_type().is_symlink()) =>
        {
            bail!(
                "state directory {} is a symlink; refused: whoever made it chooses the pid files \
             and control sockets it leads to (remove it, or pass --state-dir)",
                dir.display()
            )
        }
        Err(e) => Err(e),
    }
    .with_context(|| format!("open state directory {}", dir.display()))?;
    let me = nix::unistd::geteuid().as_raw();
    let mode = meta.mode() & 0o7777;
    if meta.uid() != me {
        bail!(
            "state directory {} belongs to uid {}, not to this user (uid {me}); refused: its \
             pid files and control sockets could be replaced by their owner",
            dir.display(),
            meta.uid()
        );
    }
    if mode & 0o022 != 0 {
        bail!(
            "state directory {} is writable by group or others (mode {mode:04o}); refused: \
             another user could replace its pid files and control sockets (chmod go-w {})",
            dir.display(),
            dir.display()
        );
    }
    check_parent(dir, me)
}

/// Refuses a state directory whose parent another user could rename it in (checked once,
/// then the path keeps naming the checked directory): the parent must belong to this
/// user or root and not be writable by group or others, unless sticky (`/tmp`).
fn check_parent(dir: &Path, me: u32) -> Result<()> {
    use std::os::unix::fs::MetadataExt;
    let parent = match dir.parent() {
        Some(p) if p.as_os_str().is_empty() => Path::new("."),
        Some(p) => p,
        None => return Ok(()),
    };
    let meta = std::fs::metadata(parent)
        .with_context(|| format!("stat {} (parent of the state directory)", parent.display()))?;
    let mode = meta.mode() & 0o7777;
    let why = if meta.uid() != me && meta.uid() != 0 {
        format!("belongs to uid {}", meta.uid())
    } else if mode & 0o022 != 0 && mode & 0o1000 == 0 {
        format!("is writable by group or others (mode {mode:04o}) and not sticky")
    } else {
        return Ok(());
    };
    bail!(
        "state directory {}: refused: its parent {} {why}, so another user could replace it",
        dir.display(),
        parent.display()
    )
}

/// As root: why `XDG_RUNTIME_DIR` (usually another user's, kept by `su` or `sudo -E`)
/// must not hold root's state, or `None` if it is a directory of root's.
fn foreign_to_root(dir: &Path) -> Option<String> {
    use std::os::unix::fs::MetadataExt;
    match std::fs::symlink_metadata(dir) {
        Ok(m) if m.file_type().is_symlink() => Some("it is a symlink".to_string()),
        Ok(m) if m.uid() != 0 => Some(format!("it belongs to uid {}, not to root", m.uid())),
        Ok(_) => None,
        Err(e) => Some(format!("stat: {e}")),
    }
}

/// A service name: letters, digits, `_`, `-`, `.`; not starting with `.` or `-`; 1–64
/// bytes. An invalid one is a [`UsageError`](crate::hints::UsageError) (exit status 2),
/// and a long one is shown cut short.
pub fn check_name(name: &str) -> Result<()> {
    let ok_char = |c: char| c.is_ascii_alphanumeric() || matches!(c, '_' | '-' | '.');
    if name.is_empty()
        || name.len() > 64
        || name.starts_with(['.', '-'])
        || !name.chars().all(ok_char)
    {
        let shown = if name.chars().count() > 40 {
            let head: String = name.chars().take(32).collect();
            format!("{head:?}… ({} bytes)", name.len())
        } else {
            format!("{name:?}")
        };
        return Err(crate::hints::UsageError(format!(
            "invalid service name {shown}: use 1-64 letters, digits, '_', '-' or '.', not starting with '.' or '-'"
        ))
        .into());
    }
    Ok(())
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn logs_go_to_an_explicit_state_dir_else_somewhere_that_survives_a_reboot() {
        let explicit = StateDir::new(Some("/s".into()));
        assert_eq!(explicit.log_file("web"), Path::new("/s/web.log"));
        let default = StateDir::new(None);
        let log = default.log_file("web");
        assert_ne!(
            log.parent(),
            Some(default.dir.as_path()),
            "not the runtime dir"
        );
        if nix::unistd::geteuid().is_root() {
            assert_eq!(log, Path::new("/var/log/daemonic/web.log"));
        } else {
            assert!(log.ends_with("daemonic/log/web.log"), "{}", log.display());
        }
        assert_eq!(default_log_path(None, "web"), log);
    }
}
