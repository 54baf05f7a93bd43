//! [`Journal`], the handle an application holds: open, append, read, snapshot, close.

use std::ops::Deref;
use std::path::Path;
use std::sync::{Arc, Condvar, Mutex, PoisonError};
use std::thread::JoinHandle;

use super::lock::{DirLock, lock_dir};
use super::record::LOG_HEADER_LEN;
use super::recover::{Recovery, recover};
use super::shared::{Guard, Inner, Shared};
use super::{Durability, Options, SnapshotStep, State, compact, fs};
use crate::error::{Error, Result};

/// A journal of `S`'s events, open for appending; at most one per directory.
///
/// `Journal` is `Sync`: share it (e.g. in an `Arc`) and append from several threads —
/// with [`Durability::GroupCommit`] that is what makes appends cheap. Dropping it syncs
/// what is pending (errors are lost; use [`close`](Journal::close) to see them) and
/// releases the lock.
pub struct Journal<S: State> {
    shared: Arc<Shared<S>>,
    flusher: Option<JoinHandle<()>>,
    recovery: Recovery,
    // Declared last so it is dropped last: the lock outlives every write.
    _lock: DirLock,
}

impl<S: State> std::fmt::Debug for Journal<S> {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("Journal")
            .field("dir", &self.shared.dir)
            .field("durability", &self.shared.durability)
            .finish_non_exhaustive()
    }
}

impl<S: State> Journal<S> {
    /// Opens (creating if needed) the journal in `dir` with default [`Options`]: locks it,
    /// recovers the state, and starts a log to append to.
    ///
    /// Errors: [`Locked`](crate::ErrorKind::Locked) if another process (or another
    /// `Journal` in this one) has it open; [`Corrupt`](crate::ErrorKind::Corrupt) for damage
    /// that is not a torn tail (see the module docs); `Io` for failed system calls.
    pub fn open(dir: impl AsRef<Path>) -> Result<Journal<S>> {
        Journal::open_with(dir.as_ref(), &Options::new())
    }

    pub(crate) fn open_with(dir: &Path, options: &Options) -> Result<Journal<S>> {
        fs::create_dir_durably(dir)?;
        let lock = lock_dir(dir)?;
        let recovered = recover::<S>(dir, options.repair)?;
        let last_seq = recovered.report.last_seq;
        let inner = Inner {
            state: recovered.state,
            log: recovered.live,
            next_seq: last_seq + 1,
            // Everything recovered was read back from disk; treat it as durable. (A torn tail
            // was cut and the cut fsynced by `LogFile::reopen`.)
            durable_seq: last_seq,
            syncing: false,
            failed: None,
            compact_at: None,
            compaction_error: None,
        };
        let shared = Arc::new(Shared {
            dir: dir.to_path_buf(),
            durability: options.durability,
            compact_after: options.compact_after,
            inner: Mutex::new(inner),
            synced: Condvar::new(),
            stop: Mutex::new(false),
            stop_signal: Condvar::new(),
        });
        {
            let mut g = shared.lock()?;
            g.compact_at = options
                .compact_after
                .map(|every| (LOG_HEADER_LEN as u64).saturating_add(every));
        }
        let flusher = match options.durability {
            Durability::Interval(every) => {
                let worker = Arc::clone(&shared);
                let handle = std::thread::Builder::new()
                    .name("journal-flush".into())
                    .spawn(move || worker.flush_every(every))
                    .map_err(|e| {
                        Error::io(format!("spawn journal flusher for {}", dir.display()), e)
                    })?;
                Some(handle)
            }
            _ => None,
        };
        Ok(Journal {
            shared,
            flusher,
            recovery: recovered.report,
            _lock: lock,
        })
    }

    /// Applies `event` to the state and logs it; returns its sequence number.
    ///
    /// What is guaranteed when this returns `Ok` depends on the [`Durability`] mode; in
    /// every mode the event is in the state, and the record has been written to the kernel
    /// and survives the death of the process. The event is applied *before* its record is
    /// durable, so another thread reading [`state`](Journal::state) may see it before this
    /// call returns.
    ///
    /// An error from writing or syncing leaves the journal unusable
    /// ([`Poisoned`](crate::ErrorKind::Poisoned) from every later call, and the state may
    /// include the failed event): reopen it to recover what reached the disk.
    pub fn append(&self, event: S::Event) -> Result<u64> {
        self.shared.append(event)
    }

    /// Makes every event appended so far durable (a no-op in the fsync-per-append modes).
    pub fn sync(&self) -> Result<()> {
        self.shared.sync()
    }

    /// Read access to the current state. Appends wait while the guard is held; keep it
    /// short. (After a panic in `State::apply` this still gives the possibly half-updated
    /// state, for diagnostics; every writing call then fails with `Poisoned`.)
    pub fn state(&self) -> StateGuard<'_, S> {
        let guard = self
            .shared
            .inner
            .lock()
            .unwrap_or_else(PoisonError::into_inner);
        StateGuard { guard }
    }

    /// Writes the state to a new snapshot and starts a new log generation; returns the
    /// sequence number the snapshot covers. Crash-safe at every step (see
    /// [`SnapshotStep`]). Appends wait while it runs.
    pub fn snapshot(&self) -> Result<u64> {
        self.snapshot_observed(|_| {})
    }

    /// [`snapshot`](Journal::snapshot), calling `observer` after each durable step — for
    /// progress logging, or, as the crash tests do, to kill the process at a chosen step.
    /// The journal lock is held while `observer` runs.
    pub fn snapshot_observed(&self, mut observer: impl FnMut(SnapshotStep)) -> Result<u64> {
        let g = self.shared.lock()?;
        let g = self.shared.wait_idle(g)?;
        compact::snapshot_locked(&self.shared, g, &mut observer).1
    }

    /// What recovery found and did when this journal was opened.
    pub fn recovery(&self) -> &Recovery {
        &self.recovery
    }

    /// The sequence number of the last event appended (or recovered); 0 if none.
    pub fn last_seq(&self) -> u64 {
        self.state().guard.next_seq - 1
    }

    /// The sequence number of the last event known to be durable.
    pub fn durable_seq(&self) -> u64 {
        self.state().guard.durable_seq
    }

    /// The journal's directory.
    pub fn dir(&self) -> &Path {
        &self.shared.dir
    }

    /// The error of the last failed automatic snapshot, if any, clearing it.
    pub fn take_compaction_error(&self) -> Option<Error> {
        self.shared.lock().ok()?.compaction_error.take()
    }

    /// Syncs what is pending, stops the background flusher and releases the lock,
    /// reporting any error (dropping the journal does the same but cannot report).
    pub fn close(mut self) -> Result<()> {
        self.shut_down()
    }

    fn shut_down(&mut self) -> Result<()> {
        if let Some(flusher) = self.flusher.take() {
            *self
                .shared
                .stop
                .lock()
                .unwrap_or_else(PoisonError::into_inner) = true;
            self.shared.stop_signal.notify_all();
            let _ = flusher.join();
        }
        self.shared.sync()
    }
}

impl<S: State> Drop for Journal<S> {
    fn drop(&mut self) {
        let _ = self.shut_down();
    }
}

/// Read access to a journal's state, from [`Journal::state`]; derefs to `S`.
pub struct StateGuard<'a, S: State> {
    guard: Guard<'a, S>,
}

impl<S: State> Deref for StateGuard<'_, S> {
    type Target = S;
    fn deref(&self) -> &S {
        &self.guard.state
    }
}
