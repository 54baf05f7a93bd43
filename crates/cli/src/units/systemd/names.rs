//! Names a generated unit must not take: a packaged unit's, an `Alias=` of one, and a
//! state directory that is already there.
//!
//! A unit `redis.service` in `/etc/systemd/system` shadows Debian's `redis-server.service`
//! through its `Alias=redis.service` (or replaces a packaged `redis.service`), and
//! `StateDirectory=redis` takes over an existing `/var/lib/redis` ("Found pre-existing
//! public StateDirectory=, migrating"). `daemonic unit` warns about each; `install`
//! refuses (into any directory) unless `--force`.

use std::path::Path;

use crate::units::Scope;

/// Where units of `scope` come from: the administrator's, then the packages'.
fn unit_dirs(scope: Scope) -> &'static [&'static str] {
    match scope {
        Scope::System => &[
            "/etc/systemd/system",
            "/usr/lib/systemd/system",
            "/lib/systemd/system",
        ],
        Scope::User => &["/etc/systemd/user", "/usr/lib/systemd/user"],
    }
}

/// Why `file_name` (`NAME.service`) clashes with what is on this machine; `state` is the
/// unit's `StateDirectory=` names (they live in `/var/lib`). Empty: no clash.
pub fn clashes(file_name: &str, scope: Scope, state: &[String]) -> Vec<String> {
    let mut why = Vec::new();
    for dir in unit_dirs(scope) {
        let path = Path::new(dir).join(file_name);
        let Ok(meta) = std::fs::symlink_metadata(&path) else {
            continue;
        };
        if meta.file_type().is_symlink() {
            let target = std::fs::read_link(&path).unwrap_or_default();
            why.push(format!(
                "{file_name} is an alias of {} ({} is a symlink)",
                target.display(),
                path.display()
            ));
        } else if !ours(&path) {
            why.push(format!(
                "{file_name} is also a unit not written by daemonic ({}); ours would replace it",
                path.display()
            ));
        }
    }
    for dir in &unit_dirs(scope)[1..] {
        if let Some(unit) = aliased_by(Path::new(dir), file_name) {
            why.push(format!(
                "{file_name} is an Alias= of the packaged {}",
                unit.display()
            ));
        }
    }
    if scope == Scope::System {
        for name in state {
            let dir = Path::new("/var/lib").join(name);
            if std::fs::symlink_metadata(&dir).is_ok() && !dynamic(&dir) {
                why.push(format!(
                    "{} exists: StateDirectory={name} would take it over (set unit-state-directory to another name)",
                    dir.display()
                ));
            }
        }
    }
    why
}

/// A file daemonic wrote (its first line is the marker).
fn ours(path: &Path) -> bool {
    std::fs::read_to_string(path).is_ok_and(|t| crate::units::written_by_daemonic(&t))
}

/// `/var/lib/NAME` as systemd makes it for `DynamicUser=`: a symlink into
/// `/var/lib/private` (ours from an earlier install, not someone else's data).
fn dynamic(dir: &Path) -> bool {
    std::fs::read_link(dir)
        .is_ok_and(|t| t.starts_with("private") || t.starts_with("/var/lib/private"))
}

/// The unit file in `dir` whose `[Install]` has `Alias=… file_name …`.
fn aliased_by(dir: &Path, file_name: &str) -> Option<std::path::PathBuf> {
    let entries = std::fs::read_dir(dir).ok()?;
    for entry in entries.flatten() {
        let path = entry.path();
        let regular = entry.file_type().is_ok_and(|t| t.is_file());
        if !regular || path.extension().is_none_or(|e| e != "service") {
            continue;
        }
        // Unit files are small; a huge file is no unit to read.
        if entry.metadata().is_ok_and(|m| m.len() > 1 << 20) {
            continue;
        }
        let Ok(text) = std::fs::read_to_string(&path) else {
            continue;
        };
        let aliased = text.lines().any(|l| {
            l.trim()
                .strip_prefix("Alias=")
                .is_some_and(|v| v.split_whitespace().any(|a| a == file_name))
        });
        if aliased {
            return Some(path);
        }
    }
    None
}
