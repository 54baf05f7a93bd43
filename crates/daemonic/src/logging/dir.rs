//! The directory of a log, resolved once and used through its descriptor.
//!
//! A log is written as root for a service that runs as someone else, and that service (or
//! another local user) may be able to write somewhere along the log's path. So every file
//! operation of the writer, the archiver and `daemonic logs` goes through a [`LogDir`]:
//!
//! * **Resolved once, without untrusted symlinks.** [`LogDir::open`] walks the path from
//!   `/` (or the working directory) one component at a time with `openat(O_NOFOLLOW |
//!   O_DIRECTORY)`. A symlink on the way is followed only if nobody but root and us could
//!   have made or replaced it (owned by root or the effective uid, in a directory owned
//!   by one of them that nobody else can write, or that is sticky: `/var/run -> /run`, a
//!   home directory moved elsewhere); any other fails with `ELOOP`, so a directory of the
//!   path swapped for a symlink by the service redirects nothing. `..` pops the walk
//!   (lexically, over directories already opened). The walk is used rather than
//!   `openat2(RESOLVE_NO_SYMLINKS)` because every ancestor has to be `fstat`ed for the
//!   ownership rule anyway, trusted symlinks must still work, and it runs on every kernel.
//! * **Checked as root.** When the effective uid is 0 and the directory is opened for
//!   writing, every ancestor must be owned by root and not writable by others unless it is
//!   sticky (`/tmp`), and the log directory itself must be owned by root and writable by
//!   root only (mode `& 0o022 == 0`). Nobody else can then add, rename, replace or delete a
//!   name in it: the service cannot plant files for root to open, nor rewrite its own
//!   history. A group-writable ancestor is accepted (Ubuntu's `/var/log` is `root:syslog
//!   0775`): its group is the administrator's choice.
//! * **One component per operation.** After the walk every open, rename, unlink and stat
//!   names a single file name relative to the directory's descriptor, with `O_NOFOLLOW`
//!   (or `AT_SYMLINK_NOFOLLOW`); new temporary files are created with `O_EXCL`.
//! * **Only regular files, and as root only root's own.** Every file opened (to append,
//!   to compress, to print) is `fstat`ed and refused unless it is a regular file; as root
//!   it must also be owned by root and have one link. So neither a planted device, FIFO or
//!   hard link to another file is appended to, copied into a compressed file or printed.
//!   (Not as root, reading a file of another user gains nothing the kernel's permissions
//!   did not already allow, and a shared group-writable log keeps working.)
//!
//! [`RotatingWriterBuilder::follow_symlinks`](super::RotatingWriterBuilder::follow_symlinks)
//! opts out of all of this for a path that is a symlink on purpose (`/dev/stdout`).

use std::collections::VecDeque;
use std::ffi::{OsStr, OsString};
use std::fs::File;
use std::os::fd::{AsFd, BorrowedFd, OwnedFd};
use std::os::unix::ffi::OsStrExt;
use std::path::{Component, Path, PathBuf};

use nix::errno::Errno;
use nix::fcntl::{AT_FDCWD, AtFlags, OFlag, openat, readlinkat, renameat};
use nix::sys::stat::{FileStat, Mode, SFlag, fstat, fstatat};
use nix::unistd::{UnlinkatFlags, geteuid, unlinkat};

use crate::{Error, ErrorKind, Result};

/// What a [`LogDir`] holds, for its error messages.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Contents {
    /// Log files: "open log directory …".
    Logs,
    /// Unix sockets: "open socket directory …".
    Sockets,
    /// A program's own pid file, read as root: "open pid file directory …".
    PidFiles,
}

impl Contents {
    fn noun(self) -> &'static str {
        match self {
            Contents::Logs => "log directory",
            Contents::Sockets => "socket directory",
            Contents::PidFiles => "pid file directory",
        }
    }

    fn files(self) -> &'static str {
        match self {
            Contents::Logs => "the log files",
            Contents::Sockets => "the socket",
            Contents::PidFiles => "the pid file",
        }
    }
}

/// An open log directory; see the module docs.
#[derive(Debug)]
pub struct LogDir {
    fd: OwnedFd,
    path: PathBuf,
    follow: bool,
}

impl LogDir {
    /// Opens the directory holding the log `active` (its parent, `.` for a bare name).
    /// `writing` applies the root ownership rule of the module docs.
    pub fn of(active: &Path, writing: bool) -> Result<LogDir> {
        LogDir::open(parent_of(active), writing)
    }

