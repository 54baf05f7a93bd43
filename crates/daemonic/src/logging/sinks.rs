//! The destinations of the `tracing` layer: each renders a [`Record`] its own way.
//!
//! A destination that fails (journald restarted, disk full) counts the failure in
//! [`SinkErrors`] — reported by [`LogGuard`](super::LogGuard) — and never panics or blocks
//! the others for longer than its own write.

use std::io::Write;
use std::sync::Arc;
use std::sync::Mutex;
use std::sync::atomic::{AtomicU64, Ordering};

use super::format::{self, Format, Record};
use super::journald::{self, JournaldWriter};
use super::layer::Sink;
use super::rotate::RotatingWriter;
use super::syslog::SyslogWriter;

/// Failed sends to stderr, journald or syslog (file errors are in the writer's stats).
#[derive(Debug, Default)]
pub(crate) struct SinkErrors {
    pub count: AtomicU64,
    pub last: Mutex<Option<String>>,
}

impl SinkErrors {
    fn record(&self, e: impl ToString) {
        self.count.fetch_add(1, Ordering::Relaxed);
        *self.last.lock().unwrap_or_else(|p| p.into_inner()) = Some(e.to_string());
    }
}

fn render(format: Format, rec: &Record<'_>) -> String {
    let mut s = String::with_capacity(256);
    match format {
        Format::Text => format::text(rec, false, &mut s),
        Format::Json => format::json(rec, &mut s),
    }
    s
}

/// stderr: the configured format, or `<N>` + compact text when journald reads stderr.
pub(crate) struct StderrSink {
    pub format: Format,
    pub journald: bool,
    pub errors: Arc<SinkErrors>,
}

impl Sink for StderrSink {
    fn emit(&self, rec: &Record<'_>) {
        let line = if self.journald {
            let mut s = format!("<{}>", journald::priority(rec.level));
            format::text(rec, true, &mut s);
            s
        } else {
            render(self.format, rec)
        };
        // Stderr is unbuffered: one write per line, so lines from threads do not interleave.
        if let Err(e) = std::io::stderr().lock().write_all(line.as_bytes()) {
            self.errors.record(format!("write stderr: {e}"));
        }
    }
}

/// A rotating file.
pub(crate) struct FileSink {
    pub format: Format,
    pub writer: RotatingWriter,
}

impl Sink for FileSink {
    fn emit(&self, rec: &Record<'_>) {
        self.writer.write_line(render(self.format, rec).as_bytes());
    }
}

/// journald's native protocol.
pub(crate) struct JournaldSink {
    pub writer: JournaldWriter,
    pub identifier: String,
    pub errors: Arc<SinkErrors>,
}

impl Sink for JournaldSink {
    fn emit(&self, rec: &Record<'_>) {
        let entry = journald::encode_record(rec, &self.identifier);
        if let Err(e) = self.writer.send_entry(&entry) {
            self.errors.record(e);
        }
    }
}

/// Local syslog.
pub(crate) struct SyslogSink {
    pub writer: SyslogWriter,
    pub errors: Arc<SinkErrors>,
}

impl Sink for SyslogSink {
    fn emit(&self, rec: &Record<'_>) {
        let mut msg = String::with_capacity(200);
        format::text(rec, true, &mut msg);
        if let Err(e) = self.writer.send(journald::priority(rec.level), &msg) {
            self.errors.record(e);
        }
    }
}
