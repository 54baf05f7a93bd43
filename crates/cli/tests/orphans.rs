//! A supervisor that contains its service as a subreaper (no cgroups) becomes the parent
//! of every orphan of the service, and reaps each as it exits: its zombies do not pile up
//! while the service runs (they would hold pids until the service's end).

use daemonic_test_support as support;

mod env;

use daemonic::Pid;
use env::Env;
use support::*;

/// The supervisor's children but `main` whose command is `sleep`, living or zombies.
fn orphaned_sleeps(supervisor: Pid, main: Pid) -> usize {
    let Ok(dir) = std::fs::read_dir("/proc") else {
        return 0;
    };
    dir.flatten()
        .filter_map(|e| e.file_name().to_str()?.parse::<i32>().ok())
        .map(Pid::from_raw)
        .filter(|&pid| pid != main && stat_field(pid, 1) == Some(supervisor.to_string()))
        .filter(|&pid| {
            std::fs::read_to_string(format!("/proc/{pid}/comm")).is_ok_and(|c| c.trim() == "sleep")
        })
        .count()
}

#[test]
fn a_subreapers_orphans_are_reaped_as_they_exit() {
    let env = Env::new("orphans");
    let done = env.dir.join("done");
    // Thirty double-forked sleeps, each an orphan of the supervisor once its subshell
    // has gone; then the service only waits.
    let script = format!(
        "i=0; while [ $i -lt 30 ]; do (sleep 0.2 &); i=$((i+1)); done; : > {}; exec sleep 3600",
        done.display()
    );
    let out = run(env.cmd().env("DAEMONIC_CONTAINMENT", "subreaper").args([
        "start", "--name", "o", "--grace", "100ms", "--", "sh", "-c", &script,
    ]));
    assert!(out.status.success(), "{}", stderr(&out));
    let supervisor = env.supervisor_pid("o");
    wait_for("the service to have forked its orphans", SOON, || {
        done.exists().then_some(())
    });
    // Each sleep ends 0.2 s after it began, and must then be reaped, not left a zombie.
    let main = env.child_pid("o");
    wait_for("the orphans to end and be reaped", SOON, || {
        (orphaned_sleeps(supervisor, main) == 0).then_some(())
    });
    let out = env.daemonic(&["stop", "o"]);
    assert!(out.status.success(), "{}", stderr(&out));
}
