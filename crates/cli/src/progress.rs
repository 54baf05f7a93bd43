//! What `up` and `down` show while services get where they were asked to go.
//!
//! The supervisor is asked for every service's state every 50 ms (a `status` request;
//! nothing is polled faster, and the supervisor itself never waits for us). Three ways to
//! show it:
//! - on a terminal, one line per service, redrawn in place: a spinner while it is on
//!   its way, ✓ when there, ✗ with why when it cannot get there;
//! - otherwise, a plain line whenever a service's state or reason changes (a log reader
//!   or CI sees each step once);
//! - `--json`: the same changes as JSON lines (`{"service":…,"state":…,…}`).
//!
//! `up` is done when every service is ready, or has failed (exited, gave up, stopped),
//! or waits for one that failed; `down` when every one is stopped (or the supervisor has
//! ended). A service that is restarting is on its way until it gives up or the timeout.

use std::collections::BTreeMap;
use std::io::{IsTerminal, Write};
use std::path::Path;
use std::time::{Duration, Instant};

use anyhow::Result;

use crate::control::{self, NotListening, Request, Response, ServiceInfo};
use crate::supervisor::capture;

/// How often the supervisor is asked.
const TICK: Duration = Duration::from_millis(50);

#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Goal {
    Up,
    Down,
}

#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Style {
    Terminal,
    Lines,
    Json,
}

impl Style {
    pub fn pick(json: bool) -> Style {
        if json {
            Style::Json
        } else if std::io::stdout().is_terminal() {
            Style::Terminal
        } else {
            Style::Lines
        }
    }
}

/// Where one service stands, as shown.
#[derive(Debug, Clone, PartialEq, Eq)]
struct Shown {
    state: String,
    detail: String,
    outcome: Outcome,
}

impl Shown {
    /// What a new line is printed for: a count going up ("failed once", "failed 3
    /// times") is not news.
    fn gist(&self) -> (String, String, Outcome) {
        if self.outcome == Outcome::Done {
            // There: how (a last exit, a detail gone with the supervisor) is no news.
            return (String::new(), String::new(), self.outcome);
        }
        let detail = self
            .detail
            .replace("once", "1 times")
            .replace(|c: char| c.is_ascii_digit(), "");
        (self.state.clone(), detail, self.outcome)
    }
}

#[derive(Debug, Clone, Copy, PartialEq, Eq)]
enum Outcome {
    OnItsWay,
    Done,
    Failed,
}

/// Follows `names` (in this order) through the supervisor at `socket` (which holds
/// `pid_file`) until each has reached `goal` or cannot, or `timeout`; `deps` are each
/// service's dependencies (for "waits for one that failed"). Exit status: 0 all there, 1
/// some failed, 124 timeout.
pub fn follow(
    socket: &Path,
    pid_file: &Path,
    names: &[String],
    deps: &BTreeMap<String, Vec<String>>,
    goal: Goal,
    timeout: Duration,
    style: Style,
) -> Result<u8> {
    let started = Instant::now();
    let mut out = std::io::stdout().lock();
    let mut last: BTreeMap<String, Shown> = BTreeMap::new();
    let mut drawn = 0;
    loop {
        let Some(infos) = ask(socket, pid_file, goal, started.elapsed() < timeout)? else {
            std::thread::sleep(TICK);
            continue;
        };
        let by_name: BTreeMap<&str, &ServiceInfo> =
            infos.iter().map(|i| (i.name.as_str(), i)).collect();
        let now: BTreeMap<String, Shown> = names
            .iter()
            .map(|n| (n.clone(), shown(n, &by_name, deps, goal)))
            .collect();
        let elapsed = started.elapsed();
        let all_settled = now.values().all(|s| s.outcome != Outcome::OnItsWay);
        let timed_out = !all_settled && elapsed >= timeout;
        match style {
            Style::Terminal => {
                drawn = redraw(&mut out, names, &now, drawn, elapsed)?;
            }
            Style::Lines | Style::Json => {
                for n in names {
                    let s = &now[n];
                    // On the way down, what a service did before it was asked to stop
                    // is not news.
                    let moving =
                        goal == Goal::Up || s.state == "stopping" || s.outcome == Outcome::Done;
                    if moving && last.get(n).map(Shown::gist) != Some(s.gist()) {
                        line(
                            &mut out,
                            style,
                            n,
                            s,
                            by_name.get(n.as_str()).copied(),
                            elapsed,
                        )?;
                    }
                }
            }
        }
        last = now;
        if all_settled || timed_out {
            return Ok(settled(
                names,
                &last,
                &by_name,
                goal,
                style,
                timed_out.then_some(timeout),
            ));
        }
        std::thread::sleep(TICK);
    }
}

