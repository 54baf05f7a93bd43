//! Generated units end to end under a real systemd (252 on Debian 12), booted in Linux
//! namespaces for each test by the daemonic crate's `tests/systemd-sandbox.sh`:
//! `daemonic install` run inside the sandbox writes a system unit, which systemd starts
//! (active only once ready), reloads, restarts on a missed watchdog, stops; `uninstall`
//! removes it. The `daemonic run` variant reports readiness from an HTTP probe, restarts
//! its program on a failing health check and pings systemd's watchdog. Each test skips
//! with a reason where a sandbox cannot boot (not root, no systemd, no namespaces); the
//! sandbox is powered off, and everything in it ended, even when a test fails.
//!
//! The units run with the default (strict) hardening. The binaries are copied into the
//! sandbox's own /run (a tmpfs that disappears with it) and the units point there;
//! projects in /tmp and /root, which the sandbox binds in, are `systemd_programs.rs`.

use daemonic_test_support as support;

use std::path::Path;
use std::process::Output;
use std::time::Duration;

use support::sandbox::Sandbox;
use support::{example, stderr, stdout, wait_for};

const LIMIT: Duration = Duration::from_secs(20);
/// Inside the sandbox: the binaries, the config file and the fixtures' go files.
const STAGE: &str = "/run/e2e";
const CONFIG: &str = "/run/e2e/daemonic.toml";

/// A booted sandbox with daemonic, the fixtures and `config` staged in `/run/e2e`.
fn stage(config: &str) -> Option<Sandbox> {
    let sb = Sandbox::boot()?;
    sb.stage(
        STAGE,
        &[
            Path::new(env!("CARGO_BIN_EXE_daemonic")),
            &example("unit-demo"),
            &example("watchdog-pinger"),
        ],
        config,
    );
    Some(sb)
}

/// `daemonic ARGS -f CONFIG` inside the sandbox.
fn daemonic(sb: &Sandbox, args: &[&str]) -> Output {
    let mut all = vec!["/run/e2e/daemonic"];
    all.extend(args);
    all.extend(["-f", CONFIG]);
    sb.exec(&all)
}

fn daemonic_ok(sb: &Sandbox, args: &[&str]) -> String {
    let out = daemonic(sb, args);
    assert!(
        out.status.success(),
        "daemonic {args:?} failed: {}{}",
        stdout(&out),
        stderr(&out)
    );
    stdout(&out)
}

/// A line of `/proc/PID/status` inside the sandbox (`Uid`, `Name`…).
fn proc_status(sb: &Sandbox, pid: &str, field: &str) -> String {
    let status = sb.ok(&["cat", &format!("/proc/{pid}/status")]);
    status
        .lines()
        .find_map(|l| l.strip_prefix(&format!("{field}:")))
        .unwrap_or_else(|| panic!("no {field} in {status}"))
        .trim()
        .to_string()
}

#[test]
fn a_notify_service_installs_starts_when_ready_reloads_stops_and_uninstalls() {
    let config = format!(
        "[services.demo]\ncommand = [\"{STAGE}/unit-demo\", \"notify\", \"{STAGE}/go\"]\nready = \"notify\"\nrestart = \"on-failure\"\n"
    );
    let Some(sb) = stage(&config) else {
        return;
    };
    let unit = "demo.service";
    assert_eq!(
        daemonic_ok(&sb, &["install", "demo"]),
        "installed: /etc/systemd/system/demo.service\n"
    );
    assert_eq!(
        daemonic_ok(&sb, &["install", "demo"]),
        "unchanged: /etc/systemd/system/demo.service\n",
        "installing again changes nothing"
    );

    // Type=notify: activating until the program says READY=1.
    sb.ok(&["systemctl", "start", "--no-block", unit]);
    let waiting = format!("waiting for {STAGE}/go");
    sb.wait_property(unit, "StatusText", LIMIT, |s| s == waiting);
    assert_eq!(
        sb.is_active(unit),
        "activating",
        "not active before READY=1"
    );
    sb.ok(&["touch", &format!("{STAGE}/go")]);
    sb.wait_property(unit, "ActiveState", LIMIT, |s| s == "active");
    assert_eq!(sb.show(unit, "StatusText"), "ready (reloads: 0)");
    // The default sandboxing is in force: a dynamic user, not root.
    let pid = sb.show(unit, "MainPID");
    let uid = proc_status(&sb, &pid, "Uid");
    assert!(!uid.starts_with("0\t"), "runs as root: Uid {uid}");

    // Reload: ExecReload sends SIGHUP; the program reloads in place.
    sb.ok(&["systemctl", "reload", unit]);
    sb.wait_property(unit, "StatusText", LIMIT, |s| s == "ready (reloads: 1)");
    assert_eq!(sb.show(unit, "ActiveState"), "active");
    assert_eq!(sb.show(unit, "MainPID"), pid, "reloaded, not restarted");

    sb.ok(&["systemctl", "stop", unit]);
    assert_eq!(sb.show(unit, "ActiveState"), "inactive");
    assert_eq!(sb.show(unit, "Result"), "success");

    assert_eq!(
        daemonic_ok(&sb, &["uninstall", "demo"]),
        "stopped and disabled: demo.service\nremoved: /etc/systemd/system/demo.service\n"
    );
    assert_eq!(sb.show(unit, "LoadState"), "not-found");
    assert_eq!(
        daemonic_ok(&sb, &["uninstall", "demo"]),
        "not installed: /etc/systemd/system/demo.service (nothing to do)\n"
    );
}

