//! Generated units for real programs in real places, under a real systemd (252 on
//! Debian 12) booted by the daemonic crate's `tests/systemd-sandbox.sh`: a project in
//! `/tmp` (hidden by `PrivateTmp=`) and one in `/root` (hidden by `ProtectHome=`), each
//! with a shell script that notifies through `systemd-notify` as a system user, redis writing
//! its data and log, `python3 -m http.server`, a node and a Java HTTP server and
//! PostgreSQL 15 running a JIT-compiled query. Each is installed with the default (strict)
//! hardening by the project's own copy of `daemonic`, becomes active, passes `systemctl
//! reload` and a clean stop; its unit passes `systemd-analyze verify`, and its exposure
//! is printed. A program that is not installed is skipped with the reason.
//!
//! The sandbox has its own network namespace, so the fixed ports below meet nothing else.

use daemonic_test_support as support;

use std::os::unix::fs::PermissionsExt;
use std::path::{Path, PathBuf};
use std::process::Command;
use std::time::Duration;

use support::sandbox::Sandbox;
use support::{stderr, stdout};

/// Java compiles its source at start and PostgreSQL initializes: generous, not fixed.
const LIMIT: Duration = Duration::from_secs(60);
const POSTGRES: &str = "/usr/lib/postgresql/15/bin";
/// A system user made inside the sandbox (its /etc is an overlay): systemd calls
/// `User=nobody` unsafe, rightly.
const USER: &str = "daemonic-e2e";

/// A project directory below `base` (`/tmp`, `/root`), removed when dropped.
struct Project(PathBuf);

impl Project {
    fn new(base: &str) -> Project {
        let dir = Path::new(base).join(format!("daemonic-e2e-programs-{}", std::process::id()));
        let _ = std::fs::remove_dir_all(&dir);
        std::fs::create_dir_all(dir.join("bin")).unwrap();
        // Others may traverse and read: the dynamic users of the units are "others".
        for d in [&dir, &dir.join("bin")] {
            std::fs::set_permissions(d, std::fs::Permissions::from_mode(0o755)).unwrap();
        }
        Project(dir)
    }

    fn write(&self, name: &str, body: &str, mode: u32) -> PathBuf {
        let path = self.0.join(name);
        std::fs::write(&path, body).unwrap();
        std::fs::set_permissions(&path, std::fs::Permissions::from_mode(mode)).unwrap();
        path
    }
}

impl Drop for Project {
    fn drop(&mut self) {
        let _ = std::fs::remove_dir_all(&self.0);
    }
}

/// One program: its service table, the files it needs, and what shows it works.
struct Case {
    name: String,
    /// Why it is skipped (a program not installed), if it is.
    missing: Option<String>,
    table: String,
    /// Run inside the sandbox once the unit is active; must succeed.
    checks: Vec<Vec<String>>,
}

fn found(program: &str) -> Option<String> {
    let out = Command::new("sh")
        .args(["-c", &format!("command -v {program}")])
        .output()
        .ok()?;
    let path = stdout(&out).trim().to_string();
    (out.status.success() && !path.is_empty()).then_some(path)
}

fn missing(program: &str) -> Option<String> {
    found(program)
        .is_none()
        .then(|| format!("{program} is not installed"))
}

/// `bash -c` that GETs http://127.0.0.1:PORT/ and expects `want` in the answer.
fn http_get(port: u16, want: &str) -> Vec<String> {
    let script = format!(
        "exec 3<>/dev/tcp/127.0.0.1/{port} && printf 'GET / HTTP/1.0\\r\\nHost: x\\r\\n\\r\\n' >&3 && \
         grep -q {want:?} <&3"
    );
    vec!["bash".into(), "-c".into(), script]
}

fn words(w: &[&str]) -> Vec<String> {
    w.iter().map(|s| s.to_string()).collect()
}

