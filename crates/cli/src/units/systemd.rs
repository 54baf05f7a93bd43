//! The systemd unit of a configured service ([`service_unit`]) and of a config file's
//! supervisor ([`file_unit`]): pure functions from the config to the unit's text.
//!
//! The mapping table and what makes a unit run `daemonic run` are in the [module
//! docs](super). The sandboxing (`--unit-hardening`):
//!
//! * **strict** (default), system units: `DynamicUser=yes` unless `user` is given (a
//!   transient uid, owning nothing but `StateDirectory=NAME`), `NoNewPrivileges=yes`,
//!   `ProtectSystem=strict` (writable only: `/var/lib/NAME`, the log files' directories,
//!   `unit-writable`), `ProtectHome=yes`, `PrivateTmp=yes`, `PrivateDevices=yes`,
//!   `PrivateUsers=yes` (unless capabilities or supplementary groups are kept),
//!   `ProtectKernelTunables/Modules/Logs=yes`, `ProtectControlGroups=yes`,
//!   `ProtectClock=yes`, `ProtectHostname=yes`, `ProtectProc=invisible`,
//!   `RestrictAddressFamilies=AF_UNIX AF_INET AF_INET6`, `RestrictNamespaces=yes`,
//!   `RestrictRealtime=yes`, `RestrictSUIDSGID=yes`, `LockPersonality=yes`,
//!   `MemoryDenyWriteExecute=yes`, `RemoveIPC=yes`, `SystemCallArchitectures=native`,
//!   `SystemCallFilter=@system-service` (a denied call fails with `EPERM` rather than
//!   killing the process), `CapabilityBoundingSet=` (empty, or the kept capabilities).
//!   `systemd-analyze security` rates this 1.5 for a network service ("OK").
//! * **relaxed**: `NoNewPrivileges=yes`, `ProtectSystem=full`, `ProtectHome=read-only`,
//!   `PrivateTmp=yes`, `ProtectKernelTunables/Modules/Logs=yes`,
//!   `ProtectControlGroups=yes`, `ProtectHostname=yes`, `RestrictRealtime=yes`,
//!   `RestrictSUIDSGID=yes`, `LockPersonality=yes`; root unless `user` is given.
//! * **off**: nothing.
//!
//! User units get only what an unprivileged manager can always apply (the seccomp-based
//! settings and `NoNewPrivileges=`); mount-namespace settings (`ProtectSystem=`,
//! `PrivateTmp=`, …) need unprivileged user namespaces there, so they are written only
//! when asked for (`unit-protect-system`, `unit-set`).

mod names;
mod unit_file;
mod visible;

pub use names::clashes;

use std::path::Path;
use std::time::Duration;

use anyhow::{Result, bail};

use super::args::{Families, Hardening, ProtectHome, ProtectSystem, Section};
use super::{Context, MARKER, Scope};
use crate::config::{Config, Def};
use crate::service::{Readiness, ServiceArgs};
use crate::supervisor::policy::Restart;
use unit_file::{UnitFile, env_assignment, exec_line, list_path, plain, span};
use visible::{Hider, Needs};

/// How long `daemonic run` may take beyond the service's own stop timeout to stop it,
/// SIGKILL what is left and exit, before systemd SIGKILLs the whole cgroup.
const WRAPPER_STOP_MARGIN: Duration = Duration::from_secs(5);

/// Keys of a service that the unit says in systemd's terms; the others are passed on to
/// `daemonic run` when the unit runs it.
const SAID_BY_SYSTEMD: &[&str] = &[
    "env",
    "env-file",
    "dir",
    "user",
    "group",
    "supplementary-groups",
    "keep-caps",
    "no-new-privs",
    "chroot",
    "umask",
];

/// systemd's own start limit (`DefaultStartLimitBurst=`, `DefaultStartLimitIntervalSec=`),
/// which a unit without `start-limit` gets: 5 starts within 10 s (longer with a long
/// `backoff`: see [`start_limit`]), then the unit fails instead of restarting forever.
const START_LIMIT_BURST: u32 = 5;
const START_LIMIT_INTERVAL: Duration = Duration::from_secs(10);

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
    why
}

/// The unit of service `def` (its command's program already resolved to a path).
pub fn service_unit(def: &Def, cx: &Context<'_>) -> Result<String> {
    let a = def.args()?;
    let name = def.name.as_str();
    let wrap = wrapper_reasons(&a);
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
        direct(&mut u, def, &a);
    } else {
        wrapped(&mut u, def, &a, cx)?;
    }
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
    privileges(&mut u, &a, cx.scope)?;
    let mut needs = Needs::default();
    if let Some(program) = def.command.first() {
        needs.program(Path::new(program));
    }
    if !wrap.is_empty() {
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
    harden(&mut u, name, &a, cx.scope, &mut needs);
    u.add(Section::Install, "WantedBy", wanted_by(cx.scope));
    u.apply(&a.unit.unit_set);
    Ok(u.render())
}

