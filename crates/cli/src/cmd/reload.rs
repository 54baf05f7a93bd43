//! `daemonic reload NAME`: ask the service's supervisor, through its control socket, to
//! make the program reload (it sends the service's `--reload-signal`, SIGHUP by default).
//!
//! Silent on success; on failure the supervisor's reason (or why it could not be asked) on
//! stderr and exit status 1. With `--wait`, returns when the program says its reload is
//! over (`RELOADING=1` with `MONOTONIC_USEC`, then `READY=1`: what `systemctl reload`
//! waits for with `Type=notify-reload`), or fails after `--timeout`.

use std::time::Duration;

use anyhow::Result;

use crate::control::Request;
use crate::state_dir::StateDir;

#[derive(clap::Args, Debug)]
pub struct Args {
    /// The service to reload.
    name: String,
    /// Wait until the program has reloaded: it sends RELOADING=1 (with MONOTONIC_USEC)
    /// and then READY=1 over $NOTIFY_SOCKET, as systemd's Type=notify-reload services do.
    #[arg(long)]
    wait: bool,
    /// How long --wait waits (then exit status 1; the reload itself goes on).
    #[arg(long, value_parser = crate::duration::parse_positive, default_value = "90s", value_name = "DURATION", requires = "wait")]
    timeout: Duration,
}

pub fn run(a: Args, dirs: &StateDir) -> Result<u8> {
    let request = Request::Reload {
        name: a.name.clone(),
        wait: a.wait,
    };
    let timeout = if a.wait {
        a.timeout
    } else {
        super::ANSWER_TIMEOUT
    };
    super::ask(dirs, &a.name, &request, timeout)
}
