//! `daemonic logs [NAME…] [-f] [-n N] [--file FILE] [-c CONFIG]`: services' captured output.
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
//!
//! **Several services.** With several NAMEs, or none — then every service of the config
//! file (`-c FILE`, default `./daemonic.toml`; `-f` already means follow here), or without
//! that file every service of the state directory — the logs are shown as one view: the
//! last N lines *of each*, then (with `-f`) what each writes, every line as `name | line`
//! (names padded, coloured on a terminal unless `NO_COLOR`), in time order as far as the
//! logs tell it: see [`crate::tail::merge`] for the rule and its precision. A service
//! with no log file yet is named on stderr and left out (while following, it is picked
//! up once its file appears).

use std::io::{self, IsTerminal, Write};
use std::os::fd::AsFd;
use std::path::{Path, PathBuf};
use std::time::SystemTime;

use anyhow::{Context, Result};
use daemonic::Signals;
use nix::poll::{PollFd, PollFlags, PollTimeout, poll};

use crate::state_dir::{StateDir, check_name};
use crate::tail::merge::{self, Prefixes};
use crate::tail::{self, follow::Follower};

/// How often `-f` looks for new lines, rotations and truncation.
const FOLLOW_EVERY_MS: u16 = 100;

#[derive(clap::Args, Debug)]
pub struct Args {
    /// The services whose logs to show, merged in time order when more than one [default:
    /// every service of the config file (-c), or without one every service of the state
    /// directory].
    #[arg(value_name = "NAME")]
    names: Vec<String>,
    /// Print the last N lines (reading the rotated files too when the current file has
    /// fewer); of each service when several are shown.
    #[arg(short = 'n', long = "lines", default_value = "10", value_name = "N")]
    lines: usize,
    /// Then print lines as they are written, across rotations, until interrupted or the
    /// reader of the output goes away (exit status 0 either way).
    #[arg(short, long)]
    follow: bool,
    /// The log file to read, with one NAME [default: while NAME runs, the file its
    /// supervisor writes; else LOG_DIR/NAME.log, where LOG_DIR is the state directory if
    /// --state-dir or DAEMONIC_STATE_DIR is set, else /var/log/daemonic for root, else
    /// $XDG_STATE_HOME/daemonic/log (~/.local/state/daemonic/log)].
    #[arg(long, value_name = "FILE")]
    file: Option<PathBuf>,
    /// Without NAME: show the services of this config file [default: ./daemonic.toml if
    /// it exists, else every service of the state directory].
    #[arg(short = 'c', long = "config", value_name = "FILE")]
    config: Option<PathBuf>,
}

/// The services `a` asks for: its NAMEs, else the config file's, else the state
/// directory's.
fn services(a: &Args, dirs: &StateDir) -> Result<Vec<String>> {
    if !a.names.is_empty() {
        return Ok(a.names.clone());
    }
    let default = Path::new(crate::config::DEFAULT_FILE);
    let file = match &a.config {
        Some(f) => Some(f.as_path()),
        None => default.exists().then_some(default),
    };
    if let Some(file) = file {
        let config = crate::config::load(file)?;
        return Ok(config.services.iter().map(|d| d.name.clone()).collect());
    }
    let mut names: Vec<String> = crate::query::all(dirs)?
        .into_iter()
        .chain(crate::query::ended(dirs)?)
        .map(|s| s.name)
        .collect();
    names.sort();
    names.dedup();
    if names.is_empty() {
        anyhow::bail!(
            "no service to show: no {} here (give one with -c FILE) and none in {}",
            crate::config::DEFAULT_FILE,
            dirs.path().display()
        );
    }
    Ok(names)
}

/// The log file of `name`: `file` if given, else the one its running supervisor reports,
/// else the default.
fn log_path(dirs: &StateDir, name: &str, file: Option<PathBuf>) -> Result<PathBuf> {
    check_name(name)?;
    if let Some(f) = file {
        return Ok(f);
    }
    // The log's path comes from the state directory: its supervisor's answer, or NAME.log
    // in it when given explicitly. Neither is trusted from a directory that someone else
    // controls.
    dirs.ensure()?;
    // A running supervisor knows its --log-file; the default path serves a stopped service.
    let running = crate::query::service(dirs, name)
        .ok()
        .flatten()
        .and_then(|s| s.log_file);
    Ok(running
        .map(PathBuf::from)
        .unwrap_or_else(|| dirs.log_file(name)))
}

fn not_found(path: &Path, name: &str) -> anyhow::Error {
    anyhow::anyhow!(
        "open {} (the log of {name}): No such file or directory; if {name} was started with \
         --log-file, pass that path with --file",
        path.display(),
    )
}