    /// Opens `dir`, following only trusted symlinks in it; see the module docs.
    pub fn open(dir: &Path, writing: bool) -> Result<LogDir> {
        LogDir::open_for(dir, writing, Contents::Logs)
    }

    /// [`LogDir::open`] for a directory of other files the same rules protect (a unix
    /// socket the supervisor binds as root): errors name them as `contents` says.
    pub fn open_for(dir: &Path, writing: bool, contents: Contents) -> Result<LogDir> {
        let root = writing && geteuid().is_root();
        let noun = contents.noun();
        let err = |e: Errno, at: &Path| Error::sys(format!("open {noun} {}", at.display()), e);
        let open = |at: &OwnedFd, name: &OsStr| openat(at, name, dir_flags(), Mode::empty());
        // The directories walked so far; `..` pops one (lexically, over verified fds).
        let cwd = openat(AT_FDCWD, ".", dir_flags(), Mode::empty()).map_err(|e| err(e, dir))?;
        let mut stack = vec![cwd];
        let mut walked = PathBuf::new();
        let mut todo: VecDeque<OsString> = names_of(dir).into();
        let mut links = 0;
        while let Some(name) = todo.pop_front() {
            walked.push(&name);
            let top = stack.last().expect("the walk starts with one directory");
            let next = match name.as_bytes() {
                b"." => continue,
                b"/" => openat(AT_FDCWD, "/", dir_flags(), Mode::empty()),
                b".." if stack.len() > 1 => {
                    stack.pop();
                    continue;
                }
                _ => open(top, &name),
            };
            let fd = match next {
                Ok(fd) => fd,
                Err(e) => {
                    let Some(target) = trusted_link(top, &name) else {
                        return Err(err(symlink_as_eloop(top, &name, e), &walked));
                    };
                    links += 1;
                    if links > 40 {
                        return Err(err(Errno::ELOOP, &walked));
                    }
                    for n in names_of(&target).into_iter().rev() {
                        todo.push_front(n);
                    }
                    continue;
                }
            };
            if root {
                check_dir(&fd, &walked, false, contents)?;
            }
            if matches!(name.as_bytes(), b"/" | b"..") {
                stack.clear();
            }
            stack.push(fd);
        }
        let fd = stack.pop().expect("the walk ends in a directory");
        if root {
            check_dir(&fd, dir, true, contents)?;
        }
        Ok(LogDir {
            fd,
            path: dir.to_path_buf(),
            follow: false,
        })
    }

    /// Opens `dir` the way `open(2)` does, symlinks and all, with no checks (the caller
    /// asked for `follow_symlinks`).
    pub(crate) fn open_following(dir: &Path) -> Result<LogDir> {
        let fd = openat(
            AT_FDCWD,
            dir,
            dir_flags() - OFlag::O_NOFOLLOW,
            Mode::empty(),
        )
        .map_err(|e| Error::sys(format!("open log directory {}", dir.display()), e))?;
        Ok(LogDir {
            fd,
            path: dir.to_path_buf(),
            follow: true,
        })
    }

    /// The directory's path, for messages.
    pub fn path(&self) -> &Path {
        &self.path
    }

    /// `name`'s path, for messages.
    pub fn join(&self, name: &OsStr) -> PathBuf {
        self.path.join(name)
    }

    fn nofollow(&self) -> OFlag {
        if self.follow {
            OFlag::empty()
        } else {
            OFlag::O_NOFOLLOW
        }
    }

    /// Opens (creating with `mode`) `name` for appending.
    pub(crate) fn open_append(&self, name: &OsStr, mode: u32) -> Result<File> {
        let flags = OFlag::O_WRONLY | OFlag::O_APPEND | OFlag::O_CREAT | OFlag::O_CLOEXEC;
        let file = self.openat(name, flags | self.nofollow(), mode, "open")?;
        if !self.follow {
            self.check_file(name, &file, "open")?;
        }
        Ok(file)
    }

    /// Creates `name`, which must not exist (`O_EXCL`): a temporary file.
    pub(crate) fn create_new(&self, name: &OsStr, mode: u32) -> Result<File> {
        let flags = OFlag::O_WRONLY | OFlag::O_CREAT | OFlag::O_EXCL | OFlag::O_CLOEXEC;
        self.openat(name, flags | OFlag::O_NOFOLLOW, mode, "create")
    }

