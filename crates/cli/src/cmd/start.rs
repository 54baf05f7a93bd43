//! `daemonic start --name NAME -- CMD ARGS…`: detach a supervisor for CMD and return once
//! CMD is ready.
//!
//! This is the library's [`daemonic::Daemon`] applied to daemonic itself: the pid file
//! `<state-dir>/NAME.pid` is locked before forking (`already running (pid N)` in the
//! terminal), the supervisor detaches, starts CMD, and tells the waiting launcher
//! `READY=1` when CMD is ready (see `--ready`). If CMD fails first, the launcher prints why
//! and exits non-zero.
//!
//! On success it prints one line, `web: ready (pid 4242)`. While it waits it shows each
//! failed attempt (with `--restart`) and, when the program fails before it is ready, the
//! program's last lines from this start (its captured log) above the reason. `-q`: only a
//! failure's reason.

use std::path::PathBuf;

use anyhow::{Context, Result};
use daemonic::{Daemon, Output};

use crate::service::{Service, ServiceArgs};
use crate::state_dir::{StateDir, check_name};

#[derive(clap::Args, Debug)]
pub struct Args {
    /// Name of the service (its pid file is STATE_DIR/NAME.pid).
    #[arg(long)]
    name: String,
    /// Append the supervisor's own stdout and stderr (its notes on restarts, probe
    /// failures, errors) to FILE [default: /dev/null]; they also go into the service's log
    /// (--log-file).
    #[arg(long = "supervisor-log", alias = "log", value_name = "FILE")]
    supervisor_log: Option<PathBuf>,
    /// Also write the supervisor's pid to FILE (for init scripts, start-stop-daemon,
    /// monit), locked for the supervisor's life and removed when it ends; a second start
    /// with the same FILE fails with "already running (pid N)".
    #[arg(long = "pid-file", value_name = "FILE", value_parser = super::absolute_path)]
    pid_file: Option<PathBuf>,
    /// Print nothing on success, and no progress while waiting (a failure is still
    /// reported).
    #[arg(short, long)]
    quiet: bool,
    #[command(flatten)]
    service: ServiceArgs,
}

pub fn run(a: Args, dirs: &StateDir) -> Result<u8> {
    super::require_command(
        &a.service,
        "daemonic start --name NAME [OPTIONS] -- CMD [ARGS]...",
    );
    check_name(&a.name)?;
    dirs.ensure()?;
    let name = a.name;
    crate::supervisor::limits::check(&a.service.limits.limits())?;
    let service = Service::from_args(name.clone(), a.service, Some(dirs.log_file(&name)))?;
    if let Some(log) = &service.log {
        // Here, so that an unwritable log directory is reported in the terminal.
        log.prepare().with_context(|| name.clone())?;
    }
    let mut daemon = Daemon::new()
        .name(format!("daemonic: {name}"))
        .pid_file(dirs.pid_file(&name))
        .ready_timeout(service.start_timeout)
        // `web: ready (pid 4242)` on success; while waiting, each failed attempt and, when
        // the first start fails, the program's last lines from its log.
        .progress(!a.quiet)
        .announce_ready(!a.quiet)
        // The supervisor's stderr is its notes, which the progress above already shows.
        .forward_stderr(false);
    if let Some(log) = a.supervisor_log {
        daemon = daemon.stdout(Output::file(&log)).stderr(Output::file(&log));
    }
    // Returns only in the detached supervisor; the launcher exits inside.
    let running = daemon.start().with_context(|| name.clone())?;
    super::run_service(&service, running, Some(dirs), None, a.pid_file.as_deref())
}
