//! One file per subcommand.

pub mod check;
pub mod completions;
pub mod down;
pub mod install;
pub mod list;
pub mod logs;
pub mod man;
pub mod reload;
pub mod reopen;
pub mod restart;
pub mod run;
pub mod signal;
pub mod start;
pub mod status;
pub mod stop;
pub mod uninstall;
pub mod unit;
pub mod up;

use std::time::Duration;

use anyhow::{Context, bail};

use crate::control::{self, Request, Response};
use crate::state_dir::{StateDir, check_name};

/// How long `reload` and `signal` wait for the supervisor's answer.
const ANSWER_TIMEOUT: Duration = Duration::from_secs(10);

/// Sends `request` about service `name` to its supervisor's control socket: exit status 0
/// (and nothing printed) when it is done, an error with the supervisor's reason otherwise.
fn ask(dirs: &StateDir, name: &str, request: &Request, timeout: Duration) -> anyhow::Result<u8> {
    check_name(name)?;
    dirs.ensure()?;
    let path = dirs.control_socket(name);
    match control::call(&path, request, timeout).with_context(|| name.to_string())? {
        Response::Done(_) => Ok(0),
        Response::Error(why) => bail!("{name}: {why}"),
        Response::Services(_) => bail!(
            "{name}: {}: unexpected answer to {} (a list of services)",
            path.display(),
            request.op()
        ),
    }
}

/// Ends the process with a usage error (exit status 2) when no command was given after
/// `--` (it is optional for clap, since `run -f` takes a file instead).
fn require_command(service: &crate::service::ServiceArgs, usage: &str) {
    if service.command.is_empty() {
        clap::Error::raw(
            clap::error::ErrorKind::MissingRequiredArgument,
            format!("the command to run is missing\n\nUsage: {usage}\n"),
        )
        .exit();
    }
}

/// A path made absolute against the directory the command was typed in (a detached
/// supervisor runs in `/`).
fn absolute_path(text: &str) -> Result<std::path::PathBuf, String> {
    std::path::absolute(text).map_err(|e| format!("{text:?}: {e}"))
}

/// A process's exit status as the `u8` a shell sees (codes are 0–255; 128+signal).
fn exit_code(exit: daemonic::process::Exit) -> u8 {
    exit.shell_status().clamp(0, 255) as u8
}

/// Supervises `service` until it is stopped, exits for good or gives up, then releases the
/// pid file; the exit status is the child's (last): 127/126 if it could not be
/// found/executed (with the reason on stderr), 128+N if signal N killed it. With `dirs`
/// (a named service), keeps its status file and serves its control socket there. With
/// `init`, the supervisor is a container's init (`supervisor::init`). With `pid_file`,
/// the supervisor also holds that pid file (`--pid-file`) for its life.
fn run_service(
    service: &crate::service::Service,
    running: daemonic::Running,
    dirs: Option<&crate::state_dir::StateDir>,
    init: Option<crate::supervisor::init::Init>,
    pid_file: Option<&std::path::Path>,
) -> anyhow::Result<u8> {
    use anyhow::Context;
    let name = &service.name;
    // Taken here, in the (detached) supervisor, so that it names the supervisor; an error
    // reaches the waiting launcher like any other.
    let _pid_file = match pid_file.map(daemonic::PidFile::lock).transpose() {
        Ok(p) => p,
        Err(e) => {
            let _ = running.fail(&e.to_string(), e.os_error());
            return Err(anyhow::Error::new(e).context(name.clone()));
        }
    };
    let entry = crate::supervisor::Entry {
        service: service.clone(),
        status_file: dirs.map(|d| d.status_file(name)),
    };
    let control = dirs.map(|d| d.control_socket(name));
    let exits = match crate::supervisor::supervise(vec![entry], &running, control, init) {
        Ok(exits) => exits,
        Err(e) => {
            // A detached supervisor's stderr may be /dev/null: the launcher prints this.
            let _ = running.fail(
                &format!("{e:#}"),
                e.downcast_ref::<daemonic::Error>()
                    .and_then(|d| d.os_error()),
            );
            return Err(e);
        }
    };
    running.finish().with_context(|| name.clone())?;
    Ok(exits.first().map_or(0, |e| exit_code(*e)))
}