    /// Opens `name` for reading: only a regular file (as root: of root's, with one link;
    /// see the module docs); anything else fails with [`ErrorKind::InvalidInput`].
    /// `ErrorKind::Io` with `ENOENT` when it is gone, `ELOOP` for a symlink.
    pub fn open_read(&self, name: &OsStr) -> Result<File> {
        // O_NONBLOCK: a FIFO planted at the name must not block the open.
        let flags = OFlag::O_RDONLY | OFlag::O_CLOEXEC | OFlag::O_NONBLOCK | self.nofollow();
        let file = self.openat(name, flags, 0, "open")?;
        if !self.follow {
            self.check_file(name, &file, "read")?;
        }
        Ok(file)
    }

    fn openat(&self, name: &OsStr, flags: OFlag, mode: u32, op: &str) -> Result<File> {
        single(name, &self.path)?;
        let fd = openat(&self.fd, name, flags, Mode::from_bits_truncate(mode))
            .map_err(|e| Error::sys(format!("{op} {}", self.join(name).display()), e))?;
        Ok(File::from(fd))
    }

    /// Refuses what is not a regular file and, as root, one owned by another user or
    /// with other links (a hard link to someone else's file).
    fn check_file(&self, name: &OsStr, file: &File, op: &str) -> Result<()> {
        let st = fstat(file)
            .map_err(|e| Error::sys(format!("stat {}", self.join(name).display()), e))?;
        let euid = geteuid();
        let why = if !is_regular(&st) {
            "is not a regular file".to_owned()
        } else if euid.is_root() && st.st_uid != 0 {
            format!("belongs to uid {}, not root", st.st_uid)
        } else if euid.is_root() && st.st_nlink > 1 {
            format!("has {} links", st.st_nlink)
        } else {
            return Ok(());
        };
        Err(Error::new(
            ErrorKind::InvalidInput,
            format!("{op} {}: refused: it {why}", self.join(name).display()),
        ))
    }

    /// `lstat` of `name` (a symlink is reported as one, not followed).
    pub(crate) fn stat(&self, name: &OsStr) -> std::result::Result<FileStat, Errno> {
        single(name, &self.path).map_err(|_| Errno::EINVAL)?;
        fstatat(&self.fd, name, AtFlags::AT_SYMLINK_NOFOLLOW)
    }

    /// Renames `from` to `to`, both in this directory.
    pub(crate) fn rename(&self, from: &OsStr, to: &OsStr) -> Result<()> {
        single(from, &self.path)?;
        single(to, &self.path)?;
        renameat(&self.fd, from, &self.fd, to).map_err(|e| {
            Error::sys(
                format!(
                    "rename {} to {}",
                    self.join(from).display(),
                    self.join(to).display()
                ),
                e,
            )
        })
    }

    /// Removes `name` (a symlink itself, never its target).
    pub(crate) fn remove(&self, name: &OsStr) -> Result<()> {
        single(name, &self.path)?;
        unlinkat(&self.fd, name, UnlinkatFlags::NoRemoveDir)
            .map_err(|e| Error::sys(format!("remove {}", self.join(name).display()), e))
    }

    /// The names in the directory (without `.` and `..`).
    pub(crate) fn names(&self) -> Result<Vec<OsString>> {
        let err = |e| Error::sys(format!("read directory {}", self.path.display()), e);
        let fd = openat(&self.fd, ".", dir_flags() - OFlag::O_PATH, Mode::empty()).map_err(err)?;
        let mut dir = nix::dir::Dir::from_fd(fd).map_err(err)?;
        let mut names = Vec::new();
        for entry in dir.iter() {
            let name = entry.map_err(err)?.file_name().to_bytes().to_vec();
            if name != b"." && name != b".." {
                names.push(OsStr::from_bytes(&name).to_owned());
            }
        }
        Ok(names)
    }

    /// `fsync`s the directory (a rename's durability).
    pub(crate) fn sync(&self) -> Result<()> {
        let fd = openat(&self.fd, ".", dir_flags() - OFlag::O_PATH, Mode::empty())
            .map_err(|e| Error::sys(format!("open directory {}", self.path.display()), e))?;
        File::from(fd)
            .sync_all()
            .map_err(|e| Error::io(format!("fsync directory {}", self.path.display()), e))
    }
}

impl AsFd for LogDir {
    fn as_fd(&self) -> BorrowedFd<'_> {
        self.fd.as_fd()
    }
}

