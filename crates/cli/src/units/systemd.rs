//! The systemd unit of a configured service ([`service_unit`]) and of a config file's
//! supervisor ([`file_unit`]): pure functions from the config to the unit's text.
//!
//! The mapping table and what makes a unit run `daemonic run` are in the [module
//! docs](super). The sandboxing (`--unit-hardening`):
//!
//! * **strict** (default), system units: `DynamicUser=yes` unless `user` is given (a
//!   transient uid, owning nothing but its `StateDirectory=`: the service's name, or
//!   `unit-state-directory`), `NoNewPrivileges=yes`, `ProtectSystem=strict` (writable
//!   only: the state, runtime and logs directories, the log files' directories,
//!   `unit-writable`), `ProtectHome=yes` (`tmpfs` when a needed path is in a home),
//!   `PrivateTmp=yes`, `PrivateDevices=yes`, `PrivateUsers=yes` (unless capabilities or
//!   supplementary groups are kept), `PrivateMounts=yes`,
//!   `ProtectKernelTunables/Modules/Logs=yes`, `ProtectControlGroups=yes`,
//!   `ProtectClock=yes`, `ProtectHostname=yes`, `ProtectProc=invisible`,
//!   `RestrictAddressFamilies=AF_UNIX AF_INET AF_INET6`, `RestrictNamespaces=yes`,
//!   `RestrictRealtime=yes`, `RestrictSUIDSGID=yes`, `LockPersonality=yes`,
//!   `UMask=0027` (unless `umask`), `RemoveIPC=yes`, `SystemCallArchitectures=native`,
//!   `SystemCallFilter=@system-service` and `~@privileged @resources` (a denied call
//!   fails with `EPERM` rather than killing the process), `CapabilityBoundingSet=`
//!   (empty, or the kept capabilities). `systemd-analyze security` rates this 1.1 for a
//!   network service, 1.3 with `Type=notify` (its `NotifyAccess=all` costs 0.2).
//!   Not in any level: `MemoryDenyWriteExecute=yes` (`unit-deny-write-execute`), which
//!   breaks every JIT (PostgreSQL's, node, java, .NET). Paths the sandbox would hide are
//!   bound in by the rules of [`visible`]; `docs/systemd.md` says what each directive
//!   breaks.
//! * **relaxed**: `NoNewPrivileges=yes`, `ProtectSystem=full`, `ProtectHome=read-only`,
//!   `PrivateTmp=yes`, `ProtectKernelTunables/Modules/Logs=yes`,
//!   `ProtectControlGroups=yes`, `ProtectHostname=yes`, `RestrictRealtime=yes`,
//!   `RestrictSUIDSGID=yes`, `LockPersonality=yes`; root unless `user` is given.
//! * **off**: nothing.
//!
//! A unit that runs daemonic's supervisor as root (the config file's unit; `daemonic run`
//! with `user = "root"` or without strict hardening) also gets `Delegate=yes` with
//! `ProtectControlGroups=no`: its services' cgroups are made inside the unit's own, so
//! none of their processes leaves the unit (see `supervisor::containment`).
//! `systemd-analyze security` counts `Delegate=yes` against the exposure (0.2); a
//! supervisor running as another user (`DynamicUser=`, `User=`) keeps every process in
//! the unit's group without it.
//!
//! User units get only what an unprivileged manager can always apply (the seccomp-based
//! settings and `NoNewPrivileges=`); mount-namespace settings (`ProtectSystem=`,
//! `PrivateTmp=`, …) need unprivileged user namespaces there, so they are written only
//! when asked for (`unit-protect-system`, `unit-set`).

mod harden;
mod names;
pub mod sockets;
mod unit_file;
pub mod visible;

pub use names::clashes;

use std::path::Path;
use std::time::Duration;

use anyhow::{Result, bail};

