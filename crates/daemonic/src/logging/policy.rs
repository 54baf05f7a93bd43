//! The knobs of a [`RotatingWriter`](super::RotatingWriter) — when to rotate, flush and
//! fsync — and the counters it reports.

use std::path::PathBuf;
use std::time::Duration;

#[cfg(doc)]
use super::RotatingWriter;
use super::compress::Compression;
use super::format::Format;
use super::retention::Retention;

/// Time-based rotation period, on UTC boundaries.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Period {
    /// At the start of every UTC hour.
    Hourly,
    /// At every UTC midnight.
    Daily,
}

impl Period {
    pub(crate) fn duration(self) -> Duration {
        match self {
            Period::Hourly => Duration::from_secs(3600),
            Period::Daily => Duration::from_secs(86_400),
        }
    }
}

/// When buffered lines reach the file.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Flush {
    /// Buffer up to the capacity and flush at least this often from a background thread
    /// (default: every 100 ms). Lines still in the buffer are lost if the process is killed
    /// or aborts; [`RotatingWriter::flush`], [`RotatingWriter::close`] and dropping the last
    /// handle flush them.
    Interval(Duration),
    /// `write(2)` every record as it comes: nothing is ever held in memory, at the cost of
    /// one system call per line.
    EachWrite,
}

/// When the writer calls `fsync`. Data reaches the page cache at every flush regardless;
/// `fsync` only matters for a machine crash or power loss.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Default)]
pub enum Fsync {
    /// Never; the kernel writes back on its own schedule.
    Never,
    /// Before each rotation (the file being rotated out) and after it (the directory), and
    /// for each compressed file before it replaces the original. The default: rotated files
    /// are durable, at one `fsync` per rotation.
    #[default]
    OnRotate,
    /// After every flush as well. Slow; for logs that are records of truth.
    EachFlush,
}

/// Counters of what a [`RotatingWriter`] did; see [`RotatingWriter::stats`].
#[derive(Debug, Clone, Default, PartialEq, Eq)]
#[non_exhaustive]
pub struct Stats {
    /// Bytes accepted by the kernel.
    pub bytes_written: u64,
    /// Rotations done.
    pub rotations: u64,
    /// Reopens done (by request).
    pub reopens: u64,
    /// Lines dropped because the file could not be written (each partly-written line too).
    pub lines_dropped: u64,
    /// Bytes dropped with them.
    pub bytes_dropped: u64,
    /// Failed `write`, `fsync`, `rename` or `open` calls.
    pub errors: u64,
    /// Times the file was found shorter than written (an external `copytruncate`).
    pub truncations_seen: u64,
    /// Over-long partial lines that a [`LineStream`](super::LineStream) had to split.
    pub lines_split: u64,
    /// Failed compressions or retention passes in the background archiver.
    pub archive_errors: u64,
    /// The most recent error, with its operation and path.
    pub last_error: Option<String>,
}

#[derive(Debug, Clone)]
pub(crate) struct Config {
    pub path: PathBuf,
    pub max_size: Option<u64>,
    pub period: Option<Period>,
    pub retention: Retention,
    pub compression: Compression,
    pub flush: Flush,
    pub fsync: Fsync,
    pub buffer_capacity: usize,
    pub max_line: usize,
    pub mode: u32,
    /// Open the path even if it is a symlink (`/dev/stdout` in a container).
    pub follow_symlinks: bool,
    pub marker_format: Format,
}
