//! launchd (macOS): a configured service as a job definition (a property list), and its
//! install with `launchctl`.
//!
//! [`plist`] renders a [`Def`] of `daemonic.toml` as the XML plist launchd reads from
//! `/Library/LaunchDaemons` (a system daemon, installed by root) or
//! `~/Library/LaunchAgents` (a per-user agent). It is a pure function of the definition
//! and a [`PlistHost`] (where the `daemonic` binary is, which domain, the default log
//! file), so it is compiled and tested on every platform; only the `launchctl` calls in
//! [`install`] are macOS-only.
//!
//! # Two shapes: the program itself, or the program under `daemonic run`
//!
//! launchd starts, restarts, logs and stops a program by itself, so when everything a
//! service asks for has a launchd key, the job runs the program directly: launchd sees
//! its real pid, `launchctl kill` reaches it, nothing sits in between. Otherwise the job
//! runs `daemonic run --name NAME <the service's flags> -- CMD…` and daemonic supervises
//! inside the job, exactly as it would on Linux (the same rule the systemd units follow).
//! The plist says which shape it is, and why, in a comment at its top.
//!
//! A service needs daemonic when the file *asks* for something launchd lacks:
//!
//! - `ready` other than `auto`/`grace` (a probe, `notify`, `log:`, or `forking`: a launchd
//!   job must not daemonize itself), `liveness`, `readiness`, `watchdog`: launchd has no
//!   readiness, health checks or watchdog;
//! - `stop-signal` other than TERM: launchd always stops with SIGTERM;
//! - with a `restart` policy: `backoff-multiplier` (other than 1), `backoff-max`,
//!   `backoff-reset-after`, `backoff-jitter`, `start-limit`, `on-give-up`, `start-retries`, or
//!   `success-exit-codes` other than `[0]` with `on-failure`: launchd knows one fixed
//!   throttle and "exit status 0";
//! - `log-max-size` (other than 0), `log-keep`, `log-timestamps`, `log-compress`:
//!   launchd appends to one file and never rotates it;
//! - `env-file`: daemonic reads it at each start; copying it into the plist would publish
//!   its secrets (plists are world-readable, mode 0644) and freeze its content;
//! - `supplementary-groups`, `chroot`, or a numeric `user`/`group` (launchd wants names).
//!
//! Options left at daemonic's defaults are *approximated* instead (the table says how):
//! a plain `restart = "always"` gives a plain launchd job, not a supervisor, even though
//! daemonic's default backoff is exponential. `keep-caps` and `no-new-privs` are Linux
//! features and are refused; so are `user`/`group` in a user agent (launchd runs agents as
//! their user and cannot switch).
//!
//! # The mapping
//!
//! | daemonic | launchd key | notes |
//! |---|---|---|
//! | service NAME | `Label` = `dev.daemonic.NAME`, file `dev.daemonic.NAME.plist` | names are unique per user already (the state directory) |
//! | `command` | `ProgramArguments` | as words, never through a shell |
//! | (always) | `RunAtLoad` = true | started when loaded: at boot (daemon) or login (agent), and by `install --now` |
//! | `restart = never` / `always` | `KeepAlive` = false / true | |
//! | `restart = on-failure` | `KeepAlive` = `{SuccessfulExit: false}` | launchd counts only exit status 0 as success |
//! | `backoff` | `ThrottleInterval` (whole seconds, at least 1) | launchd's is a fixed minimum time between *starts*; daemonic's default doubling up to 1 min is lost unless asked for (then: supervised) |
//! | `stop-timeout` | `ExitTimeOut` (whole seconds, at least 1) | SIGTERM, then SIGKILL; launchd also kills what is left of the process group, as daemonic does |
//! | `dir` | `WorkingDirectory` | |
//! | `env` | `EnvironmentVariables` | the plist is world-readable: keep secrets in an `env-file` (then: supervised) |
//! | `user`, `group` | `UserName`, `GroupName` | launchd also sets the user's supplementary groups (`InitGroups` defaults to true), as daemonic does |
//! | `umask` | `Umask` (decimal: plists have no octal) | |
//! | `log-file`, `log-stderr-file` | `StandardOutPath`, `StandardErrorPath` | appended, never rotated; without `log-file`: `/var/log/daemonic/NAME.log` (daemon) or `~/Library/Logs/daemonic/NAME.log` (agent) |
//! | `reload-signal` | — | launchd has no reload: `launchctl kill SIGHUP system/dev.daemonic.NAME` |
//! | `grace`, `probe-*` | — | launchd has no readiness; `launchctl bootstrap` returns at once |
//! | `depends-on` | — | launchd has no ordering between jobs |
//!
//! A supervised job differs: `ProgramArguments` is `daemonic run …` (which takes care of
//! user, directory, environment, logs and restarts itself, from the flags), `KeepAlive` is
//! `{Crashed: true}` when the service restarts at all (launchd restarts daemonic only if
//! daemonic itself crashed: when it *exits*, the service has ended by its own policy —
//! stopped, or given up after its start limit — and launchd must not undo that),
//! `ExitTimeOut` is the stop timeout plus [`SUPERVISOR_MARGIN`] (daemonic needs the whole
//! stop timeout before its SIGKILL), and `StandardOutPath`/`StandardErrorPath` get the
//! default log file (the program's output, or with `log-file` only daemonic's own
//! messages).
//!
//! The definition is the one the config file gives *on the machine that renders it*
//! (`[services.NAME.macos]` applies on a Mac), so install on the Mac itself.