/// Opens the log file `path` for reading through a [`LogDir`] (no symlink anywhere in
/// the path; only a regular file, as root only root's): what `daemonic logs` reads.
pub fn open_log_file(path: &Path) -> Result<File> {
    let name = path.file_name().ok_or_else(|| {
        Error::new(
            ErrorKind::InvalidInput,
            format!("open log {}: not a file path", path.display()),
        )
    })?;
    LogDir::of(path, false)?.open_read(name)
}

/// Creates the log file `path` (mode `mode`) through a checked [`LogDir`] without keeping
/// it open: a launcher calls this before it forks, so that a refusal reaches the terminal.
pub fn create_log_file(path: &Path, mode: u32) -> Result<()> {
    let name = path.file_name().ok_or_else(|| {
        Error::new(
            ErrorKind::InvalidInput,
            format!("open log {}: not a file path", path.display()),
        )
    })?;
    LogDir::of(path, true)?.open_append(name, mode).map(drop)
}

/// The directory holding `active` (`.` for a bare file name).
pub(crate) fn parent_of(active: &Path) -> &Path {
    match active.parent() {
        Some(p) if !p.as_os_str().is_empty() => p,
        _ => Path::new("."),
    }
}

/// The components of `path` as names to walk (`/`, `.`, `..` or a file name).
fn names_of(path: &Path) -> Vec<OsString> {
    path.components()
        .map(|c| match c {
            Component::RootDir => OsString::from("/"),
            Component::CurDir => OsString::from("."),
            Component::ParentDir => OsString::from(".."),
            Component::Normal(n) => n.to_owned(),
            Component::Prefix(p) => p.as_os_str().to_owned(),
        })
        .collect()
}

/// The target of `name` in `parent` if it is a symlink that nobody but root and us could
/// have made or replaced: owned by root or the effective uid, in a directory owned by one
/// of them that nobody else can write (or that is sticky). `/var/run -> /run` is followed;
/// a symlink the service planted, or one in a directory it can write, is not.
fn trusted_link(parent: &OwnedFd, name: &OsStr) -> Option<PathBuf> {
    let link = fstatat(parent, name, AtFlags::AT_SYMLINK_NOFOLLOW).ok()?;
    let dir = fstat(parent).ok()?;
    let euid = geteuid().as_raw();
    let ours = |uid: u32| uid == 0 || uid == euid;
    let locked = dir.st_mode & 0o022 == 0 || dir.st_mode & 0o1000 != 0;
    let trusted = link.st_mode & libc::S_IFMT == libc::S_IFLNK
        && ours(link.st_uid)
        && ours(dir.st_uid)
        && locked;
    trusted
        .then(|| readlinkat(parent, name).ok())
        .flatten()
        .map(PathBuf::from)
}

/// `O_DIRECTORY | O_NOFOLLOW` fails on a symlink with `ENOTDIR`; say `ELOOP` ("Too many
/// levels of symbolic links") instead, which names the real reason.
fn symlink_as_eloop(parent: &OwnedFd, name: &OsStr, e: Errno) -> Errno {
    let is_link = fstatat(parent, name, AtFlags::AT_SYMLINK_NOFOLLOW)
        .is_ok_and(|st| st.st_mode & libc::S_IFMT == libc::S_IFLNK);
    if e == Errno::ENOTDIR && is_link {
        Errno::ELOOP
    } else {
        e
    }
}

fn dir_flags() -> OFlag {
    OFlag::O_PATH | OFlag::O_DIRECTORY | OFlag::O_NOFOLLOW | OFlag::O_CLOEXEC
}

fn is_regular(st: &FileStat) -> bool {
    SFlag::from_bits_truncate(st.st_mode) & SFlag::S_IFMT == SFlag::S_IFREG
}

/// Refuses a name that is not a single path component.
fn single(name: &OsStr, dir: &Path) -> Result<()> {
    let b = name.as_bytes();
    if b.is_empty() || b == b"." || b == b".." || b.contains(&b'/') {
        return Err(Error::new(
            ErrorKind::InvalidInput,
            format!(
                "log file name {name:?} in {} is not a file name",
                dir.display()
            ),
        ));
    }
    Ok(())
}

