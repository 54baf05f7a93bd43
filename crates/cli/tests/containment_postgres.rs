//! Containment of a real PostgreSQL 15 under a real supervisor (root with a cgroup2 mount
//! and the postgresql package; skipped with the reason elsewhere): with an idle client
//! connected, a stop by SIGTERM leaves no process of the tree, and a stop by SIGINT leaves
//! a cluster that starts again without recovery.

use daemonic_test_support as support;

mod env;

use std::path::Path;

use daemonic::Pid;
use env::Env;
use env::containment::{assert_all_gone, assert_none_alive, cgroups, service_cgroup};
use support::*;

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

/// `psql` as user postgres to the test's server on 127.0.0.1:`port`.
fn psql(port: u16) -> std::process::Command {
    let mut cmd = std::process::Command::new("psql");
    cmd.args(["-h", "127.0.0.1", "-p", &port.to_string(), "-U", "postgres"]);
    cmd
}

/// An idle client: `psql` connected, waiting on its (open) stdin.
fn idle_psql(port: u16) -> (std::process::Child, KillOnDrop) {
    let (child, guard) = spawn_guarded(
        psql(port)
            .arg("-q")
            .stdin(std::process::Stdio::piped())
            .stdout(std::process::Stdio::null()),
    );
    (child, guard)
}

/// Waits until postgres has a client backend for the idle psql; returns every process of
/// the service's group then (postmaster, its helpers and the backend).
fn pg_tree(env: &Env, port: u16) -> Vec<(String, KillOnDrop)> {
    let cgroup = service_cgroup(env, "pg");
    wait_for("a client backend for the idle psql", SOON, || {
        let out = run(psql(port).args([
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
            // A backend that exited after the scan (the counting psql's own) has left the
            // group, a zombie until the postmaster reaps it: only the living must be in it.
            assert!(
                procs.lines().any(|l| l == pid) || !alive(p.pid()),
                "{what} not in {cgroup:?}"
            );
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
