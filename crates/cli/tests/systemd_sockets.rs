//! A service with `socket` keys as a `.service` + `.socket` pair: `systemd-analyze verify`
//! accepts the pair without a word, and a real systemd (the sandbox of
//! `support::sandbox`, skipped with a reason where it cannot boot) starts the service on
//! the first connection, passes the socket by its `FileDescriptorName=`, and keeps it
//! across a restart — for a program systemd runs itself and for one under `daemonic run`
//! (which takes systemd's socket by name instead of binding it again).

use daemonic_test_support as support;

mod env;

use std::path::Path;
use std::process::Command;
use std::time::Duration;

use env::{Env, config, fixture};
use support::sandbox::Sandbox;
use support::{example, stderr, stdout, wait_for, word_value};

const LIMIT: Duration = Duration::from_secs(20);
const STAGE: &str = "/run/e2e";
const CONFIG: &str = "/run/e2e/daemonic.toml";

#[test]
fn the_pair_verifies_clean() {
    let found = Command::new("systemd-analyze").arg("--version").output();
    if !found.is_ok_and(|o| o.status.success()) {
        eprintln!("skipped: systemd-analyze not found (install the systemd package)");
        return;
    }
    let env = Env::new("socket-verify");
    let file = config(
        &env,
        &format!(
            "[services.web]\ncommand = [\"{}\"]\nready = \"notify\"\nfd-store-max = 4\nsocket = {{ web = \"tcp:127.0.0.1:8080,backlog=64\" }}\n\n\
             [services.api]\ncommand = [\"{}\"]\nlog-file = \"{}\"\nsocket = [\"http=tcp:8081,reuseport\", \"admin=unix:/run/api/admin.sock,mode=0660\"]\n",
            fixture("socket-http"),
            fixture("socket-http"),
            env.dir.join("api.log").display()
        ),
    );
    let units = env.dir.join("units");
    for name in ["web", "api"] {
        let out = env.daemonic(&[
            "install",
            name,
            "--system",
            "-f",
            &file.display().to_string(),
            "--unit-dir",
            &units.display().to_string(),
        ]);
        assert!(out.status.success(), "{}", stderr(&out));
    }
    let mut names: Vec<String> = std::fs::read_dir(&units)
        .unwrap()
        .map(|e| e.unwrap().file_name().to_string_lossy().into_owned())
        .collect();
    names.sort();
    assert_eq!(
        names,
        [
            "api-admin.socket",
            "api-http.socket",
            "api.service",
            "web.service",
            "web.socket"
        ]
    );
    let out = Command::new("systemd-analyze")
        .arg("verify")
        .args(names.iter().map(|n| units.join(n)))
        .output()
        .unwrap();
    let said = format!("{}{}", stdout(&out), stderr(&out));
    assert!(out.status.success() && said.trim().is_empty(), "{said}");
    let web = std::fs::read_to_string(units.join("web.service")).unwrap();
    assert!(web.contains("\nSockets=web.socket\n"), "{web}");
    assert!(web.contains("\nFileDescriptorStoreMax=4\n"), "{web}");
    let api = std::fs::read_to_string(units.join("api.service")).unwrap();
    assert!(
        api.contains("--socket=http=tcp:8081,reuseport"),
        "daemonic run gets the names: {api}"
    );
    required_activation_runs_daemonic_run(&env, &file);
}

/// `socket-activation = "required"` is daemonic's check, not systemd's: only then does the
/// unit run `daemonic run`.
fn required_activation_runs_daemonic_run(env: &Env, file: &Path) {
    let out = env.daemonic(&["unit", "web", "--system", "-f", &file.display().to_string()]);
    assert!(!stdout(&out).contains("daemonic run"), "{}", stdout(&out));
    let required = file.with_file_name("required.toml");
    std::fs::write(
        &required,
        format!(
            "[services.web]\ncommand = [\"{}\"]\nsocket-activation = \"required\"\nsocket = [\"web=tcp:8080\"]\n",
            fixture("socket-http")
        ),
    )
    .unwrap();
    let out = env.daemonic(&[
        "unit",
        "web",
        "--system",
        "-f",
        &required.display().to_string(),
    ]);
    let unit = stdout(&out);
    assert!(
        unit.contains(" run ") && unit.contains("--socket-activation=required"),
        "{unit}"
    );
}

/// A booted sandbox with daemonic, socket-http and `config` staged in `/run/e2e`.
fn stage(config: &str) -> Option<Sandbox> {
    let sb = Sandbox::boot()?;
    sb.stage(
        STAGE,
        &[
            Path::new(env!("CARGO_BIN_EXE_daemonic")),
            &example("socket-http"),
        ],
        config,
    );
    Some(sb)
}

/// The body `socket-http` answers on port 8080 inside the sandbox.
fn get(sb: &Sandbox) -> String {
    sb.ok(&["curl", "-sS", "--max-time", "10", "http://127.0.0.1:8080/"])
}

/// Installs service `web` of `config`, starts only its socket, and checks that the first
/// connection starts the service with the socket named, and that a restart keeps it.
fn activated_by_a_connection(config: &str) {
    let Some(sb) = stage(config) else {
        return;
    };
    let installed = sb.ok(&[
        "/run/e2e/daemonic",
        "install",
        "web",
        "--enable",
        "-f",
        CONFIG,
    ]);
    assert!(
        installed.contains("installed: /etc/systemd/system/web.socket"),
        "{installed}"
    );
    assert!(
        installed.contains("enabled: web.socket web.service"),
        "{installed}"
    );
    sb.ok(&["systemctl", "start", "web.socket"]);
    assert_eq!(sb.is_active("web.socket"), "active");
    assert_eq!(
        sb.is_active("web.service"),
        "inactive",
        "not started before a connection"
    );
    let first = get(&sb);
    assert_eq!(word_value(&first, "names"), "web", "{first}");
    wait_for("web.service active", LIMIT, || {
        (sb.is_active("web.service") == "active").then_some(())
    });
    sb.ok(&["systemctl", "restart", "web.service"]);
    let second = get(&sb);
    assert_eq!(word_value(&second, "names"), "web", "{second}");
    assert_ne!(
        word_value(&first, "pid"),
        word_value(&second, "pid"),
        "a new program"
    );
    assert_eq!(sb.is_active("web.socket"), "active");
}

#[test]
fn under_systemd_the_socket_starts_the_program_on_the_first_connection() {
    activated_by_a_connection(&format!(
        "[services.web]\ncommand = [\"{STAGE}/socket-http\"]\nready = \"notify\"\nsocket = {{ web = \"tcp:127.0.0.1:8080\" }}\n"
    ));
}

#[test]
fn under_daemonic_run_the_socket_comes_from_systemd_by_name() {
    // A give-up hook makes the unit run `daemonic run` (systemd has none).
    activated_by_a_connection(&format!(
        "[services.web]\ncommand = [\"{STAGE}/socket-http\"]\non-give-up = \"true\"\nsocket = {{ web = \"tcp:127.0.0.1:8080\" }}\n"
    ));
}
