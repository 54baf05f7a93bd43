//! `ready = "forking"`: programs that daemonize themselves (systemd's `Type=forking`). The
//! process daemonic starts forks its daemon and exits 0; the supervisor takes the daemon
//! over (from its own pid file, or the only process left) and supervises it: ready,
//! restarted after `kill -9`, reloaded, stopped, its output in `logs`. A pid file that
//! never appears, or names a process outside the service, fails the start and says so.
//!
//! Shown here with a `pg_ctl start`-style launcher (a shell script: the daemon in a session
//! of its own, the launcher waits for its pid file) and variations of it; nginx in its
//! default daemonizing mode is `forking_nginx.rs`.

use daemonic_test_support as support;

mod env;

use std::path::{Path, PathBuf};

use daemonic::Pid;
use env::daemons::{self, pid_in};
use env::{Env, text};
use support::*;

/// A `pg_ctl start`-style launcher: starts the daemon (`setsid sh`, so it leads a session
/// of its own) and, in mode `wait`, returns once the daemon has written its pid file;
/// `late` returns at once and the daemon writes it 300 ms later (a classic double fork);
/// `never` never writes it; `foreign` writes the pid given third; `none` writes none but the
/// daemon runs. The daemon says `reloaded` on SIGHUP and `stopping` on SIGTERM.
const CTL: &str = r#"#!/bin/sh
mode=$1 pidfile=$2 foreign=$3
setsid sh -c '
  trap "echo daemon: reloaded" HUP
  trap "echo daemon: stopping; exit 0" TERM
  [ "$0" = late ] && sleep 0.3
  case "$0" in
    never|none) ;;
    foreign) echo "$2" > "$1" ;;
    *) echo $$ > "$1" ;;
  esac
  echo "daemon: serving as pid $$"
  while :; do sleep 0.05; done
' "$mode" "$pidfile" "$foreign" &
if [ "$mode" = wait ]; then
  while [ ! -s "$pidfile" ]; do sleep 0.01; done
fi
echo "ctl: server starting"
exit 0
"#;

/// The launcher script in the test's directory, and where its daemon's pid file goes.
fn ctl(env: &Env) -> (String, PathBuf) {
    let script = env.dir.join("ctl.sh");
    std::fs::write(&script, CTL).unwrap();
    (script.display().to_string(), env.dir.join("server.pid"))
}

/// `daemonic start` of the launcher in `mode`, ready by `ready`.
fn start(env: &Env, mode: &str, ready: &str, extra: &[&str]) -> std::process::Output {
    start_in(env, "auto", mode, ready, extra)
}

/// [`start`] with `DAEMONIC_CONTAINMENT` set to `containment`.
fn start_in(
    env: &Env,
    containment: &str,
    mode: &str,
    ready: &str,
    extra: &[&str],
) -> std::process::Output {
    let (script, pidfile) = ctl(env);
    let pidfile = pidfile.display().to_string();
    let (mode, foreign) = mode.split_once(' ').unwrap_or((mode, ""));
    let mut args = vec!["start", "--name", "db", "--ready", ready];
    args.extend_from_slice(extra);
    args.extend(["--", "sh", &script, mode, &pidfile, foreign]);
    run(env
        .cmd()
        .env("DAEMONIC_CONTAINMENT", containment)
        .args(&args))
}

/// `daemonic logs db` once it shows `line`.
fn logs_with(env: &Env, line: &str) -> String {
    wait_for(&format!("{line:?} in the logs"), SOON, || {
        let logs = text(&env.daemonic(&["logs", "db", "-n", "100"]));
        logs.contains(line).then_some(logs)
    })
}

#[test]
fn a_pg_ctl_style_daemon_is_ready_reloaded_restarted_killed_and_stopped() {
    a_pg_ctl_style_daemon_in("subreaper");
}

#[test]
fn a_pg_ctl_style_daemon_in_a_cgroup_is_ready_reloaded_restarted_and_stopped() {
    if env::containment::cgroups("a_pg_ctl_style_daemon_in_a_cgroup…") {
        a_pg_ctl_style_daemon_in("cgroup");
    }
}