/// The programs of a project at `p`; `tag` keeps names and ports apart, `base` the port.
fn cases(p: &Project, tag: &str, base: u16) -> Vec<Case> {
    let dir = p.0.display().to_string();
    let mut out = Vec::new();

    let script = p.write(
        "notify.sh",
        "#!/bin/sh\n# A helper process (systemd-notify) reports readiness.\ntrap 'echo reloaded' HUP\ntrap 'exit 0' TERM\n\
         systemd-notify --ready --status=serving\nwhile :; do sleep 1 & wait $!; done\n",
        0o755,
    );
    out.push(Case {
        name: format!("{tag}-notify"),
        missing: missing("systemd-notify"),
        table: format!(
            "command = [{:?}]\nready = \"notify\"\nuser = \"{USER}\"\n",
            script.display()
        ),
        checks: vec![],
    });

    let redis = format!("{tag}-redis");
    let port = base + 1;
    out.push(Case {
        name: redis.clone(),
        missing: missing("redis-server"),
        table: format!(
            "command = [\"redis-server\", \"--port\", \"{port}\", \"--bind\", \"127.0.0.1\", \"--supervised\", \"systemd\", \
             \"--daemonize\", \"no\", \"--dir\", \"/var/lib/{redis}-data\", \"--logfile\", \"/var/log/{redis}/redis.log\"]\n\
             ready = \"notify\"\nnotify-access = \"main\"\nunit-state-directory = [\"{redis}-data\"]\nunit-logs-directory = [\"{redis}\"]\n\
             unit-limit-nofile = \"10032\"\n"
        ),
        checks: vec![
            words(&["redis-cli", "-p", &port.to_string(), "set", "k", "v"]),
            words(&["redis-cli", "-p", &port.to_string(), "save"]),
            words(&["test", "-s", &format!("/var/lib/{redis}-data/dump.rdb")]),
            words(&["test", "-s", &format!("/var/log/{redis}/redis.log")]),
        ],
    });

    let port = base + 2;
    // The python3 of this PATH, as a user's shell finds it: here a pyenv shim in /root.
    let python = found("python3").unwrap_or_else(|| "python3".into());
    out.push(Case {
        name: format!("{tag}-python"),
        missing: missing("python3"),
        table: format!(
            "command = [{python:?}, \"-m\", \"http.server\", \"{port}\", \"--bind\", \"127.0.0.1\"]\n\
             ready = \"http://127.0.0.1:{port}/\"\nreload-signal = \"WINCH\"\n"
        ),
        checks: vec![http_get(port, "notify.sh")],
    });

    let port = base + 3;
    p.write(
        "server.js",
        "const http = require('http');\nprocess.on('SIGHUP', () => console.log('reloaded'));\n\
         http.createServer((q, r) => r.end('node ok\\n')).listen(+process.argv[2], '127.0.0.1');\n",
        0o644,
    );
    out.push(Case {
        name: format!("{tag}-node"),
        missing: missing("node"),
        table: format!(
            "command = [\"node\", \"{dir}/server.js\", \"{port}\"]\nready = \"http://127.0.0.1:{port}/\"\n"
        ),
        checks: vec![http_get(port, "node ok")],
    });

    let port = base + 4;
    p.write(
        "Server.java",
        "import com.sun.net.httpserver.HttpServer;\nimport java.net.InetSocketAddress;\n\
         public class Server {\n  public static void main(String[] a) throws Exception {\n\
         HttpServer s = HttpServer.create(new InetSocketAddress(\"127.0.0.1\", Integer.parseInt(a[0])), 0);\n\
         s.createContext(\"/\", x -> { byte[] b = \"java ok\\n\".getBytes(); x.sendResponseHeaders(200, b.length);\n\
         x.getResponseBody().write(b); x.close(); });\n    s.start();\n  }\n}\n",
        0o644,
    );
    out.push(Case {
        name: format!("{tag}-java"),
        missing: missing("java"),
        table: format!(
            "command = [\"java\", \"{dir}/Server.java\", \"{port}\"]\nready = \"http://127.0.0.1:{port}/\"\n\
             reload-signal = \"WINCH\"\ntimeout = \"60s\"\n"
        ),
        checks: vec![http_get(port, "java ok")],
    });

    let port = base + 5;
    let pg = format!("{tag}-pg");
    let psql = format!("{POSTGRES}/psql");
    let query = "SET jit_above_cost = 0; SET jit_inline_above_cost = 0; SET jit_optimize_above_cost = 0; \
                 EXPLAIN ANALYZE SELECT sum(x * 2) FROM generate_series(1, 10000) x";
    out.push(Case {
        name: pg.clone(),
        missing: (!Path::new(&format!("{POSTGRES}/postgres")).exists()
            || found("runuser").is_none())
        .then(|| format!("PostgreSQL 15 is not installed ({POSTGRES}/postgres)")),
        table: format!(
            "command = [\"{POSTGRES}/postgres\", \"-D\", \"{dir}/pgdata\", \"-p\", \"{port}\", \"-k\", \"/run/{pg}\", \
             \"-c\", \"listen_addresses=127.0.0.1\", \"-c\", \"jit=on\"]\nready = \"notify\"\nnotify-access = \"main\"\nuser = \"postgres\"\n\
             unit-writable = [\"pgdata\"]\nunit-runtime-directory = [\"{pg}\"]\nstop-signal = \"INT\"\ntimeout = \"90s\"\n\
             stop-timeout = \"60s\"\n"
        ),
        checks: vec![
            // JIT-compiled: the plan says so, and no "error during JITing".
            vec![
                "sh".into(),
                "-c".into(),
                format!(
                    "plan=$({psql} -X -h 127.0.0.1 -p {port} -U postgres -d postgres -c {query:?} 2>&1); \
                     echo \"$plan\"; echo \"$plan\" | grep -q 'JIT:' && ! echo \"$plan\" | grep -q 'error during JIT'"
                ),
            ],
        ],
    });
    out
}

