//! Where the output of `run -f`'s services goes: the supervisor's own stdout and stderr,
//! each line after `name | `.
//!
//! In the foreground the services used to inherit the supervisor's descriptors, so their
//! lines arrived mixed with nothing to tell whose they were. Now each child's stdout and
//! stderr are pipes captured exactly as for a log file (whole lines, in order, bounded,
//! one read buffer for all — see [`super`]), and the capture's [`Sink`](super::Sink)
//! writes each batch of complete lines, every one after its prefix, in one `write(2)` to
//! the supervisor's stdout (the child's stdout) or stderr (the child's stderr): a line of
//! one service never lands inside another's, and `run -f 2>/dev/null` still drops only
//! stderr.
//!
//! * **Prefix**: the name padded to the longest name of the file (set by
//!   [`widen`] when a file is applied; it only grows), then ` | `.
//! * **Colour**: the name in a colour of its own (by the service's place in the file, so
//!   it is the same in every run: [`crate::tail::merge::colour_of`]) when that stream is
//!   a terminal and `NO_COLOR` is unset or empty — decided once, at the first line.
//! * **Writes block**: a reader that stops reading (a pager paused, a full pipe) stalls
//!   the supervisor's loop until it reads again, as a slow disk does with a log file.
//!   That is backpressure, not loss; in the foreground the reader is the operator's own.
//!   A write error (the reader has gone: `EPIPE`) drops the lines, silently: the
//!   services keep running.

use std::io::{self, IsTerminal, Write};
use std::sync::OnceLock;
use std::sync::atomic::{AtomicUsize, Ordering};

pub use crate::service::console::{Console, Stream};
use crate::tail::merge;

/// The width names are padded to: the longest name of the file(s) applied so far.
static WIDTH: AtomicUsize = AtomicUsize::new(0);

/// Pads every later prefix to at least `width` characters (the longest service name).
pub fn widen(width: usize) {
    WIDTH.fetch_max(width, Ordering::Relaxed);
}

impl Console {
    fn prefix(&self) -> Vec<u8> {
        let width = WIDTH.load(Ordering::Relaxed);
        let padded = format!("{:width$}", self.name);
        if coloured(self.stream) {
            format!("\x1b[{}m{padded}\x1b[0m | ", merge::colour_of(self.place)).into_bytes()
        } else {
            format!("{padded} | ").into_bytes()
        }
    }

    /// Writes complete lines (each ending with a newline), each after the prefix.
    pub fn write_lines(&self, lines: &[u8]) {
        let prefix = self.prefix();
        let mut buf = Vec::with_capacity(lines.len() + 16 * prefix.len());
        for line in lines.split_inclusive(|&b| b == b'\n') {
            buf.extend_from_slice(&prefix);
            buf.extend_from_slice(line);
        }
        self.write(&buf);
    }

    /// Writes one line (without its newline), after the prefix.
    pub fn write_line(&self, line: &[u8]) {
        let mut buf = self.prefix();
        buf.extend_from_slice(line);
        buf.push(b'\n');
        self.write(&buf);
    }

    fn write(&self, buf: &[u8]) {
        // A reader that has gone is no reason to stop the services (see the module docs).
        let _ = match self.stream {
            Stream::Stdout => io::stdout().lock().write_all(buf),
            Stream::Stderr => io::stderr().lock().write_all(buf),
        };
    }
}

/// Whether lines to `stream` get a coloured name (decided once per stream).
fn coloured(stream: Stream) -> bool {
    static OUT: OnceLock<bool> = OnceLock::new();
    static ERR: OnceLock<bool> = OnceLock::new();
    match stream {
        Stream::Stdout => *OUT.get_or_init(|| merge::colour_wanted(io::stdout().is_terminal())),
        Stream::Stderr => *ERR.get_or_init(|| merge::colour_wanted(io::stderr().is_terminal())),
    }
}