pub fn run(a: Args, dirs: &StateDir) -> Result<u8> {
    let names = services(&a, dirs)?;
    if names.len() > 1 {
        if a.file.is_some() {
            anyhow::bail!("--file names the log of one service: give exactly one NAME with it");
        }
        return show(dirs, &names, a.lines, a.follow);
    }
    let name = &names[0];
    let path = log_path(dirs, name, a.file)?;
    let tail = match tail::last_lines(&path, a.lines, a.follow) {
        Ok(t) => t,
        Err(e) if e.kind() == io::ErrorKind::NotFound && !path.exists() => {
            return Err(not_found(&path, name));
        }
        Err(e) => return Err(e.into()),
    };
    for note in &tail.notes {
        eprintln!("daemonic: {name}: {note}");
    }
    // Before the first line: a signal from someone who saw it must find the handlers.
    let signals = a.follow.then(Signals::new).transpose();
    let signals = signals.context("install signal handlers")?;
    let mut out = Stdout(io::stdout().lock());
    let printed = tail::print(&tail.segments, &mut out).and_then(|()| out.flush());
    if reader_gone(printed)? {
        return Ok(0);
    }
    let Some(signals) = signals else {
        return Ok(0);
    };
    drop(tail.segments);
    let mut follower = Follower::new(&path, tail.active, tail.follow_from);
    follow(&path, signals, |out| follower.step(out).map(drop), &mut out)
}

/// The merged view of `names` (see the module docs): the last `lines` of each, then, if
/// `follow`, what they write.
pub fn show(dirs: &StateDir, names: &[String], lines: usize, follow_too: bool) -> Result<u8> {
    let paths = names
        .iter()
        .map(|n| log_path(dirs, n, None))
        .collect::<Result<Vec<_>>>()?;
    let prefixes = Prefixes::new(names, merge::colour_wanted(io::stdout().is_terminal()));
    let mut followers: Vec<Option<Follower>> = Vec::new();
    let mut texts: Vec<(Vec<u8>, merge::Key)> = Vec::new();
    for (name, path) in names.iter().zip(&paths) {
        let tail = match tail::last_lines(path, lines, follow_too) {
            Ok(t) => t,
            Err(e) if e.kind() == io::ErrorKind::NotFound && !path.exists() => {
                eprintln!("daemonic: {name}: no log yet ({})", path.display());
                followers.push(None);
                texts.push((Vec::new(), merge::key_of(SystemTime::UNIX_EPOCH)));
                continue;
            }
            Err(e) => return Err(e.into()),
        };
        for note in &tail.notes {
            eprintln!("daemonic: {name}: {note}");
        }
        let mut text = Vec::new();
        tail::print(&tail.segments, &mut text)?;
        let mtime = tail.active.metadata().and_then(|m| m.modified());
        let mtime = mtime.unwrap_or_else(|_| SystemTime::now());
        texts.push((text, merge::key_of(mtime)));
        followers.push(Some(Follower::new(path, tail.active, tail.follow_from)));
    }
    let mut keyed: Vec<merge::Line> = texts
        .iter()
        .enumerate()
        .flat_map(|(i, (text, key))| merge::keyed(i, text, *key))
        .collect();
    merge::sort(&mut keyed);
    let signals = follow_too.then(Signals::new).transpose();
    let signals = signals.context("install signal handlers")?;
    let mut out = Stdout(io::stdout().lock());
    if reader_gone(prefixes.write(&keyed, &mut out))? {
        return Ok(0);
    }
    let Some(signals) = signals else {
        return Ok(0);
    };
    drop(keyed);
    drop(texts);
    let mut bufs: Vec<Vec<u8>> = vec![Vec::new(); names.len()];
    let step = |out: &mut Stdout| -> io::Result<()> {
        for (i, f) in followers.iter_mut().enumerate() {
            bufs[i].clear();
            match f {
                Some(f) => {
                    f.step(&mut bufs[i])?;
                }
                // Started since: its file appeared. Read from its start.
                None => match tail::open_log(&paths[i]) {
                    Ok(file) => {
                        let mut new = Follower::new(&paths[i], file, 0);
                        new.step(&mut bufs[i])?;
                        *f = Some(new);
                    }
                    Err(e) if e.kind() == io::ErrorKind::NotFound => {}
                    Err(e) => return Err(e),
                },
            }
        }
        let now = merge::key_of(SystemTime::now());
        let mut lines: Vec<merge::Line> = bufs
            .iter()
            .enumerate()
            .flat_map(|(i, b)| merge::keyed(i, b, now))
            .collect();
        merge::sort(&mut lines);
        if lines.is_empty() {
            return Ok(());
        }
        prefixes.write(&lines, out)
    };
    follow(&paths[0], signals, step, &mut out)
}

/// Calls `step` every 100 ms until a shutdown signal or until nobody reads stdout any
/// more.
fn follow(
    path: &Path,
    mut signals: Signals,
    mut step: impl FnMut(&mut Stdout) -> io::Result<()>,
    out: &mut Stdout,
) -> Result<u8> {
    loop {
        if reader_gone(step(out))? {
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
