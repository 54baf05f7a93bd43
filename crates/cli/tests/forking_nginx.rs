//! nginx in its default daemonizing mode (`daemon on`), with its own pid file, as a
//! `ready = "forking:PIDFILE"` service (the supervisor takes the master over): ready with
//! the master's pid, reloaded (new workers, the same master, still serving), restarted
//! after `kill -9` of the master, stopped with no nginx process left — in subreaper and
//! cgroup containment; and as a generated `Type=forking` unit under a real systemd (the
//! sandbox). Skipped where `/usr/sbin/nginx` is missing (or the sandbox cannot boot).
//! The pg_ctl-style cases are `forking.rs`.

use daemonic_test_support as support;

mod env;

use std::io::{Read as _, Write as _};
use std::net::TcpStream;
use std::path::Path;
use std::time::Duration;

use daemonic::Pid;
use env::daemons::{self, free_port, pid_in};
use env::{Env, text};
use support::*;

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

/// nginx clears its environment, so the sentinel's marker misses it: in subreaper mode
/// the tree mark (a resource limit nginx inherits) is what ends master and workers when
/// the supervisor is SIGKILLed.
#[test]
fn nginx_outlives_no_sigkilled_supervisor_in_subreaper_mode() {
    if !Path::new(NGINX).exists() {
        eprintln!("skipped nginx_outlives_no_sigkilled_supervisor…: {NGINX} is not installed");
        return;
    }
    let nginx = Nginx::new("subreaper-kill9");
    let out = nginx.start("subreaper");
    let _cleanup = nginx.guards();
    assert!(out.status.success(), "{}", text(&out));
    let master = pid_in(&nginx.pid_file()).expect("nginx's pid file");
    let workers = wait_for("nginx's workers", SOON, || {
        Some(workers(master)).filter(|w| w.len() == 2)
    });
    // Held (with the supervisor and its sentinel, whose command lines name the config
    // too) so that the test kills them however it ends.
    let _cleanup = nginx.guards();
    let supervisor = nginx.env.supervisor_pid("web");
    nix::sys::signal::kill(supervisor, nix::sys::signal::Signal::SIGKILL).unwrap();
    wait_for(
        "nginx's master and workers to be gone",
        Duration::from_secs(5),
        || (!alive(master) && !workers.iter().any(|&w| alive(w))).then_some(()),
    );
}

/// An nginx.conf: `workers` worker processes listening on 127.0.0.1:`port` serving
/// `root`; its pid file, logs and temporary files in `dir`; `extra` first (`user root;`).
/// `daemon on`, nginx's default: the master forks, the parent exits 0.
fn nginx_conf(extra: &str, workers: u32, dir: &str, root: &str, port: u16) -> String {
    format!(
        "{extra}worker_processes {workers};\npid {dir}/nginx.pid;\nerror_log {dir}/error.log info;\n\
         events {{ worker_connections 64; }}\n\
         http {{\n  access_log {dir}/access.log;\n  client_body_temp_path {dir};\n\
         proxy_temp_path {dir};\n  fastcgi_temp_path {dir};\n  uwsgi_temp_path {dir};\n\
         scgi_temp_path {dir};\n\
         server {{ listen 127.0.0.1:{port}; root {root}; }}\n}}\n"
    )
}

/// nginx under `daemonic start` in a test's directory.
struct Nginx {
    env: Env,
    prefix: std::path::PathBuf,
    conf: std::path::PathBuf,
    port: u16,
}

impl Nginx {
    /// Its prefix, config and page; not started.
    fn new(containment: &str) -> Nginx {
        let env = Env::new(&format!("forking-nginx-{containment}"));
        let prefix = env.dir.join("nginx");
        std::fs::create_dir_all(prefix.join("html")).unwrap();
        std::fs::write(prefix.join("html/index.html"), "hello from nginx\n").unwrap();
        let port = free_port();
        let root = nix::unistd::geteuid().is_root();
        let p = prefix.display().to_string();
        let conf = prefix.join("nginx.conf");
        let user = if root { "user root;\n" } else { "" };
        std::fs::write(&conf, nginx_conf(user, 2, &p, &format!("{p}/html"), port)).unwrap();
        Nginx {
            env,
            prefix,
            conf,
            port,
        }
    }

    fn pid_file(&self) -> std::path::PathBuf {
        self.prefix.join("nginx.pid")
    }

