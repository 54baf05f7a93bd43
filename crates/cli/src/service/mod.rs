//! What a service *is*: every option it has, and [`Service`], what the supervisor runs.
//!
//! Below both `supervisor/` and `units/` (they import it; it imports neither), and the
//! one place an option is defined: [`table`] holds the table — for each option its
//! flag (also its config key), its value's name, its parser, its default, its help and
//! how a systemd unit says it — from which the flags of `run`/`start`, the keys of
//! `daemonic.toml` (`config::schema`) and the checks of both are derived.
//!
//! | module | options | resolved to |
//! |---|---|---|
//! | [`args`] | readiness, stopping, restarts, `dir`, `env`, `env-file` | [`Readiness`], [`restart::Policy`] |
//! | [`health`] | `liveness*`, `readiness*`, `health-grace` | [`health::Health`] |
//! | [`log`] | `log-*` | [`log::LogConfig`] |
//! | [`limits`] | `memory-*`, `cpu-max`, `tasks-max`, `restart-on-memory` | [`limits::Limits`] |
//! | [`privileges`] | `user`, `group`, `keep-caps`, `chroot`, `umask`, … | [`daemonic::privileges::Prepared`] |
//! | [`sockets`] | `socket`, `fd-store-max`, `socket-activation` | [`crate::sockets::SocketSpec`] |
//! | [`systemd`] | `unit-*` (only `daemonic unit` and `install` read them) | — |
//!
//! ## Adding an option
//!
//! 1. A field in the group's struct ([`ServiceArgs`], or e.g. [`health::HealthArgs`]),
//!    with its placeholder in the struct's [`Blank`](options::Blank) implementation.
//! 2. One [`options::Opt`] entry in the group's `options()` (the groups are listed, in
//!    `--help` order, by [`table::all`]): `O::one("name", "VALUE", |a, v| put(&mut
//!    a.field, parse(v)))` (`O::many` for a repeatable one, `O::switch` for on/off),
//!    `.default(…)` if it has one, `.heading(…)`, `.systemd(…)` and `.help(…)` (one
//!    paragraph without its final period, as `--help` shows it).
//!    A parser returns `Err(String)` naming the value and the accepted forms; the flag's
//!    error and the config file's `file:line:column` error both show it.
//! 3. Its behaviour: resolve it in [`Service::from_args`] (or the group's resolved
//!    type) and use it in the supervisor; say it in the systemd unit if it maps
//!    (`units::systemd`).
//!
//! The flag, the config key (with "did you mean"), `daemonic check`, the defaults and
//! the help then all follow from the entry; `table::tests` checks the table.

pub mod args;
pub mod console;
pub mod health;
pub mod limits;
pub mod log;
pub mod options;
pub mod privileges;
pub mod probe;
pub mod readiness;
pub mod restart;
pub mod sockets;
pub mod systemd;
pub mod table;
pub mod timestamp;

use std::ffi::OsString;
use std::path::PathBuf;
use std::time::Duration;

use anyhow::{Result, anyhow};
use daemonic::Signal;

pub use args::{ServiceArgs, parse_signal};
pub use readiness::{LogLine, Readiness};

use console::Console;
use health::Health;
use limits::Limits;
use log::LogConfig;
use probe::Schedule;
use restart::{Backoff, Policy};

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
    pub health: Health,
    /// Where the child's stdout and stderr are captured; `None`: they are inherited.
    pub log: Option<LogConfig>,
    /// Who the child runs as (looked up already); `None`: as the supervisor.
    pub privileges: Option<Box<daemonic::privileges::Prepared>>,
    /// The kernel's limits on the tree (whether this supervisor can enforce them is
    /// checked before it runs the service: `supervisor::limits::check`).
    pub limits: Limits,
    /// `--restart-on-memory`: the size and how often it is checked.
    pub memory_restart: Option<(u64, Duration)>,
    /// Without `log`: the child's output goes to the supervisor's stdout and stderr, each
    /// line after `name | ` (`run -f`); `None` with no `log`: inherited as it is.
    pub console: Option<Console>,
    /// `--socket`: held by the supervisor, passed to every start (see `crate::sockets`).
    pub sockets: Vec<crate::sockets::SocketSpec>,
    /// `--fd-store-max`: the bound of the service's fd store.
    pub fd_store_max: usize,
    /// `--socket-activation`.
    pub socket_activation: sockets::Activation,
}

impl Service {
    /// The service `a` describes (its users and groups looked up, its env files read).
    /// Its output is captured when `default_log` is given (the
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
        // Whether this supervisor can enforce them is checked where it runs the service
        // (`supervisor::limits::check`).
        let limits = a.limits.limits();
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
        let sockets = a.sockets.specs()?;
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
                start_retries: a.start_retries,
            },
            on_give_up: a.on_give_up,
            health: a.health.into(),
            log,
            privileges: privileges.map(Box::new),
            limits,
            memory_restart: a.limits.memory_restart(),
            console: None,
            sockets,
            socket_activation: a.sockets.socket_activation,
            fd_store_max: a
                .sockets
                .fd_store_max
                .map_or(crate::sockets::fdstore::DEFAULT_MAX, |n| n as usize),
        })
    }
}

/// The basename of a program, as a default service name.
pub fn default_name(program: &OsString) -> String {
    PathBuf::from(program)
        .file_name()
        .map(|n| n.to_string_lossy().into_owned())
        .unwrap_or_else(|| "service".into())
}