fn a_pg_ctl_style_daemon_in(containment: &str) {
    let env = Env::new(&format!("forking-ctl-{containment}"));
    let (pidfile, ready) = pid_file_ready(&env);
    let out = start_in(&env, containment, "wait", &ready, &[]);
    assert!(out.status.success(), "{}", text(&out));
    let daemon = pid_in(&pidfile).expect("the pid file");
    let _guard = KillOnDrop::new(daemon);
    // `start` names the daemon, not the launcher that exited.
    assert!(
        text(&out).contains(&format!("db: ready (pid {daemon})")),
        "{}",
        text(&out)
    );
    assert_eq!(env.child_pid("db"), daemon);
    if containment == "cgroup" {
        let json = text(&env.daemonic(&["status", "db", "--json"]));
        assert!(json.contains("\"containment\":\"cgroup /"), "{json}");
    }
    let logs = logs_with(&env, &format!("daemon: serving as pid {daemon}"));
    assert!(logs.contains("ctl: server starting"), "{logs}");
    assert!(
        logs.contains(&format!("forked: main process pid {daemon}")),
        "{logs}"
    );

    // reload: the reload signal (SIGHUP) reaches the daemon.
    let out = env.daemonic(&["reload", "db"]);
    assert!(out.status.success(), "{}", text(&out));
    logs_with(&env, "daemon: reloaded");

    // restart: the daemon stopped, a new launcher run, its daemon taken over.
    let out = env.daemonic(&["restart", "db"]);
    assert!(out.status.success(), "{}", text(&out));
    assert!(!alive(daemon), "the daemon outlived its restart");
    let daemon = wait_for("the restarted daemon", SOON, || {
        pid_in(&pidfile).filter(|&p| p != daemon && alive(p))
    });
    let _guard1 = KillOnDrop::new(daemon);
    assert_eq!(env.child_pid("db"), daemon);

    // kill -9 of the real daemon: a failure, restarted; the new daemon taken over.
    nix::sys::signal::kill(daemon, nix::sys::signal::Signal::SIGKILL).unwrap();
    let again = wait_for("a new daemon", SOON, || {
        pid_in(&pidfile).filter(|&p| p != daemon && alive(p))
    });
    let _guard2 = KillOnDrop::new(again);
    wait_for("the new daemon to be supervised", SOON, || {
        let status = text(&env.daemonic(&["status", "db"]));
        status
            .contains(&format!("pid {again}"))
            .then_some(())
            .filter(|_| status.contains("ready"))
    });
    assert!(!alive(daemon));

    // stop: the daemon is stopped by its stop signal and nothing is left.
    stop(&env, again);
    logs_with(&env, "daemon: stopping");
}

#[test]
fn run_in_the_foreground_takes_the_daemon_over_and_ends_it_on_sigterm() {
    let env = Env::new("forking-run");
    let (script, pidfile) = ctl(&env);
    let pid = pidfile.display().to_string();
    let ready = format!("forking:{pid}");
    let mut run = env
        .cmd()
        .args([
            "run", "--name", "db", "--ready", &ready, "--", "sh", &script, "wait", &pid,
        ])
        .stdout(std::process::Stdio::null())
        .stderr(std::process::Stdio::null())
        .spawn()
        .unwrap();
    let supervisor = KillOnDrop::new(Pid::from_raw(run.id() as i32));
    let daemon = wait_for("the daemon's pid file", SOON, || pid_in(&pidfile));
    let _guard = KillOnDrop::new(daemon);
    wait_for("the daemon to be supervised", SOON, || {
        let status = text(&env.daemonic(&["status", "db"]));
        (status.contains("ready") && status.contains(&format!("pid {daemon}"))).then_some(())
    });
    nix::sys::signal::kill(supervisor.pid(), nix::sys::signal::Signal::SIGTERM).unwrap();
    let ended = run.wait().unwrap();
    assert!(ended.code().is_some(), "run ended by a signal: {ended:?}");
    assert!(
        !alive(daemon),
        "the daemon outlived its supervisor's SIGTERM"
    );
}