/// As root: refuses a directory someone else could change a name in (see the module docs).
fn check_dir(fd: &OwnedFd, path: &Path, last: bool, contents: Contents) -> Result<()> {
    let st = fstat(fd).map_err(|e| Error::sys(format!("stat {}", path.display()), e))?;
    let mode = st.st_mode & 0o7777;
    let sticky = mode & 0o1000 != 0;
    let why = if st.st_uid != 0 {
        format!("is owned by uid {}", st.st_uid)
    } else if last && mode & 0o022 != 0 {
        format!("is writable by group or others (mode {mode:04o})")
    } else if !last && mode & 0o002 != 0 && !sticky {
        format!("is writable by others (mode {mode:04o}) and not sticky")
    } else {
        return Ok(());
    };
    Err(Error::new(
        ErrorKind::InvalidInput,
        format!(
            "open {} {}: refused as root: it {why}, so another user could \
             replace or remove {}",
            contents.noun(),
            path.display(),
            contents.files()
        ),
    ))
}

#[cfg(test)]
pub(super) mod tests {
    use super::*;
    use std::os::unix::fs::symlink;

    /// A temp dir removed on drop, even when the test fails.
    pub(in crate::logging) struct TempDir(pub(in crate::logging) PathBuf);

    impl Drop for TempDir {
        fn drop(&mut self) {
            let _ = std::fs::remove_dir_all(&self.0);
        }
    }

    pub(in crate::logging) fn temp_dir(tag: &str) -> TempDir {
        let d = std::env::temp_dir().join(format!("daemonic-logdir-{tag}-{}", std::process::id()));
        let _ = std::fs::remove_dir_all(&d);
        std::fs::create_dir_all(&d).unwrap();
        TempDir(d)
    }

    #[test]
    fn a_symlink_in_a_directory_others_can_write_is_refused_with_eloop() {
        use std::os::unix::fs::PermissionsExt;
        let t = temp_dir("eloop");
        let open = t.0.join("open");
        std::fs::create_dir_all(open.join("real/sub")).unwrap();
        symlink(open.join("real"), open.join("link")).unwrap();
        // Ours, in a directory only we write: followed, `..` included.
        assert!(LogDir::open(&open.join("link/sub"), true).is_ok());
        assert!(LogDir::open(&open.join("link/sub/../sub"), true).is_ok());
        // The same link once others may write the directory (not sticky): refused.
        std::fs::set_permissions(&open, std::fs::Permissions::from_mode(0o777)).unwrap();
        for dir in [open.join("link"), open.join("link/sub")] {
            let err = LogDir::open(&dir, false).unwrap_err();
            assert_eq!(err.os_error(), Some(libc::ELOOP), "{err}");
            assert!(err.to_string().contains("link"), "{err}");
        }
        assert!(LogDir::open(&open.join("real"), false).is_ok());
        // A loop ends.
        std::fs::set_permissions(&open, std::fs::Permissions::from_mode(0o755)).unwrap();
        symlink(open.join("loop"), open.join("loop")).unwrap();
        let err = LogDir::open(&open.join("loop"), false).unwrap_err();
        assert_eq!(err.os_error(), Some(libc::ELOOP), "{err}");
    }

    #[test]
    fn only_regular_files_of_ours_are_read() {
        let t = temp_dir("read");
        let dir = LogDir::open(&t.0, false).unwrap();
        std::fs::write(t.0.join("target"), "secret").unwrap();
        symlink(t.0.join("target"), t.0.join("link")).unwrap();
        nix::unistd::mkfifo(&t.0.join("fifo"), Mode::from_bits_truncate(0o600)).unwrap();
        let err = dir.open_read(OsStr::new("link")).unwrap_err();
        assert_eq!(err.os_error(), Some(libc::ELOOP), "{err}");
        let err = dir.open_read(OsStr::new("fifo")).unwrap_err();
        assert_eq!(err.kind(), ErrorKind::InvalidInput, "{err}");
        assert!(err.to_string().contains("not a regular file"), "{err}");
        let err = dir.open_read(OsStr::new("../target")).unwrap_err();
        assert_eq!(err.kind(), ErrorKind::InvalidInput, "{err}");
        assert!(dir.open_read(OsStr::new("target")).is_ok());
    }

    #[test]
    fn temporary_files_are_never_opened_through_a_planted_name() {
        let t = temp_dir("excl");
        let dir = LogDir::open(&t.0, false).unwrap();
        std::fs::write(t.0.join("victim"), "keep").unwrap();
        symlink(t.0.join("victim"), t.0.join("a.tmp")).unwrap();
        let err = dir.create_new(OsStr::new("a.tmp"), 0o600).unwrap_err();
        assert_eq!(err.os_error(), Some(libc::EEXIST), "{err}");
        assert_eq!(std::fs::read_to_string(t.0.join("victim")).unwrap(), "keep");
    }
}
