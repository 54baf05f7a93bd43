//! Setups: a tool running N services, each a `stamp` child.

use std::fmt::Write as _;
use std::fs::{self, File};
use std::os::unix::fs::symlink;
use std::path::{Path, PathBuf};
use std::process::{Command, Stdio};
use std::time::{Duration, Instant};

use crate::procfs::{alive, comm, exe, stamps, stat, tree};
use crate::sys::{kill, mkdir, reap, run_logged, spawn, write_file};
use crate::{Config, DEADLINE, Res, Tool};

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

pub struct Setup {
    pub tool: Tool,
    pub n: usize,
    pub dir: PathBuf,
    pub stamps: PathBuf,
    /// What the harness spawned (the tool's top processes).
    pub tops: Vec<i32>,
}

#[derive(Clone, Copy, PartialEq, Eq, PartialOrd, Ord, Debug)]
pub enum Role {
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
    pub fn key(self) -> &'static str {
        match self {
            Role::Supervisor => "supervisor",
            Role::Sentinel => "sentinel",
            Role::Scanner => "scanner",
            Role::Child => "child",
            Role::Other => "other",
        }
    }
}

/// What every tool's start needs: the paths of one setup and the settings of its mode.
struct Plan<'a> {
    cfg: &'a Config,
    tool: Tool,
    n: usize,
    dir: &'a Path,
    stamps: &'a Path,
    /// The tools' own output (and daemonic start's).
    log: PathBuf,
    stamp: PathBuf,
    /// `STAMP_EXIT` for the child: "1" makes it exit right after its stamp.
    exit: &'static str,
    /// The tool's fastest restart settings, not its defaults.
    fast: bool,
    /// This setup's own copy of daemonic (`own_copy`).
    daemonic: PathBuf,
}

impl Setup {
    pub fn start(cfg: &Config, tool: Tool, n: usize, dir: PathBuf, mode: Mode) -> Res<Setup> {
        mkdir(&dir)?;
        let stamps = dir.join("stamps");
        fs::write(&stamps, "").map_err(|e| e.to_string())?;
        let plan = Plan {
            cfg,
            tool,
            n,
            dir: &dir,
            stamps: &stamps,
            log: dir.join("out.log"),
            stamp: cfg.stamp(),
            // The child reads it (inherited through every tool) and exits 1 after its stamp.
            exit: if mode == Mode::Crash { "1" } else { "" },
            fast: mode != Mode::Defaults,
            daemonic: own_copy(cfg, tool)?,
        };
        let tops = match tool {
            Tool::Daemonic | Tool::DaemonicSubreaper => plan.daemonic_start()?,
            Tool::DaemonicMany => vec![plan.daemonic_run_f()?],
            Tool::Daemon1 => plan.daemon1()?,
            Tool::Runit | Tool::S6 | Tool::Daemontools => vec![plan.scanner()?],
            Tool::Supervisord => vec![plan.supervisord()?],
            Tool::Floor | Tool::Cat => unreachable!(),
        };
        Ok(Setup {
            tool,
            n,
            dir,
            stamps,
            tops,
        })
    }