/// `initdb` into `project/pgdata` owned by postgres: made in a scratch directory every
/// user may traverse (not in `/root`), then copied with its owner.
fn init_postgres(project: &Project) -> bool {
    let scratch = support::TempDir::new("e2e-initdb");
    std::fs::set_permissions(scratch.path(), std::fs::Permissions::from_mode(0o777)).unwrap();
    let data = scratch.join("pgdata");
    let out = Command::new("runuser")
        .args([
            "-u",
            "postgres",
            "--",
            &format!("{POSTGRES}/initdb"),
            "-A",
            "trust",
            "-U",
            "postgres",
            "-D",
        ])
        .arg(&data)
        .output()
        .expect("run initdb");
    assert!(
        out.status.success(),
        "initdb: {}{}",
        stdout(&out),
        stderr(&out)
    );
    let out = Command::new("cp")
        .arg("-a")
        .arg(&data)
        .arg(project.0.join("pgdata"))
        .output()
        .unwrap();
    assert!(out.status.success(), "cp pgdata: {}", stderr(&out));
    true
}

fn inside(sb: &Sandbox, args: &[String]) -> std::process::Output {
    let args: Vec<&str> = args.iter().map(String::as_str).collect();
    sb.exec(&args)
}

/// Installs, starts, checks, reloads and stops one case; verifies its unit on the host.
fn run_case(sb: &Sandbox, project: &Project, config: &Path, case: &Case) {
    let daemonic = project.0.join("bin/daemonic").display().to_string();
    let file = config.display().to_string();
    let unit = format!("{}.service", case.name);
    let out = sb.exec(&[&daemonic, "install", &case.name, "-f", &file]);
    assert!(
        out.status.success(),
        "install {}: {}{}",
        case.name,
        stdout(&out),
        stderr(&out)
    );
    let body = stdout(&sb.exec(&["cat", &format!("/etc/systemd/system/{unit}")]));
    verify_and_rate(project, &unit, &body);

    sb.systemctl(&["start", "--no-block", &unit]);
    let state = sb.wait_property(&unit, "ActiveState", LIMIT, |s| {
        s == "active" || s == "failed"
    });
    assert_eq!(state, "active", "{unit}:\n{body}\n{}", sb.journal(&unit));
    for check in &case.checks {
        let out = inside(sb, check);
        assert!(
            out.status.success(),
            "{unit}: {check:?} failed: {}{}\n{}",
            stdout(&out),
            stderr(&out),
            sb.journal(&unit)
        );
    }
    let main = sb.show(&unit, "MainPID");
    sb.systemctl(&["reload", &unit]);
    assert_eq!(
        sb.show(&unit, "ActiveState"),
        "active",
        "{}",
        sb.journal(&unit)
    );
    assert_eq!(
        sb.show(&unit, "MainPID"),
        main,
        "{unit} reloaded, not restarted"
    );
    sb.systemctl(&["stop", &unit]);
    assert_eq!(sb.show(&unit, "Result"), "success", "{}", sb.journal(&unit));
    let out = sb.exec(&[&daemonic, "uninstall", &case.name, "-f", &file]);
    assert!(out.status.success(), "uninstall {unit}: {}", stderr(&out));
    eprintln!("{unit}: active, reloaded, stopped cleanly");
}

