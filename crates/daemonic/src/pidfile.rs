//! A pid file that is a lock, not a check.
//!
//! [`PidFile::lock`] opens the file (close-on-exec, never following a symlink), takes an
//! exclusive `flock(2)` on it, and only then writes the pid. The lock is held for the
//! process's life and released by the kernel however the process ends, so:
//!
//! - **liveness is "the lock is held"**, never `kill(pid, 0)`: a stale file left by a
//!   crashed daemon is simply reclaimed, and a file that names a live but unrelated process
//!   (pid reuse) is neither trusted nor signalled, because nobody holds its lock;
//! - a second instance fails at once with [`ErrorKind::AlreadyRunning`] naming the pid the
//!   holder wrote;
//! - `flock` locks belong to the open file description, so they survive `fork` and `exec`:
//!   the daemon locks *before* forking (the error reaches the user's terminal) and the
//!   detached process inherits the lock.
//!
//! ## Taken as root
//!
//! A pid file is only as trustworthy as its directory: whoever can write there can replace
//! the file, and root's `kill $(cat …)` then hits their process. So, when the effective
//! uid is 0, [`PidFile::lock`] refuses ([`ErrorKind::InvalidInput`]) a file
//!
//! - whose directory is owned by another user, or is writable by group or others without
//!   the sticky bit (a sticky directory such as `/tmp` lets nobody remove or rename
//!   another's file, so it is accepted);
//! - that exists but belongs to another user (planted in a sticky directory);
//! - that is a symlink — for every user: the file is opened with `O_NOFOLLOW`, so a
//!   symlink planted at the path fails with `ELOOP` and its target is never touched.
//!
//! New files get mode `0o644` (readable by all: the pid is no secret) minus the umask.
//!
//! ## Before signalling the holder
//!
//! The pid in a locked file is whatever its holder wrote: a hostile holder (or one that
//! wrote before it forked) can name any process. [`PidFile::holder`] reports it for
//! display; before *signalling* a holder, ask [`PidFile::proven_holder`], which trusts the
//! pid only if that very process holds the lock (seen in its `/proc/PID/fdinfo`), hands
//! back a pidfd opened before the proof, and as root refuses a file another user owns.
//!
//! ## Ordering
//!
//! Lock, then verify that the path still names the locked file (another
//! process may have removed it between our `open` and our `flock`), then write. On a clean
//! exit the file is removed *while the lock is still held*, and only if the path still
//! names our file.

use std::fs::{File, OpenOptions};
use std::io::{Read, Seek, SeekFrom, Write};
use std::os::fd::{AsFd, AsRawFd, BorrowedFd};
use std::os::unix::fs::{MetadataExt, OpenOptionsExt};
use std::path::{Path, PathBuf};
use std::time::Duration;

use nix::errno::Errno;
use nix::fcntl::{Flock, FlockArg};
use nix::unistd::Pid;

use crate::process::PidFd;
use crate::{Error, ErrorKind, Result};

/// A locked pid file. Dropping it removes the file (if it is still ours) and releases the
/// lock; call [`PidFile::release`] to do the same with errors reported.
#[derive(Debug)]
pub struct PidFile {
    path: PathBuf,
    file: Option<Flock<File>>,
}

/// What a pid file says about the instance that holds it, without taking it.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Holder {
    /// Nobody holds the lock: no instance runs (a leftover file is stale).
    None,
    /// The lock is held; the pid the holder wrote, if it has written one yet.
    Locked(Option<Pid>),
}

impl PidFile {
    /// Creates (mode `0o644`) or opens `path`, locks it, and writes this process's pid.
    ///
    /// As root, refuses a path another user could tamper with (see the
    /// [module docs](self#taken-as-root)). Fails with [`ErrorKind::AlreadyRunning`] (`already running (pid N)`) if another
    /// process holds the lock.
    pub fn lock(path: impl AsRef<Path>) -> Result<PidFile> {
        let pidfile = Self::lock_unwritten(path.as_ref(), 0o644)?;
        pidfile.write_pid(Pid::this())?;
        Ok(pidfile)
    }

