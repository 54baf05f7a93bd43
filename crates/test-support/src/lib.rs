//! Shared by the integration tests of both crates: fixture paths, temp dirs, polling with a
//! deadline, guards that kill what a test started even when it fails, a free port, a
//! command's output as text, `/proc` reads; [`sandbox`] boots a real systemd for the
//! end-to-end tests. A helper that two test files need lives here (or, when it needs the
//! CLI's `Env`, in the CLI's `tests/env`), not in both.
//!
//! Each test crate names it `support` at its root (`use daemonic_test_support as support;`),
//! so its files say `support::TempDir` or `crate::support::wait_for`.

pub mod sandbox;

use std::path::{Path, PathBuf};
use std::process::{Child, Command, Output, Stdio};
use std::time::{Duration, Instant};

use daemonic::logging::{Flush, RotatingWriter};
use daemonic::process::PidFd;
use daemonic::{Pid, Signal};

/// A cargo example built next to this test binary (`target/<profile>/examples/<name>`).
pub fn example(name: &str) -> PathBuf {
    let exe = std::env::current_exe().unwrap();
    let path = exe
        .parent()
        .unwrap()
        .parent()
        .unwrap()
        .join("examples")
        .join(name);
    assert!(
        path.exists(),
        "fixture {} not built (run via cargo test)",
        path.display()
    );
    path
}

/// A directory removed (with its contents) when dropped.
pub struct TempDir(PathBuf);

impl TempDir {
    pub fn new(tag: &str) -> TempDir {
        let base = std::env::temp_dir();
        for n in 0.. {
            let p = base.join(format!("daemonic-test-{tag}-{}-{n}", std::process::id()));
            if std::fs::create_dir(&p).is_ok() {
                return TempDir(p);
            }
        }
        unreachable!()
    }

    pub fn path(&self) -> &Path {
        &self.0
    }

    pub fn join(&self, name: &str) -> PathBuf {
        self.0.join(name)
    }
}

impl Drop for TempDir {
    fn drop(&mut self) {
        let _ = std::fs::remove_dir_all(&self.0);
    }
}

/// Polls `f` until it returns `Some`, failing the test after `limit`.
pub fn wait_for<T>(what: &str, limit: Duration, mut f: impl FnMut() -> Option<T>) -> T {
    let deadline = Instant::now() + limit;
    let mut pause = Duration::from_millis(1);
    loop {
        if let Some(v) = f() {
            return v;
        }
        assert!(
            Instant::now() < deadline,
            "timed out after {limit:?} waiting for {what}"
        );
        std::thread::sleep(pause);
        pause = (pause * 2).min(Duration::from_millis(50));
    }
}

/// The default deadline for things that should happen at once.
pub const SOON: Duration = Duration::from_secs(10);

/// SIGKILLs a process on drop, through a pidfd opened while it surely was ours.
pub struct KillOnDrop(pub Option<PidFd>);

impl KillOnDrop {
    pub fn new(pid: Pid) -> KillOnDrop {
        KillOnDrop(PidFd::open(pid).ok())
    }

    pub fn pid(&self) -> Pid {
        self.0.as_ref().unwrap().pid()
    }

    /// Waits for the process to exit; true if it did within `limit`.
    pub fn exited_within(&self, limit: Duration) -> bool {
        self.0.as_ref().is_none_or(|h| h.wait_exit(limit).unwrap())
    }
}

impl Drop for KillOnDrop {
    fn drop(&mut self) {
        if let Some(h) = self.0.take() {
            let _ = h.signal(Signal::SIGKILL);
            let _ = h.wait_exit(SOON);
        }
    }
}

/// `key=value` lines of a report file (last value wins).
pub fn report(path: &Path) -> Vec<(String, String)> {
    std::fs::read_to_string(path)
        .unwrap_or_default()
        .lines()
        .filter_map(|l| l.split_once('='))
        .map(|(k, v)| (k.to_string(), v.to_string()))
        .collect()
}

pub fn get(report: &[(String, String)], key: &str) -> Option<String> {
    report
        .iter()
        .rev()
        .find(|(k, _)| k == key)
        .map(|(_, v)| v.clone())
}

/// Waits until `key` appears in the report file and returns its value.
pub fn await_key(path: &Path, key: &str) -> String {
    wait_for(&format!("{key}= in {}", path.display()), SOON, || {
        get(&report(path), key)
    })
}

/// Runs a command to completion and returns its output.
pub fn run(cmd: &mut Command) -> Output {
    cmd.output().unwrap_or_else(|e| panic!("run {cmd:?}: {e}"))
}

/// Spawns `cmd`; the guard kills it (by pidfd) when the test ends, however it ends.
pub fn spawn_guarded(cmd: &mut Command) -> (Child, KillOnDrop) {
    let child = cmd.spawn().unwrap_or_else(|e| panic!("spawn {cmd:?}: {e}"));
    let guard = KillOnDrop::new(Pid::from_raw(child.id() as i32));
    (child, guard)
}

/// [`spawn_guarded`] with the standard output and error piped.
pub fn spawn_piped(cmd: &mut Command) -> (Child, KillOnDrop) {
    spawn_guarded(cmd.stdout(Stdio::piped()).stderr(Stdio::piped()))
}

