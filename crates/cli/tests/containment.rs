//! Containment end to end: no process of a service outlives it — after `stop`, `restart`,
//! a crash of the main process, `kill -9` of the supervisor, and `kill -9` of supervisor
//! and sentinel followed by a new `start` — for descendants that fork, double-fork,
//! `setsid` and clear their environment (the `escaper` fixture). Real supervisors, real
//! cgroups (root with a cgroup2 mount; skipped with the reason elsewhere).

use daemonic_test_support as support;

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

/// Not one of `tree` is alive now (a zombie is dead): for a stop that returns only once
/// the service's group is empty.
fn assert_none_alive(tree: &[(String, KillOnDrop)], after: &str) {
    for (role, p) in tree {
        assert!(gone(p), "{role} still runs after {after}");
    }
}

/// Dead (or a zombie), or gone already when its handle was opened.
fn gone(p: &KillOnDrop) -> bool {
    p.0.as_ref().is_none_or(|h| !alive(h.pid()))
}

fn assert_all_gone(tree: &[(String, KillOnDrop)], after: &str) {
    for (role, p) in tree {
        assert!(
            p.exited_within(SOON),
            "the {role} descendant (pid {:?}) survived {after}",
            p.0.as_ref().map(|h| h.pid())
        );
    }
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

const PG_BIN: &str = "/usr/lib/postgresql/15/bin";

/// A PostgreSQL 15 data directory in `env`'s temp dir, made by `initdb` as user postgres;
/// `None` (with the reason printed) where that cannot be done.
fn pg_cluster(env: &Env, test: &str) -> Option<(std::path::PathBuf, u16)> {
    use std::os::unix::fs::PermissionsExt;
    use std::os::unix::process::CommandExt;
    if !cgroups(test) {
        return None;
    }
    let Ok(Some(pg)) = nix::unistd::User::from_name("postgres") else {
        eprintln!("skipped {test}: no user postgres (apt-get install postgresql)");
        return None;
    };
    if !Path::new(PG_BIN).join("postgres").exists() || which("psql").is_none() {
        eprintln!("skipped {test}: PostgreSQL 15 is not installed (apt-get install postgresql)");
        return None;
    }
    std::fs::set_permissions(env.dir.path(), std::fs::Permissions::from_mode(0o755)).unwrap();
    let data = env.dir.join("pg");
    std::fs::create_dir(&data).unwrap();
    nix::unistd::chown(&data, Some(pg.uid), Some(pg.gid)).unwrap();
    let out = run(std::process::Command::new(Path::new(PG_BIN).join("initdb"))
        .args([
            "-D",
            data.to_str().unwrap(),
            "-A",
            "trust",
            "-U",
            "postgres",
        ])
        .uid(pg.uid.as_raw())
        .gid(pg.gid.as_raw())
        .current_dir(&data));
    assert!(out.status.success(), "initdb: {}", stderr(&out));
    // A free port: bound and let go (postgres binds it again at once).
    let port = std::net::TcpListener::bind("127.0.0.1:0")
        .unwrap()
        .local_addr()
        .unwrap()
        .port();
    Some((data, port))
}

fn which(program: &str) -> Option<std::path::PathBuf> {
    std::env::var_os("PATH")?
        .to_str()?
        .split(':')
        .map(|d| Path::new(d).join(program))
        .find(|p| p.exists())
}

fn pg_start(env: &Env, data: &Path, port: u16, stop_signal: &str) {
    let port_s = port.to_string();
    let ready = format!("tcp:127.0.0.1:{port}");
    let postgres = format!("{PG_BIN}/postgres");
    let sockets = format!("unix_socket_directories={}", data.display());
    let out = env.daemonic(&[
        "start",
        "--name",
        "pg",
        "--user",
        "postgres",
        "--ready",
        &ready,
        "--stop-signal",
        stop_signal,
        "--stop-timeout",
        "3s",
        "--",
        &postgres,
        "-D",
        data.to_str().unwrap(),
        "-p",
        &port_s,
        "-c",
        "listen_addresses=127.0.0.1",
        "-c",
        &sockets,
    ]);
    assert!(out.status.success(), "start postgres: {}", stderr(&out));
}

/// An idle client: `psql` connected, waiting on its (open) stdin.
fn idle_psql(port: u16) -> (std::process::Child, KillOnDrop) {
    let child = std::process::Command::new("psql")
        .args([
            "-h",
            "127.0.0.1",
            "-p",
            &port.to_string(),
            "-U",
            "postgres",
            "-q",
        ])
        .stdin(std::process::Stdio::piped())
        .stdout(std::process::Stdio::null())
        .spawn()
        .unwrap();
    let guard = KillOnDrop::new(Pid::from_raw(child.id() as i32));
    (child, guard)
}

/// Waits until postgres has a client backend for the idle psql; returns every process of
/// the service's group then (postmaster, its helpers and the backend).
fn pg_tree(env: &Env, port: u16) -> Vec<(String, KillOnDrop)> {
    let cgroup = service_cgroup(env, "pg");
    wait_for("a client backend for the idle psql", SOON, || {
        let out = run(std::process::Command::new("psql").args([
            "-h",
            "127.0.0.1",
            "-p",
            &port.to_string(),
            "-U",
            "postgres",
            "-tAc",
            "select count(*) from pg_stat_activity where backend_type = 'client backend'",
        ]));
        let n: u32 = String::from_utf8_lossy(&out.stdout).trim().parse().ok()?;
        (n >= 2).then_some(())
    });
    // The postmaster and its children (each backend in a session of its own), found by
    // parent, not by group: what the test checks must not depend on the containment.
    let postmaster = env.child_pid("pg");
    let mut tree = vec![(
        format!("postmaster {postmaster}"),
        KillOnDrop::new(postmaster),
    )];
    for e in std::fs::read_dir("/proc").unwrap().flatten() {
        let Some(pid) = e.file_name().to_str().and_then(|s| s.parse().ok()) else {
            continue;
        };
        let pid = Pid::from_raw(pid);
        if stat_field(pid, 1) == Some(postmaster.to_string()) {
            tree.push((format!("postgres child {pid}"), KillOnDrop::new(pid)));
        }
    }
    if cgroup.exists() {
        let procs = std::fs::read_to_string(cgroup.join("cgroup.procs")).unwrap();
        for (what, p) in &tree {
            let pid = p.pid().to_string();
            assert!(procs.lines().any(|l| l == pid), "{what} not in {cgroup:?}");
        }
    }
    tree
}

/// What postgres logged in its `n`th start, once it said it is ready (the log is written by
/// the supervisor's loop, a moment after the readiness probe passed).
fn nth_start(log: &Path, n: usize) -> String {
    const READY: &str = "database system is ready to accept connections";
    let text = wait_for(
        &format!("start {n} logged in {}", log.display()),
        SOON,
        || {
            let text = std::fs::read_to_string(log).ok()?;
            (text.matches(READY).count() >= n).then_some(text)
        },
    );
    let starts: Vec<&str> = text.split("starting PostgreSQL").collect();
    starts.get(n).unwrap_or(&"").to_string()
}

#[test]
fn postgres_with_an_idle_client_leaves_no_process_and_int_needs_no_recovery() {
    let test = "postgres_with_an_idle_client_leaves_no_process_and_int_needs_no_recovery";
    let env = Env::new("pg");
    let Some((data, port)) = pg_cluster(&env, test) else {
        return;
    };
    let log = env.dir.join("state").join("pg.log");
    // SIGTERM: a smart shutdown waits for the idle client; after the stop timeout every
    // process of the tree is killed, backends in their own sessions included.
    pg_start(&env, &data, port, "TERM");
    let (_psql, _psql_guard) = idle_psql(port);
    let tree = pg_tree(&env, port);
    assert!(tree.len() >= 3, "postmaster, helpers and a backend");
    let out = env.daemonic(&["stop", "pg"]);
    assert!(out.status.success(), "{}", stderr(&out));
    // Not "soon": when `stop` returns. (Backends notice the postmaster's death and end
    // by themselves a moment later; a restart must not run beside them meanwhile.)
    assert_none_alive(&tree, "stop (TERM, then the stop timeout)");
    assert_all_gone(&tree, "stop (TERM, then the stop timeout)");
    drop(_psql_guard);

    // SIGINT: a fast shutdown, and the start after it needs no recovery.
    pg_start(&env, &data, port, "INT");
    let second = nth_start(&log, 2);
    assert!(
        second.contains("not properly shut down"),
        "the SIGKILLed cluster should need recovery: {second}"
    );
    let (_psql, psql_guard) = idle_psql(port);
    let tree = pg_tree(&env, port);
    let out = env.daemonic(&["stop", "pg"]);
    assert!(out.status.success(), "{}", stderr(&out));
    assert_all_gone(&tree, "stop (INT)");
    drop(psql_guard);
    pg_start(&env, &data, port, "INT");
    let last = nth_start(&log, 3);
    assert!(!last.contains("not properly shut down"), "{last}");
    assert!(!last.contains("automatic recovery"), "{last}");
    assert!(last.contains("database system was shut down at"), "{last}");
    assert!(env.daemonic(&["stop", "pg"]).status.success());
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
    let line = String::from_utf8_lossy(&env.daemonic(&["status", "e"]).stdout).into_owned();
    assert!(line.contains(", contained by subreaper"), "{line}");
    let out = env.daemonic(&["stop", "e"]);
    assert!(out.status.success(), "{}", stderr(&out));
    assert_none_alive(&tree, "stop");
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
    let env = Env::new("cg-up");
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
    let out = env.daemonic(&["up", "-f", f]);
    assert!(out.status.success(), "{}", stderr(&out));
    let (a, b) = (tree(&ra, 4), tree(&rb, 4));
    let out = env.daemonic(&["down", "-f", f, "a"]);
    assert!(out.status.success(), "{}", stderr(&out));
    assert_none_alive(&a, "down a");
    for (role, p) in &b {
        assert!(!gone(p), "b's {role} descendant died with a");
    }
    let out = env.daemonic(&["down", "-f", f]);
    assert!(out.status.success(), "{}", stderr(&out));
    assert_none_alive(&b, "down");
}
