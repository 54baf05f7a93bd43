//! Making a file-system change survive a power loss.
//!
//! A new, renamed or removed name is only durable once the *directory* holding it has been
//! fsynced: `sync_all` on a file persists its data, not its name. The journal, the unit
//! installers and every other "temp file, `sync_all`, rename, fsync the directory" step
//! use [`sync_dir`].

use std::fs::File;
use std::path::Path;

use crate::error::{Error, Result};

/// fsyncs a directory so the names created, renamed or removed in it survive a power loss.
/// Errors name the call and the directory (`fsync directory /etc/systemd/system: …`).
pub fn sync_dir(dir: &Path) -> Result<()> {
    let d =
        File::open(dir).map_err(|e| Error::io(format!("open directory {}", dir.display()), e))?;
    d.sync_all()
        .map_err(|e| Error::io(format!("fsync directory {}", dir.display()), e))
}
