//! Where the children's `NOTIFY_SOCKET` points: one filesystem socket per supervisor.
//!
//! Every sd_notify client understands a path (systemd's own is `/run/systemd/notify`);
//! not all understand an abstract `@name` (the Rust `sd-notify` crate 0.5 takes it for a
//! file name and fails with `NotFound`). So children get a path, chosen by who the
//! supervisor is:
//!
//! | supervisor | socket | mode |
//! |---|---|---|
//! | not root, a named service or a project | `<state-dir>/NAME.notify` (`up/ID.notify`), beside the control socket | 0600 |
//! | not root, `run` without `--name` | `daemonic-notify.XXXXXX/notify` in `$XDG_RUNTIME_DIR` or the temp dir, a fresh 0700 directory | 0600 |
//! | root | `/run/daemonic-notify/<random>.sock`; the directory is root's, mode 0711 | 0600, owned by the service's `--user` when it has one; 0666 for a project (its services may have several users) |
//!
//! **Why there.** Sending needs write permission on the socket file and search
//! permission on every directory above it; replacing the file needs write permission on
//! its directory. The state directory is 0700 (a `--user` child cannot get in), so as
//! root the socket lives in a directory that only root may write to and anyone may
//! search: a hostile service user can neither remove nor replace it (to steal or block
//! the notifications of the children started after). Who may *send* is the second line
//! of defence only: every datagram is checked against the sender's kernel-verified pid
//! (see `notify-access`), whatever the file's mode.
//!
//! **Ordering.** The file is created with its final mode (the socket is `fchmod`ed before
//! `bind`), then, as root, given to the service's user before any child exists. A
//! socket already at `<state-dir>/NAME.notify` is a dead supervisor's (the caller holds
//! the pid-file lock) and is removed first; in `/run/daemonic-notify` the sockets of dead
//! supervisors (killed with SIGKILL: nothing ran to remove them) are swept when the next
//! supervisor binds: a connect to them is refused.
//!
//! **Removal.** The file (and the fresh directory of an anonymous `run`) is removed when
//! the supervisor ends: a normal end, a signal, an error (drop of [`NotifySockets`]).
//!
//! **Too long, or no place.** A unix socket path holds at most 107 bytes: a state
//! directory too deep for `NAME.notify` falls back to a fresh directory in the temp dir;
//! if no path works, to an abstract `@daemonic/notify/<pid>/<random>` with a note on
//! stderr naming why.
//!
//! **Chroot.** A child in a chroot cannot reach a path outside it: such a child gets an
//! abstract socket (bound the first time one is needed; the network namespace is shared).

use std::cell::OnceCell;
use std::path::{Path, PathBuf};

use anyhow::{Context as _, Result};
use daemonic::systemd::listen::NotifyListener;
use nix::unistd::{Gid, Uid};

use crate::control::MAX_SOCKET_PATH;

/// Root's directory for the supervisors' notify sockets.
pub const ROOT_DIR: &str = "/run/daemonic-notify";

/// Who the children that use the socket run as (root only chooses).
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Users {
    /// The supervisor's own user.
    Same,
    /// One other user: the socket is given to it.
    One(Uid, Gid),
    /// Maybe several (a project): anyone may send (the sender pid is checked).
    Several,
}

/// Who the children of `services` run as.
pub fn users<'a>(services: impl Iterator<Item = &'a crate::service::Service>) -> Users {
    let mut seen = None;
    for s in services {
        let p = s.privileges.as_ref();
        let this = p.and_then(|p| p.uid()).map(|uid| {
            let gid = p.and_then(|p| p.gid()).unwrap_or_else(nix::unistd::getegid);
            (uid, gid)
        });
        let this = this.filter(|(uid, _)| *uid != nix::unistd::geteuid());
        match (seen, this) {
            (None, t) => seen = Some(t),
            (Some(a), b) if a == b => {}
            _ => return Users::Several,
        }
    }
    match seen.flatten() {
        Some((uid, gid)) => Users::One(uid, gid),
        None => Users::Same,
    }
}