use super::{Host, MARKER, Scope};
use crate::config::{Config, Def};
use crate::service::options::Systemd;
use crate::service::restart::Restart;
use crate::service::systemd::{Hardening, Section};
use crate::service::table;
use crate::service::{Readiness, ServiceArgs};
use harden::{harden, start_limit};
use unit_file::{UnitFile, env_assignment, exec_line, plain, span};
use visible::Needs;

/// How long `daemonic run` may take beyond the service's own stop timeout to stop it,
/// SIGKILL what is left and exit, before systemd SIGKILLs the whole cgroup.
const WRAPPER_STOP_MARGIN: Duration = Duration::from_secs(5);

/// The unit file name of service `name`.
pub fn unit_name(name: &str) -> String {
    format!("{name}.service")
}

/// The unit file name of a config file's supervisor.
pub fn file_unit_name(project: &str) -> String {
    format!("daemonic-{project}.service")
}

/// Why service `a` cannot run under systemd alone (empty: it can).
pub fn wrapper_reasons(a: &ServiceArgs) -> Vec<String> {
    let mut why = Vec::new();
    if let Readiness::Probe(p) = &a.ready {
        why.push(format!("readiness probe {p}"));
    }
    if let Readiness::Log(p) = &a.ready {
        why.push(format!("readiness from output ({p})"));
    }
    if let Some(p) = &a.health.liveness {
        why.push(format!("liveness check {p}"));
    }
    if let Some(p) = &a.health.readiness {
        why.push(format!("readiness check {p}"));
    }
    if a.log.log_file.is_some() || a.log.log_stderr_file.is_some() {
        why.push("log files with rotation".into());
    }
    if a.on_give_up.is_some() {
        why.push("on-give-up hook".into());
    }
    if a.sockets.socket_activation == crate::service::sockets::Activation::Required {
        why.push("socket-activation = \"required\" (a check of daemonic's)".into());
    }
    if a.limits.restart_on_memory.is_some() {
        why.push("restart-on-memory".into());
    }
    why
}

/// The unit of service `def` (its command's program already resolved to a path).
pub fn service_unit(def: &Def, cx: &Host<'_>) -> Result<String> {
    let a = &def.args;
    let name = def.name.as_str();
    let wrap = wrapper_reasons(a);
    let mut u = UnitFile::default();
    u.comment(format!(
        "{} from {} (service {name}); `daemonic unit {name}` prints it again.",
        generated(),
        cx.config.display()
    ));
    if !wrap.is_empty() {
        u.comment(format!(
            "Runs `daemonic run` for what systemd lacks: {}.",
            wrap.join(", ")
        ));
    }

    u.add(
        Section::Unit,
        "Description",
        plain(&format!(
            "{name} (daemonic service from {})",
            cx.config.display()
        )),
    );
    if cx.scope == Scope::System {
        u.add(Section::Unit, "After", "network.target");
    }
    for dep in &def.depends_on {
        u.add(Section::Unit, "Requires", unit_name(dep));
        u.add(Section::Unit, "After", unit_name(dep));
    }

    if wrap.is_empty() {
        direct(&mut u, def, a);
    } else {
        wrapped(&mut u, def, a, cx)?;
    }
    // `daemonic run` keeps a store of its own for its child; only a direct program
    // stores in systemd's.
    let store = a.sockets.fd_store_max.filter(|_| wrap.is_empty());
    sockets::service_lines(&mut u, name, &a.sockets.sockets, store);
    if let Some(dir) = &a.dir {
        u.add(
            Section::Service,
            "WorkingDirectory",
            plain(&dir.display().to_string()),
        );
    }
    for file in &a.env_file {
        u.add(
            Section::Service,
            "EnvironmentFile",
            plain(&file.display().to_string()),
        );
    }
    for (k, v) in &a.env {
        u.add(Section::Service, "Environment", env_assignment(k, v));
    }
    privileges(&mut u, a, cx.scope)?;
    if !wrap.is_empty() && runs_as_root(&u, cx.scope) {
        delegate(&mut u);
    }
    limits(&mut u, a);
    let mut needs = needs(def, a, cx);
    harden(&mut u, name, a, cx.scope, &mut needs);
    u.add(Section::Install, "WantedBy", wanted_by(cx.scope));
    u.apply(&a.unit.unit_set);
    Ok(u.render())
}

