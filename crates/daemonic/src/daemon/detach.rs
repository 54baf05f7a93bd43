//! Detaching by the classic double fork (for single-threaded processes).
//!
//! ```text
//! launcher ──fork──▶ intermediate ──setsid, fork──▶ daemon
//!    │                    └─ writes the daemon's pid to a pipe, _exit(0)
//!    └─ subreaper: reaps the intermediate, waits for READY=1 / exit / timeout
//! ```

use std::io::Write;
use std::os::fd::{AsRawFd, OwnedFd};

use nix::unistd::Pid;

use super::setup::{self, Prepared, Streams};
use super::{Daemon, Running, launcher, refuse_threads};
use crate::pidfile::PidFile;
use crate::privileges::Prepared as Switch;
use crate::sys::{self, Forked};
use crate::systemd::notify::{Notifier, State};
use crate::{Error, Result};

/// Exit status of a daemon whose own set-up failed (reported to the launcher first).
const SETUP_FAILED: i32 = crate::EXIT_INTERNAL;

pub(super) fn fork_daemon(d: &Daemon, privileges: Option<Switch>) -> Result<Running> {
    refuse_threads()?;
    let Prepared {
        pid_file,
        listener,
        streams,
        forward,
        pid_r,
        pid_w,
    } = Prepared::new(d)?;

    match sys::fork_single_threaded().map_err(|e| Error::io("fork", e))? {
        Forked::Parent(intermediate) => {
            drop((pid_w, streams));
            launcher::wait(launcher::Wait {
                name: &d.name,
                shown: d.shown,
                timeout: d.ready_timeout,
                listener,
                intermediate,
                pid_pipe: pid_r,
                pid_file,
                forward,
            })
        }
        Forked::Child => {
            drop((pid_r, forward));
            intermediate(pid_w);
            let addr = listener.env_value().to_string();
            drop(listener);
            become_daemon(d, streams, pid_file, &addr, privileges.as_ref())
        }
    }
}

/// In the first child: new session, second fork, report the daemon's pid, exit. Returns
/// only in the daemon (the grandchild).
fn intermediate(pid_w: OwnedFd) {
    let fail = |what: &str, e: &dyn std::fmt::Display| -> ! {
        eprintln!("detach: {what}: {e}");
        sys::exit_immediately(SETUP_FAILED)
    };
    if let Err(e) = nix::unistd::setsid() {
        fail("setsid", &e);
    }
    match sys::fork_single_threaded() {
        Err(e) => fail("fork", &e),
        Ok(Forked::Parent(daemon)) => {
            let mut pipe = std::fs::File::from(pid_w);
            let code = if pipe.write_all(&daemon.as_raw().to_ne_bytes()).is_ok() {
                0
            } else {
                SETUP_FAILED
            };
            sys::exit_immediately(code)
        }
        Ok(Forked::Child) => drop(pid_w),
    }
}

/// In the daemon: set everything up; a failure is told to the launcher, then we exit.
fn become_daemon(
    d: &Daemon,
    streams: Streams,
    pid_file: Option<PidFile>,
    addr: &str,
    privileges: Option<&Switch>,
) -> Result<Running> {
    let notifier = match Notifier::new(addr) {
        Ok(n) => n,
        Err(e) => {
            eprintln!("detach: {e}");
            sys::exit_immediately(SETUP_FAILED)
        }
    };
    let setup = || -> Result<Option<OwnedFd>> {
        nix::unistd::chdir(&d.working_dir)
            .map_err(|e| Error::sys(format!("chdir {}", d.working_dir.display()), e))?;
        nix::sys::stat::umask(d.umask_mode());
        sys::reset_signals(true).map_err(|e| Error::io("reset signal dispositions", e))?;
        let later = streams.install()?;
        let mut keep = setup::kept_fds(d, pid_file.as_ref());
        keep.push(notifier_fd(&notifier));
        keep.extend(later.as_ref().map(AsRawFd::as_raw_fd));
        setup::close_inherited(&keep)?;
        if let Some(p) = &pid_file {
            p.write_pid(Pid::this())?;
        }
        // Last: everything above may need root (the pid file, the streams' files).
        if let Some(p) = privileges {
            p.apply()?;
        }
        Ok(later)
    };
    match setup() {
        Ok(later) => Ok(Running::new(pid_file, Some(notifier), true).with_stderr_later(later)),
        Err(e) => {
            let _ = notifier.notify(&[
                State::Status(&e.to_string()),
                State::Errno(e.os_error().unwrap_or(0)),
            ]);
            sys::exit_immediately(SETUP_FAILED)
        }
    }
}

fn notifier_fd(n: &Notifier) -> std::os::fd::RawFd {
    std::os::fd::AsFd::as_fd(n).as_raw_fd()
}
