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

use std::path::{Path, PathBuf};
use std::time::Duration;

use anyhow::{Context as _, Result, bail};
use clap::Args;

use super::capture::parse_size;

/// The limit flags of a service (config keys of the same names).
#[derive(Args, Debug, Clone, Default)]
pub struct LimitArgs {
    /// The most memory the whole tree may use (bytes, or 512K, 256M, 1G); beyond it the
    /// kernel's OOM killer kills within the service, reported as `killed by the OOM
    /// killer` and counted as a failure for --restart. Needs the cgroup v2 memory
    /// controller (systemd: MemoryMax=).
    #[arg(long, value_parser = parse_limit_size, value_name = "SIZE", help_heading = "Limits")]
    pub memory_max: Option<u64>,
    /// Above this much memory the tree is throttled and reclaimed hard, not killed. Needs
    /// the cgroup v2 memory controller (systemd: MemoryHigh=).
    #[arg(long, value_parser = parse_limit_size, value_name = "SIZE", help_heading = "Limits")]
    pub memory_high: Option<u64>,
    /// CPU time the tree may use, in percent of one CPU (50% = half of one, 200% = two).
    /// Needs the cgroup v2 cpu controller (systemd: CPUQuota=).
    #[arg(long, value_parser = parse_cpu, value_name = "PERCENT", help_heading = "Limits")]
    pub cpu_max: Option<u32>,
    /// The most processes and threads the tree may have; fork fails beyond. Needs the
    /// cgroup v2 pids controller (systemd: TasksMax=).
    #[arg(long, value_parser = parse_tasks, value_name = "N", help_heading = "Limits")]
    pub tasks_max: Option<u64>,
    /// Restart the service when its tree's memory (as `status` shows it) is above SIZE
    /// at two checks in a row, --memory-check-interval apart (pm2's max_memory_restart).
    /// Needs no controller.
    #[arg(long, value_parser = parse_limit_size, value_name = "SIZE", help_heading = "Limits")]
    pub restart_on_memory: Option<u64>,
    /// How often --restart-on-memory reads the tree's memory.
    #[arg(long, value_parser = crate::duration::parse_probe_interval, default_value = "5s", value_name = "DURATION", help_heading = "Limits")]
    pub memory_check_interval: Duration,
}

/// The kernel's limits of a service (see the module docs).
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq)]
pub struct Limits {
    pub memory_max: Option<u64>,
    pub memory_high: Option<u64>,
    /// Percent of one CPU.
    pub cpu_max: Option<u32>,
    pub tasks_max: Option<u64>,
}

/// The period of `cpu.max`, in microseconds (the kernel's and systemd's default).
pub const CPU_PERIOD_US: u64 = 100_000;

impl LimitArgs {
    pub fn limits(&self) -> Limits {
        Limits {
            memory_max: self.memory_max,
            memory_high: self.memory_high,
            cpu_max: self.cpu_max,
            tasks_max: self.tasks_max,
        }
    }

    /// `--restart-on-memory`: the size and the check interval.
    pub fn memory_restart(&self) -> Option<(u64, Duration)> {
        self.restart_on_memory
            .map(|size| (size, self.memory_check_interval))
    }
}

impl Limits {
    /// Each limit that is set: its flag's name, its controller, its file, the file's value.
    pub fn files(&self) -> Vec<(&'static str, &'static str, &'static str, String)> {
        let mut out = Vec::new();
        if let Some(m) = self.memory_max {
            out.push(("memory-max", "memory", "memory.max", m.to_string()));
        }
        if let Some(m) = self.memory_high {
            out.push(("memory-high", "memory", "memory.high", m.to_string()));
        }
        if let Some(p) = self.cpu_max {
            let quota = u64::from(p) * CPU_PERIOD_US / 100;
            out.push((
                "cpu-max",
                "cpu",
                "cpu.max",
                format!("{quota} {CPU_PERIOD_US}"),
            ));
        }
        if let Some(n) = self.tasks_max {
            out.push(("tasks-max", "pids", "pids.max", n.to_string()));
        }
        out
    }

    pub fn is_empty(&self) -> bool {
        self.files().is_empty()
    }
}

/// A size above zero.
fn parse_limit_size(text: &str) -> Result<u64, String> {
    match parse_size(text)? {
        0 => Err(format!("invalid size {text:?} (expected more than 0)")),
        n => Ok(n),
    }
}

