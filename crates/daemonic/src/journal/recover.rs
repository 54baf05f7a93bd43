//! Recovery: the last snapshot, then every log record after it, then a log to append to.
//!
//! # Order of work
//!
//! 1. A leftover `snapshot.tmp` (a snapshot interrupted before its rename) is ignored, and
//!    removed at the end with the covered generations (a refused open changes nothing).
//! 2. `snapshot` is loaded if present; it covers events `1..=snap`.
//! 3. Generations wholly covered by the snapshot — those followed by a generation starting
//!    at or before `snap + 1` — are not read (an interrupted snapshot may have left them)
//!    and are removed at the end.
//! 4. The remaining generations are scanned in order (see the torn-tail rule in `scan`);
//!    records with `seq <= snap` are checked but not applied, later ones are decoded and
//!    applied. The chain must be gapless: a generation must start exactly one after the
//!    previous one's last record (the first may start at or before `snap + 1`).
//! 5. Damage in the last generation with no valid frame after it is a torn tail: the file
//!    is cut there. Any other damage — a valid frame after it, or damage in a generation
//!    that has a successor — is corruption: [`ErrorKind::Corrupt`], unless repair was
//!    asked for, which keeps the prefix and removes everything after the damage.
//! 6. Appends continue in the last generation if it ends at the last recovered record;
//!    otherwise (its header was torn, or it ends before the snapshot) a new generation is
//!    started at the next sequence number.

use std::path::{Path, PathBuf};

use super::fs::{remove_file, sync_dir};
use super::scan::{Damage, Scan, scan_file};
use super::wal::{self, LogFile};
use super::{State, snapshot};
use crate::error::{Error, ErrorKind, Result};

/// What [`open`](super::Journal::open) found and did; see [`Journal::recovery`](super::Journal::recovery).
#[derive(Debug, Clone, Default, PartialEq, Eq)]
#[non_exhaustive]
pub struct Recovery {
    /// The sequence number the loaded snapshot covers (0: no snapshot).
    pub snapshot_seq: u64,
    /// How many log records were applied on top of the snapshot.
    pub replayed: u64,
    /// The sequence number of the last event in the recovered state (0: empty journal).
    pub last_seq: u64,
    /// Torn tails cut (and, with repair, corruption cut): each is data that was lost.
    pub truncated: Vec<Truncation>,
    /// Files left behind by an interrupted snapshot (or cut off by repair) and removed.
    pub removed: Vec<PathBuf>,
}

/// One cut made by recovery.
#[derive(Debug, Clone, PartialEq, Eq)]
#[non_exhaustive]
pub struct Truncation {
    /// The log generation that was cut.
    pub path: PathBuf,
    /// The byte offset it was cut at (0: the file header itself was damaged).
    pub offset: u64,
    /// How many bytes were discarded.
    pub discarded: u64,
    /// What was wrong at `offset`.
    pub reason: String,
    /// `true` if this was corruption before the tail, cut only because repair was asked
    /// for: records after it existed and are gone. `false` for a torn tail.
    pub repaired: bool,
}

/// A recovered journal, ready for the appender.
pub(crate) struct Recovered<S> {
    pub state: S,
    pub live: LogFile,
    pub report: Recovery,
}

/// Recovers the journal in `dir` (already locked by the caller).
pub(crate) fn recover<S: State>(dir: &Path, repair: bool) -> Result<Recovered<S>> {
    let mut report = Recovery::default();
    let (mut state, snap) = snapshot::load::<S>(dir)?.unwrap_or_default();
    report.snapshot_seq = snap;

    let logs = wal::list(dir)?;
    let first_needed = logs
        .iter()
        .rposition(|(start, _)| *start <= snap + 1)
        .unwrap_or(0);
    let chain = &logs[first_needed..];
    let mut last_seq = snap;
    // The generation appends may continue in, if it turns out to be usable.
    let mut tail: Option<Tail> = None;

    for (i, (start, path)) in chain.iter().enumerate() {
        let has_successor = i + 1 < chain.len();
        if *start > last_seq + 1 || (i > 0 && *start != last_seq + 1) {
            let why = format!(
                "{} starts at seq {start} but the records before it end at seq {last_seq}",
                path.display()
            );
            if !repair {
                return Err(corrupt(dir, &why, "records are missing"));
            }
            remove_from(&chain[i..], &mut report)?;
            break;
        }
        let (scan, replayed) = replay(&mut state, path, *start, last_seq)?;
        report.replayed += replayed;
        last_seq = last_seq.max(scan.last_seq);
        let mut this = Tail {
            start: *start,
            path: path.clone(),
            valid_len: scan.valid_len,
            last_seq: scan.last_seq,
            damaged: scan.damage.is_some(),
        };
        let Some(damage) = scan.damage else {
            tail = Some(this);
            continue;
        };
        let is_corruption = damage.later.is_some() || has_successor;
        if is_corruption && !repair {
            return Err(corrupt(
                dir,
                &describe(path, &damage, has_successor),
                "corruption before the tail",
            ));
        }
        report.truncated.push(Truncation {
            path: path.clone(),
            offset: damage.offset,
            discarded: damage.file_len - damage.offset,
            reason: damage.reason.clone(),
            repaired: is_corruption,
        });
        if damage.in_header() {
            this.valid_len = 0;
        }
        tail = Some(this);
        remove_from(&chain[i + 1..], &mut report)?;
        break;
    }

    let live = live_log(dir, tail, last_seq)?;
    remove_covered(dir, snap, &mut report)?;
    report.last_seq = last_seq;
    Ok(Recovered {
        state,
        live,
        report,
    })
}

