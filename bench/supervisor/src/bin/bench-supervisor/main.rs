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
//!
//! Anatomy: one module per measurement (`latency`, `memory` with idle, `crashloop`,
//! `logs`); `setup` starts and stops each tool with N services; `procfs` reads process
//! trees, memory and context switches from `/proc`; `sys` holds the clock, signals,
//! reaping, the inotify watch and spawning; `report` the raw TSV rows and the summary's
//! numbers.

use std::fs::File;
use std::io::Write;
use std::path::PathBuf;
use std::process::ExitCode;
use std::time::{Duration, Instant};

mod crashloop;
mod latency;
mod logs;
mod memory;
mod procfs;
mod report;
mod setup;
mod sys;

use procfs::{alive, tree};
use report::Raw;
use setup::Mode;
use sys::{kill, reap};

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
    /// Those of `tools` this run has (every peer not installed is left out).
    fn available(&self, tools: &[Tool]) -> Vec<Tool> {
        tools.iter().copied().filter(|&t| self.has(t)).collect()
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
        latency::latency(cfg, &mut raw, out, Mode::Fast)?;
    }
    if cfg.runs("defaults") {
        eprintln!(
            "bench-supervisor: restart latency, default settings ({} kills per tool)…",
            cfg.iterations
        );
        latency::latency(cfg, &mut raw, out, Mode::Defaults)?;
    }
    if cfg.runs("memory") {
        eprintln!("bench-supervisor: memory and idle, 1 service…");
        let one = memory::footprints(cfg, 1, &mut raw)?;
        if cfg.services.iter().all(|&n| n <= 1) {
            memory::memory_tables(cfg, 1, &one, &[], out);
        }
        for &n in cfg.services.iter().filter(|&&n| n > 1) {
            eprintln!("bench-supervisor: memory and idle, {n} services…");
            let many = memory::footprints(cfg, n, &mut raw)?;
            memory::memory_tables(cfg, n, &one, &many, out);
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
        logs::logs(cfg, &mut raw, out)?;
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