#[test]
fn a_service_that_stops_pinging_its_watchdog_is_restarted_by_systemd() {
    // Four pings a quarter-interval apart, then a hang.
    let config = format!(
        "[services.dog]\ncommand = [\"{STAGE}/watchdog-pinger\", \"4\"]\nready = \"notify\"\nwatchdog = \"1s\"\nrestart = \"on-failure\"\nbackoff = \"100ms\"\n"
    );
    let Some(sb) = stage(&config) else {
        return;
    };
    let unit = "dog.service";
    let out = daemonic_ok(&sb, &["install", "dog", "--enable", "--now"]);
    assert!(
        out.ends_with("enabled: dog.service\nstarted: dog.service\n"),
        "{out}"
    );
    assert_eq!(
        stdout(&sb.exec(&["systemctl", "is-enabled", unit])).trim(),
        "enabled"
    );
    let first = sb.show(unit, "MainPID");
    sb.wait_property(unit, "NRestarts", LIMIT, |n| n != "0");
    let journal = sb.journal(unit);
    assert!(
        journal.contains("Watchdog timeout (limit 1s)!"),
        "{journal}"
    );
    let next = sb.wait_property(unit, "MainPID", LIMIT, |p| p != "0" && p != first);
    assert_ne!(next, first);
    daemonic_ok(&sb, &["uninstall", "dog"]);
    assert_eq!(sb.show(unit, "LoadState"), "not-found");
}

#[test]
fn under_daemonic_run_readiness_is_a_probe_and_a_failing_health_check_restarts_the_program() {
    // Three healthy answers, then 503s: the liveness check fails, daemonic restarts it.
    let config = format!(
        r#"[services.web]
command = ["{STAGE}/unit-demo", "http", "8080", "3", "{STAGE}/go-web"]
ready = "http://127.0.0.1:8080/"
liveness = "http://127.0.0.1:8080/"
liveness-interval = "200ms"
liveness-failures = 2
restart = "always"
backoff = "100ms"
"#
    );
    let Some(sb) = stage(&config) else {
        return;
    };
    let unit = "web.service";
    daemonic_ok(&sb, &["install", "web"]);
    let unit_text = sb.ok(&["systemctl", "cat", unit]);
    assert!(
        unit_text.contains("ExecStart=/run/e2e/daemonic run "),
        "{unit_text}"
    );

    sb.ok(&["systemctl", "start", "--no-block", unit]);
    // Why it is not ready yet reaches systemd through daemonic.
    let status = sb.wait_property(unit, "StatusText", LIMIT, |s| s.starts_with("not ready: "));
    assert!(status.contains("127.0.0.1:8080"), "{status}");
    assert_eq!(
        sb.is_active(unit),
        "activating",
        "not active before the probe passes"
    );
    sb.ok(&["touch", &format!("{STAGE}/go-web")]);
    sb.wait_property(unit, "ActiveState", LIMIT, |s| s == "active");
    let main = sb.show(unit, "MainPID");
    assert_eq!(proc_status(&sb, &main, "Name"), "daemonic");

    // Two programs served in turn: the first was restarted after failing its checks.
    let servers = || {
        let journal = sb.journal(unit);
        let mut pids: Vec<String> = journal
            .lines()
            .filter_map(|l| l.strip_prefix("serving on 8080 as pid "))
            .map(str::to_string)
            .collect();
        pids.dedup();
        (pids.len() >= 2).then_some(journal)
    };
    let journal = wait_for("a second program after a failed check", LIMIT, servers);
    assert!(
        journal.contains("liveness failed 2 times in a row: HTTP 503 from http://127.0.0.1:8080/"),
        "{journal}"
    );
    // Inside the unit: systemd saw no failure, daemonic is the same process.
    assert_eq!(sb.show(unit, "ActiveState"), "active");
    assert_eq!(sb.show(unit, "NRestarts"), "0");
    assert_eq!(sb.show(unit, "MainPID"), main);

    // A stop through daemonic (the program ended by its stop signal) is clean.
    sb.ok(&["systemctl", "stop", unit]);
    assert_eq!(sb.show(unit, "Result"), "success");
    daemonic_ok(&sb, &["uninstall", "web"]);
}

