//! Snapshot and log rotation, in an order that is crash-safe after every step.
//!
//! A snapshot at sequence number `n` (the last event the state includes) runs these steps,
//! holding the journal lock throughout; after each one it reports a [`SnapshotStep`]:
//!
//! | step | what is done | if the process or machine dies right after it |
//! |---|---|---|
//! | [`LogSynced`](SnapshotStep::LogSynced) | the live log is fsynced through `n` | nothing changed on disk: old snapshot + full log |
//! | [`TempWritten`](SnapshotStep::TempWritten) | `snapshot.tmp` written and fsynced | recovery deletes `snapshot.tmp`; old snapshot + full log |
//! | [`Renamed`](SnapshotStep::Renamed) | `snapshot.tmp` renamed over `snapshot` | either snapshot may be on disk; both are consistent with the full log |
//! | [`DirSynced`](SnapshotStep::DirSynced) | the directory fsynced: the new snapshot is durable | new snapshot; the old generation still holds `..=n`, replay skips it |
//! | [`NewLogCreated`](SnapshotStep::NewLogCreated) | `wal-<n+1>.log` created (header fsynced, directory fsynced); appends go there | the old generation is covered (its successor starts at `n + 1`) and recovery removes it |
//! | [`OldLogsRemoved`](SnapshotStep::OldLogsRemoved) | older generations removed, directory fsynced | done |
//!
//! Why this order: the snapshot is durable before the new generation exists, so a
//! generation starting at `n + 1` proves a snapshot covering `n` exists; and the old
//! generations are removed only after both, so no record is ever only in a file that is
//! being deleted. The log is synced first so the old generation really holds every record
//! up to `n` — a snapshot never has to stand in for log records a crash could tear.

use super::SnapshotStep;
use super::fs::{remove_file, sync_dir};
use super::record::LOG_HEADER_LEN;
use super::shared::{Guard, Shared};
use super::wal::{self, LogFile};
use super::{State, snapshot};
use crate::error::Result;

/// Takes a snapshot of the state under `g` (no sync may be running) and rotates the log.
/// Returns the guard with the result, so automatic compaction can keep using the lock.
pub(crate) fn snapshot_locked<'a, S: State>(
    shared: &'a Shared<S>,
    mut g: Guard<'a, S>,
    step: &mut dyn FnMut(SnapshotStep),
) -> (Guard<'a, S>, Result<u64>) {
    let result = run_steps(shared, &mut g, step);
    if result.is_ok() {
        g.compact_at = shared
            .compact_after
            .map(|every| (LOG_HEADER_LEN as u64).saturating_add(every));
    }
    (g, result)
}

fn run_steps<S: State>(
    shared: &Shared<S>,
    g: &mut Guard<'_, S>,
    step: &mut dyn FnMut(SnapshotStep),
) -> Result<u64> {
    g.check_usable(&shared.dir)?;
    let seq = g.next_seq - 1;
    if g.log.start_seq == seq + 1 {
        // No record since the last rotation: the snapshot on disk (or the empty state)
        // already covers `seq`, and the live generation already starts after it.
        return Ok(seq);
    }
    if g.durable_seq < seq {
        if let Err(e) = wal::sync_data(&g.log.file, &g.log.path) {
            g.fail(&e);
            return Err(e);
        }
        g.durable_seq = seq;
    }
    step(SnapshotStep::LogSynced);

    let mut payload = Vec::new();
    g.state.encode(&mut payload);
    snapshot::write(&shared.dir, seq, &payload, step)?;

    let new = match LogFile::create(&shared.dir, seq + 1) {
        Ok(new) => new,
        Err(e) => {
            // A half-created generation `n + 1` would make recovery treat the old one as
            // covered; appending to the old one now could lose those records. Stop here:
            // recovery sees a torn new generation and recreates it.
            g.fail(&e);
            return Err(e);
        }
    };
    g.log = new;
    step(SnapshotStep::NewLogCreated);

    let mut removed_any = false;
    for (start, path) in wal::list(&shared.dir)? {
        if start <= seq {
            remove_file(&path)?;
            removed_any = true;
        }
    }
    if removed_any {
        sync_dir(&shared.dir)?;
    }
    step(SnapshotStep::OldLogsRemoved);
    Ok(seq)
}
