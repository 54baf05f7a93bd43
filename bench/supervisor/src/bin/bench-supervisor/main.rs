//! `bench-supervisor`: daemonic's supervisor next to daemon(1), runit, s6, daemontools and
//! supervisord.
//!
//! Run it through `bench/supervisor/run.sh`, which installs the peers (`bench/peers.sh`),
//! builds everything and makes the temp dir. Five measurements, each with the same child
//! program for every tool; daemonic runs from a copy of its binary of its own per setup
//! (`own_copy`), so that its two setups never share code pages:
//!
//! 1. **Restart latency** (`latency`, and `defaults` with each tool's default settings):
//!    every tool supervises one `stamp` child at the same time. `stamp` reads
//!    `CLOCK_MONOTONIC` as its first act and appends `PID NANOS` to a file. Per iteration,
//!    in an order rotated per iteration, the harness takes each tool's current child (up
//!    for at least `--min-up`, so that runit's, s6's and daemontools' "restarted within a
//!    second" throttles never apply), reads `CLOCK_MONOTONIC`, sends SIGKILL, and waits
//!    (inotify) for the next line. Latency = the new child's stamp − the kill time: it
//!    holds the supervisor noticing the death, reaping, its restart logic, and the fork +
//!    exec + start-up of the child. The *floor* row is the harness spawning `stamp` itself.
//!    A tool that does not restart within `DEADLINE` with its defaults is reported so.
//! 2. **Memory** (`memory`): each tool runs 1 and then each `--services` count (daemonic:
//!    `run -f` of a config file of N services, one supervisor, and N `daemonic start`;
//!    daemon(1): N processes; runit: runsvdir + N runsv; s6: s6-svscan + N s6-supervise;
//!    daemontools: svscan + N supervise; supervisord: one process, N programs). After every
//!    child has stamped and a settling pause, for every process of the tool (children
//!    excluded): `Private_Clean + Private_Dirty` from `/proc/PID/smaps_rollup`, summed; and
//!    the memory *unique to the group* — pages (from `/proc/PID/pagemap`) whose
//!    `/proc/kpagecount` equals the number of times the group maps them, which counts pages
//!    a group's processes share among themselves (a forked sentinel, 100 runsv's text)
//!    once. Also the time from the first spawn until all N children had stamped.
//! 3. **Idle wake-ups** (`idle`, with `memory`): in the same setups, `voluntary_ctxt_switches
//!    + nonvoluntary_ctxt_switches` of every thread of every process of the tool, at t and at
//!    t + `--idle-secs`; nothing is killed or started in between.
//! 4. **Crash loop** (`crash`, in `crashloop.rs`): CPU per restart of a child that exits
//!    at once.
//! 5. **Log capture** (`log`): `spew` stamps its start and writes `--log-mb` MB of numbered
//!    64-byte lines to stdout, then exits. The time until the tool's log file holds all of
//!    it (size reached and the last line at its end, polled every 1 ms) next to `spew |
//!    cat > file`.
//!
//! The harness is a child subreaper: whatever a tool orphans stays its descendant, and at
//! the end every descendant still alive is SIGKILLed by pid. Raw samples go to `--raw FILE`
//! (TSV), the summary to stdout as Markdown.

use std::collections::{BTreeMap, HashMap};
use std::fmt::Write as _;
use std::fs::{self, File, OpenOptions};
use std::io::{self, Write};
use std::os::fd::AsRawFd;
use std::os::unix::fs::{FileExt, PermissionsExt, symlink};
use std::path::{Path, PathBuf};
use std::process::{Command, ExitCode, Stdio};
use std::time::{Duration, Instant};

mod crashloop;

type Res<T> = Result<T, String>;

/// Restart iterations run first and thrown away.
const WARMUP: usize = 2;
/// How long a started child may take to show up, and a stopped tool to go away.
const DEADLINE: Duration = Duration::from_secs(15);
/// Pause after every child has stamped, before memory is read (supervisord's RUNNING, a
/// grace period, runsvdir's first scan of its own).
const SETTLE: Duration = Duration::from_secs(2);

#[derive(Clone, Copy, PartialEq, Eq, PartialOrd, Ord, Hash, Debug)]
enum Tool {
    Daemonic,
    /// `daemonic start` with `DAEMONIC_CONTAINMENT=subreaper` (no cgroup per service).
    DaemonicSubreaper,
    DaemonicMany,
    Daemon1,
    Runit,
    S6,
    /// svscan + one `supervise` per service directory.
    Daemontools,
    Supervisord,
    /// No supervisor: the harness spawns `stamp` itself (restart floor).
    Floor,
    /// No supervisor: `spew | cat > file` (log baseline).
    Cat,
}

impl Tool {
    fn key(self) -> &'static str {
        match self {
            Tool::Daemonic => "daemonic",
            Tool::DaemonicSubreaper => "daemonic-subreaper",
            Tool::DaemonicMany => "daemonic-many",
            Tool::Daemon1 => "daemon1",
            Tool::Runit => "runit",
            Tool::S6 => "s6",
            Tool::Daemontools => "daemontools",
            Tool::Supervisord => "supervisord",
            Tool::Floor => "floor",
            Tool::Cat => "cat",
        }
    }

    fn label(self) -> &'static str {
        match self {
            Tool::Daemonic => "daemonic start (one per service)",
            Tool::DaemonicSubreaper => "daemonic start, DAEMONIC_CONTAINMENT=subreaper",
            Tool::DaemonicMany => "daemonic run -f (one supervisor for N)",
            Tool::Daemon1 => "daemon(1)",
            Tool::Runit => "runit",
            Tool::S6 => "s6",
            Tool::Daemontools => "daemontools",
            Tool::Supervisord => "supervisord",
            Tool::Floor => "floor: harness spawns the child (no tool)",
            Tool::Cat => "spew \\| cat > file (no tool)",
        }
    }

    fn is_peer(self) -> bool {
        matches!(
            self,
            Tool::Daemon1 | Tool::Runit | Tool::S6 | Tool::Daemontools | Tool::Supervisord
        )
    }
}

struct Config {
    iterations: usize,
    min_up: Duration,
    /// Service counts of the memory phase besides 1 (`--services 100,1000`).
    services: Vec<usize>,
    /// Crash loop: restarts to count per tool, and the time limit per tool.
    crashes: usize,
    crash_secs: u64,
    idle: Duration,
    log_mb: u64,
    log_reps: usize,
    dir: PathBuf,
    bin: PathBuf,
    daemonic: PathBuf,
    supervisord: Option<PathBuf>,
    peers: Vec<Tool>,
    raw: PathBuf,
    only: Vec<String>,
}

