//! launchd plists from `daemonic.toml`: rendered on any platform, read back with an
//! independent parser (the `plist` crate), and compared byte for byte with the expected
//! files in `tests/expected/` — what `daemonic install` would put in
//! `/Library/LaunchDaemons`.
//!
//! The rendering is machine-independent when the file gives absolute paths and the
//! context fixes the `daemonic` binary and the default log, as here. A failing comparison
//! prints the new rendering whole; once the change is meant, `DAEMONIC_BLESS=1 cargo test
//! --test launchd` writes it to the expected file (review the diff before committing).

use daemonic_test_support as support;

use std::path::{Path, PathBuf};

use daemonic_cli::config::{self, Config};
use daemonic_cli::units::launchd::{self, PlistHost, Scope};
use plist::{Dictionary, Value};
use support::TempDir;

/// Loads `text` as a config file, the way `daemonic install` does.
fn load(dir: &TempDir, text: &str) -> Config {
    let file = dir.join("daemonic.toml");
    std::fs::write(&file, text).unwrap();
    config::load(&file).unwrap_or_else(|e| panic!("{e:#}"))
}

fn context(scope: Scope, name: &str) -> PlistHost {
    PlistHost {
        daemonic: PathBuf::from("/usr/local/bin/daemonic"),
        scope,
        default_log: scope.default_log(Path::new("/Users/ada"), name),
    }
}

fn render(config: &Config, name: &str, scope: Scope) -> launchd::Plist {
    let def = config.get(name).unwrap();
    launchd::plist(def, &context(scope, name)).unwrap_or_else(|e| panic!("{e:#}"))
}

/// The plist as the `plist` crate reads it: its top-level dictionary.
fn parse(text: &str) -> Dictionary {
    let value = Value::from_reader_xml(text.as_bytes())
        .unwrap_or_else(|e| panic!("not a property list: {e}\n{text}"));
    value.into_dictionary().expect("a dictionary at the top")
}

fn strings(d: &Dictionary, key: &str) -> Vec<String> {
    d.get(key)
        .and_then(Value::as_array)
        .unwrap_or_else(|| panic!("{key} is not an array"))
        .iter()
        .map(|v| v.as_string().unwrap().to_string())
        .collect()
}

fn string<'d>(d: &'d Dictionary, key: &str) -> &'d str {
    d.get(key)
        .and_then(Value::as_string)
        .unwrap_or_else(|| panic!("{key} is not a string: {:?}", d.get(key)))
}

fn integer(d: &Dictionary, key: &str) -> i64 {
    d.get(key)
        .and_then(Value::as_signed_integer)
        .unwrap_or_else(|| panic!("{key} is not an integer: {:?}", d.get(key)))
}

fn expected(file: &str) -> String {
    let path = Path::new(env!("CARGO_MANIFEST_DIR"))
        .join("tests/expected")
        .join(file);
    std::fs::read_to_string(&path).unwrap_or_else(|e| panic!("read {}: {e}", path.display()))
}

fn assert_same(rendered: &str, file: &str) {
    if std::env::var_os("DAEMONIC_BLESS").is_some() {
        let path = Path::new(env!("CARGO_MANIFEST_DIR"))
            .join("tests/expected")
            .join(file);
        std::fs::write(&path, rendered).unwrap();
        eprintln!("wrote {}", path.display());
        return;
    }
    assert!(
        rendered == expected(file),
        "the rendering differs from tests/expected/{file}; it is now:\n{rendered}"
    );
}

const WEB: &str = r#"
[defaults]
restart = "always"
stop-timeout = "5s"

[services.web]
command = ["/usr/bin/env", "python3", "-m", "http.server", "8080"]
dir = "/srv/web"
backoff = "2s"
env = { PORT = 8080, GREETING = "fish & <chips>" }
user = "nobody"
group = "daemon"
umask = "027"
log-file = "/var/log/web/out.log"
log-stderr-file = "/var/log/web/err.log"
"#;

