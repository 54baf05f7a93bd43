//! The builder of a [`RotatingWriter`]: its settings, and opening it (the file, the
//! directory's descriptor, the background archiver and ticker).

use std::sync::{Arc, Mutex};
use std::time::{Duration, SystemTime};

use super::{Config, Flush, Fsync, Period, RotatingWriter, Shared, State, Stats, open_append};
use crate::logging::background::{ArchiveStatus, Archiver, Ticker};
use crate::logging::clock;
use crate::logging::compress::Compression;
use crate::logging::dir::{self, LogDir};
use crate::logging::format::Format;
use crate::{Error, ErrorKind, Result};

/// Builder for a [`RotatingWriter`]; start with [`RotatingWriter::builder`].
#[derive(Debug, Clone)]
pub struct RotatingWriterBuilder {
    pub(super) cfg: Config,
}

impl RotatingWriterBuilder {
    /// Rotate before a write would make the file larger than `bytes`. A single write larger
    /// than `bytes` still goes whole into one file.
    pub fn max_size(mut self, bytes: u64) -> Self {
        self.cfg.max_size = Some(bytes.max(1));
        self
    }
    /// Rotate at every UTC hour or midnight (whichever comes first with `max_size`).
    pub fn rotate_every(mut self, period: Period) -> Self {
        self.cfg.period = Some(period);
        self
    }
    /// Keep at most `n` rotated files (the newest).
    pub fn keep_files(mut self, n: usize) -> Self {
        self.cfg.retention.max_files = Some(n);
        self
    }
    /// Delete rotated files last written more than `age` ago.
    pub fn keep_for(mut self, age: Duration) -> Self {
        self.cfg.retention.max_age = Some(age);
        self
    }
    /// Compress rotated files on the background thread.
    pub fn compress(mut self, how: Compression) -> Self {
        self.cfg.compression = how;
        self
    }
    /// When buffered lines are written; default `Flush::Interval(100 ms)`.
    pub fn flush(mut self, flush: Flush) -> Self {
        self.cfg.flush = flush;
        self
    }
    /// When to `fsync`; default [`Fsync::OnRotate`].
    pub fn fsync(mut self, fsync: Fsync) -> Self {
        self.cfg.fsync = fsync;
        self
    }
    /// The in-memory buffer's size (default 64 KiB, at least 1 KiB).
    pub fn buffer_capacity(mut self, bytes: usize) -> Self {
        self.cfg.buffer_capacity = bytes.max(1024);
        self
    }
    /// The longest partial line a [`LineStream`](crate::logging::LineStream) holds back waiting for
    /// its newline (default 64 KiB); a longer one is written as several lines.
    pub fn max_line(mut self, bytes: usize) -> Self {
        self.cfg.max_line = bytes.max(1);
        self
    }
    /// Permission bits of files the writer creates (default `0o640`).
    pub fn mode(mut self, mode: u32) -> Self {
        self.cfg.mode = mode & 0o7777;
        self
    }
    /// Open the path even if it is a symlink (default `false`: a symlink at the file, or an
    /// untrusted one in the path, fails with `ELOOP`, so one planted in the log directory,
    /// or a directory of the path swapped for one, cannot redirect the writes; and as root
    /// a directory another
    /// user could write is refused, see [`LogDir`](crate::logging::LogDir)). For a path that is a
    /// symlink on purpose, such as `/dev/stdout` in a container image; it also skips the
    /// directory checks.
    pub fn follow_symlinks(mut self, follow: bool) -> Self {
        self.cfg.follow_symlinks = follow;
        self
    }
    /// The format of the writer's own lines (the loss marker); match the application's.
    pub fn marker_format(mut self, format: Format) -> Self {
        self.cfg.marker_format = format;
        self
    }

    /// Opens (creating if needed) the file, starts the background threads, and, if the
    /// existing file was last written in an earlier time period, rotates it first.
    ///
    /// The directory is opened once, here, following only trusted symlinks, and (as root)
    /// checked as [`LogDir`](crate::logging::LogDir) describes; every later open, rename,
    /// compression and deletion goes through its descriptor. A refusal is
    /// [`ErrorKind::InvalidInput`] and names the directory and the reason.
    pub fn open(self) -> Result<RotatingWriter> {
        let cfg = self.cfg;
        cfg.compression.check_available()?;
        if cfg.path.file_name().is_none() {
            return Err(Error::new(
                ErrorKind::InvalidInput,
                format!("open log {}: not a file path", cfg.path.display()),
            ));
        }
        let dir = Arc::new(if cfg.follow_symlinks {
            LogDir::open_following(dir::parent_of(&cfg.path))?
        } else {
            LogDir::of(&cfg.path, true)?
        });
        let file = open_append(&cfg, &dir)?;
        let meta = file
            .metadata()
            .map_err(|e| Error::io(format!("stat {}", cfg.path.display()), e))?;
        let now = SystemTime::now();
        let status = Arc::new(ArchiveStatus::default());
        let archiver = (cfg.compression != Compression::None || cfg.retention.is_bounded())
            .then(|| Archiver::spawn(&cfg, Arc::clone(&dir), Arc::clone(&status)))
            .transpose()?;
        let state = State {
            dir,
            file,
            // (Made when a record comes, with `EachWrite`; see `flush_buf`.)
            buf: match cfg.flush {
                Flush::EachWrite => Vec::new(),
                _ => Vec::with_capacity(cfg.buffer_capacity),
            },
            size: meta.len(),
            next_boundary: cfg.period.map(|p| clock::next_boundary(now, p.duration())),
            rotate_at: cfg.max_size,
            stats: Stats::default(),
            loss: None,
            archiver,
            closed: false,
            last_rotated: None,
        };
        let shared = Arc::new(Shared {
            cfg,
            state: Mutex::new(state),
            status,
            ticker: Mutex::new(None),
        });
        if let Some(p) = shared.cfg.period {
            let stale = meta
                .modified()
                .is_ok_and(|m| m < clock::period_start(now, p.duration()));
            if meta.len() > 0 && stale {
                shared.lock().rotate(&shared.cfg, now);
            }
        }
        let needs_ticker =
            matches!(shared.cfg.flush, Flush::Interval(_)) || shared.cfg.period.is_some();
        if needs_ticker {
            *shared.ticker.lock().unwrap_or_else(|e| e.into_inner()) =
                Some(Ticker::spawn(Arc::downgrade(&shared))?);
        }
        Ok(RotatingWriter { shared })
    }
}
