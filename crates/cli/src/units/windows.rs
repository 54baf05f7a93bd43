//! Windows: a configured service as a Windows service, run by daemonic itself.
//!
//! # Status: written, not built
//!
//! The `daemonic` binary does not build for Windows today, and this module cannot change
//! that alone. Everything else in the CLI and the library is Unix: the supervisor waits
//! on pidfds and signals, spawns with fork/exec and process groups, speaks the notify
//! protocol over unix sockets with `SCM_CREDENTIALS`, and `ServiceArgs` itself holds
//! `nix` signals. What a Windows build needs, besides this module:
//!
//! 1. the CLI's `main` and its commands behind `cfg(unix)`, with a Windows `main` that
//!    knows two commands: `install`/`uninstall` (calling [`register`]/[`unregister`]) and
//!    the hidden `windows-service` (calling [`run`]);
//! 2. `config` loading without Unix calls (its checks use `PermissionsExt` for "is
//!    executable" and `getpwnam` for users): [`Spec::from_def`] needs a loaded [`Def`];
//! 3. the `daemonic` library behind `cfg(unix)` in the same way (it is not used here).
//!
//! So the portable half of this module — [`Spec`] (what the Windows service runs, and
//! the launch arguments that carry it) and [`Restarts`] (the restart policy as a pure
//! function) — is compiled and tested on Linux with the rest of the CLI; the
//! Windows-only half (`windows/service.rs`: the service entry point and the supervising
//! loop; `windows/register.rs`: the Service Control Manager calls) is compiled only for
//! Windows, which CI checks only where the `x86_64-pc-windows-gnu` target is installed.
//!
//! # The design: a small supervisor on `std::process`
//!
//! The Windows service *is* daemonic (`daemonic.exe windows-service --name=NAME <flags>
//! -- CMD…`, registered as `daemonic-NAME`, display name `daemonic: NAME`, started
//! automatically at boot, as LocalSystem). It starts the program as a child with
//! `std::process`, reports *Running* to the Service Control Manager once the child has
//! lived for `grace` (daemonic's `ready = grace`: there is no notify socket here),
//! restarts it by the restart policy with daemonic's backoff and start limit, and on
//! *Stop* (or shutdown) asks the program's process tree to close (`taskkill /T`), then
//! after `stop-timeout` ends it (`taskkill /T /F`). Output goes to the log file, appended.
//!
//! | daemonic | Windows | notes |
//! |---|---|---|
//! | service NAME | service `daemonic-NAME` | |
//! | `command` | the child, started by `std::process` | no shell; Windows quoting rules apply |
//! | `dir`, `env`, `env-file` | the child's directory and environment | env files are read at each start, never copied into the registry (readable by every user) |
//! | `restart`, `success-exit-codes`, `backoff*`, `start-limit` | daemonic's own restarts ([`Restarts`]) | `backoff-jitter` is not supported |
//! | `ready = auto/grace`, `grace` | *Running* reported after `grace` | notify and probes are not ported |
//! | `stop-timeout` | between `taskkill /T` and `taskkill /T /F` | a console program without a window ignores the first: it is then ended at once |
//! | `log-file`, `log-stderr-file` | appended files | never rotated; default `%ProgramData%\daemonic\logs\NAME.log` |
//!
//! Every other key is refused by [`Spec::from_def`] with its name (signals, health checks,
//! watchdog, users and groups — a Windows service runs as an account set with `sc.exe
//! config daemonic-NAME obj= …` — capabilities, chroot, umask, log rotation).

#[cfg(windows)]
mod register;
#[cfg(windows)]
mod service;

use std::collections::VecDeque;
use std::path::{Path, PathBuf};
use std::time::{Duration, Instant};

use anyhow::{Result, anyhow, bail};

use daemonic::process::Exit;

use crate::config::Def;
use crate::service::args::BACKOFF_RESET_AFTER;
use crate::supervisor::policy::{Backoff, Jitter, StartLimit, restarts};
#[cfg(windows)]
pub use register::{register, unregister};
#[cfg(windows)]
pub use service::run;

/// Every Windows service daemonic registers is named this followed by the service name.
pub const SERVICE_PREFIX: &str = "daemonic-";

/// The first launch argument: the (hidden) command that runs the Windows service.
pub const COMMAND: &str = "windows-service";

