//! `<state-dir>/<name>.status`: what `daemonic status` reads while the service runs.
//!
//! `key=value` lines, replaced atomically (written to a temp file, then renamed), so a
//! reader sees the old or the new snapshot, never half of one. The pid-file lock, not
//! this file, says whether the service runs: a status file without a locked pid file is
//! stale and ignored. A supervisor rewrites it at most once per turn of its loop, before
//! it sleeps, answers a waiting command or tells its launcher "ready" (`Unit::publish`):
//! the last state of the turn, not each one it passed through.

use std::path::PathBuf;
use std::time::{Duration, SystemTime, UNIX_EPOCH};

use daemonic::Pid;
use daemonic::process::Exit;

use super::State;

pub struct Snapshot<'a> {
    pub state: State,
    /// Ready, between `RELOADING=1` and `READY=1`: shown as `reloading`.
    pub reloading: bool,
    /// Ready with its readiness check passing (`Unit::is_ready`, in state `ready`).
    pub ready: bool,
    /// The child's pid; none between runs.
    pub pid: Option<Pid>,
    pub supervisor: Pid,
    pub since: SystemTime,
    pub status: &'a str,
    pub restarts: u32,
    pub last_exit: Option<Exit>,
    /// The delay being waited out, in `backoff`.
    pub next_delay: Option<Duration>,
    /// The restart delays chosen so far (the most recent ones), oldest first.
    pub delays: &'a [Duration],
    /// The service's cgroup, if it has one (for `status` to read the tree's figures).
    pub cgroup: Option<&'a std::path::Path>,
}

pub struct StatusFile {
    path: PathBuf,
}

impl StatusFile {
    pub fn new(path: PathBuf) -> StatusFile {
        StatusFile { path }
    }

    /// Where the file is (in the state directory).
    pub fn path(&self) -> &std::path::Path {
        &self.path
    }

    /// Best effort: a failed write leaves the previous snapshot and is reported once on
    /// the supervisor's stderr; supervision goes on.
    pub fn write(&self, s: &Snapshot<'_>) {
        let since = s
            .since
            .duration_since(UNIX_EPOCH)
            .map(|d| d.as_secs())
            .unwrap_or(0);
        let state = match s.state {
            State::Ready if s.reloading => "reloading",
            other => other.as_str(),
        };
        let mut text = format!("state={state}\nready={}\n", s.ready);
        if let Some(pid) = s.pid {
            text += &format!("pid={pid}\n");
        }
        text += &format!(
            "supervisor_pid={}\nsince={since}\nstatus={}\nrestarts={}\n",
            s.supervisor,
            s.status.replace('\n', " "),
            s.restarts
        );
        if let Some(exit) = s.last_exit {
            text += &format!("last_exit={exit}\n");
        }
        if let Some(d) = s.next_delay {
            text += &format!("next_delay_ms={}\n", d.as_millis());
        }
        let delays: Vec<String> = s.delays.iter().map(|d| d.as_millis().to_string()).collect();
        text += &format!("delays_ms={}\n", delays.join(","));
        if let Some(dir) = s.cgroup {
            text += &format!("cgroup={}\n", dir.display());
        }
        let tmp = self.path.with_extension("status.tmp");
        let result =
            write_new(&tmp, text.as_bytes()).and_then(|()| std::fs::rename(&tmp, &self.path));
        if let Err(e) = result {
            eprintln!("daemonic: write {}: {e}", self.path.display());
        }
    }

    pub fn remove(&self) {
        let _ = std::fs::remove_file(&self.path);
    }
}

/// Writes `path` afresh with mode 0644 (minus the umask), never through a symlink.
fn write_new(path: &std::path::Path, bytes: &[u8]) -> std::io::Result<()> {
    use std::io::Write;
    use std::os::unix::fs::OpenOptionsExt;
    let _ = std::fs::remove_file(path); // a leftover of a crash between write and rename
    std::fs::OpenOptions::new()
        .write(true)
        .create_new(true)
        .mode(0o644)
        .custom_flags(libc::O_NOFOLLOW)
        .open(path)?
        .write_all(bytes)
}

/// The value of `key` among a snapshot's pairs.
pub fn field<'a>(fields: &'a [(String, String)], key: &str) -> Option<&'a str> {
    fields
        .iter()
        .find(|(k, _)| k == key)
        .map(|(_, v)| v.as_str())
}

/// Reads a snapshot's `key=value` pairs.
pub fn read(path: &std::path::Path) -> std::io::Result<Vec<(String, String)>> {
    let text = std::fs::read_to_string(path)?;
    Ok(text
        .lines()
        .filter_map(|l| l.split_once('='))
        .map(|(k, v)| (k.to_string(), v.to_string()))
        .collect())
}
