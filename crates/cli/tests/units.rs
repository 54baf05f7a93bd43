//! `daemonic unit` / `install --unit-dir` / `uninstall --unit-dir`: the generated units,
//! checked by systemd's own tools. `systemd-analyze verify` must accept every unit of a
//! spread of configurations without a word; `systemd-analyze security --offline=true`
//! must rate the default unit of a network service at 1.2 or better (Debian's redis unit
//! scores 1.2). Tests that need
//! `systemd-analyze` skip with a reason where it is missing (`.ci/run` installs systemd).

use daemonic_test_support as support;

mod env;

use std::path::{Path, PathBuf};
use std::process::{Command, Output};

use env::{Env, fixture};

/// Writes `text` as `daemonic.toml` in the test's directory; returns its path.
fn config(env: &Env, text: &str) -> PathBuf {
    let path = env.dir.join("daemonic.toml");
    std::fs::write(&path, text).unwrap();
    path
}

fn text(bytes: &[u8]) -> String {
    String::from_utf8_lossy(bytes).into_owned()
}

/// `daemonic unit ARGS -f FILE`; panics unless it succeeds; returns the unit.
fn unit(env: &Env, file: &Path, args: &[&str]) -> String {
    let mut all = vec!["unit", "-f", file.to_str().unwrap()];
    all.extend(args);
    let out = env.daemonic(&all);
    assert!(
        out.status.success(),
        "daemonic {all:?}: {}",
        text(&out.stderr)
    );
    text(&out.stdout)
}

/// The values of `key` in a unit's text.
fn values<'a>(unit: &'a str, key: &str) -> Vec<&'a str> {
    unit.lines()
        .filter_map(|l| l.strip_prefix(key)?.strip_prefix('='))
        .collect()
}

