//! Durable file-system steps shared by the log and the snapshot code.
//!
//! A rename or a new file is only durable once the *directory* holding it has been fsynced;
//! `sync_all` on the file alone persists its data, not its name. Every step here turns its
//! `io::Error` into an [`Error`] that names the call and the path.

use std::path::Path;

pub(crate) use crate::durable::sync_dir;
use crate::error::{Error, Result};

/// Creates `dir` (and its parents) if needed and makes its name durable.
pub(crate) fn create_dir_durably(dir: &Path) -> Result<()> {
    if dir.is_dir() {
        return Ok(());
    }
    std::fs::create_dir_all(dir)
        .map_err(|e| Error::io(format!("create directory {}", dir.display()), e))?;
    match dir.parent() {
        Some(parent) if !parent.as_os_str().is_empty() => sync_dir(parent),
        _ => Ok(()),
    }
}

/// Removes a file, treating "already gone" as success (recovery may remove the same
/// leftovers a crashed snapshot was removing).
pub(crate) fn remove_file(path: &Path) -> Result<()> {
    match std::fs::remove_file(path) {
        Ok(()) => Ok(()),
        Err(e) if e.kind() == std::io::ErrorKind::NotFound => Ok(()),
        Err(e) => Err(Error::io(format!("remove {}", path.display()), e)),
    }
}