mod install;
mod xml;

use std::collections::BTreeMap;
use std::path::{Path, PathBuf};
use std::time::Duration;

use anyhow::{Context as _, Result, bail};

use crate::config::Def;
use crate::service::log::LogCompress;
use crate::service::restart::Restart;
use crate::service::{Readiness, ServiceArgs};
pub use install::{Change, Step, plan_install, plan_uninstall, remove_file, write_file};
#[cfg(target_os = "macos")]
pub use install::{Installed, Uninstalled, install, uninstall};
use xml::Value;

/// Every label (and plist file name) is this followed by the service's name.
pub const LABEL_PREFIX: &str = "dev.daemonic.";

/// How much longer than the service's stop timeout launchd waits for a supervised job
/// (daemonic itself) before its SIGKILL.
pub const SUPERVISOR_MARGIN: Duration = Duration::from_secs(5);

/// Which launchd domain a job is installed in.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Scope {
    /// A daemon: `/Library/LaunchDaemons`, domain `system`, runs at boot (root installs).
    System,
    /// An agent: `~/Library/LaunchAgents`, domain `gui/UID`, runs while the user is
    /// logged in, as that user.
    User,
}

impl Scope {
    /// The directory the plist goes to (`home` is the user's home directory).
    pub fn directory(self, home: &Path) -> PathBuf {
        match self {
            Scope::System => PathBuf::from("/Library/LaunchDaemons"),
            Scope::User => home.join("Library/LaunchAgents"),
        }
    }

    /// Where output goes when the service names no `log-file`.
    pub fn default_log(self, home: &Path, name: &str) -> PathBuf {
        match self {
            Scope::System => PathBuf::from(format!("/var/log/daemonic/{name}.log")),
            Scope::User => home.join(format!("Library/Logs/daemonic/{name}.log")),
        }
    }
}

/// What the rendering needs besides the service.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct PlistHost {
    /// The `daemonic` binary a supervised job runs (an absolute path: launchd has no
    /// `PATH` to search worth relying on).
    pub daemonic: PathBuf,
    pub scope: Scope,
    /// Output of the job when the service names no `log-file` (see [`Scope::default_log`]).
    pub default_log: PathBuf,
}

/// A rendered job.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Plist {
    /// `dev.daemonic.NAME`.
    pub label: String,
    /// The XML document.
    pub text: String,
    /// Why the job runs the program under `daemonic run` (empty: it runs it directly).
    pub supervised_because: Vec<String>,
    /// The files launchd opens for the job's output (their directories must exist).
    pub log_files: Vec<PathBuf>,
}

/// The label of service `name`.
pub fn label(name: &str) -> String {
    format!("{LABEL_PREFIX}{name}")
}

/// The job for `def`; errors name the service and what launchd cannot do.
pub fn plist(def: &Def, ctx: &PlistHost) -> Result<Plist> {
    let args = &def.args;
    let written = written_keys(def);
    refuse(def, args, ctx)?;
    let reasons = needs_daemonic(args, &written);
    let mut keys: Vec<(String, Value)> = vec![("Label".into(), string(label(&def.name)))];
    let log_files = if reasons.is_empty() {
        direct(def, args, ctx, &mut keys)?
    } else {
        supervised(def, args, ctx, &mut keys)?
    };
    let comment = comment(def, &reasons);
    let text = xml::document(Some(&comment), &Value::Dict(keys))
        .map_err(|why| anyhow::anyhow!("service {}: {why}", def.name))?;
    Ok(Plist {
        label: label(&def.name),
        text,
        supervised_because: reasons,
        log_files,
    })
}