    /// Locks without writing a pid yet: the detaching launcher locks before it forks and the
    /// daemon writes its own pid afterwards.
    pub(crate) fn lock_unwritten(path: &Path, mode: u32) -> Result<PidFile> {
        // Bounded: a retry means another process removed the file between our open and
        // our lock (a clean exit of the holder), or that a `holder()` probe held its
        // shared lock for an instant.
        let root = nix::unistd::geteuid().is_root();
        if root {
            check_directory(path)?;
        }
        let give_up = std::time::Instant::now() + std::time::Duration::from_millis(500);
        while std::time::Instant::now() < give_up {
            let file = open(path, mode)?;
            if root {
                check_owner(path, &file)?;
            }
            let locked = match Flock::lock(file, FlockArg::LockExclusiveNonblock) {
                Ok(locked) => locked,
                Err((file, Errno::EWOULDBLOCK)) => {
                    match Flock::lock(file, FlockArg::LockSharedNonblock) {
                        // A shared lock is possible, so the holder is only a probe: try again.
                        Ok(probe) => {
                            drop(probe);
                            #[cfg(test)]
                            tests::ON_PROBE.with_borrow_mut(|hook| hook.as_mut().map(|f| f()));
                            std::thread::sleep(std::time::Duration::from_millis(1));
                            continue;
                        }
                        Err((mut file, _)) => {
                            let pid = read_pid(&mut file);
                            return Err(already_running(path, pid));
                        }
                    }
                }
                Err((_, errno)) => {
                    return Err(Error::sys(format!("lock {}", path.display()), errno));
                }
            };
            if same_file(path, &locked)? {
                return Ok(PidFile {
                    path: path.to_path_buf(),
                    file: Some(locked),
                });
            }
        }
        Err(Error::new(
            ErrorKind::Io,
            format!(
                "lock {}: the file keeps being replaced by another process",
                path.display()
            ),
        ))
    }

    /// Who holds the pid file at `path`, without creating or taking it.
    ///
    /// The pid is what the holder wrote, not proof of anything: to signal the holder use
    /// [`PidFile::proven_holder`].
    ///
    /// It probes with a shared lock held for an instant; a concurrent [`PidFile::lock`]
    /// recognises such a probe and retries rather than reporting "already running".
    pub fn holder(path: impl AsRef<Path>) -> Result<Holder> {
        let path = path.as_ref();
        let file = match OpenOptions::new()
            .read(true)
            .custom_flags(libc::O_NOFOLLOW)
            .open(path)
        {
            Ok(file) => file,
            Err(e) if e.kind() == std::io::ErrorKind::NotFound => return Ok(Holder::None),
            Err(e) => return Err(Error::io(format!("open {}", path.display()), e)),
        };
        match Flock::lock(file, FlockArg::LockSharedNonblock) {
            Ok(_unlocked_on_drop) => Ok(Holder::None),
            Err((mut file, Errno::EWOULDBLOCK)) => Ok(Holder::Locked(read_pid(&mut file))),
            Err((_, errno)) => Err(Error::sys(format!("lock {}", path.display()), errno)),
        }
    }

    /// Replaces the file's content with `pid` (the daemon's, after detaching).
    pub(crate) fn write_pid(&self, pid: Pid) -> Result<()> {
        let ctx = || format!("write {}", self.path.display());
        let mut file: &File = self.file();
        file.set_len(0).map_err(|e| Error::io(ctx(), e))?;
        file.seek(SeekFrom::Start(0))
            .map_err(|e| Error::io(ctx(), e))?;
        file.write_all(format!("{pid}\n").as_bytes())
            .map_err(|e| Error::io(ctx(), e))?;
        Ok(())
    }

    /// The path of the pid file.
    pub fn path(&self) -> &Path {
        &self.path
    }

    /// Removes the file (if the path still names it) and releases the lock.
    pub fn release(mut self) -> Result<()> {
        self.remove()
    }

    fn file(&self) -> &File {
        self.file
            .as_ref()
            .expect("a PidFile holds its file until released")
    }

    fn remove(&mut self) -> Result<()> {
        let Some(locked) = self.file.take() else {
            return Ok(());
        };
        // Unlink while still holding the lock, so no other process can have taken it
        // and written its own pid into the file we remove.
        if same_file(&self.path, &locked)? {
            match std::fs::remove_file(&self.path) {
                Ok(()) => {}
                // The daemon dropped its privileges after root created the file: it may
                // not remove it, so it empties it. It names no process then, and it was
                // never proof of life anyway (the lock is).
                Err(e) if e.kind() == std::io::ErrorKind::PermissionDenied => locked
                    .set_len(0)
                    .map_err(|e| Error::io(format!("truncate {}", self.path.display()), e))?,
                Err(e) => {
                    return Err(Error::io(format!("remove {}", self.path.display()), e));
                }
            }
        }
        drop(locked);
        Ok(())
    }
}

