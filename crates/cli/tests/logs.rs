//! `daemonic logs`, end to end: log files written by the library's `RotatingWriter` (the
//! writer the supervisor's capture uses), read back by the real binary — the last lines
//! across rotated files, and `-f` as a child process following appends, rotations, an
//! external rename with a late reopen, and truncation; and what `status` says when a
//! service's log loses lines to a full disk.

use daemonic_test_support as support;

mod env;

use std::io::{BufRead, BufReader};
use std::process::Child;
use std::sync::mpsc::{Receiver, channel};
use std::time::Instant;

use daemonic::logging::{Compression, Flush, RotatingWriter};
use daemonic::{Pid, Signal};
use env::Env;
use support::*;

fn line(n: usize) -> String {
    format!("line {n:04} of the service's output")
}

fn lines(range: std::ops::Range<usize>) -> Vec<String> {
    range.map(line).collect()
}

fn write(log: &RotatingWriter, range: std::ops::Range<usize>) {
    for n in range {
        log.write_line(line(n).as_bytes());
    }
}

fn stdout_lines(out: &std::process::Output) -> Vec<String> {
    String::from_utf8_lossy(&out.stdout)
        .lines()
        .map(str::to_string)
        .collect()
}

#[test]
fn last_lines_reach_back_through_rotated_files() {
    let env = Env::new("logs-n");
    let path = env.dir.join("state/web.log"); // the default log with an explicit state dir
    std::fs::create_dir_all(env.dir.join("state")).unwrap();
    let log = rotating_writer(&path);
    write(&log, 0..40);
    log.rotate(); // web.log.STAMP
    write(&log, 40..70);
    log.rotate(); // web.log.STAMP_001 (same second) or a later stamp
    write(&log, 70..100);
    log.close().unwrap();

    let out = env.daemonic(&["logs", "web"]);
    assert!(out.status.success(), "{}", stderr(&out));
    assert_eq!(stdout_lines(&out), lines(90..100), "10 by default");
    let out = env.daemonic(&["logs", "web", "-n", "45"]);
    assert_eq!(stdout_lines(&out), lines(55..100), "{}", stderr(&out));
    let out = env.daemonic(&["logs", "web", "--lines", "71"]);
    assert_eq!(stdout_lines(&out), lines(29..100), "{}", stderr(&out));
    let out = env.daemonic(&["logs", "web", "-n", "1000"]);
    assert_eq!(stdout_lines(&out), lines(0..100), "{}", stderr(&out));
    let out = env.daemonic(&["logs", "web", "-n", "0"]);
    assert!(out.stdout.is_empty() && out.status.success());
}

#[test]
fn last_lines_read_gzip_rotated_files() {
    let env = Env::new("logs-gz");
    let path = env.dir.join("app.log");
    let log = RotatingWriter::builder(&path)
        .flush(Flush::EachWrite)
        .max_size(4096)
        .compress(Compression::Gzip)
        .open()
        .unwrap();
    write(&log, 0..1000); // ~37 KB: about nine rotations
    log.close().unwrap(); // waits for the archiver
    let rotated = daemonic::logging::rotated_files(&path).unwrap();
    assert!(rotated.len() > 5, "{rotated:?}");
    assert!(rotated.iter().all(|p| p.to_string_lossy().ends_with(".gz")));
    let file = path.to_str().unwrap();
    let out = env.daemonic(&["logs", "app", "--file", file, "-n", "500"]);
    assert!(out.status.success(), "{}", stderr(&out));
    assert_eq!(stdout_lines(&out), lines(500..1000));
    let out = env.daemonic(&["logs", "app", "--file", file, "-n", "5000"]);
    assert_eq!(stdout_lines(&out), lines(0..1000));
}

#[test]
fn a_missing_log_names_the_path_and_the_service() {
    let env = Env::new("logs-missing");
    let out = env.daemonic(&["logs", "ghost"]);
    assert_eq!(out.status.code(), Some(1));
    let want = format!(
        "open {} (the log of ghost): No such file or directory",
        env.dir.join("state/ghost.log").display()
    );
    assert!(stderr(&out).contains(&want), "{}", stderr(&out));
    assert!(stderr(&out).contains("--file"), "{}", stderr(&out));
}

