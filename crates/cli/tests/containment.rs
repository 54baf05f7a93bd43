//! Containment end to end: no process of a service outlives it — after `stop`, `restart`,
//! a crash of the main process, `kill -9` of the supervisor, and `kill -9` of supervisor
//! and sentinel followed by a new `start` — for descendants that fork, double-fork,
//! `setsid` and clear their environment (the `escaper` fixture). Real supervisors, real
//! cgroups (root with a cgroup2 mount; skipped with the reason elsewhere). PostgreSQL
//! under containment is in `containment_postgres.rs`.

use daemonic_test_support as support;

mod env;

use std::path::Path;

use daemonic::process::PidFd;
use daemonic::{Pid, Signal};
use env::containment::{assert_all_gone, assert_none_alive, cgroups, gone, service_cgroup};
use env::{Env, fixture};
use support::*;

const ROLES: [&str; 4] = ["fork", "double", "setsid", "env"];

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

fn start(env: &Env, name: &str, extra: &[&str], report: &Path) -> std::process::Output {
    start_in(env, None, name, extra, report)
}

/// `daemonic start` of the escaper as `name`, with the containment forced to `mode` if
/// given.
fn start_in(
    env: &Env,
    mode: Option<&str>,
    name: &str,
    extra: &[&str],
    report: &Path,
) -> std::process::Output {
    let prog = fixture("escaper");
    let mut args = vec!["start", "--name", name, "--grace", "100ms"];
    args.extend_from_slice(extra);
    args.extend(["--", &prog, report.to_str().unwrap()]);
    daemonic_in(env, mode, &args)
}

/// `daemonic ARGS` with the containment forced to `mode` if given.
fn daemonic_in(env: &Env, mode: Option<&str>, args: &[&str]) -> std::process::Output {
    let mut cmd = env.cmd();
    if let Some(mode) = mode {
        cmd.env(VAR, mode);
    }
    run(cmd.args(args))
}

/// A restart waits until the old tree is gone: not one of the old generation is alive
/// once the new one has reported; then a stop ends the new one too (and, with `reaped`,
/// every process of both is reaped, not only dead).
fn a_restart_waits_until_the_old_tree_is_gone(env: &Env, mode: Option<&str>, reaped: bool) {
    let report = env.dir.join("report");
    let out = start_in(env, mode, "e", &["--restart", "always"], &report);
    assert!(out.status.success(), "{}", stderr(&out));
    let first = tree(&report, 4);
    let out = env.daemonic(&["restart", "e"]);
    assert!(out.status.success(), "{}", stderr(&out));
    let both = tree(&report, 8);
    for (role, p) in &first {
        assert!(
            !alive(p.pid()),
            "the old {role} descendant runs beside the new tree"
        );
    }
    for (role, p) in &both[4..] {
        assert!(!gone(p), "the new {role} descendant");
    }
    // Not only once `restart` answered: the new main process found none of the old tree
    // alive when it started (the exit is reported once the old tree is gone).
    let starts = std::fs::read_to_string(report.with_extension("starts")).unwrap();
    assert_eq!(
        starts, "old-alive=0\nold-alive=0\n",
        "the new main started beside the old tree"
    );
    let out = env.daemonic(&["stop", "e"]);
    assert!(out.status.success(), "{}", stderr(&out));
    assert_none_alive(&both, "restart and stop");
    if reaped {
        assert_all_gone(&both, "restart and stop");
    }
}

