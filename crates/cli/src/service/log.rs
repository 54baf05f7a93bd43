//! The log options of a service (`--log-file`, …) and the configuration they resolve to.
//!
//! Every captured file is a [`RotatingWriter`] configured for the supervisor's loop:
//!
//! * lines are written when they are read (`Flush::EachWrite`): no flusher thread that
//!   would wake the idle supervisor every 100 ms, and nothing held in memory if the
//!   supervisor is killed;
//! * rotation on size only (time-based rotation needs the flusher's clock);
//! * `Fsync::Never`: a rotation happens on the supervisor's one thread, and an `fdatasync`
//!   of the file there would stall every service's signals, exits and output for as long
//!   as the disk takes (measured: 10 MiB rotations halve capture throughput, 1 MiB ones
//!   cost 80%). Every captured line is in the page cache the moment it is read, so it
//!   survives the child and the supervisor crashing; only a machine crash can lose the
//!   last moments of output (the kernel writes back within ~30 s) — which the active
//!   file risks under any policy short of an fsync per write;
//! * the archiver thread (compression, retention) runs only from a rotation (or the
//!   start-up pass) until its work is done; an idle supervisor has no such thread.

use std::os::unix::fs::DirBuilderExt;
use std::path::{Path, PathBuf};

use anyhow::{Context, Result};
use clap::ValueEnum;
use daemonic::logging::{Compression, Flush, Fsync, RotatingWriter};

use super::options::Systemd::Daemonic;
use super::options::{Blank, Opt, choice, put, switch};

/// Permission bits of log files daemonic creates: owner read-write, group read.
pub const LOG_FILE_MODE: u32 = 0o640;
/// Permission bits of log directories daemonic creates: the owner's only.
pub const LOG_DIR_MODE: u32 = 0o700;

/// How rotated log files are compressed.
#[derive(Debug, Clone, Copy, PartialEq, Eq, ValueEnum)]
pub enum LogCompress {
    /// Leave rotated files as they are.
    None,
    /// gzip them (`NAME.STAMP.gz`) on a background thread.
    Gzip,
}

/// Where a supervised child's stdout and stderr go, and how the file rotates.
#[derive(Debug, Clone)]
pub struct LogArgs {
    pub log_file: Option<PathBuf>,
    pub log_stderr_file: Option<PathBuf>,
    pub log_max_size: u64,
    pub log_keep: usize,
    pub log_timestamps: bool,
    pub log_compress: LogCompress,
}

impl Blank for LogArgs {
    fn blank() -> LogArgs {
        LogArgs {
            log_file: None,
            log_stderr_file: None,
            log_max_size: 0,
            log_keep: 0,
            log_timestamps: false,
            log_compress: LogCompress::None,
        }
    }
}

/// The table's entries of the log options.
pub(super) fn options() -> Vec<Opt<LogArgs>> {
    type O = Opt<LogArgs>;
    vec![
        O::one("log-file", "FILE", |a, v| {
            put(&mut a.log_file, Ok(Some(PathBuf::from(v))))
        })
        .systemd(Daemonic)
        .heading("Logs")
        .help(
            "Append the child's stdout and stderr, line by line, to FILE (rotated \
                 beside it: FILE.20250309-140702, …) [default: LOG_DIR/NAME.log, where \
                 LOG_DIR is the state directory if --state-dir/DAEMONIC_STATE_DIR is set, \
                 else /var/log/daemonic for root, else $XDG_STATE_HOME/daemonic/log \
                 (~/.local/state/daemonic/log)]. Missing directories are created (mode \
                 0700); files are created with mode 0640. No symlink in the path is \
                 followed. As root, a log directory not owned by root or writable by group \
                 or others is refused: the service could plant, replace or delete its logs",
        ),
        O::one("log-stderr-file", "FILE", |a, v| {
            put(&mut a.log_stderr_file, Ok(Some(PathBuf::from(v))))
        })
        .systemd(Daemonic)
        .heading("Logs")
        .help(
            "Write the child's stderr to its own FILE (same rotation settings) instead \
                 of interleaving it, line by line, with stdout",
        ),
        O::one("log-max-size", "SIZE", |a, v| {
            put(&mut a.log_max_size, parse_size(v))
        })
        .systemd(Daemonic)
        .default("10M")
        .heading("Logs")
        .help(
            "Rotate the log before it would grow past SIZE (bytes, or with K, M, G: \
                 512K, 10M, 1G; binary multiples). 0 never rotates (for an external \
                 logrotate)",
        ),
        O::one("log-keep", "N", |a, v| put(&mut a.log_keep, parse_keep(v)))
            .systemd(Daemonic)
            .default("5")
            .heading("Logs")
            .help("How many rotated files to keep (the newest); older ones are deleted"),
        O::switch("log-timestamps", |a, v| {
            put(&mut a.log_timestamps, switch(v))
        })
        .systemd(Daemonic)
        .heading("Logs")
        .help(
            "Prefix every line with the time it was read, RFC 3339 UTC with \
                 microseconds and a space: \"2025-03-09T14:07:02.123456Z \"",
        ),
        O::one("log-compress", "HOW", |a, v| {
            put(&mut a.log_compress, choice(v))
        })
        .systemd(Daemonic)
        .default("none")
        .values::<LogCompress>()
        .heading("Logs")
        .help("Compress rotated files, off the supervisor's loop"),
    ]
}

/// How many rotated files to keep: a whole number (the error as clap's for a number).
fn parse_keep(text: &str) -> Result<usize, String> {
    text.parse::<usize>().map_err(|e| e.to_string())
}

