//! What both detach paths share: the daemon's standard streams, opened by the launcher
//! (so a bad path is reported in the terminal), and the descriptor clean-up.

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
        let streams = Streams::open(d)?;
        let (pid_r, pid_w) =
            nix::unistd::pipe2(OFlag::O_CLOEXEC).map_err(|e| Error::sys("pipe2", e))?;
        nix::sys::prctl::set_child_subreaper(true)
            .map_err(|e| Error::sys("prctl PR_SET_CHILD_SUBREAPER", e))?;
        Ok(Prepared {
            pid_file,
            listener,
            streams,
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
    pub stderr: File,
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
        })
    }

    /// Puts the streams on descriptors 0, 1 and 2.
    pub fn install(self) -> Result<()> {
        for (file, target) in [(&self.stdin, 0), (&self.stdout, 1), (&self.stderr, 2)] {
            crate::sys::dup_onto(file.as_raw_fd(), target)
                .map_err(|e| Error::io(format!("dup2 onto descriptor {target}"), e))?;
        }
        Ok(())
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
