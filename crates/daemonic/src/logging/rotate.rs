//! The rotating file writer: one file, rotated on size and/or time, appended to with
//! `O_APPEND`, buffered in memory with a bound, reopened on request.
//!
//! # Invariants
//!
//! * **No torn lines.** Every write hands over complete lines, and the writer's one mutex
//!   covers buffering, flushing and rotation, so a rotation happens only *between* writes:
//!   a line (or a batch of lines given in one call) lands entirely in one file. Raw byte
//!   streams go through a [`LineStream`](super::LineStream), which holds back a trailing
//!   partial line until its newline arrives.
//! * **Bounded memory.** One buffer of `buffer_capacity` bytes (64 KiB by default); a
//!   write that would overflow it flushes first, a record larger than it is written
//!   directly. Nothing else queues lines. With [`Flush::EachWrite`] the buffer holds a
//!   record only for its one `write(2)` and is freed after it: an idle writer (a
//!   supervisor has one per service) holds none.
//! * **Backpressure, not silent loss.** Flushing calls `write(2)` on the caller's thread (or
//!   the flusher thread), under the lock: a slow disk slows the writers down. A *failing*
//!   disk (`ENOSPC`, `EIO`, …) cannot be waited out, so the lines of a failed flush are
//!   dropped and counted ([`Stats::lines_dropped`]); the first failure of an episode is
//!   reported once on stderr, and the first successful write afterwards is preceded by a
//!   marker line saying how many lines were lost and why. Nothing panics.
//! * **Rotation order.** Flush the buffer into the old file; `fsync` it (per [`Fsync`]);
//!   rename it to its rotated name; open a fresh file; `fsync` the directory (per
//!   [`Fsync`]); hand the rotated name to the background archiver (compression, retention).
//!   If the new file cannot be opened, the rename is undone and writing continues in the
//!   old file: lines are never written to a file that is being compressed.

use std::fs::File;
use std::io::{self, Seek, Write};
use std::path::{Path, PathBuf};
use std::sync::{Arc, Mutex, MutexGuard};
use std::time::{Duration, SystemTime};

use super::background::{ArchiveStatus, Archiver, Tick, Ticker};
use super::clock::{self, Utc};
use super::compress::Compression;
use super::dir::LogDir;
use super::format::{Format, escape_json};
use super::naming;
pub(crate) use super::policy::Config;
pub use super::policy::{Flush, Fsync, Period, Stats};
use super::retention::Retention;
use crate::{Error, ErrorKind, Result};

mod builder;
pub use builder::RotatingWriterBuilder;

/// A log file that rotates itself; cheap to clone, safe to share between threads.
///
/// ```no_run
/// use daemonic::logging::{Compression, Period, RotatingWriter};
/// use std::time::Duration;
///
/// let log = RotatingWriter::builder("/var/log/web/web.log")
///     .max_size(64 << 20)                       // 64 MiB…
///     .rotate_every(Period::Daily)              // …or midnight UTC, whichever is first
///     .keep_files(14)
///     .keep_for(Duration::from_secs(30 * 86_400))
///     .compress(Compression::Gzip)
///     .open()?;
/// log.write_line(b"listening on :8080");
/// // On SIGUSR1 (after an external logrotate renamed the file):
/// log.reopen()?;
/// # Ok::<(), daemonic::Error>(())
/// ```
#[derive(Clone, Debug)]
pub struct RotatingWriter {
    pub(crate) shared: Arc<Shared>,
}

#[derive(Debug)]
pub(crate) struct Shared {
    pub cfg: Config,
    state: Mutex<State>,
    status: Arc<ArchiveStatus>,
    ticker: Mutex<Option<Ticker>>,
}

#[derive(Debug)]
pub(crate) struct State {
    /// The log's directory, opened once (see [`LogDir`]).
    dir: Arc<LogDir>,
    file: File,
    buf: Vec<u8>,
    /// Bytes in the file, counting the buffer.
    size: u64,
    next_boundary: Option<SystemTime>,
    /// Size at which to rotate next (raised after a failed rotation so it is not retried
    /// on every write).
    rotate_at: Option<u64>,
    stats: Stats,
    loss: Option<Loss>,
    /// Where rotated files go to be compressed and pruned.
    archiver: Option<Archiver>,
    /// After `close`: no buffering.
    closed: bool,
    /// `(stamp, seq)` of the last rotated name, so the next one sorts after it.
    last_rotated: Option<(String, u32)>,
}