/// `daemonic logs … -f` running with its stdout read line by line on a thread.
struct Following {
    child: Child,
    lines: Receiver<String>,
    _guard: KillOnDrop,
}

impl Following {
    fn start(env: &Env, args: &[&str]) -> Following {
        Following::start_reading(env, args, usize::MAX)
    }

    /// Like `start`, but the reader closes the pipe after `limit` lines (as `head` does).
    fn start_reading(env: &Env, args: &[&str], limit: usize) -> Following {
        let (mut child, guard) = spawn_piped(env.cmd().args(args));
        let stdout = child.stdout.take().unwrap();
        let (tx, rx) = channel();
        std::thread::spawn(move || {
            for l in BufReader::new(stdout).lines().take(limit) {
                let Ok(l) = l else { return };
                if tx.send(l).is_err() {
                    return;
                }
            }
        });
        Following {
            child,
            lines: rx,
            _guard: guard,
        }
    }

    /// The next lines must be exactly `want` (within `SOON`).
    fn expect(&self, want: &[String]) {
        let deadline = Instant::now() + SOON;
        let mut got = Vec::new();
        while got.len() < want.len() {
            let left = deadline.saturating_duration_since(Instant::now());
            match self.lines.recv_timeout(left) {
                Ok(l) => got.push(l),
                Err(_) => panic!("got {got:?}, still waiting for {:?}", &want[got.len()..]),
            }
        }
        assert_eq!(got, want);
    }

    /// SIGTERM; it must exit 0 at once, having printed nothing more.
    fn stop(mut self) -> String {
        let pid = Pid::from_raw(self.child.id() as i32);
        nix::sys::signal::kill(pid, Signal::SIGTERM).unwrap();
        assert!(self._guard.exited_within(SOON), "logs -f did not stop");
        let status = self.child.wait().unwrap();
        let extra: Vec<String> = self.lines.iter().collect();
        assert!(extra.is_empty(), "printed more than written: {extra:?}");
        let mut err = String::new();
        std::io::Read::read_to_string(self.child.stderr.as_mut().unwrap(), &mut err).unwrap();
        assert!(status.success(), "{status:?}: {err}");
        err
    }
}

#[test]
fn follow_prints_every_line_once_across_rotations_renames_and_truncation() {
    let env = Env::new("logs-f");
    let path = env.dir.join("web.log");
    let log = rotating_writer(&path);
    write(&log, 0..10);
    let f = Following::start(
        &env,
        &[
            "logs",
            "web",
            "-f",
            "-n",
            "3",
            "--file",
            path.to_str().unwrap(),
        ],
    );
    f.expect(&lines(7..10));

    write(&log, 10..20);
    f.expect(&lines(10..20));

    // The writer's own rotation: rename, new file, go on writing.
    log.rotate();
    write(&log, 20..30);
    f.expect(&lines(20..30));

    // Several rotations, as fast as they come: the files in between are read whole.
    for k in 0..4 {
        write(&log, 30 + 10 * k..40 + 10 * k);
        log.rotate();
    }
    write(&log, 70..75);
    f.expect(&lines(30..75));

    // logrotate's `create` with a late reopen: the writer appends to the renamed file
    // until it reopens, and the new file stays empty until then.
    std::fs::rename(&path, env.dir.join("web.log.1")).unwrap();
    std::fs::File::create(&path).unwrap();
    write(&log, 75..80);
    f.expect(&lines(75..80));
    log.reopen().unwrap();
    write(&log, 80..85);
    f.expect(&lines(80..85));

    // copytruncate: the file shrinks under the reader.
    std::fs::OpenOptions::new()
        .write(true)
        .open(&path)
        .unwrap()
        .set_len(0)
        .unwrap();
    write(&log, 85..90);
    f.expect(&lines(85..90));

    let err = f.stop();
    assert!(
        err.contains("web.log was truncated; reading it again from the start"),
        "{err}"
    );
    assert_eq!(err.lines().count(), 1, "{err}");
}

