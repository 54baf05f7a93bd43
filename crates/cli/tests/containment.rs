//! Containment end to end: no process of a service outlives it — after `stop`, `restart`,
//! a crash of the main process, `kill -9` of the supervisor, and `kill -9` of supervisor
//! and sentinel followed by a new `start` — for descendants that fork, double-fork,
//! `setsid` and clear their environment (the `escaper` fixture). Real supervisors, real
//! cgroups (root with a cgroup2 mount; skipped with the reason elsewhere).

#[path = "../../daemonic/tests/support/mod.rs"]
mod support;

mod env;

use std::path::Path;

use daemonic::process::PidFd;
use daemonic::{Pid, Signal};
use env::{Env, fixture};
use support::*;

const ROLES: [&str; 4] = ["fork", "double", "setsid", "env"];

/// Whether cgroup mode can be tested here; otherwise prints why `test` is skipped.
fn cgroups(test: &str) -> bool {
    if !nix::unistd::geteuid().is_root() {
        eprintln!("skipped {test}: needs root to make cgroups (CI runs as root)");
        return false;
    }
    let info = std::fs::read_to_string("/proc/self/mountinfo").unwrap_or_default();
    if !info.lines().any(|l| l.contains(" - cgroup2 ")) {
        eprintln!("skipped {test}: no cgroup2 file system is mounted");
        return false;
    }
    true
}

/// The descendants reported in `report` once there are `n`, each held by a handle that
/// kills it when the test ends (however it ends).
fn tree(report: &Path, n: usize) -> Vec<(String, KillOnDrop)> {
    let lines = wait_for(&format!("{n} pids in {}", report.display()), SOON, || {
        let text = std::fs::read_to_string(report).ok()?;
        (text.lines().count() >= n).then_some(text)
    });
    lines
        .lines()
        .filter_map(|l| l.split_once('='))
        .map(|(role, pid)| {
            let pid = Pid::from_raw(pid.parse().unwrap());
            (role.to_string(), KillOnDrop::new(pid))
        })
        .collect()
}

fn assert_all_gone(tree: &[(String, KillOnDrop)], after: &str) {
    for (role, p) in tree {
        assert!(
            p.exited_within(SOON),
            "the {role} descendant (pid {}) survived {after}",
            p.pid()
        );
    }
}

fn start(env: &Env, name: &str, extra: &[&str], report: &Path) -> std::process::Output {
    let prog = fixture("escaper");
    let mut args = vec!["start", "--name", name, "--grace", "100ms"];
    args.extend_from_slice(extra);
    args.extend(["--", &prog, report.to_str().unwrap()]);
    env.daemonic(&args)
}

fn supervisor_pid(env: &Env, name: &str) -> Pid {
    let text = std::fs::read_to_string(env.pid_file(name)).unwrap();
    Pid::from_raw(text.trim().parse().unwrap())
}

/// The sentinel of `supervisor`: its child named `daemonic-sentinel`.
fn sentinel_pid(supervisor: Pid) -> Pid {
    let found = std::fs::read_dir("/proc").unwrap().flatten().find_map(|e| {
        let pid = Pid::from_raw(e.file_name().to_str()?.parse().ok()?);
        let comm = std::fs::read_to_string(format!("/proc/{pid}/comm")).ok()?;
        // The kernel keeps 15 bytes of the name.
        (comm.trim() == "daemonic-sentin" && stat_field(pid, 1) == Some(supervisor.to_string()))
            .then_some(pid)
    });
    found.expect("the supervisor's sentinel")
}

/// The cgroup of the service `name` of `env` (see the layout in `supervisor::containment`).
fn service_cgroup(env: &Env, name: &str) -> std::path::PathBuf {
    let info = std::fs::read_to_string("/proc/self/mountinfo").unwrap();
    let mount = info
        .lines()
        .find_map(|l| {
            let (left, right) = l.split_once(" - ")?;
            right
                .starts_with("cgroup2 ")
                .then(|| left.split(' ').nth(4))?
        })
        .unwrap();
    let state = env.dir.join("state").display().to_string();
    let escaped = state
        .trim_matches('/')
        .replace('-', "\\x2d")
        .replace('/', "-");
    Path::new(mount).join("daemonic").join(escaped).join(name)
}

#[test]
fn cgroup_stop_leaves_no_descendant() {
    if !cgroups("cgroup_stop_leaves_no_descendant") {
        return;
    }
    let env = Env::new("cg-stop");
    let report = env.dir.join("report");
    let out = start(&env, "e", &[], &report);
    assert!(out.status.success(), "{}", stderr(&out));
    let tree = tree(&report, 4);
    let roles: Vec<&str> = tree.iter().map(|(r, _)| r.as_str()).collect();
    assert_eq!(roles.len(), 4, "{roles:?}");
    for r in ROLES {
        assert!(roles.contains(&r), "{roles:?}");
    }
    let cgroup = service_cgroup(&env, "e");
    let procs = std::fs::read_to_string(cgroup.join("cgroup.procs")).unwrap();
    for (role, p) in &tree {
        let pid = p.pid().to_string();
        assert!(
            procs.lines().any(|l| l == pid),
            "{role} not in {cgroup:?}: {procs}"
        );
    }
    let out = env.daemonic(&["stop", "e"]);
    assert!(out.status.success(), "{}", stderr(&out));
    assert_all_gone(&tree, "stop");
    assert!(!cgroup.exists(), "{} stays", cgroup.display());
    assert!(
        !cgroup.parent().unwrap().exists(),
        "{} stays",
        cgroup.display()
    );
}

