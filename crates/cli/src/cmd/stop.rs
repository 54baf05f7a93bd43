//! `daemonic stop NAME`: ask the service's supervisor to stop, and wait until it has.
//!
//! The supervisor is found through its pid file and signalled only while it provably
//! holds the file's lock: the pid is read, a pidfd is opened on it, and the lock holder is
//! checked again *after* opening; the signal then goes through the pidfd, so a pid reused
//! by an unrelated process is never signalled. The supervisor sends the service's stop
//! signal to the child's process group, waits its stop timeout, then SIGKILLs the group.
//! Stopping a service that is not running succeeds (with a note on stderr).
//!
//! A service of a config file (`daemonic up`) is stopped through its supervisor instead,
//! which goes on supervising the file's other services (`daemonic up NAME` starts it
//! again; `daemonic down NAME` also stops what depends on it first).

use std::time::Duration;

use anyhow::{Result, bail};
use daemonic::pidfile::{Holder, PidFile};
use daemonic::process::PidFd;
use daemonic::{ErrorKind, Signal};

use crate::state_dir::{StateDir, check_name};

#[derive(clap::Args, Debug)]
pub struct Args {
    /// The service to stop.
    name: String,
    /// How long to wait for the supervisor to finish stopping before SIGKILLing it.
    #[arg(long, value_parser = crate::duration::parse, default_value = "30s", value_name = "DURATION")]
    timeout: Duration,
}

pub fn run(a: Args, dirs: &StateDir) -> Result<u8> {
    check_name(&a.name)?;
    let path = dirs.pid_file(&a.name);
    let pid = match PidFile::holder(&path)? {
        Holder::None => {
            eprintln!("daemonic: {}: not running", a.name);
            return Ok(0);
        }
        Holder::Locked(None) => bail!(
            "{}: {} is locked but names no pid yet (starting?)",
            a.name,
            path.display()
        ),
        Holder::Locked(Some(pid)) => pid,
    };
    // A service of a config file shares its supervisor with the others: only the service
    // is stopped, through the supervisor (which answers once it has stopped).
    if let Ok(Some(info)) = crate::query::service(dirs, &a.name)
        && info.group.is_some()
    {
        let request = crate::control::Request::Stop {
            name: a.name.clone(),
        };
        return super::ask(dirs, &a.name, &request, a.timeout);
    }
    let supervisor = match PidFd::open(pid) {
        Ok(h) => h,
        Err(e) if e.os_error() == Some(libc::ESRCH) => return Ok(0),
        Err(e) => return Err(e.into()),
    };
    // Only now is it sure that the handle is the lock holder, not a process that got the
    // pid after the holder exited.
    if PidFile::holder(&path)? != Holder::Locked(Some(pid)) {
        eprintln!("daemonic: {}: not running", a.name);
        return Ok(0);
    }
    match supervisor.signal(Signal::SIGTERM) {
        Err(e) if e.kind() == ErrorKind::Io && e.os_error() == Some(libc::ESRCH) => return Ok(0),
        other => other?,
    }
    if supervisor.wait_exit(a.timeout)? {
        return Ok(0);
    }
    let _ = supervisor.signal(Signal::SIGKILL);
    bail!(
        "{}: supervisor (pid {pid}) did not stop within {:?}; killed it (its child is killed by the kernel with it)",
        a.name,
        a.timeout
    )
}