/// The paths service `def` reads (its program, `daemonic` for `daemonic run`, its working
/// directory and env files); what it writes is added by the hardening.
fn needs(def: &Def, a: &ServiceArgs, cx: &Host<'_>) -> Needs {
    let mut needs = Needs::default();
    if let Some(program) = def.command.first() {
        needs.program(Path::new(program));
    }
    if !wrapper_reasons(a).is_empty() {
        needs.program(cx.daemonic);
    }
    if let Some(dir) = &a.dir {
        needs.read(dir, false);
    }
    for file in &a.env_file {
        let text = file.to_string_lossy();
        match text.strip_prefix('-') {
            Some(rest) => needs.read(Path::new(rest), true),
            None => needs.read(file, false),
        }
    }
    needs
}

/// Why the service's dynamic user (strict hardening, no `user`) could not read a path it
/// needs: a directory on the way that "others" may not enter, a file they may not read.
/// Empty: nothing to say (or the service has a user of its own).
pub fn unreadable(def: &Def, cx: &Host<'_>) -> Result<Vec<String>> {
    let a = &def.args;
    let dynamic = cx.scope == Scope::System
        && a.privileges.user.is_none()
        && a.unit.unit_hardening == Hardening::Strict;
    if !dynamic {
        return Ok(Vec::new());
    }
    Ok(needs(def, a, cx).unreadable())
}

/// The program runs as the unit's main process; systemd supervises it.
fn direct(u: &mut UnitFile, def: &Def, a: &ServiceArgs) {
    let notify = a.ready == Readiness::Notify;
    let kind = match a.ready {
        Readiness::Notify => "notify",
        Readiness::Forking(_) => "forking",
        _ => "exec",
    };
    u.add(Section::Service, "Type", kind);
    match &a.ready {
        // Relative to the working directory, as under daemonic (systemd's own relative
        // PIDFile= would be below /run).
        Readiness::Forking(Some(path)) => u.add(
            Section::Service,
            "PIDFile",
            plain(&a.dir.as_deref().map_or(path.clone(), |d| d.join(path)).display().to_string()),
        ),
        Readiness::Forking(None) => u.comment(
            "ready = forking without a pid file: systemd guesses the main process \
             (GuessMainPID=yes), as daemonic takes the only process left.",
        ),
        Readiness::Auto => u.comment(
            "ready = auto: systemd counts the service started once it runs (Type=exec); \
             set ready = \"notify\" if the program sends READY=1.",
        ),
        Readiness::Grace => u.comment(format!(
            "ready = grace: systemd has no grace period; the service counts as started once it runs, not after {}.",
            span(a.grace)
        )),
        _ => {}
    }
    if notify || a.watchdog.is_some() {
        // The service's `notify-access`, whose default `all` lets READY=1 and WATCHDOG=1
        // count from any process of the unit, not only the main one — a shell that runs
        // `systemd-notify --ready` is the usual case (systemd's default `main` drops it:
        // "reception only permitted for main PID"). The values mean what systemd's do.
        u.add(Section::Service, "NotifyAccess", a.notify_access.as_str());
    }
    u.add(Section::Service, "ExecStart", exec_line(&def.command));
    u.add(
        Section::Service,
        "ExecReload",
        format!("/bin/kill -s {} $MAINPID", signal_name(a.reload_signal)),
    );
    u.add(Section::Service, "Restart", restart(a.restart));
    if a.restart != Restart::Never {
        u.add(Section::Service, "RestartSec", span(a.backoff));
        if a.backoff_multiplier > 1.0 && a.backoff_max > a.backoff {
            u.comment(format!(
                "backoff: systemd 252 restarts after a fixed RestartSec={}; daemonic would grow it ×{} up to {} \
                 (RestartSteps=/RestartMaxDelaySec= need systemd 254).",
                span(a.backoff),
                a.backoff_multiplier,
                span(a.backoff_max)
            ));
        }
        if a.backoff_jitter {
            u.comment("backoff-jitter: systemd does not randomize restart delays.");
        }
    }
    let codes: Vec<String> = a
        .success_exit_codes
        .iter()
        .filter(|c| **c != 0)
        .map(|c| c.to_string())
        .collect();
    if !codes.is_empty() {
        u.add(Section::Service, "SuccessExitStatus", codes.join(" "));
    }
    match &a.start_limit {
        Some(limit) => {
            u.add(Section::Unit, "StartLimitIntervalSec", span(limit.window));
            u.add(Section::Unit, "StartLimitBurst", limit.burst.to_string());
        }
        None => {
            let (burst, window) = start_limit(a);
            u.add(Section::Unit, "StartLimitIntervalSec", span(window));
            u.add(Section::Unit, "StartLimitBurst", burst.to_string());
        }
    }
    // Readiness: how long until READY=1 (Type=notify) or the exec (Type=exec).
    u.add(Section::Service, "TimeoutStartSec", span(a.timeout));
    if let Some(w) = a.watchdog {
        u.add(Section::Service, "WatchdogSec", span(w));
    }
    u.add(Section::Service, "KillMode", "control-group");
    u.add(Section::Service, "KillSignal", a.stop_signal.as_str());
    u.add(Section::Service, "TimeoutStopSec", span(a.stop_timeout));
}