/// The program runs as the unit's main process; systemd supervises it.
fn direct(u: &mut UnitFile, def: &Def, a: &ServiceArgs) {
    let notify = a.ready == Readiness::Notify;
    u.add(
        Section::Service,
        "Type",
        if notify { "notify" } else { "exec" },
    );
    match a.ready {
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
        // `all`: READY=1 and WATCHDOG=1 count from any process of the unit, not only the
        // main one — a shell that runs `systemd-notify --ready` is the usual case (systemd's
        // default `main` drops it: "reception only permitted for main PID").
        u.add(Section::Service, "NotifyAccess", "all");
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
fn wrapped(u: &mut UnitFile, def: &Def, a: &ServiceArgs, cx: &Context<'_>) -> Result<()> {
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
    words.extend(
        def.flags
            .iter()
            .filter(|f| {
                let key = f.trim_start_matches('-').split('=').next().unwrap_or("");
                !key.starts_with("unit-") && !SAID_BY_SYSTEMD.contains(&key)
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

/// The sandboxing of `--unit-hardening` and the `unit-*` adjustments (module docs).
fn harden(u: &mut UnitFile, name: &str, a: &ServiceArgs, scope: Scope, needs: &mut Needs) {
    let h = &a.unit;
    let level = h.unit_hardening;
    let system = scope == Scope::System;
    let on = |key: &str, u: &mut UnitFile| {
        if u.get(Section::Service, key).is_empty() {
            u.add(Section::Service, key, "yes");
        }
    };
    if level != Hardening::Off {
        on("NoNewPrivileges", u);
    }
    let protect_system = h.unit_protect_system.or(match (level, system) {
        (Hardening::Strict, true) => Some(ProtectSystem::Strict),
        (Hardening::Relaxed, true) => Some(ProtectSystem::Full),
        _ => None,
    });
    if let Some(ps) = protect_system {
        let value = match ps {
            ProtectSystem::Strict => "strict",
            ProtectSystem::Full => "full",
            ProtectSystem::Yes => "yes",
            ProtectSystem::No => "no",
        };
        u.add(Section::Service, "ProtectSystem", value);
    }
    for file in a.log.log_file.iter().chain(&a.log.log_stderr_file) {
        if let Some(dir) = file.parent() {
            // Optional: a missing directory is daemonic's to create (and report).
            needs.write(dir, true);
        }
    }
    for dir in &h.unit_writable {
        needs.write(dir, false);
    }
    let mut protect_home = h.unit_protect_home.or(match (level, system) {
        (Hardening::Strict, true) => Some(ProtectHome::Yes),
        (Hardening::Relaxed, true) => Some(ProtectHome::ReadOnly),
        _ => None,
    });
    if protect_home == Some(ProtectHome::Yes) && needs.under_home() {
        // Empty homes that the needed paths can be bound into (visible.rs).
        protect_home = Some(ProtectHome::Tmpfs);
    }
    let mut hides = Vec::new();
    if matches!(protect_home, Some(ProtectHome::Yes | ProtectHome::Tmpfs)) {
        hides.push(Hider::ProtectHome);
    }
    if system && level != Hardening::Off {
        hides.push(Hider::PrivateTmp);
    }
    if let Some(ph) = protect_home {
        let value = match ph {
            ProtectHome::Yes => "yes",
            ProtectHome::ReadOnly => "read-only",
            ProtectHome::Tmpfs => "tmpfs",
            ProtectHome::No => "no",
        };
        u.add(Section::Service, "ProtectHome", value);
    }
    if system && level != Hardening::Off {
        on("PrivateTmp", u);
    }
    let strict_system = system && level == Hardening::Strict;
    if strict_system {
        on("PrivateDevices", u);
        let p = &a.privileges;
        let groups = p
            .supplementary_groups
            .as_ref()
            .is_some_and(|g| g.iter().any(|g| !g.is_empty()));
        if p.keep_caps.is_empty() && !groups {
            on("PrivateUsers", u);
        }
    }
    if system && level != Hardening::Off {
        for key in [
            "ProtectKernelTunables",
            "ProtectKernelModules",
            "ProtectKernelLogs",
            "ProtectControlGroups",
        ] {
            on(key, u);
        }
    }
    if strict_system {
        on("ProtectClock", u);
    }
    if system && level != Hardening::Off {
        on("ProtectHostname", u);
    }
    if strict_system {
        u.add(Section::Service, "ProtectProc", "invisible");
    }
    let families = h.unit_address_families.clone().unwrap_or(match level {
        Hardening::Strict => {
            Families::Only(vec!["AF_UNIX".into(), "AF_INET".into(), "AF_INET6".into()])
        }
        _ => Families::Any,
    });
    match families {
        Families::Any => {}
        Families::None => u.add(Section::Service, "RestrictAddressFamilies", "none"),
        Families::Only(list) => u.add(Section::Service, "RestrictAddressFamilies", list.join(" ")),
    }
    if level == Hardening::Strict {
        on("RestrictNamespaces", u);
    }
    if level != Hardening::Off {
        on("RestrictRealtime", u);
        on("RestrictSUIDSGID", u);
        on("LockPersonality", u);
    }
    if strict_system {
        // The service's own mounts (none, without capabilities) stay its own.
        on("PrivateMounts", u);
        if a.privileges.umask.is_none() {
            // Files it creates are not world-readable (its `umask` key says otherwise).
            u.add(Section::Service, "UMask", "0027");
        }
    }
    if h.unit_deny_write_execute {
        on("MemoryDenyWriteExecute", u);
    }
    if level == Hardening::Strict {
        if system {
            on("RemoveIPC", u);
        }
        u.add(Section::Service, "SystemCallArchitectures", "native");
        u.add(Section::Service, "SystemCallFilter", "@system-service");
        // As Debian's redis unit: no set*id/chown/mount/… (@privileged) and no raising of
        // limits or priorities (@resources); a denied call fails with EPERM.
        u.add(
            Section::Service,
            "SystemCallFilter",
            "~@privileged @resources",
        );
        u.add(Section::Service, "SystemCallErrorNumber", "EPERM");
    }
    if let Some(n) = &h.unit_limit_nofile {
        u.add(Section::Service, "LimitNOFILE", n.clone());
    }
    let (read_only, read_write) = needs.binds(&hides);
    if !read_only.is_empty() {
        u.add(Section::Service, "BindReadOnlyPaths", read_only.join(" "));
    }
    if !read_write.is_empty() {
        u.add(Section::Service, "BindPaths", read_write.join(" "));
    }
    writable(
        u,
        name,
        a,
        scope,
        protect_system,
        &needs.visible_writes(&hides),
    );
}

/// Without `start-limit`: systemd's default, 5 starts within 10 s, the window widened
/// to 5 restart delays when `backoff` is long (else a unit that cannot start, restarted
/// every 3 s, would never reach 5 starts in 10 s and would restart forever).
fn start_limit(a: &ServiceArgs) -> (u32, Duration) {
    let window = START_LIMIT_INTERVAL.max(a.backoff * START_LIMIT_BURST);
    (START_LIMIT_BURST, window)
}

/// What the service may write despite `ProtectSystem=`.
fn writable(
    u: &mut UnitFile,
    name: &str,
    a: &ServiceArgs,
    scope: Scope,
    ps: Option<ProtectSystem>,
    writes: &[(std::path::PathBuf, bool)],
) {
    let system = scope == Scope::System;
    let h = &a.unit;
    // The unit's own directories, created and owned for the service (also without
    // ProtectSystem=: they are where a DynamicUser= service may write at all).
    let mut state: Vec<String> = h.unit_state_directory.clone();
    if state.is_empty() && system && ps == Some(ProtectSystem::Strict) {
        state.push(name.to_string());
    }
    if system {
        for (key, dirs) in [
            ("StateDirectory", &state),
            ("RuntimeDirectory", &h.unit_runtime_directory),
        ] {
            if !dirs.is_empty() {
                let dirs: Vec<String> = dirs.iter().map(|d| list_path(d)).collect();
                u.add(Section::Service, key, dirs.join(" "));
            }
        }
    }
    let mut logs_dirs: Vec<String> = if system {
        h.unit_logs_directory.clone()
    } else {
        Vec::new()
    };
    let Some(_) = ps.filter(|p| *p != ProtectSystem::No) else {
        add_logs_directory(u, &logs_dirs);
        return;
    };
    let mut rw: Vec<String> = Vec::new();
    for (dir, optional) in writes {
        let dash = if *optional { "-" } else { "" };
        match dir.strip_prefix("/var/log") {
            Ok(rel) if system && *optional && !rel.as_os_str().is_empty() => {
                logs_dirs.push(rel.display().to_string())
            }
            _ => rw.push(format!("{dash}{}", list_path(&dir.display().to_string()))),
        }
    }
    logs_dirs.dedup();
    rw.dedup();
    add_logs_directory(u, &logs_dirs);
    if !rw.is_empty() {
        u.add(Section::Service, "ReadWritePaths", rw.join(" "));
    }
}

fn add_logs_directory(u: &mut UnitFile, dirs: &[String]) {
    if !dirs.is_empty() {
        let dirs: Vec<String> = dirs.iter().map(|d| list_path(d)).collect();
        u.add(Section::Service, "LogsDirectory", dirs.join(" "));
    }
}

/// The unit of `config`'s own supervisor: `daemonic run -f FILE`, every service of the
/// file in one unit (what `daemonic up` runs, under systemd). Its services keep their
/// own users, capabilities and log files, so daemonic runs as root with only the
/// protections none of them can need (kernel, cgroups, realtime, set-uid files).
pub fn file_unit(config: &Config, cx: &Context<'_>) -> Result<String> {
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
    // Dependents stop first: in the worst case one after the other.
    let mut stop = WRAPPER_STOP_MARGIN;
    for def in &config.services {
        stop += def.args()?.stop_timeout;
    }
    u.add(Section::Service, "TimeoutStopSec", span(stop));
    if cx.scope == Scope::System {
        for key in [
            "ProtectKernelTunables",
            "ProtectKernelModules",
            "ProtectKernelLogs",
            "ProtectControlGroups",
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
