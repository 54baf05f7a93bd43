//! [`ServiceArgs`]: every option of a service as given (flags, or keys of the config
//! file), and the table entries of the options that belong to no group: readiness,
//! stopping, restarts, the working directory and the environment.

use std::ffi::OsString;
use std::path::PathBuf;
use std::time::Duration;

use daemonic::Signal;

use super::health::HealthArgs;
use super::limits::LimitArgs;
use super::log::LogArgs;
use super::options::Systemd::{Daemonic, Direct, Said};
use super::options::{Blank, Opt, choice, push, put, switch};
use super::privileges::PrivilegeArgs;
use super::readiness::Readiness;
use super::restart::{Restart, StartLimit};
use super::sockets::SocketArgs;
use super::systemd::UnitArgs;
use super::{Kind, NotifyAccess};
use crate::duration;

/// `--backoff-reset-after`'s default: a run this long was stable. The Windows service
/// units (`units/windows.rs`) read it too, so both platforms restart alike.
pub const BACKOFF_RESET_AFTER: &str = "1s";

/// Every option of a service, as given: flags of `run` and `start` (clap's
/// [`Args`](clap::Args), implemented from the table in [`super::table`]) or keys of
/// `daemonic.toml`. [`Service::from_args`](super::Service::from_args) resolves them.
#[derive(Debug, Clone)]
pub struct ServiceArgs {
    pub ready: Readiness,
    /// `--type` (`type = …`).
    pub kind: Kind,
    pub timeout: Duration,
    pub probe_interval: Duration,
    pub probe_timeout: Duration,
    pub grace: Duration,
    pub stop_signal: Signal,
    pub stop_timeout: Duration,
    pub watchdog: Option<Duration>,
    pub reload_signal: Signal,
    pub notify_access: NotifyAccess,
    pub restart: Restart,
    pub success_exit_codes: Vec<i32>,
    pub backoff: Duration,
    pub backoff_multiplier: f64,
    pub backoff_max: Duration,
    pub backoff_jitter: bool,
    pub backoff_reset_after: Duration,
    pub start_limit: Option<StartLimit>,
    /// `--start-retries`: restarts allowed before the service was first ready.
    pub start_retries: u32,
    pub on_give_up: Option<String>,
    pub health: HealthArgs,
    pub log: LogArgs,
    pub limits: LimitArgs,
    pub privileges: PrivilegeArgs,
    pub unit: UnitArgs,
    pub sockets: SocketArgs,
    pub dir: Option<PathBuf>,
    pub env: Vec<(String, String)>,
    pub env_file: Vec<PathBuf>,
    /// The program and its arguments (`-- CMD ARGS…`; the file's `command`).
    pub command: Vec<OsString>,
}

impl Blank for ServiceArgs {
    /// Nothing set: the state the table's setters start from. A field with a default
    /// holds a placeholder here; [`ServiceArgs::default`] and the parsers put the
    /// table's default in.
    fn blank() -> ServiceArgs {
        ServiceArgs {
            ready: Readiness::Auto,
            kind: Kind::Service,
            timeout: Duration::ZERO,
            probe_interval: Duration::ZERO,
            probe_timeout: Duration::ZERO,
            grace: Duration::ZERO,
            stop_signal: Signal::SIGTERM,
            stop_timeout: Duration::ZERO,
            watchdog: None,
            reload_signal: Signal::SIGHUP,
            notify_access: NotifyAccess::All,
            restart: Restart::Never,
            success_exit_codes: Vec::new(),
            backoff: Duration::ZERO,
            backoff_multiplier: 1.0,
            backoff_max: Duration::ZERO,
            backoff_jitter: false,
            backoff_reset_after: Duration::ZERO,
            start_limit: None,
            start_retries: 0,
            on_give_up: None,
            health: HealthArgs::blank(),
            log: LogArgs::blank(),
            limits: LimitArgs::blank(),
            privileges: PrivilegeArgs::blank(),
            unit: UnitArgs::blank(),
            sockets: SocketArgs::blank(),
            dir: None,
            env: Vec::new(),
            env_file: Vec::new(),
            command: Vec::new(),
        }
    }
}

