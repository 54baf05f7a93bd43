//! `bench-start`: how long `daemonic start` takes to return for a child that is ready at
//! once, next to daemon(1) and `start-stop-daemon --background` (issue 2).
//!
//! Run it through `bench/start/run.sh`, which builds everything, makes the temp dir and
//! cleans up after a crash. Each iteration starts every variant once, in an order rotated
//! per iteration (round-robin, so all variants share the machine's noise), and for each:
//!
//! 1. **return**: wall time from spawning the start command to its exit (`Instant` around
//!    `Command::status`, so the harness's own fork+exec is in every number alike);
//! 2. **exec seen**: wall time from the same start until the harness sees, by polling
//!    `/proc/<pid>/exe` every 100 µs after the command returned, that the child's pid runs
//!    the child program. For a tool that returns before its child is exec'd this is later
//!    than *return*; for one that waits for readiness it is the first poll after return.
//! 3. it stops the service with the tool's own stop command and waits until every process
//!    of it is gone (no `/proc/<pid>`, or a zombie left to init), killing them by pid and
//!    failing if they outlive a deadline. Nothing runs on into the next iteration.
//!
//! Three rows start no service and are there to take the numbers apart: the *floor* (the
//! harness spawns the child itself and waits for its `READY=1`: the least any start that
//! waits for readiness costs) and `daemonic --version` / `daemon --version` (the cost of
//! exec'ing each tool). `docs/benchmarks.md` explains what every row measures.
//!
//! Raw samples go to `--raw FILE` (TSV); the summary (median, p90, ratios) to stdout as
//! Markdown.

use std::fmt::Write as _;
use std::fs;
use std::os::linux::net::SocketAddrExt;
use std::os::unix::net::{SocketAddr, UnixDatagram};
use std::path::{Path, PathBuf};
use std::process::{Command, ExitCode, Stdio};
use std::time::{Duration, Instant};

/// How often the harness looks for the child after the start command returned.
const POLL: Duration = Duration::from_micros(100);
/// How long a started child may take to show up, and a stopped service to go away.
const DEADLINE: Duration = Duration::from_secs(10);
/// Iterations run first and thrown away (page cache, lazy binding).
const WARMUP: usize = 3;

#[derive(Clone, Copy, PartialEq, Eq)]
enum Variant {
    /// `daemonic start --ready notify`: returns after the child sent READY=1.
    DaemonicNotify,
    /// `daemonic start --ready grace --grace 0s`, silent child: returns once the child is
    /// exec'd and the supervisor's 0 s grace deadline fired.
    DaemonicGrace0,
    /// `daemon --name N -- CMD`: returns after its first fork, child not yet started.
    Daemon1,
    /// `start-stop-daemon --start --background`: returns after forking, before the exec.
    SsdBackground,
    /// `start-stop-daemon --start --background --notify-await`: returns after READY=1.
    SsdNotifyAwait,
    /// No tool: the harness spawns the child itself and waits for its READY=1. The least
    /// any start that waits for readiness can cost (one fork+exec, the child's own start).
    Floor,
    /// Reference: `daemonic --version`, the cost of exec'ing daemonic and parsing flags.
    VersionDaemonic,
    /// Reference: `daemon --version`, the same for daemon(1).
    VersionDaemon1,
}

const VARIANTS: [Variant; 8] = [
    Variant::DaemonicNotify,
    Variant::DaemonicGrace0,
    Variant::Daemon1,
    Variant::SsdBackground,
    Variant::SsdNotifyAwait,
    Variant::Floor,
    Variant::VersionDaemonic,
    Variant::VersionDaemon1,
];

impl Variant {
    fn label(self) -> &'static str {
        match self {
            Variant::DaemonicNotify => "daemonic start --ready notify",
            Variant::DaemonicGrace0 => "daemonic start --ready grace --grace 0s",
            Variant::Daemon1 => "daemon(1)",
            Variant::SsdBackground => "start-stop-daemon --background",
            Variant::SsdNotifyAwait => "start-stop-daemon --background --notify-await",
            Variant::Floor => "floor: spawn child, wait for READY=1 (no tool)",
            Variant::VersionDaemonic => "reference: daemonic --version",
            Variant::VersionDaemon1 => "reference: daemon --version",
        }
    }

    fn key(self) -> &'static str {
        match self {
            Variant::DaemonicNotify => "daemonic-notify",
            Variant::DaemonicGrace0 => "daemonic-grace0",
            Variant::Daemon1 => "daemon1",
            Variant::SsdBackground => "ssd-background",
            Variant::SsdNotifyAwait => "ssd-notify-await",
            Variant::Floor => "floor",
            Variant::VersionDaemonic => "version-daemonic",
            Variant::VersionDaemon1 => "version-daemon1",
        }
    }
}