/// The supervisor's notify socket(s); see the module docs.
#[derive(Debug)]
pub struct NotifySockets {
    main: NotifyListener,
    /// A fresh directory of ours holding `main`, removed with it.
    private_dir: Option<PathBuf>,
    /// For chrooted children (bound on first use).
    chrooted: OnceCell<NotifyListener>,
}

impl NotifySockets {
    /// Binds the socket for a supervisor whose control socket is `control` (if any).
    pub fn bind(control: Option<&Path>, users: Users) -> Result<NotifySockets> {
        let root = nix::unistd::geteuid().is_root();
        let bound = if root {
            bind_root(users)
        } else {
            match control.map(beside) {
                Some(path) if path.as_os_str().len() <= MAX_SOCKET_PATH => {
                    remove_stale(&path)?;
                    NotifyListener::bind_with_mode(&path, 0o600)
                        .map(|l| (l, None))
                        .map_err(anyhow::Error::new)
                }
                _ => bind_private_dir(),
            }
        };
        let (main, private_dir) = match bound {
            Ok(b) => b,
            Err(e) => {
                let l = NotifyListener::bind_private().context("bind notify socket")?;
                eprintln!(
                    "daemonic: notify socket: {e:#}; children get the abstract {} instead \
                     (clients that take only a path cannot reach it)",
                    l.env_value()
                );
                (l, None)
            }
        };
        main.set_nonblocking(true)?;
        Ok(NotifySockets {
            main,
            private_dir,
            chrooted: OnceCell::new(),
        })
    }

    /// The `NOTIFY_SOCKET` for a child, `chrooted` or not.
    pub fn for_child(&self, chrooted: bool) -> Result<&str> {
        if !chrooted {
            return Ok(self.main.env_value());
        }
        if let Some(l) = self.chrooted.get() {
            return Ok(l.env_value());
        }
        let l = NotifyListener::bind_private().context("bind notify socket for a chroot")?;
        l.set_nonblocking(true)?;
        Ok(self.chrooted.get_or_init(|| l).env_value())
    }

    /// Every socket bound, to poll.
    pub fn listeners(&self) -> impl Iterator<Item = &NotifyListener> {
        std::iter::once(&self.main).chain(self.chrooted.get())
    }
}

impl Drop for NotifySockets {
    fn drop(&mut self) {
        if let Some(dir) = &self.private_dir {
            let _ = std::fs::remove_file(dir.join("notify"));
            let _ = std::fs::remove_dir(dir);
        }
    }
}

/// `<dir>/NAME.notify` for a control socket `<dir>/NAME.sock`.
fn beside(control: &Path) -> PathBuf {
    control.with_extension("notify")
}

/// A socket left by a dead supervisor is removed; anything else there is refused.
fn remove_stale(path: &Path) -> Result<()> {
    use std::os::unix::fs::FileTypeExt;
    match std::fs::symlink_metadata(path) {
        Ok(m) if m.file_type().is_socket() => std::fs::remove_file(path)
            .with_context(|| format!("remove stale notify socket {}", path.display())),
        Ok(_) => anyhow::bail!(
            "{}: exists and is not a socket; not removing it",
            path.display()
        ),
        Err(e) if e.kind() == std::io::ErrorKind::NotFound => Ok(()),
        Err(e) => Err(e).with_context(|| format!("stat {}", path.display())),
    }
}

/// Root: a random name in [`ROOT_DIR`] (module docs).
fn bind_root(users: Users) -> Result<(NotifyListener, Option<PathBuf>)> {
    let dir = Path::new(ROOT_DIR);
    root_dir(dir)?;
    sweep(dir);
    let token = token()?;
    let path = dir.join(format!("{token}.sock"));
    let mode = if users == Users::Several {
        0o666
    } else {
        0o600
    };
    let l = NotifyListener::bind_with_mode(&path, mode)?;
    if let Users::One(uid, gid) = users {
        std::os::unix::fs::lchown(&path, Some(uid.as_raw()), Some(gid.as_raw()))
            .with_context(|| format!("chown {} to {uid}:{gid}", path.display()))?;
    }
    Ok((l, None))
}

