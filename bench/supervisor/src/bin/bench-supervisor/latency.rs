//! 1. Restart latency.

use std::collections::BTreeMap;
use std::fmt::Write as _;
use std::fs;
use std::path::Path;
use std::process::Command;
use std::time::{Duration, Instant};

use crate::procfs::{alive, stamps};
use crate::report::{Raw, median, pct, ratio};
use crate::setup::{Mode, Setup, stop_all};
use crate::sys::{Watch, kill, mkdir, mono_ns, reap, spawn};
use crate::{Config, DEADLINE, Res, Tool, WARMUP};

pub fn latency(cfg: &Config, raw: &mut Raw, out: &mut String, mode: Mode) -> Res<()> {
    let phase = if mode == Mode::Defaults {
        "latency-defaults"
    } else {
        "latency"
    };
    let tools = cfg.available(&[
        Tool::Daemonic,
        Tool::DaemonicSubreaper,
        Tool::Daemon1,
        Tool::Runit,
        Tool::S6,
        Tool::Daemontools,
        Tool::Supervisord,
    ]);
    let mut setups = Vec::new();
    let mut gone = BTreeMap::new();
    let result = (|| -> Res<BTreeMap<Tool, Vec<f64>>> {
        for &t in &tools {
            setups.push(Setup::start(
                cfg,
                t,
                1,
                cfg.dir.join(phase).join(t.key()),
                mode,
            )?);
        }
        for s in &setups {
            s.wait_started()?;
        }
        kill_rounds(cfg, raw, &setups, phase, mode, &mut gone)
    })();
    stop_all(setups);
    table(cfg, out, mode, &result?, &gone);
    Ok(())
}

/// `WARMUP` + `--iterations` rounds; each kills every tool's child once (and spawns the
/// floor's) in an order rotated per round. The samples in ms by tool; a tool that did not
/// restart with its defaults goes into `gone`, with the kill it did not restart after.
fn kill_rounds(
    cfg: &Config,
    raw: &mut Raw,
    setups: &[Setup],
    phase: &str,
    mode: Mode,
    gone: &mut BTreeMap<Tool, usize>,
) -> Res<BTreeMap<Tool, Vec<f64>>> {
    let watches = setups
        .iter()
        .map(|s| Watch::new(&s.stamps))
        .collect::<Res<Vec<_>>>()?;
    let floor_dir = cfg.dir.join(phase).join("floor");
    mkdir(&floor_dir)?;
    let floor_stamps = floor_dir.join("stamps");
    fs::write(&floor_stamps, "").map_err(|e| e.to_string())?;
    let floor_watch = Watch::new(&floor_stamps)?;
    let mut samples: BTreeMap<Tool, Vec<f64>> = BTreeMap::new();
    let k = setups.len() + 1;
    for it in 0..WARMUP + cfg.iterations {
        for j in 0..k {
            let idx = (it + j) % k;
            if idx < setups.len() && gone.contains_key(&setups[idx].tool) {
                continue;
            }
            let (tool, lat) = if idx == setups.len() {
                (
                    Tool::Floor,
                    floor_once(cfg, &floor_stamps, &floor_watch, &floor_dir)?,
                )
            } else {
                let s = &setups[idx];
                match kill_once(cfg, s, &watches[idx]) {
                    Ok(lat) => (s.tool, lat),
                    // With its default settings a tool may not restart at all (daemonic
                    // before on-failure became its default): a finding, not a failure.
                    Err(e) if mode == Mode::Defaults && e.contains("no restart") => {
                        eprintln!("bench-supervisor: {e}");
                        raw.row(phase, s.tool, 1, it, "sample", 0, "no_restart", 1);
                        gone.insert(s.tool, it + 1);
                        continue;
                    }
                    Err(e) => return Err(e),
                }
            };
            let ms = lat as f64 / 1e6;
            raw.row(
                phase,
                tool,
                1,
                it,
                if it < WARMUP { "warmup" } else { "sample" },
                0,
                "restart_ns",
                lat,
            );
            if it >= WARMUP {
                samples.entry(tool).or_default().push(ms);
            }
        }
    }
    Ok(samples)
}