/// The job runs the program itself; returns the log files.
fn direct(
    def: &Def,
    args: &ServiceArgs,
    ctx: &PlistHost,
    keys: &mut Vec<(String, Value)>,
) -> Result<Vec<PathBuf>> {
    keys.push(("ProgramArguments".into(), strings(&def.command)));
    if let Some(dir) = &args.dir {
        keys.push(("WorkingDirectory".into(), path(dir)));
    }
    let env = environment(args);
    if !env.is_empty() {
        let vars = env.into_iter().map(|(k, v)| (k, string(v))).collect();
        keys.push(("EnvironmentVariables".into(), Value::Dict(vars)));
    }
    if let Some(user) = &args.privileges.user {
        keys.push(("UserName".into(), string(user.clone())));
    }
    if let Some(group) = &args.privileges.group {
        keys.push(("GroupName".into(), string(group.clone())));
    }
    if let Some(mask) = args.privileges.umask {
        keys.push(("Umask".into(), Value::Integer(i64::from(mask))));
    }
    keys.push(("RunAtLoad".into(), Value::Bool(true)));
    let keep_alive = match args.restart {
        Restart::Never => Value::Bool(false),
        Restart::Always => Value::Bool(true),
        Restart::OnFailure => Value::Dict(vec![("SuccessfulExit".into(), Value::Bool(false))]),
    };
    keys.push(("KeepAlive".into(), keep_alive));
    if args.restart != Restart::Never {
        keys.push(("ThrottleInterval".into(), seconds(args.backoff)));
    }
    keys.push(("ExitTimeOut".into(), seconds(args.stop_timeout)));
    let stdout = args.log.log_file.clone().unwrap_or(ctx.default_log.clone());
    let stderr = args.log.log_stderr_file.clone().unwrap_or(stdout.clone());
    keys.push(("StandardOutPath".into(), path(&stdout)));
    keys.push(("StandardErrorPath".into(), path(&stderr)));
    Ok(vec![stdout, stderr])
}

/// The job runs `daemonic run`, which supervises the program; returns the log files.
fn supervised(
    def: &Def,
    args: &ServiceArgs,
    ctx: &PlistHost,
    keys: &mut Vec<(String, Value)>,
) -> Result<Vec<PathBuf>> {
    let daemonic = ctx.daemonic.to_str().with_context(|| {
        format!(
            "service {}: the daemonic binary's path {} is not UTF-8",
            def.name,
            ctx.daemonic.display()
        )
    })?;
    let mut argv: Vec<String> = vec![daemonic.into(), "run".into(), "--name".into()];
    argv.push(def.name.clone());
    argv.extend(def.flags.iter().cloned());
    argv.push("--".into());
    argv.extend(def.command.iter().cloned());
    keys.push(("ProgramArguments".into(), strings(&argv)));
    keys.push(("RunAtLoad".into(), Value::Bool(true)));
    let keep_alive = match args.restart {
        Restart::Never => Value::Bool(false),
        _ => Value::Dict(vec![("Crashed".into(), Value::Bool(true))]),
    };
    keys.push(("KeepAlive".into(), keep_alive));
    keys.push((
        "ExitTimeOut".into(),
        seconds(args.stop_timeout + SUPERVISOR_MARGIN),
    ));
    keys.push(("StandardOutPath".into(), path(&ctx.default_log)));
    keys.push(("StandardErrorPath".into(), path(&ctx.default_log)));
    Ok(vec![ctx.default_log.clone()])
}

/// Options that launchd cannot honour in any shape.
fn refuse(def: &Def, args: &ServiceArgs, ctx: &PlistHost) -> Result<()> {
    let p = &args.privileges;
    if !p.keep_caps.is_empty() {
        bail!(
            "service {}: `keep-caps`: capabilities are a Linux feature; launchd has none (put it in [services.{}.linux])",
            def.name,
            def.name
        );
    }
    if p.no_new_privs {
        bail!(
            "service {}: `no-new-privs` is a Linux feature; launchd has none (put it in [services.{}.linux])",
            def.name,
            def.name
        );
    }
    if ctx.scope == Scope::User && (p.user.is_some() || p.group.is_some()) {
        bail!(
            "service {}: `user`/`group` need a system daemon (install as root, without --user): \
             a launchd agent runs as the user who installed it",
            def.name
        );
    }
    Ok(())
}