/// A crash of the main process (before or after its grace: what counts is what it
/// leaves) takes its descendants with it.
fn a_crash_of_the_main_process_leaves_no_descendant(env: &Env, mode: Option<&str>) {
    let report = env.dir.join("report");
    let prog = fixture("escaper");
    daemonic_in(
        env,
        mode,
        &[
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
        ],
    );
    let tree = tree(&report, 4);
    assert_all_gone(&tree, "a crash of the main process");
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
    // `status` names the group and counts the whole tree: the main process and the
    // four (the double fork's intermediate has exited).
    let out = env.daemonic(&["status", "e"]);
    let line = String::from_utf8_lossy(&out.stdout);
    let contained = format!(
        "contained by cgroup {}, tree 5 processes mem ",
        cgroup.display()
    );
    assert!(line.contains(&contained), "{line}");
    let out = env.daemonic(&["status", "e", "--json"]);
    let json = String::from_utf8_lossy(&out.stdout);
    assert!(
        json.contains(r#""tree_processes":5,"tree_memory_bytes":"#),
        "{json}"
    );
    let out = env.daemonic(&["stop", "e"]);
    assert!(out.status.success(), "{}", stderr(&out));
    assert_none_alive(&tree, "stop");
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
    // Reaped too, not only dead: the group was emptied and waited for.
    a_restart_waits_until_the_old_tree_is_gone(&Env::new("cg-restart"), None, true);
}

#[test]
fn cgroup_a_crash_of_the_main_process_leaves_no_descendant() {
    if !cgroups("cgroup_a_crash_of_the_main_process_leaves_no_descendant") {
        return;
    }
    a_crash_of_the_main_process_leaves_no_descendant(&Env::new("cg-crash"), None);
}

/// A child that ended alone is restarted in the same group (nobody killed in it, so it
/// is kept: no `rmdir`/`mkdir` per restart); one that left a process behind is restarted
/// in a group made anew after `cgroup.kill` emptied the old one — and that child lives
/// (Linux kills a child born in a group that `cgroup.kill` emptied).
#[test]
fn cgroup_a_group_is_made_anew_only_after_a_kill_in_it() {
    use std::os::unix::fs::MetadataExt;
    if !cgroups("cgroup_a_group_is_made_anew_only_after_a_kill_in_it") {
        return;
    }
    let env = Env::new("cg-anew");
    let report = env.dir.join("pids");
    let flag = env.dir.join("leave-one");
    let script = format!(
        "echo $$ >> {r}; if [ -e {f} ]; then rm {f}; setsid sh -c 'echo > {f}.left; exec sleep 1000' & fi; exec sleep 1000",
        r = report.display(),
        f = flag.display()
    );
    let out = env.daemonic(&[
        "start",
        "--name",
        "k",
        "--grace",
        "0s",
        "--restart",
        "always",
        "--backoff",
        "0ms",
        "--",
        "sh",
        "-c",
        &script,
    ]);
    assert!(out.status.success(), "{}", stderr(&out));
    let nth = |n: usize| -> Pid {
        let text = wait_for(&format!("{n} pids in {}", report.display()), SOON, || {
            let text = std::fs::read_to_string(&report).ok()?;
            (text.lines().count() >= n).then_some(text)
        });
        Pid::from_raw(text.lines().nth(n - 1).unwrap().parse().unwrap())
    };
    let group = service_cgroup(&env, "k");
    let ino = || std::fs::metadata(&group).unwrap().ino();
    let kill = |pid: Pid| PidFd::open(pid).unwrap().signal(Signal::SIGKILL).unwrap();

    let first = nth(1);
    let made = ino();
    kill(first);
    let second = nth(2);
    assert_eq!(
        ino(),
        made,
        "the group was made anew though nothing was killed in it"
    );

    std::fs::write(&flag, "").unwrap();
    kill(second);
    let third = nth(3);
    // The leftover runs beside the third child, in its cgroup but not in its process
    // group (which is killed before the cgroup is looked at): it says so once it has its
    // own session.
    let left = env.dir.join("leave-one.left");
    wait_for("the third child's leftover", SOON, || {
        left.exists().then_some(())
    });
    kill(third);
    let fourth = nth(4);
    assert_ne!(
        ino(),
        made,
        "the group was kept though cgroup.kill emptied it"
    );
    // Born, so not killed at birth; and the supervisor says it runs.
    let status = wait_for("the fourth child in status", SOON, || {
        let status = stdout(&env.daemonic(&["status", "k"]));
        status.contains(&format!("pid {fourth} ")).then_some(status)
    });
    assert!(
        alive(fourth),
        "the child born after the kill died: {status}"
    );
    assert!(status.contains(&format!("pid {fourth} ")), "{status}");
    let out = env.daemonic(&["stop", "k"]);
    assert!(out.status.success(), "{}", stderr(&out));
}

#[test]
fn cgroup_a_killed_supervisor_leaves_no_descendant() {
    if !cgroups("cgroup_a_killed_supervisor_leaves_no_descendant") {
        return;
    }
    a_killed_supervisor_leaves_no_descendant(&Env::new("cg-kill9"), None);
}

#[test]
fn cgroup_a_new_start_kills_what_a_killed_supervisor_and_sentinel_left() {
    if !cgroups("cgroup_a_new_start_kills_what_a_killed_supervisor_and_sentinel_left") {
        return;
    }
    let env = Env::new("cg-kill9-both");
    a_new_start_kills_what_a_killed_supervisor_and_sentinel_left(&env, None);
}

/// `kill -9` of the supervisor: its sentinel kills the whole tree.
fn a_killed_supervisor_leaves_no_descendant(env: &Env, mode: Option<&str>) {
    let report = env.dir.join("report");
    let out = start_in(env, mode, "e", &[], &report);
    assert!(out.status.success(), "{}", stderr(&out));
    let tree = tree(&report, 4);
    let supervisor = PidFd::open(env.supervisor_pid("e")).unwrap();
    supervisor.signal(Signal::SIGKILL).unwrap();
    assert_all_gone(&tree, "kill -9 of the supervisor");
}

/// `kill -9` of sentinel and supervisor leaves the tree running; a new start of the
/// service kills it first and says so.
fn a_new_start_kills_what_a_killed_supervisor_and_sentinel_left(env: &Env, mode: Option<&str>) {
    let report = env.dir.join("report");
    let out = start_in(env, mode, "e", &[], &report);
    assert!(out.status.success(), "{}", stderr(&out));
    let old = tree(&report, 4);
    let supervisor = env.supervisor_pid("e");
    let sentinel = KillOnDrop::new(sentinel_of(supervisor));
    let supervisor = KillOnDrop::new(supervisor);
    // The sentinel first, so that it cannot clean up after the supervisor.
    drop(sentinel);
    drop(supervisor);
    let escaped: Vec<_> = old.iter().filter(|(_, p)| !gone(p)).collect();
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
    let out = start_in(env, mode, "e", &[], &report);
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
    assert!(daemonic_in(env, mode, &["stop", "e"]).status.success());
    assert_all_gone(&new, "stop");
}

#[test]
fn cgroup_mode_asked_for_where_none_can_be_made_fails_naming_why() {
    use std::os::unix::fs::PermissionsExt;
    use std::os::unix::process::CommandExt;
    let test = "cgroup_mode_asked_for_where_none_can_be_made_fails_naming_why";
    if !cgroups(test) {
        return;
    }
    // An unprivileged user with nothing delegated to it: nobody.
    let env = Env::new("cg-required");
    std::fs::set_permissions(env.dir.path(), std::fs::Permissions::from_mode(0o777)).unwrap();
    let out = run(env
        .cmd()
        .args(["run", "--", "/bin/true"])
        .env(VAR, "cgroup")
        .current_dir(env.dir.path())
        .uid(65534)
        .gid(65534));
    assert_eq!(out.status.code(), Some(126), "{}", stderr(&out));
    assert!(
        stderr(&out).contains("DAEMONIC_CONTAINMENT=cgroup: not root, and /")
            && stderr(&out).contains("is not delegated to this user"),
        "{}",
        stderr(&out)
    );
    // Without the demand, the same service runs (in its process group).
    let out = run(env
        .cmd()
        .args(["run", "--", "/bin/true"])
        .current_dir(env.dir.path())
        .uid(65534)
        .gid(65534));
    assert_eq!(out.status.code(), Some(0), "{}", stderr(&out));
}

const VAR: &str = "DAEMONIC_CONTAINMENT";

#[test]
fn subreaper_stop_leaves_no_descendant() {
    let env = Env::new("sr-stop");
    let report = env.dir.join("report");
    let out = start_in(&env, Some("subreaper"), "e", &[], &report);
    assert!(out.status.success(), "{}", stderr(&out));
    let tree = tree(&report, 4);
    let line = env.status_line("e");
    // The main process and the four; the sentinel is not counted.
    assert!(
        line.contains(", contained by subreaper, tree 5 processes mem "),
        "{line}"
    );
    let out = env.daemonic(&["status", "e", "--json"]);
    let json = String::from_utf8_lossy(&out.stdout);
    assert!(json.contains(r#""tree_processes":5,"#), "{json}");
    let out = env.daemonic(&["stop", "e"]);
    assert!(out.status.success(), "{}", stderr(&out));
    assert_none_alive(&tree, "stop");
}

#[test]
fn subreaper_a_killed_supervisor_leaves_no_descendant() {
    a_killed_supervisor_leaves_no_descendant(&Env::new("sr-kill9"), Some("subreaper"));
}

#[test]
fn subreaper_a_new_start_kills_what_a_killed_supervisor_and_sentinel_left() {
    let env = Env::new("sr-kill9-both");
    a_new_start_kills_what_a_killed_supervisor_and_sentinel_left(&env, Some("subreaper"));
}

#[test]
fn subreaper_restart_waits_until_the_old_tree_is_gone() {
    a_restart_waits_until_the_old_tree_is_gone(&Env::new("sr-restart"), Some("subreaper"), false);
}

#[test]
fn subreaper_a_crash_of_the_main_process_leaves_no_descendant() {
    a_crash_of_the_main_process_leaves_no_descendant(&Env::new("sr-crash"), Some("subreaper"));
}

/// In a config-file supervisor each service has a group of its own: stopping one ends its
/// whole tree and nothing of the other's.
#[test]
fn cgroup_each_service_of_a_config_file_keeps_its_own_tree() {
    if !cgroups("cgroup_each_service_of_a_config_file_keeps_its_own_tree") {
        return;
    }
    each_service_of_a_config_file_keeps_its_own_tree(&Env::new("cg-up"), None);
}

/// Without cgroups a config-file supervisor is no subreaper (an orphan's parentage cannot
/// tell its service): each service's tree is told by its tree mark.
#[test]
fn subreaper_each_service_of_a_config_file_keeps_its_own_tree() {
    let env = Env::new("sr-up");
    each_service_of_a_config_file_keeps_its_own_tree(&env, Some("subreaper"));
}

/// Two services of one file: `down` of one leaves no process of it and every process of
/// the other; `status` counts each tree; then `kill -9` of supervisor and sentinel, and a
/// new `up` kills what they left before starting.
fn each_service_of_a_config_file_keeps_its_own_tree(env: &Env, mode: Option<&str>) {
    let prog = fixture("escaper");
    let (ra, rb) = (env.dir.join("a.report"), env.dir.join("b.report"));
    let file = env.dir.join("daemonic.toml");
    std::fs::write(
        &file,
        format!(
            "[defaults]\ngrace = \"100ms\"\n\n[services.a]\ncommand = [{prog:?}, {:?}]\n\n\
             [services.b]\ncommand = [{prog:?}, {:?}]\n",
            ra.display().to_string(),
            rb.display().to_string()
        ),
    )
    .unwrap();
    let f = file.to_str().unwrap();
    let out = daemonic_in(env, mode, &["up", "-f", f]);
    assert!(out.status.success(), "{}", stderr(&out));
    let (a, b) = (tree(&ra, 4), tree(&rb, 4));
    // The main process and the four (the double fork's intermediate has exited).
    let out = env.daemonic(&["status", "b"]);
    let line = String::from_utf8_lossy(&out.stdout);
    assert!(line.contains(", tree 5 processes mem "), "{line}");
    let out = daemonic_in(env, mode, &["down", "-f", f, "a"]);
    assert!(out.status.success(), "{}", stderr(&out));
    assert_none_alive(&a, "down a");
    for (role, p) in &b {
        assert!(!gone(p), "b's {role} descendant died with a");
    }
    let supervisor = env.supervisor_pid("b");
    let sentinel = KillOnDrop::new(sentinel_of(supervisor));
    let supervisor = KillOnDrop::new(supervisor);
    drop(sentinel);
    drop(supervisor);
    assert!(
        b.iter().any(|(_, p)| !gone(p)),
        "nothing left to find: the test proves nothing"
    );
    wait_for("the pid file unlocked", SOON, || {
        matches!(
            daemonic::PidFile::holder(env.pid_file("b")),
            Ok(daemonic::pidfile::Holder::None)
        )
        .then_some(())
    });
    let out = daemonic_in(env, mode, &["up", "-f", f]);
    assert!(out.status.success(), "{}", stderr(&out));
    let new = (tree(&ra, 8), tree(&rb, 8));
    assert_all_gone(&b, "a new up after kill -9 of supervisor and sentinel");
    let out = daemonic_in(env, mode, &["down", "-f", f]);
    assert!(out.status.success(), "{}", stderr(&out));
    assert_none_alive(&new.0, "down");
    assert_none_alive(&new.1, "down");
}
