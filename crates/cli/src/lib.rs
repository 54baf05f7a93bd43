//! `daemonic`: run any program as a well-behaved daemon and keep it alive.
//!
//! The `daemonic` binary is [`main`]; it lives in a library so that tests can drive its
//! parts directly (the launchd renderer, the config loader). One file per subcommand
//! under `cmd/`; the supervisor (the process that owns services' children, and captures
//! their output) under `supervisor/`; the config file (`daemonic.toml`) under `config/`;
//! the control socket the commands use to ask a supervisor (protocol, server, client)
//! under `control/`; reading captured logs back (`daemonic logs`) under `tail/`;
//! service-manager files (systemd units, launchd plists, Windows services) under
//! `units/`. Exit codes are listed in `--help` and the README. Not a stable API.

#![deny(unsafe_code)]

mod cmd;
pub mod config;
pub mod control;
mod duration;
mod env_file;
mod hints;
mod human;
mod progress;
mod query;
pub mod service;
pub mod sockets;
mod state_dir;
pub mod supervisor;
mod tail;
pub mod units;
pub mod usage;

use std::path::PathBuf;
use std::process::ExitCode;

use clap::{CommandFactory, Parser, Subcommand};

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
    /// Directory for pid files, status files, control sockets and, when given, log files
    /// [env: DAEMONIC_STATE_DIR] [default: $XDG_RUNTIME_DIR/daemonic, or /run/daemonic as
    /// root, or /tmp/daemonic-$UID; as root, an XDG_RUNTIME_DIR not owned by root is
    /// ignored]. Every command refuses a symlink here and a directory another user owns or
    /// may write to.
    // The variable is read in `main`, not by clap's `env`: clap would then show
    // `--state-dir <DIR>` in every usage line as if it were required.
    #[arg(long, global = true, value_name = "DIR")]
    state_dir: Option<PathBuf>,
    #[command(subcommand)]
    command: Command,
}

// `defer`: a subcommand's arguments are built only when it is the one invoked (clap_complete
// and clap_mangen build the whole tree themselves): a `start` no longer builds every other
// subcommand's options first (docs/benchmarks.md, "Shorter start-up, one status write
// per turn").
#[derive(Subcommand, Debug)]
#[command(defer = true)]
enum Command {
    /// Supervise CMD in the foreground (under systemd, in a container, in a terminal).
    Run(cmd::run::Args),
    /// Detach a supervisor for CMD; return once CMD is ready (or fail with its reason).
    Start(cmd::start::Args),
    /// Stop a started service: its stop signal, then SIGKILL to its process group.
    Stop(cmd::stop::Args),
    /// Show whether services run: state, pids, uptime, restarts, cpu and memory (exit 3 if
    /// not running).
    ///
    /// Asks each service's supervisor through its control socket (NAME.sock in the state
    /// directory), or reads its status file while it is still starting. Exit status 0 if
    /// running, 3 if not; without NAME, 0 if any service runs.
    Status(cmd::status::Args),
    /// A table of every service running in the state directory.
    ///
    /// Columns: NAME STATE PID UPTIME (time in the current state) RESTARTS LAST-EXIT CPU
    /// (seconds) MEM (resident). Only the header when nothing runs; a control socket that
    /// nobody answers (its supervisor was killed) is skipped with a note on stderr.
    List(cmd::list::Args),
    /// Stop a service's program and start it again (through its supervisor).
    ///
    /// Silent on success; exit status 1 with the supervisor's reason otherwise.
    Restart(cmd::restart::Args),
    /// Ask a service's program to reload: its --reload-signal (through its supervisor).
    ///
    /// Silent on success; exit status 1 with the supervisor's reason otherwise.
    Reload(cmd::reload::Args),
    /// Reopen services' log files after an external logrotate renamed them (its `create`
    /// mode; use it in `postrotate`).
    ///
    /// Asks the supervisor that writes the log (`signal NAME USR1` would reach the program
    /// instead). Prints what was reopened; exit status 1 with the reason otherwise.
    Reopen(cmd::reopen::Args),
    /// Send a signal to a service's program (through its supervisor).
    ///
    /// The supervisor sends it through the program's pidfd, so it cannot reach a process
    /// that reused the pid. Silent on success; exit status 1 with the supervisor's reason
    /// otherwise.
    Signal(cmd::signal::Args),
    /// Show a service's captured output: the last lines, then (-f) new ones as written.
    ///
    /// With several NAMEs, or none (every service of ./daemonic.toml, or of -c FILE, or
    /// without a file of the state directory), one view: `name | line`, merged in time
    /// order (by the lines' --log-timestamps times, else by file modification time).
    Logs(cmd::logs::Args),
    /// Run the services of a config file (daemonic.toml) in dependency order, detached;
    /// return once they are ready. Again after an edit: apply the difference.
    ///
    /// The first `up` starts one supervisor for the file; a later `up` (or SIGHUP to that
    /// supervisor) reads the file again: new services start, removed ones stop, changed
    /// ones restart, unchanged ones are left alone. A service starts once every service in
    /// its `depends-on` is ready. Progress is shown live on a terminal, as plain lines
    /// otherwise, as JSON lines with --json. Exit status: 0 all ready; 1 one failed (with
    /// why); 124 not all ready within --timeout.
    Up(cmd::up::Args),
    /// Stop the services of a config file, dependents first (all, and their supervisor,
    /// without NAMEs).
    Down(cmd::down::Args),
    /// Check a config file: every error at once, each at file:line:column (exit status 1).
    Check(cmd::check::Args),
    /// Print the systemd unit of a configured service: systemd's own directives for its
    /// options, sandboxed by default (see --unit-hardening in `start --help`).
    ///
    /// Type=notify when the service is ready = "notify", else Type=exec; restart policy,
    /// start limit, watchdog, stop and reload, user, capabilities and environment as
    /// systemd directives. A service that needs what systemd lacks (a readiness probe,
    /// health checks, log files with rotation, an on-give-up hook) runs under `daemonic
    /// run` in its unit, which reports READY=1 and pings systemd's watchdog. With --up,
    /// the unit of the file's own supervisor (`daemonic run -f FILE`).
    Unit(cmd::unit::Args),
    /// Install a configured service as a systemd unit (with the units of the services it
    /// depends on); --enable, --now. Again: "unchanged", or the file is updated.
    ///
    /// A system unit in /etc/systemd/system as root, a user unit in
    /// ~/.config/systemd/user (systemctl --user, WantedBy=default.target) otherwise.
    /// Only unit files daemonic wrote are replaced (unless --force); systemd is reloaded
    /// when a file changed.
    Install(cmd::install::Args),
    /// Stop, disable and remove a service's systemd unit (a missing one is a note, not an
    /// error).
    Uninstall(cmd::uninstall::Args),
    /// Print a shell completion script (bash, zsh, fish, elvish, powershell).
    ///
    /// bash: `daemonic completions bash > ~/.local/share/bash-completion/completions/daemonic`;
    /// zsh: `daemonic completions zsh > "${fpath[1]}/_daemonic"`; fish: `daemonic
    /// completions fish > ~/.config/fish/completions/daemonic.fish`.
    Completions(cmd::completions::Args),
    /// Print the manual page (roff; `daemonic man | man -l -`), or with --dir write one
    /// page per subcommand there.
    Man(cmd::man::Args),
}