pub fn stdout(o: &Output) -> String {
    String::from_utf8_lossy(&o.stdout).into_owned()
}

pub fn stderr(o: &Output) -> String {
    String::from_utf8_lossy(&o.stderr).into_owned()
}

/// The value of the word `key=value` in `text` (words split at white space); panics
/// naming the key and the text when there is none.
pub fn word_value(text: &str, key: &str) -> String {
    text.split_whitespace()
        .find_map(|w| w.strip_prefix(&format!("{key}=")))
        .unwrap_or_else(|| panic!("no {key} in {text:?}"))
        .to_string()
}

/// A TCP port on 127.0.0.1 that was free a moment ago (bound to port 0, then let go).
pub fn free_port() -> u16 {
    std::net::TcpListener::bind("127.0.0.1:0")
        .unwrap()
        .local_addr()
        .unwrap()
        .port()
}

/// A rotating writer on `path` that flushes every write (so that a test reads what it
/// wrote at once).
pub fn rotating_writer(path: &Path) -> RotatingWriter {
    RotatingWriter::builder(path)
        .flush(Flush::EachWrite)
        .open()
        .unwrap()
}

/// Field `n` (0-based, after the command name) of /proc/PID/stat.
pub fn stat_field(pid: Pid, n: usize) -> Option<String> {
    let stat = std::fs::read_to_string(format!("/proc/{pid}/stat")).ok()?;
    let rest = &stat[stat.rfind(')')? + 2..];
    rest.split(' ').nth(n).map(str::to_string)
}

/// The sentinel of a `daemonic` supervisor: its child started as `daemonic-sentinel` (by
/// its command line, which it has from its first instruction; its name follows a moment
/// later). Waits up to ten seconds for it.
pub fn sentinel_of(supervisor: Pid) -> Pid {
    wait_for("the supervisor's sentinel", Duration::from_secs(10), || {
        std::fs::read_dir("/proc").ok()?.flatten().find_map(|e| {
            let pid = Pid::from_raw(e.file_name().to_str()?.parse().ok()?);
            let cmdline = std::fs::read(format!("/proc/{pid}/cmdline")).ok()?;
            (cmdline.starts_with(b"daemonic-sentinel\0")
                && stat_field(pid, 1) == Some(supervisor.to_string()))
            .then_some(pid)
        })
    })
}

/// KiB `Rss` and `Size` summed over the mappings of `/proc/PROC/smaps` (`PROC`: a pid, or
/// `self`) whose header line (`start-end perms offset dev inode path`) `pick` accepts.
pub fn smaps_kib(proc: &str, pick: impl Fn(&str) -> bool) -> (u64, u64) {
    let smaps = std::fs::read_to_string(format!("/proc/{proc}/smaps")).unwrap();
    let (mut rss, mut size, mut inside) = (0, 0, false);
    for line in smaps.lines() {
        let first = line.split_ascii_whitespace().next().unwrap_or("");
        if first.contains('-') && !first.ends_with(':') {
            inside = pick(line);
        } else if inside {
            let kib = || {
                line.split_ascii_whitespace()
                    .nth(1)
                    .unwrap()
                    .parse::<u64>()
                    .unwrap()
            };
            match first {
                "Rss:" => rss += kib(),
                "Size:" => size += kib(),
                _ => {}
            }
        }
    }
    (rss, size)
}

/// True while the process exists and is not a zombie.
pub fn alive(pid: Pid) -> bool {
    matches!(stat_field(pid, 0).as_deref(), Some(s) if s != "Z")
}

/// No `/proc/PID` at all: the process exited and was reaped (a zombie is not gone).
pub fn reaped(pid: Pid) -> bool {
    !Path::new(&format!("/proc/{pid}")).exists()
}

/// The umask of this process (which the processes a test starts inherit).
pub fn umask() -> u32 {
    let status = std::fs::read_to_string("/proc/self/status").unwrap();
    let line = status
        .lines()
        .find_map(|l| l.strip_prefix("Umask:"))
        .unwrap();
    u32::from_str_radix(line.trim(), 8).unwrap()
}

/// Where the first cgroup2 file system is mounted, if any (`/proc/self/mountinfo`).
pub fn cgroup2_mount() -> Option<PathBuf> {
    let info = std::fs::read_to_string("/proc/self/mountinfo").ok()?;
    info.lines().find_map(|l| {
        let (left, right) = l.split_once(" - ")?;
        let mount = left.split(' ').nth(4)?;
        right.starts_with("cgroup2 ").then(|| PathBuf::from(mount))
    })
}

/// Whether this process runs as root; otherwise prints why `test` is skipped.
pub fn root(test: &str) -> bool {
    if nix::unistd::geteuid().is_root() {
        return true;
    }
    eprintln!("skipped {test}: needs root to switch users (CI runs as root)");
    false
}

/// A line of /proc/PID/status (`key` with its colon), its fields joined by single spaces.
pub fn proc_status(pid: Pid, key: &str) -> String {
    let text = std::fs::read_to_string(format!("/proc/{pid}/status")).unwrap();
    text.lines()
        .find_map(|l| l.strip_prefix(key))
        .unwrap_or_else(|| panic!("no {key} in /proc/{pid}/status"))
        .split_whitespace()
        .collect::<Vec<_>>()
        .join(" ")
}