/// Every service's state from the supervisor at `socket`; `None`: ask again after a tick
/// (it runs but did not answer, and `in_time` says there is time left to wait).
fn ask(
    socket: &Path,
    pid_file: &Path,
    goal: Goal,
    in_time: bool,
) -> Result<Option<Vec<ServiceInfo>>> {
    match control::call(
        socket,
        &Request::Status { name: None },
        crate::query::TIMEOUT,
    ) {
        Ok(Response::Services(list)) => Ok(Some(list)),
        Ok(Response::Error(why)) => anyhow::bail!("{}: {why}", socket.display()),
        Ok(Response::Done(_)) => {
            anyhow::bail!("{}: unexpected answer to status", socket.display())
        }
        // The supervisor has ended (or is ending): after `down` of everything, that is
        // the goal.
        Err(_) if goal == Goal::Down && !locked(pid_file) => Ok(Some(Vec::new())),
        // It runs (its pid file is locked) but did not answer: busy starting hundreds
        // of services (no answer within a request's 5 s), or, for `down`, ending after
        // it removed its socket. Ask again, up to the overall timeout.
        Err(e)
            if locked(pid_file) && in_time && (goal == Goal::Down || !e.is::<NotListening>()) =>
        {
            Ok(None)
        }
        Err(e) => Err(e),
    }
}

/// Every service settled, or `timed_out` after that long: shows the log tails of those
/// that failed (and who is late); the exit status.
fn settled(
    names: &[String],
    last: &BTreeMap<String, Shown>,
    by_name: &BTreeMap<&str, &ServiceInfo>,
    goal: Goal,
    style: Style,
    timed_out: Option<Duration>,
) -> u8 {
    let failed: Vec<&String> = names
        .iter()
        .filter(|n| last[*n].outcome == Outcome::Failed)
        .collect();
    if style != Style::Json {
        for name in &failed {
            let log = by_name
                .get(name.as_str())
                .and_then(|i| i.log_file.as_deref());
            if let Some(log) = log {
                show_log_tail(name, Path::new(log));
            }
        }
    }
    if let Some(timeout) = timed_out {
        let late: Vec<&str> = names
            .iter()
            .filter(|n| last[*n].outcome == Outcome::OnItsWay)
            .map(String::as_str)
            .collect();
        eprintln!(
            "daemonic: not {} within {}: {}",
            if goal == Goal::Up { "ready" } else { "stopped" },
            crate::human::span(timeout),
            late.join(", ")
        );
        return 124;
    }
    if failed.is_empty() { 0 } else { 1 }
}

/// The last lines a failed service wrote in its last run (its own account of why), on
/// stderr: the last lines after the supervisor's last start marker
/// ([`capture::run_starts_at`]), so earlier runs' lines are not mistaken for this one's.
/// Looking back `SCAN` lines is enough: a marker further back means the last run wrote
/// more than `LINES` lines, all of which are then its own.
fn show_log_tail(name: &str, log: &Path) {
    const LINES: usize = 5;
    const SCAN: usize = 100;
    let Ok(tail) = crate::tail::last_lines(log, SCAN, false) else {
        return;
    };
    let mut text = Vec::new();
    if crate::tail::print(&tail.segments, &mut text).is_err() {
        return;
    }
    let lines: Vec<&[u8]> = text.split(|&b| b == b'\n').collect();
    // The text ends with a newline: the piece after it is no line.
    let lines = match lines.split_last() {
        Some((&[], rest)) => rest,
        _ => &lines[..],
    };
    let run = match lines.iter().rposition(|l| capture::run_starts_at(name, l)) {
        Some(i) => &lines[i + 1..],
        None => lines,
    };
    let shown = &run[run.len().saturating_sub(LINES)..];
    if shown.is_empty() {
        return;
    }
    eprintln!("daemonic: last lines of {name}'s log ({}):", log.display());
    for line in shown {
        eprintln!("  {}", String::from_utf8_lossy(line));
    }
}

fn locked(pid_file: &Path) -> bool {
    !matches!(
        daemonic::pidfile::PidFile::holder(pid_file),
        Ok(daemonic::pidfile::Holder::None)
    )
}