/// The `daemonic` command line.
pub fn main() -> ExitCode {
    // The supervisor's sentinel is this binary again (`Sentinel::start_exec`).
    daemonic::sentinel::serve_if_asked();
    // A supervisor's threads (the log archiver) allocate rarely: one heap is enough.
    daemonic::memory::use_one_heap();
    let args: Vec<std::ffi::OsString> = std::env::args_os().skip(1).collect();
    let argv = std::iter::once("daemonic".into()).chain(args.iter().cloned());
    let cli = Cli::try_parse_from(argv).unwrap_or_else(|e| hints::improve(e, &args).exit());
    let state_dir = cli.state_dir.or_else(|| {
        std::env::var_os("DAEMONIC_STATE_DIR")
            .filter(|v| !v.is_empty())
            .map(PathBuf::from)
    });
    let dirs = state_dir::StateDir::new(state_dir);
    let result = match cli.command {
        Command::Run(a) => cmd::run::run(a, &dirs),
        Command::Start(a) => cmd::start::run(a, &dirs),
        Command::Stop(a) => cmd::stop::run(a, &dirs),
        Command::Status(a) => cmd::status::run(a, &dirs),
        Command::List(a) => cmd::list::run(a, &dirs),
        Command::Restart(a) => cmd::restart::run(a, &dirs),
        Command::Reload(a) => cmd::reload::run(a, &dirs),
        Command::Signal(a) => cmd::signal::run(a, &dirs),
        Command::Reopen(a) => cmd::reopen::run(a, &dirs),
        Command::Logs(a) => cmd::logs::run(a, &dirs),
        Command::Up(a) => cmd::up::run(a, &dirs),
        Command::Down(a) => cmd::down::run(a, &dirs),
        Command::Check(a) => cmd::check::run(a),
        Command::Unit(a) => cmd::unit::run(a),
        Command::Install(a) => cmd::install::run(a),
        Command::Uninstall(a) => cmd::uninstall::run(a),
        Command::Completions(a) => cmd::completions::run(a, Cli::command()),
        Command::Man(a) => cmd::man::run(a, Cli::command()),
    };
    match result {
        Ok(code) => ExitCode::from(code),
        Err(e) => {
            eprintln!("daemonic: {e:#}");
            if e.downcast_ref::<hints::UsageError>().is_some() {
                ExitCode::from(2)
            } else {
                ExitCode::FAILURE
            }
        }
    }
}
