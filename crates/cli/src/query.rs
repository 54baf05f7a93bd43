//! What runs, as `status` and `list` see it.
//!
//! A service runs while its pid file is locked — that, not the socket, is the truth. Its
//! supervisor is asked through its control socket; while it cannot answer yet (the pid
//! file is locked but nothing listens on the socket, as while a supervisor starts), the
//! service is described from its status file instead, so a service that is still starting
//! shows as `starting`. A socket nobody answers whose pid file is not locked was left by a
//! supervisor that was killed: it is skipped with a note on stderr.

use std::collections::{BTreeMap, BTreeSet};
use std::time::Duration;

use anyhow::{Context, Result, bail};
use daemonic::Pid;
use daemonic::pidfile::{Holder, PidFile};

use crate::control::{self, NotListening, Request, Response, ServiceInfo};
use crate::state_dir::{StateDir, check_name};
use crate::supervisor::status_file;

/// How long one supervisor has to answer.
pub const TIMEOUT: Duration = Duration::from_secs(5);

/// The service `name`, or `None` if it is not running.
pub fn service(dirs: &StateDir, name: &str) -> Result<Option<ServiceInfo>> {
    let Holder::Locked(supervisor) = PidFile::holder(dirs.pid_file(name))? else {
        return Ok(None);
    };
    let request = Request::Status {
        name: Some(name.to_string()),
    };
    match control::call(&dirs.control_socket(name), &request, TIMEOUT) {
        Ok(Response::Services(list)) => match list.into_iter().find(|s| s.name == name) {
            Some(info) => Ok(Some(info)),
            None => bail!("{name}: its supervisor does not report it"),
        },
        Ok(Response::Error(why)) => bail!("{name}: {why}"),
        Ok(Response::Done(_)) => bail!("{name}: unexpected answer to status"),
        Err(e) if e.is::<NotListening>() => Ok(Some(from_status_file(dirs, name, supervisor))),
        Err(e) => Err(e),
    }
}

/// Every running service in the state directory, sorted by name.
pub fn all(dirs: &StateDir) -> Result<Vec<ServiceInfo>> {
    let mut found = BTreeMap::new();
    let names = names(dirs)?;
    for name in &names {
        let path = dirs.control_socket(name);
        // A service of a config file was listed with the others of its supervisor.
        if found.contains_key(name) || !path.exists() {
            continue;
        }
        match control::call(&path, &Request::List, TIMEOUT) {
            Ok(Response::Services(list)) => {
                found.extend(list.into_iter().map(|s| (s.name.clone(), s)));
            }
            Ok(Response::Error(why)) => eprintln!("daemonic: {}: {why}", path.display()),
            Ok(Response::Done(_)) => {
                eprintln!("daemonic: {}: unexpected answer to list", path.display())
            }
            Err(e) if e.is::<NotListening>() => {
                if !locked(dirs, name)? {
                    eprintln!("daemonic: skipping {}: {e}", path.display());
                }
            }
            Err(e) => eprintln!("daemonic: skipping {}: {e:#}", path.display()),
        }
    }
    for name in &names {
        if found.contains_key(name) {
            continue;
        }
        if let Holder::Locked(supervisor) = PidFile::holder(dirs.pid_file(name))? {
            found.insert(name.clone(), from_status_file(dirs, name, supervisor));
        }
    }
    Ok(found.into_values().collect())
}

/// The service names that have a socket or a pid file in the state directory.
fn names(dirs: &StateDir) -> Result<BTreeSet<String>> {
    let entries = match std::fs::read_dir(dirs.path()) {
        Ok(entries) => entries,
        Err(e) if e.kind() == std::io::ErrorKind::NotFound => return Ok(BTreeSet::new()),
        Err(e) => {
            return Err(e)
                .with_context(|| format!("read state directory {}", dirs.path().display()));
        }
    };
    let mut names = BTreeSet::new();
    for entry in entries {
        let entry =
            entry.with_context(|| format!("read state directory {}", dirs.path().display()))?;
        let file = entry.file_name();
        let Some(file) = file.to_str() else { continue };
        let stem = file
            .strip_suffix(".sock")
            .or_else(|| file.strip_suffix(".pid"));
        if let Some(name) = stem.filter(|n| check_name(n).is_ok()) {
            names.insert(name.to_string());
        }
    }
    Ok(names)
}

fn locked(dirs: &StateDir, name: &str) -> Result<bool> {
    Ok(matches!(
        PidFile::holder(dirs.pid_file(name))?,
        Holder::Locked(_)
    ))
}

/// The service as its status file describes it (what `status` showed before the control
/// socket); a missing file means the supervisor has not written one yet: `starting`.
fn from_status_file(dirs: &StateDir, name: &str, supervisor: Option<Pid>) -> ServiceInfo {
    let fields = status_file::read(&dirs.status_file(name)).unwrap_or_default();
    let get = |k: &str| status_file::field(&fields, k);
    let num = |k: &str| get(k).and_then(|v| v.parse::<u64>().ok());
    let pid = get("pid").and_then(|p| p.parse::<i32>().ok());
    let usage = pid.and_then(|p| crate::usage::of(Pid::from_raw(p)));
    ServiceInfo {
        name: name.to_string(),
        state: get("state").unwrap_or("starting").to_string(),
        pid,
        supervisor_pid: supervisor
            .map(Pid::as_raw)
            .or_else(|| get("supervisor_pid").and_then(|p| p.parse().ok()))
            .unwrap_or(0),
        since_unix: num("since").unwrap_or(0),
        restarts: get("restarts").and_then(|n| n.parse().ok()).unwrap_or(0),
        last_exit: get("last_exit").map(str::to_string),
        next_delay_ms: num("next_delay_ms"),
        delays_ms: get("delays_ms")
            .unwrap_or("")
            .split(',')
            .filter_map(|d| d.parse().ok())
            .collect(),
        status: get("status").unwrap_or("").to_string(),
        cpu_ms: usage.map(|u| u.cpu_ms),
        rss_bytes: usage.map(|u| u.rss_bytes),
        log_file: None,
        group: None,
        health: None,
        ..get("cgroup")
            .map(|d| crate::supervisor::containment::describe_dir(std::path::Path::new(d)))
            .unwrap_or_default()
    }
}