impl AsFd for PidFile {
    fn as_fd(&self) -> BorrowedFd<'_> {
        self.file().as_fd()
    }
}

impl Drop for PidFile {
    fn drop(&mut self) {
        // Errors here have nowhere to go; `release` reports them.
        let _ = self.remove();
    }
}

impl PidFile {
    /// Adopts an already locked pid file handed over across `exec` (re-exec mode).
    pub(crate) fn adopt(path: &Path, file: File) -> Result<PidFile> {
        // Re-taking an exclusive flock through the same open file description we already
        // hold it on succeeds at once; through any other description it would fail.
        let locked = Flock::lock(file, FlockArg::LockExclusiveNonblock).map_err(|(_, errno)| {
            Error::sys(format!("lock handed-over {}", path.display()), errno)
        })?;
        if !same_file(path, &locked)? {
            return Err(Error::new(
                ErrorKind::InvalidInput,
                format!("handed-over pid file descriptor is not {}", path.display()),
            ));
        }
        Ok(PidFile {
            path: path.to_path_buf(),
            file: Some(locked),
        })
    }
}

fn open(path: &Path, mode: u32) -> Result<File> {
    OpenOptions::new()
        .read(true)
        .write(true)
        .create(true)
        .mode(mode)
        // O_CLOEXEC is std's default; O_NOFOLLOW refuses a symlink planted at the path.
        .custom_flags(libc::O_NOFOLLOW)
        .open(path)
        .map_err(|e| Error::io(format!("open {}", path.display()), e))
}

/// As root: refuses a directory another user could replace the pid file in.
fn check_directory(path: &Path) -> Result<()> {
    let dir = match path.parent() {
        Some(d) if !d.as_os_str().is_empty() => d,
        _ => Path::new("."),
    };
    let meta =
        std::fs::metadata(dir).map_err(|e| Error::io(format!("stat {}", dir.display()), e))?;
    let mode = meta.mode() & 0o7777;
    let why = if meta.uid() != 0 {
        format!("is owned by uid {}", meta.uid())
    } else if mode & 0o022 != 0 && mode & 0o1000 == 0 {
        format!("is writable by group or others (mode {mode:04o}) and not sticky")
    } else {
        return Ok(());
    };
    Err(Error::new(
        ErrorKind::InvalidInput,
        format!(
            "lock {}: refused as root: the directory {} {why}, so another user could \
             replace the pid file",
            path.display(),
            dir.display()
        ),
    ))
}

/// As root: refuses a pid file that another user created (in a sticky directory).
fn check_owner(path: &Path, file: &File) -> Result<()> {
    let meta = file
        .metadata()
        .map_err(|e| Error::io(format!("stat {}", path.display()), e))?;
    if meta.uid() != 0 {
        return Err(Error::new(
            ErrorKind::InvalidInput,
            format!(
                "lock {}: refused as root: the file belongs to uid {}",
                path.display(),
                meta.uid()
            ),
        ));
    }
    Ok(())
}

/// True if `path` still names the file open as `file` (same device and inode).
fn same_file(path: &Path, file: &File) -> Result<bool> {
    let held = file
        .metadata()
        .map_err(|e| Error::io(format!("stat {}", path.display()), e))?;
    match std::fs::symlink_metadata(path) {
        Ok(now) => Ok(now.dev() == held.dev() && now.ino() == held.ino()),
        Err(e) if e.kind() == std::io::ErrorKind::NotFound => Ok(false),
        Err(e) => Err(Error::io(format!("stat {}", path.display()), e)),
    }
}

/// The pid a holder wrote, if the file holds a plausible one.
fn read_pid(file: &mut File) -> Option<Pid> {
    let mut text = String::new();
    file.seek(SeekFrom::Start(0)).ok()?;
    file.take(64).read_to_string(&mut text).ok()?;
    match text.trim().parse::<i32>() {
        Ok(pid) if pid > 0 => Some(Pid::from_raw(pid)),
        _ => None,
    }
}

fn already_running(path: &Path, pid: Option<Pid>) -> Error {
    let who = match pid {
        Some(pid) => format!("pid {pid}"),
        None => "pid not yet written".to_string(),
    };
    Error::new(
        ErrorKind::AlreadyRunning,
        format!("already running ({who}; {} is locked)", path.display()),
    )
    .with_pid(pid)
}

