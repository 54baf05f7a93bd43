//! Crash-safe application state: a snapshot plus a write-ahead log.
//!
//! A daemon's state — a queue, a set of leases, counters — is a value of a type that
//! implements [`State`]: it changes only by *applying events*. A [`Journal`] logs each
//! event before the caller is told it happened, and on [`Journal::open`] rebuilds the state
//! from the last snapshot plus the events logged after it. Kill the process at any moment,
//! pull the power: the reopened state holds every event whose `append` returned, under the
//! [`Durability`] mode chosen, and nothing that was never appended.
//!
//! ```
//! use daemonic::journal::{DecodeError, Journal, State};
//!
//! /// The state: a running total.
//! #[derive(Default)]
//! struct Total(i64);
//!
//! impl State for Total {
//!     type Event = i64; // "add this much"
//!
//!     fn apply(&mut self, delta: i64) {
//!         self.0 += delta;
//!     }
//!     fn encode_event(delta: &i64, out: &mut Vec<u8>) {
//!         out.extend_from_slice(&delta.to_le_bytes());
//!     }
//!     fn decode_event(bytes: &[u8]) -> Result<i64, DecodeError> {
//!         let bytes = bytes.try_into().map_err(|_| DecodeError::new("expected 8 bytes"))?;
//!         Ok(i64::from_le_bytes(bytes))
//!     }
//!     fn encode(&self, out: &mut Vec<u8>) {
//!         Self::encode_event(&self.0, out);
//!     }
//!     fn decode(bytes: &[u8]) -> Result<Self, DecodeError> {
//!         Self::decode_event(bytes).map(Total)
//!     }
//! }
//!
//! # fn main() -> daemonic::Result<()> {
//! let dir = std::env::temp_dir().join(format!("journal-doc-{}", std::process::id()));
//! {
//!     let journal: Journal<Total> = Journal::open(&dir)?;
//!     journal.append(5)?; // durable when it returns (group commit, the default)
//!     journal.append(-2)?;
//!     journal.snapshot()?; // state to `snapshot`, log restarted
//!     journal.append(10)?;
//!     assert_eq!(journal.state().0, 13);
//! } // dropped: the lock is released
//! let journal: Journal<Total> = Journal::open(&dir)?; // snapshot (3) + replay of one event
//! assert_eq!(journal.state().0, 13);
//! assert_eq!(journal.recovery().replayed, 1);
//! # drop(journal);
//! # std::fs::remove_dir_all(&dir).unwrap();
//! # Ok(())
//! # }
//! ```
//!
//! # Anatomy
//!
//! | module | concern |
//! |---|---|
//! | `record` | byte layout of log headers and record frames, checksums |
//! | `wal` | log generation files: names, creation, the append handle |
//! | `scan` | reading one generation; the torn-tail rule |
//! | `recover` | snapshot + generations → state, report, live log |
//! | `snapshot` | the snapshot file: format, load, atomic replace |
//! | `compact` | snapshot + log rotation, in a crash-safe order of steps |
//! | `commit` | append and the three durability modes (group commit) |
//! | `lock` | the `flock` that keeps a second process out |
//!
//! # On-disk format (version 1)
//!
//! A journal is a directory holding:
//!
//! - `lock` — the lock file; an exclusive `flock` is held on it while the journal is open,
//!   and it contains the holder's pid (informational).
//! - `snapshot` — optional: the state as of sequence number `n`, replaced atomically.
//! - `snapshot.tmp` — only transiently, while a snapshot is being written.
//! - `wal-<start>.log` — log generations; `<start>` is the sequence number of the first
//!   record in the file, as 20 decimal digits. Normally there is exactly one.
//!
//! Events are numbered from 1 with no gaps; a snapshot at `n` holds events `1..=n`.
//! All integers are little-endian; checksums are CRC-32 (the IEEE polynomial of zlib/gzip).
//!
//! ```text
//! log header, 32 bytes:  magic "dmncwal\0" | version u32 = 1 | flags u32 = 0
//!                        | start_seq u64 | crc u32 (of bytes 0..24) | reserved u32 = 0
//! record frame:          len u32 | crc u32 | seq u64 | payload (len bytes)
//!                        crc = CRC-32(payload ++ len ++ seq); len <= 64 MiB
//! snapshot, 40 + len:    magic "dmncsnp\0" | version u32 = 1 | flags u32 = 0 | seq u64
//!                        | len u64 | crc u32 (of bytes 0..32 ++ payload) | reserved u32 = 0
//!                        | payload (len bytes)
//! ```
//!
//! A reader rejects a version it does not know with
//! [`ErrorKind::InvalidInput`](crate::ErrorKind::InvalidInput)
//! and never guesses at a newer layout.
//!
//! # Recovery and the torn-tail rule
//!
//! [`open`](Journal::open) loads `snapshot`, then reads the generations in order, checking
//! every frame's length, checksum and sequence number. At the first bad frame it searches
//! every later byte offset for a valid frame (checksum good, sequence number beyond the
//! last good one):
//!
//! - **none**: a *torn tail* — a write cut short by a crash. The file is truncated at the
//!   bad frame and the cut is reported in [`Journal::recovery`]. This loses only records
//!   whose `append` had not returned (or, in [`Durability::Interval`] mode, had not yet been
//!   synced when the machine went down).
//! - **one or more**: *corruption before the tail* — records exist beyond the damage and
//!   may have been acknowledged. `open` fails with `ErrorKind::Corrupt`, naming the file,
//!   the offset of the damage and the valid record after it, and changes nothing. Open with
//!   [`Options::repair`] to keep the prefix and drop the rest deliberately.
//!
//! Damage in a generation that has a successor, a gap between generations, or a damaged
//! snapshot is corruption too. Recovered is always a *prefix* of what was appended: never a
//! record with a bad checksum, never a record out of order, never one after a gap.
//!
//! # When a call fails
//!
//! An interrupted call (`EINTR`) or a short write is retried. Any other failed write,
//! fsync or fallocate of the log fails that append with `ErrorKind::Io` and poisons the
//! journal: every later call is `ErrorKind::Poisoned` until it is reopened, and reopening
//! recovers the acknowledged records (and perhaps the one whose append failed). A failed
//! snapshot fails only the snapshot; the live log is untouched. `docs/journal.md` has the
//! table, the power-loss model the tests enumerate, and the test behind each guarantee.
//!
//! # Limitations
//!
//! - One process, one writer: a second `open` of the same directory fails with
//!   `ErrorKind::Locked`. Readers in other processes are not supported.
//! - The whole state is encoded in memory at each snapshot, and every append holds one
//!   mutex while it applies and writes (the fsync itself runs outside it in group commit).
//! - A damaged *last* record with nothing after it cannot be told from a torn write; it is
//!   cut and reported, not treated as an error. A filesystem that persists later pages of
//!   an un-synced write without the earlier ones (not ext4, XFS or btrfs in their default
//!   modes, but possible in principle) makes a crash look like corruption: `open` then
//!   refuses, which is safe, and [`Options::repair`] is the way forward.
//! - There is no encryption, and checksums guard against damage, not tampering.