impl Config {
    fn has(&self, t: Tool) -> bool {
        !t.is_peer() || self.peers.contains(&t)
    }
    fn runs(&self, phase: &str) -> bool {
        self.only.is_empty() || self.only.iter().any(|p| p == phase)
    }
    fn stamp(&self) -> PathBuf {
        self.bin.join("stamp")
    }
    fn spew(&self) -> PathBuf {
        self.bin.join("spew")
    }
}

// ---------------------------------------------------------------------------------------
// Small system helpers.

fn mono_ns() -> u64 {
    let mut ts = libc::timespec {
        tv_sec: 0,
        tv_nsec: 0,
    };
    // SAFETY: a valid pointer to a timespec.
    unsafe { libc::clock_gettime(libc::CLOCK_MONOTONIC, &mut ts) };
    ts.tv_sec as u64 * 1_000_000_000 + ts.tv_nsec as u64
}

fn kill(pid: i32, sig: i32) -> bool {
    // SAFETY: kill has no memory preconditions; pid > 0 is checked (never a group).
    pid > 0 && unsafe { libc::kill(pid, sig) } == 0
}

/// Reaps every exited child (we are a subreaper: orphans of the tools are ours too).
fn reap() {
    loop {
        let mut status = 0;
        // SAFETY: a valid pointer to an int.
        let r = unsafe { libc::waitpid(-1, &mut status, libc::WNOHANG) };
        if r <= 0 {
            break;
        }
    }
}

/// The process state letter and parent pid from `/proc/PID/stat`.
fn stat(pid: i32) -> Option<(char, i32)> {
    let s = fs::read_to_string(format!("/proc/{pid}/stat")).ok()?;
    let rest = &s[s.rfind(')')? + 2..];
    let mut f = rest.split(' ');
    let state = f.next()?.chars().next()?;
    let ppid = f.next()?.parse().ok()?;
    Some((state, ppid))
}

fn alive(pid: i32) -> bool {
    matches!(stat(pid), Some((s, _)) if s != 'Z' && s != 'X')
}

fn exe(pid: i32) -> Option<PathBuf> {
    fs::read_link(format!("/proc/{pid}/exe")).ok()
}

fn comm(pid: i32) -> String {
    fs::read_to_string(format!("/proc/{pid}/comm"))
        .map(|s| s.trim().to_string())
        .unwrap_or_default()
}

/// `pids` and all their live descendants, parents first.
fn tree(pids: &[i32]) -> Vec<i32> {
    let mut kids: HashMap<i32, Vec<i32>> = HashMap::new();
    if let Ok(rd) = fs::read_dir("/proc") {
        for e in rd.flatten() {
            if let Some(pid) = e.file_name().to_str().and_then(|s| s.parse::<i32>().ok())
                && let Some((state, ppid)) = stat(pid)
                && state != 'Z'
            {
                kids.entry(ppid).or_default().push(pid);
            }
        }
    }
    let mut out: Vec<i32> = pids.iter().copied().filter(|&p| alive(p)).collect();
    let mut i = 0;
    while i < out.len() {
        if let Some(k) = kids.get(&out[i]) {
            for &c in k {
                if !out.contains(&c) {
                    out.push(c);
                }
            }
        }
        i += 1;
    }
    out
}

/// Sum of the `voluntary_ctxt_switches` and `nonvoluntary_ctxt_switches` of every thread.
fn ctxt(pid: i32) -> Option<u64> {
    let mut total = 0;
    for t in fs::read_dir(format!("/proc/{pid}/task")).ok()?.flatten() {
        let s = fs::read_to_string(t.path().join("status")).ok()?;
        for line in s.lines() {
            if let Some(v) = line
                .strip_prefix("voluntary_ctxt_switches:")
                .or_else(|| line.strip_prefix("nonvoluntary_ctxt_switches:"))
            {
                total += v.trim().parse::<u64>().ok()?;
            }
        }
    }
    Some(total)
}

/// KiB values from `/proc/PID/smaps_rollup` (and `VmPTE` from status).
#[derive(Clone, Copy, Default, Debug)]
struct Mem {
    rss: u64,
    pss: u64,
    private_clean: u64,
    private_dirty: u64,
    pte: u64,
}

impl Mem {
    fn private(&self) -> u64 {
        self.private_clean + self.private_dirty
    }
    fn add(&mut self, o: &Mem) {
        self.rss += o.rss;
        self.pss += o.pss;
        self.private_clean += o.private_clean;
        self.private_dirty += o.private_dirty;
        self.pte += o.pte;
    }
}

fn mem(pid: i32) -> Res<Mem> {
    let s = fs::read_to_string(format!("/proc/{pid}/smaps_rollup"))
        .map_err(|e| format!("smaps_rollup of {pid}: {e}"))?;
    let mut m = Mem::default();
    let kib = |v: &str| {
        v.trim()
            .trim_end_matches("kB")
            .trim()
            .parse::<u64>()
            .unwrap_or(0)
    };
    for line in s.lines() {
        if let Some((k, v)) = line.split_once(':') {
            match k {
                "Rss" => m.rss = kib(v),
                "Pss" => m.pss = kib(v),
                "Private_Clean" => m.private_clean = kib(v),
                "Private_Dirty" => m.private_dirty = kib(v),
                _ => {}
            }
        }
    }
    if let Ok(st) = fs::read_to_string(format!("/proc/{pid}/status")) {
        for line in st.lines() {
            if let Some(v) = line.strip_prefix("VmPTE:") {
                m.pte = kib(v);
            }
        }
    }
    Ok(m)
}

/// KiB of resident pages mapped by `pids` and by nothing else: each present page's frame
/// (`/proc/PID/pagemap`) counted once if `/proc/kpagecount` equals the number of times the
/// group maps it. Needs root (frame numbers are hidden otherwise). Returns (all, the part
/// in file mappings: the programs' and libraries' text and read-only data).
fn group_unique(pids: &[i32]) -> Res<(u64, u64)> {
    const PAGE: u64 = 4096;
    // Frame → (times mapped by the group, from a file mapping).
    let mut seen: HashMap<u64, (u64, bool)> = HashMap::new();
    for &pid in pids {
        let maps = fs::read_to_string(format!("/proc/{pid}/maps"))
            .map_err(|e| format!("maps of {pid}: {e}"))?;
        let pagemap = File::open(format!("/proc/{pid}/pagemap"))
            .map_err(|e| format!("pagemap of {pid}: {e}"))?;
        for line in maps.lines() {
            if line.ends_with("[vsyscall]") {
                continue;
            }
            let Some((range, _)) = line.split_once(' ') else {
                continue;
            };
            // The 6th field, a path, is there for file mappings ([heap], [stack]: not files).
            let file = line
                .split_whitespace()
                .nth(5)
                .is_some_and(|p| p.starts_with('/'));
            let Some((a, b)) = range.split_once('-') else {
                continue;
            };
            let (Ok(a), Ok(b)) = (u64::from_str_radix(a, 16), u64::from_str_radix(b, 16)) else {
                continue;
            };
            let mut page = a / PAGE;
            let end = b / PAGE;
            let mut buf = vec![0u8; 8 * 4096];
            while page < end {
                let n = ((end - page) as usize).min(4096);
                let got = match pagemap.read_at(&mut buf[..n * 8], page * 8) {
                    Ok(g) => g / 8,
                    Err(_) => break,
                };
                if got == 0 {
                    break;
                }
                for e in buf[..got * 8].chunks_exact(8) {
                    let v = u64::from_ne_bytes(e.try_into().unwrap());
                    let pfn = v & ((1 << 55) - 1);
                    if v >> 63 == 1 && pfn != 0 {
                        let e = seen.entry(pfn).or_default();
                        e.0 += 1;
                        e.1 |= file;
                    }
                }
                page += got as u64;
            }
        }
    }
    if seen.is_empty() {
        return Err(format!(
            "no page frames of {pids:?} visible in pagemap (not root?)"
        ));
    }
    let kpc = File::open("/proc/kpagecount").map_err(|e| format!("/proc/kpagecount: {e}"))?;
    let (mut unique, mut file) = (0, 0);
    let mut b = [0u8; 8];
    for (pfn, (n, f)) in seen {
        if kpc.read_exact_at(&mut b, pfn * 8).is_ok() && u64::from_ne_bytes(b) <= n {
            unique += 1;
            file += u64::from(f);
        }
    }
    Ok((unique * PAGE / 1024, file * PAGE / 1024))
}

