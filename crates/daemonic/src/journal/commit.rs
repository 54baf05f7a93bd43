//! Appending and making appends durable: the three [`Durability`] modes.
//!
//! # Invariants (all under the `inner` mutex)
//!
//! - `next_seq - 1` is the last record written to the live log, `durable_seq <= next_seq - 1`
//!   the last one known to be fsynced.
//! - Records are written in sequence order, one `write` per record, under the mutex; the
//!   state applies each event in the same order, just before its record is written.
//! - At most one thread fsyncs at a time (`syncing`). It does so *without* the mutex, on a
//!   shared handle to the live file, so other threads keep writing during the fsync; it then
//!   advances `durable_seq` to what had been written when it started. Whoever swaps the live
//!   file (a snapshot) first waits for `syncing` to clear.
//! - Any failed write or fsync sets `failed`: after an fsync error the kernel may have
//!   dropped the dirty pages, so retrying could report success for lost data (PostgreSQL's
//!   "fsyncgate"). A failed journal refuses every later call with [`ErrorKind::Poisoned`];
//!   reopening it recovers what is on disk.

use std::sync::{Arc, PoisonError};
use std::time::Duration;

use super::record::{FRAME_HEADER_LEN, MAX_RECORD_LEN, payload_hasher, seal_frame};
use super::shared::{Guard, Shared};
use super::wal;
use super::{Durability, State};
use crate::error::{Error, ErrorKind, Result};

impl<S: State> Shared<S> {
    /// Locks the core, turning a poisoned mutex (a panic in `State::apply` or `encode`)
    /// into an error: the in-memory state may be half-updated.
    pub fn lock(&self) -> Result<Guard<'_, S>> {
        self.inner.lock().map_err(|_| self.poisoned())
    }

    fn poisoned(&self) -> Error {
        Error::new(
            ErrorKind::Poisoned,
            format!(
                "journal {}: a thread panicked while holding it (in State::apply or \
                 State::encode?); reopen it",
                self.dir.display()
            ),
        )
    }

    /// Appends one event; see [`Durability`] for what is promised on return.
    pub fn append(&self, event: S::Event) -> Result<u64> {
        let mut frame = vec![0u8; FRAME_HEADER_LEN];
        S::encode_event(&event, &mut frame);
        let len = frame.len() - FRAME_HEADER_LEN;
        if len > MAX_RECORD_LEN as usize {
            return Err(Error::new(
                ErrorKind::InvalidInput,
                format!(
                    "append to journal {}: the event encodes to {len} bytes, more than the \
                     {MAX_RECORD_LEN} a record may hold",
                    self.dir.display()
                ),
            ));
        }
        // Checksum the payload before taking the lock; only len and seq are added under it.
        let hash = payload_hasher(&frame[FRAME_HEADER_LEN..]);
        let mut g = self.lock()?;
        g.check_usable(&self.dir)?;
        let seq = g.next_seq;
        seal_frame(&mut frame, hash, seq);
        // Apply before writing: an event whose apply panics never reaches the log, so it
        // cannot make every later recovery panic too.
        g.state.apply(event);
        if let Err(e) = g.log.append(&frame) {
            g.fail(&e);
            return Err(e);
        }
        g.next_seq += 1;
        match self.durability {
            Durability::EveryAppend => {
                if let Err(e) = wal::sync_data(&g.log.file, &g.log.path) {
                    g.fail(&e);
                    return Err(e);
                }
                g.durable_seq = seq;
            }
            Durability::GroupCommit => g = self.sync_through(g, seq)?,
            Durability::Interval(_) => {}
        }
        self.maybe_compact(g);
        Ok(seq)
    }

    /// Makes every record written so far durable.
    pub fn sync(&self) -> Result<()> {
        let g = self.lock()?;
        let last = g.next_seq - 1;
        self.sync_through(g, last).map(drop)
    }

    /// Returns once record `seq` is durable: the group-commit leader/follower protocol.
    ///
    /// If no sync is running, this thread becomes the leader: it notes the last record
    /// written, releases the mutex, fsyncs, and publishes the new `durable_seq`. Otherwise it
    /// waits for the running sync and checks again — that sync may not cover `seq` (it began
    /// before `seq` was written), in which case the next leader's will.
    pub fn sync_through<'a>(&'a self, mut g: Guard<'a, S>, seq: u64) -> Result<Guard<'a, S>> {
        loop {
            g.check_usable(&self.dir)?;
            if g.durable_seq >= seq {
                return Ok(g);
            }
            if g.syncing {
                g = self.synced.wait(g).map_err(|_| self.poisoned())?;
                continue;
            }
            g.syncing = true;
            let target = g.next_seq - 1;
            let (file, path) = (Arc::clone(&g.log.file), g.log.path.clone());
            drop(g);
            let result = wal::sync_data(&file, &path);
            // Clear `syncing` even if the mutex was poisoned meanwhile, so no one waits
            // forever; the poison is reported on the next lock.
            let mut relocked = self.inner.lock().unwrap_or_else(PoisonError::into_inner);
            relocked.syncing = false;
            match result {
                Ok(()) => relocked.durable_seq = relocked.durable_seq.max(target),
                Err(e) => relocked.fail(&e),
            }
            self.synced.notify_all();
            drop(relocked);
            g = self.lock()?;
        }
    }

    /// Waits until no sync is running, so the live log may be swapped.
    pub fn wait_idle<'a>(&'a self, mut g: Guard<'a, S>) -> Result<Guard<'a, S>> {
        while g.syncing {
            g = self.synced.wait(g).map_err(|_| self.poisoned())?;
        }
        Ok(g)
    }

    /// The automatic compaction at the end of an append (see `Options::compact_after`).
    fn maybe_compact(&self, g: Guard<'_, S>) {
        let due = matches!(g.compact_at, Some(at) if g.log.len >= at);
        if !due {
            return;
        }
        let g = match self.wait_idle(g) {
            Ok(g) => g,
            Err(_) => return,
        };
        let (mut g, result) = super::compact::snapshot_locked(self, g, &mut |_| {});
        if let Err(e) = result {
            let (len, every) = (g.log.len, self.compact_after.unwrap_or(u64::MAX));
            g.compact_at = Some(len.saturating_add(every));
            g.compaction_error = Some(e);
        }
    }

    /// The interval flusher's loop: fsync every `every` until told to stop.
    pub fn flush_every(&self, every: Duration) {
        let mut stop = self.stop.lock().unwrap_or_else(PoisonError::into_inner);
        while !*stop {
            // A spurious wakeup only means an early sync, which is harmless.
            stop = match self.stop_signal.wait_timeout(stop, every) {
                Ok((guard, _)) => guard,
                Err(poisoned) => poisoned.into_inner().0,
            };
            if *stop {
                break;
            }
            drop(stop);
            // A failure is recorded in `failed` and reported by the next call.
            let _ = self.sync();
            stop = self.stop.lock().unwrap_or_else(PoisonError::into_inner);
        }
    }
}