mod commit;
mod compact;
mod fs;
mod handle;
mod lock;
mod options;
mod record;
mod recover;
mod scan;
mod shared;
mod snapshot;
mod wal;

pub use handle::{Journal, StateGuard};
pub use options::{Durability, Options};
pub use record::{FORMAT_VERSION, MAX_RECORD_LEN};
pub use recover::{Recovery, Truncation};

use std::fmt;

/// An application's state, changed only by applying events; what a [`Journal`] persists.
///
/// `decode_event(encode_event(e))` must give back an event that applies the same way, and
/// `decode(encode(s))` a state equal to `s`: the journal stores only bytes. `apply` must be
/// deterministic — replay at recovery calls it again with the same events in the same
/// order — and should not panic (validate an event before appending it).
///
/// `Default` is the state of an empty journal.
pub trait State: Default + Send + 'static {
    /// A change to the state.
    type Event;
    /// Applies `event` to the state.
    fn apply(&mut self, event: Self::Event);
    /// Appends the bytes of `event` to `out`.
    fn encode_event(event: &Self::Event, out: &mut Vec<u8>);
    /// Decodes an event from the bytes `encode_event` produced.
    fn decode_event(bytes: &[u8]) -> Result<Self::Event, DecodeError>;
    /// Appends the bytes of the whole state to `out` (for a snapshot).
    fn encode(&self, out: &mut Vec<u8>);
    /// Decodes a state from the bytes `encode` produced.
    fn decode(bytes: &[u8]) -> Result<Self, DecodeError>;
}

/// A [`State`] could not decode bytes the journal read back with a good checksum: the
/// encoding changed between versions of the program, or the codec has a bug.
/// Recovery reports it as `ErrorKind::Corrupt`, naming the file and the record.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct DecodeError(String);

impl DecodeError {
    /// A decode error with a message saying what was wrong.
    pub fn new(message: impl Into<String>) -> DecodeError {
        DecodeError(message.into())
    }
}

impl fmt::Display for DecodeError {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(&self.0)
    }
}

impl std::error::Error for DecodeError {}

/// The durable steps of a snapshot, in order; see [`Journal::snapshot_observed`].
///
/// Each is reported after the step is complete. The crash tests kill the process at each
/// one and check that the journal recovers; the module documentation of `compact` (and
/// `docs/journal.md`) gives what is on disk after each step.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
#[non_exhaustive]
pub enum SnapshotStep {
    /// The live log is fsynced through the last event.
    LogSynced,
    /// `snapshot.tmp` is written and fsynced.
    TempWritten,
    /// `snapshot.tmp` is renamed to `snapshot` (the rename may not be durable yet).
    Renamed,
    /// The directory is fsynced: the new snapshot is durable.
    DirSynced,
    /// The next log generation exists durably and receives appends.
    NewLogCreated,
    /// Generations covered by the snapshot are removed (the snapshot is complete).
    OldLogsRemoved,
}

impl SnapshotStep {
    /// Every step, in the order a snapshot takes them.
    pub const ALL: [SnapshotStep; 6] = [
        SnapshotStep::LogSynced,
        SnapshotStep::TempWritten,
        SnapshotStep::Renamed,
        SnapshotStep::DirSynced,
        SnapshotStep::NewLogCreated,
        SnapshotStep::OldLogsRemoved,
    ];
}
