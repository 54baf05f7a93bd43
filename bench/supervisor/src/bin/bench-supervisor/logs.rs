//! 5. Log capture throughput (`log`).

use std::collections::BTreeMap;
use std::fmt::Write as _;
use std::fs::{self, File};
use std::os::unix::fs::FileExt;
use std::path::{Path, PathBuf};
use std::process::{Command, Stdio};
use std::time::{Duration, Instant};

use crate::procfs::{stamps, tree};
use crate::report::{Raw, median};
use crate::setup::{start_supervisord, stop_tree, supervisord_header};
use crate::sys::{mkdir, mono_ns, spawn, write_file};
use crate::{Config, Res, Tool};

/// How daemonic captures a child's output, if this build can (`--log-file` on `run`).
pub fn daemonic_log_flag(cfg: &Config) -> bool {
    Command::new(&cfg.daemonic)
        .args(["run", "--help"])
        .output()
        .map(|o| String::from_utf8_lossy(&o.stdout).contains("--log-file"))
        .unwrap_or(false)
}

/// Starts one log variant; returns (processes to stop, the log file to watch).
pub fn start_log(cfg: &Config, tool: Tool, dir: &Path, bytes: u64) -> Res<(Vec<i32>, PathBuf)> {
    mkdir(dir)?;
    let stamp = dir.join("spew.stamp");
    let marker = dir.join("spew.marker");
    let log = dir.join("out.log");
    let spew = cfg.spew();
    let target = dir.join("spew.log");
    let args = [
        bytes.to_string(),
        stamp.display().to_string(),
        marker.display().to_string(),
    ];
    let mut tops = vec![];
    let target = match tool {
        Tool::Cat => {
            tops = start_cat(&spew, &args, &target)?;
            target
        }
        Tool::Daemonic => {
            tops.push(spawn(
                Command::new(&cfg.daemonic)
                    .arg("--state-dir")
                    .arg(dir.join("state"))
                    .args([
                        "run",
                        "--name",
                        "spew",
                        "--restart",
                        "never",
                        "--log-max-size",
                        "0",
                        "--log-file",
                    ])
                    .arg(&target)
                    .arg("--")
                    .arg(&spew)
                    .args(&args),
                &log,
            )?);
            target
        }
        Tool::Daemon1 => {
            tops.push(spawn(
                Command::new("daemon")
                    .args(["--noconfig", "--foreground", "--name=spew"])
                    .arg(format!("--pidfiles={}", dir.display()))
                    .arg(format!("--stdout={}", target.display()))
                    .arg("--")
                    .arg(&spew)
                    .args(&args),
                &log,
            )?);
            target
        }
        Tool::Runit | Tool::S6 => {
            let (top, current) = start_scan(tool, dir, &spew, &args, &log)?;
            tops.push(top);
            current
        }
        Tool::Supervisord => {
            let conf = format!(
                "{}\n[program:spew]\ncommand={} {}\nstartsecs=0\nautorestart=false\n\
                 stdout_logfile={}\nstdout_logfile_maxbytes=0\nstdout_logfile_backups=0\n\
                 stderr_logfile={}/spew.err\n",
                supervisord_header(dir),
                spew.display(),
                args.join(" "),
                target.display(),
                dir.display()
            );
            tops.push(start_supervisord(cfg, dir, &conf, &log, "")?);
            target
        }
        _ => unreachable!(),
    };
    Ok((tops, target))
}

/// `spew | cat > target`; (cat, spew).
fn start_cat(spew: &Path, args: &[String], target: &Path) -> Res<Vec<i32>> {
    let mut tops = vec![];
    // cat first, so that spew's stamp does not include cat's start.
    let file = File::create(target).map_err(|e| e.to_string())?;
    let mut cat = Command::new("cat")
        .stdin(Stdio::piped())
        .stdout(file)
        .spawn()
        .map_err(|e| format!("cat: {e}"))?;
    tops.push(cat.id() as i32);
    let pipe = cat.stdin.take().ok_or("cat stdin")?;
    let s = Command::new(spew)
        .args(args)
        .stdin(Stdio::null())
        .stdout(pipe)
        .spawn();
    let s = s.map_err(|e| format!("spew: {e}"))?;
    tops.push(s.id() as i32);
    Ok(tops)
}

/// runsvdir or s6-svscan over one service, `spew`, its output piped into svlogd or
/// s6-log; (the scanner, the log file to watch).
fn start_scan(
    tool: Tool,
    dir: &Path,
    spew: &Path,
    args: &[String],
    log: &Path,
) -> Res<(i32, PathBuf)> {
    let sv = dir.join("scan").join("spew");
    let logdir = dir.join("logs");
    mkdir(&sv.join("log"))?;
    mkdir(&logdir)?;
    write_file(
        &sv.join("run"),
        &format!(
            "#!/bin/sh\nexec {} {} 2>&1\n",
            spew.display(),
            args.join(" ")
        ),
        0o755,
    )?;
    let logger = if tool == Tool::Runit {
        // s0: never rotate (svlogd's default rotates at 1 MB).
        write_file(&logdir.join("config"), "s0\n", 0o644)?;
        format!("exec svlogd {}", logdir.display())
    } else {
        // s6-log's largest file size, so that it does not rotate either.
        format!("exec s6-log s268435455 {}", logdir.display())
    };
    write_file(
        &sv.join("log").join("run"),
        &format!("#!/bin/sh\n{logger}\n"),
        0o755,
    )?;
    let prog = if tool == Tool::Runit {
        "runsvdir"
    } else {
        "s6-svscan"
    };
    let top = spawn(Command::new(prog).arg(dir.join("scan")), log)?;
    Ok((top, logdir.join("current")))
}

