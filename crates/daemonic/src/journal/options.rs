//! How a journal is opened: durability mode, automatic compaction, repair.

use std::path::Path;
use std::time::Duration;

use super::{Journal, State};
use crate::error::Result;

/// When an appended event is on stable storage — and so what [`Journal::append`] promises
/// when it returns `Ok`.
///
/// "Durable" means written and `fdatasync`ed: it survives a power loss or kernel crash,
/// not only the death of the process. Every mode writes each record to the kernel
/// (`write(2)`) before `append` returns, so *every* mode survives `kill -9`, a panic or an
/// abort of the process; they differ only in what a machine crash can take.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
#[non_exhaustive]
pub enum Durability {
    /// `append` writes the record and `fdatasync`s the log before it returns, holding the
    /// journal lock throughout: when it returns `Ok`, the record is durable. Appends from
    /// several threads are serialized, one fsync each. The simplest guarantee and the
    /// slowest mode; use it when appends are rare or each must be durable on its own.
    EveryAppend,
    /// Group commit. `append` writes the record, then waits until an `fdatasync` that began
    /// after the write has completed: when it returns `Ok`, the record is durable — the same
    /// promise as [`EveryAppend`](Durability::EveryAppend). Concurrent appenders share one
    /// fsync: the first to wait becomes the leader and syncs everything written so far
    /// while the others wait on a condition variable. With one appending thread this
    /// behaves like `EveryAppend`; with N threads it does up to N appends per fsync.
    /// The default.
    GroupCommit,
    /// `append` writes the record and returns without waiting for the disk: when it returns
    /// `Ok`, the record survives the death of the process but not yet a machine crash.
    /// A background thread `fdatasync`s the log every interval, so a record becomes durable
    /// at most about one interval (plus the time of an fsync) after `append` returns; a
    /// machine crash loses at most the records of that window. [`Journal::sync`] makes
    /// everything durable on demand, and dropping or closing the journal syncs. If a
    /// background fsync fails, the next call on the journal reports it.
    Interval(Duration),
}

/// Options for opening a journal; [`Journal::open`] uses the defaults.
///
/// ```no_run
/// # use daemonic::journal::{Durability, Options, State, DecodeError};
/// # #[derive(Default)] struct Counter(u64);
/// # impl State for Counter {
/// #     type Event = u64;
/// #     fn apply(&mut self, e: u64) { self.0 += e }
/// #     fn encode_event(e: &u64, out: &mut Vec<u8>) { out.extend(e.to_le_bytes()) }
/// #     fn decode_event(b: &[u8]) -> Result<u64, DecodeError> { Ok(u64::from_le_bytes(b.try_into().map_err(|_| DecodeError::new("len"))?)) }
/// #     fn encode(&self, out: &mut Vec<u8>) { out.extend(self.0.to_le_bytes()) }
/// #     fn decode(b: &[u8]) -> Result<Self, DecodeError> { Ok(Counter(Self::decode_event(b)?)) }
/// # }
/// let journal = Options::new()
///     .durability(Durability::EveryAppend)
///     .compact_after(64 << 20)
///     .open::<Counter>("/var/lib/mydaemon/journal")?;
/// # Ok::<(), daemonic::Error>(())
/// ```
#[derive(Debug, Clone)]
pub struct Options {
    pub(crate) durability: Durability,
    pub(crate) compact_after: Option<u64>,
    pub(crate) repair: bool,
}

impl Default for Options {
    fn default() -> Self {
        Options::new()
    }
}

impl Options {
    /// Group commit, automatic compaction once the log passes 64 MiB, no repair.
    pub fn new() -> Options {
        Options {
            durability: Durability::GroupCommit,
            compact_after: Some(64 << 20),
            repair: false,
        }
    }

    /// Sets the durability mode (default [`Durability::GroupCommit`]).
    pub fn durability(mut self, durability: Durability) -> Options {
        self.durability = durability;
        self
    }

    /// Takes a snapshot automatically once the live log reaches `bytes` (default 64 MiB).
    ///
    /// The snapshot is taken inside the [`append`](Journal::append) that crossed the
    /// threshold, after that append's record is durable, and blocks other appenders while it
    /// runs; it costs one encode of the state and four fsyncs. If it fails, the append still
    /// succeeds (its record is durable), the error is kept for
    /// [`take_compaction_error`](Journal::take_compaction_error), and the next attempt waits
    /// until the log has grown by another `bytes`.
    pub fn compact_after(mut self, bytes: u64) -> Options {
        self.compact_after = Some(bytes);
        self
    }

    /// Never snapshots on its own; only [`Journal::snapshot`] does.
    pub fn no_compaction(mut self) -> Options {
        self.compact_after = None;
        self
    }

    /// When `true`, corruption before the tail of the log does not fail `open`: recovery
    /// keeps the records before the first damage, **deletes everything after it** (including
    /// valid records), and lists the cut in [`Recovery::truncated`](super::Recovery) with
    /// `repaired: true`. Default `false`. Meant for an operator who has copied the damaged
    /// directory aside and chosen to lose data rather than stay down.
    pub fn repair(mut self, repair: bool) -> Options {
        self.repair = repair;
        self
    }

    /// Locks and recovers the journal in `dir`, creating the directory if needed.
    pub fn open<S: State>(&self, dir: impl AsRef<Path>) -> Result<Journal<S>> {
        Journal::open_with(dir.as_ref(), self)
    }
}
