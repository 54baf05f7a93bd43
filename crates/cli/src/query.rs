//! What runs, as `status` and `list` see it.
//!
//! A service runs while its pid file is locked — that, not the socket, is the truth. Its
//! supervisor is asked through its control socket; while it cannot answer yet (the pid
//! file is locked but nothing listens on the socket, as while a supervisor starts), the
//! service is described from its status file instead, so a service that is still starting
//! shows as `starting`. A socket nobody answers whose pid file is not locked was left by a
//! supervisor that was killed: it is removed (see `remove_stale_socket`), or skipped with a
//! note on stderr when that cannot be proven safe.
//!
//! Nothing here is trusted before it is checked: the state directory first
//! ([`StateDir::ensure`]), then each supervisor's credentials on its socket (the client
//! refuses a listener that is neither this user nor root). The pids shown are for
//! reading; `stop` proves the holder before it signals one.

use std::collections::{BTreeMap, BTreeSet};
use std::time::Duration;

use anyhow::{Context, Result, bail};
use daemonic::Pid;
use daemonic::pidfile::{Holder, PidFile};

use crate::control::{self, ForeignServer, NotListening, Request, Response, ServiceInfo};
use crate::state_dir::{StateDir, check_name};
use crate::supervisor::status_file;

/// How long one supervisor has to answer.
pub const TIMEOUT: Duration = Duration::from_secs(5);

/// The service `name`, or `None` if it is not running.
pub fn service(dirs: &StateDir, name: &str) -> Result<Option<ServiceInfo>> {
    dirs.ensure()?;
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
        // It was ending while we asked (the connection broke as it closed): not running,
        // once it has let go of its pid file.
        Err(_) if ended_soon(dirs, name) => Ok(None),
        Err(e) => Err(e),
    }
}

/// Whether `name`'s supervisor releases its pid file within a second (it is on its way out
/// when a request's connection breaks).
fn ended_soon(dirs: &StateDir, name: &str) -> bool {
    let deadline = std::time::Instant::now() + Duration::from_secs(1);
    loop {
        if matches!(locked(dirs, name), Ok(false)) {
            return true;
        }
        if std::time::Instant::now() >= deadline {
            return false;
        }
        std::thread::sleep(Duration::from_millis(10));
    }
}

/// If `name` never ran in this state directory (no pid file, socket or status file of it):
/// why not, with the closest name that did (`never started in /run/daemonic; did you mean
/// `web`?`). `None` if it ran here once.
pub fn never_ran(dirs: &StateDir, name: &str) -> Option<String> {
    let traces = [
        dirs.pid_file(name),
        dirs.control_socket(name),
        dirs.status_file(name),
    ];
    if traces.iter().any(|p| std::fs::symlink_metadata(p).is_ok()) {
        return None;
    }
    let known = names(dirs).unwrap_or_default();
    let hint = crate::config::diagnostic::did_you_mean(name, known.iter().map(String::as_str));
    Some(format!(
        "never started in {}{}",
        dirs.path().display(),
        hint.map_or(String::new(), |h| format!("; {h}"))
    ))
}

/// Every running service in the state directory, sorted by name.
pub fn all(dirs: &StateDir) -> Result<Vec<ServiceInfo>> {
    dirs.ensure()?;
    let mut found = BTreeMap::new();
    // Services whose socket is served by another user: not described at all.
    let mut refused = BTreeSet::new();
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
                if !locked(dirs, name)? && !remove_stale_socket(dirs, name) {
                    eprintln!("daemonic: skipping {}: {e}", path.display());
                }
            }
            Err(e) if e.is::<ForeignServer>() => {
                eprintln!("daemonic: skipping {name}: {e}");
                refused.insert(name);
            }
            Err(e) => eprintln!("daemonic: skipping {}: {e:#}", path.display()),
        }
    }
    for name in &names {
        if found.contains_key(name) || refused.contains(name) {
            continue;
        }
        if let Holder::Locked(supervisor) = PidFile::holder(dirs.pid_file(name))? {
            found.insert(name.clone(), from_status_file(dirs, name, supervisor));
        }
    }
    Ok(found.into_values().collect())
}