/// A resolved log configuration: [`LogArgs`] plus the default path.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct LogConfig {
    /// The active file for stdout (and stderr unless `stderr_path` is set).
    pub path: PathBuf,
    /// A separate active file for stderr.
    pub stderr_path: Option<PathBuf>,
    /// Rotate before the file would grow past this; `None` never rotates.
    pub max_size: Option<u64>,
    /// Rotated files to keep.
    pub keep: usize,
    /// Prefix lines with the time they were read.
    pub timestamps: bool,
    pub compress: LogCompress,
}

impl LogConfig {
    /// `args` with `--log-file` defaulting to `default_path` (see
    /// [`StateDir::log_file`](crate::state_dir::StateDir::log_file)).
    pub fn new(args: &LogArgs, default_path: PathBuf) -> LogConfig {
        LogConfig {
            path: args.log_file.clone().unwrap_or(default_path),
            stderr_path: args.log_stderr_file.clone(),
            max_size: (args.log_max_size > 0).then_some(args.log_max_size),
            keep: args.log_keep,
            timestamps: args.log_timestamps,
            compress: args.log_compress,
        }
    }

    /// Opens (creating it and its directory if needed) the stdout log file.
    pub fn open(&self) -> Result<RotatingWriter> {
        self.open_path(&self.path)
    }

    /// The writer for stderr: its own file if `stderr_path` is set, else `stdout`'s
    /// writer (a clone: one file, lines of the two streams interleaved whole).
    pub fn open_stderr(&self, stdout: &RotatingWriter) -> Result<RotatingWriter> {
        match &self.stderr_path {
            Some(p) => self.open_path(p),
            None => Ok(stdout.clone()),
        }
    }

    /// Creates the log directories and files without opening writers (which start a
    /// thread): a launcher calls this before it forks, so that `Permission denied` (or,
    /// as root, the refusal of a log directory the service could write: see
    /// [`daemonic::logging::LogDir`]) reaches the user's terminal; the detached
    /// supervisor then calls [`open`](Self::open).
    pub fn prepare(&self) -> Result<()> {
        for path in std::iter::once(&self.path).chain(&self.stderr_path) {
            create_dir(path)?;
            daemonic::logging::create_log_file(path, LOG_FILE_MODE)?;
        }
        Ok(())
    }

    fn open_path(&self, path: &Path) -> Result<RotatingWriter> {
        create_dir(path)?;
        let mut b = RotatingWriter::builder(path)
            .flush(Flush::EachWrite)
            .fsync(Fsync::Never)
            .keep_files(self.keep)
            .mode(LOG_FILE_MODE)
            .compress(match self.compress {
                LogCompress::None => Compression::None,
                LogCompress::Gzip => Compression::Gzip,
            })
            // With `EachWrite` the buffer only stages small batches: a batch bigger than
            // it (a pipe's worth of lines) is written straight from the capture's buffer,
            // without a copy.
            .buffer_capacity(4096);
        if let Some(max) = self.max_size {
            b = b.max_size(max);
        }
        // The library's error names the operation and the path.
        Ok(b.open()?)
    }
}

/// Creates the directory of `path` (and its parents) with `LOG_DIR_MODE` if missing.
fn create_dir(path: &Path) -> Result<()> {
    if let Some(dir) = path.parent().filter(|d| !d.as_os_str().is_empty()) {
        std::fs::DirBuilder::new()
            .recursive(true)
            .mode(LOG_DIR_MODE)
            .create(dir)
            .with_context(|| format!("create log directory {}", dir.display()))?;
    }
    Ok(())
}

/// Parses a size: bytes (`1048576`), or a number with `K`, `M`, `G` or `T` (binary
/// multiples; `KiB`, `MB`, lower case also accepted). The error names the value.
pub fn parse_size(text: &str) -> Result<u64, String> {
    let bad = || format!("invalid size {text:?} (expected bytes or e.g. 512K, 10M, 1G)");
    let t = text.trim();
    let split = t.find(|c: char| !c.is_ascii_digit()).unwrap_or(t.len());
    let (number, unit) = t.split_at(split);
    let value: u64 = number.parse().map_err(|_| bad())?;
    let unit = unit.trim().to_ascii_uppercase();
    let unit = unit
        .strip_suffix("IB")
        .or_else(|| unit.strip_suffix('B'))
        .unwrap_or(&unit);
    let shift = match unit {
        "" => 0,
        "K" => 10,
        "M" => 20,
        "G" => 30,
        "T" => 40,
        _ => return Err(bad()),
    };
    value.checked_mul(1 << shift).ok_or_else(bad)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn sizes_as_people_write_them() {
        assert_eq!(parse_size("1048576"), Ok(1 << 20));
        assert_eq!(parse_size("512K"), Ok(512 << 10));
        assert_eq!(parse_size("10M"), Ok(10 << 20));
        assert_eq!(parse_size("10m"), Ok(10 << 20));
        assert_eq!(parse_size("10MiB"), Ok(10 << 20));
        assert_eq!(parse_size("10MB"), Ok(10 << 20));
        assert_eq!(parse_size("1G"), Ok(1 << 30));
        assert_eq!(parse_size("0"), Ok(0));
        for bad in ["", "M", "10X", "1.5M", "-1", "99999999999T", "10 parsecs"] {
            let e = parse_size(bad).unwrap_err();
            assert!(e.contains(&format!("{bad:?}")), "{e}");
        }
    }
}
