//! Capturing a supervised child's stdout and stderr into a rotating log file.
//!
//! One [`Capture`] per child stream owns the read end of a pipe whose write end is the
//! child's fd 1 or 2. The supervisor's poll loop polls [`Capture::fd`] and calls
//! [`Capture::on_readable`] when it is ready; nothing else drives a capture, so an idle
//! child costs no wakeup (the supervisor's rule). The file is a [`RotatingWriter`]
//! opened by [`LogConfig::open`]: written when lines are read, no flusher thread, rotated
//! on size, compressed and pruned by the writer's archiver thread, which runs only from a
//! rotation until its work is done.
//!
//! # Invariants
//!
//! * **Whole lines only.** A pipe delivers arbitrary chunks; a capture hands the writer
//!   only complete lines and holds back the trailing partial line of each chunk. A
//!   rotation happens only between two writes, so no line is torn across files, and two
//!   captures sharing one writer (stdout and stderr into one file) never interleave
//!   inside a line. The lines of one stream stay in the order the child wrote them.
//! * **One `write(2)` per 64 KiB read.** The held-back partial line and every complete
//!   line of a read (up to 64 KiB: a full pipe) go to the writer in one `write_lines`
//!   call, which is one `write(2)` straight from the capture's buffer (plus the `lseek`
//!   with which the writer keeps its size in step with `copytruncate`). A 1 MiB read of a
//!   *hot* pipe (below) is one write too when no line in it is over 64 KiB and it fits
//!   before the file's size limit; else (and with timestamps) it is taken in 64 KiB
//!   pieces, each as if read alone, so the longest line, where a rotation can fall and
//!   how full the files get are the same hot or not. Nothing is allocated per line or per
//!   read: all captures of the (single-threaded) supervisor share one read buffer.
//! * **Hot pipes.** A log file's capture that finds its pipe full (a read returns the
//!   default capacity, 64 KiB) asks the kernel for a 1 MiB pipe (`F_SETPIPE_SZ`) and reads
//!   1 MiB at a time from then on: a child that writes as fast as it can costs 16 times
//!   fewer reads and wake-ups on both sides (the child blocks on a full pipe 16 times
//!   less often), which is what takes the capture to the speed of `cat > file`
//!   (docs/benchmarks.md). The 1 MiB read buffer exists only while some capture is hot,
//!   shared by all of them; a capture cools down, and gives its pipe back its 64 KiB,
//!   when a call finds less than 64 KiB, and the buffer goes with the last hot one (it is
//!   its own mapping: the allocator hands it back to the kernel, see
//!   `daemonic::memory::use_one_heap`). A quiet service therefore costs what it did: a
//!   64 KiB pipe, no big buffer. The console (`run -f`) is never hot. If the kernel
//!   refuses the size (an unprivileged user over `fs.pipe-user-pages-soft`), the pipe
//!   stays as it is.
//! * **Bounded.** A partial line is held back up to 64 KiB (the writer's `max_line`); a
//!   longer one is written in 64 KiB pieces, each ended with a newline. One call reads at
//!   most 4 MiB, so a chatty child cannot starve the loop (the descriptor stays readable
//!   and the next `poll` returns at once).
//! * **Nothing lost at the end.** At end of file (every writer of the pipe has gone: the
//!   child and anything it passed the descriptor to), a held-back partial line is written
//!   with a newline added; dropping a capture does the same.
//! * **Timestamps** (optional) are taken once per read, when the bytes are read, and
//!   prefixed to each line that *starts* in that read (`2025-03-09T14:07:02.123456Z `): a
//!   line split over reads carries the time its first bytes arrived. Without them, lines
//!   are written byte for byte.
//!
//! A failing disk never fails a capture: the writer drops and counts lines and reports it
//! (see `docs/logging.md`); the pipe keeps being drained, so the child never blocks on a
//! full pipe because of the disk. A slow disk does slow the child down (backpressure).

pub mod console;
#[cfg(test)]
mod tests;
pub use crate::service::timestamp;