/// Lines lost since the last successful write, reported by a marker line.
#[derive(Debug)]
struct Loss {
    lines: u64,
    bytes: u64,
    error: String,
    /// The file ends inside a line (a write failed half-way).
    torn: bool,
    /// The errno of the last failure, if it had one.
    errno: Option<i32>,
}

impl Loss {
    fn to_error(&self, path: &Path) -> Error {
        let context = format!("write {} ({} lines dropped)", path.display(), self.lines);
        match self.errno {
            Some(n) => Error::io(context, io::Error::from_raw_os_error(n)),
            None => Error::new(ErrorKind::Io, self.error.clone()),
        }
    }
}

impl RotatingWriter {
    /// Starts configuring a writer for `path` (the active file; rotated files go beside it).
    pub fn builder(path: impl Into<PathBuf>) -> RotatingWriterBuilder {
        RotatingWriterBuilder {
            cfg: Config {
                path: path.into(),
                max_size: None,
                period: None,
                retention: Retention::default(),
                compression: Compression::None,
                flush: Flush::Interval(Duration::from_millis(100)),
                fsync: Fsync::default(),
                buffer_capacity: 64 * 1024,
                max_line: 64 * 1024,
                mode: 0o640,
                follow_symlinks: false,
                marker_format: Format::Text,
            },
        }
    }

    /// The active file's path.
    pub fn path(&self) -> &Path {
        &self.shared.cfg.path
    }

    /// Writes one line; a missing final newline is added. The line goes whole into one file.
    ///
    /// Never fails: a write error drops and counts lines (see the module docs) and shows up
    /// in [`stats`](Self::stats), in the next [`flush`](Self::flush)'s result and as a
    /// marker line once writing works again.
    pub fn write_line(&self, line: &[u8]) {
        let mut st = self.shared.lock();
        if line.last() == Some(&b'\n') {
            st.append(&self.shared.cfg, line, &[]);
        } else {
            st.append(&self.shared.cfg, line, b"\n");
        }
    }

    /// Writes complete lines (`lines` must end with `\n`, else one is added) in one piece:
    /// all of them land in the same file.
    pub fn write_lines(&self, lines: &[u8]) {
        self.write_line(lines);
    }

    /// A per-source `io::Write` adapter for raw bytes (a child's stdout), which holds back
    /// partial lines; see [`LineStream`](super::LineStream).
    pub fn line_stream(&self) -> super::LineStream {
        super::LineStream::new(self.clone())
    }

    /// Writes buffered lines to the file now.
    ///
    /// Fails while the file cannot be written: from a failed write (whose lines are counted
    /// as dropped) until the next successful one. The error names the path and keeps the
    /// errno (`ENOSPC`, `EIO`, …).
    pub fn flush(&self) -> Result<()> {
        let mut st = self.shared.lock();
        st.flush_buf(&self.shared.cfg);
        match &st.loss {
            Some(loss) => Err(loss.to_error(&self.shared.cfg.path)),
            None => Ok(()),
        }
    }

    /// Reopens the file by its path: call this when an external tool (logrotate with
    /// `create`) has renamed the file, typically on the `ReopenLogs` event that SIGUSR1
    /// becomes. Buffered lines go to the old file first. Cheap and thread-safe; a failure
    /// (the directory is gone) leaves the old file in use and names the path.
    pub fn reopen(&self) -> Result<()> {
        let cfg = &self.shared.cfg;
        let mut st = self.shared.lock();
        st.flush_buf(cfg);
        let file = open_append(cfg, &st.dir)?;
        st.size = file.metadata().map(|m| m.len()).unwrap_or(0);
        st.rotate_at = cfg.max_size;
        st.file = file;
        st.stats.reopens += 1;
        Ok(())
    }