/// `systemd-analyze verify` says nothing; the exposure is printed.
fn verify_and_rate(project: &Project, unit: &str, body: &str) {
    let dir = project.0.join("verify");
    std::fs::create_dir_all(&dir).unwrap();
    let path = dir.join(unit);
    std::fs::write(&path, body).unwrap();
    let out = Command::new("systemd-analyze")
        .arg("verify")
        .arg(&path)
        .output()
        .unwrap();
    let said = format!("{}{}", stdout(&out), stderr(&out));
    assert!(
        out.status.success() && said.trim().is_empty(),
        "verify {unit}: {said}\n{body}"
    );
    let out = Command::new("systemd-analyze")
        .args(["security", "--offline=true", "--no-pager"])
        .arg(&path)
        .output()
        .unwrap();
    let report = stdout(&out);
    let overall = report
        .lines()
        .find(|l| l.contains("Overall exposure level"))
        .unwrap_or("no exposure level");
    eprintln!(
        "{unit}: systemd-analyze verify clean; {}",
        overall.trim_start_matches("→ ")
    );
}

fn programs_in(base: &str, tag: &str, port: u16) {
    if !nix::unistd::geteuid().is_root() {
        eprintln!("skipped: needs root (a system manager, a project in {base})");
        return;
    }
    if found("systemd-analyze").is_none() {
        eprintln!("skipped: systemd-analyze not found (install the systemd package)");
        return;
    }
    let project = Project::new(base);
    std::fs::copy(
        env!("CARGO_BIN_EXE_daemonic"),
        project.0.join("bin/daemonic"),
    )
    .unwrap();
    let all = cases(&project, tag, port);
    let mut config = String::new();
    let mut run = Vec::new();
    for case in all {
        if let Some(why) = &case.missing {
            eprintln!("skipping {}: {why}", case.name);
            continue;
        }
        if case.name.ends_with("-pg") && !init_postgres(&project) {
            continue;
        }
        config.push_str(&format!("[services.{}]\n{}\n", case.name, case.table));
        run.push(case);
    }
    let file = project.write("daemonic.toml", &config, 0o644);
    let Some(sb) = Sandbox::boot() else { return };
    let out = sb.exec(&[
        "useradd",
        "--system",
        "--no-create-home",
        "--shell",
        "/usr/sbin/nologin",
        USER,
    ]);
    assert!(out.status.success(), "useradd: {}", stderr(&out));
    for case in &run {
        run_case(&sb, &project, &file, case);
    }
}

#[test]
fn real_programs_in_a_tmp_project_start_reload_and_stop_under_strict_units() {
    programs_in("/tmp", "tmp", 7100);
}

#[test]
fn real_programs_in_a_root_project_start_reload_and_stop_under_strict_units() {
    programs_in("/root", "root", 7200);
}
