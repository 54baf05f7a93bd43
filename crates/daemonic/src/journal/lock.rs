//! One writer per journal: an exclusive `flock` on `dir/lock`, held for the journal's life.
//!
//! `flock` locks belong to the open file description, so the lock is released by the
//! kernel when the process dies however it dies — no stale lock to clean up after `kill -9`.
//! A second `open` of the same directory fails, from another process or from this one.
//! The holder writes its pid into the file so the error can name it; the pid is advisory
//! (it is read without the lock), the `flock` is the truth.

use std::fs::{File, OpenOptions};
use std::io::{Read, Seek, Write};
use std::path::Path;

use nix::errno::Errno;
use nix::fcntl::{Flock, FlockArg};

use crate::error::{Error, ErrorKind, Result};

/// File name of the lock file inside the journal directory.
pub(crate) const FILE: &str = "lock";

/// The held lock; dropping it releases the lock.
#[derive(Debug)]
pub(crate) struct DirLock {
    _file: Flock<File>,
}

/// Takes the journal lock on `dir` without waiting.
pub(crate) fn lock_dir(dir: &Path) -> Result<DirLock> {
    let path = dir.join(FILE);
    // std opens files with O_CLOEXEC, so a child the daemon execs does not keep the lock.
    let file = OpenOptions::new()
        .read(true)
        .write(true)
        .create(true)
        .truncate(false)
        .open(&path)
        .map_err(|e| Error::io(format!("open {}", path.display()), e))?;
    match Flock::lock(file, FlockArg::LockExclusiveNonblock) {
        Ok(mut locked) => {
            // Best effort: the pid only decorates the error another process will show.
            let pid = std::process::id().to_string();
            let _ = locked.set_len(0);
            let _ = locked
                .rewind()
                .and_then(|_| locked.write_all(pid.as_bytes()));
            Ok(DirLock { _file: locked })
        }
        Err((mut file, Errno::EWOULDBLOCK)) => {
            let mut holder = String::new();
            let _ = file.read_to_string(&mut holder);
            let holder = match holder.trim().parse::<u32>() {
                Ok(pid) => format!(" (held by pid {pid})"),
                Err(_) => String::new(),
            };
            Err(Error::new(
                ErrorKind::Locked,
                format!(
                    "lock journal {}: locked by another process{holder}",
                    dir.display()
                ),
            ))
        }
        Err((_, errno)) => Err(Error::sys(format!("flock {}", path.display()), errno)),
    }
}