/// [`ROOT_DIR`], created 0711 if missing; refused unless it is a directory of root's that
/// nobody else may write to (not a symlink).
fn root_dir(dir: &Path) -> Result<()> {
    use std::os::unix::fs::{DirBuilderExt, MetadataExt, PermissionsExt};
    match std::fs::DirBuilder::new().mode(0o711).create(dir) {
        Ok(()) => {
            // The umask may have taken the search bits away.
            std::fs::set_permissions(dir, std::fs::Permissions::from_mode(0o711))
                .with_context(|| format!("chmod 0711 {}", dir.display()))?;
        }
        Err(e) if e.kind() == std::io::ErrorKind::AlreadyExists => {}
        Err(e) => return Err(e).with_context(|| format!("create {}", dir.display())),
    }
    let m = std::fs::symlink_metadata(dir).with_context(|| format!("stat {}", dir.display()))?;
    if !m.is_dir() || m.uid() != 0 || m.mode() & 0o022 != 0 {
        anyhow::bail!(
            "{}: not a directory of root's that only root may write to (owner {}, mode {:o}); \
             not using it",
            dir.display(),
            m.uid(),
            m.mode() & 0o7777
        );
    }
    Ok(())
}

/// Removes the sockets of dead supervisors in `dir`: a datagram connect to them is
/// refused (nobody has them bound).
fn sweep(dir: &Path) {
    let Ok(entries) = std::fs::read_dir(dir) else {
        return;
    };
    for e in entries.flatten() {
        let path = e.path();
        if path.extension().is_none_or(|x| x != "sock") {
            continue;
        }
        let Ok(probe) = std::os::unix::net::UnixDatagram::unbound() else {
            return;
        };
        if let Err(err) = probe.connect(&path)
            && err.raw_os_error() == Some(libc::ECONNREFUSED)
        {
            let _ = std::fs::remove_file(&path);
        }
    }
}

/// Not root and no state directory (or too deep): a fresh 0700 directory.
fn bind_private_dir() -> Result<(NotifyListener, Option<PathBuf>)> {
    let base = std::env::var_os("XDG_RUNTIME_DIR")
        .map(PathBuf::from)
        .filter(|p| p.is_absolute() && p.is_dir())
        .into_iter()
        .chain([std::env::temp_dir()])
        .find(|b| b.join("daemonic-notify.XXXXXX/notify").as_os_str().len() <= MAX_SOCKET_PATH)
        .context("no directory short enough for a notify socket path (107 bytes at most)")?;
    let dir = nix::unistd::mkdtemp(&base.join("daemonic-notify.XXXXXX"))
        .with_context(|| format!("create a directory in {}", base.display()))?;
    match NotifyListener::bind_with_mode(dir.join("notify"), 0o600) {
        Ok(l) => Ok((l, Some(dir))),
        Err(e) => {
            let _ = std::fs::remove_dir(&dir);
            Err(e.into())
        }
    }
}

/// 16 random hex digits.
fn token() -> Result<String> {
    let mut bytes = [0u8; 8];
    std::fs::File::open("/dev/urandom")
        .and_then(|mut f| std::io::Read::read_exact(&mut f, &mut bytes))
        .context("read /dev/urandom")?;
    Ok(bytes.iter().map(|b| format!("{b:02x}")).collect())
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn the_socket_lies_beside_the_control_socket() {
        assert_eq!(
            beside(Path::new("/run/daemonic/web.sock")),
            Path::new("/run/daemonic/web.notify")
        );
        assert_eq!(
            beside(Path::new("/tmp/s/up/p-1.sock")),
            Path::new("/tmp/s/up/p-1.notify")
        );
    }
}
