//! `ready = "forking"`: programs that daemonize themselves (systemd's `Type=forking`). The
//! process daemonic starts forks its daemon and exits 0; the supervisor takes the daemon
//! over (from its own pid file, or the only process left) and supervises it: ready,
//! restarted after `kill -9`, reloaded, stopped, its output in `logs`. A pid file that
//! never appears, or names a process outside the service, fails the start and says so.
//!
//! Shown with a `pg_ctl start`-style launcher (a shell script: the daemon in a session of
//! its own, the launcher waits for its pid file) and with nginx in its default
//! daemonizing mode (skipped where `/usr/sbin/nginx` is missing).

use daemonic_test_support as support;

mod env;

use std::io::{Read as _, Write as _};
use std::net::{TcpListener, TcpStream};
use std::path::{Path, PathBuf};
use std::time::Duration;

use daemonic::Pid;
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

/// The pid a pid file holds, once it holds one.
fn pid_in(path: &Path) -> Option<Pid> {
    let text = std::fs::read_to_string(path).ok()?;
    text.trim().parse().ok().map(Pid::from_raw)
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
fn a_pg_ctl_style_daemon_is_ready_reloaded_restarted_after_kill_9_and_stopped() {
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
    let pidfile = env.dir.join("server.pid");
    let ready = format!("forking:{}", pidfile.display());
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
fn a_daemon_that_writes_its_pid_file_after_its_parent_exited_is_waited_for() {
    let env = Env::new("forking-late");
    let pidfile = env.dir.join("server.pid");
    let ready = format!("forking:{}", pidfile.display());
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

/// `daemonic start` of `sh -c script`, ready by `forking`.
fn start_sh(env: &Env, extra: &[&str], script: &str) -> std::process::Output {
    let mut args = vec!["start", "--name", "db", "--ready", "forking"];
    args.extend_from_slice(extra);
    args.extend(["--", "sh", "-c", script]);
    env.daemonic(&args)
}

#[test]
fn two_processes_left_and_no_pid_file_fail_the_start_naming_them() {
    let env = Env::new("forking-two");
    let out = start_sh(
        &env,
        &["--timeout", "1s"],
        "setsid sleep 3600 & setsid sleep 3601 & exit 0",
    );
    let said = text(&out);
    assert!(!out.status.success(), "{said}");
    assert!(said.contains("2 processes were left ("), "{said}");
    assert!(
        said.contains("ready = \"forking:PATH\", or send MAINPID="),
        "{said}"
    );
}

/// The daemons a failed start left: the `sh` processes whose arguments are the test's
/// pid file (none must be left).
fn daemons_of(pidfile: &Path) -> Vec<Pid> {
    let wanted = pidfile.display().to_string();
    std::fs::read_dir("/proc")
        .unwrap()
        .flatten()
        .filter_map(|e| e.file_name().to_str()?.parse::<i32>().ok())
        .map(Pid::from_raw)
        .filter(|&p| alive(p))
        .filter(|p| {
            std::fs::read(format!("/proc/{p}/cmdline"))
                .is_ok_and(|c| String::from_utf8_lossy(&c).contains(&wanted))
        })
        .collect()
}

#[test]
fn a_pid_file_that_never_appears_fails_the_start_naming_it() {
    let env = Env::new("forking-never");
    let pidfile = env.dir.join("server.pid");
    let ready = format!("forking:{}", pidfile.display());
    let out = start(&env, "never", &ready, &["--timeout", "1s"]);
    let said = text(&out);
    assert!(!out.status.success(), "{said}");
    assert!(
        said.contains(&format!("pid file {} did not appear", pidfile.display())),
        "{said}"
    );
    wait_for("the daemon of the failed start to be gone", SOON, || {
        daemons_of(&pidfile).is_empty().then_some(())
    });
}

#[test]
fn a_pid_file_naming_a_process_outside_the_service_is_refused() {
    let env = Env::new("forking-foreign");
    let pidfile = env.dir.join("server.pid");
    let ready = format!("forking:{}", pidfile.display());
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
        daemons_of(&pidfile).is_empty().then_some(())
    });
}

#[test]
fn a_launcher_that_fails_is_a_failed_start_with_its_status() {
    let env = Env::new("forking-fail");
    let out = start_sh(&env, &[], "echo no config >&2; exit 3");
    let said = text(&out);
    assert!(!out.status.success(), "{said}");
    assert!(
        said.contains("exited with status 3 before it was ready"),
        "{said}"
    );
}

/// A port nobody listens on right now (bound on :0 and let go).
fn free_port() -> u16 {
    TcpListener::bind("127.0.0.1:0")
        .unwrap()
        .local_addr()
        .unwrap()
        .port()
}

/// The body of `GET /` on 127.0.0.1:`port`, or the error a client sees.
fn get(port: u16) -> std::io::Result<String> {
    let mut c = TcpStream::connect(("127.0.0.1", port))?;
    c.set_read_timeout(Some(SOON))?;
    write!(c, "GET / HTTP/1.0\r\nHost: test\r\n\r\n")?;
    let mut body = String::new();
    c.read_to_string(&mut body)?;
    Ok(body)
}

/// nginx's worker processes: the children of `master`.
fn workers(master: Pid) -> Vec<Pid> {
    let path = format!("/proc/{master}/task/{master}/children");
    std::fs::read_to_string(path)
        .unwrap_or_default()
        .split_whitespace()
        .filter_map(|p| p.parse().ok())
        .map(Pid::from_raw)
        .collect()
}

/// Every nginx process whose command line names `conf` (none must outlive a stop).
fn nginx_of(conf: &Path) -> Vec<Pid> {
    daemons_of(conf)
}

#[test]
fn nginx_in_its_daemonizing_mode_is_ready_reloaded_restarted_and_stopped() {
    nginx_in("subreaper");
}

#[test]
fn nginx_in_its_daemonizing_mode_in_a_cgroup() {
    if env::containment::cgroups("nginx_in_its_daemonizing_mode_in_a_cgroup") {
        nginx_in("cgroup");
    }
}

/// nginx with `daemon on`, its own pid file, supervised in `containment`.
fn nginx_in(containment: &str) {
    let nginx = "/usr/sbin/nginx";
    if !Path::new(nginx).exists() {
        eprintln!("skipped nginx_in_its_daemonizing_mode…: {nginx} is not installed");
        return;
    }
    let env = Env::new(&format!("forking-nginx-{containment}"));
    let prefix = env.dir.join("nginx");
    std::fs::create_dir_all(prefix.join("html")).unwrap();
    std::fs::write(prefix.join("html/index.html"), "hello from nginx\n").unwrap();
    let port = free_port();
    let pidfile = prefix.join("nginx.pid");
    // `daemon on` is nginx's default: the master forks, the parent exits 0.
    let user = if nix::unistd::geteuid().is_root() {
        "user root;\n"
    } else {
        ""
    };
    let conf = prefix.join("nginx.conf");
    std::fs::write(
        &conf,
        format!(
            "{user}worker_processes 2;\npid {pid};\nerror_log {p}/error.log info;\n\
             events {{ worker_connections 64; }}\n\
             http {{\n  access_log {p}/access.log;\n  client_body_temp_path {p}/tmp;\n\
             proxy_temp_path {p}/tmp;\n  fastcgi_temp_path {p}/tmp;\n  uwsgi_temp_path {p}/tmp;\n\
             scgi_temp_path {p}/tmp;\n\
             server {{ listen 127.0.0.1:{port}; root {p}/html; }}\n}}\n",
            pid = pidfile.display(),
            p = prefix.display()
        ),
    )
    .unwrap();
    let ready = format!("forking:{}", pidfile.display());
    let (conf_s, prefix_s) = (conf.display().to_string(), prefix.display().to_string());
    let out = run(env.cmd().env("DAEMONIC_CONTAINMENT", containment).args([
        "start", "--name", "web", "--ready", &ready, "--", nginx, "-c", &conf_s, "-p", &prefix_s,
    ]));
    let said = text(&out);
    let cleanup: Vec<KillOnDrop> = nginx_of(&conf).into_iter().map(KillOnDrop::new).collect();
    assert!(out.status.success(), "{said}");
    let master = pid_in(&pidfile).expect("nginx's pid file");
    assert!(
        said.contains(&format!("web: ready (pid {master})")),
        "{said}"
    );
    assert_eq!(env.child_pid("web"), master);
    let body = wait_for("nginx to serve", SOON, || get(port).ok());
    assert!(body.contains("hello from nginx"), "{body}");

    // reload (SIGHUP): new workers, the same master, still serving.
    let before = wait_for("nginx's workers", SOON, || {
        Some(workers(master)).filter(|w| w.len() == 2)
    });
    let out = env.daemonic(&["reload", "web"]);
    assert!(out.status.success(), "{}", text(&out));
    wait_for("new workers", SOON, || {
        let now = workers(master);
        (now.len() == 2 && now.iter().all(|w| !before.contains(w))).then_some(())
    });
    assert_eq!(env.child_pid("web"), master);
    assert!(get(port).unwrap().contains("hello from nginx"));
    let error_log = std::fs::read_to_string(prefix.join("error.log")).unwrap();
    assert!(error_log.contains("reconfiguring"), "{error_log}");

    // kill -9 of the master: restarted with a new master, serving again.
    nix::sys::signal::kill(master, nix::sys::signal::Signal::SIGKILL).unwrap();
    let again = wait_for("a new nginx master", SOON, || {
        pid_in(&pidfile)
            .filter(|&p| p != master && alive(p))
            .filter(|&p| env.child_pid("web") == p)
    });
    let _cleanup2: Vec<KillOnDrop> = nginx_of(&conf).into_iter().map(KillOnDrop::new).collect();
    wait_for("the new nginx to serve", SOON, || get(port).ok());
    // The old master's workers did not survive it.
    for w in &before {
        assert!(!alive(*w), "worker {w} of the killed master is still there");
    }

    // logs: the supervisor's own lines about the daemon it took over.
    let logs = text(&env.daemonic(&["logs", "web", "-n", "100"]));
    assert!(
        logs.contains(&format!("forked: main process pid {master}")),
        "{logs}"
    );
    assert!(
        logs.contains(&format!("forked: main process pid {again}")),
        "{logs}"
    );

    // stop: no nginx process is left.
    let out = env.daemonic(&["stop", "web"]);
    assert!(out.status.success(), "{}", text(&out));
    wait_for(
        "every nginx process to be gone",
        Duration::from_secs(5),
        || nginx_of(&conf).is_empty().then_some(()),
    );
    assert!(get(port).is_err(), "nginx still serves after its stop");
    drop(cleanup);
}
