//! What the unit tests share (`units.rs`, `units_install.rs`): the config file, `daemonic
//! unit` and `install` of it, the directives of a unit's text, and a spread of services
//! for systemd's own tools.

use std::path::Path;
use std::process::{Command, Output};

use super::{Env, fixture};
use crate::support::{stderr, stdout};

/// `daemonic unit ARGS -f FILE`; panics unless it succeeds; returns the unit.
pub fn unit(env: &Env, file: &Path, args: &[&str]) -> String {
    let mut all = vec!["unit", "-f", file.to_str().unwrap()];
    all.extend(args);
    let out = env.daemonic(&all);
    assert!(out.status.success(), "daemonic {all:?}: {}", stderr(&out));
    stdout(&out)
}

/// The values of `key` in a unit's text.
pub fn values<'a>(unit: &'a str, key: &str) -> Vec<&'a str> {
    unit.lines()
        .filter_map(|l| l.strip_prefix(key)?.strip_prefix('='))
        .collect()
}

pub fn analyze() -> Option<()> {
    let found = Command::new("systemd-analyze")
        .arg("--version")
        .output()
        .is_ok_and(|o| o.status.success());
    if !found {
        eprintln!("skipped: systemd-analyze not found (install the systemd package)");
    }
    found.then_some(())
}

/// `systemd-analyze verify` of `units` (name, text), written together into a directory
/// (so that `Requires=` finds its units); asserts it succeeds and says nothing.
pub fn verify(env: &Env, units: &[(String, String)], user: bool) {
    let dir = env.dir.join(if user { "verify-user" } else { "verify" });
    std::fs::create_dir_all(&dir).unwrap();
    let mut cmd = Command::new("systemd-analyze");
    cmd.arg("verify");
    if user {
        // The user manager wants a runtime directory even offline.
        let runtime = env.dir.join("runtime");
        std::fs::create_dir_all(&runtime).unwrap();
        cmd.arg("--user").env("XDG_RUNTIME_DIR", &runtime);
    }
    for (name, body) in units {
        let path = dir.join(name);
        std::fs::write(&path, body).unwrap();
        cmd.arg(&path);
    }
    let out = cmd.output().expect("run systemd-analyze verify");
    let said = format!("{}{}", stdout(&out), stderr(&out));
    let listed: Vec<&str> = units.iter().map(|(n, _)| n.as_str()).collect();
    assert!(
        out.status.success() && said.trim().is_empty(),
        "systemd-analyze verify {listed:?}: {}\n{said}\nunits:\n{}",
        out.status,
        units
            .iter()
            .map(|(n, b)| format!("--- {n}\n{b}"))
            .collect::<String>()
    );
}

/// A spread of services: every option the generator maps, each way it can go.
pub fn spread() -> String {
    let sleeper = fixture("sleeper");
    let notify = fixture("notify-ready");
    format!(
        r#"
[services.plain]
command = [{sleeper:?}, "3600"]

[services.notifier]
command = [{notify:?}, "0", "serving 100% $$HOME \"quoted\""]
ready = "notify"
restart = "on-failure"
backoff = "2s"
backoff-max = "1m"
success-exit-codes = [0, 143]
start-limit = "5/10m"
watchdog = "1500ms"
stop-signal = "INT"
stop-timeout = "30s"
reload-signal = "USR1"
env = {{ GREETING = "hello world", PERCENT = "50%" }}
env-file = "-web.env"
dir = "/"

[services.always]
command = "sleep 3600"
restart = "always"
backoff-multiplier = 1
backoff-jitter = true
watchdog = "10s"
ready = "grace"
depends-on = ["notifier"]
umask = "027"

[services.binder]
command = "sleep 3600"
user = "daemon"
group = "daemon"
keep-caps = ["net_bind_service"]
no-new-privs = true

[services.relaxed]
command = "sleep 3600"
unit-hardening = "relaxed"
unit-protect-home = "read-only"

[services.bare]
command = "sleep 3600"
unit-hardening = "off"

[services.adjusted]
command = "sleep 3600"
unit-protect-system = "full"
unit-address-families = "AF_UNIX AF_NETLINK"
unit-writable = ["/srv", "data dir"]
unit-set = ["MemoryDenyWriteExecute=no", "PrivateUsers=", "Unit.Documentation=https://example.com/web", "Install.WantedBy=graphical.target"]

[services.probed]
command = [{sleeper:?}, "3600"]
ready = "http://127.0.0.1:8080/health"
liveness = "tcp:8080"
readiness = "exec:test -e /run/ok"
log-file = "/var/log/probed/out.log"
log-stderr-file = "/srv/logs/err.log"
on-give-up = "logger gave up"
restart = "on-failure"
watchdog = "5s"
start-limit = "3/1m"
"#
    )
}

pub const SPREAD: &[&str] = &[
    "plain", "notifier", "always", "binder", "relaxed", "bare", "adjusted", "probed",
];

pub fn install(env: &Env, file: &Path, dir: &Path, extra: &[&str]) -> Output {
    let mut args = vec![
        "install",
        "-f",
        file.to_str().unwrap(),
        "--unit-dir",
        dir.to_str().unwrap(),
    ];
    args.extend(extra);
    env.daemonic(&args)
}
