//! A service: what to run and how to supervise it. Built from flags, or from the config
//! file (`config/`, which builds the same flags); the supervisor sees only this.

use std::ffi::OsString;
use std::path::PathBuf;
use std::time::Duration;

use anyhow::{Result, anyhow};
use clap::Args;
use daemonic::Signal;

use crate::supervisor::capture::{LogArgs, LogConfig};
use crate::supervisor::policy::{Backoff, Policy, Restart, StartLimit};
use crate::supervisor::probe::{Probe, Schedule};

/// How the supervisor decides that the child is ready.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Readiness {
    /// `READY=1` on the notify socket, or the grace period passing, whichever comes first.
    Auto,
    /// Only `READY=1` on the notify socket (for programs that speak the protocol).
    Notify,
    /// The grace period passing without the child exiting.
    Grace,
    /// A probe succeeding: a TCP port accepting, an HTTP status, a command exiting 0.
    Probe(Probe),
    /// A line of its captured output (stdout or stderr) matching a pattern
    /// (`log:REGEX`, process-compose's `ready_log_line`).
    Log(LogLine),
}

/// The pattern of `--ready log:REGEX`: regex-lite's syntax (that of the `regex` crate,
/// without Unicode classes), matched against each whole line as written (without the
/// line's end or time prefix), anywhere in it unless anchored with `^`/`$`.
#[derive(Clone)]
pub struct LogLine(regex_lite::Regex);

impl LogLine {
    /// The longest pattern: a readiness line is a few words, not a program.
    const MAX: usize = 1024;

    fn parse(pattern: &str) -> Result<LogLine, String> {
        if pattern.is_empty() {
            return Err("`log:` needs a pattern (e.g. log:listening on)".into());
        }
        if pattern.len() > Self::MAX {
            return Err(format!("`log:` pattern longer than {} bytes", Self::MAX));
        }
        regex_lite::Regex::new(pattern)
            .map(LogLine)
            .map_err(|e| format!("invalid `log:` pattern {pattern:?}: {e}"))
    }

    /// Whether `line` (one whole line, without its newline; any bytes) matches.
    pub fn matches(&self, line: &[u8]) -> bool {
        self.0.is_match(&String::from_utf8_lossy(line))
    }

    pub fn as_str(&self) -> &str {
        self.0.as_str()
    }
}

impl std::fmt::Debug for LogLine {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        write!(f, "log:{}", self.0.as_str())
    }
}

impl std::fmt::Display for LogLine {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        write!(f, "log:{}", self.0.as_str())
    }
}

impl PartialEq for LogLine {
    fn eq(&self, other: &LogLine) -> bool {
        self.as_str() == other.as_str()
    }
}

impl Eq for LogLine {}

impl Readiness {
    /// `auto`, `notify`, `grace`, or a probe (`tcp:…`, `http://…`, `exec:…`).
    pub fn parse(text: &str) -> Result<Readiness, String> {
        match text.trim() {
            "auto" => Ok(Readiness::Auto),
            "notify" => Ok(Readiness::Notify),
            "grace" => Ok(Readiness::Grace),
            t if t.starts_with("tcp:") || t.starts_with("http") || t.starts_with("exec:") => {
                Probe::parse(t).map(Readiness::Probe)
            }
            // The pattern after `log:` is as written (not trimmed).
            _ if text.trim_start().starts_with("log:") => {
                LogLine::parse(&text.trim_start()["log:".len()..]).map(Readiness::Log)
            }
            _ => Err(format!(
                "invalid readiness {text:?} (expected auto, notify, grace, tcp:[HOST:]PORT, \
                 http://HOST[:PORT][/PATH][#200-399], exec:COMMAND or log:REGEX)"
            )),
        }
    }
}

/// What kind of service: one that keeps running, or a task that runs once.
#[derive(Debug, Clone, Copy, PartialEq, Eq, clap::ValueEnum)]
pub enum Kind {
    /// Runs until stopped; ready by --ready.
    Service,
    /// Runs once to completion (a migration, a setup step): an exit with a success status
    /// is `completed` — its readiness, not a failure; --ready is not used.
    Oneshot,
}

/// Whose notify datagrams speak for a service (systemd's `NotifyAccess=`; see
/// `supervisor::notify`). Never a process outside the service's tree.
#[derive(Debug, Clone, Copy, PartialEq, Eq, clap::ValueEnum)]
pub enum NotifyAccess {
    /// The main process only.
    Main,
    /// The main process and the commands run for it (systemd's control processes);
    /// daemonic runs none that notify, so the main process only.
    Exec,
    /// Any process of the service's tree (its cgroup, or its descendants in /proc).
    All,
}