/// Readiness and stopping.
pub(super) fn general() -> Vec<Opt<ServiceArgs>> {
    type O = Opt<ServiceArgs>;
    vec![
        O::one("ready", "HOW", |a, v| {
            put(&mut a.ready, Readiness::parse(v))
        })
        .systemd(Direct("Type="))
        .default("auto")
        .help(
            "How readiness is decided: auto = READY=1 via $NOTIFY_SOCKET or --grace \
                 passing without an exit; notify = READY=1 only; grace = --grace only; \
                 tcp:[HOST:]PORT = the port accepts a connection; \
                 http://HOST[:PORT][/PATH][#200-399] = a GET answers with a status in the \
                 range (default 200-399); exec:COMMAND = the shell command exits 0 (run in \
                 --dir); log:REGEX = a line of its captured output matches REGEX; \
                 forking[:PIDFILE] = a program that daemonizes itself: its process exits \
                 0 and the daemon it left (the pid in its own PIDFILE, or MAINPID=, or the \
                 only process left) is supervised from then on (systemd's Type=forking). \
                 Probes repeat every --probe-interval until one succeeds",
        ),
        O::one("type", "KIND", |a, v| put(&mut a.kind, choice(v)))
            .systemd(Direct("Type="))
            .default("service")
            .values::<Kind>()
            .help(
                "service: runs until stopped; oneshot: runs once, and an exit with a \
                 success status is `completed` (what `start` and `up` wait for, and what \
                 dependents with `completed-successfully` wait for). Config key `type`",
            ),
        O::one("timeout", "DURATION", |a, v| {
            put(&mut a.timeout, duration::parse_positive(v))
        })
        .systemd(Direct("TimeoutStartSec="))
        .default("30s")
        .help(
            "How long CMD may take to become ready; then it is killed and the start \
                 counts as failed (`start` exits 124; under `up` and `run` the restart \
                 policy decides; in a systemd unit: TimeoutStartSec=). Config key \
                 `timeout`",
        ),
        O::one("probe-interval", "DURATION", |a, v| {
            put(&mut a.probe_interval, duration::parse_probe_interval(v))
        })
        .systemd(Daemonic)
        .default("250ms")
        .help(
            "Time between the end of one failed readiness probe and the next (at least \
                 10ms)",
        ),
        O::one("probe-timeout", "DURATION", |a, v| {
            put(&mut a.probe_timeout, duration::parse_positive(v))
        })
        .systemd(Daemonic)
        .default("1s")
        .help(
            "How long one readiness probe may take before it counts as failed (an exec \
                 probe's process group is then killed)",
        ),
        O::one("grace", "DURATION", |a, v| {
            put(&mut a.grace, duration::parse(v))
        })
        .systemd(Daemonic)
        .default("1s")
        .help("How long the child must stay up to count as ready without READY=1"),
        O::one("stop-signal", "SIGNAL", |a, v| {
            put(&mut a.stop_signal, parse_signal(v))
        })
        .systemd(Direct("KillSignal="))
        .default("TERM")
        .help("Signal that asks the child to stop"),
        O::one("stop-timeout", "DURATION", |a, v| {
            put(&mut a.stop_timeout, duration::parse(v))
        })
        .systemd(Direct("TimeoutStopSec="))
        .default("10s")
        .help(
            "How long to wait after the stop signal before SIGKILL to the child's \
                 process group",
        ),
        O::one("watchdog", "DURATION", |a, v| {
            put(&mut a.watchdog, duration::parse_positive(v).map(Some))
        })
        .systemd(Direct("WatchdogSec="))
        .help(
            "Require the child to send WATCHDOG=1 at least this often once ready (it \
                 gets WATCHDOG_USEC); a missed ping aborts it (SIGABRT, then the stop \
                 sequence) and counts as a failure for --restart [default: no watchdog]",
        ),
        O::one("reload-signal", "SIGNAL", |a, v| {
            put(&mut a.reload_signal, parse_signal(v))
        })
        .systemd(Direct("ExecReload="))
        .default("HUP")
        .help("Signal that asks the child to reload (sent when daemonic gets SIGHUP)"),
        O::one("notify-access", "WHO", |a, v| {
            put(&mut a.notify_access, choice(v))
        })
        .systemd(Direct("NotifyAccess="))
        .default("all")
        .values::<NotifyAccess>()
        .help(
            "Whose notify datagrams (READY=1, STATUS=, WATCHDOG=1, …) count: main = the \
                 main process only; exec = the same (daemonic runs no ExecStartPre=-like \
                 commands); all = any process of the service's tree (its cgroup, or its \
                 descendants), so that a shell script's `systemd-notify --ready` works as \
                 another user too. A process outside the tree never counts. Each ignored \
                 sender is named once on stderr (and in start's timeout message)",
        ),
    ]
}