#[test]
fn daemonic_run_pings_the_watchdog_of_its_unit_and_handles_the_programs_own() {
    // A liveness check makes the unit run daemonic; WatchdogSec=1s is on daemonic, and
    // the program must ping daemonic every second: eight pings (2 s), then a hang.
    let config = format!(
        "[services.wdog]\ncommand = [\"{STAGE}/watchdog-pinger\", \"8\"]\nready = \"notify\"\nwatchdog = \"1s\"\nliveness = \"exec:true\"\nrestart = \"on-failure\"\nbackoff = \"100ms\"\n"
    );
    let Some(sb) = stage(&config) else {
        return;
    };
    let unit = "wdog.service";
    daemonic_ok(&sb, &["install", "wdog", "--now"]);
    assert_eq!(sb.show(unit, "WatchdogUSec"), "1s");
    let main = sb.show(unit, "MainPID");
    // daemonic catches the program's missed ping and restarts it itself…
    wait_for("daemonic's watchdog note", LIMIT, || {
        let j = sb.journal(unit);
        j.contains("watchdog timeout (no WATCHDOG=1 within 1s)")
            .then_some(())
    });
    // It ran for 2 s before it hung: a stable run, restarted at once.
    wait_for("the program's second start", LIMIT, || {
        sb.journal(unit).contains("restart 1 in 0ms").then_some(())
    });
    // …while systemd, whose 1 s watchdog has long passed, was pinged all along.
    assert_eq!(sb.show(unit, "ActiveState"), "active");
    assert_eq!(sb.show(unit, "NRestarts"), "0");
    assert_eq!(sb.show(unit, "MainPID"), main);
    let journal = sb.journal(unit);
    assert!(!journal.contains("Watchdog timeout"), "{journal}");
    daemonic_ok(&sb, &["uninstall", "wdog"]);
}

#[test]
fn the_config_files_supervisor_installs_as_one_unit_ready_when_its_services_are() {
    let config = format!(
        "project = \"shop\"\n\n[services.a]\ncommand = [\"{STAGE}/unit-demo\", \"notify\", \"{STAGE}/go-a\"]\nready = \"notify\"\n\n\
         [services.b]\ncommand = [\"{STAGE}/unit-demo\", \"notify\", \"{STAGE}/go-b\"]\nready = \"notify\"\ndepends-on = [\"a\"]\n"
    );
    let Some(sb) = stage(&config) else {
        return;
    };
    let unit = "daemonic-shop.service";
    assert_eq!(
        daemonic_ok(&sb, &["install", "--up"]),
        "installed: /etc/systemd/system/daemonic-shop.service\n"
    );
    sb.ok(&["systemctl", "start", "--no-block", unit]);
    sb.ok(&["touch", &format!("{STAGE}/go-a")]);
    // b waits for its go file: the file's supervisor is not ready until b is. Its
    // services answer `daemonic status` as under `up`.
    wait_for("b to start", LIMIT, || {
        let out = sb.exec(&["/run/e2e/daemonic", "status", "b"]);
        stdout(&out).starts_with("b: starting").then_some(())
    });
    assert_eq!(sb.is_active(unit), "activating");
    sb.ok(&["touch", &format!("{STAGE}/go-b")]);
    sb.wait_property(unit, "ActiveState", LIMIT, |s| s == "active");
    sb.ok(&["systemctl", "stop", unit]);
    assert_eq!(sb.show(unit, "Result"), "success");
    let out = daemonic_ok(&sb, &["uninstall", "--up"]);
    assert!(
        out.contains("removed: /etc/systemd/system/daemonic-shop.service"),
        "{out}"
    );
}

#[test]
fn a_unit_that_cannot_start_gives_up_at_systemds_start_limit() {
    // Fails at once, restart always, 100 ms apart: 5 starts in 10 s, then systemd stops.
    let config = format!(
        "[services.broken]\ncommand = [\"{STAGE}/unit-demo\", \"no-such-mode\"]\nrestart = \"always\"\nbackoff = \"100ms\"\n"
    );
    let Some(sb) = stage(&config) else {
        return;
    };
    let unit = "broken.service";
    daemonic_ok(&sb, &["install", "broken"]);
    sb.ok(&["systemctl", "start", "--no-block", unit]);
    sb.wait_property(unit, "ActiveState", LIMIT, |s| s == "failed");
    // systemd 252 keeps Result=exit-code for a restart refused by the limit; it says so.
    let journal = sb.journal(unit);
    assert!(
        journal.contains("Start request repeated too quickly."),
        "{journal}"
    );
    daemonic_ok(&sb, &["uninstall", "broken"]);
}