use std::cell::RefCell;
use std::io;
use std::os::fd::{AsFd, BorrowedFd, OwnedFd};
use std::time::SystemTime;

use daemonic::logging::RotatingWriter;
use nix::errno::Errno;
use nix::fcntl::{FcntlArg, OFlag, fcntl};

pub use crate::service::log::{
    LOG_DIR_MODE, LOG_FILE_MODE, LogArgs, LogCompress, LogConfig, parse_size,
};
pub use console::Console;

/// Where a capture's lines go: a log file, or (`run -f`, in the foreground) the
/// supervisor's own stdout or stderr, each line after `name | ` (see [`console`]).
#[derive(Debug, Clone)]
pub enum Sink {
    Log(RotatingWriter),
    Console(Console),
}

impl Sink {
    fn write_lines(&self, lines: &[u8]) {
        match self {
            Sink::Log(w) => w.write_lines(lines),
            Sink::Console(c) => c.write_lines(lines),
        }
    }

    fn write_line(&self, line: &[u8]) {
        match self {
            Sink::Log(w) => w.write_line(line),
            Sink::Console(c) => c.write_line(line),
        }
    }

    /// What the lines go to, for messages.
    fn describe(&self) -> String {
        match self {
            Sink::Log(w) => w.path().display().to_string(),
            Sink::Console(_) => "the console".into(),
        }
    }

    /// Reopens a log file (after logrotate); the console has nothing to reopen.
    pub fn reopen(&self) -> daemonic::Result<()> {
        match self {
            Sink::Log(w) => w.reopen(),
            Sink::Console(_) => Ok(()),
        }
    }
}

impl From<&RotatingWriter> for Sink {
    fn from(w: &RotatingWriter) -> Sink {
        Sink::Log(w.clone())
    }
}

impl From<&Sink> for Sink {
    fn from(s: &Sink) -> Sink {
        s.clone()
    }
}

/// What log files lost to write errors (a full disk, a file over its size limit): the
/// lines dropped in all `sinks` and the most recent error of a writer that dropped some;
/// `None` when nothing was lost (the console loses nothing it counts).
pub fn losses<'a>(sinks: impl IntoIterator<Item = &'a Sink>) -> Option<(u64, Option<String>)> {
    let mut dropped = 0;
    let mut error = None;
    for sink in sinks {
        if let Sink::Log(w) = sink {
            let s = w.stats();
            if s.lines_dropped > 0 {
                dropped += s.lines_dropped;
                error = s.last_error.or(error);
            }
        }
    }
    (dropped > 0).then_some((dropped, error))
}

/// Writes one line of the supervisor's own (`daemonic: web: … restart 1 in 1s`) into a
/// captured log, so that `daemonic logs` shows what happened to the service among what it
/// printed. A note always has the time prefix the child's lines get with
/// `--log-timestamps` (RFC 3339, UTC, microseconds): when a restart or a give-up happened
/// is what a reader of the log needs most, and the child's own lines may carry their own
/// times in any format.
pub fn note(writer: &Sink, line: &str) {
    let mut stamped = timestamp::prefix(SystemTime::now()).to_vec();
    stamped.extend_from_slice(line.as_bytes());
    writer.write_line(&stamped);
}

/// Marks in a captured log where a child's run begins: `daemonic: web: started (pid
/// 4242)`, written when the child has been spawned and before any of its output is read,
/// so every line of that run comes after it. `up` shows a failed service's tail from the
/// last marker on (see [`run_starts_at`]); `daemonic logs` shows it as it is. Not written
/// to the console (`run -f`), which has no tail to cut.
pub fn mark_start(sink: &Sink, name: &str, pid: daemonic::Pid) {
    if matches!(sink, Sink::Log(_)) {
        note(sink, &format!("{}{pid})", start_marker(name)));
    }
}

fn start_marker(name: &str) -> String {
    format!("daemonic: {name}: started (pid ")
}