#[test]
fn a_plain_service_becomes_a_launchd_job_that_runs_the_program_itself() {
    let dir = TempDir::new("launchd-web");
    let config = load(&dir, WEB);
    let job = render(&config, "web", Scope::System);
    assert_eq!(job.label, "dev.daemonic.web");
    assert!(
        job.supervised_because.is_empty(),
        "{:?}",
        job.supervised_because
    );

    let d = parse(&job.text);
    assert_eq!(string(&d, "Label"), "dev.daemonic.web");
    assert_eq!(
        strings(&d, "ProgramArguments"),
        ["/usr/bin/env", "python3", "-m", "http.server", "8080"]
    );
    assert_eq!(string(&d, "WorkingDirectory"), "/srv/web");
    let env = d
        .get("EnvironmentVariables")
        .and_then(Value::as_dictionary)
        .unwrap();
    assert_eq!(string(env, "PORT"), "8080");
    assert_eq!(string(env, "GREETING"), "fish & <chips>");
    assert_eq!(string(&d, "UserName"), "nobody");
    assert_eq!(string(&d, "GroupName"), "daemon");
    assert_eq!(integer(&d, "Umask"), 0o027);
    assert_eq!(d.get("RunAtLoad").and_then(Value::as_boolean), Some(true));
    assert_eq!(d.get("KeepAlive").and_then(Value::as_boolean), Some(true));
    assert_eq!(integer(&d, "ThrottleInterval"), 2);
    assert_eq!(integer(&d, "ExitTimeOut"), 5);
    assert_eq!(string(&d, "StandardOutPath"), "/var/log/web/out.log");
    assert_eq!(string(&d, "StandardErrorPath"), "/var/log/web/err.log");
    assert_eq!(
        job.log_files,
        [
            Path::new("/var/log/web/out.log"),
            Path::new("/var/log/web/err.log")
        ]
    );

    assert_same(&job.text, "web.plist");
}

const MORE: &str = r#"
[services.worker]
command = "/bin/sh -c 'exec worker --queue jobs'"
dir = "/srv/worker"
restart = "on-failure"
backoff = "1500ms"
stop-timeout = "30s"
user = "nobody"
env = { QUEUE = "jobs" }

[services.secret]
command = ["/bin/sh", "-c", "exec worker"]
env-file = "worker.env"

[services.once]
command = ["/bin/sh", "-c", "echo migrated"]
dir = "/srv"
restart = "never"

[services.api]
command = ["/usr/bin/env", "api", "--port", "9000"]
dir = "/srv/api"
restart = "always"
ready = "tcp:127.0.0.1:9000"
liveness = "http://127.0.0.1:9000/health"
stop-signal = "INT"
log-file = "/var/log/api.log"
log-max-size = "1M"
start-limit = "5/1m"
"#;

#[test]
fn on_failure_never_env_files_users_and_default_logs_map_to_their_keys() {
    let dir = TempDir::new("launchd-more");
    std::fs::write(dir.join("worker.env"), "# a secret\nTOKEN='s3cret'\n").unwrap();
    let config = load(&dir, MORE);

    let worker = render(&config, "worker", Scope::System);
    assert!(
        worker.supervised_because.is_empty(),
        "{:?}",
        worker.supervised_because
    );
    let d = parse(&worker.text);
    assert_eq!(
        strings(&d, "ProgramArguments"),
        ["/bin/sh", "-c", "exec worker --queue jobs"]
    );
    let keep_alive = d.get("KeepAlive").and_then(Value::as_dictionary).unwrap();
    assert_eq!(
        keep_alive.get("SuccessfulExit").and_then(Value::as_boolean),
        Some(false)
    );
    assert_eq!(integer(&d, "ThrottleInterval"), 2, "1.5 s rounds up");
    assert_eq!(integer(&d, "ExitTimeOut"), 30);
    assert_eq!(string(&d, "UserName"), "nobody");
    assert!(
        d.get("GroupName").is_none(),
        "the user's own group, as launchd sets it"
    );
    let env = d
        .get("EnvironmentVariables")
        .and_then(Value::as_dictionary)
        .unwrap();
    assert_eq!(string(env, "QUEUE"), "jobs");
    // No log-file: the default one, for both streams.
    assert_eq!(
        string(&d, "StandardOutPath"),
        "/var/log/daemonic/worker.log"
    );
    assert_eq!(
        string(&d, "StandardErrorPath"),
        "/var/log/daemonic/worker.log"
    );

    let once = parse(&render(&config, "once", Scope::System).text);
    assert_eq!(
        once.get("KeepAlive").and_then(Value::as_boolean),
        Some(false)
    );
    assert!(
        once.get("ThrottleInterval").is_none(),
        "no restarts, no throttle"
    );
    assert_eq!(
        integer(&once, "ExitTimeOut"),
        10,
        "daemonic's default stop timeout"
    );
    assert!(once.get("EnvironmentVariables").is_none());

    // An env file stays a file that daemonic reads at each start: its secrets are not
    // copied into a world-readable plist.
    let secret = render(&config, "secret", Scope::System);
    assert!(secret.supervised_because.join(" ").contains("env-file"));
    assert!(!secret.text.contains("s3cret"), "{}", secret.text);
    assert!(secret.text.contains("--env-file="), "{}", secret.text);

    // As an agent, the default log is in the user's Library.
    let agent = parse(&render(&config, "once", Scope::User).text);
    assert_eq!(
        string(&agent, "StandardOutPath"),
        "/Users/ada/Library/Logs/daemonic/once.log"
    );
}

