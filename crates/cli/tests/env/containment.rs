//! What the containment tests share (`containment.rs`, `containment_postgres.rs`,
//! `limits.rs`): whether cgroups can be tested here, the cgroup a service gets, and the
//! checks that a service's process tree is gone.

use super::Env;
use crate::support::*;

/// Whether cgroup mode can be tested here; otherwise prints why `test` is skipped.
pub fn cgroups(test: &str) -> bool {
    if !nix::unistd::geteuid().is_root() {
        eprintln!("skipped {test}: needs root to make cgroups (CI runs as root)");
        return false;
    }
    let info = std::fs::read_to_string("/proc/self/mountinfo").unwrap_or_default();
    if !info.lines().any(|l| l.contains(" - cgroup2 ")) {
        eprintln!("skipped {test}: no cgroup2 file system is mounted");
        return false;
    }
    true
}

/// Not one of `tree` is alive now (a zombie is dead): for a stop that returns only once
/// the service's group is empty.
pub fn assert_none_alive(tree: &[(String, KillOnDrop)], after: &str) {
    for (role, p) in tree {
        assert!(gone(p), "{role} still runs after {after}");
    }
}

/// Dead (or a zombie), or gone already when its handle was opened.
pub fn gone(p: &KillOnDrop) -> bool {
    p.0.as_ref().is_none_or(|h| !alive(h.pid()))
}

/// Every one of `tree` exits within `SOON` (a zombie counts as exited).
pub fn assert_all_gone(tree: &[(String, KillOnDrop)], after: &str) {
    for (role, p) in tree {
        assert!(
            p.exited_within(SOON),
            "the {role} descendant (pid {:?}) survived {after}",
            p.0.as_ref().map(|h| h.pid())
        );
    }
}

/// The cgroup of the service `name` of `env` (see the layout in `supervisor::containment`).
pub fn service_cgroup(env: &Env, name: &str) -> std::path::PathBuf {
    let mount = crate::support::cgroup2_mount().unwrap();
    let state = env.dir.join("state").display().to_string();
    let escaped = state
        .trim_matches('/')
        .replace('-', "\\x2d")
        .replace('/', "-");
    mount.join("daemonic").join(escaped).join(name)
}
