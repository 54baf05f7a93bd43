//! Init mode end to end: `daemonic run` as PID 1 of a fresh pid namespace (`unshare --pid
//! --fork --mount-proc`, root only: these tests skip with a reason elsewhere) and
//! `run --init` as a subreaper on the host. What a container user would check from
//! outside: no zombies pile up under daemonic, signals reach the program, and daemonic
//! exits with the program's status.

use daemonic_test_support as support;

mod env;

use std::path::Path;
use std::process::{Child, Command, ExitStatus, Stdio};

use daemonic::{Pid, Signal};
use env::{Env, fixture};
use support::*;

const BIN: &str = env!("CARGO_BIN_EXE_daemonic");

/// Whether a new pid namespace can be made here; prints why not.
fn namespaces() -> bool {
    let out = Command::new("unshare")
        .args(["--pid", "--fork", "--mount-proc", "true"])
        .stdin(Stdio::null())
        .output();
    match out {
        Ok(o) if o.status.success() => true,
        Ok(o) => {
            eprintln!(
                "skipped: `unshare --pid --fork --mount-proc` failed (not root, or no \
                 namespaces here): {}",
                stderr(&o).trim()
            );
            false
        }
        Err(e) => {
            eprintln!("skipped: cannot run unshare: {e}");
            false
        }
    }
}

/// The processes whose parent is `pid`, with their state letter (`S`, `Z`, …).
fn children(pid: Pid) -> Vec<(Pid, String)> {
    let me = pid.to_string();
    let Ok(dir) = std::fs::read_dir("/proc") else {
        return Vec::new();
    };
    dir.flatten()
        .filter_map(|e| e.file_name().to_str()?.parse::<i32>().ok())
        .map(Pid::from_raw)
        .filter(|p| stat_field(*p, 1).as_deref() == Some(me.as_str()))
        .filter_map(|p| Some((p, stat_field(p, 0)?)))
        .collect()
}

fn zombies(pid: Pid) -> Vec<Pid> {
    children(pid)
        .into_iter()
        .filter(|(_, state)| state == "Z")
        .map(|(p, _)| p)
        .collect()
}

/// A `daemonic run` (as PID 1 of a new pid namespace, or on the host), killed with
/// everything it runs if the test fails.
struct Running {
    /// `unshare`, or daemonic itself on the host.
    child: Child,
    /// daemonic, as the host sees it (a guard: SIGKILL to a namespace's init kills all).
    daemonic: KillOnDrop,
    _outer: KillOnDrop,
}

impl Running {
    fn in_namespace(env: &Env, args: &[String]) -> Running {
        let mut cmd = Command::new("unshare");
        cmd.args(["--pid", "--fork", "--mount-proc", BIN, "run"]);
        Running::start(env, cmd, args, true)
    }

    fn on_host(env: &Env, args: &[String]) -> Running {
        let mut cmd = Command::new(BIN);
        cmd.arg("run");
        Running::start(env, cmd, args, false)
    }

    fn start(env: &Env, mut cmd: Command, args: &[String], unshare: bool) -> Running {
        let log = std::fs::File::create(env.dir.join("stderr")).unwrap();
        let child = cmd
            .args(args)
            .env("DAEMONIC_STATE_DIR", env.dir.join("state"))
            .stdin(Stdio::null())
            .stdout(Stdio::null())
            .stderr(log)
            .spawn()
            .unwrap();
        let outer = Pid::from_raw(child.id() as i32);
        let guard = KillOnDrop::new(outer);
        let daemonic = if unshare {
            wait_for("daemonic under unshare", SOON, || {
                children(outer).first().map(|(p, _)| *p)
            })
        } else {
            outer
        };
        Running {
            child,
            daemonic: KillOnDrop::new(daemonic),
            _outer: guard,
        }
    }

    fn pid(&self) -> Pid {
        self.daemonic.pid()
    }

    fn signal(&self, sig: Signal) {
        self.daemonic.0.as_ref().unwrap().signal(sig).unwrap();
    }