impl NotifyAccess {
    pub fn as_str(self) -> &'static str {
        match self {
            NotifyAccess::Main => "main",
            NotifyAccess::Exec => "exec",
            NotifyAccess::All => "all",
        }
    }
}

/// Flags every supervising command shares.
#[derive(Args, Debug, Clone)]
pub struct ServiceArgs {
    /// How readiness is decided: auto = READY=1 via $NOTIFY_SOCKET or --grace passing
    /// without an exit; notify = READY=1 only; grace = --grace only; tcp:[HOST:]PORT = the
    /// port accepts a connection; http://HOST[:PORT][/PATH][#200-399] = a GET answers
    /// with a status in the range (default 200-399); exec:COMMAND = the shell command
    /// exits 0 (run in --dir); log:REGEX = a line of its captured output matches REGEX.
    /// Probes repeat every --probe-interval until one succeeds.
    #[arg(long, value_parser = Readiness::parse, default_value = "auto", value_name = "HOW")]
    pub ready: Readiness,
    /// service: runs until stopped; oneshot: runs once, and an exit with a success status
    /// is `completed` (what `start` and `up` wait for, and what dependents with
    /// `completed-successfully` wait for). Config key `type`.
    #[arg(
        long = "type",
        value_enum,
        default_value = "service",
        value_name = "KIND"
    )]
    pub kind: Kind,
    /// How long CMD may take to become ready; then it is killed and the start counts as
    /// failed (`start` exits 124; under `up` and `run` the restart policy decides; in a
    /// systemd unit: TimeoutStartSec=). Config key `timeout`.
    #[arg(long, value_parser = crate::duration::parse_positive, default_value = "30s", value_name = "DURATION")]
    pub timeout: Duration,
    /// Time between the end of one failed readiness probe and the next (at least 10ms).
    #[arg(long, value_parser = crate::duration::parse_probe_interval, default_value = "250ms", value_name = "DURATION")]
    pub probe_interval: Duration,
    /// How long one readiness probe may take before it counts as failed (an exec probe's
    /// process group is then killed).
    #[arg(long, value_parser = crate::duration::parse_positive, default_value = "1s", value_name = "DURATION")]
    pub probe_timeout: Duration,
    /// How long the child must stay up to count as ready without READY=1.
    #[arg(long, value_parser = crate::duration::parse, default_value = "1s", value_name = "DURATION")]
    pub grace: Duration,
    /// Signal that asks the child to stop.
    #[arg(long, value_parser = parse_signal, default_value = "TERM", value_name = "SIGNAL")]
    pub stop_signal: Signal,
    /// How long to wait after the stop signal before SIGKILL to the child's process group.
    #[arg(long, value_parser = crate::duration::parse, default_value = "10s", value_name = "DURATION")]
    pub stop_timeout: Duration,
    /// Require the child to send WATCHDOG=1 at least this often once ready (it gets
    /// WATCHDOG_USEC); a missed ping aborts it (SIGABRT, then the stop sequence) and counts
    /// as a failure for --restart [default: no watchdog].
    #[arg(long, value_parser = crate::duration::parse_positive, value_name = "DURATION")]
    pub watchdog: Option<Duration>,
    /// Whose notify datagrams (READY=1, STATUS=, WATCHDOG=1, …) count: main = the main
    /// process only; exec = the same (daemonic runs no ExecStartPre=-like commands); all =
    /// any process of the service's tree (its cgroup, or its descendants), so that a
    /// shell script's `systemd-notify --ready` works as another user too. A process
    /// outside the tree never counts. Each ignored sender is named once on stderr (and
    /// in `start`'s timeout message). In a systemd unit: NotifyAccess=.
    #[arg(long, value_enum, default_value = "all", value_name = "WHO")]
    pub notify_access: NotifyAccess,
    /// Signal that asks the child to reload (sent when daemonic gets SIGHUP).
    #[arg(long, value_parser = parse_signal, default_value = "HUP", value_name = "SIGNAL")]
    pub reload_signal: Signal,
    /// When to start the child again after it exits: never; on-failure (an exit status
    /// not in --success-exit-codes, or a signal); always. A stop asked for is never
    /// restarted.
    #[arg(long, value_enum, default_value = "never", help_heading = "Restarts")]
    pub restart: Restart,
    /// Exit statuses that count as success for --restart on-failure (comma-separated).
    #[arg(
        long,
        value_delimiter = ',',
        default_value = "0",
        value_parser = parse_exit_code,
        value_name = "CODES",
        help_heading = "Restarts"
    )]
    pub success_exit_codes: Vec<i32>,
    /// Delay before the first restart.
    #[arg(long, value_parser = crate::duration::parse, default_value = "1s", value_name = "DURATION", help_heading = "Restarts")]
    pub backoff: Duration,
    /// Each further restart waits this many times longer (1 = a fixed delay).
    #[arg(long, default_value = "2", value_parser = parse_multiplier, value_name = "FACTOR", help_heading = "Restarts")]
    pub backoff_multiplier: f64,
    /// The longest delay before a restart.
    #[arg(long, value_parser = crate::duration::parse, default_value = "1m", value_name = "DURATION", help_heading = "Restarts")]
    pub backoff_max: Duration,
    /// Full jitter: wait a random time between 0 and the delay.
    #[arg(long, help_heading = "Restarts")]
    pub backoff_jitter: bool,
    /// A run that lasts this long was stable: it is restarted at once (no delay) and the
    /// next crash waits --backoff again. Shorter runs are a crash loop whose delays grow.
    #[arg(long, value_parser = crate::duration::parse, default_value = "1s", value_name = "DURATION", help_heading = "Restarts")]
    pub backoff_reset_after: Duration,
    /// Give up after N starts within WINDOW (e.g. 6/10m: the first start and 5 retries);
    /// the supervisor then runs --on-give-up and ends [default: no limit].
    #[arg(long, value_parser = StartLimit::parse, value_name = "N/WINDOW", help_heading = "Restarts")]
    pub start_limit: Option<StartLimit>,
    /// Shell command run once (by /bin/sh -c) on giving up, with DAEMONIC_SERVICE,
    /// DAEMONIC_LAST_EXIT (the last status as a shell reports it) and DAEMONIC_REASON set;
    /// it gets --stop-timeout to finish.
    #[arg(long, value_name = "CMD", help_heading = "Restarts")]
    pub on_give_up: Option<String>,
    #[command(flatten)]
    pub health: crate::supervisor::health_args::HealthArgs,
    #[command(flatten)]
    pub log: LogArgs,
    #[command(flatten)]
    pub limits: crate::supervisor::limits::LimitArgs,
    #[command(flatten)]
    pub privileges: crate::privilege_args::PrivilegeArgs,
    #[command(flatten)]
    pub unit: crate::units::args::UnitArgs,
    /// Working directory of the child [default: the current directory].
    #[arg(long, value_name = "DIR")]
    pub dir: Option<PathBuf>,
    /// Set a variable in the child's environment (repeatable; wins over --env-file).
    #[arg(long, value_parser = crate::env_file::parse_assignment, value_name = "KEY=VALUE")]
    pub env: Vec<(String, String)>,
    /// Read variables for the child from FILE: KEY=VALUE lines, `#` comments, optional
    /// `export ` and quotes, no expansion (systemd's and docker's format); a leading `-`
    /// makes the file optional (repeatable; read when the service is set up).
    #[arg(long, value_name = "FILE")]
    pub env_file: Vec<PathBuf>,
    /// The program and its arguments.
    #[arg(last = true, value_name = "CMD")]
    pub command: Vec<OsString>,
}