fn analyze() -> Option<()> {
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
fn verify(env: &Env, units: &[(String, String)], user: bool) {
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
    let said = format!("{}{}", text(&out.stdout), text(&out.stderr));
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
fn spread() -> String {
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

const SPREAD: &[&str] = &[
    "plain", "notifier", "always", "binder", "relaxed", "bare", "adjusted", "probed",
];

#[test]
fn every_unit_of_a_spread_of_services_passes_systemd_analyze_verify() {
    let Some(()) = analyze() else { return };
    let env = Env::new("units-verify");
    let file = config(&env, &spread());
    let mut system = Vec::new();
    for name in SPREAD {
        system.push((
            format!("{name}.service"),
            unit(&env, &file, &[name, "--system"]),
        ));
    }
    system.push((
        "daemonic-units-verify.service".into(),
        unit(&env, &file, &["--up", "--system"]),
    ));
    verify(&env, &system, false);
    // User units: what can be one (no user, group or capabilities to give).
    let mut user = Vec::new();
    for name in SPREAD.iter().filter(|n| **n != "binder") {
        user.push((
            format!("{name}.service"),
            unit(&env, &file, &[name, "--user"]),
        ));
    }
    user.push((
        "daemonic-x.service".into(),
        unit(&env, &file, &["--up", "--user"]),
    ));
    verify(&env, &user, true);
}

#[test]
fn options_map_to_systemd_directives() {
    let env = Env::new("units-map");
    let file = config(&env, &spread());
    let n = unit(&env, &file, &["notifier", "--system"]);
    assert!(n.starts_with("# Generated by daemonic from "), "{n}");
    let expect = [
        ("Type", "notify"),
        ("Restart", "on-failure"),
        ("RestartSec", "2s"),
        ("StartLimitBurst", "5"),
        ("StartLimitIntervalSec", "600s"),
        ("WatchdogSec", "1500ms"),
        ("KillMode", "control-group"),
        ("KillSignal", "SIGINT"),
        ("TimeoutStopSec", "30s"),
        ("ExecReload", "/bin/kill -s USR1 $MAINPID"),
        ("SuccessExitStatus", "143"),
        (
            "EnvironmentFile",
            &format!("-{}", env.dir.join("web.env").display()),
        ),
        ("WorkingDirectory", "/"),
        ("DynamicUser", "yes"),
        ("CapabilityBoundingSet", ""),
        ("ProtectSystem", "strict"),
        ("StateDirectory", "notifier"),
        ("WantedBy", "multi-user.target"),
    ];
    for (key, value) in expect {
        assert_eq!(values(&n, key), [value], "{key} in\n{n}");
    }
    // StartLimit* belong in [Unit], before [Service].
    let unit_section = n.split("[Service]").next().unwrap();
    assert!(unit_section.contains("StartLimitBurst=5"), "{n}");
    // Words are quoted and escaped so that systemd reads them back as written.
    assert_eq!(
        values(&n, "ExecStart"),
        [format!(
            "{} 0 \"serving 100%% $$HOME \\\"quoted\\\"\"",
            fixture("notify-ready")
        )
        .as_str()]
    );
    assert_eq!(
        values(&n, "Environment"),
        ["\"GREETING=hello world\"", "\"PERCENT=50%%\""]
    );

    let a = unit(&env, &file, &["always", "--system"]);
    assert_eq!(values(&a, "Type"), ["exec"]);
    assert_eq!(
        values(&a, "NotifyAccess"),
        ["all"],
        "a watchdog needs it (from any process of the unit)"
    );
    assert_eq!(values(&a, "Requires"), ["notifier.service"]);
    assert!(values(&a, "After").contains(&"notifier.service"));
    assert_eq!(values(&a, "UMask"), ["0027"]);
    // No start-limit: systemd's own default, so a unit that cannot start gives up.
    assert_eq!(values(&a, "StartLimitIntervalSec"), ["10s"], "{a}");
    assert_eq!(values(&a, "StartLimitBurst"), ["5"], "{a}");
    assert_eq!(
        values(&a, "TimeoutStartSec"),
        ["30s"],
        "the default timeout"
    );
    assert!(
        a.contains("# backoff-jitter: systemd does not randomize"),
        "{a}"
    );
    let exec = values(&a, "ExecStart")[0];
    assert!(
        exec.starts_with('/') && exec.ends_with("/sleep 3600"),
        "{exec}"
    );

    let b = unit(&env, &file, &["binder", "--system"]);
    for (key, value) in [
        ("User", "daemon"),
        ("Group", "daemon"),
        ("AmbientCapabilities", "CAP_NET_BIND_SERVICE"),
        ("CapabilityBoundingSet", "CAP_NET_BIND_SERVICE"),
        ("NoNewPrivileges", "yes"),
    ] {
        assert_eq!(values(&b, key), [value], "{key} in\n{b}");
    }
    assert!(values(&b, "DynamicUser").is_empty());
    assert!(
        values(&b, "PrivateUsers").is_empty(),
        "caps need the host's user namespace"
    );

    let r = unit(&env, &file, &["relaxed", "--system"]);
    assert_eq!(values(&r, "ProtectSystem"), ["full"]);
    assert_eq!(values(&r, "ProtectHome"), ["read-only"]);
    for absent in [
        "DynamicUser",
        "SystemCallFilter",
        "MemoryDenyWriteExecute",
        "RestrictAddressFamilies",
    ] {
        assert!(values(&r, absent).is_empty(), "{absent} in\n{r}");
    }
    let bare = unit(&env, &file, &["bare", "--system"]);
    assert!(
        !bare.contains("Protect") && !bare.contains("NoNewPrivileges"),
        "{bare}"
    );

    let adj = unit(&env, &file, &["adjusted", "--system"]);
    assert_eq!(values(&adj, "ProtectSystem"), ["full"]);
    assert_eq!(
        values(&adj, "RestrictAddressFamilies"),
        ["AF_UNIX AF_NETLINK"]
    );
    assert_eq!(values(&adj, "MemoryDenyWriteExecute"), ["no"]);
    assert!(
        values(&adj, "PrivateUsers").is_empty(),
        "removed by unit-set"
    );
    assert_eq!(values(&adj, "Documentation"), ["https://example.com/web"]);
    assert_eq!(values(&adj, "WantedBy"), ["graphical.target"]);
    // A writable directory under the private /tmp is bound in; /srv only made writable.
    assert_eq!(values(&adj, "ReadWritePaths"), ["/srv"]);
    assert_eq!(
        values(&adj, "BindPaths"),
        [format!("\"{}\"", env.dir.join("data dir").display()).as_str()]
    );

    let u = unit(&env, &file, &["notifier", "--user"]);
    assert_eq!(values(&u, "WantedBy"), ["default.target"]);
    for absent in ["DynamicUser", "ProtectSystem", "PrivateTmp", "After"] {
        assert!(
            values(&u, absent).is_empty(),
            "{absent} in a user unit:\n{u}"
        );
    }
    let out = env.daemonic(&["unit", "-f", file.to_str().unwrap(), "binder", "--user"]);
    assert!(!out.status.success());
    assert!(
        text(&out.stderr).contains("binder: `user`, `group` and `keep-caps` need a system unit"),
        "{}",
        text(&out.stderr)
    );
}

#[test]
fn what_systemd_lacks_runs_under_daemonic_run() {
    let env = Env::new("units-wrap");
    let file = config(&env, &spread());
    let p = unit(
        &env,
        &file,
        &["probed", "--system", "--daemonic", "/usr/bin/daemonic"],
    );
    assert!(
        p.contains(
            "# Runs `daemonic run` for what systemd lacks: readiness probe http://127.0.0.1:8080/health, \
             liveness check tcp:127.0.0.1:8080, readiness check exec:test -e /run/ok, log files with \
             rotation, on-give-up hook."
        ),
        "{p}"
    );
    let exec = values(&p, "ExecStart")[0];
    assert!(exec.starts_with("/usr/bin/daemonic run "), "{exec}");
    assert!(
        exec.contains("--ready=http://127.0.0.1:8080/health"),
        "{exec}"
    );
    assert!(
        exec.contains("\"--readiness=exec:test -e /run/ok\""),
        "{exec}"
    );
    assert!(exec.contains("--restart=on-failure"), "{exec}");
    assert!(
        exec.ends_with(&format!("-- {} 3600", fixture("sleeper"))),
        "{exec}"
    );
    assert!(!exec.contains("--dir"), "WorkingDirectory= says it: {exec}");
    for (key, value) in [
        ("Type", "notify"),
        ("Restart", "on-abnormal"),
        ("SuccessExitStatus", "143"),
        ("KillMode", "mixed"),
        ("WatchdogSec", "5s"),
        ("TimeoutStopSec", "15s"),
        ("ExecReload", "/bin/kill -s HUP $MAINPID"),
        ("LogsDirectory", "probed"),
        ("ReadWritePaths", "-/srv/logs"),
    ] {
        assert_eq!(values(&p, key), [value], "{key} in\n{p}");
    }
    // The start limit is daemonic's to keep, not systemd's.
    assert!(values(&p, "StartLimitBurst").is_empty(), "{p}");
}

#[test]
fn the_security_exposure_of_a_default_network_service_is_at_most_1_2() {
    let Some(()) = analyze() else { return };
    let env = Env::new("units-security");
    // NotifyAccess=all (helpers may send READY=1, the default) costs a notify service 0.2
    // more; a program that notifies itself says `notify-access = "main"`.
    for (ready, limit) in [
        ("auto", 1.2),
        ("notify", 1.3),
        ("notify\"\nnotify-access = \"main", 1.2),
    ] {
        let file = config(
            &env,
            &format!(
                "[services.web]\ncommand = [{:?}, \"0\"]\nready = \"{ready}\"\nrestart = \"on-failure\"\n",
                fixture("notify-ready")
            ),
        );
        let path = env.dir.join("web.service");
        std::fs::write(&path, unit(&env, &file, &["web", "--system"])).unwrap();
        let out = Command::new("systemd-analyze")
            .args(["security", "--offline=true", "--no-pager"])
            .arg(&path)
            .output()
            .expect("run systemd-analyze security");
        let report = text(&out.stdout);
        let exposure = exposure(&report)
            .unwrap_or_else(|| panic!("no overall exposure in:\n{report}{}", text(&out.stderr)));
        eprintln!(
            "systemd-analyze security --offline=true web.service (ready = {ready}): exposure {exposure}"
        );
        assert!(
            exposure <= limit,
            "ready = {ready}: exposure {exposure} > {limit}:\n{report}"
        );
    }
}

/// `→ Overall exposure level for web.service: 1.5 OK 🙂` → 1.5
fn exposure(report: &str) -> Option<f64> {
    let line = report
        .lines()
        .find(|l| l.contains("Overall exposure level"))?;
    line.rsplit_once(": ")?
        .1
        .split_whitespace()
        .next()?
        .parse()
        .ok()
}

fn install(env: &Env, file: &Path, dir: &Path, extra: &[&str]) -> Output {
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

#[test]
fn install_is_idempotent_and_replaces_only_its_own_files() {
    let env = Env::new("units-install");
    let file = config(&env, &spread());
    let dir = env.dir.join("units");
    // `always` depends on `notifier`: both are installed, the dependency first.
    let out = install(&env, &file, &dir, &["always", "--system"]);
    assert!(out.status.success(), "{}", text(&out.stderr));
    assert_eq!(
        text(&out.stdout),
        format!(
            "installed: {0}/notifier.service\ninstalled: {0}/always.service\nnot told to systemd (--unit-dir)\n",
            dir.display()
        )
    );
    let written = std::fs::read_to_string(dir.join("always.service")).unwrap();
    assert_eq!(written, unit(&env, &file, &["always", "--system"]));
    let out = install(&env, &file, &dir, &["always", "--system"]);
    assert!(text(&out.stdout).contains(&format!("unchanged: {}/always.service", dir.display())));
    // A changed service updates its file.
    let edited = spread().replace("umask = \"027\"", "umask = \"077\"");
    std::fs::write(&file, edited).unwrap();
    let out = install(&env, &file, &dir, &["always", "--system"]);
    assert!(
        text(&out.stdout).contains(&format!("updated: {}/always.service", dir.display())),
        "{}",
        text(&out.stdout)
    );
    // A file daemonic did not write is left alone.
    std::fs::write(
        dir.join("plain.service"),
        "[Service]\nExecStart=/bin/true\n",
    )
    .unwrap();
    let out = install(&env, &file, &dir, &["plain", "--system"]);
    assert!(!out.status.success());
    assert!(
        text(&out.stderr).contains("plain.service: exists and was not written by daemonic"),
        "{}",
        text(&out.stderr)
    );
    let uninstall =
        |name: &str| env.daemonic(&["uninstall", name, "--unit-dir", dir.to_str().unwrap()]);
    let out = uninstall("plain");
    assert!(!out.status.success(), "not ours, not removed");
    assert!(dir.join("plain.service").exists());
    let out = uninstall("always");
    assert!(out.status.success(), "{}", text(&out.stderr));
    assert!(!dir.join("always.service").exists());
    assert!(dir.join("notifier.service").exists(), "dependencies stay");
    let out = uninstall("always");
    assert!(out.status.success(), "uninstalling twice is not an error");
    assert!(
        text(&out.stdout).contains("not installed:"),
        "{}",
        text(&out.stdout)
    );
}

#[test]
fn names_of_packaged_units_aliases_and_existing_state_directories_warn_and_refuse() {
    let env = Env::new("units-names");
    let sleeper = fixture("sleeper");
    // Created here, removed at the end: a /var/lib/NAME that the unit would take over.
    let taken = format!("daemonic-test-taken-{}", std::process::id());
    let var_lib = Path::new("/var/lib").join(&taken);
    let root = nix::unistd::geteuid().is_root();
    /// Removes the directory even when the test fails.
    struct Remove(PathBuf);
    impl Drop for Remove {
        fn drop(&mut self) {
            let _ = std::fs::remove_dir(&self.0);
        }
    }
    let _remove = root.then(|| {
        std::fs::create_dir_all(&var_lib).unwrap();
        Remove(var_lib.clone())
    });
    let file = config(
        &env,
        &format!(
            "[services.systemd-journald]\ncommand = [{sleeper:?}, \"1\"]\n\n\
             [services.redis]\ncommand = [{sleeper:?}, \"1\"]\n\n\
             [services.{taken}]\ncommand = [{sleeper:?}, \"1\"]\n\n\
             [services.fresh]\ncommand = [{sleeper:?}, \"1\"]\n"
        ),
    );
    let dir = env.dir.join("units");
    let mut cases = vec![("fresh", None)];
    let packaged = ["/lib/systemd/system", "/usr/lib/systemd/system"]
        .iter()
        .any(|d| Path::new(d).join("systemd-journald.service").exists());
    if packaged {
        cases.push((
            "systemd-journald",
            Some("systemd-journald.service is also a unit not written by daemonic"),
        ));
    } else {
        eprintln!("skipping the packaged-unit case: no systemd-journald.service here");
    }
    let aliased = ["/lib/systemd/system", "/usr/lib/systemd/system"]
        .iter()
        .any(|d| Path::new(d).join("redis-server.service").exists());
    if aliased {
        cases.push(("redis", Some("redis.service is an Alias= of the packaged ")));
    } else {
        eprintln!("skipping the Alias= case: redis-server is not installed");
    }
    let want = format!(
        "{} exists: StateDirectory={taken} would take it over",
        var_lib.display()
    );
    if root {
        cases.push((taken.as_str(), Some(want.as_str())));
    } else {
        eprintln!("skipping the /var/lib case: not root");
    }
    for (name, clash) in cases {
        let out = env.daemonic(&["unit", "-f", file.to_str().unwrap(), name, "--system"]);
        assert!(out.status.success(), "unit {name}: {}", text(&out.stderr));
        let stderr = text(&out.stderr);
        let out = install(&env, &file, &dir, &[name, "--system"]);
        match clash {
            None => {
                assert_eq!(stderr, "", "{name}");
                assert!(out.status.success(), "{}", text(&out.stderr));
            }
            Some(why) => {
                assert!(
                    stderr.starts_with("warning: ") && stderr.contains(why),
                    "{name}: {stderr}"
                );
                assert!(!out.status.success(), "install {name} was not refused");
                let err = text(&out.stderr);
                assert!(err.contains(why) && err.contains("--force"), "{err}");
                let forced = install(&env, &file, &dir, &[name, "--system", "--force"]);
                assert!(forced.status.success(), "{}", text(&forced.stderr));
            }
        }
    }
}

#[test]
fn paths_the_sandbox_hides_are_bound_in_and_directories_limits_and_timeouts_are_keys() {
    let env = Env::new("units-paths");
    // A project in /root (made here as root, removed at the end; elsewhere skipped).
    let root = nix::unistd::geteuid().is_root();
    let home = PathBuf::from(format!("/root/daemonic-test-units-{}", std::process::id()));
    struct Remove(PathBuf);
    impl Drop for Remove {
        fn drop(&mut self) {
            let _ = std::fs::remove_dir_all(&self.0);
        }
    }
    let _remove = root.then(|| {
        std::fs::create_dir_all(home.join("venv/bin")).unwrap();
        std::fs::create_dir_all(home.join("app")).unwrap();
        std::fs::copy(fixture("sleeper"), home.join("venv/bin/app")).unwrap();
        Remove(home.clone())
    });
    let home_table = if root {
        format!(
            "[services.home]\ncommand = [\"{0}/venv/bin/app\"]\ndir = \"{0}/app\"\n",
            home.display()
        )
    } else {
        eprintln!("skipping the /root case: not root");
        String::new()
    };
    let file = config(
        &env,
        &format!(
            "[services.tmp]\ncommand = [{:?}, \"1\"]\nready = \"notify\"\nenv-file = \"-app.env\"\n\
             unit-writable = [\"data\"]\ntimeout = \"5m\"\nstop-timeout = \"2m\"\n\
             unit-state-directory = [\"tmp-data\"]\nunit-runtime-directory = [\"tmp\"]\n\
             unit-logs-directory = [\"tmp\"]\nunit-limit-nofile = \"65536\"\nunit-deny-write-execute = true\n\n{home_table}",
            fixture("notify-ready")
        ),
    );
    let dir = env.dir.path().display().to_string();
    let t = unit(&env, &file, &["tmp", "--system"]);
    for (key, value) in [
        ("BindPaths", format!("{dir}/data")),
        ("PrivateTmp", "yes".into()),
        ("ProtectHome", "yes".into()),
        ("StateDirectory", "tmp-data".into()),
        ("RuntimeDirectory", "tmp".into()),
        ("LogsDirectory", "tmp".into()),
        ("LimitNOFILE", "65536".into()),
        ("TimeoutStartSec", "300s".into()),
        ("TimeoutStopSec", "120s".into()),
        ("MemoryDenyWriteExecute", "yes".into()),
        ("NotifyAccess", "all".into()),
    ] {
        assert_eq!(values(&t, key), [value.as_str()], "{key} in\n{t}");
    }
    // The working directory and the env file under the private /tmp: bound in, read-only
    // (the writable one read-write, above); /tmp itself stays private. The program too,
    // when the checkout (and so the fixture) is under /tmp.
    let program = fixture("notify-ready");
    let mut want = vec![dir.clone()];
    if program.starts_with("/tmp/") {
        want.insert(0, program);
    }
    let bound: Vec<String> = values(&t, "BindReadOnlyPaths")
        .iter()
        .flat_map(|v| v.split(' ').map(str::to_string))
        .collect();
    assert_eq!(bound, want, "BindReadOnlyPaths in\n{t}");
    if root {
        let h = unit(&env, &file, &["home", "--system"]);
        // Under /root: empty homes, and the program's installation (which holds the
        // working directory too) bound in.
        let bound = home.display().to_string();
        for (key, value) in [
            ("ProtectHome", "tmpfs"),
            ("BindReadOnlyPaths", bound.as_str()),
            ("StateDirectory", "home"),
        ] {
            assert_eq!(values(&h, key), [value], "{key} in\n{h}");
        }
        assert!(
            values(&h, "MemoryDenyWriteExecute").is_empty(),
            "JITs work:\n{h}"
        );
        assert!(values(&h, "NotifyAccess").is_empty(), "{h}");
    }
    let bad = config(
        &env,
        "[services.x]\ncommand = \"true\"\nunit-state-directory = [\"../etc\"]\n",
    );
    let out = env.daemonic(&["unit", "-f", bad.to_str().unwrap(), "x"]);
    assert!(!out.status.success());
    assert!(
        text(&out.stderr).contains("invalid directory \"../etc\""),
        "{}",
        text(&out.stderr)
    );
}

#[test]
fn a_path_the_dynamic_user_cannot_read_is_warned_about_and_refused() {
    use std::os::unix::fs::PermissionsExt;
    let env = Env::new("units-unreadable");
    let closed = env.dir.join("closed");
    std::fs::create_dir(&closed).unwrap();
    std::fs::set_permissions(&closed, std::fs::Permissions::from_mode(0o700)).unwrap();
    let file = config(
        &env,
        &format!(
            "[services.closed]\ncommand = [{:?}, \"1\"]\ndir = \"closed\"\n\n\
             [services.owned]\ncommand = [{:?}, \"1\"]\ndir = \"closed\"\nuser = \"daemon\"\n",
            fixture("sleeper"),
            fixture("sleeper")
        ),
    );
    let out = env.daemonic(&["unit", "-f", file.to_str().unwrap(), "closed", "--system"]);
    assert!(out.status.success());
    let want = format!(
        "{0} is not readable by the service's dynamic user: {0} is closed to others (chmod o+rx it, or give the service a `user`)",
        closed.display()
    );
    assert!(text(&out.stderr).contains(&want), "{}", text(&out.stderr));
    let dir = env.dir.join("units");
    let out = install(&env, &file, &dir, &["closed", "--system"]);
    assert!(!out.status.success(), "installed");
    assert!(text(&out.stderr).contains(&want), "{}", text(&out.stderr));
    // With a user of its own the permissions are that user's business.
    let out = env.daemonic(&["unit", "-f", file.to_str().unwrap(), "owned", "--system"]);
    assert!(out.status.success());
    assert_eq!(text(&out.stderr), "");
}

#[test]
fn limits_map_to_memory_max_cpu_quota_and_tasks_max() {
    let env = Env::new("units-limits");
    let sleeper = fixture("sleeper");
    let file = config(
        &env,
        &format!(
            r#"
[services.direct]
command = [{sleeper:?}, "3600"]
memory-max = "256M"
memory-high = "200M"
cpu-max = "150%"
tasks-max = 64

[services.watched]
command = [{sleeper:?}, "3600"]
memory-max = "1G"
restart-on-memory = "512M"
memory-check-interval = "10s"
"#
        ),
    );
    let direct = unit(&env, &file, &["direct", "--system"]);
    for (key, value) in [
        ("MemoryMax", "268435456"),
        ("MemoryHigh", "209715200"),
        ("CPUQuota", "150%"),
        ("TasksMax", "64"),
    ] {
        assert_eq!(values(&direct, key), [value], "{key} in\n{direct}");
    }
    // systemd cannot restart on memory: daemonic run does, and leaves the kernel's limits
    // to systemd (which sets them on the whole unit).
    let watched = unit(&env, &file, &["watched", "--system"]);
    assert_eq!(values(&watched, "MemoryMax"), ["1073741824"], "{watched}");
    let exec = values(&watched, "ExecStart")[0];
    assert!(exec.contains(" run "), "{exec}");
    assert!(exec.contains("--restart-on-memory=512M"), "{exec}");
    assert!(!exec.contains("--memory-max"), "{exec}");
    assert!(
        watched.contains("what systemd lacks: restart-on-memory."),
        "{watched}"
    );
    let Some(()) = analyze() else { return };
    verify(
        &env,
        &[
            ("direct.service".into(), direct),
            ("watched.service".into(), watched),
        ],
        false,
    );
}

#[test]
fn notify_access_becomes_systemds_notify_access() {
    let env = Env::new("units-notify-access");
    let sleeper = fixture("sleeper");
    let file = config(
        &env,
        &format!(
            "[services.strict]\ncommand = [{sleeper:?}, \"3600\"]\nready = \"notify\"\n\
             notify-access = \"main\"\n\n\
             [services.helpers]\ncommand = [{sleeper:?}, \"3600\"]\nready = \"notify\"\n"
        ),
    );
    let strict = unit(&env, &file, &["strict", "--system"]);
    assert_eq!(values(&strict, "NotifyAccess"), ["main"], "{strict}");
    // The default lets a helper such as systemd-notify speak, as under daemonic.
    let helpers = unit(&env, &file, &["helpers", "--system"]);
    assert_eq!(values(&helpers, "NotifyAccess"), ["all"], "{helpers}");
}