/// What a pid file proves about the instance that holds it: [`PidFile::proven_holder`].
#[derive(Debug)]
pub enum Proven {
    /// Nobody holds the lock: no instance runs.
    NotRunning,
    /// The lock is held, but not provably by the pid written in the file (none written
    /// yet, a process that is gone, or one that holds no lock on this file: the holder
    /// wrote someone else's pid). Never signal it.
    Unproven(Option<Pid>),
    /// The process that holds the lock, by a handle opened *before* the proof: signals
    /// through it reach that process or fail with `ESRCH`, never a process that reused
    /// its pid.
    Holder(PidFd),
}

impl PidFile {
    /// Who holds the pid file at `path`, proven: the pid written in the file is trusted
    /// only if that process itself holds the file's lock. Use this, not [`PidFile::holder`]
    /// (whose pid is whatever the holder wrote), before signalling.
    ///
    /// The proof, in this order: open the file (`O_NOFOLLOW`) and `fstat` it; see that the
    /// lock is held; read the pid; open a pidfd on it; find, among that process's open
    /// descriptors (`/proc/PID/fd`), one on the same file (device and inode) whose
    /// `/proc/PID/fdinfo` lists an exclusive `FLOCK` — the kernel lists a lock there only
    /// for the open file description that holds it; finally check that the pidfd's process
    /// is still alive, so the `/proc/PID` that was read was its own and not a successor's.
    /// A process of another user whose descriptors cannot be read is not proven.
    ///
    /// As root, refuses ([`ErrorKind::InvalidInput`]) a pid file that belongs to another
    /// user: whoever owns it chose the pid in it.
    pub fn proven_holder(path: impl AsRef<Path>) -> Result<Proven> {
        let path = path.as_ref();
        let mut file = match OpenOptions::new()
            .read(true)
            .custom_flags(libc::O_NOFOLLOW)
            .open(path)
        {
            Ok(file) => file,
            Err(e) if e.kind() == std::io::ErrorKind::NotFound => return Ok(Proven::NotRunning),
            Err(e) => return Err(Error::io(format!("open {}", path.display()), e)),
        };
        let meta = file
            .metadata()
            .map_err(|e| Error::io(format!("stat {}", path.display()), e))?;
        if nix::unistd::geteuid().is_root() && meta.uid() != 0 {
            return Err(Error::new(
                ErrorKind::InvalidInput,
                format!(
                    "{}: refused as root: the pid file belongs to uid {}, who chose the pid in it",
                    path.display(),
                    meta.uid()
                ),
            ));
        }
        match Flock::lock(
            file.try_clone()
                .map_err(|e| Error::io(format!("open {}", path.display()), e))?,
            FlockArg::LockSharedNonblock,
        ) {
            Ok(_unlocked_on_drop) => return Ok(Proven::NotRunning),
            Err((_, Errno::EWOULDBLOCK)) => {}
            Err((_, errno)) => return Err(Error::sys(format!("lock {}", path.display()), errno)),
        }
        let Some(pid) = read_pid(&mut file) else {
            return Ok(Proven::Unproven(None));
        };
        let process = match PidFd::open(pid) {
            Ok(process) => process,
            Err(e) if e.os_error() == Some(libc::ESRCH) => return Ok(Proven::Unproven(Some(pid))),
            Err(e) => return Err(e),
        };
        if !holds_flock(pid, meta.dev(), meta.ino()) || process.wait_exit(Duration::ZERO)? {
            return Ok(Proven::Unproven(Some(pid)));
        }
        Ok(Proven::Holder(process))
    }
}

/// True if process `pid` has a descriptor on the file `(dev, ino)` through which it holds
/// an exclusive `flock`. Any failure to read its `/proc` entries (gone, another user's)
/// is "no".
fn holds_flock(pid: Pid, dev: u64, ino: u64) -> bool {
    let Ok(fds) = std::fs::read_dir(format!("/proc/{pid}/fd")) else {
        return false;
    };
    for fd in fds.flatten() {
        // The magic link leads to the open file itself, even a deleted one.
        let same = std::fs::metadata(fd.path()).is_ok_and(|m| m.dev() == dev && m.ino() == ino);
        if same && fdinfo_has_exclusive_flock(pid, &fd.file_name()) {
            return true;
        }
    }
    false
}

