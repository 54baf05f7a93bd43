//! What a process costs: its CPU time and resident memory, read from `/proc`.
//!
//! CPU time counts the process and the children it has waited for (`utime + stime +
//! cutime + cstime` in `/proc/PID/stat`), so a server whose workers come and go shows
//! their work too; children still running are not included. Memory is the resident set
//! (`/proc/PID/statm`), shared pages included. Both are a snapshot when read: `None` if the
//! process is gone (or is not ours to read).

use daemonic::Pid;
use nix::unistd::{SysconfVar, sysconf};

/// CPU time and resident memory of one process.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Usage {
    pub cpu_ms: u64,
    pub rss_bytes: u64,
}

/// `pid`'s usage now, or `None` if it cannot be read (the process is gone).
pub fn of(pid: Pid) -> Option<Usage> {
    let stat = std::fs::read_to_string(format!("/proc/{pid}/stat")).ok()?;
    let statm = std::fs::read_to_string(format!("/proc/{pid}/statm")).ok()?;
    let ticks_per_sec = sysconf(SysconfVar::CLK_TCK).ok()??.max(1) as u64;
    let page = sysconf(SysconfVar::PAGE_SIZE).ok()??.max(1) as u64;
    // The command name (field 2) is in parentheses and may contain spaces or ')'.
    let after_comm = &stat[stat.rfind(')')? + 2..];
    let fields: Vec<&str> = after_comm.split(' ').collect();
    // Fields 14-17 of proc(5): utime, stime, cutime, cstime; after the name, 11-14.
    let ticks: u64 = fields
        .get(11..15)?
        .iter()
        .map(|f| f.parse::<u64>().ok())
        .sum::<Option<u64>>()?;
    let resident_pages: u64 = statm.split(' ').nth(1)?.parse().ok()?;
    Some(Usage {
        cpu_ms: ticks * 1000 / ticks_per_sec,
        rss_bytes: resident_pages * page,
    })
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn our_own_usage_is_readable_and_plausible() {
        // Burn a little CPU so the count is not necessarily zero; the check is bounds only.
        let mut x = 0u64;
        for i in 0..2_000_000u64 {
            x = x.wrapping_mul(31).wrapping_add(i);
        }
        std::hint::black_box(x);
        let u = of(Pid::this()).expect("our own /proc entry");
        assert!(u.rss_bytes > 1024 * 1024, "{u:?}");
        assert!(u.rss_bytes < 64 * 1024 * 1024 * 1024, "{u:?}");
        assert!(u.cpu_ms < 3_600_000, "{u:?}");
    }

    #[test]
    fn a_process_that_is_gone_has_none() {
        // Pids are at most 2^22 on Linux (pid_max), so this one cannot exist.
        assert_eq!(of(Pid::from_raw(i32::MAX)), None);
    }
}
