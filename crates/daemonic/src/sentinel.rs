//! A sentinel: a small process that outlives a supervisor only to clean up after it.
//!
//! A supervisor's children die with it (`PR_SET_PDEATHSIG`, see [`process::spawn`]), but
//! their own children — a worker pool, a shell pipeline, a program that daemonizes — do
//! not: if the supervisor is `SIGKILL`ed they are reparented to init and run on,
//! unsupervised, and a new supervisor would start a second copy beside them.
//!
//! [`Sentinel::start`] forks a process that blocks on a pipe whose write end only the
//! supervisor holds. The kernel closes that end when the supervisor dies, however it dies;
//! the sentinel then kills every process that carries the supervisor's *marker* — an
//! environment entry such as `INVOCATION_ID=3f9a…` that the supervisor gives each child and
//! that descendants inherit — and exits. A supervisor that ends normally calls
//! [`Sentinel::disarm`], and the sentinel exits without looking.
//!
//! [`Sentinel::start_exec`] does the same, but starts the program again as a bare
//! sentinel (`posix_spawn`; its `main` calls [`serve_if_asked`] first): a forked copy would
//! keep its own copy of every heap, stack and data page the supervisor writes after the
//! fork — about 130 KiB of heap alone for daemonic's supervisor — while the exec'd one
//! holds only what a fresh process needs (12 KiB of heap). daemonic's supervisor uses it.
//!
//! Ordering rules, and why:
//! - Start the sentinel before any thread exists (it may be a plain `fork`; the spawn of
//!   `start_exec` lifts close-on-exec from `keep` for a moment).
//! - Hand it the pid-file descriptor in `keep`: it then holds the pid-file lock until its
//!   cleanup is over, so a new supervisor for the same name cannot start while the old
//!   tree is still being killed — no duplicates.
//! - A process is killed only through a pidfd opened *before* its environment was read, so
//!   a pid reused in between is never signalled (the pidfd then refers to the dead
//!   process and the signal fails with `ESRCH`).
//!
//! Cgroups: a supervisor that keeps each service in a cgroup v2 hands their paths over
//! ([`Sentinel::watch_cgroup`]); the sentinel empties each with `cgroup.kill` (and removes
//! it) before the marker sweep, which then finds only what runs outside every group.
//! Without cgroups, a supervisor that marks its children with a [`TreeMark`] hands the
//! mark over ([`Sentinel::watch_mark`]): the sweep then also kills every process that
//! carries it, including those that cleared their environment.
//!
//! Limitations: a descendant that removes the marker from its environment (a program that
//! `exec`s with a clean environment) is not found by the environment sweep (a tree mark
//! finds it); neither is one the sentinel may not inspect (`/proc/PID/environ` of another
//! user, or of a non-dumpable setuid program; `/proc/PID/limits`, which carries a tree
//! mark, is readable by all). The sentinel runs in its own process group, so a
//! terminal's Ctrl-C does not end it.

use std::io::{Read, Write};
use std::os::fd::{AsRawFd, BorrowedFd, OwnedFd};
use std::time::Duration;

use nix::sys::signal::Signal;
use nix::unistd::Pid;

#[cfg(doc)]
use crate::process;
use crate::process::PidFd;
use crate::sys::{self, Forked};
use crate::tree_mark::{self, TreeMark};
use crate::{Error, ErrorKind, Result};

/// The handle on a running sentinel (see the [module docs](self)).
#[derive(Debug)]
pub struct Sentinel {
    pidfd: PidFd,
    /// The write end of the pipe the sentinel waits on; closing it (by dying) arms it.
    pipe: std::fs::File,
    /// `VAR=` and the shared token.
    marker: String,
    var: String,
}