struct Config {
    iterations: usize,
    daemonic: PathBuf,
    child: PathBuf,
    dir: PathBuf,
    raw: Option<PathBuf>,
}

/// One started service, to be stopped.
struct Started {
    variant: Variant,
    name: String,
}

struct Sample {
    iteration: usize,
    variant: Variant,
    returned: Duration,
    exec_seen: Duration,
}

fn main() -> ExitCode {
    let cfg = match parse_args() {
        Ok(c) => c,
        Err(e) => {
            eprintln!("bench-start: {e}");
            eprintln!(
                "usage: bench-start --daemonic PATH --child PATH --dir TMPDIR [--iterations N] [--raw FILE]"
            );
            return ExitCode::from(2);
        }
    };
    let mut live: Vec<Started> = Vec::new();
    let result = run(&cfg, &mut live);
    // Whatever happened, stop what is still running.
    for s in live.drain(..) {
        if let Err(e) = stop(&cfg, &s) {
            eprintln!("bench-start: cleanup: {e}");
        }
    }
    match result {
        Ok(()) => ExitCode::SUCCESS,
        Err(e) => {
            eprintln!("bench-start: {e}");
            ExitCode::FAILURE
        }
    }
}

fn parse_args() -> Result<Config, String> {
    let mut args = std::env::args().skip(1);
    let (mut iterations, mut daemonic, mut child, mut dir, mut raw) = (30, None, None, None, None);
    while let Some(flag) = args.next() {
        let mut value = || args.next().ok_or_else(|| format!("{flag} needs a value"));
        match flag.as_str() {
            "--iterations" => {
                iterations = value()?.parse().map_err(|e| format!("--iterations: {e}"))?
            }
            "--daemonic" => daemonic = Some(PathBuf::from(value()?)),
            "--child" => child = Some(PathBuf::from(value()?)),
            "--dir" => dir = Some(PathBuf::from(value()?)),
            "--raw" => raw = Some(PathBuf::from(value()?)),
            other => return Err(format!("unknown argument {other:?}")),
        }
    }
    let canonical = |p: Option<PathBuf>, what: &str| -> Result<PathBuf, String> {
        let p = p.ok_or_else(|| format!("--{what} is required"))?;
        fs::canonicalize(&p).map_err(|e| format!("{}: {e}", p.display()))
    };
    Ok(Config {
        iterations,
        daemonic: canonical(daemonic, "daemonic")?,
        child: canonical(child, "child")?,
        dir: canonical(dir, "dir")?,
        raw,
    })
}

fn run(cfg: &Config, live: &mut Vec<Started>) -> Result<(), String> {
    for sub in ["state", "daemon", "ssd"] {
        let d = cfg.dir.join(sub);
        fs::create_dir_all(&d).map_err(|e| format!("create {}: {e}", d.display()))?;
    }
    let mut samples = Vec::new();
    for iteration in 0..WARMUP + cfg.iterations {
        // Rotate the order so that no variant always runs first (or right after another).
        for k in 0..VARIANTS.len() {
            let variant = VARIANTS[(iteration + k) % VARIANTS.len()];
            let sample = if variant == Variant::Floor {
                floor_one(cfg, iteration)?
            } else if let Some(program) = version_of(cfg, variant) {
                version_one(program, iteration, variant)?
            } else {
                let sample = start_one(cfg, iteration, variant, live)?;
                let started = live.last().expect("start_one registers what it started");
                stop(cfg, started)?;
                live.pop();
                sample
            };
            if iteration >= WARMUP {
                samples.push(Sample {
                    iteration: iteration - WARMUP,
                    ..sample
                });
            }
        }
    }
    if let Some(raw) = &cfg.raw {
        let mut tsv = String::from("iteration\tvariant\treturn_us\texec_seen_us\n");
        for s in &samples {
            let _ = writeln!(
                tsv,
                "{}\t{}\t{}\t{}",
                s.iteration,
                s.variant.key(),
                s.returned.as_micros(),
                s.exec_seen.as_micros()
            );
        }
        fs::write(raw, tsv).map_err(|e| format!("write {}: {e}", raw.display()))?;
    }
    print!("{}", summary(cfg, &samples));
    Ok(())
}