/// An inotify watch on one file: `wait` returns when it was written to (or on timeout).
struct Watch(File);

impl Watch {
    fn new(path: &Path) -> Res<Watch> {
        use std::os::fd::FromRawFd;
        use std::os::unix::ffi::OsStrExt;
        // SAFETY: plain syscalls; the path is NUL-terminated below.
        let fd = unsafe { libc::inotify_init1(libc::IN_CLOEXEC | libc::IN_NONBLOCK) };
        if fd < 0 {
            return Err(format!("inotify_init1: {}", io::Error::last_os_error()));
        }
        // SAFETY: fd is a fresh descriptor we own.
        let f = unsafe { File::from_raw_fd(fd) };
        let mut c = path.as_os_str().as_bytes().to_vec();
        c.push(0);
        // SAFETY: c is NUL-terminated and outlives the call.
        let wd = unsafe { libc::inotify_add_watch(fd, c.as_ptr().cast(), libc::IN_MODIFY) };
        if wd < 0 {
            return Err(format!(
                "inotify_add_watch {}: {}",
                path.display(),
                io::Error::last_os_error()
            ));
        }
        Ok(Watch(f))
    }

    fn wait(&self, timeout: Duration) {
        let mut p = libc::pollfd {
            fd: self.0.as_raw_fd(),
            events: libc::POLLIN,
            revents: 0,
        };
        // SAFETY: one valid pollfd.
        unsafe { libc::poll(&mut p, 1, timeout.as_millis().min(i32::MAX as u128) as i32) };
        let mut buf = [0u8; 4096];
        // Drain (non-blocking); the events themselves do not matter.
        // SAFETY: reads into a buffer of the given length.
        while unsafe { libc::read(self.0.as_raw_fd(), buf.as_mut_ptr().cast(), buf.len()) } > 0 {}
    }
}

/// `PID NANOS` lines of a stamps file.
fn stamps(path: &Path) -> Vec<(i32, u64)> {
    fs::read_to_string(path)
        .unwrap_or_default()
        .lines()
        .filter_map(|l| {
            let (p, t) = l.split_once(' ')?;
            Some((p.parse().ok()?, t.parse().ok()?))
        })
        .collect()
}

fn write_file(path: &Path, text: &str, mode: u32) -> Res<()> {
    fs::write(path, text).map_err(|e| format!("{}: {e}", path.display()))?;
    fs::set_permissions(path, fs::Permissions::from_mode(mode))
        .map_err(|e| format!("{}: {e}", path.display()))
}

fn mkdir(path: &Path) -> Res<()> {
    fs::create_dir_all(path).map_err(|e| format!("{}: {e}", path.display()))
}

/// The daemonic binary for `tool`: a copy of `--daemonic` of its own (made once), so that
/// the two daemonic setups, running at the same time, never share the executable's page
/// cache pages (which would make each one's code look shared, not private), as a peer's
/// processes share only with their own kind.
fn own_copy(cfg: &Config, tool: Tool) -> Res<PathBuf> {
    let dir = cfg.dir.join(format!("bin-{}", tool.key()));
    let path = dir.join("daemonic");
    if !path.exists()
        && matches!(
            tool,
            Tool::Daemonic | Tool::DaemonicSubreaper | Tool::DaemonicMany
        )
    {
        mkdir(&dir)?;
        fs::copy(&cfg.daemonic, &path).map_err(|e| format!("{}: {e}", path.display()))?;
        // Written back before it runs: a page cache page not yet written counts as
        // Private_Dirty in every process that maps it.
        File::open(&path)
            .and_then(|f| f.sync_all())
            .map_err(|e| format!("{}: {e}", path.display()))?;
    }
    Ok(path)
}

/// Runs `cmd` to its end with stdin from /dev/null and stdout+stderr appended to `log`.
fn run_logged(cmd: &mut Command, log: &Path) -> Res<std::process::ExitStatus> {
    let out = OpenOptions::new()
        .create(true)
        .append(true)
        .open(log)
        .map_err(|e| format!("{}: {e}", log.display()))?;
    let err = out.try_clone().map_err(|e| e.to_string())?;
    cmd.stdin(Stdio::null())
        .stdout(out)
        .stderr(err)
        .status()
        .map_err(|e| format!("run {:?}: {e}", cmd.get_program()))
}

/// Spawns `cmd` with stdin from /dev/null and stdout+stderr appended to `log`; its pid.
fn spawn(cmd: &mut Command, log: &Path) -> Res<i32> {
    let out = OpenOptions::new()
        .create(true)
        .append(true)
        .open(log)
        .map_err(|e| format!("{}: {e}", log.display()))?;
    let err = out.try_clone().map_err(|e| e.to_string())?;
    let child = cmd
        .stdin(Stdio::null())
        .stdout(out)
        .stderr(err)
        .spawn()
        .map_err(|e| format!("spawn {:?}: {e}", cmd.get_program()))?;
    // Reaped by `reap`, never by the Child handle (dropping it neither waits nor kills).
    Ok(child.id() as i32)
}

fn pct(sorted: &[f64], p: f64) -> f64 {
    if sorted.is_empty() {
        return f64::NAN;
    }
    let rank = ((p / 100.0) * sorted.len() as f64).ceil() as usize;
    sorted[rank.clamp(1, sorted.len()) - 1]
}

