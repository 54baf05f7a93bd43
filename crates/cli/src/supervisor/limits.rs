//! Resource limits of a service: the flags (`--memory-max`, `--memory-high`, `--cpu-max`,
//! `--tasks-max`, `--restart-on-memory`), where the kernel enforces them, and why it cannot
//! when it cannot.
//!
//! The four kernel limits are files of the service's cgroup v2 (`memory.max`,
//! `memory.high`, `cpu.max`, `pids.max`), written before the child enters it. A file is
//! there only if its controller (`memory`, `cpu`, `pids`) is listed in the parent's
//! `cgroup.controllers` and enabled in its `cgroup.subtree_control`; the supervisor enables
//! it on every level from the top of its hierarchy (the cgroup2 mount as root, its own
//! delegated cgroup otherwise) down to the service's parent. Where a controller is not
//! available — bound to cgroup v1 on a hybrid hierarchy, not delegated, or no cgroup at
//! all (subreaper mode) — asking for its limit is an error at `check` and at `start`,
//! naming what is missing and why ([`check`]): a limit that silently does not hold is
//! worse than none.
//!
//! `--restart-on-memory` (pm2's `max_memory_restart`) needs no controller: the tree's
//! memory is read the way `status` reads it, on a timer armed only when it is set.

use std::path::PathBuf;

use anyhow::{Context as _, Result, bail};

pub use crate::service::limits::{CPU_PERIOD_US, LimitArgs, Limits, show_size};

/// Whether this supervisor can enforce `limits`: an error naming the first limit whose
/// controller is missing, and why (see the module docs).
pub fn check(limits: &Limits) -> Result<()> {
    let files = limits.files();
    let Some((flag, controller, _, _)) = files.first() else {
        return Ok(());
    };
    let top = match super::containment::top() {
        Ok(top) => top,
        Err(why) => bail!(
            "{flag} needs the cgroup v2 {controller} controller, and this supervisor has no \
             cgroup: {why}"
        ),
    };
    let path = top.join("cgroup.controllers");
    let text =
        std::fs::read_to_string(&path).with_context(|| format!("read {}", path.display()))?;
    let listed: Vec<&str> = text.split_whitespace().collect();
    for (flag, controller, _, _) in &files {
        if !listed.contains(controller) {
            let lists = if listed.is_empty() {
                "none".to_string()
            } else {
                listed.join(" ")
            };
            let why = match v1_mount(controller) {
                Some(at) => format!(
                    " (the {controller} controller is in use by cgroup v1 at {})",
                    at.display()
                ),
                None => String::new(),
            };
            bail!(
                "{flag} needs the cgroup v2 {controller} controller: {} lists {lists}{why}",
                path.display()
            );
        }
    }
    Ok(())
}

/// Where a cgroup v1 hierarchy with `controller` is mounted, if one is.
fn v1_mount(controller: &str) -> Option<PathBuf> {
    let info = std::fs::read_to_string("/proc/self/mountinfo").ok()?;
    info.lines().find_map(|line| {
        let (left, right) = line.split_once(" - ")?;
        let mut r = right.split(' ');
        let (fstype, options) = (r.next()?, r.nth(1)?);
        let at = left.split(' ').nth(4)?;
        (fstype == "cgroup" && options.split(',').any(|o| o == controller))
            .then(|| PathBuf::from(at))
    })
}