#[test]
fn cgroup_restart_waits_until_the_old_tree_is_gone() {
    if !cgroups("cgroup_restart_waits_until_the_old_tree_is_gone") {
        return;
    }
    let env = Env::new("cg-restart");
    let report = env.dir.join("report");
    let out = start(&env, "e", &["--restart", "always"], &report);
    assert!(out.status.success(), "{}", stderr(&out));
    let first = tree(&report, 4);
    let out = env.daemonic(&["restart", "e"]);
    assert!(out.status.success(), "{}", stderr(&out));
    let both = tree(&report, 8);
    // The old generation is gone before the new one started: by the time the new one
    // has reported, not one of the old is alive.
    for (role, p) in &first {
        assert!(
            !alive(p.pid()),
            "the old {role} descendant runs beside the new tree"
        );
    }
    let second = &both[4..];
    for (role, p) in second {
        assert!(alive(p.pid()), "the new {role} descendant");
    }
    let out = env.daemonic(&["stop", "e"]);
    assert!(out.status.success(), "{}", stderr(&out));
    assert_all_gone(&both, "restart and stop");
}

#[test]
fn cgroup_a_crash_of_the_main_process_leaves_no_descendant() {
    if !cgroups("cgroup_a_crash_of_the_main_process_leaves_no_descendant") {
        return;
    }
    let env = Env::new("cg-crash");
    let report = env.dir.join("report");
    let prog = fixture("escaper");
    // It may crash before or after its grace: what counts is what it leaves.
    env.daemonic(&[
        "start",
        "--name",
        "e",
        "--grace",
        "100ms",
        "--restart",
        "never",
        "--",
        &prog,
        report.to_str().unwrap(),
        "crash",
    ]);
    let tree = tree(&report, 4);
    assert_all_gone(&tree, "a crash of the main process");
}

#[test]
fn cgroup_a_killed_supervisor_leaves_no_descendant() {
    if !cgroups("cgroup_a_killed_supervisor_leaves_no_descendant") {
        return;
    }
    let env = Env::new("cg-kill9");
    let report = env.dir.join("report");
    let out = start(&env, "e", &[], &report);
    assert!(out.status.success(), "{}", stderr(&out));
    let tree = tree(&report, 4);
    let supervisor = PidFd::open(supervisor_pid(&env, "e")).unwrap();
    supervisor.signal(Signal::SIGKILL).unwrap();
    assert_all_gone(&tree, "kill -9 of the supervisor");
}

#[test]
fn cgroup_a_new_start_kills_what_a_killed_supervisor_and_sentinel_left() {
    if !cgroups("cgroup_a_new_start_kills_what_a_killed_supervisor_and_sentinel_left") {
        return;
    }
    let env = Env::new("cg-kill9-both");
    let report = env.dir.join("report");
    let out = start(&env, "e", &[], &report);
    assert!(out.status.success(), "{}", stderr(&out));
    let old = tree(&report, 4);
    let supervisor = supervisor_pid(&env, "e");
    let sentinel = KillOnDrop::new(sentinel_pid(supervisor));
    let supervisor = KillOnDrop::new(supervisor);
    // The sentinel first, so that it cannot clean up after the supervisor.
    drop(sentinel);
    drop(supervisor);
    let escaped: Vec<_> = old.iter().filter(|(_, p)| alive(p.pid())).collect();
    assert!(
        !escaped.is_empty(),
        "nothing left to find: the test proves nothing"
    );
    wait_for("the pid file unlocked", SOON, || {
        matches!(
            daemonic::PidFile::holder(env.pid_file("e")),
            Ok(daemonic::pidfile::Holder::None)
        )
        .then_some(())
    });
    let out = start(&env, "e", &[], &report);
    assert!(out.status.success(), "{}", stderr(&out));
    // Held before anything is asserted, so that the test kills them however it ends.
    let new = tree(&report, 8);
    assert_all_gone(&old, "a new start after kill -9 of supervisor and sentinel");
    let log = std::fs::read_to_string(env.dir.join("state").join("e.log")).unwrap_or_default();
    assert!(
        log.contains("leftover process") || stderr(&out).contains("leftover process"),
        "the new start says nothing of what it killed: {log} {}",
        stderr(&out)
    );
    assert!(env.daemonic(&["stop", "e"]).status.success());
    assert_all_gone(&new, "stop");
}
