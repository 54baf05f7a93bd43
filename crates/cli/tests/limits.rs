//! Resource limits end to end: `--memory-max`, `--memory-high`, `--cpu-max` and
//! `--tasks-max` refused at `check` and `start` where their controller is missing (naming
//! what and why), written into the service's cgroup where it is there (skipped with the
//! reason elsewhere), an OOM kill reported as such; `--restart-on-memory` restarting a
//! real program that takes memory (the `memory-hog` fixture), in cgroup and subreaper
//! mode.

use daemonic_test_support as support;

mod env;

use std::path::{Path, PathBuf};

use env::containment::service_cgroup;
use env::{Env, fixture};
use support::*;

/// The controllers a root supervisor could enable for its services (those listed at the
/// top of its hierarchy), and where they are listed; `None` where it makes no cgroups.
fn controllers() -> Option<(PathBuf, Vec<String>)> {
    if !nix::unistd::geteuid().is_root() {
        return None;
    }
    let path = cgroup2_mount()?.join("cgroup.controllers");
    let text = std::fs::read_to_string(&path).ok()?;
    Some((path, text.split_whitespace().map(String::from).collect()))
}

/// Whether the limits can be enforced here (root, cgroup2 with the memory, cpu and pids
/// controllers); otherwise prints why `test` is skipped.
fn enforceable(test: &str) -> bool {
    match controllers() {
        Some((_, c))
            if ["memory", "cpu", "pids"]
                .iter()
                .all(|w| c.iter().any(|h| h == w)) =>
        {
            true
        }
        Some((path, c)) => {
            eprintln!(
                "skipped {test}: {} lists {c:?}, not memory, cpu and pids (bound to cgroup v1?)",
                path.display()
            );
            false
        }
        None => {
            eprintln!("skipped {test}: needs root and a cgroup2 mount (CI runs as root)");
            false
        }
    }
}

/// Whether `controller` is missing here (what the refusal tests need); otherwise prints
/// why `test` is skipped.
fn missing(test: &str, controller: &str) -> bool {
    match controllers() {
        Some((path, c)) if c.iter().any(|h| h == controller) => {
            eprintln!(
                "skipped {test}: {} lists the {controller} controller",
                path.display()
            );
            false
        }
        _ => true,
    }
}

#[test]
fn check_names_the_missing_memory_controller() {
    if !missing("check_names_the_missing_memory_controller", "memory") {
        return;
    }
    let env = Env::new("limits-check");
    let file = env.dir.join("daemonic.toml");
    let sleeper = fixture("sleeper");
    std::fs::write(
        &file,
        format!("[services.web]\ncommand = [{sleeper:?}]\nmemory-max = \"256M\"\n"),
    )
    .unwrap();
    let out = env.daemonic(&["check", "-f", file.to_str().unwrap()]);
    let err = stderr(&out);
    assert_eq!(out.status.code(), Some(1), "{err}");
    let want = format!(
        "{}: service `web`: memory-max needs the cgroup v2 memory controller",
        file.display()
    );
    assert!(err.contains(&want), "{err}");
    // As root here: the controller is bound to cgroup v1, and the message says so.
    if let Some((path, listed)) = controllers() {
        let lists = if listed.is_empty() {
            "none".into()
        } else {
            listed.join(" ")
        };
        assert!(
            err.contains(&format!("{} lists {lists}", path.display())),
            "{err}"
        );
        let v1 = std::fs::read_to_string("/proc/self/mountinfo")
            .unwrap()
            .lines()
            .any(|l| l.contains(" - cgroup ") && l.split(',').any(|o| o == "memory"));
        if v1 {
            assert!(
                err.contains("(the memory controller is in use by cgroup v1 at "),
                "{err}"
            );
        }
    }
    // Without limits the same file is fine.
    std::fs::write(&file, format!("[services.web]\ncommand = [{sleeper:?}]\n")).unwrap();
    let out = env.daemonic(&["check", "-f", file.to_str().unwrap()]);
    assert!(out.status.success(), "{}", stderr(&out));
}

#[test]
fn start_names_the_missing_cpu_controller_and_starts_nothing() {
    if !missing(
        "start_names_the_missing_cpu_controller_and_starts_nothing",
        "cpu",
    ) {
        return;
    }
    let env = Env::new("limits-start");
    let sleeper = fixture("sleeper");
    let out = env.daemonic(&["start", "--name", "s", "--cpu-max", "50%", "--", &sleeper]);
    let err = stderr(&out);
    assert!(!out.status.success(), "{err}");
    assert!(
        err.contains("cpu-max needs the cgroup v2 cpu controller"),
        "{err}"
    );
    assert!(!env.pid_file("s").exists(), "a supervisor was started");
}

#[test]
fn subreaper_mode_refuses_limits_saying_there_is_no_cgroup() {
    let env = Env::new("limits-subreaper");
    let sleeper = fixture("sleeper");
    let out = run(env.cmd().env("DAEMONIC_CONTAINMENT", "subreaper").args([
        "start",
        "--name",
        "s",
        "--tasks-max",
        "10",
        "--",
        &sleeper,
    ]));
    let err = stderr(&out);
    assert!(!out.status.success(), "{err}");
    assert!(
        err.contains(
            "tasks-max needs the cgroup v2 pids controller, and this supervisor has no \
             cgroup: DAEMONIC_CONTAINMENT=subreaper"
        ),
        "{err}"
    );
    assert!(!env.pid_file("s").exists(), "a supervisor was started");
}