#[test]
fn a_service_that_needs_what_launchd_lacks_runs_under_daemonic_run() {
    let dir = TempDir::new("launchd-api");
    std::fs::write(dir.join("worker.env"), "TOKEN=x\n").unwrap();
    let config = load(&dir, MORE);
    let job = render(&config, "api", Scope::System);
    let why = job.supervised_because.join("; ");
    for reason in [
        "ready is a probe",
        "liveness",
        "stop-signal = SIGINT",
        "start-limit",
        "log rotation",
    ] {
        assert!(why.contains(reason), "{reason:?} not in {why:?}");
    }
    let d = parse(&job.text);
    let argv = strings(&d, "ProgramArguments");
    assert_eq!(
        argv[..4],
        ["/usr/local/bin/daemonic", "run", "--name", "api"]
    );
    let dashes = argv.iter().position(|a| a == "--").unwrap();
    assert_eq!(
        argv[dashes + 1..],
        ["/usr/bin/env", "api", "--port", "9000"]
    );
    // The service's own flags, for daemonic run to apply.
    for flag in [
        "--ready=tcp:127.0.0.1:9000",
        "--stop-signal=INT",
        "--log-file=/var/log/api.log",
    ] {
        assert!(
            argv[4..dashes].iter().any(|a| a == flag),
            "{flag} not in {argv:?}"
        );
    }
    // launchd restarts daemonic only if daemonic itself crashed.
    let keep_alive = d.get("KeepAlive").and_then(Value::as_dictionary).unwrap();
    assert_eq!(
        keep_alive.get("Crashed").and_then(Value::as_boolean),
        Some(true)
    );
    assert!(d.get("ThrottleInterval").is_none());
    assert_eq!(integer(&d, "ExitTimeOut"), 10 + 5, "stop timeout + margin");
    assert!(d.get("UserName").is_none(), "daemonic switches user itself");
    assert_eq!(string(&d, "StandardErrorPath"), "/var/log/daemonic/api.log");
    assert!(
        job.text.contains("Runs under `daemonic run`"),
        "{}",
        job.text
    );

    assert_same(&job.text, "api.plist");
}

#[test]
fn what_launchd_cannot_do_at_all_is_refused_with_the_reason() {
    let dir = TempDir::new("launchd-refused");
    let config = load(
        &dir,
        r#"
[services.bind]
command = ["/bin/sh", "-c", "exec server"]
user = "nobody"
keep-caps = "net_bind_service"

[services.mine]
command = ["/bin/sh", "-c", "exec server"]
user = "nobody"
"#,
    );
    let bind = config.get("bind").unwrap();
    let err = launchd::plist(bind, &context(Scope::System, "bind")).unwrap_err();
    assert!(format!("{err:#}").contains("keep-caps"), "{err:#}");
    let mine = config.get("mine").unwrap();
    let err = launchd::plist(mine, &context(Scope::User, "mine")).unwrap_err();
    let text = format!("{err:#}");
    assert!(
        text.contains("service mine") && text.contains("system daemon"),
        "{text}"
    );
    // The same service as a system daemon is fine.
    launchd::plist(mine, &context(Scope::System, "mine")).unwrap();
}

#[test]
fn daemonic_unit_launchd_prints_the_same_plist_as_the_renderer() {
    let dir = TempDir::new("launchd-cli");
    let config = load(
        &dir,
        "[services.web]\ncommand = \"/bin/sleep 100\"\nrestart = \"always\"\nlog-file = \"/var/log/web.log\"\n",
    );
    let out = support::run(
        std::process::Command::new(env!("CARGO_BIN_EXE_daemonic"))
            .args([
                "unit",
                "--launchd",
                "web",
                "--daemonic",
                "/usr/local/bin/daemonic",
                "-f",
            ])
            .arg(dir.join("daemonic.toml")),
    );
    assert!(out.status.success(), "{}", support::stderr(&out));
    let printed = String::from_utf8(out.stdout).unwrap();
    assert_eq!(printed, render(&config, "web", Scope::System).text);
    let job = parse(&printed);
    assert_eq!(string(&job, "Label"), "dev.daemonic.web");
    assert_eq!(strings(&job, "ProgramArguments"), ["/bin/sleep", "100"]);
}

#[test]
fn a_program_that_daemonizes_itself_runs_under_daemonic_run() {
    let dir = TempDir::new("launchd-forking");
    let config = load(
        &dir,
        "[services.web]\ncommand = [\"/usr/bin/env\", \"nginx\"]\n\
         ready = \"forking:/usr/local/var/run/nginx.pid\"\n",
    );
    let job = render(&config, "web", Scope::System);
    let why = job.supervised_because.join("; ");
    assert!(why.contains("ready = forking"), "{why}");
    let argv = strings(&parse(&job.text), "ProgramArguments");
    assert_eq!(argv[..2], ["/usr/local/bin/daemonic", "run"]);
    assert!(
        argv.iter()
            .any(|a| a == "--ready=forking:/usr/local/var/run/nginx.pid"),
        "{argv:?}"
    );
}