#[test]
fn daemonic_run_keeps_its_programs_tree_inside_its_unit() {
    // A liveness check makes the unit run daemonic (as a dynamic user); the program leaves
    // a grandchild in a session of its own. systemd restarts nothing (Restart=no), so
    // only the unit's cgroup can end what a killed daemonic leaves.
    let config = "[services.tree]\ncommand = [\"/bin/sh\", \"-c\", \"setsid sleep 3601 & exec sleep 3600\"]\nready = \"grace\"\ngrace = \"200ms\"\nliveness = \"exec:true\"\nunit-set = [\"Restart=no\"]\n";
    let Some(sb) = stage(config) else {
        return;
    };
    // As a dynamic user daemonic cannot make groups: it is a subreaper in the unit's own
    // group, which systemd needs no delegation for (and its exposure stays lower).
    let unit_text = daemonic_ok(&sb, &["unit", "tree"]);
    assert!(unit_text.contains("\nDynamicUser=yes\n"), "{unit_text}");
    assert!(!unit_text.contains("Delegate="), "{unit_text}");
    daemonic_ok(&sb, &["install", "tree", "--now"]);
    kill_the_supervisor_and_see_the_tree_end(&sb, "tree.service", "");
    daemonic_ok(&sb, &["uninstall", "tree"]);

    // The config file's unit runs daemonic as root, in a delegated group: each service's
    // group is made below the unit's.
    let unit_text = daemonic_ok(&sb, &["unit", "--up"]);
    assert!(unit_text.contains("\nDelegate=yes\n"), "{unit_text}");
    assert!(
        unit_text.contains("\nProtectControlGroups=no\n"),
        "{unit_text}"
    );
    daemonic_ok(&sb, &["install", "--up"]);
    let unit = "daemonic-e2e.service";
    let no_restart = format!(
        "mkdir -p /run/systemd/system/{unit}.d && printf '[Service]\\nRestart=no\\n' \
         > /run/systemd/system/{unit}.d/no-restart.conf && systemctl daemon-reload"
    );
    sb.ok(&["sh", "-c", &no_restart]);
    sb.ok(&["systemctl", "start", unit]);
    kill_the_supervisor_and_see_the_tree_end(&sb, unit, "/daemonic/");
    daemonic_ok(&sb, &["uninstall", "--up"]);
}

/// With `unit` active and its program's setsid grandchild (`sleep 3601`) running: the
/// grandchild's cgroup is the unit's followed by `below` (`""`: the unit's own group);
/// SIGKILL to daemonic and the other processes of the unit's own group (its sentinel, as
/// the OOM killer might) ends the unit and, with it, every process of the program.
fn kill_the_supervisor_and_see_the_tree_end(sb: &Sandbox, unit: &str, below: &str) {
    let pid = wait_for("the setsid grandchild", LIMIT, || {
        let out = sb.exec(&["pgrep", "-f", "^sleep 3601$"]);
        let pids = stdout(&out);
        (!pids.trim().is_empty()).then(|| pids.trim().to_string())
    });
    let group = sb.show(unit, "ControlGroup");
    let cgroup = sb.ok(&["cat", &format!("/proc/{pid}/cgroup")]);
    let own = cgroup
        .lines()
        .find_map(|l| l.strip_prefix("0::"))
        .unwrap_or_else(|| panic!("no cgroup2 line in {cgroup}"));
    let inside = if below.is_empty() {
        own == group
    } else {
        own.starts_with(&format!("{group}{below}"))
    };
    assert!(inside, "grandchild {pid} in {own}, not {group}{below}");
    let main = sb.show(unit, "MainPID");
    let procs = sb.ok(&["cat", &format!("/sys/fs/cgroup{group}/cgroup.procs")]);
    assert!(
        procs.split_whitespace().any(|p| p == main),
        "daemonic ({main}) not in {group}: {procs}"
    );
    // A probe's process may be in the list and gone before its kill: each pid on its own.
    for pid in procs.split_whitespace() {
        let _ = sb.exec(&["kill", "-9", pid]);
    }
    sb.wait_property(unit, "ActiveState", LIMIT, |s| {
        s == "failed" || s == "inactive"
    });
    wait_for("no process of the program left", LIMIT, || {
        let out = sb.exec(&["pgrep", "-f", "^sleep 360[01]$"]);
        stdout(&out).trim().is_empty().then_some(())
    });
    let _ = sb.exec(&["systemctl", "reset-failed", unit]);
}