/// The keys of a service the Windows service honours (every other written key is
/// refused, see the module docs).
const SUPPORTED: &[&str] = &[
    "dir",
    "env",
    "env-file",
    "restart",
    "success-exit-codes",
    "backoff",
    "backoff-multiplier",
    "backoff-max",
    "backoff-reset-after",
    "start-limit",
    "ready",
    "grace",
    "stop-timeout",
    "log-file",
    "log-stderr-file",
];

/// When the program is started again (daemonic's `--restart`): the supervisor's own.
pub use crate::supervisor::policy::Restart;

/// What the Windows service runs, and how.
#[derive(Debug, Clone, PartialEq)]
pub struct Spec {
    pub name: String,
    /// The program and its arguments.
    pub command: Vec<String>,
    pub dir: Option<PathBuf>,
    pub env: Vec<(String, String)>,
    /// Read at each start (a leading `-` makes one optional).
    pub env_files: Vec<PathBuf>,
    pub restart: Restart,
    pub success_codes: Vec<i32>,
    pub backoff: Duration,
    pub backoff_multiplier: f64,
    pub backoff_max: Duration,
    pub backoff_reset_after: Duration,
    /// At most this many starts within this window.
    pub start_limit: Option<(u32, Duration)>,
    pub grace: Duration,
    pub stop_timeout: Duration,
    pub log_file: PathBuf,
    pub log_stderr_file: Option<PathBuf>,
}

impl Spec {
    /// The Windows service for `def`; output goes to `default_log` unless it names a
    /// `log-file`. An option the Windows service cannot honour is an error naming it.
    pub fn from_def(def: &Def, default_log: &Path) -> Result<Spec> {
        let mut refused = Vec::new();
        for flag in &def.flags {
            let (key, value) = split_flag(flag);
            // `ready` only as auto or grace: Running is reported after `grace`.
            let ready_ok = key != "ready" || matches!(value, Some("auto" | "grace"));
            let ok = SUPPORTED.contains(&key) && ready_ok;
            if !ok && !refused.contains(&key) {
                refused.push(key);
            }
        }
        if !refused.is_empty() {
            bail!(
                "service {}: not supported by the Windows service: {} (see docs/platforms.md)",
                def.name,
                refused.join(", ")
            );
        }
        let mut words = def.flags.clone();
        if !words.iter().any(|f| f.starts_with("--log-file=")) {
            words.push(format!("--log-file={}", default_log.display()));
        }
        words.push("--".into());
        words.extend(def.command.iter().cloned());
        Spec::parse(&def.name, &words).map_err(|e| anyhow!("service {}: {e:#}", def.name))
    }

    /// The launch arguments of the registered service: [`COMMAND`], `--name=NAME`, the
    /// flags, `--`, the command. [`Spec::from_args`] reads them back.
    pub fn to_args(&self) -> Vec<String> {
        let mut a = vec![COMMAND.to_string(), format!("--name={}", self.name)];
        if let Some(d) = &self.dir {
            a.push(format!("--dir={}", d.display()));
        }
        for (k, v) in &self.env {
            a.push(format!("--env={k}={v}"));
        }
        for f in &self.env_files {
            a.push(format!("--env-file={}", f.display()));
        }
        a.push(format!("--restart={}", self.restart.as_str()));
        let codes: Vec<String> = self.success_codes.iter().map(i32::to_string).collect();
        a.push(format!("--success-exit-codes={}", codes.join(",")));
        a.push(format!("--backoff={}", ms(self.backoff)));
        a.push(format!("--backoff-multiplier={}", self.backoff_multiplier));
        a.push(format!("--backoff-max={}", ms(self.backoff_max)));
        a.push(format!(
            "--backoff-reset-after={}",
            ms(self.backoff_reset_after)
        ));
        if let Some((n, window)) = self.start_limit {
            a.push(format!("--start-limit={n}/{}", ms(window)));
        }
        a.push(format!("--grace={}", ms(self.grace)));
        a.push(format!("--stop-timeout={}", ms(self.stop_timeout)));
        a.push(format!("--log-file={}", self.log_file.display()));
        if let Some(f) = &self.log_stderr_file {
            a.push(format!("--log-stderr-file={}", f.display()));
        }
        a.push("--".into());
        a.extend(self.command.iter().cloned());
        a
    }

