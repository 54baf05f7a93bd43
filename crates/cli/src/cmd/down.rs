//! `daemonic down [-f FILE] [NAME…]`: stop the services of a config file, dependents
//! first; without NAMEs every service, and then its supervisor. With NAMEs, the services
//! that depend on them are stopped too (first).
//!
//! Returns once they have stopped (or --timeout passed: exit status 124). Succeeds with a
//! note when nothing of the file runs.

use std::collections::BTreeMap;
use std::path::PathBuf;
use std::time::Duration;

use anyhow::{Result, bail};
use daemonic::pidfile::{Holder, PidFile};

use crate::config;
use crate::control::{self, Request, Response};
use crate::progress::{self, Goal, Style};
use crate::state_dir::StateDir;

#[derive(clap::Args, Debug)]
pub struct Args {
    /// The config file.
    #[arg(short = 'f', long = "file", default_value = config::DEFAULT_FILE, value_name = "FILE")]
    file: PathBuf,
    /// How long to wait for the services to stop.
    #[arg(long, value_parser = crate::duration::parse, default_value = "60s", value_name = "DURATION")]
    timeout: Duration,
    /// Show progress as JSON lines (one object per change of a service).
    #[arg(long)]
    json: bool,
    /// Services to stop (with what depends on them) [default: all].
    #[arg(value_name = "NAME")]
    names: Vec<String>,
}

pub fn run(a: Args, dirs: &StateDir) -> Result<u8> {
    let config = config::load(&a.file)?;
    // A typo is an error even when nothing runs (with the file's did-you-mean).
    config.with_dependencies(&a.names)?;
    dirs.ensure()?;
    let (pid_file, socket) = dirs.group_files(&config.id)?;
    if PidFile::holder(&pid_file)? == Holder::None {
        eprintln!("daemonic: {}: not running", config.project);
        return Ok(0);
    }
    let request = Request::Down {
        names: a.names.clone(),
    };
    let names: Vec<String> = match control::call(&socket, &request, crate::query::TIMEOUT)? {
        // Dependents first, as they stop.
        Response::Done(text) => text
            .strip_prefix("stopping:")
            .unwrap_or("")
            .split_whitespace()
            .rev()
            .map(str::to_string)
            .collect(),
        Response::Error(why) => bail!("{why}"),
        Response::Services(_) => bail!("{}: unexpected answer to down", socket.display()),
    };
    let deps: BTreeMap<String, Vec<String>> = BTreeMap::new();
    let style = Style::pick(a.json);
    let code = progress::follow(
        &socket,
        &pid_file,
        &names,
        &deps,
        Goal::Down,
        a.timeout,
        style,
    )?;
    if code == 0 && a.names.is_empty() {
        // Every service has stopped; the supervisor ends now (it releases its pid file).
        wait_unlocked(&pid_file, a.timeout);
    }
    Ok(code)
}

/// Waits (up to `limit`) for the supervisor to release its pid file.
fn wait_unlocked(pid_file: &std::path::Path, limit: Duration) {
    let deadline = std::time::Instant::now() + limit;
    while std::time::Instant::now() < deadline {
        if matches!(PidFile::holder(pid_file), Ok(Holder::None)) {
            return;
        }
        std::thread::sleep(Duration::from_millis(20));
    }
}