#[test]
fn a_daemon_that_writes_its_pid_file_after_its_parent_exited_is_waited_for() {
    let env = Env::new("forking-late");
    let (pidfile, ready) = pid_file_ready(&env);
    let out = start(&env, "late", &ready, &[]);
    assert!(out.status.success(), "{}", text(&out));
    let daemon = pid_in(&pidfile).expect("the pid file");
    let _guard = KillOnDrop::new(daemon);
    assert_eq!(env.child_pid("db"), daemon);
    stop(&env, daemon);
}

/// `daemonic stop db`, after which `daemon` must be gone.
fn stop(env: &Env, daemon: Pid) {
    let out = env.daemonic(&["stop", "db"]);
    assert!(out.status.success(), "{}", text(&out));
    assert!(!alive(daemon), "the daemon outlived its stop");
}

#[test]
fn without_a_pid_file_the_only_process_left_is_the_daemon() {
    let env = Env::new("forking-only");
    let out = start(&env, "none", "forking", &[]);
    assert!(out.status.success(), "{}", text(&out));
    let daemon = env.child_pid("db");
    let _guard = KillOnDrop::new(daemon);
    let logs = logs_with(&env, &format!("daemon: serving as pid {daemon}"));
    assert!(logs.contains("forked: main process pid"), "{logs}");
    stop(&env, daemon);
}

#[test]
fn a_forking_service_of_a_config_file_is_taken_over_beside_another() {
    let env = Env::new("forking-up");
    let (script, pidfile) = ctl(&env);
    let sleeper = env::fixture("sleeper");
    let file = env.dir.join("daemonic.toml");
    std::fs::write(
        &file,
        format!(
            "[services.db]\ncommand = [\"sh\", {script:?}, \"late\", {pid:?}]\n\
             ready = \"forking:{pid}\"\n\n\
             [services.other]\ncommand = [{sleeper:?}, \"3600\"]\ngrace = \"100ms\"\n",
            pid = pidfile.display().to_string()
        ),
    )
    .unwrap();
    let f = file.display().to_string();
    let out = env.daemonic(&["up", "-f", &f]);
    assert!(out.status.success(), "{}", text(&out));
    let daemon = pid_in(&pidfile).expect("the pid file");
    let _guard = KillOnDrop::new(daemon);
    let status = text(&env.daemonic(&["status", "db"]));
    assert!(status.contains(&format!("pid {daemon}")), "{status}");
    // kill -9: the supervisor of both restarts it (it reaps the daemon it adopted).
    nix::sys::signal::kill(daemon, nix::sys::signal::Signal::SIGKILL).unwrap();
    let again = wait_for("a new daemon", SOON, || {
        pid_in(&pidfile).filter(|&p| p != daemon && alive(p))
    });
    let _guard2 = KillOnDrop::new(again);
    wait_for("the new daemon to be supervised", SOON, || {
        let status = text(&env.daemonic(&["status", "db"]));
        status.contains(&format!("pid {again}")).then_some(())
    });
    let out = env.daemonic(&["down", "-f", &f]);
    assert!(out.status.success(), "{}", text(&out));
    assert!(again_gone(again), "the daemon outlived `down`");
}

/// Whether `pid` has exited (a zombie counts) within `SOON`.
fn again_gone(pid: Pid) -> bool {
    KillOnDrop::new(pid).exited_within(SOON)
}

/// A launcher that leaves two processes: a helper, and a daemon that names itself with
/// `MAINPID=` (python3's socket module, so the sender lives on) after its parent exited.
const MAINPID: &str = r#"#!/bin/sh
setsid sleep 3600 &
setsid /usr/bin/python3 -c '
import os, socket, sys, time
addr = os.environ["NOTIFY_SOCKET"]
if addr.startswith("@"):
    addr = "\0" + addr[1:]
time.sleep(0.2)
s = socket.socket(socket.AF_UNIX, socket.SOCK_DGRAM)
s.sendto(b"MAINPID=%d" % os.getpid(), addr)
print("daemon: named itself", flush=True)
time.sleep(3600)
' &
exit 0
"#;

