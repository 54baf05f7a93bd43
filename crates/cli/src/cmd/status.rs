//! `daemonic status [NAME] [--json]`: whether services run, their state, pids and uptime,
//! restarts (count, last exit, the delay being waited out), CPU time and memory.
//!
//! Running means "its pid file is locked"; the details come from the supervisor, asked
//! through its control socket (or from its status file while it cannot answer yet; see
//! `query`). One line per service (`health:` only for a ready service with
//! `--liveness`/`--readiness`):
//!
//! ```text
//! web: ready, pid 4242 (supervisor 4241), ready for 5m, cpu 0.25s, mem 12.3M; status: serving
//! db: ready, pid 4250 (supervisor 4249), ready for 1h, cpu 3.10s, mem 8.1M, health: healthy
//! ```
//!
//! Exit status 0 if running, 3 if not (as LSB init scripts); without NAME, 0 if any
//! service runs. With `--ready`, 0 only if the service (without NAME: every service, and
//! at least one) is ready with its readiness check passing — what a container
//! orchestrator's readiness probe asks (`exec: [daemonic, status, --ready]`), where plain
//! `status` answers its liveness probe.

use anyhow::Result;

use crate::EXIT_NOT_RUNNING;
use crate::control::{ServiceInfo, json};
use crate::human;
use crate::query;
use crate::state_dir::{StateDir, check_name};

#[derive(clap::Args, Debug)]
pub struct Args {
    /// The service to show [default: every service in the state directory].
    name: Option<String>,
    /// Print a JSON array with one object per service, also for one NAME (`[]` when it is
    /// not running). Fields: name, state, pid, supervisor_pid, since_unix, restarts,
    /// last_exit, next_delay_ms, delays_ms, status, cpu_ms, rss_bytes, log_file, health
    /// (healthy, checking or unhealthy: why, while ready with --liveness/--readiness),
    /// group (the config file's project, for a service of `daemonic up`), sockets (held
    /// by the supervisor: [{name, listen}]), fd_store (descriptors kept); null when
    /// absent.
    #[arg(long)]
    json: bool,
    /// Exit status 0 only if ready: the state is `ready` and the readiness check (if
    /// any) passes; for NAME, else every service shown (at least one). 3 otherwise. For a
    /// container orchestrator's readiness probe.
    #[arg(long)]
    ready: bool,
}

pub fn run(a: Args, dirs: &StateDir) -> Result<u8> {
    let services = match &a.name {
        Some(name) => {
            check_name(name)?;
            query::service(dirs, name)?.into_iter().collect()
        }
        None => query::all(dirs)?,
    };
    if a.json {
        println!("{}", json::services(&services));
    } else if services.is_empty() {
        match &a.name {
            Some(name) => match query::never_ran(dirs, name) {
                Some(why) => println!("{name}: not running ({why})"),
                None => println!("{name}: not running{}", ended(dirs, name)),
            },
            None => eprintln!("daemonic: no service is running"),
        }
    } else {
        let now = human::now_unix();
        for s in &services {
            println!("{}", line(s, now));
        }
    }
    let ok = if a.ready {
        !services.is_empty() && services.iter().all(|s| s.ready)
    } else {
        !services.is_empty()
    };
    Ok(if ok { 0 } else { EXIT_NOT_RUNNING })
}

/// How a service that is not running ended, when its supervisor left a final snapshot:
/// ` (gave-up 5m ago, last exited with status 1, restarts 5)`, ` (stopped 2m ago, …)`;
/// empty otherwise (a supervisor that was killed).
fn ended(dirs: &StateDir, name: &str) -> String {
    let fields = crate::supervisor::status_file::read(&dirs.status_file(name)).unwrap_or_default();
    let get = |k: &str| crate::supervisor::status_file::field(&fields, k);
    let Some(state) =
        get("state").filter(|s| matches!(*s, "gave-up" | "exited" | "stopped" | "completed"))
    else {
        return String::new();
    };
    let mut text = format!(" ({state}");
    if let Some(since) = get("since").and_then(|s| s.parse::<u64>().ok()) {
        let age = human::duration(human::now_unix().saturating_sub(since));
        text += &format!(" {age} ago");
    }
    if let Some(exit) = get("last_exit") {
        text += &format!(", last {exit}");
    }
    if let Some(n) = get("restarts").filter(|n| *n != "0") {
        text += &format!(", restarts {n}");
    }
    text + ")"
}

