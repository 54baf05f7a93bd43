//! Logging for daemons: `tracing` output set up in one call, and a rotating file writer that
//! never loses or tears a line.
//!
//! # The one call
//!
//! [`Logging`] installs a `tracing` subscriber that writes text or JSON lines, with fixed
//! context fields (service, environment — Go's `slog.With`), to any of: stderr, a
//! [`RotatingWriter`] file, journald (native protocol) and syslog (`/dev/log`). The level
//! comes from the configuration or, if set, an environment variable, in `tracing`'s
//! directive syntax (`info`, `warn,web::http=debug`).
//!
//! ```
//! use daemonic::logging::{Compression, Format, Logging, RotatingWriter};
//!
//! # let dir = std::env::temp_dir().join(format!("daemonic-logging-doc-{}", std::process::id()));
//! # std::fs::create_dir_all(&dir)?;
//! let file = RotatingWriter::builder(dir.join("web.log"))
//!     .max_size(64 << 20)
//!     .keep_files(7)
//!     .compress(Compression::Gzip)
//!     .open()?;
//! let guard = Logging::new("web")          // adds service=web, tags journald/syslog
//!     .format(Format::Json)
//!     .level("info")                       // …unless WEB_LOG says otherwise
//!     .level_env("WEB_LOG")
//!     .context("env", "prod")
//!     .file(file)
//!     .init()?;                            // the process-wide subscriber
//!
//! tracing::info!(port = 8080, "listening");
//!
//! guard.flush()?;
//! let line = std::fs::read_to_string(dir.join("web.log"))?;
//! assert!(line.contains(r#""message":"listening","service":"web","env":"prod","port":8080"#));
//! # std::fs::remove_dir_all(&dir)?;
//! # Ok::<(), Box<dyn std::error::Error>>(())
//! ```
//!
//! On stderr, when systemd's `JOURNAL_STREAM` names the same file as fd 2 (journald reads
//! it), lines are compact and prefixed with `<N>` (the syslog priority) instead of carrying
//! a timestamp: journald stamps them and files them at the right priority.
//!
//! # The rotating writer
//!
//! [`RotatingWriter`] is usable on its own, for lines that are not `tracing` events (a
//! supervisor's copy of its children's output, through a [`LineStream`] per pipe). It:
//!
//! * rotates on size, on time (hourly/daily, UTC), or whichever comes first;
//! * names rotated files `NAME.YYYYmmdd-HHMMSS[_NNN]` (+ `.gz`/`.zst`) — see `naming`;
//! * keeps the newest N rotated files and/or those younger than D;
//! * compresses them on a background thread, never on a writing thread;
//! * opens with `O_APPEND`, so `logrotate`'s `copytruncate` works, and [`reopen`]s on
//!   request, so `logrotate`'s `create` + a signal works;
//! * never tears a line across files, and never holds more than a bounded buffer;
//! * applies backpressure to a slow disk and drops-and-counts (never silently) on a failing
//!   one; it never panics on I/O errors.
//!
//! See `docs/logging.md` for the fsync policy, the logrotate recipes and the benchmark.
//!
//! # Limitations
//!
//! * Time-based rotation and timestamps are UTC (no time-zone database).
//! * A line written into `copytruncate`'s window — after logrotate's copy read the end of
//!   the file, before it truncated it — is lost; that is inherent to `copytruncate`
//!   (logrotate(8) says so). Prefer `create` with a reopen signal.
//! * `log`-crate records are not captured; add `tracing-log` if you need them.
//!
//! [`reopen`]: RotatingWriter::reopen

mod background;
mod clock;
mod compress;
mod dir;
mod format;
mod journald;
mod layer;
mod line_stream;
mod naming;
mod policy;
mod retention;
mod rotate;
mod sinks;
mod syslog;

use std::str::FromStr;
use std::sync::Arc;
use std::sync::atomic::Ordering;

use tracing::Dispatch;
use tracing_subscriber::filter::Targets;
use tracing_subscriber::layer::SubscriberExt;

pub use compress::Compression;
pub use dir::{Contents, LogDir, create_log_file, open_log_file};
pub use format::{Format, escape_json};
pub use journald::{JOURNAL_SOCKET, JournaldWriter, encode_field, field_name};
pub use line_stream::LineStream;
pub use retention::{Retention, rotated_files};
pub use rotate::{Flush, Fsync, Period, RotatingWriter, RotatingWriterBuilder, Stats};
pub use syslog::{Facility, SYSLOG_SOCKET, SyslogFormat, SyslogWriter};

use crate::{Error, ErrorKind, Result};
use layer::{LogLayer, Sink};
use sinks::{FileSink, JournaldSink, SinkErrors, StderrSink, SyslogSink};

/// Configures `tracing` output in one chain of calls; see the [module docs](self).
#[derive(Debug)]
pub struct Logging {
    service: String,
    format: Format,
    level: String,
    level_env: Option<String>,
    context: Vec<(String, String)>,
    stderr: bool,
    files: Vec<RotatingWriter>,
    journald: Option<std::path::PathBuf>,
    syslog: Option<(std::path::PathBuf, SyslogFormat, Facility)>,
}

impl Logging {
    /// Starts a configuration for `service`: it becomes the `service` context field and
    /// the journald/syslog identifier. Defaults: text, level `info`, stderr only.
    pub fn new(service: impl Into<String>) -> Logging {
        let service = service.into();
        Logging {
            context: vec![("service".into(), service.clone())],
            service,
            format: Format::Text,
            level: "info".into(),
            level_env: None,
            stderr: false,
            files: Vec::new(),
            journald: None,
            syslog: None,
        }
    }