#[test]
fn invalid_limits_are_usage_errors() {
    let env = Env::new("limits-usage");
    for (flag, value, want) in [
        ("--cpu-max", "half", "invalid CPU share \"half\""),
        ("--memory-max", "0", "invalid size \"0\""),
        ("--tasks-max", "0", "invalid number of tasks \"0\""),
        ("--restart-on-memory", "lots", "invalid size \"lots\""),
    ] {
        let out = env.daemonic(&["run", flag, value, "--", "true"]);
        let err = stderr(&out);
        assert_eq!(out.status.code(), Some(2), "{flag} {value}: {err}");
        assert!(err.contains(want), "{flag} {value}: {err}");
    }
}

/// Starts `memory-hog 48` (48 MiB) with `--restart-on-memory 16M`; waits until it was
/// restarted with the reason in its log, and it started again.
fn restarts_on_memory(env: &Env, containment: &str) {
    let report = env.dir.join("report");
    let hog = fixture("memory-hog");
    let out = run(env.cmd().env("DAEMONIC_CONTAINMENT", containment).args([
        "start",
        "--name",
        "hog",
        "--grace",
        "100ms",
        "--restart-on-memory",
        "16M",
        "--memory-check-interval",
        "100ms",
        "--",
        &hog,
        "48",
        report.to_str().unwrap(),
    ]));
    assert!(out.status.success(), "{}", stderr(&out));
    let log = env.dir.join("state").join("hog.log");
    let said = wait_for("the restart in the log", SOON, || {
        let t = std::fs::read_to_string(&log).ok()?;
        t.contains("; restarting").then_some(t)
    });
    assert!(
        said.contains("daemonic: hog: memory ")
            && said.contains(" above --restart-on-memory 16M at 2 reads 100ms apart; restarting"),
        "{said}"
    );
    wait_for("a second start", SOON, || {
        let t = std::fs::read_to_string(&report).ok()?;
        (t.lines().count() >= 2).then_some(())
    });
    let status = stdout(&env.daemonic(&["status", "hog"]));
    assert!(!status.contains("restarts 0"), "{status}");
    let out = env.daemonic(&["stop", "hog"]);
    assert!(out.status.success(), "{}", stderr(&out));
}

#[test]
fn restart_on_memory_restarts_a_tree_above_the_size_in_cgroup_mode() {
    if controllers().is_none() {
        eprintln!(
            "skipped restart_on_memory_restarts_a_tree_above_the_size_in_cgroup_mode: needs \
             root and a cgroup2 mount (CI runs as root)"
        );
        return;
    }
    restarts_on_memory(&Env::new("limits-rom-cg"), "cgroup");
}

#[test]
fn restart_on_memory_restarts_a_tree_above_the_size_in_subreaper_mode() {
    restarts_on_memory(&Env::new("limits-rom-sr"), "subreaper");
}

fn read(dir: &Path, file: &str) -> String {
    std::fs::read_to_string(dir.join(file))
        .unwrap_or_else(|e| panic!("read {}: {e}", dir.join(file).display()))
        .trim()
        .to_string()
}

#[test]
fn limits_are_written_into_the_service_cgroup() {
    if !enforceable("limits_are_written_into_the_service_cgroup") {
        return;
    }
    let env = Env::new("limits-files");
    let sleeper = fixture("sleeper");
    let out = env.daemonic(&[
        "start",
        "--name",
        "s",
        "--grace",
        "100ms",
        "--memory-max",
        "64M",
        "--memory-high",
        "48M",
        "--cpu-max",
        "150%",
        "--tasks-max",
        "20",
        "--",
        &sleeper,
    ]);
    assert!(out.status.success(), "{}", stderr(&out));
    let cg = service_cgroup(&env, "s");
    assert_eq!(read(&cg, "memory.max"), (64u64 << 20).to_string());
    assert_eq!(read(&cg, "memory.high"), (48u64 << 20).to_string());
    assert_eq!(read(&cg, "cpu.max"), "150000 100000");
    assert_eq!(read(&cg, "pids.max"), "20");
    let out = env.daemonic(&["stop", "s"]);
    assert!(out.status.success(), "{}", stderr(&out));
}

#[test]
fn an_oom_kill_is_reported_and_restarted_as_a_failure() {
    if !enforceable("an_oom_kill_is_reported_and_restarted_as_a_failure") {
        return;
    }
    let env = Env::new("limits-oom");
    let report = env.dir.join("report");
    let hog = fixture("memory-hog");
    let out = env.daemonic(&[
        "start",
        "--name",
        "hog",
        "--grace",
        "100ms",
        "--restart",
        "on-failure",
        "--backoff",
        "100ms",
        "--memory-max",
        "32M",
        "--",
        &hog,
        "64",
        report.to_str().unwrap(),
        "500",
    ]);
    // Ready after the grace; killed when it takes its memory, then again after each start.
    assert!(out.status.success(), "{}", stderr(&out));
    let log = env.dir.join("state").join("hog.log");
    let said = wait_for("the OOM kill in the log", SOON, || {
        let t = std::fs::read_to_string(&log).ok()?;
        t.contains("killed by the OOM killer").then_some(t)
    });
    assert!(
        said.contains("memory-hog killed by the OOM killer: memory-max 32M"),
        "{said}"
    );
    wait_for("a restart after the OOM kill", SOON, || {
        let t = std::fs::read_to_string(&report).ok()?;
        (t.lines().count() >= 2).then_some(())
    });
    let _ = env.daemonic(&["stop", "hog"]);
}