/// Starts `variant` once, registers it in `live` (to be stopped), returns the timings.
fn start_one(
    cfg: &Config,
    iteration: usize,
    variant: Variant,
    live: &mut Vec<Started>,
) -> Result<Sample, String> {
    let name = format!("{}-{iteration}", variant.key());
    let mut cmd = start_command(cfg, variant, &name)?;
    let err_path = cfg.dir.join("stderr");
    let err =
        fs::File::create(&err_path).map_err(|e| format!("create {}: {e}", err_path.display()))?;
    cmd.env_remove("NOTIFY_SOCKET")
        .stdin(Stdio::null())
        .stdout(Stdio::null())
        .stderr(err);

    let t0 = Instant::now();
    let status = cmd
        .status()
        .map_err(|e| format!("{}: spawn: {e}", variant.label()))?;
    let returned = t0.elapsed();
    // Even a failed start may have left something behind.
    live.push(Started {
        variant,
        name: name.clone(),
    });
    if !status.success() {
        let text = fs::read_to_string(&err_path).unwrap_or_default();
        return Err(format!(
            "{} (iteration {iteration}): {status}: {}",
            variant.label(),
            text.trim()
        ));
    }

    // Wait for the child to run the child program; note when it first does.
    let exec_seen = loop {
        if let Some(pid) = child_pid(cfg, variant, &name)
            && fs::read_link(format!("/proc/{pid}/exe")).is_ok_and(|exe| exe == cfg.child)
        {
            break t0.elapsed();
        }
        if t0.elapsed() > DEADLINE {
            return Err(format!(
                "{} (iteration {iteration}): child not running after {DEADLINE:?}",
                variant.label()
            ));
        }
        std::thread::sleep(POLL);
    };
    Ok(Sample {
        iteration,
        variant,
        returned,
        exec_seen,
    })
}

/// The command that starts `variant` as `name`.
fn start_command(cfg: &Config, variant: Variant, name: &str) -> Result<Command, String> {
    let child = cfg.child.as_os_str();
    Ok(match variant {
        Variant::DaemonicNotify | Variant::DaemonicGrace0 => {
            let mut c = Command::new(&cfg.daemonic);
            c.arg("--state-dir")
                .arg(cfg.dir.join("state"))
                .args(["start", "--name", name]);
            if variant == Variant::DaemonicNotify {
                c.args(["--ready", "notify", "--"]).arg(child);
            } else {
                c.args(["--ready", "grace", "--grace", "0s", "--"])
                    .arg(child)
                    .arg("--silent");
            }
            c
        }
        Variant::Daemon1 => {
            let mut c = Command::new("daemon");
            c.args(["--name", name])
                .arg(format!("--pidfiles={}", cfg.dir.join("daemon").display()));
            c.arg("--").arg(child);
            c
        }
        Variant::SsdBackground | Variant::SsdNotifyAwait => {
            let mut c = Command::new("start-stop-daemon");
            c.args(["--start", "--quiet", "--background"]);
            if variant == Variant::SsdNotifyAwait {
                c.args(["--notify-await", "--notify-timeout", "10"]);
            }
            c.args(["--make-pidfile", "--pidfile"])
                .arg(ssd_pid_file(cfg, name));
            c.arg("--exec").arg(child);
            c
        }
        Variant::Floor | Variant::VersionDaemonic | Variant::VersionDaemon1 => {
            return Err(format!("{} has no start command", variant.label()));
        }
    })
}

/// The program whose `--version` a reference variant runs.
fn version_of(cfg: &Config, variant: Variant) -> Option<&Path> {
    match variant {
        Variant::VersionDaemonic => Some(&cfg.daemonic),
        Variant::VersionDaemon1 => Some(Path::new("daemon")),
        _ => None,
    }
}

/// A reference: how long `program --version` takes, timed like a start command.
fn version_one(program: &Path, iteration: usize, variant: Variant) -> Result<Sample, String> {
    let mut cmd = Command::new(program);
    cmd.arg("--version")
        .stdin(Stdio::null())
        .stdout(Stdio::null())
        .stderr(Stdio::null());
    let t0 = Instant::now();
    let status = cmd
        .status()
        .map_err(|e| format!("{}: spawn: {e}", variant.label()))?;
    let returned = t0.elapsed();
    if !status.success() {
        return Err(format!("{}: {status}", variant.label()));
    }
    Ok(Sample {
        iteration,
        variant,
        returned,
        exec_seen: returned,
    })
}