/// Whether `line` (of `name`'s captured log, with or without its time prefix) is a
/// [`mark_start`] marker. The service could print such a line itself; that only hides its
/// own earlier lines from `up`'s tail.
pub fn run_starts_at(name: &str, line: &[u8]) -> bool {
    let line = match timestamp::parse(line) {
        Some(_) => &line[timestamp::LEN..],
        None => line,
    };
    line.starts_with(start_marker(name).as_bytes())
}

/// Bytes asked for per `read(2)`: the default pipe capacity, so one read empties a full
/// pipe (a read of a pipe never returns more than it holds); a read this long found the
/// pipe full.
const READ_CHUNK: usize = 64 * 1024;
/// A hot pipe's capacity, and its reads (see the module docs). Linux's
/// `fs.pipe-max-size` default, so an unprivileged supervisor gets it too.
const HOT_PIPE: usize = 1024 * 1024;
/// The longest line (its time prefix not counted); a longer one is written in pieces.
const MAX_LINE: usize = 64 * 1024;
/// The most one [`Capture::on_readable`] call reads before returning to the loop.
const MAX_PER_CALL: usize = 4 * HOT_PIPE;

/// Buffers shared by every capture on a thread; the supervisor's loop is one thread, so
/// a hundred services cost one set of buffers, not a hundred.
struct Scratch {
    /// `[0, MAX_LINE)`: room to put a held-back partial line in front of the bytes read
    /// into `[MAX_LINE, MAX_LINE + READ_CHUNK)`, so the two go out in one write.
    input: Box<[u8]>,
    /// The same for hot captures, `MAX_LINE + HOT_PIPE` long; only while `hot > 0`.
    hot_input: Option<Box<[u8]>>,
    /// How many captures on this thread are hot.
    hot: usize,
    /// Timestamped lines being assembled (grows to what one read needs, then stays).
    out: Vec<u8>,
}

impl Scratch {
    fn new() -> Scratch {
        Scratch {
            input: vec![0; MAX_LINE + READ_CHUNK].into_boxed_slice(),
            hot_input: None,
            hot: 0,
            out: Vec::new(),
        }
    }
}

thread_local! {
    static SCRATCH: RefCell<Option<Scratch>> = const { RefCell::new(None) };
}

/// One child stream (stdout or stderr) being copied, line by line, into a log file.
#[derive(Debug)]
pub struct Capture {
    fd: OwnedFd,
    writer: Sink,
    timestamps: bool,
    /// The trailing partial line (with its time prefix when timestamping); at most
    /// `MAX_LINE` bytes (plus the prefix) between calls.
    partial: Vec<u8>,
    eof: bool,
    /// Whether the pipe was made `HOT_PIPE` long and is read that much at a time.
    hot: bool,
    /// Looked for in each whole line until one matches (`--ready log:…`; see `watch`).
    watch: Option<crate::service::LogLine>,
    matched: bool,
}

impl Capture {
    /// A capture of the pipe whose read end is `read_end`, writing to `writer` (clone it
    /// for the other stream of the same child to share the file). Makes `read_end`
    /// non-blocking.
    pub fn new(
        read_end: OwnedFd,
        writer: impl Into<Sink>,
        timestamps: bool,
    ) -> io::Result<Capture> {
        let flags = fcntl(&read_end, FcntlArg::F_GETFL).map_err(|e| fd_error("F_GETFL", e))?;
        let flags = OFlag::from_bits_retain(flags) | OFlag::O_NONBLOCK;
        fcntl(&read_end, FcntlArg::F_SETFL(flags)).map_err(|e| fd_error("F_SETFL", e))?;
        Ok(Capture {
            fd: read_end,
            writer: writer.into(),
            timestamps,
            partial: Vec::new(),
            eof: false,
            hot: false,
            watch: None,
            matched: false,
        })
    }

    /// A new pipe (both ends close-on-exec) and its capture; give the returned write end
    /// to the child (`Command::stdout(Stdio::from(write_end))`, which `dup2`s it onto fd 1
    /// in the child only) and drop the parent's copy once the child is spawned, or end of
    /// file never comes.
    pub fn pipe(writer: impl Into<Sink>, timestamps: bool) -> io::Result<(Capture, OwnedFd)> {
        let (read_end, write_end) =
            nix::unistd::pipe2(OFlag::O_CLOEXEC).map_err(|e| fd_error("pipe2", e))?;
        Ok((Capture::new(read_end, writer, timestamps)?, write_end))
    }