/// `NAME: STATE, pid N (supervisor M), STATE for Xs, restarts N, last …, next start after
/// D, cpu Xs, mem Y, contained by C, tree N processes mem Z cpu Ws, log dropped N lines
/// (last error: E), health: HEALTH;
/// status: TEXT`, each part only when known (tests and scripts parse
/// it: parts are only ever added before `; status:`).
fn line(s: &ServiceInfo, now: u64) -> String {
    let mut line = format!("{}: {}", s.name, s.state);
    if let Some(pid) = s.pid {
        line += &format!(", pid {pid}");
    }
    if s.supervisor_pid != 0 {
        line += &format!(" (supervisor {})", s.supervisor_pid);
    }
    if s.since_unix != 0 {
        let age = human::duration(now.saturating_sub(s.since_unix));
        line += &format!(", {} for {age}", s.state);
    }
    if s.restarts != 0 {
        line += &format!(", restarts {}", s.restarts);
    }
    if let Some(exit) = &s.last_exit {
        line += &format!(", last {exit}");
    }
    if let Some(ms) = s.next_delay_ms {
        let delay = human::span(std::time::Duration::from_millis(ms));
        line += &format!(", next start after {delay}");
    }
    if let Some(ms) = s.cpu_ms {
        line += &format!(", cpu {}", human::cpu(ms));
    }
    if let Some(bytes) = s.rss_bytes {
        line += &format!(", mem {}", human::bytes(bytes));
    }
    if !s.sockets.is_empty() {
        let list: Vec<String> = s.sockets.iter().map(|(n, a)| format!("{n}={a}")).collect();
        line += &format!(", sockets {}", human::printable(&list.join(" ")));
    }
    if let Some(n) = s.fd_store.filter(|n| *n > 0) {
        line += &format!(", fd store {n}");
    }
    // Before the health verdict, which may hold commas and runs to `; status:`.
    if let Some(c) = &s.containment {
        line += &format!(", contained by {c}");
    }
    if let Some(n) = s.tree_processes {
        line += &format!(", tree {n} process{}", if n == 1 { "" } else { "es" });
        if let Some(bytes) = s.tree_memory_bytes {
            line += &format!(" mem {}", human::bytes(bytes));
        }
        if let Some(ms) = s.tree_cpu_ms {
            line += &format!(" cpu {}", human::cpu(ms));
        }
    }
    if let Some(n) = s.log_lines_dropped {
        line += &format!(", log dropped {n} line{}", if n == 1 { "" } else { "s" });
        if let Some(e) = &s.log_error {
            line += &format!(" (last error: {})", human::printable(e));
        }
    }
    if let Some(health) = &s.health {
        line += &format!(", health: {}", human::printable(health));
    }
    if !s.status.is_empty() {
        line += &format!(
            "; status: {}",
            human::printable(&s.status.replace('\n', " "))
        );
    }
    line
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn the_line_keeps_its_format_with_cpu_and_memory_before_the_status() {
        let s = ServiceInfo {
            name: "web".into(),
            state: "backoff".into(),
            pid: None,
            supervisor_pid: 41,
            since_unix: 990,
            restarts: 2,
            last_exit: Some("exited with status 3".into()),
            next_delay_ms: Some(200),
            status: "two\nlines".into(),
            cpu_ms: Some(1234),
            rss_bytes: Some(4096),
            ..ServiceInfo::default()
        };
        assert_eq!(
            line(&s, 1000),
            "web: backoff (supervisor 41), backoff for 10s, restarts 2, last exited with \
             status 3, next start after 200ms, cpu 1.23s, mem 4.0K; status: two lines"
        );
        let unhealthy = ServiceInfo {
            name: "db".into(),
            state: "ready".into(),
            pid: Some(7),
            health: Some("unhealthy: readiness failed twice: connect …".into()),
            status: "serving".into(),
            ..ServiceInfo::default()
        };
        assert_eq!(
            line(&unhealthy, 1000),
            "db: ready, pid 7, health: unhealthy: readiness failed twice: connect …; status: serving"
        );
        let starting = ServiceInfo {
            name: "api".into(),
            state: "starting".into(),
            ..ServiceInfo::default()
        };
        assert_eq!(line(&starting, 1000), "api: starting");
        let full = ServiceInfo {
            name: "w".into(),
            state: "ready".into(),
            log_lines_dropped: Some(12),
            log_error: Some("write /l/w.log: No space left on device (os error 28)".into()),
            health: Some("healthy".into()),
            ..ServiceInfo::default()
        };
        assert_eq!(
            line(&full, 1000),
            "w: ready, log dropped 12 lines (last error: write /l/w.log: No space left on \
             device (os error 28)), health: healthy"
        );
    }
}
