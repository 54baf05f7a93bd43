//! What both detach paths share: the daemon's standard streams, opened by the launcher
//! (so a bad path is reported in the terminal), and the descriptor clean-up.
//!
//! With [`Daemon::forward_stderr`] (the default) and stderr to `/dev/null`, the daemon's
//! stderr is first a pipe to the launcher ([`Streams::stderr`] is its write end,
//! [`Forward::Pipe`] the launcher's read end); `/dev/null` waits in
//! [`Streams::stderr_later`] until `ready()` puts it on descriptor 2. So what the daemon
//! writes while starting — an error returned from `main` — reaches the terminal that is
//! waiting. With stderr to a file, the file gets everything in order, and the launcher
//! shows what the daemon appended to it if the start fails ([`Forward::File`]).

use std::fs::{File, OpenOptions};
use std::os::fd::{AsRawFd, OwnedFd, RawFd};

use nix::fcntl::OFlag;
use std::os::unix::fs::OpenOptionsExt;

use super::{Daemon, Output};
use crate::pidfile::PidFile;
use crate::systemd::listen::NotifyListener;
use crate::{Error, Result};

/// What the launcher sets up before detaching, whichever way it detaches: the locked pid
/// file, the notify socket it waits on, the daemon's streams, and the pipe on which the
/// intermediate process reports the daemon's pid. The launcher becomes a child subreaper,
/// so the daemon (its grandchild) is re-parented to it.
pub(super) struct Prepared {
    pub pid_file: Option<PidFile>,
    pub listener: NotifyListener,
    pub streams: Streams,
    /// The launcher's end of the daemon's stderr until ready ([`Daemon::forward_stderr`]).
    pub forward: Option<Forward>,
    pub pid_r: OwnedFd,
    pub pid_w: OwnedFd,
}

impl Prepared {
    pub fn new(d: &Daemon) -> Result<Prepared> {
        let pid_file = d
            .pid_file
            .as_deref()
            .map(|p| PidFile::lock_unwritten(p, d.pid_file_mode))
            .transpose()?;
        let listener = NotifyListener::bind_private()?;
        listener.set_nonblocking(true)?;
        let mut streams = Streams::open(d)?;
        let forward = match d.forward_stderr {
            true => streams.forward_stderr(d)?,
            false => None,
        };
        let (pid_r, pid_w) =
            nix::unistd::pipe2(OFlag::O_CLOEXEC).map_err(|e| Error::sys("pipe2", e))?;
        nix::sys::prctl::set_child_subreaper(true)
            .map_err(|e| Error::sys("prctl PR_SET_CHILD_SUBREAPER", e))?;
        Ok(Prepared {
            pid_file,
            listener,
            streams,
            forward,
            pid_r,
            pid_w,
        })
    }
}

/// The daemon's stdin, stdout and stderr, opened before detaching.
#[derive(Debug)]
pub(super) struct Streams {
    pub stdin: File,
    pub stdout: File,
    /// Descriptor 2 until ready: the configured stderr, or the pipe to the launcher.
    pub stderr: File,
    /// When stderr is forwarded: the configured stderr, put on descriptor 2 by `ready()`.
    pub stderr_later: Option<File>,
}

/// The launcher's side of a forwarded stderr.
#[derive(Debug)]
pub(super) enum Forward {
    /// The read end of the daemon's stderr until ready.
    Pipe(OwnedFd),
    /// The daemon's stderr file, and its size when the daemon was started: what lies
    /// beyond is this start's.
    File(File, u64),
}

impl Streams {
    pub fn open(d: &Daemon) -> Result<Streams> {
        let null = |write: bool| {
            OpenOptions::new()
                .read(!write)
                .write(write)
                .open("/dev/null")
                .map_err(|e| Error::io("open /dev/null", e))
        };
        let out = |o: &Output| match o {
            Output::Null => null(true),
            Output::File { path, mode } => OpenOptions::new()
                .append(true)
                .create(true)
                .mode(*mode)
                .custom_flags(libc::O_NOFOLLOW)
                .open(path)
                .map_err(|e| Error::io(format!("open {}", path.display()), e)),
        };
        Ok(Streams {
            stdin: null(false)?,
            stdout: out(&d.stdout)?,
            stderr: out(&d.stderr)?,
            stderr_later: None,
        })
    }

    /// Forwards stderr to the launcher until ready (see the module docs); returns the
    /// launcher's side (none for a stderr file that is not a regular file: a terminal or
    /// a FIFO is not read back).
    pub fn forward_stderr(&mut self, d: &Daemon) -> Result<Option<Forward>> {
        if let Output::File { path, .. } = &d.stderr {
            if !self.stderr.metadata().is_ok_and(|m| m.is_file()) {
                return Ok(None);
            }
            // A description of its own, for reading: the same file, whatever the path
            // names by the time the launcher reads it.
            let fd = self.stderr.as_raw_fd();
            let file = File::open(format!("/proc/self/fd/{fd}"))
                .map_err(|e| Error::io(format!("reopen {} for reading", path.display()), e))?;
            let size = file.metadata().map_or(0, |m| m.len());
            return Ok(Some(Forward::File(file, size)));
        }
        let (r, w) = nix::unistd::pipe2(OFlag::O_CLOEXEC).map_err(|e| Error::sys("pipe2", e))?;
        nix::fcntl::fcntl(&r, nix::fcntl::FcntlArg::F_SETFL(OFlag::O_NONBLOCK))
            .map_err(|e| Error::sys("fcntl O_NONBLOCK", e))?;
        let later = std::mem::replace(&mut self.stderr, File::from(w));
        self.stderr_later = Some(later);
        Ok(Some(Forward::Pipe(r)))
    }

    /// Puts the streams on descriptors 0, 1 and 2; returns the stderr for later, which
    /// the daemon keeps until it is ready.
    pub fn install(self) -> Result<Option<OwnedFd>> {
        for (file, target) in [(&self.stdin, 0), (&self.stdout, 1), (&self.stderr, 2)] {
            crate::sys::dup_onto(file.as_raw_fd(), target)
                .map_err(|e| Error::io(format!("dup2 onto descriptor {target}"), e))?;
        }
        Ok(self.stderr_later.map(OwnedFd::from))
    }
}

/// Closes every descriptor above 2 except `keep`.
///
/// Runs in a freshly forked, single-threaded daemon in which no Rust object owns any of
/// the closed descriptors (the launcher's objects were dropped or forgotten before).
pub(super) fn close_inherited(keep: &[RawFd]) -> Result<()> {
    let mut keep = keep.to_vec();
    keep.sort_unstable();
    crate::sys::close_all_but(&keep).map_err(|e| Error::io("close inherited descriptors", e))
}

/// The descriptors a daemon keeps besides 0–2: the caller's and the pid file's.
pub(super) fn kept_fds(d: &Daemon, pid_file: Option<&impl AsRawFd>) -> Vec<RawFd> {
    let mut keep = d.keep_fds.clone();
    keep.extend(pid_file.map(AsRawFd::as_raw_fd));
    keep
}
