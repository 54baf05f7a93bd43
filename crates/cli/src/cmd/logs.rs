//! `daemonic logs NAME [-f] [-n N] [--file FILE]`: a service's captured output.
//!
//! Prints the last N lines (default 10) of the log, reaching into the rotated files
//! (newest first, gzip ones included) when the active file has fewer; with `-f`, then the
//! lines as they are written, across rotations and truncation (see [`crate::tail`]),
//! until SIGINT/SIGTERM/SIGHUP or until the reader of stdout goes away
//! (`daemonic logs -f web | head -3` ends as soon as `head` does) — exit status 0 either
//! way, and no message. Following looks at the file every 100 ms: this is a client, not
//! the supervisor, whose loop must never wake while idle.
//!
//! The log is `--file FILE` if given; else, while the service runs, the file its
//! supervisor reports (its `--log-file`); else the service's default log file
//! ([`crate::state_dir::default_log_path`]).

use std::io::{self, Write};
use std::os::fd::AsFd;
use std::path::{Path, PathBuf};

use anyhow::{Context, Result};
use daemonic::Signals;
use nix::poll::{PollFd, PollFlags, PollTimeout, poll};

use crate::state_dir::{StateDir, check_name};
use crate::tail::{self, follow::Follower};

/// How often `-f` looks for new lines, rotations and truncation.
const FOLLOW_EVERY_MS: u16 = 100;

#[derive(clap::Args, Debug)]
pub struct Args {
    /// The service whose log to show.
    name: String,
    /// Print the last N lines (reading the rotated files too when the current file has
    /// fewer).
    #[arg(short = 'n', long = "lines", default_value = "10", value_name = "N")]
    lines: usize,
    /// Then print lines as they are written, across rotations, until interrupted or the
    /// reader of the output goes away (exit status 0 either way).
    #[arg(short, long)]
    follow: bool,
    /// The log file to read [default: while NAME runs, the file its supervisor writes;
    /// else LOG_DIR/NAME.log, where LOG_DIR is the state directory if --state-dir or
    /// DAEMONIC_STATE_DIR is set, else /var/log/daemonic for root, else
    /// $XDG_STATE_HOME/daemonic/log (~/.local/state/daemonic/log)].
    #[arg(long, value_name = "FILE")]
    file: Option<PathBuf>,
}

pub fn run(a: Args, dirs: &StateDir) -> Result<u8> {
    check_name(&a.name)?;
    if a.file.is_none() {
        // The log's path comes from the state directory: its supervisor's answer, or
        // NAME.log in it when given explicitly. Neither is trusted from a directory that
        // someone else controls.
        dirs.ensure()?;
    }
    // A running supervisor knows its --log-file; the default path serves a stopped service.
    let running = match &a.file {
        Some(_) => None,
        None => crate::query::service(dirs, &a.name)
            .ok()
            .flatten()
            .and_then(|s| s.log_file),
    };
    let path = a
        .file
        .or(running.map(PathBuf::from))
        .unwrap_or_else(|| dirs.log_file(&a.name));
    let tail = match tail::last_lines(&path, a.lines, a.follow) {
        Ok(t) => t,
        Err(e) if e.kind() == io::ErrorKind::NotFound && !path.exists() => anyhow::bail!(
            "open {} (the log of {}): No such file or directory; if {} was started with \
             --log-file, pass that path with --file",
            path.display(),
            a.name,
            a.name
        ),
        Err(e) => return Err(e.into()),
    };
    for note in &tail.notes {
        eprintln!("daemonic: {}: {note}", a.name);
    }
    let mut out = Stdout(io::stdout().lock());
    let printed = tail::print(&tail.segments, &mut out).and_then(|()| out.flush());
    if reader_gone(printed)? {
        return Ok(0);
    }
    if !a.follow {
        return Ok(0);
    }
    drop(tail.segments);
    follow(
        &path,
        Follower::new(&path, tail.active, tail.follow_from),
        &mut out,
    )
}

/// Follows until a shutdown signal or until nobody reads stdout any more.
fn follow(path: &Path, mut follower: Follower, out: &mut Stdout) -> Result<u8> {
    let mut signals = Signals::new().context("install signal handlers")?;
    loop {
        if reader_gone(follower.step(out).map(drop))? {
            return Ok(0);
        }
        let stdout = io::stdout();
        let mut fds = [
            PollFd::new(signals.as_fd(), PollFlags::POLLIN),
            // No events asked for: POLLERR (a pipe whose reader has gone) and POLLHUP (a
            // hung-up terminal) are reported anyway, so an idle log still notices.
            PollFd::new(stdout.as_fd(), PollFlags::empty()),
        ];
        match poll(&mut fds, PollTimeout::from(FOLLOW_EVERY_MS)) {
            Ok(_) | Err(nix::errno::Errno::EINTR) => {}
            Err(e) => {
                return Err(e).with_context(|| format!("poll while following {}", path.display()));
            }
        }
        let hung_up = fds[1]
            .revents()
            .is_some_and(|r| r.intersects(PollFlags::POLLERR | PollFlags::POLLHUP));
        if hung_up {
            return Ok(0);
        }
        let stop = signals
            .pending()
            .iter()
            .any(|e| matches!(e, daemonic::Event::Shutdown | daemonic::Event::Reload));
        if stop {
            return Ok(0);
        }
    }
}

/// `Ok(true)` if writing failed because the reader of stdout has gone (`EPIPE`: Rust
/// ignores SIGPIPE, so a closed pipe shows up here) — a normal end, without a message.
fn reader_gone(r: io::Result<()>) -> Result<bool> {
    match r {
        Ok(()) => Ok(false),
        Err(e) if e.kind() == io::ErrorKind::BrokenPipe => Ok(true),
        Err(e) => Err(e.into()),
    }
}

/// Standard output whose errors say so.
struct Stdout(io::StdoutLock<'static>);

impl Write for Stdout {
    fn write(&mut self, buf: &[u8]) -> io::Result<usize> {
        self.0.write(buf).map_err(stdout_error)
    }
    fn write_all(&mut self, buf: &[u8]) -> io::Result<()> {
        self.0.write_all(buf).map_err(stdout_error)
    }
    fn flush(&mut self) -> io::Result<()> {
        self.0.flush().map_err(stdout_error)
    }
}

fn stdout_error(e: io::Error) -> io::Error {
    io::Error::new(e.kind(), format!("write to standard output: {e}"))
}
