//! `daemonic reload NAME`: ask the service's supervisor, through its control socket, to
//! make the program reload (it sends the service's `--reload-signal`, SIGHUP by default).
//!
//! Silent on success; on failure the supervisor's reason (or why it could not be asked) on
//! stderr and exit status 1.

use anyhow::Result;

use crate::control::Request;
use crate::state_dir::StateDir;

#[derive(clap::Args, Debug)]
pub struct Args {
    /// The service to reload.
    name: String,
}

pub fn run(a: Args, dirs: &StateDir) -> Result<u8> {
    let request = Request::Reload {
        name: a.name.clone(),
    };
    super::ask(dirs, &a.name, &request, super::ANSWER_TIMEOUT)
}