fn shown(
    name: &str,
    infos: &BTreeMap<&str, &ServiceInfo>,
    deps: &BTreeMap<String, Vec<String>>,
    goal: Goal,
) -> Shown {
    let Some(info) = infos.get(name) else {
        let (outcome, state) = match goal {
            Goal::Down => (Outcome::Done, "stopped"),
            Goal::Up => (Outcome::Failed, "missing"),
        };
        return Shown {
            state: state.into(),
            detail: String::new(),
            outcome,
        };
    };
    let state = info.state.clone();
    let final_state = matches!(
        state.as_str(),
        "stopped" | "exited" | "gave-up" | "completed"
    );
    let mut detail = crate::human::printable(&info.status).into_owned();
    if final_state || state == "backoff" {
        if let Some(exit) = &info.last_exit {
            detail = if detail.is_empty() {
                exit.clone()
            } else {
                format!("{exit}; {detail}")
            };
        }
        if let Some(ms) = info.next_delay_ms {
            detail = format!(
                "{detail}; restart {} in {}",
                info.restarts + 1,
                crate::human::span(Duration::from_millis(ms))
            );
        }
    }
    let outcome = match goal {
        Goal::Down if final_state => Outcome::Done,
        Goal::Down => Outcome::OnItsWay,
        // Ready, but its readiness check has not passed (yet): dependents wait for it too.
        Goal::Up if info.ready || state == "completed" => Outcome::Done,
        Goal::Up if state == "ready" => {
            detail = info.health.clone().unwrap_or_default();
            Outcome::OnItsWay
        }
        Goal::Up if final_state => Outcome::Failed,
        Goal::Up if state == "waiting" => match failed_dependency(name, infos, deps) {
            Some(dep) => {
                let why = infos
                    .get(dep.as_str())
                    .and_then(|d| d.last_exit.clone().or_else(|| Some(d.state.clone())))
                    .unwrap_or_else(|| "missing".into());
                detail = format!("its dependency {dep} cannot become ready: {why}");
                Outcome::Failed
            }
            None => Outcome::OnItsWay,
        },
        Goal::Up => Outcome::OnItsWay,
    };
    Shown {
        state,
        detail,
        outcome,
    }
}

/// A dependency (direct or not) of `name` that has ended and so will never be ready.
fn failed_dependency(
    name: &str,
    infos: &BTreeMap<&str, &ServiceInfo>,
    deps: &BTreeMap<String, Vec<String>>,
) -> Option<String> {
    let mut todo: Vec<&str> = deps
        .get(name)
        .map(|d| d.iter().map(String::as_str).collect())
        .unwrap_or_default();
    let mut seen = Vec::new();
    while let Some(d) = todo.pop() {
        if seen.contains(&d) {
            continue;
        }
        seen.push(d);
        match infos.get(d) {
            Some(i) if matches!(i.state.as_str(), "stopped" | "exited" | "gave-up") => {
                return Some(d.to_string());
            }
            None => return Some(d.to_string()),
            _ => {}
        }
        todo.extend(deps.get(d).into_iter().flatten().map(String::as_str));
    }
    None
}

fn line(
    out: &mut impl Write,
    style: Style,
    name: &str,
    s: &Shown,
    info: Option<&ServiceInfo>,
    elapsed: Duration,
) -> Result<()> {
    if style == Style::Json {
        let pid = info
            .and_then(|i| i.pid)
            .map_or("null".to_string(), |p| p.to_string());
        writeln!(
            out,
            "{{\"service\":{},\"state\":{},\"pid\":{pid},\"detail\":{},\"elapsed_ms\":{}}}",
            control::json::string(name),
            control::json::string(&s.state),
            control::json::string(&s.detail),
            elapsed.as_millis()
        )?;
    } else {
        let word = match s.outcome {
            Outcome::Failed => format!("failed ({})", s.state),
            _ => s.state.clone(),
        };
        let pid = info
            .and_then(|i| i.pid)
            .filter(|_| s.state == "ready")
            .map(|p| format!(" (pid {p})"))
            .unwrap_or_default();
        let detail = if s.detail.is_empty() {
            String::new()
        } else {
            format!(": {}", s.detail)
        };
        writeln!(out, "{name}: {word}{pid}{detail}")?;
    }
    out.flush()?;
    Ok(())
}

/// Redraws the block of lines drawn last time (`drawn` lines) in place; returns how many
/// lines it drew.
fn redraw(
    out: &mut impl Write,
    names: &[String],
    now: &BTreeMap<String, Shown>,
    drawn: usize,
    elapsed: Duration,
) -> Result<usize> {
    const SPINNER: [char; 10] = ['⠋', '⠙', '⠹', '⠸', '⠼', '⠴', '⠦', '⠧', '⠇', '⠏'];
    let width = names.iter().map(String::len).max().unwrap_or(0);
    let mut text = String::new();
    if drawn > 0 {
        text += &format!("\x1b[{drawn}A");
    }
    for n in names {
        let s = &now[n];
        let mark = match s.outcome {
            Outcome::Done => "\x1b[32m✓\x1b[0m".to_string(),
            Outcome::Failed => "\x1b[31m✗\x1b[0m".to_string(),
            Outcome::OnItsWay => {
                SPINNER[(elapsed.as_millis() / 100) as usize % SPINNER.len()].to_string()
            }
        };
        let detail = if s.detail.is_empty() {
            String::new()
        } else {
            format!("  {}", s.detail)
        };
        text += &format!("\x1b[2K {mark} {n:width$}  {}{detail}\n", s.state);
    }
    out.write_all(text.as_bytes())?;
    out.flush()?;
    Ok(names.len())
}