    /// Waits until `n` different children have stamped.
    pub fn wait_started(&self) -> Res<()> {
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
    pub fn roles(&self, cfg: &Config) -> Vec<(i32, Role)> {
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

    pub fn stop(self) -> Res<()> {
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

impl Plan<'_> {
    /// The grace that makes a child ready: 10 ms, or none in a crash loop, whose child
    /// never lives that long (`start` would give up after `--start-retries`).
    fn grace(&self) -> &'static str {
        if self.exit == "1" { "0s" } else { "10ms" }
    }

    /// One `daemonic start` per service (each its own supervisor and sentinel), as with
    /// daemon(1) and runsv per service. `start` returns once the child is ready (10 ms
    /// grace here); the supervisor's pid is in its pid file.
    fn daemonic_start(&self) -> Res<Vec<i32>> {
        let mut tops = Vec::new();
        for i in 0..self.n {
            let name = format!("bench-{i}");
            let mut cmd = Command::new(&self.daemonic);
            cmd.arg("--state-dir").arg(self.dir.join("state"));
            cmd.args(["start", "--name", &name, "--grace", self.grace()]);
            if self.fast {
                cmd.args(["--restart", "always", "--backoff", "0ms"]);
            }
            cmd.arg("--").arg(&self.stamp).arg(self.stamps);
            cmd.env("STAMP_EXIT", self.exit);
            if self.tool == Tool::DaemonicSubreaper {
                cmd.env("DAEMONIC_CONTAINMENT", "subreaper");
            }
            let status = run_logged(&mut cmd, &self.log)?;
            let pid_file = self.dir.join("state").join(format!("{name}.pid"));
            let pid = fs::read_to_string(&pid_file)
                .ok()
                .and_then(|t| t.trim().parse::<i32>().ok())
                .ok_or(format!(
                    "daemonic start {name} ({status}): no pid in {} (see {})",
                    pid_file.display(),
                    self.log.display()
                ))?;
            tops.push(pid);
        }
        Ok(tops)
    }

    /// One supervisor for a config file of N services: what `up` runs, in the foreground
    /// (`run -f`), with each service's pid file, control socket and status file.
    fn daemonic_run_f(&self) -> Res<i32> {
        let mut toml = String::new();
        let settings = if self.fast {
            "restart = \"always\"\nbackoff = \"0ms\"\n"
        } else {
            ""
        };
        for i in 0..self.n {
            toml += &format!(
                "[services.bench-{i}]\ncommand = [{:?}, {:?}]\n{settings}grace = {:?}\n\n",
                self.stamp.display().to_string(),
                self.stamps.display().to_string(),
                self.grace()
            );
        }
        let file = self.dir.join("daemonic.toml");
        std::fs::write(&file, toml).map_err(|e| format!("{}: {e}", file.display()))?;
        spawn(
            Command::new(&self.daemonic)
                .arg("--state-dir")
                .arg(self.dir.join("state"))
                .args(["run", "-f"])
                .arg(&file)
                .env("STAMP_EXIT", self.exit),
            &self.log,
        )
    }

    /// One daemon(1) per service.
    fn daemon1(&self) -> Res<Vec<i32>> {
        let mut tops = Vec::new();
        for i in 0..self.n {
            let mut cmd = Command::new("daemon");
            cmd.args(["--noconfig", "--foreground"])
                .arg(format!("--name=bench-{i}"))
                .arg(format!("--pidfiles={}", self.dir.display()))
                .arg("--respawn");
            if self.fast {
                cmd.args(["--idiot", "--acceptable=0"]);
            }
            cmd.arg("--").arg(&self.stamp).arg(self.stamps);
            tops.push(spawn(cmd.env("STAMP_EXIT", self.exit), &self.log)?);
        }
        Ok(tops)
    }

    /// runsvdir, s6-svscan or svscan over a directory of N services, each `run` a link to
    /// `stamp` (which takes its file from `STAMP_FILE`).
    fn scanner(&self) -> Res<i32> {
        let scan = self.dir.join("scan");
        for i in 0..self.n {
            let sv = scan.join(format!("bench-{i}"));
            mkdir(&sv)?;
            symlink(&self.stamp, sv.join("run")).map_err(|e| e.to_string())?;
        }
        let prog = match self.tool {
            Tool::Runit => "runsvdir",
            Tool::S6 => "s6-svscan",
            _ => "svscan",
        };
        let mut cmd = Command::new(prog);
        if self.tool == Tool::S6 {
            // s6-svscan supervises at most 500 services unless told (-c).
            cmd.arg(format!("-c{}", self.n.max(500) + 10));
        }
        spawn(
            cmd.arg(&scan)
                .env("STAMP_FILE", self.stamps)
                .env("STAMP_EXIT", self.exit),
            &self.log,
        )
    }

    /// One supervisord with N programs.
    fn supervisord(&self) -> Res<i32> {
        let mut conf = supervisord_header(self.dir);
        // Defaults: startsecs=1, autorestart=unexpected (a SIGKILL is unexpected), output
        // to files in childlogdir.
        let settings = if self.fast {
            "startsecs=0\nautorestart=true\nstartretries=1000000\n\
             stdout_logfile=NONE\nstderr_logfile=NONE\n"
        } else {
            ""
        };
        for i in 0..self.n {
            let _ = write!(
                conf,
                "\n[program:bench-{i}]\ncommand={} {}\n{settings}",
                self.stamp.display(),
                self.stamps.display()
            );
        }
        start_supervisord(self.cfg, self.dir, &conf, &self.log, self.exit)
    }
}

/// Stops every setup; a stop that fails is reported and the others still stopped.
pub fn stop_all(setups: Vec<Setup>) {
    for s in setups {
        if let Err(e) = s.stop() {
            eprintln!("bench-supervisor: {e}");
        }
    }
}

pub fn supervisord_header(dir: &Path) -> String {
    format!(
        "[supervisord]\nnodaemon=true\nlogfile={0}/supervisord.log\npidfile={0}/supervisord.pid\n\
         childlogdir={0}\nloglevel=warn\n",
        dir.display()
    )
}

pub fn start_supervisord(cfg: &Config, dir: &Path, conf: &str, log: &Path, exit: &str) -> Res<i32> {
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
pub fn stop_tree(tool: Tool, tops: &[i32]) -> Res<()> {
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

/// The daemonic binary for `tool`: a copy of `--daemonic` of its own (made once), so that
/// the two daemonic setups, running at the same time, never share the executable's page
/// cache pages (which would make each one's code look shared, not private), as a peer's
/// processes share only with their own kind.
pub fn own_copy(cfg: &Config, tool: Tool) -> Res<PathBuf> {
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