/// When and how a service is started again.
pub(super) fn restarts() -> Vec<Opt<ServiceArgs>> {
    type O = Opt<ServiceArgs>;
    vec![
        O::one("restart", "RESTART", |a, v| put(&mut a.restart, choice(v)))
            .systemd(Direct("Restart="))
            .default("on-failure")
            .values::<Restart>()
            .heading("Restarts")
            .help(
                "When to start the child again after it exits: never; on-failure (an exit \
                 status not in --success-exit-codes, or a signal such as kill -9); always. \
                 A stop asked for is never restarted. Before the service was first ready, \
                 --start-retries bounds the restarts",
            ),
        O::one("start-retries", "N", |a, v| {
            put(&mut a.start_retries, parse_retries(v))
        })
        .systemd(Daemonic)
        .default("3")
        .heading("Restarts")
        .help(
            "How many times a child that exits (or times out) before the service was first \
                 ready is started again; then the supervisor gives up (runs --on-give-up), \
                 so `start` and `up` fail with the program's error rather than retry while \
                 they wait (0: no retry). Once ready, restarts are bounded only by \
                 --start-limit",
        ),
        O::many("success-exit-codes", "CODES", |a, v| {
            push(&mut a.success_exit_codes, parse_exit_code(v))
        })
        .systemd(Direct("SuccessExitStatus="))
        .default("0")
        .delimiter(',')
        .heading("Restarts")
        .help(
            "Exit statuses that count as success for --restart on-failure \
                 (comma-separated)",
        ),
        O::one("backoff", "DURATION", |a, v| {
            put(&mut a.backoff, duration::parse(v))
        })
        .systemd(Direct("RestartSec="))
        .default("1s")
        .heading("Restarts")
        .help("Delay before the first restart"),
        O::one("backoff-multiplier", "FACTOR", |a, v| {
            put(&mut a.backoff_multiplier, parse_multiplier(v))
        })
        .systemd(Daemonic)
        .default("2")
        .heading("Restarts")
        .help("Each further restart waits this many times longer (1 = a fixed delay)"),
        O::one("backoff-max", "DURATION", |a, v| {
            put(&mut a.backoff_max, duration::parse(v))
        })
        .systemd(Daemonic)
        .default("1m")
        .heading("Restarts")
        .help("The longest delay before a restart"),
        O::switch("backoff-jitter", |a, v| {
            put(&mut a.backoff_jitter, switch(v))
        })
        .systemd(Daemonic)
        .heading("Restarts")
        .help("Full jitter: wait a random time between 0 and the delay"),
        O::one("backoff-reset-after", "DURATION", |a, v| {
            put(&mut a.backoff_reset_after, duration::parse(v))
        })
        .systemd(Daemonic)
        .default(BACKOFF_RESET_AFTER)
        .heading("Restarts")
        .help(
            "A run that lasts this long was stable: it is restarted at once (no delay) \
                 and the next crash waits --backoff again. Shorter runs are a crash loop \
                 whose delays grow",
        ),
        O::one("start-limit", "N/WINDOW", |a, v| {
            put(&mut a.start_limit, StartLimit::parse(v).map(Some))
        })
        .systemd(Direct("StartLimitBurst=, StartLimitIntervalSec="))
        .heading("Restarts")
        .help(
            "Give up after N starts within WINDOW (e.g. 6/10m: the first start and 5 \
                 retries); the supervisor then runs --on-give-up and ends [default: no \
                 limit]",
        ),
        O::one("on-give-up", "CMD", |a, v| {
            put(&mut a.on_give_up, Ok(Some(v.to_string())))
        })
        .systemd(Daemonic)
        .heading("Restarts")
        .help(
            "Shell command run once (by /bin/sh -c) on giving up, with \
                 DAEMONIC_SERVICE, DAEMONIC_LAST_EXIT (the last status as a shell reports \
                 it) and DAEMONIC_REASON set; it gets --stop-timeout to finish",
        ),
    ]
}

/// Where the child runs, and its environment.
pub(super) fn environment() -> Vec<Opt<ServiceArgs>> {
    type O = Opt<ServiceArgs>;
    vec![
        O::one("dir", "DIR", |a, v| {
            put(&mut a.dir, Ok(Some(PathBuf::from(v))))
        })
        .systemd(Said("WorkingDirectory="))
        .help("Working directory of the child [default: the current directory]"),
        O::many("env", "KEY=VALUE", |a, v| {
            push(&mut a.env, crate::env_file::parse_assignment(v))
        })
        .systemd(Said("Environment="))
        .help(
            "Set a variable in the child's environment (repeatable; wins over \
                 --env-file)",
        ),
        O::many("env-file", "FILE", |a, v| {
            push(&mut a.env_file, Ok(PathBuf::from(v)))
        })
        .systemd(Said("EnvironmentFile="))
        .help(
            "Read variables for the child from FILE: KEY=VALUE lines, `#` comments, \
                 optional `export ` and quotes, no expansion (systemd's and docker's \
                 format); a leading `-` makes the file optional (repeatable; read when the \
                 service is set up)",
        ),
    ]
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

/// A backoff multiplier: a finite number, at least 1.
fn parse_multiplier(text: &str) -> Result<f64, String> {
    match text.trim().parse::<f64>() {
        Ok(f) if f.is_finite() && f >= 1.0 => Ok(f),
        _ => Err(format!(
            "invalid multiplier {text:?} (expected a number >= 1, e.g. 2 or 1.5)"
        )),
    }
}

/// `--start-retries`: a whole number, 0 included.
fn parse_retries(text: &str) -> Result<u32, String> {
    text.trim().parse::<u32>().map_err(|_| {
        format!("invalid number of retries {text:?} (expected a whole number >= 0, e.g. 3)")
    })
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