impl Sentinel {
    /// Forks the sentinel. Children marked with [`value`](Self::value) in the environment
    /// variable `var` (systemd's `INVOCATION_ID`, say) are what it kills; `keep` are
    /// descriptors the sentinel keeps open (the pid file). Everything else it inherited
    /// except stderr is closed in the sentinel.
    ///
    /// Fails with [`ErrorKind::Threaded`] if the process runs more than one thread and
    /// with [`ErrorKind::InvalidInput`] for a variable name that is empty or has `=`.
    pub fn start(var: &str, keep: &[BorrowedFd<'_>]) -> Result<Sentinel> {
        Self::launch(var, keep, false)
    }

    /// Like [`start`](Self::start), but the sentinel is `/proc/self/exe` started afresh
    /// (`posix_spawn`, no copy of the caller) instead of a forked copy: it then holds no
    /// copy of the caller's heap, stack and data (which the caller goes on writing, so a
    /// forked sentinel ends up owning its own copy of most of them), only what a new
    /// process of the program needs, and the caller's pages are not made copy-on-write.
    ///
    /// **The program's `main` must call [`serve_if_asked`] first**, before it parses its
    /// arguments: the sentinel is the same executable, started with the arguments
    /// `--daemonic-sentinel FD KEEP MARKER for ARGS…` (the last are the caller's own
    /// command line, so that `ps` shows whose sentinel it is). If the spawn fails (no
    /// `/proc`, say), a forked copy runs the sentinel, as with `start`.
    pub fn start_exec(var: &str, keep: &[BorrowedFd<'_>]) -> Result<Sentinel> {
        Self::launch(var, keep, true)
    }

    fn launch(var: &str, keep: &[BorrowedFd<'_>], exec: bool) -> Result<Sentinel> {
        if var.is_empty() || var.contains(['=', '\0']) {
            return Err(Error::new(
                ErrorKind::InvalidInput,
                format!("sentinel variable {var:?} is not an environment variable name"),
            ));
        }
        // 64 random bits shared by every child's value: what the sentinel looks for.
        let token = &crate::random::token()?[..16];
        let marker = format!("{var}={token}");
        let threads = crate::daemon::thread_count()?;
        if threads > 1 {
            return Err(Error::new(
                ErrorKind::Threaded,
                format!("cannot fork a sentinel: this process already runs {threads} threads"),
            ));
        }
        let (read, write) =
            nix::unistd::pipe2(nix::fcntl::OFlag::O_CLOEXEC).map_err(|e| Error::sys("pipe", e))?;
        let mut keep_raw: Vec<i32> = keep.iter().map(|fd| fd.as_raw_fd()).collect();
        keep_raw.push(read.as_raw_fd());
        keep_raw.sort_unstable();
        // Spawned: no copy of this process at all. Where that fails (no `/proc`, say),
        // a forked copy runs the sentinel itself.
        let spawned = exec.then(|| spawn_exec(read.as_raw_fd(), &keep_raw, &marker));
        let pid = match spawned {
            Some(Ok(pid)) => pid,
            _ => match sys::fork_single_threaded().map_err(|e| Error::io("fork sentinel", e))? {
                Forked::Child => {
                    drop(write);
                    let code = watch(read, &keep_raw, &marker);
                    sys::exit_immediately(code)
                }
                Forked::Parent(pid) => pid,
            },
        };
        drop(read);
        let pidfd = PidFd::open(pid)?;
        Ok(Sentinel {
            pidfd,
            pipe: std::fs::File::from(write),
            marker,
            var: var.to_string(),
        })
    }

    /// The sentinel's pid.
    pub fn pid(&self) -> Pid {
        self.pidfd.pid()
    }

    /// The variable that marks the children.
    pub fn var(&self) -> &str {
        &self.var
    }

    /// The value of [`var`](Self::var) for child number `n`: 32 hex digits (the shape of
    /// systemd's `INVOCATION_ID`), the shared token followed by `n`.
    pub fn value(&self, n: u64) -> String {
        let token = &self.marker[self.var.len() + 1..];
        format!("{token}{n:016x}")
    }

    /// Adds a cgroup v2 directory to what the sentinel empties (`cgroup.kill`) when the
    /// supervisor dies — before its marker sweep, which then finds only processes outside
    /// every group. A cgroup that is gone by then is skipped.
    ///
    /// The path goes through the sentinel's pipe as one line (`k` + path + newline, written
    /// at once and shorter than `PIPE_BUF`, so it arrives whole).
    pub fn watch_cgroup(&self, dir: &std::path::Path) -> Result<()> {
        use std::os::unix::ffi::OsStrExt;
        let path = dir.as_os_str().as_bytes();
        if path.contains(&b'\n') || path.len() + 2 > libc::PIPE_BUF {
            return Err(Error::new(
                ErrorKind::InvalidInput,
                format!(
                    "cgroup path {} cannot be handed to the sentinel",
                    dir.display()
                ),
            ));
        }
        let mut line = Vec::with_capacity(path.len() + 2);
        line.push(b'k');
        line.extend_from_slice(path);
        line.push(b'\n');
        (&self.pipe)
            .write_all(&line)
            .map_err(|e| Error::io(format!("hand cgroup {} to the sentinel", dir.display()), e))
    }

    /// Adds a [`TreeMark`] to what the sentinel looks for when the supervisor dies: every
    /// process that carries it is killed too (sent through the pipe as `m<value>\n`).
    pub fn watch_mark(&self, mark: TreeMark) -> Result<()> {
        let line = format!("m{}\n", mark.value());
        (&self.pipe)
            .write_all(line.as_bytes())
            .map_err(|e| Error::io("hand a tree mark to the sentinel", e))
    }

    /// Tells the sentinel to exit without killing anything, waits for it (so the pid-file
    /// lock it shares is released when this returns) and reaps it (unless someone did).
    pub fn disarm(mut self) -> Result<()> {
        // A sentinel that is already gone (killed by someone) fails this write; it is
        // reaped below all the same.
        let _ = self.pipe.write_all(b"d");
        drop(self.pipe);
        self.pidfd.wait_exit(Duration::from_secs(10))?;
        loop {
            match self.pidfd.reap() {
                Ok(Some(_)) => return Ok(()),
                Ok(None) => {
                    self.pidfd.wait_exit(Duration::from_secs(10))?;
                }
                // Killed by someone and reaped already, by an init that reaps whatever
                // it does not claim (`process::reap_orphans`).
                Err(e) if e.os_error() == Some(libc::ECHILD) => return Ok(()),
                Err(e) => return Err(e),
            }
        }
    }
}

/// The first argument of an exec'd sentinel ([`Sentinel::start_exec`]).
const EXEC_ARG: &str = "--daemonic-sentinel";

/// Starts `/proc/self/exe` as a sentinel that waits on `read`, keeps `keep` (which holds
/// `read`) and kills what carries `marker`; its pid. Spawned without a copy of this
/// process: std's `Command` without hooks is `posix_spawn` (a `vfork`-like clone and an
/// `exec`), so this process's pages are neither copied nor made copy-on-write.
///
/// `keep` lose close-on-exec for the spawn and get it back after: the caller runs one
/// thread (checked), so nothing else is spawned meanwhile to inherit them. The pipe's
/// write end keeps it, so the sentinel never holds what it waits on.
fn spawn_exec(read: i32, keep: &[i32], marker: &str) -> std::io::Result<Pid> {
    use std::os::unix::process::CommandExt as _;
    let mut closing = Vec::new();
    for &fd in keep {
        if sys::is_cloexec(fd)? {
            closing.push(fd);
        }
    }
    let keep_list = keep
        .iter()
        .map(i32::to_string)
        .collect::<Vec<_>>()
        .join(",");
    let mut cmd = std::process::Command::new("/proc/self/exe");
    // The supervisor's own command line last, for `ps` (and for whoever looks for its
    // processes by what they were started with).
    cmd.arg0("daemonic-sentinel")
        .args([EXEC_ARG, &read.to_string(), &keep_list, marker, "for"])
        .args(std::env::args_os());
    let spawned = closing
        .iter()
        .try_for_each(|&fd| sys::clear_cloexec(fd))
        .and_then(|()| cmd.spawn());
    for &fd in &closing {
        sys::set_cloexec(fd)?;
    }
    // Not waited for through std: the pidfd of `Sentinel` reaps it.
    Ok(Pid::from_raw(spawned?.id() as i32))
}

/// Runs the sentinel and exits if this process is one that [`Sentinel::start_exec`]
/// started; returns at once otherwise. A program that uses `start_exec` calls it first
/// thing in `main`.
///
/// What it is given is checked (a pipe to wait on, open descriptors to keep, a marker of
/// the shape `start` makes); anything else ends the process with status 2 and a message,
/// and nothing is killed.
pub fn serve_if_asked() {
    let mut args = std::env::args_os().skip(1);
    if args.next().as_deref() != Some(std::ffi::OsStr::new(EXEC_ARG)) {
        return;
    }
    let words: Vec<String> = args
        .take(3)
        .map(|a| a.to_string_lossy().into_owned())
        .collect();
    let code = match exec_args(&words) {
        Ok((read, keep, marker)) => watch(read, &keep, &marker),
        Err(e) => {
            eprintln!("daemonic-sentinel: {e}");
            2
        }
    };
    sys::exit_immediately(code)
}

/// `FD KEEP MARKER` of an exec'd sentinel: the pipe (adopted), every descriptor to keep
/// (the pipe among them) and the marker.
fn exec_args(words: &[String]) -> std::result::Result<(OwnedFd, Vec<i32>, String), String> {
    let [read, keep, marker] = words else {
        return Err(format!("{EXEC_ARG} wants FD KEEP MARKER, not {words:?}"));
    };
    let number = |w: &str| {
        w.parse::<i32>()
            .ok()
            .filter(|fd| *fd > 2)
            .ok_or_else(|| format!("{w:?} is not a descriptor above 2"))
    };
    let read = number(read)?;
    let mut keep_raw = keep
        .split(',')
        .map(number)
        .collect::<std::result::Result<Vec<_>, _>>()?;
    keep_raw.sort_unstable();
    if !keep_raw.contains(&read) {
        return Err(format!(
            "the pipe {read} is not among the descriptors kept ({keep})"
        ));
    }
    match marker.split_once('=') {
        Some((var, token))
            if !var.is_empty()
                && token.len() == 16
                && token.bytes().all(|b| b.is_ascii_hexdigit()) => {}
        _ => {
            return Err(format!(
                "{marker:?} is not a sentinel's marker (VAR=16 hex digits)"
            ));
        }
    }
    for &fd in &keep_raw {
        // F_GETFD fails only on a descriptor that is not open.
        if sys::is_cloexec(fd).is_err() {
            return Err(format!("descriptor {fd} is not open"));
        }
    }
    let pipe = sys::adopt_inherited_fd(read).map_err(|e| format!("descriptor {read}: {e}"))?;
    let is_fifo =
        nix::sys::stat::fstat(&pipe).is_ok_and(|st| st.st_mode & libc::S_IFMT == libc::S_IFIFO);
    if !is_fifo {
        // Not ours to close: it is not the pipe it should be.
        std::mem::forget(pipe);
        return Err(format!("descriptor {read} is not a pipe"));
    }
    Ok((pipe, keep_raw, marker.clone()))
}

/// The sentinel's life: wait, then (unless disarmed) kill what carries `marker`. Returns
/// its exit status.
fn watch(read: OwnedFd, keep: &[i32], marker: &str) -> i32 {
    if sys::close_all_but(keep).is_err() {
        return crate::EXIT_INTERNAL;
    }
    // Handlers inherited from the supervisor (signal-hook's) would write to descriptors
    // that are closed now.
    let _ = sys::reset_signals(true);
    let _ = nix::unistd::setpgid(Pid::from_raw(0), Pid::from_raw(0));
    let _ = nix::sys::prctl::set_name(c"daemonic-sentinel");
    for sig in [
        Signal::SIGINT,
        Signal::SIGHUP,
        Signal::SIGQUIT,
        Signal::SIGTSTP,
    ] {
        let _ = sys::ignore_signal(sig);
    }
    if let Ok(null) = std::fs::File::options()
        .read(true)
        .write(true)
        .open("/dev/null")
    {
        let _ = sys::dup_onto(null.as_raw_fd(), 0);
        let _ = sys::dup_onto(null.as_raw_fd(), 1);
    }
    // It waits for days, touching nothing: the supervisor's code it ran since the fork
    // and the heap the allocator holds free need not stay resident (re-read if it acts).
    let _ = crate::memory::release_startup_pages();
    let mut pipe = std::fs::File::from(read);
    // What the supervisor said: `d` (disarm), `k/path\n` (a cgroup to empty) or
    // `m<value>\n` (a tree mark).
    let mut said: Vec<u8> = Vec::new();
    let mut chunk = [0u8; 512];
    loop {
        match pipe.read(&mut chunk) {
            Ok(0) => break,
            Ok(n) => said.extend_from_slice(&chunk[..n]),
            Err(e) if e.kind() == std::io::ErrorKind::Interrupted => continue,
            Err(_) => break,
        }
        // A line begun but not ended starts with `k`: a last line of just `d` is the
        // disarm.
        if said.rsplit(|b| *b == b'\n').next() == Some(b"d".as_slice()) {
            return 0;
        }
    }
    let mut killed = 0;
    let mut marks = Vec::new();
    for line in said.split(|b| *b == b'\n') {
        if let Some(dir) = line.strip_prefix(b"k") {
            use std::os::unix::ffi::OsStrExt;
            killed += kill_cgroup(std::path::Path::new(std::ffi::OsStr::from_bytes(dir)));
        } else if let Some(value) = line.strip_prefix(b"m") {
            let value = std::str::from_utf8(value).ok().and_then(|v| v.parse().ok());
            marks.extend(value.and_then(TreeMark::from_value));
        }
    }
    killed += kill_marked(marker, &marks);
    if killed > 0 {
        eprintln!(
            "daemonic: supervisor (pid {}) died; killed {killed} leftover process{} of its services",
            nix::unistd::getppid(),
            if killed == 1 { "" } else { "es" }
        );
    }
    0
}

/// Kills every process whose environment holds an entry starting with `marker`, or that
/// carries one of `marks`; repeats until a scan finds none. Returns how many were killed.
pub(crate) fn kill_marked(marker: &str, marks: &[TreeMark]) -> usize {
    tree_mark::kill_where(&[], |pid| {
        marks.iter().any(|m| m.carried_by(pid)) || carries(pid.as_raw(), marker)
    })
    .len()
}

/// Empties a cgroup v2 with `cgroup.kill` and waits (up to ten seconds) until the kernel
/// says it is empty; how many processes were in it.
fn kill_cgroup(dir: &std::path::Path) -> usize {
    let Ok(procs) = std::fs::read_to_string(dir.join("cgroup.procs")) else {
        return 0;
    };
    let n = procs.lines().count();
    if n == 0 {
        remove_cgroup(dir);
        return 0;
    }
    let Ok(mut kill) = std::fs::OpenOptions::new()
        .write(true)
        .open(dir.join("cgroup.kill"))
    else {
        return 0;
    };
    if kill.write_all(b"1").is_err() {
        return 0;
    }
    if let Ok(mut events) = std::fs::File::open(dir.join("cgroup.events")) {
        let deadline = std::time::Instant::now() + Duration::from_secs(10);
        // Read through the polled descriptor: the kernel marks it until it is read again.
        let populated = |events: &mut std::fs::File| {
            use std::io::Seek as _;
            let mut text = String::new();
            events.rewind().is_ok()
                && events.read_to_string(&mut text).is_ok()
                && text.lines().any(|l| l == "populated 1")
        };
        while populated(&mut events) {
            let left = deadline.saturating_duration_since(std::time::Instant::now());
            if left.is_zero() {
                break;
            }
            let mut fds = [nix::poll::PollFd::new(
                std::os::fd::AsFd::as_fd(&events),
                nix::poll::PollFlags::POLLPRI,
            )];
            let ms = u16::try_from(left.as_millis()).unwrap_or(u16::MAX);
            let _ = nix::poll::poll(&mut fds, nix::poll::PollTimeout::from(ms));
        }
    }
    remove_cgroup(dir);
    n
}

/// Removes an empty cgroup, and its parent (the state directory's group) unless another
/// service's group is in it.
fn remove_cgroup(dir: &std::path::Path) {
    if std::fs::remove_dir(dir).is_ok()
        && let Some(parent) = dir.parent()
    {
        let _ = std::fs::remove_dir(parent);
    }
}

/// Whether `/proc/PID/environ` has an entry that starts with `marker`.
fn carries(pid: i32, marker: &str) -> bool {
    let Ok(env) = std::fs::read(format!("/proc/{pid}/environ")) else {
        return false;
    };
    env.split(|b| *b == 0)
        .any(|entry| entry.starts_with(marker.as_bytes()))
}

#[cfg(test)]
mod tests {
    use super::*;
    use std::os::unix::process::ExitStatusExt;
    use std::process::Command;

    #[test]
    fn kills_marked_processes_and_spares_the_others() {
        let marker = format!("DAEMONIC_TEST_MARK={}", crate::random::token().unwrap());
        let (key, value) = marker.split_once('=').unwrap();
        let mut marked = Command::new("sleep")
            .arg("30")
            .env(key, format!("{value}0001"))
            .spawn()
            .unwrap();
        let mut other = Command::new("sleep")
            .arg("30")
            .env(key, "someone-else")
            .spawn()
            .unwrap();
        // A process that has only just exec'd shows no environment for a moment (the
        // kernel sets it up after releasing the parent): wait until the mark shows.
        let deadline = std::time::Instant::now() + std::time::Duration::from_secs(10);
        while !carries(marked.id() as i32, &marker) {
            assert!(
                std::time::Instant::now() < deadline,
                "the mark never showed"
            );
            std::thread::sleep(std::time::Duration::from_millis(1));
        }
        let killed = kill_marked(&marker, &[]);
        let status = marked.wait().unwrap();
        let spared = other.try_wait().unwrap();
        let _ = other.kill();
        let _ = other.wait();
        assert_eq!(killed, 1);
        assert_eq!(status.signal(), Some(libc::SIGKILL));
        assert!(spared.is_none(), "an unmarked process was killed");
    }
}