fn median(v: &[f64]) -> f64 {
    let mut s = v.to_vec();
    s.sort_by(f64::total_cmp);
    if s.is_empty() {
        return f64::NAN;
    }
    let n = s.len();
    if n % 2 == 1 {
        s[n / 2]
    } else {
        (s[n / 2 - 1] + s[n / 2]) / 2.0
    }
}

// ---------------------------------------------------------------------------------------
// Raw samples.

struct Raw(File);

impl Raw {
    #[allow(clippy::too_many_arguments)]
    fn row(
        &mut self,
        phase: &str,
        tool: Tool,
        n: usize,
        iter: usize,
        role: &str,
        pid: i32,
        metric: &str,
        value: impl std::fmt::Display,
    ) {
        let _ = writeln!(
            self.0,
            "{phase}\t{}\t{n}\t{iter}\t{role}\t{pid}\t{metric}\t{value}",
            tool.key()
        );
    }
}

// ---------------------------------------------------------------------------------------
// Setups: a tool running N services, each a `stamp` child.

/// How the tools are set up.
#[derive(Clone, Copy, PartialEq, Eq, Debug)]
pub enum Mode {
    /// Each tool's fastest restart settings (no delay); the child parks.
    Fast,
    /// Each tool's default settings (daemon(1) needs `--respawn` to restart at all); the
    /// child parks.
    Defaults,
    /// Fastest settings, and the child exits 1 right after its stamp (a crash loop).
    Crash,
}

struct Setup {
    tool: Tool,
    n: usize,
    dir: PathBuf,
    stamps: PathBuf,
    /// What the harness spawned (the tool's top processes).
    tops: Vec<i32>,
}

#[derive(Clone, Copy, PartialEq, Eq, PartialOrd, Ord, Debug)]
enum Role {
    /// The process that supervises a child (daemonic, daemon, runsv, s6-supervise, supervisord).
    Supervisor,
    /// daemonic's sentinel (a fork of the supervisor).
    Sentinel,
    /// runsvdir, s6-svscan: start one supervisor per service directory.
    Scanner,
    /// A supervised child (stamp / spew), never counted.
    Child,
    /// Anything else found in the tree.
    Other,
}

impl Role {
    fn key(self) -> &'static str {
        match self {
            Role::Supervisor => "supervisor",
            Role::Sentinel => "sentinel",
            Role::Scanner => "scanner",
            Role::Child => "child",
            Role::Other => "other",
        }
    }
}

impl Setup {
    fn start(cfg: &Config, tool: Tool, n: usize, dir: PathBuf, mode: Mode) -> Res<Setup> {
        mkdir(&dir)?;
        let stamps = dir.join("stamps");
        fs::write(&stamps, "").map_err(|e| e.to_string())?;
        let log = dir.join("out.log");
        let stamp = cfg.stamp();
        // The child reads it (inherited through every tool) and exits 1 after its stamp.
        let exit = if mode == Mode::Crash { "1" } else { "" };
        let fast = mode != Mode::Defaults;
        let daemonic = own_copy(cfg, tool)?;
        let mut tops = Vec::new();
        match tool {
            Tool::Daemonic | Tool::DaemonicSubreaper => {
                // One `daemonic start` per service (each its own supervisor and sentinel),
                // as with daemon(1) and runsv per service. `start` returns once the child
                // is ready (10 ms grace here); the supervisor's pid is in its pid file.
                for i in 0..n {
                    let name = format!("bench-{i}");
                    let mut cmd = Command::new(&daemonic);
                    cmd.arg("--state-dir").arg(dir.join("state"));
                    cmd.args(["start", "--name", &name, "--grace", "10ms"]);
                    if fast {
                        cmd.args(["--restart", "always", "--backoff", "0ms"]);
                    }
                    cmd.arg("--").arg(&stamp).arg(&stamps);
                    cmd.env("STAMP_EXIT", exit);
                    if tool == Tool::DaemonicSubreaper {
                        cmd.env("DAEMONIC_CONTAINMENT", "subreaper");
                    }
                    let status = run_logged(&mut cmd, &log)?;
                    let pid_file = dir.join("state").join(format!("{name}.pid"));
                    let pid = fs::read_to_string(&pid_file)
                        .ok()
                        .and_then(|t| t.trim().parse::<i32>().ok())
                        .ok_or(format!(
                            "daemonic start {name} ({status}): no pid in {} (see {})",
                            pid_file.display(),
                            log.display()
                        ))?;
                    tops.push(pid);
                }
            }
            Tool::DaemonicMany => {
                // One supervisor for a config file of N services: what `up` runs, in the
                // foreground (`run -f`), with each service's pid file, control socket and
                // status file.
                let mut toml = String::new();
                let settings = if fast {
                    "restart = \"always\"\nbackoff = \"0ms\"\n"
                } else {
                    ""
                };
                for i in 0..n {
                    toml += &format!(
                        "[services.bench-{i}]\ncommand = [{:?}, {:?}]\n{settings}grace = \"10ms\"\n\n",
                        stamp.display().to_string(),
                        stamps.display().to_string()
                    );
                }
                let file = dir.join("daemonic.toml");
                std::fs::write(&file, toml).map_err(|e| format!("{}: {e}", file.display()))?;
                tops.push(spawn(
                    Command::new(&daemonic)
                        .arg("--state-dir")
                        .arg(dir.join("state"))
                        .args(["run", "-f"])
                        .arg(&file)
                        .env("STAMP_EXIT", exit),
                    &log,
                )?);
            }
            Tool::Daemon1 => {
                for i in 0..n {
                    let mut cmd = Command::new("daemon");
                    cmd.args(["--noconfig", "--foreground"])
                        .arg(format!("--name=bench-{i}"))
                        .arg(format!("--pidfiles={}", dir.display()))
                        .arg("--respawn");
                    if fast {
                        cmd.args(["--idiot", "--acceptable=0"]);
                    }
                    cmd.arg("--").arg(&stamp).arg(&stamps);
                    tops.push(spawn(cmd.env("STAMP_EXIT", exit), &log)?);
                }
            }
            Tool::Runit | Tool::S6 | Tool::Daemontools => {
                let scan = dir.join("scan");
                for i in 0..n {
                    let sv = scan.join(format!("bench-{i}"));
                    mkdir(&sv)?;
                    symlink(&stamp, sv.join("run")).map_err(|e| e.to_string())?;
                }
                let prog = match tool {
                    Tool::Runit => "runsvdir",
                    Tool::S6 => "s6-svscan",
                    _ => "svscan",
                };
                let mut cmd = Command::new(prog);
                if tool == Tool::S6 {
                    // s6-svscan supervises at most 500 services unless told (-c).
                    cmd.arg(format!("-c{}", n.max(500) + 10));
                }
                tops.push(spawn(
                    cmd.arg(&scan)
                        .env("STAMP_FILE", &stamps)
                        .env("STAMP_EXIT", exit),
                    &log,
                )?);
            }
            Tool::Supervisord => {
                let mut conf = supervisord_header(&dir);
                // Defaults: startsecs=1, autorestart=unexpected (a SIGKILL is unexpected),
                // output to files in childlogdir.
                let settings = if fast {
                    "startsecs=0\nautorestart=true\nstartretries=1000000\n\
                     stdout_logfile=NONE\nstderr_logfile=NONE\n"
                } else {
                    ""
                };
                for i in 0..n {
                    let _ = write!(
                        conf,
                        "\n[program:bench-{i}]\ncommand={} {}\n{settings}",
                        stamp.display(),
                        stamps.display()
                    );
                }
                tops.push(start_supervisord(cfg, &dir, &conf, &log, exit)?);
            }
            Tool::Floor | Tool::Cat => unreachable!(),
        }
        Ok(Setup {
            tool,
            n,
            dir,
            stamps,
            tops,
        })
    }

