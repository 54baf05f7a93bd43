//! End to end under a real systemd (252 on Debian 12), booted in Linux namespaces by
//! `tests/systemd-sandbox.sh` for each test: the `notify-demo` example as `Type=notify`
//! service, its status, reload, watchdog, socket activation and fd store, as systemd
//! itself reports them. Each test skips with a reason where a sandbox cannot boot (not
//! root, no systemd, no namespaces); the sandbox is powered off even when a test fails.

use daemonic_test_support as support;

use std::io::Read;
use std::os::unix::net::UnixStream;
use std::path::Path;
use std::time::Duration;

use support::sandbox::Sandbox;
use support::{TempDir, example, wait_for};

const LIMIT: Duration = Duration::from_secs(15);

fn demo() -> String {
    example("notify-demo").display().to_string()
}

fn touch(path: &Path) {
    std::fs::write(path, b"").unwrap_or_else(|e| panic!("create {}: {e}", path.display()));
}

/// Connects to a unix socket served inside the sandbox (its path is on the host's /tmp).
fn ask(path: &Path) -> String {
    let mut line = String::new();
    let mut conn =
        UnixStream::connect(path).unwrap_or_else(|e| panic!("connect {}: {e}", path.display()));
    conn.read_to_string(&mut line).unwrap();
    line
}

fn ready_unit(dir: &Path, extra: &str) -> String {
    format!(
        "[Service]\nType=notify\nExecStart={} ready {}\nExecReload=/bin/kill -HUP $MAINPID\nTimeoutStartSec=30\n{extra}\n",
        demo(),
        dir.display()
    )
}

#[test]
fn type_notify_is_active_only_after_ready_and_shows_its_status() {
    let Some(sb) = Sandbox::boot() else { return };
    let work = TempDir::new("e2e-ready");
    sb.install(&[("demo.service", ready_unit(work.path(), ""))]);
    sb.systemctl(&["start", "--no-block", "demo.service"]);
    let waiting = format!("waiting for {}", work.join("go").display());
    sb.wait_property("demo.service", "StatusText", LIMIT, |s| s == waiting);
    let out = sb.exec(&["systemctl", "is-active", "demo.service"]);
    assert_eq!(
        String::from_utf8_lossy(&out.stdout).trim(),
        "activating",
        "not active before READY=1"
    );
    touch(&work.join("go"));
    sb.wait_property("demo.service", "ActiveState", LIMIT, |s| s == "active");
    let status = sb.show("demo.service", "StatusText");
    assert!(status.starts_with("ready (reloads: 0"), "{status}");
    // MAINPID= named the main process itself; BARRIER=1 was acknowledged by systemd.
    assert_eq!(
        sb.show("demo.service", "MainPID"),
        sb.show("demo.service", "ExecMainPID")
    );
    wait_for("the barrier line in the journal", LIMIT, || {
        sb.journal("demo.service")
            .contains("ready (barrier acknowledged: true)")
            .then_some(())
    });
    // STOPPING=1 and a barrier on the way out, then a clean stop.
    sb.systemctl(&["stop", "demo.service"]);
    assert_eq!(sb.show("demo.service", "Result"), "success");
    assert!(
        sb.journal("demo.service")
            .contains("stopping (barrier acknowledged: true)")
    );
}

#[test]
fn reload_passes_through_reloading_to_ready() {
    let Some(sb) = Sandbox::boot() else { return };
    let work = TempDir::new("e2e-reload");
    touch(&work.join("go"));
    sb.install(&[("demo.service", ready_unit(work.path(), ""))]);
    sb.systemctl(&["start", "demo.service"]);
    let pid = sb.show("demo.service", "MainPID");
    sb.systemctl(&["reload", "--no-block", "demo.service"]);
    // RELOADING=1 (with MONOTONIC_USEC): systemd shows the unit reloading until READY=1.
    sb.wait_property("demo.service", "StatusText", LIMIT, |s| s == "reloading 1");
    assert_eq!(sb.show("demo.service", "ActiveState"), "reloading");
    touch(&work.join("reload-1"));
    sb.wait_property("demo.service", "ActiveState", LIMIT, |s| s == "active");
    let status = sb.show("demo.service", "StatusText");
    assert!(status.starts_with("ready (reloads: 1"), "{status}");
    assert_eq!(
        sb.show("demo.service", "MainPID"),
        pid,
        "a reload is not a restart"
    );
}