    /// Rotates now, whatever the size and time (an empty file is not rotated).
    pub fn rotate(&self) {
        self.shared
            .lock()
            .rotate(&self.shared.cfg, SystemTime::now());
    }

    /// How many more bytes the active file takes before its size limit rotates it (`None`:
    /// no size limit). Lines written in one call no longer than this land in the active
    /// file, with no rotation before them.
    pub fn room(&self) -> Option<u64> {
        let st = self.shared.lock();
        st.rotate_at.map(|limit| limit.saturating_sub(st.size))
    }

    /// A snapshot of the counters.
    pub fn stats(&self) -> Stats {
        let mut s = self.shared.lock().stats.clone();
        let (errors, last) = self.shared.status.snapshot();
        s.archive_errors = errors;
        if s.last_error.is_none() {
            s.last_error = last;
        }
        s
    }

    /// Flushes, stops the flusher, and waits for pending compression and retention.
    ///
    /// Writes after `close` still reach the file, unbuffered, without the archiver (their
    /// rotated files are compressed at the next start). Dropping the last handle does the
    /// same as `close`.
    pub fn close(&self) -> Result<()> {
        self.shared.shutdown();
        match &self.shared.lock().loss {
            Some(loss) => Err(loss.to_error(&self.shared.cfg.path)),
            None => Ok(()),
        }
    }

    pub(crate) fn count_split(&self) {
        self.shared.lock().stats.lines_split += 1;
    }
}

impl Shared {
    pub(crate) fn lock(&self) -> MutexGuard<'_, State> {
        // A panic while holding the lock cannot leave the state inconsistent in a way that
        // matters more than losing the log; keep logging.
        self.state.lock().unwrap_or_else(|e| e.into_inner())
    }

    /// The flusher's periodic work: flush, and rotate if a time boundary passed.
    pub(crate) fn tick(&self, now: SystemTime) -> Option<SystemTime> {
        let mut st = self.lock();
        st.flush_buf(&self.cfg);
        if st.next_boundary.is_some_and(|b| now >= b) {
            st.rotate(&self.cfg, now);
        }
        st.next_boundary
    }

    fn shutdown(&self) {
        let archiver = {
            let mut st = self.lock();
            st.flush_buf(&self.cfg);
            st.closed = true;
            st.archiver.take()
        };
        if let Some(t) = self.ticker.lock().unwrap_or_else(|e| e.into_inner()).take() {
            t.stop();
        }
        if let Some(a) = archiver {
            a.join();
        }
        self.lock().buf.shrink_to_fit();
    }
}

impl Drop for Shared {
    fn drop(&mut self) {
        self.shutdown();
    }
}

impl State {
    /// Appends `data` + `tail` as one record, rotating first if the size limit says so.
    fn append(&mut self, cfg: &Config, data: &[u8], tail: &[u8]) {
        let len = (data.len() + tail.len()) as u64;
        if let Some(limit) = self.rotate_at
            && self.size > 0
            && self.size + len > limit
        {
            self.rotate(cfg, SystemTime::now());
        }
        if self.buf.len() + data.len() + tail.len() > cfg.buffer_capacity {
            self.flush_buf(cfg);
        }
        self.size += len;
        if data.len() + tail.len() > cfg.buffer_capacity {
            // Too big to buffer: write it straight through, in one piece (one `write(2)`
            // for a pipe's worth of lines from a `LineStream` or the CLI's capture; the
            // copy is needed only to add the missing newline).
            if tail.is_empty() {
                self.write_out(cfg, data);
            } else {
                let mut whole = Vec::with_capacity(data.len() + tail.len());
                whole.extend_from_slice(data);
                whole.extend_from_slice(tail);
                self.write_out(cfg, &whole);
            }
            return;
        }
        self.buf.extend_from_slice(data);
        self.buf.extend_from_slice(tail);
        if cfg.flush == Flush::EachWrite || self.closed {
            self.flush_buf(cfg);
        }
    }

