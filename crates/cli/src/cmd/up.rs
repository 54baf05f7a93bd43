//! `daemonic up [-f FILE] [NAME…]`: run the services of a config file, in dependency
//! order, under one detached supervisor; return once they are ready (or failed, with why).
//!
//! The first `up` starts the supervisor (`<state-dir>/up/<id>.pid` and `.sock`, the id
//! being the file's project name or its path's hash: see [`crate::config::Config::id`]);
//! each service is also reachable at `<state-dir>/NAME.sock`, so `status`, `logs`,
//! `restart`… work on it as on any service. A later `up` (or SIGHUP to the supervisor)
//! reads the file again and applies the difference: new services start, removed ones
//! stop, changed ones restart, unchanged ones are not touched. With NAMEs, only those and
//! what they depend on are started. `--rerun NAME` runs the one-shot NAME again even if
//! it is unchanged and has completed.
//!
//! With `--attach`, `up` then follows the services' logs as one view (`name | line`, see
//! [`super::logs`]) until Ctrl-C, which leaves the services running.
//!
//! Exit status: 0 when every service asked for is ready; 1 if one failed (or waits for one
//! that failed); 124 if not all were ready within --timeout (they go on starting).

use std::collections::BTreeMap;
use std::path::PathBuf;
use std::process::{Command, Stdio};
use std::time::Duration;

use anyhow::{Context, Result, bail};
use daemonic::pidfile::{Holder, PidFile};
use daemonic::{Daemon, Output};

use crate::config::{self, Config};
use crate::control::{self, Request, Response};
use crate::progress::{self, Goal, Style};
use crate::state_dir::StateDir;
use crate::supervisor::{self, Group};

#[derive(clap::Args, Debug)]
pub struct Args {
    /// The config file.
    #[arg(short = 'f', long = "file", default_value = config::DEFAULT_FILE, value_name = "FILE")]
    file: PathBuf,
    /// How long to wait for the services to be ready (they go on starting after it).
    #[arg(long, value_parser = crate::duration::parse, default_value = "60s", value_name = "DURATION")]
    timeout: Duration,
    /// Show progress as JSON lines (one object per change of a service).
    #[arg(long)]
    json: bool,
    /// Then stay attached: follow the services' logs, merged as `name | line` (as
    /// `daemonic logs -f`), until Ctrl-C; the services keep running (exit status: up's).
    #[arg(long, conflicts_with = "json")]
    attach: bool,
    /// Append the supervisor's own stdout and stderr to FILE [default: /dev/null]; its
    /// notes also go into each service's log.
    #[arg(long = "supervisor-log", value_name = "FILE")]
    supervisor_log: Option<PathBuf>,
    /// Run the one-shot NAME again even if it is unchanged and has completed (repeatable,
    /// or NAME,NAME…); it is started with what it depends on, like a NAME argument.
    #[arg(long, value_name = "NAME", value_delimiter = ',')]
    rerun: Vec<String>,
    /// Internal: start or update the supervisor, do not follow (what `up` runs to launch).
    #[arg(long, hide = true)]
    launch_only: bool,
    /// Services to start (with what they depend on) [default: all].
    #[arg(value_name = "NAME")]
    names: Vec<String>,
}