    /// Waits for the end (of `unshare`, which exits with daemonic's status).
    fn wait(self) -> ExitStatus {
        self.wait_within(SOON)
    }

    /// [`wait`](Self::wait) for a run that takes a while by design.
    fn wait_within(mut self, limit: std::time::Duration) -> ExitStatus {
        assert!(
            self.daemonic.exited_within(limit),
            "daemonic did not exit within {limit:?}"
        );
        wait_for("the exit status", SOON, || self.child.try_wait().unwrap())
    }
}

fn stderr_of(env: &Env) -> String {
    std::fs::read_to_string(env.dir.join("stderr")).unwrap_or_default()
}

/// Waits until `n` orphans have reported their new parent; returns those parents.
fn adopted(report: &Path, n: usize) -> Vec<String> {
    wait_for(&format!("{n} orphans adopted"), SOON, || {
        let r = support::report(report);
        let parents: Vec<String> = (0..n)
            .map_while(|i| get(&r, &format!("orphan{i}")))
            .collect();
        (parents.len() == n).then_some(parents)
    })
}

/// Waits until daemonic's only child is its service: every orphan reaped, no zombie.
fn only_the_service_left(d: &Running) {
    wait_for("every orphan reaped", SOON, || {
        let kids = children(d.pid());
        (kids.len() == 1 && kids[0].1 != "Z").then_some(())
    });
}

/// `run` arguments: `flags`, then the orphaner starting `n` orphans.
fn orphaner(flags: &[&str], report: &Path, n: usize) -> Vec<String> {
    let fixture = [&fixture("orphaner"), report.to_str().unwrap(), "orphans"];
    flags
        .iter()
        .chain(&["--"])
        .chain(&fixture)
        .map(|s| s.to_string())
        .chain([n.to_string()])
        .collect()
}

#[test]
fn as_pid1_with_init_orphans_are_reaped_and_sigterm_stops_the_service() {
    if !namespaces() {
        return;
    }
    let env = Env::new("init-pid1");
    let report = env.dir.join("report");
    let d = Running::in_namespace(&env, &orphaner(&["--init"], &report, 5));
    // Each orphan saw itself adopted by PID 1 (daemonic, inside), then exited.
    assert_eq!(adopted(&report, 5), vec!["1"; 5]);
    only_the_service_left(&d);
    d.signal(Signal::SIGTERM);
    assert_eq!(await_key(&report, "term"), "1");
    let status = d.wait();
    assert_eq!(status.code(), Some(42), "{}", stderr_of(&env));
    assert!(
        stderr_of(&env).contains("orphaner exited with status 42; stopped"),
        "{}",
        stderr_of(&env)
    );
}

#[test]
fn as_pid1_init_mode_is_automatic_and_forwards_signals() {
    if !namespaces() {
        return;
    }
    let env = Env::new("init-auto");
    let report = env.dir.join("report");
    let d = Running::in_namespace(&env, &orphaner(&[], &report, 3));
    assert_eq!(adopted(&report, 3), vec!["1"; 3]);
    only_the_service_left(&d);
    // PID 1 drops what it does not catch: these arrive only because daemonic forwards.
    for (sig, key) in [
        (Signal::SIGUSR1, "usr1"),
        (Signal::SIGUSR2, "usr2"),
        (Signal::SIGWINCH, "winch"),
        (Signal::SIGHUP, "hup"),
    ] {
        d.signal(sig);
        assert_eq!(
            await_key(&report, key),
            "1",
            "{sig} did not reach the service"
        );
    }
    // What lxc-stop sends: a stop like SIGTERM (the service gets its stop signal).
    d.signal(Signal::SIGPWR);
    assert_eq!(await_key(&report, "term"), "1");
    assert_eq!(d.wait().code(), Some(42), "{}", stderr_of(&env));
}

