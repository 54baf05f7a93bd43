//! `daemonic stop NAME`: ask the service's supervisor to stop, and wait until it has.
//!
//! The supervisor is found through its pid file and signalled only if it provably holds
//! the file's lock ([`PidFile::proven_holder`]): the pid is read, a pidfd is opened on it,
//! and only then is that very process seen holding the lock (in its `/proc/PID/fdinfo`);
//! the signal goes through the pidfd. So neither a pid reused by an unrelated process nor
//! one a hostile lock holder wrote into the file is ever signalled — `stop` refuses with
//! an error instead. As root, a pid file that belongs to another user is refused. The supervisor sends the service's stop
//! signal to the child's process group, waits its stop timeout, then SIGKILLs the group.
//! Prints `web: stopped` on success (nothing with `-q`). Stopping a service that ran here
//! but is not running succeeds (with a note on stderr); one that never ran here is an
//! error with the closest name that did.
//!
//! A service of a config file (`daemonic up`) is stopped through its supervisor instead,
//! which goes on supervising the file's other services (`daemonic up NAME` starts it
//! again; `daemonic down NAME` also stops what depends on it first).

use std::time::Duration;

use anyhow::{Result, bail};
use daemonic::pidfile::{Holder, PidFile, Proven};
use daemonic::{ErrorKind, Signal};

use crate::state_dir::{StateDir, check_name};

#[derive(clap::Args, Debug)]
pub struct Args {
    /// The service to stop.
    name: String,
    /// How long to wait for the supervisor to finish stopping before SIGKILLing it.
    #[arg(long, value_parser = crate::duration::parse, default_value = "30s", value_name = "DURATION")]
    timeout: Duration,
    /// Print nothing on success (`web: stopped` otherwise).
    #[arg(short, long)]
    quiet: bool,
}

pub fn run(a: Args, dirs: &StateDir) -> Result<u8> {
    check_name(&a.name)?;
    dirs.ensure()?;
    let path = dirs.pid_file(&a.name);
    let supervisor = match PidFile::proven_holder(&path)? {
        Proven::NotRunning => {
            // A typo must not pass as "already stopped".
            if let Some(why) = crate::query::never_ran(dirs, &a.name) {
                bail!("{}: no such service ({why})", a.name);
            }
            eprintln!("daemonic: {}: not running", a.name);
            return Ok(0);
        }
        Proven::Unproven(None) => bail!(
            "{}: {} is locked but names no pid yet (starting?)",
            a.name,
            path.display()
        ),
        // It has just exited, and released the lock with its life.
        Proven::Unproven(Some(_)) if PidFile::holder(&path)? == Holder::None => return Ok(0),
        Proven::Unproven(Some(pid)) => bail!(
            "{}: {} is locked, but not by pid {pid} that it names (the holder wrote another \
             process's pid, or the process has just exited); nothing was signalled",
            a.name,
            path.display()
        ),
        Proven::Holder(supervisor) => supervisor,
    };
    let pid = supervisor.pid();
    // A service of a config file shares its supervisor with the others: only the service
    // is stopped, through the supervisor (which answers once it has stopped).
    if let Ok(Some(info)) = crate::query::service(dirs, &a.name)
        && info.group.is_some()
    {
        let request = crate::control::Request::Stop {
            name: a.name.clone(),
        };
        let code = super::ask(dirs, &a.name, &request, a.timeout)?;
        if !a.quiet {
            println!("{}: stopped", a.name);
        }
        return Ok(code);
    }
    match supervisor.signal(Signal::SIGTERM) {
        Err(e) if e.kind() == ErrorKind::Io && e.os_error() == Some(libc::ESRCH) => return Ok(0),
        other => other?,
    }
    if supervisor.wait_exit(a.timeout)? {
        if !a.quiet {
            println!("{}: stopped", a.name);
        }
        return Ok(0);
    }
    let _ = supervisor.signal(Signal::SIGKILL);
    bail!(
        "{}: supervisor (pid {pid}) did not stop within {:?}; killed it (its child is killed by the kernel with it)",
        a.name,
        a.timeout
    )
}
