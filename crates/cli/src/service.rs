//! A service: what to run and how to supervise it. Built from flags today, and from the
//! config file when that lands; the supervisor sees only this.

use std::ffi::OsString;
use std::path::PathBuf;
use std::time::Duration;

use anyhow::{Result, anyhow};
use clap::{Args, ValueEnum};
use daemonic::Signal;

/// How the supervisor decides that the child is ready.
#[derive(Debug, Clone, Copy, PartialEq, Eq, ValueEnum)]
pub enum Readiness {
    /// `READY=1` on the notify socket, or the grace period passing, whichever comes first.
    Auto,
    /// Only `READY=1` on the notify socket (for programs that speak the protocol).
    Notify,
    /// The grace period passing without the child exiting.
    Grace,
}

/// Flags every supervising command shares.
#[derive(Args, Debug, Clone)]
pub struct ServiceArgs {
    /// How readiness is decided: auto = READY=1 via $NOTIFY_SOCKET or --grace passing
    /// without an exit; notify = READY=1 only; grace = --grace only.
    #[arg(long, value_enum, default_value = "auto")]
    pub ready: Readiness,
    /// How long the child must stay up to count as ready without READY=1.
    #[arg(long, value_parser = crate::duration::parse, default_value = "1s", value_name = "DURATION")]
    pub grace: Duration,
    /// Signal that asks the child to stop.
    #[arg(long, value_parser = parse_signal, default_value = "TERM", value_name = "SIGNAL")]
    pub stop_signal: Signal,
    /// How long to wait after the stop signal before SIGKILL to the child's process group.
    #[arg(long, value_parser = crate::duration::parse, default_value = "10s", value_name = "DURATION")]
    pub stop_timeout: Duration,
    /// Signal that asks the child to reload (sent when daemonic gets SIGHUP).
    #[arg(long, value_parser = parse_signal, default_value = "HUP", value_name = "SIGNAL")]
    pub reload_signal: Signal,
    /// Working directory of the child [default: the current directory].
    #[arg(long, value_name = "DIR")]
    pub dir: Option<PathBuf>,
    /// The program and its arguments.
    #[arg(last = true, required = true, value_name = "CMD")]
    pub command: Vec<OsString>,
}

/// Everything the supervisor needs to run one service.
#[derive(Debug, Clone)]
pub struct Service {
    pub name: String,
    pub program: OsString,
    pub args: Vec<OsString>,
    pub dir: PathBuf,
    pub ready: Readiness,
    pub grace: Duration,
    pub stop_signal: Signal,
    pub stop_timeout: Duration,
    pub reload_signal: Signal,
}

impl Service {
    pub fn from_args(name: String, a: ServiceArgs) -> Result<Service> {
        let mut command = a.command.into_iter();
        let program = command
            .next()
            .ok_or_else(|| anyhow!("no command given after --"))?;
        let dir = match a.dir {
            Some(d) => d,
            None => std::env::current_dir().map_err(|e| anyhow!("current directory: {e}"))?,
        };
        Ok(Service {
            name,
            program,
            args: command.collect(),
            dir,
            ready: a.ready,
            grace: a.grace,
            stop_signal: a.stop_signal,
            stop_timeout: a.stop_timeout,
            reload_signal: a.reload_signal,
        })
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
