//! `daemonic status NAME`: whether the service runs, its state, pids and uptime, and its
//! restarts (count, last exit, the delay being waited out).
//!
//! Running means "its pid file is locked"; the details come from the status file the
//! supervisor keeps. Exit status 0 if running, 3 if not (as LSB init scripts).

use std::time::{SystemTime, UNIX_EPOCH};

use anyhow::Result;
use daemonic::pidfile::{Holder, PidFile};

use crate::EXIT_NOT_RUNNING;
use crate::state_dir::{StateDir, check_name};
use crate::supervisor::status_file;

#[derive(clap::Args, Debug)]
pub struct Args {
    /// The service to show.
    name: String,
}

pub fn run(a: Args, dirs: &StateDir) -> Result<u8> {
    check_name(&a.name)?;
    let supervisor = match PidFile::holder(dirs.pid_file(&a.name))? {
        Holder::None => {
            println!("{}: not running", a.name);
            return Ok(EXIT_NOT_RUNNING);
        }
        Holder::Locked(pid) => pid,
    };
    let fields = status_file::read(&dirs.status_file(&a.name)).unwrap_or_default();
    let get = |k: &str| {
        fields
            .iter()
            .find(|(key, _)| key == k)
            .map(|(_, v)| v.as_str())
    };
    let state = get("state").unwrap_or("starting");
    let mut line = format!("{}: {state}", a.name);
    if let Some(pid) = get("pid") {
        line += &format!(", pid {pid}");
    }
    if let Some(sup) = supervisor {
        line += &format!(" (supervisor {sup})");
    }
    if let Some(since) = get("since").and_then(|s| s.parse::<u64>().ok()) {
        let now = SystemTime::now()
            .duration_since(UNIX_EPOCH)
            .map(|d| d.as_secs())
            .unwrap_or(since);
        line += &format!(", {state} for {}", human(now.saturating_sub(since)));
    }
    if let Some(n) = get("restarts").filter(|n| *n != "0") {
        line += &format!(", restarts {n}");
    }
    if let Some(exit) = get("last_exit") {
        line += &format!(", last {exit}");
    }
    if let Some(ms) = get("next_delay_ms") {
        line += &format!(", next start after {ms}ms");
    }
    if let Some(status) = get("status").filter(|s| !s.is_empty()) {
        line += &format!("; status: {status}");
    }
    println!("{line}");
    Ok(0)
}

fn human(secs: u64) -> String {
    match secs {
        s if s < 120 => format!("{s}s"),
        s if s < 7200 => format!("{}m", s / 60),
        s if s < 172_800 => format!("{}h", s / 3600),
        s => format!("{}d", s / 86400),
    }
}