/// The summary table of one latency phase.
fn table(
    cfg: &Config,
    out: &mut String,
    mode: Mode,
    samples: &BTreeMap<Tool, Vec<f64>>,
    gone: &BTreeMap<Tool, usize>,
) {
    let settings = if mode == Mode::Defaults {
        "each tool's default settings (daemon(1): --respawn)"
    } else {
        "each tool's fastest settings (daemonic: --restart always --backoff 0ms)"
    };
    let _ = writeln!(
        out,
        "\n### Restart latency after SIGKILL, {settings} (ms; {} kills per tool, child up ≥ {:?} before each)\n",
        cfg.iterations, cfg.min_up
    );
    let _ = writeln!(
        out,
        "| tool | median | p90 | min | max | daemonic ÷ tool (median) |"
    );
    let _ = writeln!(out, "|---|---:|---:|---:|---:|---:|");
    let d = samples.get(&Tool::Daemonic).map(|v| median(v));
    for (tool, v) in samples {
        let mut s = v.clone();
        s.sort_by(f64::total_cmp);
        let m = median(&s);
        let ratio = match (d, tool) {
            (Some(d), t) if t.is_peer() => ratio(d / m),
            _ => "–".into(),
        };
        let _ = writeln!(
            out,
            "| {} | {:.2} | {:.2} | {:.2} | {:.2} | {ratio} |",
            tool.label(),
            m,
            pct(&s, 90.0),
            s[0],
            s[s.len() - 1]
        );
    }
    for (tool, kill) in gone {
        let _ = writeln!(
            out,
            "| {} | no restart within {DEADLINE:?} of kill {kill} ({WARMUP} warm-ups included); no later samples | | | | |",
            tool.label()
        );
    }
}

/// Kills the tool's current child, returns ns from the kill to the new child's stamp.
pub fn kill_once(cfg: &Config, s: &Setup, w: &Watch) -> Res<u64> {
    let lines = stamps(&s.stamps);
    let &(pid, started) = lines.last().ok_or("no stamp")?;
    let up = Duration::from_nanos(mono_ns().saturating_sub(started));
    if up < cfg.min_up {
        std::thread::sleep(cfg.min_up - up);
    }
    if !alive(pid) {
        return Err(format!(
            "{}: child {pid} is not running before the kill",
            s.tool.label()
        ));
    }
    w.wait(Duration::ZERO);
    let t_kill = mono_ns();
    kill(pid, libc::SIGKILL);
    let t0 = Instant::now();
    loop {
        let now = stamps(&s.stamps);
        if now.len() > lines.len() {
            let &(p2, t2) = &now[lines.len()];
            if p2 == pid {
                return Err(format!(
                    "{}: stamp from the killed pid {pid}",
                    s.tool.label()
                ));
            }
            return Ok(t2.saturating_sub(t_kill));
        }
        if t0.elapsed() > DEADLINE {
            return Err(format!(
                "{}: no restart within {DEADLINE:?} after killing {pid}",
                s.tool.label()
            ));
        }
        w.wait(Duration::from_millis(100));
    }
}

/// The harness itself spawns `stamp`: ns from before the spawn to its stamp.
pub fn floor_once(cfg: &Config, stamps_path: &Path, w: &Watch, dir: &Path) -> Res<u64> {
    let before = stamps(stamps_path).len();
    w.wait(Duration::ZERO);
    let t0 = mono_ns();
    let pid = spawn(
        Command::new(cfg.stamp()).arg(stamps_path),
        &dir.join("out.log"),
    )?;
    let start = Instant::now();
    let r = loop {
        let now = stamps(stamps_path);
        if now.len() > before {
            break Ok(now[before].1.saturating_sub(t0));
        }
        if start.elapsed() > DEADLINE {
            break Err("floor: the child never stamped".to_string());
        }
        w.wait(Duration::from_millis(100));
    };
    kill(pid, libc::SIGKILL);
    while alive(pid) {
        std::thread::sleep(Duration::from_millis(1));
        reap();
    }
    r
}