/// The floor: spawn the child with `NOTIFY_SOCKET` pointing at our own socket, wait for its
/// `READY=1`, then kill and reap it. No detaching, no second program.
fn floor_one(cfg: &Config, iteration: usize) -> Result<Sample, String> {
    let name = format!("daemonic-bench-start/{}/{iteration}", std::process::id());
    let socket = SocketAddr::from_abstract_name(&name)
        .and_then(|addr| UnixDatagram::bind_addr(&addr))
        .map_err(|e| format!("floor: bind @{name}: {e}"))?;
    socket
        .set_read_timeout(Some(DEADLINE))
        .map_err(|e| format!("floor: {e}"))?;
    let mut cmd = Command::new(&cfg.child);
    cmd.env("NOTIFY_SOCKET", format!("@{name}"))
        .stdin(Stdio::null())
        .stdout(Stdio::null())
        .stderr(Stdio::null());
    let t0 = Instant::now();
    let mut child = cmd.spawn().map_err(|e| format!("floor: spawn: {e}"))?;
    let mut buf = [0u8; 64];
    let got = socket.recv(&mut buf);
    let returned = t0.elapsed();
    // Kill and reap before looking at the result: nothing outlives this function.
    let _ = child.kill();
    let _ = child.wait();
    match got {
        Ok(n) if buf[..n].starts_with(b"READY=1") => {}
        Ok(n) => {
            return Err(format!(
                "floor: unexpected datagram {:?}",
                String::from_utf8_lossy(&buf[..n])
            ));
        }
        Err(e) => return Err(format!("floor: waiting for READY=1: {e}")),
    }
    Ok(Sample {
        iteration,
        variant: Variant::Floor,
        returned,
        exec_seen: returned,
    })
}

fn ssd_pid_file(cfg: &Config, name: &str) -> PathBuf {
    cfg.dir.join("ssd").join(format!("{name}.pid"))
}

/// The pid of the process that runs (or is about to run) the child program.
fn child_pid(cfg: &Config, variant: Variant, name: &str) -> Option<u32> {
    match variant {
        Variant::DaemonicNotify | Variant::DaemonicGrace0 => {
            let text =
                fs::read_to_string(cfg.dir.join("state").join(format!("{name}.status"))).ok()?;
            text.lines()
                .find_map(|l| l.strip_prefix("pid="))?
                .parse()
                .ok()
        }
        Variant::Daemon1 => read_pid(&cfg.dir.join("daemon").join(format!("{name}.clientpid"))),
        Variant::SsdBackground | Variant::SsdNotifyAwait => read_pid(&ssd_pid_file(cfg, name)),
        Variant::Floor | Variant::VersionDaemonic | Variant::VersionDaemon1 => None,
    }
}

/// The pid of the tool's own process that stays with the child, if it has one.
fn supervisor_pid(cfg: &Config, variant: Variant, name: &str) -> Option<u32> {
    match variant {
        Variant::DaemonicNotify | Variant::DaemonicGrace0 => {
            read_pid(&cfg.dir.join("state").join(format!("{name}.pid")))
        }
        Variant::Daemon1 => read_pid(&cfg.dir.join("daemon").join(format!("{name}.pid"))),
        Variant::SsdBackground | Variant::SsdNotifyAwait => None,
        Variant::Floor | Variant::VersionDaemonic | Variant::VersionDaemon1 => None,
    }
}

fn read_pid(path: &Path) -> Option<u32> {
    fs::read_to_string(path).ok()?.trim().parse().ok()
}

