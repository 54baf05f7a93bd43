//! `daemonic list`: a table of every service running in the state directory.
//!
//! Each supervisor is asked through its control socket (a service still starting, whose
//! supervisor cannot answer yet, is shown from its status file; see `query`). A socket
//! nobody answers is skipped with a note on stderr. With no service running, only the
//! header is printed (so scripts can always skip one line), and the exit status is 0.
//!
//! ```text
//! NAME  STATE    PID   UPTIME  RESTARTS  LAST-EXIT             CPU    MEM    HEALTH
//! api   backoff  -     3s      2         exited with status 1  -      -      -
//! web   ready    4242  5m      0         -                     0.25s  12.3M  healthy
//! ```
//!
//! With `--all`, services that ran here and ended are listed too (`stopped`, `exited`,
//! `gave-up`, or `dead` when their supervisor was killed before it could say), UPTIME
//! then being the time since they ended.
//!
//! HEALTH is the verdict of the health checks (`--liveness`, `--readiness`) of a ready
//! service, as `status` shows it; `-` without checks or when not ready.

use anyhow::Result;

use crate::control::ServiceInfo;
use crate::human;
use crate::query;
use crate::state_dir::StateDir;

#[derive(clap::Args, Debug)]
pub struct Args {
    /// Also the services that ran here and have ended: stopped, exited or gave up (from
    /// the last snapshot their supervisor left), with the last exit and the time since.
    #[arg(short, long)]
    all: bool,
}

const HEADER: [&str; COLUMNS] = [
    "NAME",
    "STATE",
    "PID",
    "UPTIME",
    "RESTARTS",
    "LAST-EXIT",
    "CPU",
    "MEM",
    "HEALTH",
];

const COLUMNS: usize = 9;

pub fn run(a: Args, dirs: &StateDir) -> Result<u8> {
    let mut services = query::all(dirs)?;
    if a.all {
        services.extend(query::ended(dirs)?);
        services.sort_by(|x, y| x.name.cmp(&y.name));
    }
    let now = human::now_unix();
    let mut rows = vec![HEADER.map(str::to_string)];
    rows.extend(services.iter().map(|s| row(s, now)));
    print!("{}", table(&rows));
    Ok(0)
}

fn row(s: &ServiceInfo, now: u64) -> [String; COLUMNS] {
    let dash = || "-".to_string();
    [
        s.name.clone(),
        s.state.clone(),
        s.pid.map_or_else(dash, |p| p.to_string()),
        if s.since_unix == 0 {
            dash()
        } else {
            human::duration(now.saturating_sub(s.since_unix))
        },
        s.restarts.to_string(),
        s.last_exit.clone().unwrap_or_else(dash),
        s.cpu_ms.map_or_else(dash, human::cpu),
        s.rss_bytes.map_or_else(dash, human::bytes),
        s.health
            .as_deref()
            .map_or_else(dash, |h| human::printable(h).into_owned()),
    ]
}

/// Left-aligned columns two spaces apart; the last column is not padded.
fn table(rows: &[[String; COLUMNS]]) -> String {
    let mut widths = [0; COLUMNS];
    for row in rows {
        for (w, cell) in widths.iter_mut().zip(row) {
            *w = (*w).max(cell.chars().count());
        }
    }
    let mut out = String::new();
    for row in rows {
        let cells: Vec<String> = row
            .iter()
            .zip(widths)
            .map(|(cell, w)| format!("{cell:<w$}"))
            .collect();
        out += cells.join("  ").trim_end();
        out.push('\n');
    }
    out
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn the_table_aligns_columns_and_shows_dashes_for_what_is_unknown() {
        let web = ServiceInfo {
            name: "web".into(),
            state: "ready".into(),
            pid: Some(4242),
            supervisor_pid: 4241,
            since_unix: 1000 - 300,
            cpu_ms: Some(250),
            rss_bytes: Some(12_900_000),
            health: Some("healthy".into()),
            ..ServiceInfo::default()
        };
        let api = ServiceInfo {
            name: "api".into(),
            state: "backoff".into(),
            supervisor_pid: 17,
            since_unix: 1000 - 3,
            restarts: 2,
            last_exit: Some("exited with status 1".into()),
            ..ServiceInfo::default()
        };
        let rows = [HEADER.map(str::to_string), row(&api, 1000), row(&web, 1000)];
        assert_eq!(
            table(&rows),
            "NAME  STATE    PID   UPTIME  RESTARTS  LAST-EXIT             CPU    MEM    HEALTH\n\
             api   backoff  -     3s      2         exited with status 1  -      -      -\n\
             web   ready    4242  5m      0         -                     0.25s  12.3M  healthy\n"
        );
    }
}