#[test]
fn a_hung_main_loop_stops_the_watchdog_pings_and_systemd_restarts_it() {
    let Some(sb) = Sandbox::boot() else { return };
    let work = TempDir::new("e2e-watchdog");
    touch(&work.join("go"));
    let extra = "WatchdogSec=2s\nRestart=on-watchdog\nRestartSec=100ms";
    sb.install(&[("demo.service", ready_unit(work.path(), extra))]);
    sb.systemctl(&["start", "demo.service"]);
    let pid = sb.show("demo.service", "MainPID");
    // Pings every second (half of WatchdogSec): three of them outlive the 2 s limit.
    sb.wait_property("demo.service", "StatusText", LIMIT, |s| {
        s.contains("watchdog pings: 3")
    });
    assert_eq!(sb.show("demo.service", "NRestarts"), "0");
    assert_eq!(sb.show("demo.service", "MainPID"), pid);
    touch(&work.join("hang"));
    sb.wait_property("demo.service", "NRestarts", LIMIT, |n| n == "1");
    let journal = sb.journal("demo.service");
    assert!(journal.contains("Watchdog timeout"), "{journal}");
    assert!(
        journal.contains("Failed with result 'watchdog'"),
        "{journal}"
    );
    sb.wait_property("demo.service", "ActiveState", LIMIT, |s| s == "active");
    assert_ne!(
        sb.show("demo.service", "MainPID"),
        pid,
        "a new process after the restart"
    );
}

#[test]
fn socket_activation_passes_the_socket_by_name() {
    let Some(sb) = Sandbox::boot() else { return };
    let work = TempDir::new("e2e-socket");
    let path = work.join("web.sock");
    let socket = format!(
        "[Socket]\nListenStream={}\nFileDescriptorName=web\n",
        path.display()
    );
    let service = format!("[Service]\nType=notify\nExecStart={} serve web\n", demo());
    sb.install(&[("demo.socket", socket), ("demo.service", service)]);
    sb.systemctl(&["start", "demo.socket"]);
    assert_eq!(sb.show("demo.service", "ActiveState"), "inactive");
    let line = ask(&path);
    let pid = sb.show("demo.service", "MainPID");
    assert!(line.starts_with(&format!("web pid {pid} inode ")), "{line}");
    assert!(line.ends_with("origin passed\n"), "{line}");
    assert_eq!(sb.show("demo.service", "ActiveState"), "active");
}

#[test]
fn the_fd_store_keeps_a_listening_socket_across_a_restart() {
    let Some(sb) = Sandbox::boot() else { return };
    let work = TempDir::new("e2e-fdstore");
    let path = work.join("store.sock");
    let service = format!(
        "[Service]\nType=notify\nExecStart={} serve store {}\nFileDescriptorStoreMax=4\n",
        demo(),
        path.display()
    );
    sb.install(&[("demo.service", service)]);
    sb.systemctl(&["start", "demo.service"]);
    let first = ask(&path);
    let pid1 = sb.show("demo.service", "MainPID");
    assert!(
        first.starts_with(&format!("store pid {pid1} ")) && first.ends_with("origin bound\n"),
        "{first}"
    );
    sb.systemctl(&["restart", "demo.service"]);
    let pid2 = sb.show("demo.service", "MainPID");
    assert_ne!(pid1, pid2);
    let second = ask(&path);
    // Same socket (same inode), now handed back by systemd under its FDNAME.
    let inode = |l: &str| l.split(' ').nth(4).map(str::to_string);
    assert_eq!(inode(&second), inode(&first), "{first} / {second}");
    assert!(
        second.starts_with(&format!("store pid {pid2} ")) && second.ends_with("origin passed\n"),
        "{second}"
    );
}

/// `daemonic::logging`'s journald destination, read back with journalctl: fields, a
/// multi-line message, and an entry too large for one datagram (sent through a memfd).
#[test]
fn journald_native_entries_read_back_with_journalctl() {
    let Some(sb) = Sandbox::boot() else { return };
    let unit = format!(
        "[Service]\nType=oneshot\nExecStart={}\n",
        example("journald-demo").display()
    );
    sb.install(&[("jdemo.service", unit)]);
    sb.systemctl(&["start", "jdemo.service"]);
    assert_eq!(sb.show("jdemo.service", "Result"), "success");
    let fields = |filter: &str| {
        let out = sb.exec(&[
            "journalctl",
            "--no-pager",
            "--all",
            "-o",
            "json",
            "SYSLOG_IDENTIFIER=journald-demo",
            filter,
        ]);
        String::from_utf8_lossy(&out.stdout).into_owned()
    };
    let info = fields("PRIORITY=6");
    assert!(
        info.contains(r#""MESSAGE":"hello from daemonic""#),
        "{info}"
    );
    assert!(info.contains(r#""REQUEST_ID":"42""#), "{info}");
    assert!(info.contains(r#""ENVIRONMENT":"e2e""#), "{info}");
    let warn = fields("PRIORITY=4");
    assert!(
        warn.contains(r#""MESSAGE":"first line\nsecond line""#),
        "{warn}"
    );
    // journald reads a memfd entry asynchronously; it may land after the service ended.
    let err = wait_for("the 300 kB entry in the journal", LIMIT, || {
        Some(fields("PRIORITY=3")).filter(|e| e.contains(r#""SIZE":"300000""#))
    });
    assert!(
        err.contains(&"x".repeat(300_000)),
        "the large entry arrived whole"
    );
}