/// `50%`, `150%` or `50`: percent of one CPU, 1 to 100000.
fn parse_cpu(text: &str) -> Result<u32, String> {
    let t = text.trim();
    match t.strip_suffix('%').unwrap_or(t).trim().parse::<u32>() {
        Ok(n) if (1..=100_000).contains(&n) => Ok(n),
        _ => Err(format!(
            "invalid CPU share {text:?} (expected a percentage of one CPU, e.g. 50% or 200%)"
        )),
    }
}

/// A number of tasks, at least 1.
fn parse_tasks(text: &str) -> Result<u64, String> {
    match text.trim().parse::<u64>() {
        Ok(n) if n > 0 => Ok(n),
        _ => Err(format!(
            "invalid number of tasks {text:?} (expected 1 or more)"
        )),
    }
}

/// A size as the log sizes are written (`256M`), for messages.
pub fn show_size(bytes: u64) -> String {
    for (shift, unit) in [(30, "G"), (20, "M"), (10, "K")] {
        if bytes >= 1 << shift && bytes.is_multiple_of(1 << shift) {
            return format!("{}{unit}", bytes >> shift);
        }
    }
    if bytes >= 1 << 20 {
        return format!("{:.1}M", bytes as f64 / f64::from(1 << 20));
    }
    bytes.to_string()
}

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

/// The files of the limits, each as it is when not limited.
const UNLIMITED: [(&str, &str); 4] = [
    ("memory.max", "max"),
    ("memory.high", "max"),
    ("cpu.max", "max"),
    ("pids.max", "max"),
];

/// Enables the controllers of `limits` on every level from `top` down to `dir`'s parent,
/// then writes the limits into `dir` (which exists).
pub fn apply(limits: &Limits, top: &Path, dir: &Path) -> Result<()> {
    let files = limits.files();
    // The group stays from one start to the next (and through a change of the service by
    // `up`): a limit no longer asked for goes back to none, where its file is there.
    for (file, none) in UNLIMITED {
        let path = dir.join(file);
        if !files.iter().any(|f| f.2 == file) && path.exists() {
            std::fs::write(&path, none)
                .with_context(|| format!("write {none:?} to {}", path.display()))?;
        }
    }
    if files.is_empty() {
        return Ok(());
    }
    let mut controllers: Vec<&str> = files.iter().map(|f| f.1).collect();
    controllers.dedup();
    let enable: String = controllers
        .iter()
        .map(|c| format!("+{c}"))
        .collect::<Vec<_>>()
        .join(" ");
    let parent = dir.parent().unwrap_or(dir);
    let below = parent.strip_prefix(top).unwrap_or(Path::new(""));
    let mut level = top.to_path_buf();
    let mut levels = vec![level.clone()];
    for part in below.components() {
        level.push(part);
        levels.push(level.clone());
    }
    for l in levels {
        let path = l.join("cgroup.subtree_control");
        std::fs::write(&path, &enable)
            .with_context(|| format!("write {enable:?} to {}", path.display()))?;
    }
    for (_, _, file, value) in files {
        let path = dir.join(file);
        std::fs::write(&path, &value)
            .with_context(|| format!("write {value:?} to {}", path.display()))?;
    }
    Ok(())
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn cpu_max_is_a_quota_of_the_period() {
        let l = Limits {
            cpu_max: Some(parse_cpu("50%").unwrap()),
            ..Default::default()
        };
        assert_eq!(l.files()[0].3, "50000 100000");
        let l = Limits {
            cpu_max: Some(parse_cpu("250%").unwrap()),
            ..Default::default()
        };
        assert_eq!(l.files()[0].3, "250000 100000");
        assert!(parse_cpu("0%").is_err());
        assert!(parse_cpu("half").is_err());
    }

    #[test]
    fn sizes_are_shown_as_written() {
        assert_eq!(show_size(256 << 20), "256M");
        assert_eq!(show_size(1 << 30), "1G");
        assert_eq!(show_size(512 << 10), "512K");
        assert_eq!(show_size(1000), "1000");
        assert!(parse_limit_size("0").is_err());
        assert_eq!(parse_limit_size("64M"), Ok(64 << 20));
    }
}