/// Whether `path` holds all of spew's output: at least `bytes` bytes, and its last line in
/// the last 4 KiB (a supervisor may write a note of its own after it, as daemonic does).
pub fn log_complete(path: &Path, bytes: u64, last: &[u8]) -> bool {
    let Ok(f) = File::open(path) else {
        return false;
    };
    let Ok(len) = f.metadata().map(|m| m.len()) else {
        return false;
    };
    if len < bytes {
        return false;
    }
    let n = len.min(4096);
    let mut tail = vec![0u8; n as usize];
    f.read_exact_at(&mut tail, len - n).is_ok() && tail.windows(last.len()).any(|w| w == last)
}

pub fn logs(cfg: &Config, raw: &mut Raw, out: &mut String) -> Res<()> {
    let mut tools = vec![Tool::Cat];
    let daemonic = daemonic_log_flag(cfg);
    if daemonic {
        tools.push(Tool::Daemonic);
    }
    tools.extend([Tool::Daemon1, Tool::Runit, Tool::S6, Tool::Supervisord]);
    tools.retain(|&t| cfg.has(t));
    let lines = cfg.log_mb * 1_000_000 / 64;
    let bytes = lines * 64;
    let mut last = format!("{:012}", lines - 1).into_bytes();
    last.extend_from_slice(b" abcdefghijklmnopqrstuvwxyz0123456789ABCDEFGHIJKLMN\n");
    let mut rates: BTreeMap<Tool, Vec<f64>> = BTreeMap::new();
    for rep in 0..cfg.log_reps {
        for j in 0..tools.len() {
            let tool = tools[(rep + j) % tools.len()];
            let dir = cfg.dir.join("log").join(format!("{}-{rep}", tool.key()));
            let (tops, target) = start_log(cfg, tool, &dir, bytes)?;
            let r = wait_complete(tool, &tops, &target, bytes, &last);
            let stop = stop_tree(tool, &tops);
            let done = r?;
            stop?;
            let started = stamps(&dir.join("spew.stamp"))
                .first()
                .map(|s| s.1)
                .ok_or("spew stamp")?;
            let ns = done.saturating_sub(started);
            raw.row("log", tool, 1, rep, "sample", 0, "bytes", bytes);
            raw.row("log", tool, 1, rep, "sample", 0, "ns", ns);
            rates
                .entry(tool)
                .or_default()
                .push(bytes as f64 / (ns as f64 / 1e9) / 1e6);
            fs::remove_dir_all(&dir).map_err(|e| format!("{}: {e}", dir.display()))?;
        }
    }
    table(cfg, out, &rates, daemonic);
    Ok(())
}

/// Polls (every 1 ms) until `target` holds all of spew's output; `CLOCK_MONOTONIC` then.
fn wait_complete(tool: Tool, tops: &[i32], target: &Path, bytes: u64, last: &[u8]) -> Res<u64> {
    let t0 = Instant::now();
    let mut checked = Instant::now();
    loop {
        if log_complete(target, bytes, last) {
            return Ok(mono_ns());
        }
        if t0.elapsed() > Duration::from_secs(300) {
            return Err(format!(
                "{}: log incomplete after 300 s ({})",
                tool.label(),
                target.display()
            ));
        }
        // Everything gone and the log still incomplete: it never will be.
        if checked.elapsed() > Duration::from_secs(2) {
            checked = Instant::now();
            if tree(tops).is_empty() && !log_complete(target, bytes, last) {
                return Err(format!(
                    "{}: exited with the log incomplete ({})",
                    tool.label(),
                    target.display()
                ));
            }
        }
        std::thread::sleep(Duration::from_millis(1));
    }
}

/// The summary table: MB/s by variant, and ÷ cat.
fn table(cfg: &Config, out: &mut String, rates: &BTreeMap<Tool, Vec<f64>>, daemonic: bool) {
    let _ = writeln!(
        out,
        "\n### Log capture: {} MB of 64-byte lines, MB/s (spew's start → the log file complete; {} runs each)\n",
        cfg.log_mb, cfg.log_reps
    );
    let _ = writeln!(
        out,
        "| variant | median MB/s | min | max | ÷ cat (median) |"
    );
    let _ = writeln!(out, "|---|---:|---:|---:|---:|");
    let cat = rates.get(&Tool::Cat).map(|v| median(v)).unwrap_or(f64::NAN);
    for (tool, v) in rates {
        let m = median(v);
        let mn = v.iter().copied().fold(f64::INFINITY, f64::min);
        let mx = v.iter().copied().fold(0.0, f64::max);
        let name = match tool {
            Tool::Daemonic => "daemonic run --log-file (--log-max-size 0)",
            Tool::Daemon1 => "daemon(1) --stdout=FILE",
            Tool::Runit => "runit: runsv → svlogd (s0)",
            Tool::S6 => "s6: s6-supervise → s6-log",
            Tool::Supervisord => "supervisord stdout_logfile",
            t => t.label(),
        };
        let _ = writeln!(
            out,
            "| {name} | {m:.0} | {mn:.0} | {mx:.0} | {:.2} |",
            m / cat
        );
    }
    if !daemonic {
        let _ = writeln!(
            out,
            "\ndaemonic: skipped — this build's `daemonic run` has no `--log-file` (log capture not merged yet)."
        );
    }
}
