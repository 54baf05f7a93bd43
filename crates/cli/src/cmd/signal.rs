//! `daemonic signal NAME SIGNAL`: have the service's supervisor send SIGNAL to the program.
//!
//! The supervisor sends it, not this command: it holds the program's pidfd, so the signal
//! can only reach that process, never one that reused its pid. Silent on success; on
//! failure the supervisor's reason (or why it could not be asked) on stderr and exit
//! status 1.

use anyhow::Result;
use daemonic::Signal;

use crate::control::Request;
use crate::service::parse_signal;
use crate::state_dir::StateDir;

#[derive(clap::Args, Debug)]
pub struct Args {
    /// The service to signal.
    name: String,
    /// The signal: a name (TERM, SIGUSR1, hup) or a number (15).
    #[arg(value_parser = parse_signal)]
    signal: Signal,
}

pub fn run(a: Args, dirs: &StateDir) -> Result<u8> {
    let request = Request::Signal {
        name: a.name.clone(),
        signal: a.signal,
    };
    super::ask(dirs, &a.name, &request, super::ANSWER_TIMEOUT)
}
