//! The real `logrotate` (Debian's package) against the running `log-flood` example daemon:
//! `create` + a postrotate SIGUSR1, and `copytruncate`.
//!
//! Each test uses its own state file (`-s`) and config in a temp dir, and `-f` to force.
//! If `logrotate` is not installed the tests print why and pass without running.

use std::fs;
use std::io::Read;
use std::path::Path;
use std::process::{Command, Stdio};
use std::time::Duration;

use nix::sys::signal::{Signal, kill};
use nix::unistd::Pid;

use super::support::{Running, TempDir, example, files_with_prefix, have, lines, poll_until};

const WAIT: Duration = Duration::from_secs(20);

fn line_count(path: &Path) -> usize {
    fs::read(path)
        .map(|d| d.iter().filter(|&&b| b == b'\n').count())
        .unwrap_or(0)
}

fn start_daemon(log: &Path, pace_micros: u32) -> Running {
    let child = Command::new(example("log-flood"))
        .arg(log)
        .arg(pace_micros.to_string())
        .stdout(Stdio::piped())
        .spawn()
        .expect("spawn the log-flood example");
    Running(Some(child))
}

fn run_logrotate(dir: &Path, config: &str) {
    let conf = dir.join("logrotate.conf");
    fs::write(&conf, config).unwrap();
    let out = Command::new("logrotate")
        .arg("-s")
        .arg(dir.join("logrotate.state"))
        .arg("-f")
        .arg(&conf)
        .output()
        .unwrap();
    assert!(
        out.status.success(),
        "logrotate failed: {}",
        String::from_utf8_lossy(&out.stderr)
    );
}

/// Stops the daemon with SIGTERM; returns its final report's fields.
fn stop_daemon(mut d: Running) -> (u64, u64, u64, u64) {
    kill(Pid::from_raw(d.pid()), Signal::SIGTERM).unwrap();
    let mut child = d.take();
    let mut report = String::new();
    child
        .stdout
        .take()
        .unwrap()
        .read_to_string(&mut report)
        .unwrap();
    let status = child.wait().unwrap();
    assert!(status.success(), "log-flood exited with {status}");
    let n: Vec<u64> = report
        .split_whitespace()
        .filter_map(|w| w.parse().ok())
        .collect();
    assert_eq!(n.len(), 4, "unexpected report {report:?}");
    (n[0], n[1], n[2], n[3])
}

/// The sequence numbers in one file, in order, checking no line is torn.
fn seqs(path: &Path) -> Vec<u64> {
    let data = fs::read(path).unwrap();
    assert!(
        !data.contains(&0),
        "{} contains NUL bytes (a sparse hole)",
        path.display()
    );
    lines(&data, path)
        .iter()
        .map(|l| {
            assert!(
                l.starts_with("seq=") && l.ends_with('|'),
                "torn line {l:?} in {}",
                path.display()
            );
            l[4..l.find(' ').unwrap()].parse().unwrap()
        })
        .collect()
}

#[test]
fn logrotate_create_with_postrotate_signal_loses_no_line() {
    if !have("logrotate") {
        eprintln!("skipping: logrotate is not installed (apt-get install logrotate)");
        return;
    }
    let dir = TempDir::new("lr-create");
    let log = dir.path().join("app.log");
    let daemon = start_daemon(&log, 20);
    let pid = daemon.pid();
    let config = format!(
        "{} {{\n  rotate 5\n  create 0640\n  nocompress\n  postrotate\n    kill -USR1 {pid}\n  endscript\n}}\n",
        log.display()
    );
    for round in 1..=2 {
        poll_until(WAIT, "the daemon to write 2000 lines", || {
            line_count(&log) >= 2000
        });
        run_logrotate(dir.path(), &config);
        // The new file fills up only once the daemon has reopened it.
        poll_until(
            WAIT,
            &format!("writes to the new file (round {round})"),
            || line_count(&log) >= 100,
        );
    }
    let (wrote, reopens, _, dropped) = stop_daemon(daemon);
    assert_eq!((reopens, dropped), (2, 0));

    // app.log.2 (oldest), app.log.1, app.log: together exactly 0..wrote, in order.
    let mut all = Vec::new();
    for name in ["app.log.2", "app.log.1", "app.log"] {
        all.extend(seqs(&dir.path().join(name)));
    }
    assert_eq!(files_with_prefix(dir.path(), "app.log").len(), 3);
    assert_eq!(all.len() as u64, wrote, "lines lost or duplicated");
    assert!(
        all.iter().enumerate().all(|(i, &s)| s == i as u64),
        "lines out of order or missing"
    );
}

#[test]
fn logrotate_copytruncate_keeps_appending_at_the_start_of_the_file() {
    if !have("logrotate") {
        eprintln!("skipping: logrotate is not installed (apt-get install logrotate)");
        return;
    }
    let dir = TempDir::new("lr-copytruncate");
    let log = dir.path().join("app.log");
    let daemon = start_daemon(&log, 20);
    let config = format!(
        "{} {{\n  rotate 5\n  copytruncate\n  nocompress\n}}\n",
        log.display()
    );
    poll_until(WAIT, "the daemon to write 2000 lines", || {
        line_count(&log) >= 2000
    });
    run_logrotate(dir.path(), &config);
    poll_until(WAIT, "writes after the truncation", || {
        fs::metadata(dir.path().join("app.log.1")).is_ok() && line_count(&log) >= 2000
    });
    let (wrote, _, truncations, dropped) = stop_daemon(daemon);
    assert_eq!(dropped, 0);
    assert!(truncations >= 1, "the writer did not notice the truncation");

    let copied = seqs(&dir.path().join("app.log.1"));
    let current = seqs(&log); // also proves: no NUL hole, so O_APPEND wrote at offset 0
    let contiguous = |v: &[u64]| v.windows(2).all(|w| w[1] == w[0] + 1);
    assert!(
        contiguous(&copied) && contiguous(&current),
        "a line was lost inside a file"
    );
    assert_eq!(copied[0], 0);
    assert_eq!(*current.last().unwrap() + 1, wrote);
    // Lines written between logrotate's copy and its truncate are lost by copytruncate's
    // design (logrotate(8)); the writer itself loses none. Report the window, do not hide it.
    let gap = current[0] - (copied.last().unwrap() + 1);
    eprintln!("copytruncate window: {gap} line(s) written between copy and truncate");
    assert!(
        current[0] > *copied.last().unwrap(),
        "a line is in both files"
    );
}
