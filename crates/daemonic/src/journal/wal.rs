//! Log files: their names, creation, and the handle the appenders write through.
//!
//! A journal's log is a chain of *generations*, `wal-<start_seq>.log`, where `start_seq`
//! (20 decimal digits, so names sort in sequence order) is the sequence number of the
//! first record the file holds. A snapshot at sequence number `n` starts the generation
//! `wal-<n+1>.log` and then removes the older ones; in normal operation at most one
//! generation is live. A generation is never truncated in place except at recovery, to cut
//! a torn tail.
//!
//! # Preallocation
//!
//! Space is allocated ahead of the records, [`PREALLOC`] bytes at a time (`posix_fallocate`,
//! which zero-fills), and records are written at their offset (`pwrite`) rather than
//! appended. Then most `fdatasync`s do not change the file's size — the size update is what
//! forces the filesystem to commit its own journal on every append, which costs about a
//! third of an append's time on ext4. The file therefore ends in zeros; recovery treats a
//! zero frame header followed only by zeros as the end of the log (see `scan`).

use std::fs::{File, OpenOptions};
use std::io::Write;
use std::os::unix::fs::FileExt;
use std::path::{Path, PathBuf};
use std::sync::Arc;

use super::fs::sync_dir;
use super::record::{LOG_HEADER_LEN, encode_log_header};
use crate::error::{Error, Result};

const PREFIX: &str = "wal-";
const SUFFIX: &str = ".log";
/// How much space is allocated ahead of the records at a time.
pub(crate) const PREALLOC: u64 = 4 << 20;

/// The file name of the generation whose first record is `start_seq`.
pub(crate) fn file_name(start_seq: u64) -> String {
    format!("{PREFIX}{start_seq:020}{SUFFIX}")
}

/// Parses a generation file name back into its start sequence number.
pub(crate) fn parse_name(name: &str) -> Option<u64> {
    let digits = name.strip_prefix(PREFIX)?.strip_suffix(SUFFIX)?;
    if digits.len() != 20 || !digits.bytes().all(|b| b.is_ascii_digit()) {
        return None;
    }
    // Sequence numbers start at 1: no generation starts at 0, and recovery's arithmetic
    // (`start - 1` is the seq before the file) relies on it. Such a file is not ours.
    digits.parse().ok().filter(|&start| start > 0)
}

/// All log generations in `dir`, sorted by start sequence number.
pub(crate) fn list(dir: &Path) -> Result<Vec<(u64, PathBuf)>> {
    let entries =
        std::fs::read_dir(dir).map_err(|e| Error::io(format!("list {}", dir.display()), e))?;
    let mut logs = Vec::new();
    for entry in entries {
        let entry = entry.map_err(|e| Error::io(format!("list {}", dir.display()), e))?;
        if let Some(start) = entry.file_name().to_str().and_then(parse_name) {
            logs.push((start, entry.path()));
        }
    }
    logs.sort();
    Ok(logs)
}

/// The live generation: where appends go.
///
/// The file is shared (`Arc`) so a group-commit leader can `fdatasync` it without holding
/// the journal lock while other threads keep writing.
#[derive(Debug, Clone)]
pub(crate) struct LogFile {
    pub file: Arc<File>,
    pub path: PathBuf,
    pub start_seq: u64,
    /// Bytes of header and records: where the next record is written.
    pub len: u64,
    /// Bytes allocated (the file's size): `len..allocated` is zeros.
    pub allocated: u64,
}