    /// Reads what [`Spec::to_args`] wrote (the process's arguments after the program).
    pub fn from_args(args: &[String]) -> Result<Spec> {
        let Some((first, rest)) = args.split_first() else {
            bail!("{COMMAND}: no arguments");
        };
        if first != COMMAND {
            bail!("{COMMAND}: unexpected first argument {first:?}");
        }
        let name = rest
            .first()
            .and_then(|a| a.strip_prefix("--name="))
            .ok_or_else(|| anyhow!("{COMMAND}: --name=NAME must come first"))?;
        Spec::parse(name, &rest[1..])
    }

    /// `words`: `--key=value` flags (daemonic's spelling), `--`, then the command.
    fn parse(name: &str, words: &[String]) -> Result<Spec> {
        let dashes = words
            .iter()
            .position(|w| w == "--")
            .ok_or_else(|| anyhow!("no command after --"))?;
        let command = words[dashes + 1..].to_vec();
        if command.first().is_none_or(String::is_empty) {
            bail!("no command after --");
        }
        let mut s = Spec {
            name: name.to_string(),
            command,
            dir: None,
            env: Vec::new(),
            env_files: Vec::new(),
            restart: Restart::OnFailure,
            success_codes: vec![0],
            backoff: Duration::from_secs(1),
            backoff_multiplier: 2.0,
            backoff_max: Duration::from_secs(60),
            backoff_reset_after: crate::duration::parse(BACKOFF_RESET_AFTER)
                .expect("the default of --backoff-reset-after is a duration"),
            start_limit: None,
            grace: Duration::from_secs(1),
            stop_timeout: Duration::from_secs(10),
            log_file: PathBuf::new(),
            log_stderr_file: None,
        };
        for flag in &words[..dashes] {
            let (key, value) = split_flag(flag);
            let value = value.ok_or_else(|| anyhow!("--{key} needs a value"))?;
            let bad = |why: String| anyhow!("--{key}={value}: {why}");
            let duration = || crate::duration::parse(value).map_err(bad);
            match key {
                "dir" => s.dir = Some(value.into()),
                "env" => s
                    .env
                    .push(crate::env_file::parse_assignment(value).map_err(bad)?),
                "env-file" => s.env_files.push(value.into()),
                "restart" => {
                    s.restart = match value {
                        "never" => Restart::Never,
                        "on-failure" => Restart::OnFailure,
                        "always" => Restart::Always,
                        _ => return Err(bad("expected never, on-failure or always".into())),
                    }
                }
                "success-exit-codes" => {
                    s.success_codes = value
                        .split(',')
                        .map(|c| c.trim().parse::<i32>())
                        .collect::<Result<_, _>>()
                        .map_err(|e| bad(e.to_string()))?
                }
                "backoff" => s.backoff = duration()?,
                "backoff-multiplier" => {
                    s.backoff_multiplier = match value.parse::<f64>() {
                        Ok(f) if f.is_finite() && f >= 1.0 => f,
                        _ => return Err(bad("expected a number >= 1".into())),
                    }
                }
                "backoff-max" => s.backoff_max = duration()?,
                "backoff-reset-after" => s.backoff_reset_after = duration()?,
                "start-limit" => s.start_limit = Some(start_limit(value).map_err(bad)?),
                "ready" => {} // auto or grace (checked by from_def): Running after grace
                "grace" => s.grace = duration()?,
                "stop-timeout" => s.stop_timeout = duration()?,
                "log-file" => s.log_file = value.into(),
                "log-stderr-file" => s.log_stderr_file = Some(value.into()),
                other => bail!("--{other}: not supported by the Windows service"),
            }
        }
        if s.log_file.as_os_str().is_empty() {
            bail!("no --log-file");
        }
        Ok(s)
    }

    /// The Windows service's name, `daemonic-NAME`.
    pub fn service_name(&self) -> String {
        format!("{SERVICE_PREFIX}{}", self.name)
    }

    /// The environment to add to the child's: env files (read now), then `env`.
    pub fn environment(&self) -> Result<Vec<(String, String)>> {
        let mut env = Vec::new();
        for f in &self.env_files {
            env.extend(crate::env_file::read(f)?);
        }
        env.extend(self.env.iter().cloned());
        Ok(env)
    }
}