/// Scans the generation at `path` (starting at `start`) and applies to `state` every
/// record after `applied` (the last one in it already); the scan, and how many it applied.
fn replay<S: State>(state: &mut S, path: &Path, start: u64, applied: u64) -> Result<(Scan, u64)> {
    let mut replayed = 0;
    let scan = scan_file(path, start, |seq, payload| {
        if seq > applied {
            let event = S::decode_event(payload).map_err(|e| {
                Error::new(
                    ErrorKind::Corrupt,
                    format!(
                        "recover {}: record seq {seq} has a good checksum but \
                         State::decode_event failed: {e}",
                        path.display()
                    ),
                )
            })?;
            state.apply(event);
            replayed += 1;
        }
        Ok(())
    })?;
    Ok((scan, replayed))
}

/// The generation appends go to, given the last one scanned (`tail`) and the last
/// recovered record.
fn live_log(dir: &Path, tail: Option<Tail>, last_seq: u64) -> Result<LogFile> {
    match tail {
        // The usual case: the last generation holds the last record; append after it.
        Some(t) if t.valid_len > 0 && t.last_seq == last_seq => {
            LogFile::reopen(&t.path, t.start, t.valid_len, t.damaged)
        }
        // Its header was torn while it was being created: create it again.
        Some(t) if t.start == last_seq + 1 => LogFile::recreate(dir, t.start),
        // It ends before the snapshot does (or there is none): a new generation.
        _ => LogFile::create(dir, last_seq + 1),
    }
}

/// The last generation scanned: where appends may continue.
struct Tail {
    start: u64,
    path: PathBuf,
    /// End of its last good record; 0 if its header is damaged.
    valid_len: u64,
    /// Its last good record (`start - 1` if none).
    last_seq: u64,
    /// Whether anything but preallocated zeros follows `valid_len`.
    damaged: bool,
}

/// Removes generations whose every record is in the snapshot: those followed by a
/// generation starting at or before `snap + 1`. Decided on the final list of files, after
/// the live generation exists, so it can never remove a record that is nowhere else.
///
/// A leftover `snapshot.tmp` goes here too, not earlier: an open that refuses (a damaged
/// snapshot, a gap) changes nothing, and that temp file may be what an operator wants.
fn remove_covered(dir: &Path, snap: u64, report: &mut Recovery) -> Result<()> {
    let logs = wal::list(dir)?;
    let mut removed_any = false;
    let temp = dir.join(snapshot::TEMP_FILE);
    if temp.exists() {
        remove_file(&temp)?;
        report.removed.push(temp);
        removed_any = true;
    }
    for pair in logs.windows(2) {
        let ((_, path), (next_start, _)) = (&pair[0], &pair[1]);
        if *next_start <= snap + 1 {
            remove_file(path)?;
            report.removed.push(path.clone());
            removed_any = true;
        }
    }
    if removed_any {
        sync_dir(dir)?;
    }
    Ok(())
}

/// Removes `files` (generations after a cut) and records them in the report.
fn remove_from(files: &[(u64, PathBuf)], report: &mut Recovery) -> Result<()> {
    for (_, path) in files {
        remove_file(path)?;
        report.removed.push(path.clone());
    }
    Ok(())
}

fn describe(path: &Path, d: &Damage, has_successor: bool) -> String {
    let after = match (d.later, has_successor) {
        (Some((offset, seq)), _) => {
            format!("a valid record (seq {seq}) follows at offset {offset}")
        }
        (None, _) => "a later log generation follows".to_string(),
    };
    format!(
        "{} at offset {}: {}, but {after}",
        path.display(),
        d.offset,
        d.reason
    )
}

fn corrupt(dir: &Path, why: &str, what: &str) -> Error {
    Error::new(
        ErrorKind::Corrupt,
        format!(
            "recover journal {}: {what}: {why} (nothing was changed; Options::repair \
             keeps the records before the damage and discards the rest)",
            dir.display()
        ),
    )
}