/// `daemonic run` is the main process and supervises the program as the service says.
fn wrapped(u: &mut UnitFile, def: &Def, a: &ServiceArgs, cx: &Host<'_>) -> Result<()> {
    if a.privileges.chroot.is_some() {
        bail!(
            "{}: `chroot` cannot be combined with {} in a systemd unit: daemonic would have to \
             run inside the chroot (use a unit without them, or RootDirectory= via unit-set)",
            def.name,
            wrapper_reasons(a).join(", ")
        );
    }
    u.add(Section::Service, "Type", "notify");
    // daemonic reports READY=1 once its probe passed, which may take the service's
    // `timeout`; then daemonic itself gives up (and restarts by the policy).
    u.add(
        Section::Service,
        "TimeoutStartSec",
        span(a.timeout + WRAPPER_STOP_MARGIN),
    );
    let mut words = vec![cx.daemonic.display().to_string(), "run".to_string()];
    // What the unit says in systemd's terms (limits, environment, the account) or what
    // shapes the unit itself is not for `daemonic run` (see the option table).
    words.extend(
        def.flags
            .iter()
            .filter(|f| {
                let key = f.trim_start_matches('-').split('=').next().unwrap_or("");
                table::find(key)
                    .is_none_or(|o| !matches!(o.systemd, Systemd::Said(_) | Systemd::Unit))
            })
            .cloned(),
    );
    words.push("--".into());
    words.extend(def.command.iter().cloned());
    u.add(Section::Service, "ExecStart", exec_line(&words));
    // daemonic sends the service's own reload signal on SIGHUP.
    u.add(Section::Service, "ExecReload", "/bin/kill -s HUP $MAINPID");
    // The program's restarts are daemonic's (policy, growing backoff, start limit);
    // systemd restarts daemonic only if it dies abnormally (a signal, its watchdog).
    let again = if a.restart == Restart::Never {
        "no"
    } else {
        "on-abnormal"
    };
    u.add(Section::Service, "Restart", again);
    if let Some(w) = a.watchdog {
        // daemonic pings it from its loop (supervisor/mod.rs); the program's own
        // watchdog is enforced by daemonic with the same interval.
        u.add(Section::Service, "WatchdogSec", span(w));
    }
    // daemonic exits with the program's status: 128+N when the stop signal N ended it,
    // which is a clean stop (as systemd counts SIGTERM for a program it runs itself).
    let mut clean = vec![128 + a.stop_signal as i32];
    clean.extend(a.success_exit_codes.iter().filter(|c| **c != 0));
    clean.dedup();
    let clean: Vec<String> = clean.iter().map(i32::to_string).collect();
    u.add(Section::Service, "SuccessExitStatus", clean.join(" "));
    // SIGTERM to daemonic only; it stops the program with its stop signal and timeout.
    u.add(Section::Service, "KillMode", "mixed");
    u.add(Section::Service, "KillSignal", "SIGTERM");
    u.add(
        Section::Service,
        "TimeoutStopSec",
        span(a.stop_timeout + WRAPPER_STOP_MARGIN),
    );
    Ok(())
}

