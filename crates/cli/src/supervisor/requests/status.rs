//! `status [NAME]` and `list`: what the units are doing, with the child's CPU and memory.

use std::time::UNIX_EPOCH;

use super::Answer;
use crate::control::{Response, ServiceInfo};
use crate::supervisor::proc_table::ProcTable;
use crate::supervisor::units::UnitId;
use crate::supervisor::{State, Supervisor};

pub fn all(sup: &Supervisor) -> Answer {
    // An old version being replaced is not shown beside its replacement.
    let shown = sup
        .units
        .iter()
        .filter(|(id, m)| sup.units.newest(m.unit.name()) == Some(*id));
    let ids: Vec<UnitId> = shown.map(|(id, _)| id).collect();
    let procs = proc_table(sup, &ids);
    Answer::Now(Response::Services(
        ids.into_iter().map(|id| info(sup, id, &procs)).collect(),
    ))
}

pub fn one(sup: &Supervisor, i: UnitId) -> Answer {
    let procs = proc_table(sup, &[i]);
    Answer::Now(Response::Services(vec![info(sup, i, &procs)]))
}

/// `/proc` read once for the units of `ids` that have no cgroup (none: not read).
fn proc_table(sup: &Supervisor, ids: &[UnitId]) -> ProcTable {
    if ids.iter().all(|&i| sup.units[i].unit.cgroup().is_some()) {
        return ProcTable::default();
    }
    ProcTable::read()
}

fn info(sup: &Supervisor, i: UnitId, procs: &ProcTable) -> ServiceInfo {
    let u = &sup.units[i].unit;
    let (shown, why) = sup.shown_state(i);
    let state = u.state();
    let delays: Vec<u64> = u.machine().delays().map(|d| d.as_millis() as u64).collect();
    let usage = u.pid().and_then(crate::usage::of);
    let mut status = why.unwrap_or_else(|| u.status_text.clone());
    if status.is_empty()
        && state == State::Starting
        && let Some(why) = &u.probe_failure
    {
        status = format!("not ready: {why}");
    }
    let (log_lines_dropped, log_error) = match u.log_losses() {
        Some((n, error)) => (Some(n), error),
        None => (None, None),
    };
    ServiceInfo {
        name: u.name().to_string(),
        state: shown.to_string(),
        pid: u.pid().map(|p| p.as_raw()),
        supervisor_pid: std::process::id() as i32,
        since_unix: u
            .since()
            .duration_since(UNIX_EPOCH)
            .map_or(0, |d| d.as_secs()),
        restarts: u.machine().restarts(),
        last_exit: u.last_exit_text(),
        next_delay_ms: delays.last().copied().filter(|_| state == State::Backoff),
        delays_ms: delays,
        status,
        cpu_ms: usage.map(|x| x.cpu_ms),
        rss_bytes: usage.map(|x| x.rss_bytes),
        log_file: u.log_file().map(|p| p.display().to_string()),
        group: sup.group.as_ref().map(|g| g.config.project.clone()),
        health: u.health(),
        // A held unit is waiting, whatever its machine says.
        ready: shown == "ready" && u.is_ready(),
        log_lines_dropped,
        log_error,
        sockets: u
            .sockets()
            .iter()
            .map(|b| (b.name().to_string(), b.local()))
            .collect(),
        fd_store: Some(u.fd_store().len() as u64).filter(|_| u.service.fd_store_max > 0),
        ..crate::supervisor::containment::describe(u.cgroup(), u.subreaper(), &u.tree(procs))
    }
}
