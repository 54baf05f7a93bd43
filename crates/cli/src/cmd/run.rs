//! `daemonic run [--name NAME] -- CMD ARGS…`: supervise in the foreground.
//! `daemonic run -f daemonic.toml [NAME…]`: the services of a config file, in the
//! foreground.
//!
//! No fork. Under systemd (or another supervisor) readiness and status are forwarded to
//! it. With `--name`, a pid file in the state directory makes `status` and `stop` work and
//! keeps a second `run` of the same name from starting. Exits with the child's status
//! (128+signal if it was killed).
//!
//! With `-f`, as `up` does but without detaching: each service's stdout and stderr go to
//! daemonic's, every line as `name | line` (names padded to the longest, coloured on a
//! terminal unless `NO_COLOR`; see `supervisor::capture::console`), readiness is forwarded once every service asked for is ready, and the
//! supervisor ends when every service has ended — or, if the file names a `main` service,
//! when that one ends (the others are then stopped) — with the exit status of `main` (or
//! of the only service; else 0). SIGTERM stops everything, dependents first; SIGHUP reads
//! the file again, as `up` does.
//!
//! As PID 1 (a container's entrypoint), or with `--init`, the supervisor is also an init:
//! it reaps orphans and forwards signals (`supervisor::init`); `--no-init` opts out.

use std::path::PathBuf;

use anyhow::{Context, Result};
use daemonic::Daemon;

use crate::service::{self, Service, ServiceArgs};
use crate::state_dir::{StateDir, check_name};
use crate::supervisor::init::Init;
use crate::supervisor::{self, Group};

#[derive(clap::Args, Debug)]
pub struct Args {
    /// Name of the service (enables `daemonic status/stop NAME`).
    #[arg(long, conflicts_with = "file")]
    name: Option<String>,
    /// Run the services of this config file instead of CMD (the service flags come from
    /// the file).
    #[arg(short = 'f', long = "file", value_name = "FILE")]
    file: Option<PathBuf>,
    /// With -f: the services to run (with what they depend on) [default: all].
    #[arg(value_name = "NAME", requires = "file")]
    services: Vec<String>,
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
    /// Write daemonic's pid to FILE, locked while it runs and removed when it ends (for
    /// init scripts and start-stop-daemon); refused if another process holds it.
    #[arg(long = "pid-file", value_name = "FILE", value_parser = super::absolute_path, conflicts_with = "file")]
    pid_file: Option<PathBuf>,
    #[command(flatten)]
    service: ServiceArgs,
}

pub fn run(a: Args, dirs: &StateDir) -> Result<u8> {
    // Before any child exists, so that every orphan comes to us.
    let init = Init::wanted(a.init, a.no_init)?;
    if let Some(file) = &a.file {
        return run_file(file, &a.services, dirs, init);
    }
    super::require_command(&a.service, "daemonic run [OPTIONS] -- CMD [ARGS]...");
    let explicit = a.name.is_some();
    let name = a
        .name
        .unwrap_or_else(|| service::default_name(&a.service.command[0]));
    check_name(&name)?;
    // In the foreground the output is inherited (a terminal, journald, `docker logs`)
    // unless --log-file asks for capture.
    crate::supervisor::limits::check(&a.service.limits.limits())?;
    let service = Service::from_args(name.clone(), a.service, None)?;
    let mut daemon = Daemon::new().foreground(true);
    if explicit {
        dirs.ensure()?;
        daemon = daemon.pid_file(dirs.pid_file(&name));
    }
    let running = daemon.start().with_context(|| name.clone())?;
    super::run_service(
        &service,
        running,
        explicit.then_some(dirs),
        init,
        a.pid_file.as_deref(),
    )
}

fn run_file(
    file: &std::path::Path,
    names: &[String],
    dirs: &StateDir,
    init: Option<Init>,
) -> Result<u8> {
    let config = crate::config::load(file)?;
    config.with_dependencies(names)?;
    dirs.ensure()?;
    let project = config.project.clone();
    let (pid_file, socket) = dirs.group_files(&config.id)?;
    let running = Daemon::new()
        .foreground(true)
        .pid_file(pid_file)
        .start()
        .with_context(|| project.clone())?;
    let group = Group {
        config,
        dirs: dirs.clone(),
        detached: false,
    };
    let exit = supervisor::supervise_group(group, names, &running, socket, init)?;
    running.finish().with_context(|| project.clone())?;
    Ok(exit.map_or(0, super::exit_code))
}