/// Who the service runs as and what it keeps.
fn privileges(u: &mut UnitFile, a: &ServiceArgs, scope: Scope) -> Result<()> {
    let p = &a.privileges;
    if scope == Scope::User && (p.user.is_some() || p.group.is_some() || !p.keep_caps.is_empty()) {
        bail!(
            "`user`, `group` and `keep-caps` need a system unit (a user unit runs as its user); \
             install as root, without --user"
        );
    }
    match &p.user {
        Some(user) => u.add(Section::Service, "User", plain(user)),
        None if scope == Scope::System && a.unit.unit_hardening == Hardening::Strict => {
            u.add(Section::Service, "DynamicUser", "yes")
        }
        None => {}
    }
    if let Some(group) = &p.group {
        u.add(Section::Service, "Group", plain(group));
    }
    if let Some(groups) = &p.supplementary_groups {
        let groups: Vec<&str> = groups
            .iter()
            .map(String::as_str)
            .filter(|g| !g.is_empty())
            .collect();
        if !groups.is_empty() {
            u.add(
                Section::Service,
                "SupplementaryGroups",
                plain(&groups.join(" ")),
            );
            u.comment("supplementary-groups: systemd adds them to the user's own groups (it cannot replace those).");
        }
    }
    if !p.keep_caps.is_empty() {
        let caps: Vec<String> = p.keep_caps.iter().map(|c| c.name()).collect();
        u.add(Section::Service, "AmbientCapabilities", caps.join(" "));
        u.add(Section::Service, "CapabilityBoundingSet", caps.join(" "));
    } else if a.unit.unit_hardening == Hardening::Strict && scope == Scope::System {
        u.add(Section::Service, "CapabilityBoundingSet", "");
    }
    if p.no_new_privs {
        u.add(Section::Service, "NoNewPrivileges", "yes");
    }
    if let Some(root) = &p.chroot {
        u.add(
            Section::Service,
            "RootDirectory",
            plain(&root.display().to_string()),
        );
    }
    if let Some(mask) = p.umask {
        u.add(Section::Service, "UMask", format!("{mask:04o}"));
    }
    Ok(())
}

