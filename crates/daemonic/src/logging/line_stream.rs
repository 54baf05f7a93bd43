//! Raw bytes in, whole lines out: the adapter for a child's stdout or stderr.
//!
//! A pipe delivers bytes in arbitrary chunks; `read` may return half a line. A
//! [`LineStream`] keeps the trailing partial line of each chunk and hands the
//! [`RotatingWriter`] only complete lines, so a rotation can never split a line and two
//! streams sharing one writer (stdout and stderr of the same child) never interleave
//! inside a line. Give every source its own stream.
//!
//! The partial line is bounded by the writer's `max_line` (64 KiB by default): a line that
//! grows past it is written in `max_line` pieces as it is, ended with a newline, and the rest continues as a
//! new line ([`Stats::lines_split`](super::Stats::lines_split) counts this). Without the
//! bound a child printing without newlines would grow the daemon's memory without limit.
//! When the stream is dropped (the child exited), a final unterminated line is written with
//! a newline added.

use std::io;

use super::RotatingWriter;

/// An `io::Write` for one byte source, feeding complete lines to a [`RotatingWriter`].
///
/// ```no_run
/// # fn demo(log: daemonic::logging::RotatingWriter, mut child_stdout: std::process::ChildStdout) -> std::io::Result<()> {
/// let mut out = log.line_stream();
/// std::io::copy(&mut child_stdout, &mut out)?; // chunks may end mid-line; lines stay whole
/// # Ok(()) }
/// ```
#[derive(Debug)]
pub struct LineStream {
    writer: RotatingWriter,
    partial: Vec<u8>,
    max_line: usize,
}

impl LineStream {
    pub(crate) fn new(writer: RotatingWriter) -> LineStream {
        let max_line = writer.shared.cfg.max_line;
        LineStream {
            writer,
            partial: Vec::new(),
            max_line,
        }
    }

    /// Bytes held back waiting for a newline.
    pub fn pending(&self) -> usize {
        self.partial.len()
    }

    /// Writes the held-back partial line now, with a newline added.
    pub fn finish_line(&mut self) {
        if !self.partial.is_empty() {
            self.writer.write_line(&self.partial);
            self.partial.clear();
        }
    }

    fn split_overlong(&mut self) {
        while self.partial.len() > self.max_line {
            self.writer.write_line(&self.partial[..self.max_line]);
            self.writer.count_split();
            self.partial.drain(..self.max_line);
        }
    }
}

impl io::Write for LineStream {
    fn write(&mut self, data: &[u8]) -> io::Result<usize> {
        let mut rest = data;
        if !self.partial.is_empty() {
            match rest.iter().position(|&b| b == b'\n') {
                Some(i) => {
                    self.partial.extend_from_slice(&rest[..i]);
                    self.split_overlong();
                    self.writer.write_line(&self.partial); // adds the newline
                    self.partial.clear();
                    rest = &rest[i + 1..];
                }
                None => {
                    self.partial.extend_from_slice(rest);
                    self.split_overlong();
                    return Ok(data.len());
                }
            }
        }
        // Everything up to the last newline is whole lines: one write, one file.
        if let Some(last) = rest.iter().rposition(|&b| b == b'\n') {
            self.writer.write_lines(&rest[..=last]);
            rest = &rest[last + 1..];
        }
        self.partial.extend_from_slice(rest);
        self.split_overlong();
        Ok(data.len())
    }

    /// Flushes the writer's buffer; a held-back partial line stays held back.
    fn flush(&mut self) -> io::Result<()> {
        self.writer.flush().map_err(io::Error::from)
    }
}

impl Drop for LineStream {
    fn drop(&mut self) {
        self.finish_line();
    }
}