/// Why the service needs `daemonic run` inside the job (empty: it does not). `written`
/// are the keys the file sets (after [defaults] and platform tables).
fn needs_daemonic(args: &ServiceArgs, written: &[String]) -> Vec<String> {
    let set = |key: &str| written.iter().any(|w| w == key);
    let mut why = Vec::new();
    match &args.ready {
        Readiness::Auto | Readiness::Grace => {}
        Readiness::Notify => why.push("ready = notify (launchd has no readiness)".to_string()),
        Readiness::Probe(_) => why.push("ready is a probe (launchd has no readiness)".into()),
        Readiness::Log(_) => {
            why.push("ready is a line of output (launchd has no readiness)".into())
        }
        Readiness::Forking(_) => why
            .push("ready = forking (launchd must not run a program that daemonizes itself)".into()),
    }
    if args.health.liveness.is_some() {
        why.push("liveness check (launchd has no health checks)".into());
    }
    if args.health.readiness.is_some() {
        why.push("readiness check (launchd has no health checks)".into());
    }
    if args.watchdog.is_some_and(|w| !w.is_zero()) {
        why.push("watchdog (launchd has none)".into());
    }
    if args.stop_signal != daemonic::Signal::SIGTERM {
        why.push(format!(
            "stop-signal = {} (launchd always sends SIGTERM)",
            args.stop_signal.as_str()
        ));
    }
    if args.restart != Restart::Never {
        let exponential = (set("backoff-multiplier") && args.backoff_multiplier != 1.0)
            || set("backoff-max")
            || set("backoff-reset-after");
        if exponential || args.backoff_jitter {
            why.push(
                "restart backoff beyond a fixed delay (launchd has ThrottleInterval only)".into(),
            );
        }
        if args.start_limit.is_some() || args.on_give_up.is_some() {
            why.push("start-limit / on-give-up (launchd retries forever)".into());
        }
        if set("start-retries") {
            why.push("start-retries (launchd retries forever)".into());
        }
        if args.restart == Restart::OnFailure && args.success_exit_codes != [0] {
            why.push("success-exit-codes other than 0 (launchd knows only 0)".into());
        }
    }
    let rotation = (set("log-max-size") && args.log.log_max_size > 0) || set("log-keep");
    if rotation || args.log.log_timestamps || args.log.log_compress != LogCompress::None {
        why.push("log rotation, timestamps or compression (launchd only appends)".into());
    }
    if !args.env_file.is_empty() {
        why.push(
            "env-file (daemonic reads it at each start; a plist is world-readable, so its \
             secrets are not copied there)"
                .into(),
        );
    }
    let p = &args.privileges;
    if p.supplementary_groups.is_some() {
        why.push("supplementary-groups (launchd takes them from the group database)".into());
    }
    if p.chroot.is_some() {
        why.push("chroot (daemonic orders chroot and dir; launchd does not say)".into());
    }
    let numeric = |v: &Option<String>| v.as_ref().is_some_and(|s| s.parse::<u32>().is_ok());
    if numeric(&p.user) || numeric(&p.group) {
        why.push("user or group given as a number (launchd wants names)".into());
    }
    why
}

/// The keys the service's table sets (from its flags, `--key=value` or `--key`).
fn written_keys(def: &Def) -> Vec<String> {
    def.flags
        .iter()
        .filter_map(|f| f.strip_prefix("--"))
        .map(|f| f.split_once('=').map_or(f, |(k, _)| k).to_string())
        .collect()
}

/// The service's `env` (a later value wins), sorted by name. (With env files the job is
/// supervised: daemonic reads them.)
fn environment(args: &ServiceArgs) -> BTreeMap<String, String> {
    args.env.iter().cloned().collect()
}

fn comment(def: &Def, reasons: &[String]) -> String {
    let mut c = format!(
        "Generated by daemonic from [services.{0}] of the config file: edit that, then\n\
         run `daemonic install {0}` again rather than editing this file.",
        def.name
    );
    if reasons.is_empty() {
        c.push_str("\nlaunchd runs the program itself.");
    } else {
        c.push_str("\nRuns under `daemonic run`, for what launchd lacks:");
        for r in reasons {
            c.push_str("\n- ");
            c.push_str(r);
        }
    }
    c
}

fn string(s: impl Into<String>) -> Value {
    Value::String(s.into())
}

fn strings(words: &[String]) -> Value {
    Value::Array(words.iter().cloned().map(Value::String).collect())
}

fn path(p: &Path) -> Value {
    Value::String(p.to_string_lossy().into_owned())
}

/// Whole seconds, rounded up, at least 1 (launchd reads 0 as "no limit" or "no throttle").
fn seconds(d: Duration) -> Value {
    let secs = d.as_secs() + u64::from(d.subsec_nanos() > 0);
    Value::Integer(i64::try_from(secs.max(1)).unwrap_or(i64::MAX))
}
