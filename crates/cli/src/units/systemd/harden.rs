//! The sandboxing of a service unit (`--unit-hardening` and the `unit-*` keys; the levels
//! are in the [parent's docs](super)), what it may write, and its start limit.

use std::time::Duration;

use super::unit_file::{UnitFile, list_path};
use super::visible::{Hider, Needs};
use crate::service::ServiceArgs;
use crate::service::systemd::{Families, Hardening, ProtectHome, ProtectSystem, Section};
use crate::units::Scope;

/// systemd's own start limit (`DefaultStartLimitBurst=`, `DefaultStartLimitIntervalSec=`),
/// which a unit without `start-limit` gets: 5 starts within 10 s (longer with a long
/// `backoff`: see [`start_limit`]), then the unit fails instead of restarting forever.
const START_LIMIT_BURST: u32 = 5;
const START_LIMIT_INTERVAL: Duration = Duration::from_secs(10);

/// The sandboxing of `--unit-hardening` and the `unit-*` adjustments (module docs).
pub fn harden(u: &mut UnitFile, name: &str, a: &ServiceArgs, scope: Scope, needs: &mut Needs) {
    let h = &a.unit;
    let level = h.unit_hardening;
    let system = scope == Scope::System;
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
    let hides = hidden_trees(u, a, system, needs);
    namespaces(u, a, system);
    restrictions(u, a, system);
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

/// Adds `key=yes` unless the unit already says it.
fn on(key: &str, u: &mut UnitFile) {
    if u.get(Section::Service, key).is_empty() {
        u.add(Section::Service, key, "yes");
    }
}

/// `ProtectHome=` and `PrivateTmp=`; returns the trees they hide.
fn hidden_trees(u: &mut UnitFile, a: &ServiceArgs, system: bool, needs: &Needs) -> Vec<Hider> {
    let level = a.unit.unit_hardening;
    let mut protect_home = a.unit.unit_protect_home.or(match (level, system) {
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
    hides
}

/// What the service sees of devices, users, the kernel and other processes.
fn namespaces(u: &mut UnitFile, a: &ServiceArgs, system: bool) {
    let level = a.unit.unit_hardening;
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
}

/// Sockets, namespaces, realtime, set-uid files, mounts, the umask and system calls.
fn restrictions(u: &mut UnitFile, a: &ServiceArgs, system: bool) {
    let h = &a.unit;
    let level = h.unit_hardening;
    let strict_system = system && level == Hardening::Strict;
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
}

/// Without `start-limit`: systemd's default, 5 starts within 10 s, the window widened
/// to 5 restart delays when `backoff` is long (else a unit that cannot start, restarted
/// every 3 s, would never reach 5 starts in 10 s and would restart forever).
pub fn start_limit(a: &ServiceArgs) -> (u32, Duration) {
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