    /// The descriptor to poll. Call [`on_readable`](Self::on_readable) when `poll`
    /// reports *any* event on it: `POLLIN`, but also `POLLHUP` alone, which is how Linux
    /// reports end of file on an empty pipe whose writers have all gone.
    pub fn fd(&self) -> BorrowedFd<'_> {
        self.fd.as_fd()
    }

    /// Reads what the pipe holds (until `EAGAIN`, or 1 MiB) and writes the complete lines.
    /// `Ok(true)` at end of file, after the partial last line was written: stop polling
    /// and drop the capture (a pipe at EOF stays "readable" forever). An error is a read
    /// error of the pipe (not a disk error, which the writer counts instead), naming the
    /// log file it feeds.
    pub fn on_readable(&mut self) -> io::Result<bool> {
        if self.eof {
            return Ok(true);
        }
        SCRATCH.with_borrow_mut(|s| self.drain(s.get_or_insert_with(Scratch::new)))
    }

    fn drain(&mut self, s: &mut Scratch) -> io::Result<bool> {
        let mut total = 0;
        while total < MAX_PER_CALL {
            let input = match self.hot {
                true => s
                    .hot_input
                    .get_or_insert_with(|| vec![0; MAX_LINE + HOT_PIPE].into_boxed_slice()),
                false => &mut s.input,
            };
            let n = match nix::unistd::read(&self.fd, &mut input[MAX_LINE..]) {
                Ok(0) => {
                    self.cool(s);
                    self.finish();
                    return Ok(true);
                }
                Ok(n) => n,
                Err(Errno::EAGAIN) => {
                    if self.hot && total < READ_CHUNK {
                        self.cool(s);
                    }
                    return Ok(false);
                }
                Err(Errno::EINTR) => continue,
                Err(e) => {
                    return Err(io::Error::new(
                        io::Error::from(e).kind(),
                        format!(
                            "read child output (for {}): {}",
                            self.writer.describe(),
                            e.desc()
                        ),
                    ));
                }
            };
            total += n;
            let stamp = self
                .timestamps
                .then(|| timestamp::prefix(SystemTime::now()));
            // A hot read goes whole if it can (`takes_whole`), else in READ_CHUNK pieces, as
            // if read that way: the writes, the rotation points and the longest line stay
            // what they are for a cold read.
            let whole =
                stamp.is_none() && n > READ_CHUNK && self.takes_whole(&input[MAX_LINE..][..n]);
            let piece = if whole { n } else { READ_CHUNK };
            for at in (MAX_LINE..MAX_LINE + n).step_by(piece) {
                let len = piece.min(MAX_LINE + n - at);
                match &stamp {
                    Some(stamp) => self.take_stamped(&input[at..at + len], stamp, &mut s.out),
                    None => self.take_verbatim(input, at, len),
                }
                self.split_overlong(stamp.as_ref().map(|s| &s[..]));
            }
            if n == READ_CHUNK && !self.hot {
                self.heat(s);
            }
        }
        Ok(false)
    }

    /// Whether a hot read (without timestamps) can go to the file in one write, as one
    /// that held 64 KiB would: no line in it is over `MAX_LINE` (every aligned half of
    /// that has a newline, so no two newlines are further apart), and its lines fit in
    /// the room left before the file's size limit (no rotation falls before them, so
    /// files fill up as they do with 64 KiB writes).
    fn takes_whole(&self, read: &[u8]) -> bool {
        let Sink::Log(w) = &self.writer else {
            return false;
        };
        read.chunks_exact(MAX_LINE / 2)
            .all(|half| half.contains(&b'\n'))
            && w.room()
                .is_none_or(|room| (self.partial.len() + read.len()) as u64 <= room)
    }

    /// The pipe was full: makes it `HOT_PIPE` long (a log file's capture, if the kernel
    /// agrees) and reads it that much at a time from now on.
    fn heat(&mut self, s: &mut Scratch) {
        if !matches!(self.writer, Sink::Log(_)) {
            return;
        }
        if let Ok(size) = fcntl(&self.fd, FcntlArg::F_SETPIPE_SZ(HOT_PIPE as _))
            && size as usize > READ_CHUNK
        {
            self.hot = true;
            s.hot += 1;
        }
    }

    /// Back to a `READ_CHUNK` pipe and reads (the pipe is empty now, or at its end: the
    /// shrink cannot fail for its contents); the last hot capture frees the big buffer.
    fn cool(&mut self, s: &mut Scratch) {
        if !self.hot {
            return;
        }
        self.hot = false;
        s.hot = s.hot.saturating_sub(1);
        if s.hot == 0 {
            s.hot_input = None;
        }
        let _ = fcntl(&self.fd, FcntlArg::F_SETPIPE_SZ(READ_CHUNK as _));
    }

    /// `input[at..at + n]` was just read (and the `MAX_LINE` bytes before it are free to
    /// overwrite: `at >= MAX_LINE`): writes the held-back partial line and the complete
    /// lines as one piece, holds back the rest.
    fn take_verbatim(&mut self, input: &mut [u8], at: usize, n: usize) {
        let begin = at + self.complete_overlong(&input[at..at + n], None);
        let read = &input[begin..at + n];
        let Some(last_nl) = read.iter().rposition(|&b| b == b'\n') else {
            self.partial.extend_from_slice(read);
            return;
        };
        let end = begin + last_nl + 1;
        // `partial` is at most MAX_LINE (and empty if `begin` moved): it fits in front.
        let start = begin - self.partial.len();
        input[start..begin].copy_from_slice(&self.partial);
        self.look(&input[start..end]);
        self.writer.write_lines(&input[start..end]);
        self.partial.clear();
        self.partial.extend_from_slice(&input[end..at + n]);
    }

    /// Like `take_verbatim`, with `stamp` in front of every line that starts in `read`.
    fn take_stamped(&mut self, read: &[u8], stamp: &[u8], out: &mut Vec<u8>) {
        let read = &read[self.complete_overlong(read, Some(stamp))..];
        out.clear();
        out.extend_from_slice(&self.partial);
        let mut at_line_start = self.partial.is_empty();
        let mut complete = 0; // bytes of `out` that are whole lines
        let mut rest = read;
        while !rest.is_empty() {
            if at_line_start {
                out.extend_from_slice(stamp);
            }
            let Some(nl) = find_newline(rest) else {
                out.extend_from_slice(rest); // the new partial line
                break;
            };
            out.extend_from_slice(&rest[..=nl]);
            complete = out.len();
            at_line_start = true;
            rest = &rest[nl + 1..];
        }
        if complete > 0 {
            self.look(&out[..complete]);
            self.writer.write_lines(&out[..complete]);
        }
        self.partial.clear();
        self.partial.extend_from_slice(&out[complete..]);
        // Very short lines grow `out` up to 29 times the read; do not keep that for good.
        if out.capacity() > 8 * READ_CHUNK {
            *out = Vec::new();
        }
    }

    /// The held-back line's length, its time prefix not counted.
    fn partial_len(&self) -> usize {
        match self.partial.len() {
            0 => 0,
            n if self.timestamps => n - timestamp::LEN,
            n => n,
        }
    }

    /// When the first line of `read` completes the held-back line past `MAX_LINE`, writes
    /// that line now, in pieces (see `split_overlong`); returns how much of `read` it
    /// used (0 when the common path can take it all).
    fn complete_overlong(&mut self, read: &[u8], stamp: Option<&[u8]>) -> usize {
        if self.partial.is_empty() {
            return 0;
        }
        // The line fits if its newline comes within `room + 1` bytes.
        let window = read.len().min(MAX_LINE - self.partial_len() + 1);
        if read[..window].contains(&b'\n') {
            return 0;
        }
        let Some(nl) = read[window..].iter().position(|&b| b == b'\n') else {
            return 0; // still no newline: held back, and split, by the common path
        };
        self.partial.extend_from_slice(&read[..window + nl]);
        self.split_overlong(stamp);
        self.writer.write_line(&self.partial);
        self.partial.clear();
        window + nl + 1
    }

    /// Writes a held-back line grown past `MAX_LINE` in `MAX_LINE` pieces, each ended with
    /// a newline; the rest continues as a new line (with `stamp`, when timestamping).
    fn split_overlong(&mut self, stamp: Option<&[u8]>) {
        let prefix = stamp.map_or(0, <[u8]>::len);
        while self.partial_len() > MAX_LINE {
            self.writer.write_line(&self.partial[..prefix + MAX_LINE]);
            self.partial.drain(..prefix + MAX_LINE);
            if let Some(stamp) = stamp {
                self.partial.splice(0..0, stamp.iter().copied());
            }
        }
    }

    /// End of the stream: the partial last line goes out with a newline added.
    fn finish(&mut self) {
        if !self.partial.is_empty() {
            self.writer.write_line(&self.partial);
        }
        self.partial = Vec::new();
        self.eof = true;
    }
}

