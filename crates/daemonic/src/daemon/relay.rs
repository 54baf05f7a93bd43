//! The launcher's view of the daemon's stderr until it is ready
//! ([`Daemon::forward_stderr`](super::Daemon::forward_stderr)), printed on the launcher's
//! stderr line by line with control characters shown as escapes (the daemon may run as
//! another user, and a terminal obeys escape sequences):
//!
//! - stderr to `/dev/null`: the daemon's stderr is a pipe, read as it comes. The pipe is
//!   non-blocking: [`Relay::pump`] reads what is there and returns, so the launcher's poll
//!   loop keeps waiting on the notify socket and the daemon's exit too. A line longer than
//!   [`MAX_LINE`] is printed in pieces. [`Relay::finish`] reads what is left (the daemon
//!   put `/dev/null` back before it said `READY=1`, so that is everything from before).
//! - stderr to a file: the file gets every line itself, in order; if the start fails,
//!   [`Relay::finish`] prints the last lines the daemon appended to it during this start
//!   (at most [`MAX_TAIL`] bytes from its end).

use std::fs::File;
use std::io::{Read, Seek, SeekFrom, Write};
use std::os::fd::{AsFd, BorrowedFd};

use nix::errno::Errno;

use super::setup::Forward;

/// The longest line held back waiting for its newline.
const MAX_LINE: usize = 16 * 1024;
/// How much of a stderr file a failed start shows, at most (its last lines).
const MAX_TAIL: u64 = 8 * 1024;

pub(super) struct Relay {
    forward: Forward,
    /// The start of a line whose newline has not arrived yet.
    partial: Vec<u8>,
    /// The daemon and everything it started have closed the pipe's write ends.
    closed: bool,
}

impl Relay {
    pub fn new(forward: Forward) -> Relay {
        Relay {
            forward,
            partial: Vec::new(),
            closed: false,
        }
    }

    /// The pipe, while anything may still arrive on it (after end of file, poll would
    /// report it readable for ever).
    pub fn fd(&self) -> Option<BorrowedFd<'_>> {
        match &self.forward {
            Forward::Pipe(fd) if !self.closed => Some(fd.as_fd()),
            _ => None,
        }
    }

    /// Reads and prints what the pipe holds now.
    pub fn pump(&mut self) {
        let Forward::Pipe(fd) = &self.forward else {
            return;
        };
        let mut buf = [0u8; 8192];
        while !self.closed {
            match nix::unistd::read(fd, &mut buf) {
                Ok(0) => self.closed = true,
                Ok(n) => {
                    self.partial.extend_from_slice(&buf[..n]);
                    show_lines(&mut self.partial);
                }
                Err(Errno::EINTR) => {}
                // EAGAIN: nothing more for now; anything else: the pipe is unusable.
                Err(Errno::EAGAIN) => return,
                Err(_) => self.closed = true,
            }
        }
    }

    /// At the end of the wait: prints what is left of the pipe, or, when the start
    /// `failed`, the lines this start appended to the stderr file.
    pub fn finish(&mut self, failed: bool) {
        self.pump();
        if let (Forward::File(file, from), true) = (&mut self.forward, failed) {
            self.partial = appended(file, *from);
            show_lines(&mut self.partial);
        }
        if !self.partial.is_empty() {
            show(&std::mem::take(&mut self.partial));
        }
        let _ = std::io::stderr().flush();
    }
}

/// Prints the complete lines at the start of `partial` (and all of it once it is
/// [`MAX_LINE`] long), leaving the start of the next line.
fn show_lines(partial: &mut Vec<u8>) {
    while let Some(end) = partial.iter().position(|&b| b == b'\n') {
        let rest = partial.split_off(end + 1);
        let line = std::mem::replace(partial, rest);
        show(&line[..end]);
    }
    if partial.len() >= MAX_LINE {
        show(&std::mem::take(partial));
    }
}

/// What was appended to `file` beyond `from`: its last [`MAX_TAIL`] bytes at most, from
/// the first whole line among them.
fn appended(file: &mut File, from: u64) -> Vec<u8> {
    let end = file.metadata().map_or(0, |m| m.len());
    let start = from.max(end.saturating_sub(MAX_TAIL));
    let mut bytes = Vec::new();
    if end <= start
        || file.seek(SeekFrom::Start(start)).is_err()
        || file.take(end - start).read_to_end(&mut bytes).is_err()
    {
        return Vec::new();
    }
    if start > from
        && let Some(nl) = bytes.iter().position(|&b| b == b'\n')
    {
        bytes.drain(..=nl);
    }
    bytes
}

/// One line on the launcher's stderr, escaped (a failed write has nowhere to be told).
fn show(line: &[u8]) {
    let text = String::from_utf8_lossy(line);
    let shown = crate::systemd::listen::printable(&text);
    let _ = std::io::stderr().write_all(format!("{shown}\n").as_bytes());
}

#[cfg(test)]
mod tests {
    use super::*;
    use nix::fcntl::OFlag;

    fn relay() -> (Relay, std::os::fd::OwnedFd) {
        let (r, w) = nix::unistd::pipe2(OFlag::O_CLOEXEC | OFlag::O_NONBLOCK).unwrap();
        (Relay::new(Forward::Pipe(r)), w)
    }

    #[test]
    fn lines_are_cut_at_newlines_and_the_pipe_is_given_up_at_its_end() {
        let (mut relay, w) = relay();
        nix::unistd::write(&w, b"one\ntw").unwrap();
        relay.pump();
        assert_eq!(relay.partial, b"tw");
        assert!(relay.fd().is_some());
        nix::unistd::write(&w, b"o\n").unwrap();
        drop(w);
        relay.pump();
        assert!(relay.partial.is_empty());
        assert!(relay.fd().is_none(), "end of file: not polled again");
    }

    #[test]
    fn an_endless_line_is_printed_in_pieces() {
        let (mut relay, w) = relay();
        let long = vec![b'x'; MAX_LINE + 10];
        for chunk in long.chunks(4096) {
            nix::unistd::write(&w, chunk).unwrap();
            relay.pump();
            assert!(relay.partial.len() < MAX_LINE);
        }
    }

    #[test]
    fn a_failed_start_shows_only_what_it_appended_to_the_file_and_its_last_lines() {
        let path = std::env::temp_dir().join(format!("relay-{}", std::process::id()));
        std::fs::write(&path, "old run\n").unwrap();
        let mut file = File::options().read(true).append(true).open(&path).unwrap();
        file.write_all(b"this start\n").unwrap();
        assert_eq!(appended(&mut file, 8), b"this start\n");
        let many: String = (0..2000).map(|n| format!("line {n}\n")).collect();
        file.write_all(many.as_bytes()).unwrap();
        let tail = appended(&mut file, 8);
        assert!(tail.len() <= MAX_TAIL as usize);
        assert!(tail.starts_with(b"line ") && tail.ends_with(b"line 1999\n"));
        std::fs::remove_file(&path).unwrap();
    }
}
