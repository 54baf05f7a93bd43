//! A real systemd, booted as PID 1 of fresh Linux namespaces by `tests/systemd-sandbox.sh`,
//! for end-to-end tests. [`Sandbox::boot`] returns `None` (after printing why) where that
//! cannot work: not root, no systemd, no namespaces. Dropping a [`Sandbox`] powers it off
//! and removes its state, also when the test panicked.

use std::path::{Path, PathBuf};
use std::process::{Command, Output, Stdio};
use std::sync::{Mutex, MutexGuard};
use std::time::Duration;

use crate::{TempDir, wait_for};

/// One sandbox at a time per test binary: they are cheap, but the tests watch timing
/// (watchdogs) and CI has two cores.
static ONE_AT_A_TIME: Mutex<()> = Mutex::new(());

pub struct Sandbox {
    // Field order matters: stop the sandbox (Drop) before the lock and the dirs go.
    state: TempDir,
    script: PathBuf,
    _serial: MutexGuard<'static, ()>,
}

impl Sandbox {
    /// Boots a sandbox, or says why it cannot and returns `None`.
    pub fn boot() -> Option<Sandbox> {
        if let Some(why) = unavailable() {
            eprintln!("skipped: {why}");
            return None;
        }
        let serial = ONE_AT_A_TIME.lock().unwrap_or_else(|p| p.into_inner());
        // Found the same way from either crate of the workspace (the CLI's tests use it too).
        let script =
            Path::new(env!("CARGO_MANIFEST_DIR")).join("../daemonic/tests/systemd-sandbox.sh");
        let sandbox = Sandbox {
            state: TempDir::new("sandbox"),
            script,
            _serial: serial,
        };
        let out = sandbox
            .script_cmd("start")
            .output()
            .expect("run systemd-sandbox.sh start");
        assert!(
            out.status.success(),
            "systemd-sandbox start failed:\n{}{}",
            text(&out.stdout),
            text(&out.stderr)
        );
        Some(sandbox)
    }

    fn script_cmd(&self, sub: &str) -> Command {
        let mut cmd = Command::new(&self.script);
        cmd.arg(sub).arg(self.state.path()).stdin(Stdio::null());
        cmd
    }

    /// Runs `args` inside the sandbox (all its namespaces).
    pub fn exec(&self, args: &[&str]) -> Output {
        self.script_cmd("exec")
            .args(args)
            .output()
            .expect("run systemd-sandbox.sh exec")
    }

    /// Runs `args` inside; panics unless it succeeds. Returns stdout.
    pub fn ok(&self, args: &[&str]) -> String {
        let out = self.exec(args);
        assert!(
            out.status.success(),
            "{args:?} failed: {}{}",
            text(&out.stdout),
            text(&out.stderr)
        );
        text(&out.stdout)
    }

    /// `systemctl ARGS` inside; panics unless it succeeds. Returns stdout.
    pub fn systemctl(&self, args: &[&str]) -> String {
        let mut full = vec!["systemctl"];
        full.extend_from_slice(args);
        self.ok(&full)
    }

    /// What `systemctl is-active UNIT` says (`active`, `activating`, `failed`, …).
    pub fn is_active(&self, unit: &str) -> String {
        text(&self.exec(&["systemctl", "is-active", unit]).stdout)
            .trim()
            .to_string()
    }

    /// Copies `files` (paths on the host) into the directory `dir` inside, which it makes,
    /// and writes `config` as `dir/daemonic.toml`.
    pub fn stage(&self, dir: &str, files: &[&Path], config: &str) {
        let host = TempDir::new("sandbox-stage");
        let file = host.join("daemonic.toml");
        std::fs::write(&file, config).unwrap();
        let files: Vec<String> = files.iter().map(|f| f.display().to_string()).collect();
        let copy = format!(
            "mkdir -p {dir} && cp {} {dir}/ && cp {} {dir}/daemonic.toml",
            files.join(" "),
            file.display()
        );
        self.ok(&["sh", "-c", &copy]);
    }

    /// One property of a unit, as `systemctl show -p NAME --value` prints it.
    pub fn show(&self, unit: &str, property: &str) -> String {
        self.systemctl(&["show", "-p", property, "--value", unit])
            .trim_end()
            .to_string()
    }

    /// Waits until `unit`'s `property` satisfies `ok`; returns the value.
    pub fn wait_property(
        &self,
        unit: &str,
        property: &str,
        timeout: Duration,
        ok: impl Fn(&str) -> bool,
    ) -> String {
        let mut last = String::new();
        let what = format!("{unit} {property}");
        wait_for(&what, timeout, || {
            last = self.show(unit, property);
            ok(&last).then(|| last.clone())
        })
    }

    /// Writes unit files (name, contents) into the sandbox and reloads systemd.
    pub fn install(&self, units: &[(&str, String)]) {
        let dir = self.state.path().join("etc/systemd/system");
        for (name, body) in units {
            std::fs::write(dir.join(name), body)
                .unwrap_or_else(|e| panic!("write unit {name}: {e}"));
        }
        self.systemctl(&["daemon-reload"]);
    }

    /// The unit's journal, messages only.
    pub fn journal(&self, unit: &str) -> String {
        text(
            &self
                .exec(&["journalctl", "--no-pager", "-o", "cat", "-u", unit])
                .stdout,
        )
    }
}

impl Drop for Sandbox {
    fn drop(&mut self) {
        match self.script_cmd("stop").output() {
            Ok(out) if out.status.success() => {}
            Ok(out) => eprintln!(
                "systemd-sandbox stop: {}{}",
                text(&out.stdout),
                text(&out.stderr)
            ),
            Err(e) => eprintln!("systemd-sandbox stop: {e}"),
        }
    }
}

fn text(bytes: &[u8]) -> String {
    String::from_utf8_lossy(bytes).into_owned()
}

/// Why a sandbox cannot boot here, if it cannot.
fn unavailable() -> Option<String> {
    if !nix::unistd::Uid::effective().is_root() {
        return Some("the systemd sandbox needs root (CI runs as root)".into());
    }
    if !Path::new("/lib/systemd/systemd").exists() {
        return Some("no systemd at /lib/systemd/systemd (install the systemd package)".into());
    }
    for tool in ["unshare", "nsenter", "script"] {
        let found = Command::new("sh")
            .args(["-c", &format!("command -v {tool}")])
            .output()
            .is_ok_and(|o| o.status.success());
        if !found {
            return Some(format!("{tool} not found (util-linux / bsdutils)"));
        }
    }
    let ns = Command::new("unshare")
        .args([
            "--pid", "--fork", "--mount", "--net", "--uts", "--ipc", "--cgroup", "true",
        ])
        .stdin(Stdio::null())
        .output();
    if !ns.is_ok_and(|o| o.status.success()) {
        return Some("cannot create pid/mount/net/uts/ipc/cgroup namespaces here".into());
    }
    let mounts = std::fs::read_to_string("/proc/self/mountinfo").unwrap_or_default();
    if !mounts.lines().any(|l| {
        l.split(" - ")
            .nth(1)
            .is_some_and(|r| r.starts_with("cgroup2 "))
    }) {
        return Some("no cgroup2 file system mounted".into());
    }
    None
}