#[test]
fn follow_ends_quietly_when_its_reader_goes_away() {
    let env = Env::new("logs-head");
    let path = env.dir.join("web.log");
    let log = rotating_writer(&path);
    write(&log, 0..10);
    let file = path.to_str().unwrap();
    // `daemonic logs -f web | head -3`, with a log that stays idle afterwards.
    let mut f = Following::start_reading(&env, &["logs", "web", "-f", "--file", file], 3);
    f.expect(&lines(0..3));
    assert!(f._guard.exited_within(SOON), "logs -f outlived its reader");
    let status = f.child.wait().unwrap();
    assert!(status.success(), "{status:?}");
    let mut err = String::new();
    std::io::Read::read_to_string(f.child.stderr.as_mut().unwrap(), &mut err).unwrap();
    assert_eq!(err, "", "no error message");
}

/// A full disk (a 64 KiB tmpfs, mounted in a mount namespace of the supervisor's own):
/// `status` shows how many lines the log dropped and the writer's last error, in the line
/// and in `--json`. Needs root and unshare(1); skips otherwise.
#[test]
fn status_shows_the_lines_a_full_disk_dropped_and_the_last_error() {
    if !nix::unistd::geteuid().is_root() {
        eprintln!("skipped: mounting a small tmpfs needs root (CI runs as root)");
        return;
    }
    let env = Env::new("full-disk");
    let small = env.dir.join("small");
    std::fs::create_dir(&small).unwrap();
    let log = small.join("full.log");
    let bin = env.cmd().get_program().to_owned();
    // The supervisor detaches inside the namespace; the mount ends with its last process.
    // `unshare … sh -c SCRIPT sh DIR PROGRAM ARGS…`: PROGRAM in a mount namespace of its
    // own, with a 64 KiB tmpfs on DIR.
    let in_small_tmpfs = || {
        let script = r#"mount -t tmpfs -o size=64k,mode=0700 tmpfs "$1" && shift && exec "$@""#;
        let mut cmd = std::process::Command::new("unshare");
        cmd.args([
            "--mount",
            "--propagation",
            "private",
            "sh",
            "-c",
            script,
            "sh",
        ])
        .arg(&small);
        cmd
    };
    let probe = in_small_tmpfs().arg("true").output();
    if !probe.as_ref().is_ok_and(|o| o.status.success()) {
        eprintln!("skipped: no tmpfs in a mount namespace here (unshare, mount): {probe:?}");
        return;
    }
    let mut cmd = in_small_tmpfs();
    cmd.env("DAEMONIC_STATE_DIR", env.dir.join("state"))
        .arg(&bin)
        .args(["start", "--name", "full", "--grace", "100ms", "--log-file"])
        .arg(&log)
        .args(["--", &env::fixture("chatter"), "--bytes", "300000"])
        .args(["--line-len", "100", "--then-sleep"]);
    let out = run(&mut cmd);
    assert!(
        out.status.success(),
        "{}",
        String::from_utf8_lossy(&out.stderr)
    );
    let line = wait_for("status with the dropped lines", SOON, || {
        let out = env.daemonic(&["status", "full"]);
        let text = String::from_utf8_lossy(&out.stdout).into_owned();
        text.contains(", log dropped ").then_some(text)
    });
    let error = format!(
        "(last error: write {}: No space left on device",
        log.display()
    );
    assert!(line.contains(&error), "{line}");
    let dropped: u64 = line
        .split(", log dropped ")
        .nth(1)
        .and_then(|r| r.split(' ').next())
        .and_then(|n| n.parse().ok())
        .unwrap_or_else(|| panic!("{line}"));
    // 3,000 lines of 100 bytes into 64 KiB: about 650 fit, the rest is dropped.
    assert!(dropped >= 2000, "{line}");
    let json = env.daemonic(&["status", "full", "--json"]);
    let json = String::from_utf8_lossy(&json.stdout);
    assert!(json.contains("\"log_lines_dropped\":"), "{json}");
    assert!(json.contains("No space left on device"), "{json}");
    let _ = env.daemonic(&["stop", "full"]);
}