    /// `daemonic start --ready forking:PIDFILE -- nginx …` in `containment`.
    fn start(&self, containment: &str) -> std::process::Output {
        let ready = format!("forking:{}", self.pid_file().display());
        let conf = self.conf.display().to_string();
        let prefix = self.prefix.display().to_string();
        run(self
            .env
            .cmd()
            .env("DAEMONIC_CONTAINMENT", containment)
            .args([
                "start", "--name", "web", "--ready", &ready, "--", NGINX, "-c", &conf, "-p",
                &prefix,
            ]))
    }

    /// Guards on every process of this config now: what names it on its command line
    /// (nginx's master; daemonic's supervisor and sentinel, started with it) and their
    /// children (nginx's workers, whose titles do not name it).
    fn guards(&self) -> Vec<KillOnDrop> {
        let masters = daemons::naming(&self.conf);
        let mut all: Vec<Pid> = masters.iter().flat_map(|&m| workers(m)).collect();
        all.extend(masters);
        // A worker not yet retitled names the config too.
        all.sort_unstable_by_key(|p| p.as_raw());
        all.dedup();
        all.into_iter().map(KillOnDrop::new).collect()
    }

    /// `daemonic reload web`: new workers, the same master, still serving.
    fn check_reload(&self, master: Pid) {
        let before = wait_for("nginx's workers", SOON, || {
            Some(workers(master)).filter(|w| w.len() == 2)
        });
        let out = self.env.daemonic(&["reload", "web"]);
        assert!(out.status.success(), "{}", text(&out));
        wait_for("new workers", SOON, || {
            let now = workers(master);
            (now.len() == 2 && now.iter().all(|w| !before.contains(w))).then_some(())
        });
        assert_eq!(self.env.child_pid("web"), master);
        assert!(get(self.port).unwrap().contains("hello from nginx"));
        let error_log = std::fs::read_to_string(self.prefix.join("error.log")).unwrap();
        assert!(error_log.contains("reconfiguring"), "{error_log}");
    }

    /// `kill -9` of the master: a new master, supervised and serving, its old workers
    /// gone; the new master's pid.
    fn check_kill_9(&self, master: Pid) -> Pid {
        let before = workers(master);
        nix::sys::signal::kill(master, nix::sys::signal::Signal::SIGKILL).unwrap();
        let again = wait_for("a new nginx master", SOON, || {
            pid_in(&self.pid_file())
                .filter(|&p| p != master && alive(p))
                .filter(|&p| self.env.child_pid("web") == p)
        });
        wait_for("the new nginx to serve", SOON, || get(self.port).ok());
        for w in &before {
            assert!(!alive(*w), "worker {w} of the killed master is still there");
        }
        again
    }
}

/// Where nginx is installed (Debian's package).
const NGINX: &str = "/usr/sbin/nginx";

/// nginx with `daemon on`, its own pid file, supervised in `containment`.
fn nginx_in(containment: &str) {
    if !Path::new(NGINX).exists() {
        eprintln!("skipped nginx_in_its_daemonizing_mode…: {NGINX} is not installed");
        return;
    }
    let nginx = Nginx::new(containment);
    let out = nginx.start(containment);
    let said = text(&out);
    let cleanup = nginx.guards();
    assert!(out.status.success(), "{said}");
    let master = pid_in(&nginx.pid_file()).expect("nginx's pid file");
    assert!(
        said.contains(&format!("web: ready (pid {master})")),
        "{said}"
    );
    assert_eq!(nginx.env.child_pid("web"), master);
    let body = wait_for("nginx to serve", SOON, || get(nginx.port).ok());
    assert!(body.contains("hello from nginx"), "{body}");

    nginx.check_reload(master);
    let again = nginx.check_kill_9(master);
    let _cleanup2 = nginx.guards();

    // logs: the supervisor's own lines about the daemon it took over.
    let logs = text(&nginx.env.daemonic(&["logs", "web", "-n", "100"]));
    for pid in [master, again] {
        let line = format!("forked: main process pid {pid}");
        assert!(logs.contains(&line), "{logs}");
    }

    // stop: no nginx process is left.
    let out = nginx.env.daemonic(&["stop", "web"]);
    assert!(out.status.success(), "{}", text(&out));
    wait_for(
        "every nginx process to be gone",
        Duration::from_secs(5),
        || daemons::naming(&nginx.conf).is_empty().then_some(()),
    );
    assert!(
        get(nginx.port).is_err(),
        "nginx still serves after its stop"
    );
    drop(cleanup);
}