#[test]
fn mainpid_names_the_daemon_among_the_processes_left() {
    if !Path::new("/usr/bin/python3").exists() {
        eprintln!("skipped mainpid_names_the_daemon…: /usr/bin/python3 is not installed");
        return;
    }
    // Placed in the tree by its cgroup (where one can be had), or as the supervisor's
    // orphan while the daemon is looked for.
    for containment in ["auto", "subreaper"] {
        let env = Env::new(&format!("forking-mainpid-{containment}"));
        let script = env.dir.join("mainpid.sh");
        std::fs::write(&script, MAINPID).unwrap();
        let script = script.display().to_string();
        let out = run(env.cmd().env("DAEMONIC_CONTAINMENT", containment).args([
            "start", "--name", "db", "--ready", "forking", "--", "sh", &script,
        ]));
        assert!(out.status.success(), "{containment}: {}", text(&out));
        let daemon = env.child_pid("db");
        let _guard = KillOnDrop::new(daemon);
        let comm = std::fs::read_to_string(format!("/proc/{daemon}/comm")).unwrap();
        assert!(comm.starts_with("python3"), "the main process is {comm}");
        logs_with(&env, "daemon: named itself");
        stop(&env, daemon);
    }
}

/// The daemon's own pid file in the test's directory, and `ready = "forking:"` it.
fn pid_file_ready(env: &Env) -> (PathBuf, String) {
    let pidfile = env.dir.join("server.pid");
    let ready = format!("forking:{}", pidfile.display());
    (pidfile, ready)
}

/// Guards on the pids a test's script appended to `path`, one a line (what it left
/// behind, killed however the test ends).
fn guards_from(path: &Path) -> Vec<KillOnDrop> {
    let text = std::fs::read_to_string(path).unwrap_or_default();
    text.lines()
        .filter_map(|l| l.trim().parse().ok())
        .map(|p| KillOnDrop::new(Pid::from_raw(p)))
        .collect()
}

/// `daemonic start` of `sh -c script`, ready by `ready` (`forking`, `forking:PATH`).
fn start_sh(env: &Env, ready: &str, extra: &[&str], script: &str) -> std::process::Output {
    let mut args = vec!["start", "--name", "db", "--ready", ready];
    args.extend_from_slice(extra);
    args.extend(["--", "sh", "-c", script]);
    env.daemonic(&args)
}

#[test]
fn two_processes_left_and_no_pid_file_fail_the_start_naming_them() {
    let env = Env::new("forking-two");
    let left = env.dir.join("left");
    let script = format!(
        "setsid sleep 3600 & echo $! >> {l}; setsid sleep 3601 & echo $! >> {l}; exit 0",
        l = left.display()
    );
    let out = start_sh(&env, "forking", &["--timeout", "1s"], &script);
    let _guards = guards_from(&left);
    let said = text(&out);
    assert!(!out.status.success(), "{said}");
    assert!(said.contains("2 processes were left ("), "{said}");
    assert!(
        said.contains("ready = \"forking:PATH\", or send MAINPID="),
        "{said}"
    );
}

#[test]
fn a_pid_file_that_never_appears_fails_the_start_naming_it() {
    let env = Env::new("forking-never");
    let (pidfile, ready) = pid_file_ready(&env);
    let out = start(&env, "never", &ready, &["--timeout", "1s"]);
    let said = text(&out);
    assert!(!out.status.success(), "{said}");
    assert!(
        said.contains(&format!("pid file {} did not appear", pidfile.display())),
        "{said}"
    );
    wait_for("the daemon of the failed start to be gone", SOON, || {
        daemons::naming(&pidfile).is_empty().then_some(())
    });
}

#[test]
fn a_pid_file_naming_a_process_outside_the_service_is_refused() {
    let env = Env::new("forking-foreign");
    let (pidfile, ready) = pid_file_ready(&env);
    // A process of the same user, but not of the service: never taken, never signalled.
    let mut other = std::process::Command::new("sleep")
        .arg("60")
        .spawn()
        .unwrap();
    let other_pid = Pid::from_raw(other.id() as i32);
    let _guard = KillOnDrop::new(other_pid);
    for foreign in [other_pid, Pid::from_raw(1)] {
        let out = start(
            &env,
            &format!("foreign {foreign}"),
            &ready,
            &["--timeout", "1s"],
        );
        let said = text(&out);
        assert!(!out.status.success(), "{said}");
        assert!(
            said.contains(&format!(
                "pid file {} names pid {foreign}, which is not a process of its tree",
                pidfile.display()
            )),
            "{said}"
        );
    }
    assert!(alive(other_pid), "the foreign process was signalled");
    let _ = other.kill();
    let _ = other.wait();
    wait_for("the daemon of the refused start to be gone", SOON, || {
        daemons::naming(&pidfile).is_empty().then_some(())
    });
}

