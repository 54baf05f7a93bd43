//! The journal's shared core — the state behind the one mutex, and who holds it — below
//! both the append path (`commit`) and the snapshot path (`compact`), which use it; the
//! invariants are in `commit`'s docs.

use std::path::PathBuf;
use std::sync::{Condvar, Mutex, MutexGuard};

use super::Durability;
use super::wal::LogFile;
use crate::error::{Error, ErrorKind, Result};

/// Everything the appenders share, behind one mutex.
pub(crate) struct Inner<S> {
    pub state: S,
    pub log: LogFile,
    pub next_seq: u64,
    pub durable_seq: u64,
    pub syncing: bool,
    pub failed: Option<String>,
    /// Live-log size at which the next automatic snapshot is taken.
    pub compact_at: Option<u64>,
    pub compaction_error: Option<Error>,
}

impl<S> Inner<S> {
    /// Refuses to go on after an earlier failure.
    pub fn check_usable(&self, dir: &std::path::Path) -> Result<()> {
        match &self.failed {
            None => Ok(()),
            Some(why) => Err(Error::new(
                ErrorKind::Poisoned,
                format!(
                    "journal {}: unusable after an earlier failure ({why}); reopen it",
                    dir.display()
                ),
            )),
        }
    }

    /// Records a failure that leaves the log in an unknown state.
    pub fn fail(&mut self, e: &Error) {
        self.failed.get_or_insert_with(|| e.to_string());
    }
}

/// The journal's shared core; `Journal` and the interval flusher thread hold it.
pub(crate) struct Shared<S> {
    pub dir: PathBuf,
    pub durability: Durability,
    pub compact_after: Option<u64>,
    pub inner: Mutex<Inner<S>>,
    /// Signalled whenever a sync finishes (`syncing` cleared, `durable_seq` advanced).
    pub synced: Condvar,
    /// Set to stop the interval flusher; its own mutex so the flusher never waits on appends.
    pub stop: Mutex<bool>,
    pub stop_signal: Condvar,
}

pub(crate) type Guard<'a, S> = MutexGuard<'a, Inner<S>>;
