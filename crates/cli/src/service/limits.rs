//! The resource-limit options of a service (`--memory-max`, `--memory-high`,
//! `--cpu-max`, `--tasks-max`, `--restart-on-memory`) and the [`Limits`] they resolve to.
//! Where the kernel enforces them, and whether this supervisor can, is the supervisor's
//! (`supervisor::limits`).

use std::time::Duration;

use super::log::parse_size;
use super::options::Systemd::{Daemonic, Said};
use super::options::{Blank, Opt, put};
use crate::duration;

/// The limit flags of a service (config keys of the same names).
#[derive(Debug, Clone, Default)]
pub struct LimitArgs {
    pub memory_max: Option<u64>,
    pub memory_high: Option<u64>,
    pub cpu_max: Option<u32>,
    pub tasks_max: Option<u64>,
    pub restart_on_memory: Option<u64>,
    pub memory_check_interval: Duration,
}

/// The kernel's limits of a service (see the module docs).
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq, Hash)]
pub struct Limits {
    pub memory_max: Option<u64>,
    pub memory_high: Option<u64>,
    /// Percent of one CPU.
    pub cpu_max: Option<u32>,
    pub tasks_max: Option<u64>,
}

impl Blank for LimitArgs {
    fn blank() -> LimitArgs {
        LimitArgs::default()
    }
}

/// The table's entries of the limits.
pub(super) fn options() -> Vec<Opt<LimitArgs>> {
    type O = Opt<LimitArgs>;
    vec![
        O::one("memory-max", "SIZE", |a, v| {
            put(&mut a.memory_max, parse_limit_size(v).map(Some))
        })
        .systemd(Said("MemoryMax="))
        .heading("Limits")
        .help(
            "The most memory the whole tree may use (bytes, or 512K, 256M, 1G); beyond \
                 it the kernel's OOM killer kills within the service, reported as `killed \
                 by the OOM killer` and counted as a failure for --restart. Needs the \
                 cgroup v2 memory controller (systemd: MemoryMax=)",
        ),
        O::one("memory-high", "SIZE", |a, v| {
            put(&mut a.memory_high, parse_limit_size(v).map(Some))
        })
        .systemd(Said("MemoryHigh="))
        .heading("Limits")
        .help(
            "Above this much memory the tree is throttled and reclaimed hard, not \
                 killed. Needs the cgroup v2 memory controller (systemd: MemoryHigh=)",
        ),
        O::one("cpu-max", "PERCENT", |a, v| {
            put(&mut a.cpu_max, parse_cpu(v).map(Some))
        })
        .systemd(Said("CPUQuota="))
        .heading("Limits")
        .help(
            "CPU time the tree may use, in percent of one CPU (50% = half of one, 200% \
                 = two). Needs the cgroup v2 cpu controller (systemd: CPUQuota=)",
        ),
        O::one("tasks-max", "N", |a, v| {
            put(&mut a.tasks_max, parse_tasks(v).map(Some))
        })
        .systemd(Said("TasksMax="))
        .heading("Limits")
        .help(
            "The most processes and threads the tree may have; fork fails beyond. Needs \
                 the cgroup v2 pids controller (systemd: TasksMax=)",
        ),
        O::one("restart-on-memory", "SIZE", |a, v| {
            put(&mut a.restart_on_memory, parse_limit_size(v).map(Some))
        })
        .systemd(Daemonic)
        .heading("Limits")
        .help(
            "Restart the service when its tree's memory (as `status` shows it) is above \
                 SIZE at two checks in a row, --memory-check-interval apart (pm2's \
                 max_memory_restart). Needs no controller",
        ),
        O::one("memory-check-interval", "DURATION", |a, v| {
            put(
                &mut a.memory_check_interval,
                duration::parse_probe_interval(v),
            )
        })
        .systemd(Daemonic)
        .default("5s")
        .heading("Limits")
        .help("How often --restart-on-memory reads the tree's memory"),
    ]
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