/// The unit of `config`'s own supervisor: `daemonic run -f FILE`, every service of the
/// file in one unit (what `daemonic up` runs, under systemd). Its services keep their
/// own users, capabilities and log files, so daemonic runs as root with only the
/// protections none of them can need (kernel, realtime, set-uid files), in a delegated
/// cgroup.
pub fn file_unit(config: &Config, cx: &Host<'_>) -> Result<String> {
    let file = cx.config.display().to_string();
    let mut u = UnitFile::default();
    u.comment(format!(
        "{} from {file} (its supervisor, project {}); `daemonic unit --up` prints it again.",
        generated(),
        config.project
    ));
    u.add(
        Section::Unit,
        "Description",
        plain(&format!(
            "daemonic services of {file} (project {})",
            config.project
        )),
    );
    if cx.scope == Scope::System {
        u.add(Section::Unit, "After", "network.target");
    }
    u.add(Section::Service, "Type", "notify");
    let words = [
        cx.daemonic.display().to_string(),
        "run".into(),
        "-f".into(),
        file.clone(),
    ];
    u.add(Section::Service, "ExecStart", exec_line(&words));
    // SIGHUP: read the file again and apply the difference, as `daemonic up` does.
    u.add(Section::Service, "ExecReload", "/bin/kill -s HUP $MAINPID");
    if let Some(dir) = Path::new(&file).parent() {
        u.add(
            Section::Service,
            "WorkingDirectory",
            plain(&dir.display().to_string()),
        );
    }
    u.add(Section::Service, "Restart", "on-abnormal");
    u.add(Section::Service, "KillMode", "mixed");
    delegate(&mut u);
    // Dependents stop first: in the worst case one after the other.
    let mut stop = WRAPPER_STOP_MARGIN;
    for def in &config.services {
        stop += def.args.stop_timeout;
    }
    u.add(Section::Service, "TimeoutStopSec", span(stop));
    if cx.scope == Scope::System {
        for key in [
            "ProtectKernelTunables",
            "ProtectKernelModules",
            "ProtectKernelLogs",
        ] {
            u.add(Section::Service, key, "yes");
        }
    }
    for key in ["RestrictRealtime", "RestrictSUIDSGID", "LockPersonality"] {
        u.add(Section::Service, key, "yes");
    }
    u.add(Section::Install, "WantedBy", wanted_by(cx.scope));
    Ok(u.render())
}

/// Whether the unit's processes run as root: a system unit with neither `DynamicUser=`
/// nor a `User=` other than root.
fn runs_as_root(u: &UnitFile, scope: Scope) -> bool {
    scope == Scope::System
        && u.get(Section::Service, "DynamicUser").is_empty()
        && u.get(Section::Service, "User")
            .iter()
            .all(|user| *user == "root")
}

/// A unit whose main process is daemonic's supervisor *as root* gets its cgroup
/// delegated: a root supervisor not in a delegated group makes its services' groups at
/// the top of the hierarchy, outside the unit (`supervisor::containment`); inside a
/// delegated one they stay in the unit, where systemd sees, accounts and, when it must,
/// kills every process. `ProtectControlGroups=` would make the cgroup file system
/// read-only. A supervisor that runs as another user needs neither: it cannot make
/// groups there, is a subreaper instead, and every process stays in the unit's own group.
fn delegate(u: &mut UnitFile) {
    u.add(Section::Service, "Delegate", "yes");
    u.add(Section::Service, "ProtectControlGroups", "no");
}

/// The marker, as the text of the first comment line.
fn generated() -> &'static str {
    MARKER.trim_start_matches("# ")
}

fn wanted_by(scope: Scope) -> &'static str {
    match scope {
        Scope::System => "multi-user.target",
        Scope::User => "default.target",
    }
}

fn restart(r: Restart) -> &'static str {
    match r {
        Restart::Never => "no",
        Restart::OnFailure => "on-failure",
        Restart::Always => "always",
    }
}

/// `HUP` for SIGHUP, as kill(1) takes it.
fn signal_name(s: daemonic::Signal) -> &'static str {
    s.as_str().trim_start_matches("SIG")
}

/// The kernel's limits, which systemd sets on the unit's cgroup itself (and daemonic,
/// under it, then does not: they are [`Systemd::Said`] in the option table).
fn limits(u: &mut UnitFile, a: &ServiceArgs) {
    let l = &a.limits;
    if let Some(m) = l.memory_max {
        u.add(Section::Service, "MemoryMax", m.to_string());
    }
    if let Some(m) = l.memory_high {
        u.add(Section::Service, "MemoryHigh", m.to_string());
    }
    if let Some(p) = l.cpu_max {
        u.add(Section::Service, "CPUQuota", format!("{p}%"));
    }
    if let Some(n) = l.tasks_max {
        u.add(Section::Service, "TasksMax", n.to_string());
    }
}