    /// Writes the buffer to the file; then resynchronizes the size with the file's end.
    pub(crate) fn flush_buf(&mut self, cfg: &Config) {
        if self.buf.is_empty() {
            return;
        }
        let mut buf = std::mem::take(&mut self.buf);
        self.write_out(cfg, &buf);
        if cfg.flush != Flush::EachWrite {
            buf.clear();
            self.buf = buf;
        }
    }

    /// `write(2)`s `data` (complete lines, the buffer being empty meanwhile) after any
    /// pending loss marker; on failure drops and counts what did not get written.
    fn write_out(&mut self, cfg: &Config, data: &[u8]) {
        if let Some(loss) = self.loss.take() {
            let marker = loss_marker(cfg, &loss);
            match write_all(&mut self.file, &marker) {
                (done, None) => self.stats.bytes_written += done as u64,
                (_, Some(e)) => {
                    // Still failing: the episode goes on and this batch joins it.
                    self.loss = Some(loss);
                    self.record_loss(cfg, data, 0, e);
                    return;
                }
            }
        }
        let (done, err) = write_all(&mut self.file, data);
        self.stats.bytes_written += done as u64;
        if let Some(e) = err {
            self.record_loss(cfg, data, done, e);
            return;
        }
        if cfg.fsync == Fsync::EachFlush
            && let Err(e) = self.file.sync_data()
        {
            self.record_error(format!("fsync {}: {e}", cfg.path.display()));
        }
        // With O_APPEND the offset after a write is the file's end: learn of truncation by
        // `copytruncate` (and of other appenders) so size-based rotation stays right.
        if let Ok(end) = self.file.stream_position() {
            if end < self.size {
                self.stats.truncations_seen += 1;
                self.rotate_at = cfg.max_size;
            }
            self.size = end;
        }
    }

    fn record_loss(&mut self, cfg: &Config, data: &[u8], written: usize, e: io::Error) {
        let lost = &data[written..];
        let lines = lost.iter().filter(|&&b| b == b'\n').count() as u64;
        let torn = written > 0 && data[written - 1] != b'\n';
        let error = format!("write {}: {e}", cfg.path.display());
        let errno = e.raw_os_error();
        self.size = self.size.saturating_sub(lost.len() as u64);
        self.stats.lines_dropped += lines;
        self.stats.bytes_dropped += lost.len() as u64;
        match &mut self.loss {
            Some(l) => {
                l.lines += lines;
                l.bytes += lost.len() as u64;
                l.torn |= torn;
                l.error = error.clone();
                l.errno = errno;
            }
            None => {
                // Once per episode: the log itself is what is failing, stderr is the only
                // other place to say so.
                eprintln!("daemonic: dropping log lines: {error}");
                self.loss = Some(Loss {
                    lines,
                    bytes: lost.len() as u64,
                    error: error.clone(),
                    torn,
                    errno,
                });
            }
        }
        self.record_error(error);
    }

    fn record_error(&mut self, error: String) {
        self.stats.errors += 1;
        self.stats.last_error = Some(error);
    }

    /// Rotates the file out (see the module docs for the order of steps).
    pub(crate) fn rotate(&mut self, cfg: &Config, now: SystemTime) {
        if let Some(p) = cfg.period {
            self.next_boundary = Some(clock::next_boundary(now, p.duration()));
        }
        self.flush_buf(cfg);
        if self.size == 0 {
            return;
        }
        if cfg.fsync != Fsync::Never
            && let Err(e) = self.file.sync_data()
        {
            self.record_error(format!("fsync {}: {e}", cfg.path.display()));
        }
        let (target, name) =
            naming::rotated_path(&self.dir, &cfg.path, now, self.last_rotated.as_ref());
        let active = active_name(cfg);
        let rotated = target.file_name().unwrap_or_default();
        if let Err(e) = self.dir.rename(active, rotated) {
            self.rotation_failed(cfg, e.to_string());
            return;
        }
        let file = match open_append(cfg, &self.dir) {
            Ok(f) => f,
            Err(e) => {
                let undo = self.dir.rename(rotated, active);
                self.rotation_failed(cfg, format!("{e} (rotation undone: {})", undo.is_ok()));
                return;
            }
        };
        if cfg.fsync != Fsync::Never
            && let Err(e) = self.dir.sync()
        {
            self.record_error(e.to_string());
        }
        self.file = file;
        self.size = 0;
        self.rotate_at = cfg.max_size;
        self.stats.rotations += 1;
        self.last_rotated = Some(name);
        if let Some(archiver) = &mut self.archiver {
            archiver.submit(target);
        }
    }