impl LogFile {
    /// Creates generation `start_seq` in `dir`: header written and fsynced, then the
    /// directory fsynced, so the file exists durably before any record goes into it.
    /// Fails if the file already exists: a generation is never overwritten.
    pub fn create(dir: &Path, start_seq: u64) -> Result<LogFile> {
        let path = dir.join(file_name(start_seq));
        let mut file = OpenOptions::new()
            .write(true)
            .create_new(true)
            .open(&path)
            .map_err(|e| Error::io(format!("create {}", path.display()), e))?;
        file.write_all(&encode_log_header(start_seq))
            .map_err(|e| Error::io(format!("write header of {}", path.display()), e))?;
        file.sync_all()
            .map_err(|e| Error::io(format!("fsync {}", path.display()), e))?;
        sync_dir(dir)?;
        Ok(LogFile {
            file: Arc::new(file),
            path,
            start_seq,
            len: LOG_HEADER_LEN as u64,
            allocated: LOG_HEADER_LEN as u64,
        })
    }

    /// Rewrites the header of a generation whose creation was cut short (the file exists
    /// but its header is incomplete), so appends can go on in it.
    pub fn recreate(dir: &Path, start_seq: u64) -> Result<LogFile> {
        let path = dir.join(file_name(start_seq));
        super::fs::remove_file(&path)?;
        LogFile::create(dir, start_seq)
    }

    /// Opens an existing generation for appending after recovery has checked it: its
    /// records end at `valid_len`, and `damaged` says whether anything but preallocated
    /// zeros follows.
    pub fn reopen(path: &Path, start_seq: u64, valid_len: u64, damaged: bool) -> Result<LogFile> {
        let file = OpenOptions::new()
            .write(true)
            .open(path)
            .map_err(|e| Error::io(format!("open {}", path.display()), e))?;
        let mut allocated = file
            .metadata()
            .map_err(|e| Error::io(format!("stat {}", path.display()), e))?
            .len();
        if damaged {
            // The torn tail is cut and the cut made durable before anything is written;
            // otherwise new records would sit next to garbage and look like corruption.
            file.set_len(valid_len)
                .map_err(|e| Error::io(format!("truncate {}", path.display()), e))?;
            file.sync_all()
                .map_err(|e| Error::io(format!("fsync {}", path.display()), e))?;
            allocated = valid_len;
        }
        Ok(LogFile {
            file: Arc::new(file),
            path: path.to_path_buf(),
            start_seq,
            len: valid_len,
            allocated,
        })
    }

    /// Writes whole frames at the end of the records, allocating more space first if needed.
    pub fn append(&mut self, bytes: &[u8]) -> Result<()> {
        let end = self.len + bytes.len() as u64;
        if end > self.allocated {
            let grow = PREALLOC.max(end - self.allocated);
            let to_off = |n: u64| i64::try_from(n).unwrap_or(i64::MAX);
            // EINTR (a signal during a large allocation) allocated nothing for sure: retry,
            // as `write_all_at` does for writes, rather than poison the journal.
            let allocate =
                || nix::fcntl::posix_fallocate(&*self.file, to_off(self.allocated), to_off(grow));
            let mut result = allocate();
            while result == Err(nix::errno::Errno::EINTR) {
                result = allocate();
            }
            result.map_err(|e| Error::sys(format!("fallocate {}", self.path.display()), e))?;
            self.allocated += grow;
        }
        self.file
            .write_all_at(bytes, self.len)
            .map_err(|e| Error::io(format!("write to {}", self.path.display()), e))?;
        self.len = end;
        Ok(())
    }
}

/// `fdatasync` on a log file: its data and the size change that makes the data reachable.
pub(crate) fn sync_data(file: &File, path: &Path) -> Result<()> {
    file.sync_data()
        .map_err(|e| Error::io(format!("fsync {}", path.display()), e))
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn names_sort_in_sequence_order_and_parse_back() {
        assert_eq!(file_name(1), "wal-00000000000000000001.log");
        assert_eq!(parse_name(&file_name(u64::MAX)), Some(u64::MAX));
        assert!(file_name(9) < file_name(10));
        assert_eq!(parse_name("wal-1.log"), None);
        assert_eq!(parse_name(&file_name(0)), None);
        assert_eq!(parse_name("snapshot"), None);
        assert_eq!(parse_name("wal-0000000000000000000x.log"), None);
    }
}