/// The services that ran in this state directory and are not running now, from the last
/// snapshot each supervisor left (`stopped`, `exited`, `gave-up`); one whose snapshot
/// still says it was running had its supervisor killed: `dead`.
pub fn ended(dirs: &StateDir) -> Result<Vec<ServiceInfo>> {
    dirs.ensure()?;
    let mut ended = Vec::new();
    for name in names(dirs)? {
        if locked(dirs, &name)? || std::fs::symlink_metadata(dirs.status_file(&name)).is_err() {
            continue;
        }
        let mut info = from_status_file(dirs, &name, None);
        if !matches!(
            info.state.as_str(),
            "stopped" | "exited" | "gave-up" | "completed"
        ) {
            info.state = "dead".into();
            info.last_exit = Some("its supervisor was killed".into());
        }
        // What was running is gone: no pid, no usage.
        (info.pid, info.cpu_ms, info.rss_bytes, info.supervisor_pid) = (None, None, None, 0);
        ended.push(info);
    }
    Ok(ended)
}

/// The service names that have a socket, a pid file or a status file in the state
/// directory.
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
            .or_else(|| file.strip_suffix(".pid"))
            .or_else(|| file.strip_suffix(".status"));
        if let Some(name) = stem.filter(|n| check_name(n).is_ok()) {
            names.insert(name.to_string());
        }
    }
    Ok(names)
}

/// Removes `name`'s control socket if it is provably stale: nobody holds its pid file.
/// Proven while holding a shared lock on the pid file — created for the purpose if a killed
/// supervisor's launcher removed it, and then removed again — so that a supervisor
/// starting at this moment cannot bind a new socket in between: it takes the pid file's
/// exclusive lock before it binds, and retries past a shared lock (see
/// `daemonic::PidFile::lock`). Only a socket of ours is removed. True if it was removed
/// (left by a supervisor that was SIGKILLed before it could clean up: `start` timed out).
fn remove_stale_socket(dirs: &StateDir, name: &str) -> bool {
    use nix::fcntl::{Flock, FlockArg};
    use std::os::unix::fs::{FileTypeExt, MetadataExt, OpenOptionsExt};
    let path = dirs.pid_file(name);
    let existed = std::fs::symlink_metadata(&path).is_ok();
    let Ok(pid_file) = std::fs::OpenOptions::new()
        .read(true)
        .write(true)
        .create(true)
        .mode(0o644)
        .custom_flags(libc::O_NOFOLLOW)
        .open(&path)
    else {
        return false;
    };
    let Ok(not_running) = Flock::lock(pid_file, FlockArg::LockSharedNonblock) else {
        return false;
    };
    // The path must still name the file we locked (a starter may have replaced it).
    let same = |m: &std::fs::Metadata| {
        not_running
            .metadata()
            .is_ok_and(|ours| ours.dev() == m.dev() && ours.ino() == m.ino())
    };
    if !std::fs::symlink_metadata(&path).is_ok_and(|m| same(&m)) {
        return false;
    }
    let socket = dirs.control_socket(name);
    let ours = std::fs::symlink_metadata(&socket)
        .is_ok_and(|m| m.file_type().is_socket() && m.uid() == nix::unistd::geteuid().as_raw());
    let removed = ours && std::fs::remove_file(&socket).is_ok();
    if !existed {
        // Still under our lock, and only if the path still names our file.
        if std::fs::symlink_metadata(&path).is_ok_and(|m| same(&m)) {
            let _ = std::fs::remove_file(&path);
        }
    }
    removed
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
        ready: get("ready") == Some("true"),
        ..get("cgroup")
            .map(|d| crate::supervisor::containment::describe_dir(std::path::Path::new(d)))
            .unwrap_or_default()
    }
}
