//! `daemonic run [--name NAME] -- CMD ARGS…`: supervise in the foreground.
//!
//! No fork. Under systemd (or another supervisor) readiness and status are forwarded to
//! it. With `--name`, a pid file in the state directory makes `status` and `stop` work and
//! keeps a second `run` of the same name from starting. Exits with the child's status
//! (128+signal if it was killed).
//!
//! As PID 1 (a container's entrypoint), or with `--init`, the supervisor is also an init:
//! it reaps orphans and forwards signals (`supervisor::init`); `--no-init` opts out.

use anyhow::{Context, Result};
use daemonic::Daemon;

use crate::service::{self, Service, ServiceArgs};
use crate::state_dir::{StateDir, check_name};
use crate::supervisor::init::Init;

#[derive(clap::Args, Debug)]
pub struct Args {
    /// Name of the service (enables `daemonic status/stop NAME`).
    #[arg(long)]
    name: Option<String>,
    /// Be a container's init (on by itself when daemonic is PID 1): reap orphans, forward
    /// signals.
    ///
    /// Reaps the orphaned zombies of the program's descendants (outside PID 1, as a
    /// subreaper); forwards SIGQUIT, SIGUSR1, SIGUSR2, SIGWINCH, SIGCONT and SIGALRM to the
    /// program's main process; SIGTERM, SIGINT and SIGPWR stop it (stop signal, timeout,
    /// SIGKILL), SIGHUP sends it the reload signal. Exits with the program's status.
    #[arg(long, conflicts_with = "no_init")]
    init: bool,
    /// Not an init, even as PID 1.
    #[arg(long)]
    no_init: bool,
    #[command(flatten)]
    service: ServiceArgs,
}

pub fn run(a: Args, dirs: &StateDir) -> Result<u8> {
    let explicit = a.name.is_some();
    let name = a
        .name
        .unwrap_or_else(|| service::default_name(&a.service.command[0]));
    check_name(&name)?;
    // Before any child exists, so that every orphan comes to us.
    let init = Init::wanted(a.init, a.no_init)?;
    // In the foreground the output is inherited (a terminal, journald, `docker logs`)
    // unless --log-file asks for capture.
    let service = Service::from_args(name.clone(), a.service, None)?;
    let mut daemon = Daemon::new().foreground(true);
    if explicit {
        dirs.ensure()?;
        daemon = daemon.pid_file(dirs.pid_file(&name));
    }
    let running = daemon.start().with_context(|| name.clone())?;
    super::supervise(&service, running, explicit.then_some(dirs), init)
}