/// Stops `s` with its tool's stop command; then every pid of it must go away.
fn stop(cfg: &Config, s: &Started) -> Result<(), String> {
    let pids: Vec<u32> = [
        child_pid(cfg, s.variant, &s.name),
        supervisor_pid(cfg, s.variant, &s.name),
    ]
    .into_iter()
    .flatten()
    .collect();
    let mut cmd = match s.variant {
        Variant::DaemonicNotify | Variant::DaemonicGrace0 => {
            let mut c = Command::new(&cfg.daemonic);
            c.arg("--state-dir")
                .arg(cfg.dir.join("state"))
                .args(["stop", &s.name]);
            c
        }
        Variant::Daemon1 => {
            let mut c = Command::new("daemon");
            c.args(["--name", &s.name])
                .arg(format!("--pidfiles={}", cfg.dir.join("daemon").display()));
            c.arg("--stop");
            c
        }
        Variant::SsdBackground | Variant::SsdNotifyAwait => {
            let mut c = Command::new("start-stop-daemon");
            c.args(["--stop", "--quiet", "--remove-pidfile", "--pidfile"])
                .arg(ssd_pid_file(cfg, &s.name));
            c
        }
        Variant::Floor | Variant::VersionDaemonic | Variant::VersionDaemon1 => return Ok(()),
    };
    // Under load daemon(1) may be asked to stop before its detached process has written
    // the pid file it then signals ("No such process"): ask again for a while.
    let asked = Instant::now();
    let status = loop {
        let status = cmd
            .stdin(Stdio::null())
            .status()
            .map_err(|e| format!("stop {}: {e}", s.name))?;
        if status.success() || s.variant != Variant::Daemon1 || asked.elapsed() > DEADLINE / 2 {
            break status;
        }
        std::thread::sleep(Duration::from_millis(20));
    };
    let t0 = Instant::now();
    while pids.iter().any(|&p| running(p)) {
        if t0.elapsed() > DEADLINE {
            for &p in pids.iter().filter(|&&p| running(p)) {
                let _ = Command::new("kill")
                    .args(["-KILL", &p.to_string()])
                    .status();
            }
            return Err(format!(
                "stop {} ({status}): pids {:?} still running after {DEADLINE:?}; killed",
                s.name, pids
            ));
        }
        std::thread::sleep(Duration::from_millis(1));
    }
    Ok(())
}

/// Whether `pid` is a live process (a zombie is not: it waits for init to reap it).
fn running(pid: u32) -> bool {
    let Ok(stat) = fs::read_to_string(format!("/proc/{pid}/stat")) else {
        return false;
    };
    // The state follows the parenthesised command name, which may itself contain ") ".
    stat.rsplit_once(") ")
        .is_some_and(|(_, rest)| !rest.starts_with('Z') && !rest.starts_with('X'))
}

fn summary(cfg: &Config, samples: &[Sample]) -> String {
    let stats = |v: Variant, exec: bool| -> (f64, f64) {
        let mut xs: Vec<f64> = samples
            .iter()
            .filter(|s| s.variant == v)
            .map(|s| if exec { s.exec_seen } else { s.returned }.as_secs_f64() * 1e3)
            .collect();
        xs.sort_by(f64::total_cmp);
        (median(&xs), percentile(&xs, 0.9))
    };
    let mut out = String::new();
    let _ = writeln!(
        out,
        "{} iterations (after {WARMUP} warm-up), variants interleaved; times in ms.\n",
        cfg.iterations
    );
    let _ = writeln!(
        out,
        "| variant | return median | return p90 | exec seen median | exec seen p90 |"
    );
    let _ = writeln!(out, "|---|---:|---:|---:|---:|");
    for v in VARIANTS {
        let (m, p) = stats(v, false);
        let exec = if version_of(cfg, v).is_some() {
            // Nothing is started: there is no child to see.
            "– | –".to_string()
        } else {
            let (em, ep) = stats(v, true);
            format!("{em:.2} | {ep:.2}")
        };
        let _ = writeln!(out, "| {} | {m:.2} | {p:.2} | {exec} |", v.label());
    }
    let _ = writeln!(out, "\n| ratio (return time) | median | p90 |");
    let _ = writeln!(out, "|---|---:|---:|");
    let pairs = [
        (Variant::DaemonicNotify, Variant::Daemon1),
        (Variant::DaemonicNotify, Variant::SsdBackground),
        (Variant::DaemonicNotify, Variant::SsdNotifyAwait),
        (Variant::DaemonicGrace0, Variant::Daemon1),
        (Variant::DaemonicGrace0, Variant::SsdBackground),
    ];
    for (a, b) in pairs {
        let ((am, ap), (bm, bp)) = (stats(a, false), stats(b, false));
        let _ = writeln!(
            out,
            "| {} / {} | {:.2}× | {:.2}× |",
            a.label(),
            b.label(),
            am / bm,
            ap / bp
        );
    }
    out
}

/// Median of sorted `xs` (mean of the middle two for an even count).
fn median(xs: &[f64]) -> f64 {
    let n = xs.len();
    if n == 0 {
        return f64::NAN;
    }
    if n % 2 == 1 {
        xs[n / 2]
    } else {
        (xs[n / 2 - 1] + xs[n / 2]) / 2.0
    }
}

/// Nearest-rank percentile of sorted `xs`.
fn percentile(xs: &[f64], q: f64) -> f64 {
    if xs.is_empty() {
        return f64::NAN;
    }
    let rank = (q * xs.len() as f64).ceil() as usize;
    xs[rank.clamp(1, xs.len()) - 1]
}