#[test]
fn a_launcher_that_fails_is_a_failed_start_with_its_status() {
    let env = Env::new("forking-fail");
    let out = start_sh(&env, "forking", &[], "echo no config >&2; exit 3");
    let said = text(&out);
    assert!(!out.status.success(), "{said}");
    assert!(
        said.contains("exited with status 3 before it was ready"),
        "{said}"
    );
}

#[test]
fn a_one_shot_with_ready_forking_completes_as_a_one_shot() {
    let env = Env::new("forking-oneshot");
    let left = env.dir.join("left");
    let script = format!("setsid sleep 3600 & echo $! >> {}; exit 0", left.display());
    let out = start_sh(&env, "forking", &["--type", "oneshot"], &script);
    let _guards = guards_from(&left);
    assert!(out.status.success(), "{}", text(&out));
    assert!(text(&out).contains("db: completed"), "{}", text(&out));
}

#[test]
fn a_pid_file_naming_another_services_orphan_is_refused() {
    if !root("a_pid_file_naming_another_services_orphan_is_refused") {
        return;
    }
    // One supervisor, no cgroups: root's `other` leaves an orphan (the supervisor's child
    // once its parent has gone), whose pid the hostile `db` (uid 65534) names.
    let env = Env::new("forking-steal");
    let shared = env.dir.join("shared");
    std::fs::create_dir_all(&shared).unwrap();
    std::fs::set_permissions(&shared, std::os::unix::fs::PermissionsExt::from_mode(0o777)).unwrap();
    let orphan_file = shared.join("orphan");
    let pidfile = shared.join("db.pid");
    let file = env.dir.join("daemonic.toml");
    std::fs::write(
        &file,
        format!(
            "[services.other]\ncommand = [\"sh\", \"-c\", \"umask 022; sh -c 'setsid sleep 3600 & echo $$! > {o}'; \
             exec sleep 3600\"]\ngrace = \"100ms\"\n\n\
             [services.db]\ncommand = [\"sh\", \"-c\", \"while [ ! -s {o} ]; do sleep 0.01; done; \
             cat {o} > {p}; exit 0\"]\nready = \"forking:{p}\"\nuser = \"65534\"\ntimeout = \"1s\"\n\
             start-retries = 0\n",
            o = orphan_file.display(),
            p = pidfile.display()
        ),
    )
    .unwrap();
    let f = file.display().to_string();
    let out = run(env
        .cmd()
        .env("DAEMONIC_CONTAINMENT", "subreaper")
        .args(["up", "-f", &f]));
    let said = text(&out);
    let orphan = pid_in(&orphan_file).expect("other's orphan");
    let _guard = KillOnDrop::new(orphan);
    assert!(
        said.contains(&format!(
            "names pid {orphan}, which is not a process of its tree"
        )),
        "{said}"
    );
    assert!(alive(orphan), "the other service's orphan was signalled");
    let status = text(&env.daemonic(&["status", "db"]));
    assert!(status.starts_with("db: gave-up"), "{status}");
    let out = env.daemonic(&["down", "-f", &f]);
    assert!(out.status.success(), "{}", text(&out));
}

#[test]
fn a_daemon_left_in_its_parents_process_group_is_not_killed_with_it() {
    // No setsid: the daemon stays in the group the started process led.
    let env = Env::new("forking-group");
    let (pidfile, ready) = pid_file_ready(&env);
    let script = format!("sleep 3600 & echo $! > {}; exit 0", pidfile.display());
    let out = start_sh(&env, &ready, &[], &script);
    assert!(out.status.success(), "{}", text(&out));
    let daemon = pid_in(&pidfile).expect("the pid file");
    let _guard = KillOnDrop::new(daemon);
    assert_eq!(env.child_pid("db"), daemon);
    assert!(alive(daemon));
    stop(&env, daemon);
}