/// The readiness hook (`--ready log:REGEX`): whole lines checked against a pattern as
/// they pass, in the loop, with no thread and no copy; nothing is looked at once a line
/// matched or without a pattern. A line is seen when its newline arrives (a partial line
/// is not looked at, nor the pieces of one over 64 KiB).
impl Capture {
    /// Looks for `pattern` in the lines from now on (`None`: no longer).
    pub fn watch(&mut self, pattern: Option<crate::service::LogLine>) {
        self.watch = pattern;
        self.matched = false;
    }

    /// Whether a line matched since the last call (once per match).
    pub fn take_match(&mut self) -> bool {
        std::mem::take(&mut self.matched)
    }

    /// `lines`: whole lines as they go to the file (each with its time prefix when
    /// timestamping).
    fn look(&mut self, lines: &[u8]) {
        let Some(pattern) = &self.watch else { return };
        let skip = if self.timestamps { timestamp::LEN } else { 0 };
        let found = lines
            .split_inclusive(|&b| b == b'\n')
            .map(|line| line.strip_suffix(b"\n").unwrap_or(line))
            .any(|line| pattern.matches(line.get(skip..).unwrap_or_default()));
        if found {
            self.watch = None;
            self.matched = true;
        }
    }
}

impl Drop for Capture {
    fn drop(&mut self) {
        if self.hot {
            // (Not while the thread's buffers are in use or gone: then the count no longer
            // matters.)
            let _ = SCRATCH.try_with(|s| {
                if let Ok(mut s) = s.try_borrow_mut()
                    && let Some(s) = s.as_mut()
                {
                    self.cool(s);
                }
            });
        }
        self.finish();
    }
}

/// The index of the first `\n` in `s`, eight bytes at a time (the per-line cost of
/// timestamping; std has no public `memchr`).
fn find_newline(s: &[u8]) -> Option<usize> {
    const ONES: u64 = 0x0101_0101_0101_0101;
    const HIGHS: u64 = 0x8080_8080_8080_8080;
    let newlines = ONES * u64::from(b'\n');
    let mut words = s.chunks_exact(8);
    for (i, w) in words.by_ref().enumerate() {
        let x = u64::from_le_bytes(w.try_into().unwrap_or_default()) ^ newlines;
        // A byte of `x` is zero where `w` has a newline; the lowest flagged byte is always
        // a true zero (a borrow can only flag bytes above one).
        let zeros = x.wrapping_sub(ONES) & !x & HIGHS;
        if zeros != 0 {
            return Some(i * 8 + (zeros.trailing_zeros() / 8) as usize);
        }
    }
    let tail = words.remainder();
    let base = s.len() - tail.len();
    tail.iter().position(|&b| b == b'\n').map(|i| base + i)
}

fn fd_error(op: &str, e: Errno) -> io::Error {
    io::Error::new(
        io::Error::from(e).kind(),
        format!("{op} (child output pipe): {}", e.desc()),
    )
}