    /// Waits until `n` different children have stamped.
    fn wait_started(&self) -> Res<()> {
        let t0 = Instant::now();
        loop {
            let mut pids: Vec<i32> = stamps(&self.stamps).into_iter().map(|(p, _)| p).collect();
            pids.sort_unstable();
            pids.dedup();
            if pids.len() >= self.n {
                return Ok(());
            }
            // 20 ms more per service: 1,000 services take a while to start everywhere.
            let deadline = DEADLINE + Duration::from_millis(20 * self.n as u64);
            if t0.elapsed() > deadline || !self.tops.iter().any(|&p| alive(p)) {
                return Err(format!(
                    "{}: {} of {} children started (see {})",
                    self.tool.label(),
                    pids.len(),
                    self.n,
                    self.dir.join("out.log").display()
                ));
            }
            std::thread::sleep(Duration::from_millis(20));
        }
    }

    /// Every process of the tool (children included) with its role.
    fn roles(&self, cfg: &Config) -> Vec<(i32, Role)> {
        let stamp = fs::canonicalize(cfg.stamp()).ok();
        let spew = fs::canonicalize(cfg.spew()).ok();
        let all = tree(&self.tops);
        all.iter()
            .map(|&pid| {
                let e = exe(pid);
                let role = if e.is_some() && (e == stamp || e == spew) {
                    Role::Child
                } else if self.tops.contains(&pid) {
                    match self.tool {
                        Tool::Runit | Tool::S6 | Tool::Daemontools => Role::Scanner,
                        _ => Role::Supervisor,
                    }
                } else {
                    let parent = stat(pid).map(|s| s.1).unwrap_or(0);
                    match self.tool {
                        Tool::Daemonic | Tool::DaemonicSubreaper | Tool::DaemonicMany
                            if self.tops.contains(&parent) && e.is_some() && e == exe(parent) =>
                        {
                            Role::Sentinel
                        }
                        Tool::Runit if comm(pid) == "runsv" => Role::Supervisor,
                        Tool::S6 if comm(pid) == "s6-supervise" => Role::Supervisor,
                        Tool::Daemontools if comm(pid) == "supervise" => Role::Supervisor,
                        _ => Role::Other,
                    }
                };
                (pid, role)
            })
            .collect()
    }

    fn stop(self) -> Res<()> {
        if self.tool == Tool::Daemontools {
            // svscan leaves its supervise processes running on SIGTERM: first tell each
            // to stop its service and exit (svc -dx), then end svscan.
            let dirs: Vec<PathBuf> = fs::read_dir(self.dir.join("scan"))
                .map_err(|e| e.to_string())?
                .filter_map(|e| e.ok().map(|e| e.path()))
                .collect();
            for chunk in dirs.chunks(200) {
                let _ = Command::new("svc")
                    .arg("-dx")
                    .args(chunk)
                    .stderr(Stdio::null())
                    .status();
            }
        }
        stop_tree(self.tool, &self.tops)
    }
}

fn supervisord_header(dir: &Path) -> String {
    format!(
        "[supervisord]\nnodaemon=true\nlogfile={0}/supervisord.log\npidfile={0}/supervisord.pid\n\
         childlogdir={0}\nloglevel=warn\n",
        dir.display()
    )
}

fn start_supervisord(cfg: &Config, dir: &Path, conf: &str, log: &Path, exit: &str) -> Res<i32> {
    let path = dir.join("supervisord.conf");
    write_file(&path, conf, 0o644)?;
    let exe = cfg.supervisord.as_ref().ok_or("supervisord not found")?;
    spawn(
        Command::new(exe)
            .arg("-n")
            .arg("-c")
            .arg(&path)
            .env("STAMP_EXIT", exit),
        log,
    )
}

/// Stops a tool with its own shutdown signal, waits for every process of its tree to be
/// gone, and SIGKILLs (by pid) what is left after the deadline.
fn stop_tree(tool: Tool, tops: &[i32]) -> Res<()> {
    let pids = tree(tops);
    for &t in tops {
        // runsvdir: HUP = TERM every runsv (which stops its service) and exit.
        kill(
            t,
            if tool == Tool::Runit {
                libc::SIGHUP
            } else {
                libc::SIGTERM
            },
        );
    }
    let t0 = Instant::now();
    loop {
        reap();
        let left: Vec<i32> = pids.iter().copied().filter(|&p| alive(p)).collect();
        if left.is_empty() {
            return Ok(());
        }
        if t0.elapsed() > DEADLINE {
            for &p in &left {
                kill(p, libc::SIGKILL);
            }
            std::thread::sleep(Duration::from_millis(100));
            reap();
            return Err(format!(
                "{}: {} processes outlived the stop; killed {left:?}",
                tool.label(),
                left.len()
            ));
        }
        std::thread::sleep(Duration::from_millis(10));
    }
}

// ---------------------------------------------------------------------------------------
// 1. Restart latency.

fn latency(cfg: &Config, raw: &mut Raw, out: &mut String, mode: Mode) -> Res<()> {
    let phase = if mode == Mode::Defaults {
        "latency-defaults"
    } else {
        "latency"
    };
    let tools: Vec<Tool> = [
        Tool::Daemonic,
        Tool::DaemonicSubreaper,
        Tool::Daemon1,
        Tool::Runit,
        Tool::S6,
        Tool::Daemontools,
        Tool::Supervisord,
    ]
    .into_iter()
    .filter(|&t| cfg.has(t))
    .collect();
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
    })();
    for s in setups {
        if let Err(e) = s.stop() {
            eprintln!("bench-supervisor: {e}");
        }
    }
    let samples = result?;
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
    for (tool, v) in &samples {
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
    for (tool, kill) in &gone {
        let _ = writeln!(
            out,
            "| {} | no restart within {DEADLINE:?} of kill {kill} ({WARMUP} warm-ups included); no later samples | | | | |",
            tool.label()
        );
    }
    Ok(())
}