    fn rotation_failed(&mut self, cfg: &Config, error: String) {
        self.record_error(error);
        // Retry after another `max_size` bytes (or at the next boundary), not on every write.
        self.rotate_at = cfg.max_size.map(|m| self.size.saturating_add(m));
    }
}

/// Loops `write(2)` over `data`; returns how much was written and the error that stopped it.
fn write_all(file: &mut File, mut data: &[u8]) -> (usize, Option<io::Error>) {
    let mut done = 0;
    while !data.is_empty() {
        match file.write(data) {
            Ok(0) => return (done, Some(io::ErrorKind::WriteZero.into())),
            Ok(n) => {
                done += n;
                data = &data[n..];
            }
            Err(e) if e.kind() == io::ErrorKind::Interrupted => {}
            Err(e) => return (done, Some(e)),
        }
    }
    (done, None)
}

/// The line that reports lost lines, in the configured format.
fn loss_marker(cfg: &Config, loss: &Loss) -> Vec<u8> {
    let mut ts = String::new();
    Utc::from_system_time(SystemTime::now()).write_rfc3339(&mut ts);
    let msg = format!(
        "lost {} log lines ({} bytes) after write errors; last: {}",
        loss.lines, loss.bytes, loss.error
    );
    let lead = if loss.torn { "\n" } else { "" };
    let line = match cfg.marker_format {
        Format::Json => {
            let mut m = String::new();
            escape_json(&msg, &mut m);
            format!(
                "{lead}{{\"timestamp\":\"{ts}\",\"level\":\"WARN\",\"target\":\"daemonic::logging\",\"message\":\"{m}\",\"lines_lost\":{}}}\n",
                loss.lines
            )
        }
        Format::Text => format!("{lead}{ts}  WARN daemonic::logging: {msg}\n"),
    };
    line.into_bytes()
}

/// Opens the log for appending (`O_APPEND | O_CREAT | O_CLOEXEC`, and `O_NOFOLLOW` unless
/// told to follow symlinks), relative to its directory's descriptor.
pub(crate) fn open_append(cfg: &Config, dir: &LogDir) -> Result<File> {
    dir.open_append(active_name(cfg), cfg.mode)
}

/// The active file's name in its directory (`open` checked that there is one).
fn active_name(cfg: &Config) -> &std::ffi::OsStr {
    cfg.path.file_name().unwrap_or_default()
}

impl Tick for Shared {
    fn flush_policy(&self) -> Flush {
        self.cfg.flush
    }

    fn tick(&self, now: SystemTime) -> Option<SystemTime> {
        Shared::tick(self, now)
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::logging::dir::tests::temp_dir;

    fn buffered(w: &RotatingWriter) -> usize {
        w.shared.lock().buf.capacity()
    }

    #[test]
    fn an_each_write_writer_holds_no_buffer_between_writes() {
        let dir = temp_dir("rotate-buffer");
        let path = dir.0.join("each.log");
        let each = RotatingWriter::builder(&path)
            .flush(Flush::EachWrite)
            .buffer_capacity(4096)
            .open()
            .unwrap();
        assert_eq!(buffered(&each), 0, "none before the first line");
        each.write_line(b"one");
        each.write_lines(b"two\nthree\n");
        assert_eq!(buffered(&each), 0, "none after the lines went out");
        assert_eq!(std::fs::read_to_string(&path).unwrap(), "one\ntwo\nthree\n");
        each.close().unwrap();

        let kept = RotatingWriter::builder(dir.0.join("kept.log"))
            .buffer_capacity(4096)
            .open()
            .unwrap();
        kept.write_line(b"one");
        kept.flush().unwrap();
        assert!(buffered(&kept) >= 4096, "a flushed writer keeps its buffer");
        kept.close().unwrap();
    }
}