    /// Text or JSON lines (for stderr and files; journald and syslog have their own forms).
    pub fn format(mut self, format: Format) -> Self {
        self.format = format;
        self
    }

    /// The level, as `tracing` directives: `debug`, or `info,hyper=warn,web=trace`.
    pub fn level(mut self, directives: impl Into<String>) -> Self {
        self.level = directives.into();
        self
    }

    /// An environment variable that, when set and not empty, overrides [`level`](Self::level).
    pub fn level_env(mut self, var: impl Into<String>) -> Self {
        self.level_env = Some(var.into());
        self
    }

    /// A field added to every line (`env=prod`, `region=eu-1`), after `service`.
    pub fn context(mut self, key: impl Into<String>, value: impl Into<String>) -> Self {
        self.context.push((key.into(), value.into()));
        self
    }

    /// Write to stderr (journald-aware; the default when no destination is chosen).
    pub fn stderr(mut self) -> Self {
        self.stderr = true;
        self
    }

    /// Write to a rotating file. Keep a clone of `writer` to [`reopen`](RotatingWriter::reopen) it.
    pub fn file(mut self, writer: RotatingWriter) -> Self {
        self.files.push(writer);
        self
    }

    /// Send to journald's native socket.
    pub fn journald(self) -> Self {
        self.journald_socket(JOURNAL_SOCKET)
    }

    /// Send to a journald-protocol socket at `path`.
    pub fn journald_socket(mut self, path: impl Into<std::path::PathBuf>) -> Self {
        self.journald = Some(path.into());
        self
    }

    /// Send to the local syslog socket (`/dev/log`), facility `daemon`.
    pub fn syslog(self, format: SyslogFormat) -> Self {
        self.syslog_socket(SYSLOG_SOCKET, format, Facility::Daemon)
    }

    /// Send to a syslog socket at `path`.
    pub fn syslog_socket(
        mut self,
        path: impl Into<std::path::PathBuf>,
        format: SyslogFormat,
        facility: Facility,
    ) -> Self {
        self.syslog = Some((path.into(), format, facility));
        self
    }

    /// Builds the subscriber without installing it (for `tracing::dispatcher::with_default`
    /// in tests, or to install it yourself).
    pub fn build(self) -> Result<(Dispatch, LogGuard)> {
        let targets = self.filter()?;
        let errors = Arc::new(SinkErrors::default());
        let mut sinks: Vec<Box<dyn Sink>> = Vec::new();
        let want_stderr = self.stderr
            || (self.files.is_empty() && self.journald.is_none() && self.syslog.is_none());
        if want_stderr {
            let stream = std::env::var("JOURNAL_STREAM").ok();
            sinks.push(Box::new(StderrSink {
                format: self.format,
                journald: journald::reads_stderr(stream.as_deref()),
                errors: Arc::clone(&errors),
            }));
        }
        for writer in &self.files {
            sinks.push(Box::new(FileSink {
                format: self.format,
                writer: writer.clone(),
            }));
        }
        if let Some(path) = &self.journald {
            sinks.push(Box::new(JournaldSink {
                writer: JournaldWriter::connect_to(path)?,
                identifier: self.service.clone(),
                errors: Arc::clone(&errors),
            }));
        }
        if let Some((path, format, facility)) = &self.syslog {
            sinks.push(Box::new(SyslogSink {
                writer: SyslogWriter::connect_to(path, &self.service, *format, *facility)?,
                errors: Arc::clone(&errors),
            }));
        }
        let layer = LogLayer {
            sinks,
            context: self.context,
        };
        let subscriber = tracing_subscriber::registry().with(targets).with(layer);
        let guard = LogGuard {
            files: self.files,
            errors,
        };
        Ok((Dispatch::new(subscriber), guard))
    }

    /// Builds and installs the process-wide subscriber. Fails if one is already installed.
    pub fn init(self) -> Result<LogGuard> {
        let (dispatch, guard) = self.build()?;
        tracing::dispatcher::set_global_default(dispatch).map_err(|_| {
            Error::new(
                ErrorKind::InvalidInput,
                "install the global tracing subscriber: one is already installed",
            )
        })?;
        Ok(guard)
    }

    /// The level filter: the environment variable if set, else the configured directives.
    fn filter(&self) -> Result<Targets> {
        let from_env = self.level_env.as_ref().and_then(|var| {
            std::env::var(var)
                .ok()
                .filter(|v| !v.trim().is_empty())
                .map(|v| (var, v))
        });
        let (source, directives) = match &from_env {
            Some((var, v)) => (format!("${var}"), v.as_str()),
            None => ("the configured level".to_owned(), self.level.as_str()),
        };
        Targets::from_str(directives).map_err(|e| {
            Error::new(
                ErrorKind::InvalidInput,
                format!("parse log level {directives:?} from {source}: {e}"),
            )
        })
    }
}

/// Returned by [`Logging::init`]/[`Logging::build`]: flushes the files when dropped (keep it
/// alive in `main`), and reports failures of the other destinations.
#[derive(Debug)]
pub struct LogGuard {
    files: Vec<RotatingWriter>,
    errors: Arc<SinkErrors>,
}

impl LogGuard {
    /// Flushes every file destination now.
    pub fn flush(&self) -> Result<()> {
        self.files.iter().try_for_each(RotatingWriter::flush)
    }

    /// Failed sends to stderr, journald or syslog so far, and the last error.
    pub fn send_errors(&self) -> (u64, Option<String>) {
        let last = self
            .errors
            .last
            .lock()
            .unwrap_or_else(|p| p.into_inner())
            .clone();
        (self.errors.count.load(Ordering::Relaxed), last)
    }
}

impl Drop for LogGuard {
    fn drop(&mut self) {
        for f in &self.files {
            let _ = f.flush();
        }
    }
}