/// Everything the supervisor needs to run one service.
#[derive(Debug, Clone)]
pub struct Service {
    pub name: String,
    pub program: OsString,
    pub args: Vec<OsString>,
    pub dir: PathBuf,
    /// Set in the child's environment, over what it inherits (see `supervisor::unit`).
    pub env: Vec<(String, String)>,
    pub ready: Readiness,
    pub kind: Kind,
    /// How long a start may take to become ready (`--timeout`).
    pub start_timeout: Duration,
    pub probe: Schedule,
    pub grace: Duration,
    pub stop_signal: Signal,
    pub stop_timeout: Duration,
    pub reload_signal: Signal,
    pub notify_access: NotifyAccess,
    pub watchdog: Option<Duration>,
    pub policy: Policy,
    pub on_give_up: Option<String>,
    /// Liveness and readiness checks once the child is ready.
    pub health: crate::supervisor::health_args::Health,
    /// Where the child's stdout and stderr are captured; `None`: they are inherited.
    pub log: Option<LogConfig>,
    /// Who the child runs as (looked up already); `None`: as the supervisor.
    pub privileges: Option<daemonic::privileges::Prepared>,
    /// The kernel's limits on the tree (checked: this supervisor can enforce them).
    pub limits: crate::supervisor::limits::Limits,
    /// `--restart-on-memory`: the size and how often it is checked.
    pub memory_restart: Option<(u64, Duration)>,
    /// Without `log`: the child's output goes to the supervisor's stdout and stderr, each
    /// line after `name | ` (`run -f`); `None` with no `log`: inherited as it is.
    pub console: Option<crate::supervisor::capture::Console>,
}