/// `/proc/PID/fdinfo/FD` lists `lock:` lines only for locks held through that open file
/// description: `lock:\t1: FLOCK  ADVISORY  WRITE 4242 08:01:1234 0 EOF`.
fn fdinfo_has_exclusive_flock(pid: Pid, fd: &std::ffi::OsStr) -> bool {
    let path = Path::new("/proc")
        .join(pid.to_string())
        .join("fdinfo")
        .join(fd);
    let mut text = String::new();
    let read = File::open(path).and_then(|f| f.take(64 * 1024).read_to_string(&mut text));
    read.is_ok()
        && text.lines().any(|line| {
            let mut words = line.split_whitespace();
            words.next() == Some("lock:")
                && words.nth(1) == Some("FLOCK")
                && words.nth(1) == Some("WRITE")
        })
}

impl AsRawFd for PidFile {
    fn as_raw_fd(&self) -> std::os::fd::RawFd {
        self.file().as_raw_fd()
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    thread_local! {
        /// Runs on this thread when [`PidFile::lock`] meets a probe's shared lock, right
        /// before it retries: lets a test release the probe at exactly that point.
        pub(super) static ON_PROBE: std::cell::RefCell<Option<Box<dyn FnMut()>>> =
            const { std::cell::RefCell::new(None) };
    }

    /// Regression: `daemonic status` probing (an instant's shared lock) while a service
    /// starts must not make the start fail with "already running". Deterministic: the
    /// probe is held when the lock is tried, and released by the hook the first time the
    /// locker meets it; without the retry the lock fails "already running".
    #[test]
    fn a_shared_probe_lock_does_not_fail_a_start() {
        let dir =
            std::env::temp_dir().join(format!("daemonic-pidfile-probe-{}", std::process::id()));
        std::fs::create_dir_all(&dir).unwrap();
        let path = dir.join("p.pid");
        std::fs::write(&path, "1\n").unwrap(); // a stale file, as a crashed daemon leaves
        let mut probe =
            Some(Flock::lock(File::open(&path).unwrap(), FlockArg::LockSharedNonblock).unwrap());
        let met = std::rc::Rc::new(std::cell::Cell::new(0));
        let counter = met.clone();
        ON_PROBE.set(Some(Box::new(move || {
            counter.set(counter.get() + 1);
            drop(probe.take());
        })));
        let result = PidFile::lock(&path).and_then(PidFile::release);
        ON_PROBE.set(None);
        let _ = std::fs::remove_dir_all(&dir);
        result.unwrap();
        assert_eq!(met.get(), 1, "the locker met the probe once, then retried");
    }

    /// Regression: a lock holder that writes another process's pid must not get that
    /// process signalled (`daemonic stop` trusted the written pid).
    #[test]
    fn only_the_process_that_holds_the_lock_is_proven() {
        let dir =
            std::env::temp_dir().join(format!("daemonic-pidfile-proven-{}", std::process::id()));
        std::fs::create_dir_all(&dir).unwrap();
        let path = dir.join("p.pid");
        let held = PidFile::lock(&path).unwrap();
        let proven = PidFile::proven_holder(&path).unwrap();
        assert!(
            matches!(&proven, Proven::Holder(p) if p.pid() == Pid::this()),
            "{proven:?}"
        );
        let mut other = std::process::Command::new("sleep")
            .arg("30")
            .spawn()
            .unwrap();
        let other_pid = Pid::from_raw(other.id() as i32);
        held.write_pid(other_pid).unwrap();
        let proven = PidFile::proven_holder(&path);
        let _ = other.kill();
        let _ = other.wait();
        held.release().unwrap();
        let _ = std::fs::remove_dir_all(&dir);
        assert!(
            matches!(proven, Ok(Proven::Unproven(Some(p))) if p == other_pid),
            "{proven:?}"
        );
    }

    #[test]
    fn a_held_lock_names_the_holder() {
        let dir =
            std::env::temp_dir().join(format!("daemonic-pidfile-held-{}", std::process::id()));
        std::fs::create_dir_all(&dir).unwrap();
        let path = dir.join("p.pid");
        let held = PidFile::lock(&path).unwrap();
        let err = PidFile::lock(&path).unwrap_err();
        assert_eq!(err.kind(), ErrorKind::AlreadyRunning);
        assert_eq!(err.pid(), Some(Pid::this()));
        assert_eq!(
            PidFile::holder(&path).unwrap(),
            Holder::Locked(Some(Pid::this()))
        );
        held.release().unwrap();
        assert!(!path.exists());
        assert_eq!(PidFile::holder(&path).unwrap(), Holder::None);
        let _ = std::fs::remove_dir_all(&dir);
    }
}
