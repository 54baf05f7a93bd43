//! `daemonic`: run any program as a well-behaved daemon and keep it alive.
//!
//! The `daemonic` binary is [`main`]; it lives in a library so that benchmarks can drive
//! the supervisor directly (many services in one supervisor before the config file
//! lands). One file per subcommand under `cmd/`; the supervisor (the process that owns
//! services' children, and captures their output) under `supervisor/`; reading captured
//! logs back (`daemonic logs`) under `tail/`. Exit codes are listed in `--help` and the
//! README. Not a stable API.

#![deny(unsafe_code)]

mod cmd;
mod duration;
pub mod service;
mod state_dir;
pub mod supervisor;
mod tail;

use std::path::PathBuf;
use std::process::ExitCode;

use clap::{Parser, Subcommand};

/// Exit status for "not running" (`status`), as LSB init scripts use it.
pub const EXIT_NOT_RUNNING: u8 = 3;

#[derive(Parser, Debug)]
#[command(
    name = "daemonic",
    version,
    about = "Run any program as a well-behaved daemon: detach with readiness, pid-file lock, clean stop.",
    after_help = "Exit status: 0 success; 1 failure (message on stderr); 2 usage error; \
3 not running (status); when `start` fails because the program exited or was killed before \
it was ready: its own status, or 128+signal; 124 not ready within --timeout; \
126/127 the command could not be executed / was not found."
)]
struct Cli {
    /// Directory for pid files and status files, and, when given, log files [default:
    /// $XDG_RUNTIME_DIR/daemonic, or /run/daemonic as root, or /tmp/daemonic-$UID].
    #[arg(long, global = true, env = "DAEMONIC_STATE_DIR", value_name = "DIR")]
    state_dir: Option<PathBuf>,
    #[command(subcommand)]
    command: Command,
}

#[derive(Subcommand, Debug)]
enum Command {
    /// Supervise CMD in the foreground (under systemd, in a container, in a terminal).
    Run(cmd::run::Args),
    /// Detach a supervisor for CMD; return once CMD is ready (or fail with its reason).
    Start(cmd::start::Args),
    /// Stop a started service: its stop signal, then SIGKILL to its process group.
    Stop(cmd::stop::Args),
    /// Show whether a service runs, its state and pids (exit 3 if not running).
    Status(cmd::status::Args),
    /// Show a service's captured output: the last lines, then (-f) new ones as written.
    Logs(cmd::logs::Args),
}

/// The `daemonic` command line.
pub fn main() -> ExitCode {
    let cli = Cli::parse();
    let dirs = state_dir::StateDir::new(cli.state_dir);
    let result = match cli.command {
        Command::Run(a) => cmd::run::run(a, &dirs),
        Command::Start(a) => cmd::start::run(a, &dirs),
        Command::Stop(a) => cmd::stop::run(a, &dirs),
        Command::Status(a) => cmd::status::run(a, &dirs),
        Command::Logs(a) => cmd::logs::run(a, &dirs),
    };
    match result {
        Ok(code) => ExitCode::from(code),
        Err(e) => {
            eprintln!("daemonic: {e:#}");
            ExitCode::FAILURE
        }
    }
}