impl Service {
    /// The service `a` describes. Its output is captured when `default_log` is given (the
    /// file unless --log-file says otherwise), or when --log-file is.
    pub fn from_args(
        name: String,
        a: ServiceArgs,
        default_log: Option<PathBuf>,
    ) -> Result<Service> {
        let log = match (default_log, &a.log.log_file) {
            (Some(path), _) => Some(LogConfig::new(&a.log, path)),
            (None, Some(file)) => Some(LogConfig::new(&a.log, file.clone())),
            (None, None) if a.log.log_stderr_file.is_some() => {
                return Err(anyhow!(
                    "--log-stderr-file needs --log-file here (without it the output is not captured)"
                ));
            }
            (None, None) => None,
        };
        let limits = a.limits.limits();
        crate::supervisor::limits::check(&limits)?;
        let mut command = a.command.into_iter();
        let program = command
            .next()
            .ok_or_else(|| anyhow!("no command given after --"))?;
        let (dir, privileges) = a.privileges.resolve(a.dir)?;
        let mut env = Vec::new();
        for file in &a.env_file {
            env.extend(crate::env_file::read(file)?);
        }
        env.extend(a.env);
        Ok(Service {
            name,
            program,
            args: command.collect(),
            dir,
            env,
            ready: a.ready,
            kind: a.kind,
            start_timeout: a.timeout,
            probe: Schedule {
                interval: a.probe_interval,
                timeout: a.probe_timeout,
            },
            grace: a.grace,
            stop_signal: a.stop_signal,
            stop_timeout: a.stop_timeout,
            reload_signal: a.reload_signal,
            notify_access: a.notify_access,
            watchdog: a.watchdog.filter(|w| !w.is_zero()),
            policy: Policy {
                restart: a.restart,
                success_codes: a.success_exit_codes,
                backoff: Backoff {
                    initial: a.backoff,
                    multiplier: a.backoff_multiplier,
                    max: a.backoff_max,
                    jitter: a.backoff_jitter,
                    reset_after: a.backoff_reset_after,
                },
                start_limit: a.start_limit,
            },
            on_give_up: a.on_give_up,
            health: a.health.into(),
            log,
            privileges,
            limits,
            memory_restart: a.limits.memory_restart(),
            console: None,
        })
    }
}

/// A backoff multiplier: a finite number, at least 1.
fn parse_multiplier(text: &str) -> Result<f64, String> {
    match text.trim().parse::<f64>() {
        Ok(f) if f.is_finite() && f >= 1.0 => Ok(f),
        _ => Err(format!(
            "invalid multiplier {text:?} (expected a number >= 1, e.g. 2 or 1.5)"
        )),
    }
}

/// An exit status a process can have: 0 to 255 (`exit(256)` is status 0).
fn parse_exit_code(text: &str) -> Result<i32, String> {
    match text.trim().parse::<i32>() {
        Ok(n) if (0..=255).contains(&n) => Ok(n),
        _ => Err(format!(
            "invalid exit code {text:?} (expected a number from 0 to 255)"
        )),
    }
}

/// `TERM`, `SIGTERM`, `term` or `15`.
pub fn parse_signal(text: &str) -> Result<Signal, String> {
    let upper = text.trim().to_ascii_uppercase();
    if let Ok(n) = upper.parse::<i32>() {
        return Signal::try_from(n).map_err(|_| format!("unknown signal number {n}"));
    }
    let name = if upper.starts_with("SIG") {
        upper
    } else {
        format!("SIG{upper}")
    };
    name.parse::<Signal>()
        .map_err(|_| format!("unknown signal {text:?} (expected e.g. TERM, HUP, USR1, 15)"))
}

/// The basename of a program, as a default service name.
pub fn default_name(program: &OsString) -> String {
    PathBuf::from(program)
        .file_name()
        .map(|n| n.to_string_lossy().into_owned())
        .unwrap_or_else(|| "service".into())
}