/// `--key=value` → (`key`, Some(`value`)); `--key` → (`key`, None).
fn split_flag(flag: &str) -> (&str, Option<&str>) {
    let f = flag.strip_prefix("--").unwrap_or(flag);
    match f.split_once('=') {
        Some((k, v)) => (k, Some(v)),
        None => (f, None),
    }
}

/// `N/WINDOW`, as daemonic's `--start-limit` (the supervisor's parser).
fn start_limit(text: &str) -> Result<(u32, Duration), String> {
    StartLimit::parse(text).map(|l| (l.burst, l.window))
}

/// A duration in milliseconds, as `crate::duration::parse` reads it back exactly.
fn ms(d: Duration) -> String {
    format!("{}ms", d.as_millis())
}

/// The command line the Service Control Manager stores for `exe` with `args` (its
/// `ImagePath`), quoted as the windows-service crate quotes it — the rules
/// `CommandLineToArgvW` and the C runtime undo: an argument with a space, tab, newline,
/// vertical tab or `"` (or an empty one) is put in quotes, its `"` escaped with a
/// backslash and the backslashes before a `"` (or before the closing quote) doubled.
/// `register` compares it with what is registered to tell "unchanged".
pub fn command_line(exe: &str, args: &[String]) -> String {
    std::iter::once(exe)
        .chain(args.iter().map(String::as_str))
        .map(quote)
        .collect::<Vec<_>>()
        .join(" ")
}

fn quote(arg: &str) -> String {
    let needs = arg.is_empty() || arg.contains([' ', '\t', '\n', '\u{b}', '"']);
    if !needs {
        return arg.to_string();
    }
    let mut out = String::from('"');
    let mut slashes = 0;
    for c in arg.chars() {
        match c {
            '\\' => slashes += 1,
            '"' => {
                out.push_str(&"\\".repeat(slashes * 2 + 1));
                out.push('"');
                slashes = 0;
            }
            c => {
                out.push_str(&"\\".repeat(slashes));
                out.push(c);
                slashes = 0;
            }
        }
    }
    out.push_str(&"\\".repeat(slashes * 2));
    out.push('"');
    out
}

/// What to do after the program exited.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Next {
    /// Start it again after this long.
    Restart(Duration),
    /// Stop: the service ends (the reason says why).
    End(String),
}

/// The restart policy as a pure function of exits and times: the supervisor's own
/// `policy` ([`restarts`], [`Backoff`], [`StartLimit`]), without jitter — whether to
/// restart, how long to wait first, and when to give up.
#[derive(Debug, Clone)]
pub struct Restarts {
    spec: Spec,
    step: u32,
    starts: VecDeque<Instant>,
}

impl Restarts {
    pub fn new(spec: &Spec) -> Restarts {
        Restarts {
            spec: spec.clone(),
            step: 0,
            starts: VecDeque::new(),
        }
    }

    /// The program was started at `at`.
    pub fn started(&mut self, at: Instant) {
        self.starts.push_back(at);
    }

    /// The program exited with `code` at `now`, after running `uptime`.
    pub fn exited(&mut self, code: i32, uptime: Duration, now: Instant) -> Next {
        let s = &self.spec;
        if !restarts(s.restart, &s.success_codes, Exit::Code(code)) {
            return Next::End(format!("exited with status {code}"));
        }
        let backoff = Backoff {
            initial: s.backoff,
            multiplier: s.backoff_multiplier,
            max: s.backoff_max,
            jitter: false,
            reset_after: s.backoff_reset_after,
        };
        self.step = backoff.next_step(self.step, uptime);
        // Without jitter the source is never read.
        let delay = backoff.delay(self.step, &mut Jitter::new(0));
        let limit = s
            .start_limit
            .map(|(burst, window)| StartLimit { burst, window });
        if let Some(l) = limit
            && !l.allows(&self.starts, now + delay)
        {
            return Next::End(format!(
                "gave up: {} starts within {} s (last exit status {code})",
                l.burst,
                l.window.as_secs()
            ));
        }
        self.step = self.step.saturating_add(1);
        Next::Restart(delay)
    }
}

#[cfg(test)]
mod tests;
