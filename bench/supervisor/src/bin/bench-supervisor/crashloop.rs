//! 4. **Crash loop** (`crash`): supervisor CPU per restart.
//!
//! Each tool in turn supervises one `stamp` child that exits 1 right after its stamp
//! (`STAMP_EXIT=1`), with its fastest restart settings. Once the first child has stamped,
//! the harness sums the CPU time of every process of the tool but the children (the
//! first field of `/proc/PID/task/TID/schedstat`, ns on CPU, every thread), waits until
//! `--crashes` more stamps or `--crash-secs` have passed, and sums again. CPU per restart
//! = the difference ÷ the restarts seen (stamp lines). What a child does between its
//! fork and its exec runs in the child and is not counted for any tool. runsv,
//! s6-supervise and supervise wait about a second between restarts of a child that ran
//! less than a second, and supervisord restarts from a loop that polls once a second, so
//! they get through only as many restarts as the time limit allows; their CPU per restart
//! is over those.

use std::fmt::Write as _;
use std::fs;
use std::time::{Duration, Instant};

use crate::procfs::stamps;
use crate::report::{Raw, ratio};
use crate::setup::{Mode, Role, Setup};
use crate::{Config, Res, Tool};

/// Nanoseconds on CPU of every thread of `pid` so far, or `None` once it is gone.
fn cpu_ns(pid: i32) -> Option<u64> {
    let mut sum = 0;
    for t in fs::read_dir(format!("/proc/{pid}/task")).ok()?.flatten() {
        let s = fs::read_to_string(t.path().join("schedstat")).ok()?;
        sum += s.split_whitespace().next()?.parse::<u64>().ok()?;
    }
    Some(sum)
}

/// One tool's crash loop: (restarts, wall seconds, ns on CPU of its processes).
fn one(cfg: &Config, tool: Tool, raw: &mut Raw) -> Res<(usize, f64, u64)> {
    let s = Setup::start(
        cfg,
        tool,
        1,
        cfg.dir.join("crash").join(tool.key()),
        Mode::Crash,
    )?;
    let result = (|| {
        s.wait_started()?;
        // A child caught between its fork and its exec looks like daemonic's sentinel (the
        // supervisor's executable, the supervisor's child): keep only the processes seen
        // in two looks 100 ms apart.
        let look = || -> Vec<(i32, Role)> {
            s.roles(cfg)
                .into_iter()
                .filter(|r| r.1 != Role::Child && r.1 != Role::Other)
                .collect()
        };
        let first = look();
        std::thread::sleep(Duration::from_millis(100));
        let pids: Vec<i32> = look()
            .into_iter()
            .filter(|r| first.contains(r))
            .map(|r| r.0)
            .collect();
        let sum = || -> Res<u64> {
            pids.iter()
                .map(|&p| cpu_ns(p).ok_or(format!("{}: process {p} ended", tool.label())))
                .sum()
        };
        let n0 = stamps(&s.stamps).len();
        let c0 = sum()?;
        let t0 = Instant::now();
        let limit = Duration::from_secs(cfg.crash_secs);
        let mut n1 = n0;
        while n1 < n0 + cfg.crashes && t0.elapsed() < limit {
            std::thread::sleep(Duration::from_millis(50));
            n1 = stamps(&s.stamps).len();
        }
        let c1 = sum()?;
        let wall = t0.elapsed().as_secs_f64();
        let restarts = n1 - n0;
        raw.row("crash", tool, 1, 0, "all", 0, "restarts", restarts);
        raw.row(
            "crash",
            tool,
            1,
            0,
            "all",
            0,
            "wall_s",
            format!("{wall:.3}"),
        );
        raw.row("crash", tool, 1, 0, "all", 0, "cpu_ns", c1 - c0);
        raw.row("crash", tool, 1, 0, "all", 0, "procs", pids.len());
        Ok((restarts, wall, c1 - c0))
    })();
    if let Err(e) = s.stop() {
        eprintln!("bench-supervisor: {e}");
    }
    result
}

pub fn crash_loop(cfg: &Config, raw: &mut Raw, out: &mut String) -> Res<()> {
    let tools = cfg.available(&[
        Tool::Daemonic,
        Tool::DaemonicSubreaper,
        Tool::DaemonicMany,
        Tool::Daemon1,
        Tool::Runit,
        Tool::S6,
        Tool::Daemontools,
        Tool::Supervisord,
    ]);
    let mut rows = Vec::new();
    for t in tools {
        eprintln!("bench-supervisor: crash loop: {}…", t.label());
        rows.push((t, one(cfg, t, raw)?));
    }
    let _ = writeln!(
        out,
        "\n### Crash loop: CPU of the tool's processes per restart (child exits 1 at once; up to {} restarts or {} s each)\n",
        cfg.crashes, cfg.crash_secs
    );
    let _ = writeln!(
        out,
        "| tool | restarts | wall s | restarts/s | CPU µs per restart | daemonic start ÷ tool |"
    );
    let _ = writeln!(out, "|---|---:|---:|---:|---:|---:|");
    let per = |(n, _, c): (usize, f64, u64)| c as f64 / 1e3 / n.max(1) as f64;
    let d = rows
        .iter()
        .find(|r| r.0 == Tool::Daemonic)
        .map(|r| per(r.1));
    for &(t, r) in &rows {
        let p = per(r);
        let vs = match d {
            Some(d) if t.is_peer() => ratio(d / p),
            _ => "–".into(),
        };
        let _ = writeln!(
            out,
            "| {} | {} | {:.1} | {:.0} | {p:.1} | {vs} |",
            t.label(),
            r.0,
            r.1,
            r.0 as f64 / r.1
        );
    }
    Ok(())
}