pub fn run(a: Args, dirs: &StateDir) -> Result<u8> {
    let config = config::load(&a.file)?;
    let rerun = config.one_shots(&a.rerun)?;
    let wanted = if a.names.is_empty() {
        Vec::new()
    } else {
        [a.names.as_slice(), &rerun].concat()
    };
    let order = config.with_dependencies(&wanted)?;
    dirs.ensure()?;
    let (pid_file, socket) = dirs.group_files(&config.id)?;
    if a.launch_only {
        return launch(a, config, dirs.clone(), pid_file, socket);
    }
    let style = Style::pick(a.json);
    match PidFile::holder(&pid_file)? {
        Holder::Locked(_) => update(&socket, &a.names, &rerun, style)?,
        Holder::None => {
            // The launcher exits once the supervisor runs; a child of ours does the
            // launching so that we can follow the services after it.
            let exe = std::env::current_exe().context("find the daemonic executable")?;
            let mut cmd = Command::new(exe);
            // Only if given: a default state directory keeps the default log directory.
            if let Some(dir) = dirs.given() {
                cmd.arg("--state-dir").arg(dir);
            }
            cmd.arg("up")
                .arg("--launch-only")
                .arg("-f")
                .arg(&config.file)
                .args(
                    a.supervisor_log
                        .iter()
                        .flat_map(|l| [PathBuf::from("--supervisor-log"), l.clone()]),
                )
                .args(rerun.iter().flat_map(|n| ["--rerun", n]))
                .arg("--")
                .args(&a.names)
                .stdin(Stdio::null());
            let status = cmd.status().context("launch the supervisor")?;
            if !status.success() {
                return Ok(status.code().map_or(1, |c| c.clamp(1, 255) as u8));
            }
        }
    }
    let deps: BTreeMap<String, Vec<String>> = config
        .services
        .iter()
        .map(|d| (d.name.clone(), d.depends_on.clone()))
        .collect();
    let status = progress::follow(
        &socket,
        &pid_file,
        &order,
        &deps,
        Goal::Up,
        a.timeout,
        style,
    )?;
    if a.attach {
        // In the file's order, so each name has the colour `run -f` gives it.
        let order: std::collections::HashSet<&String> = order.iter().collect();
        let names: Vec<String> = config
            .services
            .iter()
            .map(|d| d.name.clone())
            .filter(|n| order.contains(n))
            .collect();
        super::logs::show(dirs, &names, 10, true)?;
    }
    Ok(status)
}

/// Asks the running supervisor to read its file again and apply it.
fn update(
    socket: &std::path::Path,
    names: &[String],
    rerun: &[String],
    style: Style,
) -> Result<()> {
    let request = Request::Up {
        names: names.to_vec(),
        rerun: rerun.to_vec(),
    };
    match control::call(socket, &request, crate::query::TIMEOUT)? {
        Response::Done(summary) => {
            if style != Style::Json {
                println!("{summary}");
            }
            Ok(())
        }
        Response::Error(why) => bail!("{why}"),
        Response::Services(_) => bail!("{}: unexpected answer to up", socket.display()),
    }
}

/// Becomes the detached supervisor of `config` (returns only in it, when it ends).
fn launch(
    a: Args,
    config: Config,
    dirs: StateDir,
    pid_file: PathBuf,
    socket: PathBuf,
) -> Result<u8> {
    let project = config.project.clone();
    let mut daemon = Daemon::new()
        .name(format!("daemonic up {project}"))
        .pid_file(&pid_file)
        .ready_timeout(Duration::from_secs(30))
        // Its stderr is its notes (and the stderr services without a log inherit), which
        // `up` follows through the control socket instead.
        .forward_stderr(false);
    if let Some(log) = &a.supervisor_log {
        daemon = daemon.stdout(Output::file(log)).stderr(Output::file(log));
    }
    let running = match daemon.start() {
        Ok(r) => r,
        // Another `up` got there first: apply the file through it.
        Err(e) if e.kind() == daemonic::ErrorKind::AlreadyRunning => {
            update(&socket, &a.names, &a.rerun, Style::Lines)?;
            return Ok(0);
        }
        Err(e) => return Err(e).with_context(|| project.clone()),
    };
    let group = Group {
        config,
        dirs,
        detached: true,
    };
    let result = supervisor::supervise_group(group, &a.names, &running, socket, None);
    if let Err(e) = &result {
        let _ = running.fail(&format!("{e:#}"), None);
    }
    result?;
    running.finish().with_context(|| project.clone())?;
    Ok(0)
}