/// The control experiment: without init mode the same orphans stay zombies, so the
/// checks above do see a missing reaper.
#[test]
fn as_pid1_with_no_init_orphans_stay_zombies() {
    if !namespaces() {
        return;
    }
    let env = Env::new("init-off");
    let report = env.dir.join("report");
    let d = Running::in_namespace(&env, &orphaner(&["--no-init"], &report, 3));
    assert_eq!(adopted(&report, 3), vec!["1"; 3]);
    wait_for("3 zombies under daemonic", SOON, || {
        (zombies(d.pid()).len() == 3).then_some(())
    });
    d.signal(Signal::SIGTERM);
    assert_eq!(d.wait().code(), Some(42), "{}", stderr_of(&env));
}

#[test]
fn init_outside_pid1_adopts_and_reaps_orphans_as_a_subreaper() {
    let env = Env::new("init-subreaper");
    let report = env.dir.join("report");
    let d = Running::on_host(&env, &orphaner(&["--init"], &report, 3));
    let me = d.pid().to_string();
    assert_eq!(adopted(&report, 3), vec![me.as_str(); 3]);
    only_the_service_left_but_the_sentinel(&d);
    d.signal(Signal::SIGUSR2);
    assert_eq!(await_key(&report, "usr2"), "1");
    d.signal(Signal::SIGTERM);
    assert_eq!(d.wait().code(), Some(42), "{}", stderr_of(&env));
}

/// Outside PID 1 daemonic also has its sentinel as a child.
fn only_the_service_left_but_the_sentinel(d: &Running) {
    wait_for("every orphan reaped", SOON, || {
        let kids = children(d.pid());
        (kids.len() == 2 && kids.iter().all(|(_, s)| s != "Z")).then_some(())
    });
}

/// Regression guard: the orphan reaper must never take the exit status of the service's
/// own process, even when it dies in the middle of a burst of orphan deaths, start after
/// start. (With the claim check in `process::reap_orphans` removed, this fails within a
/// few starts: `waitpid N: No child processes`.)
fn orphans_never_steal_the_exit_status(namespace: bool) {
    const STARTS: usize = 50;
    let env = Env::new("init-race");
    let report = env.dir.join("report");
    let orphaner = fixture("orphaner");
    let limit = format!("{STARTS}/1h");
    let args: Vec<String> = [
        "--init",
        "--restart",
        "always",
        "--backoff",
        "0",
        "--start-limit",
        &limit,
        // Never ready (each run is short): more retries than the start limit allows.
        "--start-retries",
        "1000",
        "--",
        &orphaner,
        report.to_str().unwrap(),
        "race",
        "40",
        "37",
    ]
    .map(String::from)
    .to_vec();
    let d = match namespace {
        true => Running::in_namespace(&env, &args),
        false => Running::on_host(&env, &args),
    };
    // 50 starts of 40 dying orphans each take about 9 s on a quiet 2-core machine: a
    // deadline of its own (the test asserts what happened, not how fast).
    let status = d.wait_within(std::time::Duration::from_secs(90));
    let err = stderr_of(&env);
    assert_eq!(status.code(), Some(37), "{err}");
    let restarts = err.matches("exited with status 37; restart").count();
    assert_eq!(restarts, STARTS - 1, "{err}");
    assert!(err.contains("gave up"), "{err}");
    assert_eq!(
        support::report(&report).len(),
        STARTS,
        "every start ran: {err}"
    );
}

#[test]
fn orphans_dying_with_the_service_never_steal_its_exit_status() {
    orphans_never_steal_the_exit_status(false);
}

#[test]
fn orphans_dying_with_the_service_never_steal_its_exit_status_as_pid1() {
    if namespaces() {
        orphans_never_steal_the_exit_status(true);
    }
}

#[test]
fn no_init_conflicts_with_init() {
    let env = Env::new("init-usage");
    let out = env.daemonic(&["run", "--init", "--no-init", "--", "true"]);
    assert_eq!(out.status.code(), Some(2), "{}", stderr(&out));
}
