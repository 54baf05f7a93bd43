//! `daemonic restart NAME`: ask the service's supervisor, through its control socket, to
//! stop the program and start it again.
//!
//! Silent on success; on failure the supervisor's reason (or why it could not be asked) on
//! stderr and exit status 1.

use std::time::Duration;

use anyhow::Result;

use crate::control::Request;
use crate::state_dir::StateDir;

#[derive(clap::Args, Debug)]
pub struct Args {
    /// The service to restart.
    name: String,
    /// How long to wait for the supervisor's answer.
    #[arg(long, value_parser = crate::duration::parse, default_value = "30s", value_name = "DURATION")]
    timeout: Duration,
}

pub fn run(a: Args, dirs: &StateDir) -> Result<u8> {
    let request = Request::Restart {
        name: a.name.clone(),
    };
    super::ask(dirs, &a.name, &request, a.timeout)
}