/// Inside the systemd sandbox: the staged binaries, nginx's config and its page.
const STAGE: &str = "/run/e2e";

/// Stages daemonic, nginx's config and page and a config file for `web` (nginx as the
/// unit's dynamic user: everything it writes is below its RuntimeDirectory) into `sb`.
fn stage_nginx(sb: &support::sandbox::Sandbox, port: u16) {
    let host = support::TempDir::new("forking-e2e");
    let conf = host.join("nginx.conf");
    std::fs::write(&conf, nginx_conf("", 1, "/run/web", STAGE, port)).unwrap();
    let page = host.join("index.html");
    std::fs::write(&page, "hello from nginx under systemd\n").unwrap();
    let config = format!(
        "[services.web]\ncommand = [{NGINX:?}, \"-c\", \"{STAGE}/nginx.conf\", \"-p\", \"/run/web\", \
         \"-e\", \"/run/web/error.log\"]\nready = \"forking:/run/web/nginx.pid\"\n\
         unit-runtime-directory = [\"web\"]\n"
    );
    let daemonic = Path::new(env!("CARGO_BIN_EXE_daemonic"));
    sb.stage(STAGE, &[daemonic, &conf, &page], &config);
}

#[test]
fn a_generated_type_forking_unit_runs_nginx_under_a_real_systemd() {
    use support::sandbox::Sandbox;
    if !Path::new(NGINX).exists() {
        eprintln!("skipped a_generated_type_forking_unit…: {NGINX} is not installed");
        return;
    }
    let Some(sb) = Sandbox::boot() else { return };
    let port = free_port();
    stage_nginx(&sb, port);
    let cfg = format!("{STAGE}/daemonic.toml");
    let d = format!("{STAGE}/daemonic");
    sb.ok(&[&d, "install", "web", "-f", &cfg]);
    let unit = "web.service";
    let text_of = sb.ok(&["cat", "/etc/systemd/system/web.service"]);
    assert!(text_of.contains("Type=forking\n"), "{text_of}");
    assert!(
        text_of.contains("PIDFile=/run/web/nginx.pid\n"),
        "{text_of}"
    );

    // Type=forking: `systemctl start` returns once the parent has exited and the pid file
    // names the master.
    sb.ok(&["systemctl", "start", unit]);
    assert_eq!(
        sb.show(unit, "ActiveState"),
        "active",
        "{}",
        sb.journal(unit)
    );
    let master = sb.show(unit, "MainPID");
    assert_eq!(sb.ok(&["cat", "/run/web/nginx.pid"]).trim(), master);
    let get = format!(
        "import urllib.request; print(urllib.request.urlopen('http://127.0.0.1:{port}/').read().decode())"
    );
    let served = || sb.exec(&["/usr/bin/python3", "-c", &get]);
    let body = text(&served());
    assert!(body.contains("hello from nginx under systemd"), "{body}");

    // Reload: ExecReload's SIGHUP to $MAINPID; the same master.
    sb.ok(&["systemctl", "reload", unit]);
    wait_for("nginx to reconfigure", SOON, || {
        sb.ok(&["cat", "/run/web/error.log"])
            .contains("reconfiguring")
            .then_some(())
    });
    assert_eq!(sb.show(unit, "MainPID"), master, "reloaded, not restarted");

    // kill -9 of the master: systemd restarts it (Restart=on-failure), a new MainPID.
    sb.ok(&["kill", "-9", &master]);
    let again = sb.wait_property(unit, "MainPID", Duration::from_secs(20), |p| {
        p != master && p != "0"
    });
    sb.wait_property(unit, "ActiveState", Duration::from_secs(20), |s| {
        s == "active"
    });
    assert_eq!(sb.show(unit, "NRestarts"), "1");
    assert_eq!(sb.ok(&["cat", "/run/web/nginx.pid"]).trim(), again);

    sb.ok(&["systemctl", "stop", unit]);
    assert_eq!(sb.show(unit, "ActiveState"), "inactive");
    let left = sb.exec(&["pgrep", "-x", "nginx"]);
    assert!(!left.status.success(), "nginx left: {}", text(&left));
    assert!(
        !served().status.success(),
        "nginx still serves after the stop"
    );
}