/// Kills the tool's current child, returns ns from the kill to the new child's stamp.
fn kill_once(cfg: &Config, s: &Setup, w: &Watch) -> Res<u64> {
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
fn floor_once(cfg: &Config, stamps_path: &Path, w: &Watch, dir: &Path) -> Res<u64> {
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

// ---------------------------------------------------------------------------------------
// 2 and 3. Memory and idle wake-ups.

struct Footprint {
    tool: Tool,
    n: usize,
    /// Supervisor processes only (no scanner, no sentinel).
    sup: Mem,
    sup_procs: usize,
    sup_unique: u64,
    /// Every process of the tool but the children.
    all: Mem,
    all_procs: usize,
    all_unique: u64,
    /// The part of `all_unique` in file mappings.
    all_unique_file: u64,
    /// Context switches over the idle window, by role: (role, processes, switches).
    idle: Vec<(Role, usize, u64)>,
    /// From the first spawn until all N children had stamped, ms.
    running_ms: f64,
}

fn footprints(cfg: &Config, n: usize, raw: &mut Raw) -> Res<Vec<Footprint>> {
    let mut tools = vec![
        Tool::Daemonic,
        Tool::DaemonicMany,
        Tool::Daemon1,
        Tool::Runit,
        Tool::S6,
        Tool::Daemontools,
        Tool::Supervisord,
    ];
    tools.retain(|&t| cfg.has(t));
    let mut setups = Vec::new();
    let mut running = Vec::new();
    let result = (|| -> Res<Vec<Footprint>> {
        for &t in &tools {
            let t0 = Instant::now();
            let s = Setup::start(
                cfg,
                t,
                n,
                cfg.dir.join(format!("mem-{n}")).join(t.key()),
                Mode::Fast,
            )?;
            s.wait_started()?;
            // From the first spawn until every child has stamped: all N running.
            let ms = t0.elapsed().as_secs_f64() * 1e3;
            raw.row(
                "memory",
                t,
                n,
                0,
                "all",
                0,
                "all_running_ms",
                format!("{ms:.1}"),
            );
            setups.push(s);
            running.push(ms);
        }
        std::thread::sleep(SETTLE);
        let mut fps = Vec::new();
        let mut procs = Vec::new();
        for (si, s) in setups.iter().enumerate() {
            let roles: Vec<(i32, Role)> = s
                .roles(cfg)
                .into_iter()
                .filter(|r| r.1 != Role::Child)
                .collect();
            let mut fp = Footprint {
                tool: s.tool,
                n,
                sup: Mem::default(),
                sup_procs: 0,
                sup_unique: 0,
                all: Mem::default(),
                all_procs: 0,
                all_unique: 0,
                all_unique_file: 0,
                idle: vec![],
                running_ms: running[si],
            };
            let mut sup_pids = vec![];
            for &(pid, role) in &roles {
                let m = mem(pid)?;
                raw.row(
                    "memory",
                    s.tool,
                    n,
                    0,
                    role.key(),
                    pid,
                    "private_clean_kib",
                    m.private_clean,
                );
                raw.row(
                    "memory",
                    s.tool,
                    n,
                    0,
                    role.key(),
                    pid,
                    "private_dirty_kib",
                    m.private_dirty,
                );
                raw.row("memory", s.tool, n, 0, role.key(), pid, "pss_kib", m.pss);
                raw.row("memory", s.tool, n, 0, role.key(), pid, "rss_kib", m.rss);
                raw.row("memory", s.tool, n, 0, role.key(), pid, "vmpte_kib", m.pte);
                fp.all.add(&m);
                fp.all_procs += 1;
                if role == Role::Supervisor {
                    fp.sup.add(&m);
                    fp.sup_procs += 1;
                    sup_pids.push(pid);
                }
            }
            let all_pids: Vec<i32> = roles.iter().map(|r| r.0).collect();
            fp.sup_unique = group_unique(&sup_pids)?.0;
            (fp.all_unique, fp.all_unique_file) = group_unique(&all_pids)?;
            raw.row(
                "memory",
                s.tool,
                n,
                0,
                "supervisors",
                0,
                "group_unique_kib",
                fp.sup_unique,
            );
            raw.row(
                "memory",
                s.tool,
                n,
                0,
                "all",
                0,
                "group_unique_kib",
                fp.all_unique,
            );
            raw.row(
                "memory",
                s.tool,
                n,
                0,
                "all",
                0,
                "group_unique_file_kib",
                fp.all_unique_file,
            );
            fps.push(fp);
            procs.push(roles);
        }
        // Idle: every process at t, then at t + idle.
        let before: Vec<Vec<Option<u64>>> = procs
            .iter()
            .map(|rs| rs.iter().map(|&(p, _)| ctxt(p)).collect())
            .collect();
        std::thread::sleep(cfg.idle);
        for (i, rs) in procs.iter().enumerate() {
            let mut by: BTreeMap<Role, (usize, u64)> = BTreeMap::new();
            for (j, &(pid, role)) in rs.iter().enumerate() {
                let (Some(a), Some(b)) = (before[i][j], ctxt(pid)) else {
                    return Err(format!(
                        "{}: process {pid} ended during the idle window",
                        fps[i].tool.label()
                    ));
                };
                raw.row(
                    "idle",
                    fps[i].tool,
                    n,
                    0,
                    role.key(),
                    pid,
                    "ctxt_switches",
                    b - a,
                );
                let e = by.entry(role).or_default();
                e.0 += 1;
                e.1 += b - a;
            }
            fps[i].idle = by.into_iter().map(|(r, (c, s))| (r, c, s)).collect();
        }
        Ok(fps)
    })();
    for s in setups {
        if let Err(e) = s.stop() {
            eprintln!("bench-supervisor: {e}");
        }
    }
    result
}

/// A ratio with two decimals, or three significant digits below 0.1.
fn ratio(r: f64) -> String {
    if r.abs() < 0.1 {
        format!("{r:.3}×")
    } else {
        format!("{r:.2}×")
    }
}

fn kib(v: u64) -> String {
    format!("{v}")
}

fn memory_tables(cfg: &Config, n: usize, one: &[Footprint], many: &[Footprint], out: &mut String) {
    let _ = writeln!(
        out,
        "\n### Memory (KiB): Private_Clean + Private_Dirty from smaps_rollup, summed; \
         *unique* = pages mapped by these processes only (pagemap + kpagecount)\n"
    );
    let _ = writeln!(
        out,
        "| tool | services | supervisor procs | supervisors: private (clean + dirty) | supervisors: unique | all procs | all: private | all: unique (of it in files) | all: Pss | all: VmPTE | all running after, ms |"
    );
    let _ = writeln!(
        out,
        "|---|---:|---:|---:|---:|---:|---:|---:|---:|---:|---:|"
    );
    for fp in one.iter().chain(many) {
        let _ = writeln!(
            out,
            "| {} | {} | {} | {} ({} + {}) | {} | {} | {} | {} ({}) | {} | {} | {:.0} |",
            fp.tool.label(),
            fp.n,
            fp.sup_procs,
            kib(fp.sup.private()),
            fp.sup.private_clean,
            fp.sup.private_dirty,
            kib(fp.sup_unique),
            fp.all_procs,
            kib(fp.all.private()),
            kib(fp.all_unique),
            fp.all_unique_file,
            kib(fp.all.pss),
            kib(fp.all.pte),
            fp.running_ms
        );
    }
    // Per extra service.
    if n > 1 {
        let _ = writeln!(
            out,
            "\n### Memory per extra service (KiB): (N={n} − N=1) ÷ {}\n",
            n - 1
        );
        let _ = writeln!(out, "| tool | all: private | all: unique | all: Pss |");
        let _ = writeln!(out, "|---|---:|---:|---:|");
        let per = |fp1: &Footprint, fpn: &Footprint| {
            let d = (n - 1) as f64;
            (
                (fpn.all.private() as f64 - fp1.all.private() as f64) / d,
                (fpn.all_unique as f64 - fp1.all_unique as f64) / d,
                (fpn.all.pss as f64 - fp1.all.pss as f64) / d,
            )
        };
        let find = |v: &[Footprint], t: Tool| v.iter().position(|f| f.tool == t);
        let mut pers: Vec<(Tool, (f64, f64, f64))> = vec![];
        for fpn in many {
            let Some(a) = find(one, fpn.tool) else {
                continue;
            };
            let (p, u, s) = per(&one[a], fpn);
            pers.push((fpn.tool, (p, u, s)));
            let _ = writeln!(out, "| {} | {p:.1} | {u:.1} | {s:.1} |", fpn.tool.label());
        }
        let get = |t: Tool| pers.iter().find(|p| p.0 == t).map(|p| p.1);
        let _ = writeln!(
            out,
            "\n### Memory per extra service, ratios (daemonic ÷ tool, *unique* column)\n"
        );
        let _ = writeln!(
            out,
            "| tool | daemonic run -f ÷ tool | daemonic start ×N ÷ tool |"
        );
        let _ = writeln!(out, "|---|---:|---:|");
        for (t, (_, u, _)) in pers.iter().filter(|p| p.0.is_peer()) {
            let r = |d: Option<(f64, f64, f64)>| d.map_or("–".into(), |d| ratio(d.1 / u));
            let _ = writeln!(
                out,
                "| {} | {} | {} |",
                t.label(),
                r(get(Tool::DaemonicMany)),
                r(get(Tool::Daemonic))
            );
        }
    }
    // Ratios for one service: daemonic run against each peer.
    if let Some(d) = one.iter().find(|f| f.tool == Tool::Daemonic) {
        let _ = writeln!(
            out,
            "\n### Memory for one service, ratios (`daemonic start` ÷ tool)\n"
        );
        let _ = writeln!(
            out,
            "| tool | supervisor alone: private | supervisor + sentinel / + scanner: private | supervisor + sentinel / + scanner: unique |"
        );
        let _ = writeln!(out, "|---|---:|---:|---:|");
        for fp in one.iter().filter(|f| f.tool.is_peer()) {
            let _ = writeln!(
                out,
                "| {} | {} | {} | {} |",
                fp.tool.label(),
                ratio(d.sup.private() as f64 / fp.sup.private() as f64),
                ratio(d.all.private() as f64 / fp.all.private() as f64),
                ratio(d.all_unique as f64 / fp.all_unique as f64)
            );
        }
    }
    let _ = writeln!(
        out,
        "\n### Idle: context switches in {:?} (voluntary + involuntary, all threads)\n",
        cfg.idle
    );
    let _ = writeln!(
        out,
        "| tool | services | total | by role (processes: switches) |"
    );
    let _ = writeln!(out, "|---|---:|---:|---|");
    for fp in one.iter().chain(many) {
        let total: u64 = fp.idle.iter().map(|r| r.2).sum();
        let by: Vec<String> = fp
            .idle
            .iter()
            .map(|(r, c, s)| format!("{} ×{c}: {s}", r.key()))
            .collect();
        let _ = writeln!(
            out,
            "| {} | {} | {total} | {} |",
            fp.tool.label(),
            fp.n,
            by.join(", ")
        );
    }
}

// ---------------------------------------------------------------------------------------
// 4. Log capture throughput.

/// How daemonic captures a child's output, if this build can (`--log-file` on `run`).
fn daemonic_log_flag(cfg: &Config) -> bool {
    Command::new(&cfg.daemonic)
        .args(["run", "--help"])
        .output()
        .map(|o| String::from_utf8_lossy(&o.stdout).contains("--log-file"))
        .unwrap_or(false)
}

/// Starts one log variant; returns (processes to stop, the log file to watch).
fn start_log(cfg: &Config, tool: Tool, dir: &Path, bytes: u64) -> Res<(Vec<i32>, PathBuf)> {
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
            // cat first, so that spew's stamp does not include cat's start.
            let file = File::create(&target).map_err(|e| e.to_string())?;
            let mut cat = Command::new("cat")
                .stdin(Stdio::piped())
                .stdout(file)
                .spawn()
                .map_err(|e| format!("cat: {e}"))?;
            tops.push(cat.id() as i32);
            let pipe = cat.stdin.take().ok_or("cat stdin")?;
            let s = Command::new(&spew)
                .args(&args)
                .stdin(Stdio::null())
                .stdout(pipe)
                .spawn();
            let s = s.map_err(|e| format!("spew: {e}"))?;
            tops.push(s.id() as i32);
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
            tops.push(spawn(Command::new(prog).arg(dir.join("scan")), &log)?);
            logdir.join("current")
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

/// Whether `path` holds all of spew's output: at least `bytes` bytes, and its last line in
/// the last 4 KiB (a supervisor may write a note of its own after it, as daemonic does).
fn log_complete(path: &Path, bytes: u64, last: &[u8]) -> bool {
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

fn logs(cfg: &Config, raw: &mut Raw, out: &mut String) -> Res<()> {
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
            let t0 = Instant::now();
            let mut checked = Instant::now();
            let r = loop {
                if log_complete(&target, bytes, &last) {
                    break Ok(mono_ns());
                }
                if t0.elapsed() > Duration::from_secs(300) {
                    break Err(format!(
                        "{}: log incomplete after 300 s ({})",
                        tool.label(),
                        target.display()
                    ));
                }
                // Everything gone and the log still incomplete: it never will be.
                if checked.elapsed() > Duration::from_secs(2) {
                    checked = Instant::now();
                    if tree(&tops).is_empty() && !log_complete(&target, bytes, &last) {
                        break Err(format!(
                            "{}: exited with the log incomplete ({})",
                            tool.label(),
                            target.display()
                        ));
                    }
                }
                std::thread::sleep(Duration::from_millis(1));
            };
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
    for (tool, v) in &rates {
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
    Ok(())
}

// ---------------------------------------------------------------------------------------

fn parse_args() -> Res<Config> {
    let mut cfg = Config {
        iterations: 20,
        min_up: Duration::from_millis(1500),
        services: vec![100],
        crashes: 10_000,
        crash_secs: 60,
        idle: Duration::from_secs(10),
        log_mb: 200,
        log_reps: 3,
        dir: PathBuf::new(),
        bin: PathBuf::new(),
        daemonic: PathBuf::new(),
        supervisord: None,
        peers: vec![],
        raw: PathBuf::new(),
        only: vec![],
    };
    let mut it = std::env::args().skip(1);
    while let Some(a) = it.next() {
        let mut v = || it.next().ok_or(format!("{a} needs a value"));
        let num = |s: String| {
            s.parse::<u64>()
                .map_err(|_| format!("{a}: not a number: {s}"))
        };
        match a.as_str() {
            "--iterations" => cfg.iterations = num(v()?)? as usize,
            "--min-up-ms" => cfg.min_up = Duration::from_millis(num(v()?)?),
            "--services" => {
                cfg.services = v()?
                    .split(',')
                    .map(|n| num(n.to_string()).map(|n| n as usize))
                    .collect::<Res<Vec<_>>>()?
            }
            "--crashes" => cfg.crashes = num(v()?)? as usize,
            "--crash-secs" => cfg.crash_secs = num(v()?)?,
            "--idle-secs" => cfg.idle = Duration::from_secs(num(v()?)?),
            "--log-mb" => cfg.log_mb = num(v()?)?,
            "--log-reps" => cfg.log_reps = num(v()?)? as usize,
            "--dir" => cfg.dir = v()?.into(),
            "--bin" => cfg.bin = v()?.into(),
            "--daemonic" => cfg.daemonic = v()?.into(),
            "--supervisord" => cfg.supervisord = Some(v()?.into()),
            "--raw" => cfg.raw = v()?.into(),
            "--only" => cfg.only = v()?.split(',').map(str::to_string).collect(),
            "--peers" => {
                for p in v()?.split(',').filter(|p| !p.is_empty()) {
                    cfg.peers.push(match p {
                        "daemon1" => Tool::Daemon1,
                        "runit" => Tool::Runit,
                        "s6" => Tool::S6,
                        "daemontools" => Tool::Daemontools,
                        "supervisord" => Tool::Supervisord,
                        _ => return Err(format!("unknown peer {p}")),
                    });
                }
            }
            _ => return Err(format!("unknown argument {a}")),
        }
    }
    if cfg.dir.as_os_str().is_empty()
        || cfg.bin.as_os_str().is_empty()
        || cfg.daemonic.as_os_str().is_empty()
        || cfg.raw.as_os_str().is_empty()
    {
        return Err("--dir, --bin, --daemonic and --raw are required".into());
    }
    if cfg.peers.contains(&Tool::Supervisord) && cfg.supervisord.is_none() {
        return Err("--peers supervisord needs --supervisord PATH".into());
    }
    Ok(cfg)
}

fn run(cfg: &Config, out: &mut String) -> Res<()> {
    let file = File::create(&cfg.raw).map_err(|e| format!("{}: {e}", cfg.raw.display()))?;
    let mut raw = Raw(file);
    let _ = writeln!(
        raw.0,
        "# phase\ttool\tservices\titeration\trole\tpid\tmetric\tvalue"
    );
    if cfg.runs("latency") {
        eprintln!(
            "bench-supervisor: restart latency ({} kills per tool)…",
            cfg.iterations
        );
        latency(cfg, &mut raw, out, Mode::Fast)?;
    }
    if cfg.runs("defaults") {
        eprintln!(
            "bench-supervisor: restart latency, default settings ({} kills per tool)…",
            cfg.iterations
        );
        latency(cfg, &mut raw, out, Mode::Defaults)?;
    }
    if cfg.runs("memory") {
        eprintln!("bench-supervisor: memory and idle, 1 service…");
        let one = footprints(cfg, 1, &mut raw)?;
        if cfg.services.iter().all(|&n| n <= 1) {
            memory_tables(cfg, 1, &one, &[], out);
        }
        for &n in cfg.services.iter().filter(|&&n| n > 1) {
            eprintln!("bench-supervisor: memory and idle, {n} services…");
            let many = footprints(cfg, n, &mut raw)?;
            memory_tables(cfg, n, &one, &many, out);
        }
    }
    if cfg.runs("crash") {
        eprintln!(
            "bench-supervisor: crash loop (up to {} restarts or {} s per tool)…",
            cfg.crashes, cfg.crash_secs
        );
        crashloop::crash_loop(cfg, &mut raw, out)?;
    }
    if cfg.runs("log") {
        eprintln!(
            "bench-supervisor: log capture ({} MB × {})…",
            cfg.log_mb, cfg.log_reps
        );
        logs(cfg, &mut raw, out)?;
    }
    Ok(())
}

fn main() -> ExitCode {
    let cfg = match parse_args() {
        Ok(c) => c,
        Err(e) => {
            eprintln!("bench-supervisor: {e}");
            eprintln!(
                "usage: bench-supervisor --dir TMP --bin DIR --daemonic PATH --raw FILE [--peers daemon1,runit,s6,supervisord] \
                 [--supervisord PATH] [--iterations N] [--min-up-ms MS] [--services N] [--idle-secs S] [--log-mb MB] \
                 [--log-reps N] [--crashes N] [--crash-secs S] [--only latency,defaults,memory,crash,log]"
            );
            return ExitCode::from(2);
        }
    };
    // Orphans of the tools (a daemonizing peer, a killed supervisor's children) become our
    // children, so that the sweep below finds every one of them.
    // SAFETY: prctl with integer arguments.
    unsafe { libc::prctl(libc::PR_SET_CHILD_SUBREAPER, 1, 0, 0, 0) };
    let mut out = String::new();
    let result = run(&cfg, &mut out);
    print!("{out}");
    // Sweep: whatever still runs below us is killed, by pid.
    let me = std::process::id() as i32;
    let left: Vec<i32> = tree(&[me]).into_iter().filter(|&p| p != me).collect();
    if !left.is_empty() {
        eprintln!(
            "bench-supervisor: killing {} leftover processes: {left:?}",
            left.len()
        );
        for &p in &left {
            kill(p, libc::SIGKILL);
        }
        let t0 = Instant::now();
        while left.iter().any(|&p| alive(p)) && t0.elapsed() < Duration::from_secs(5) {
            reap();
            std::thread::sleep(Duration::from_millis(10));
        }
    }
    reap();
    match result {
        Ok(()) => ExitCode::SUCCESS,
        Err(e) => {
            eprintln!("bench-supervisor: {e}");
            ExitCode::FAILURE
        }
    }
}
