use std::time::{Duration, Instant};

use super::*;

/// The service `web` with these flags (`--key=value` or `--switch`), as a file gives it.
fn def(flags: &[&str], command: &[&str]) -> Def {
    let values: Vec<(String, Vec<String>)> = flags
        .iter()
        .map(|f| {
            let f = f.trim_start_matches('-');
            match f.split_once('=') {
                Some((k, v)) => (k.to_string(), vec![v.to_string()]),
                None => (f.to_string(), vec!["true".to_string()]),
            }
        })
        .collect();
    let command = command.iter().map(|c| c.to_string()).collect();
    Def::new("web".into(), &values, command, Vec::new()).unwrap()
}

const DEFAULT_LOG: &str = r"C:\ProgramData\daemonic\logs\web.log";

#[test]
fn a_service_becomes_launch_arguments_that_read_back_the_same() {
    let d = def(
        &[
            r"--dir=C:\srv\web",
            "--env=PORT=8080",
            r"--env-file=-C:\srv\web.env",
            "--restart=on-failure",
            "--success-exit-codes=0,3",
            "--backoff=1500ms",
            "--backoff-max=30s",
            "--start-limit=5/1m",
            "--ready=grace",
            "--grace=2s",
            "--stop-timeout=20s",
        ],
        &[r"C:\srv\web.exe", "--port", "8080"],
    );
    let spec = Spec::from_def(&d, Path::new(DEFAULT_LOG)).unwrap();
    assert_eq!(spec.service_name(), "daemonic-web");
    assert_eq!(spec.restart, Restart::OnFailure);
    assert_eq!(spec.success_codes, [0, 3]);
    assert_eq!(spec.backoff, Duration::from_millis(1500));
    assert_eq!(spec.start_limit, Some((5, Duration::from_secs(60))));
    assert_eq!(
        spec.log_file,
        Path::new(DEFAULT_LOG),
        "no log-file: the default"
    );
    assert_eq!(spec.env, [("PORT".to_string(), "8080".to_string())]);
    assert_eq!(
        spec.env_files,
        [PathBuf::from(r"-C:\srv\web.env")],
        "read at each start, not now"
    );

    let args = spec.to_args();
    assert_eq!(args[..2], ["windows-service", "--name=web"]);
    assert_eq!(
        args[args.len() - 4..],
        ["--", r"C:\srv\web.exe", "--port", "8080"]
    );
    assert_eq!(Spec::from_args(&args).unwrap(), spec);
}

#[test]
fn defaults_are_daemonics_own() {
    let spec = Spec::from_def(&def(&[], &["prog"]), Path::new("web.log")).unwrap();
    assert_eq!(spec.restart, Restart::OnFailure);
    assert_eq!(spec.success_codes, [0]);
    assert_eq!(spec.backoff, Duration::from_secs(1));
    assert_eq!(spec.backoff_multiplier, 2.0);
    assert_eq!(spec.backoff_max, Duration::from_secs(60));
    // The same default as everywhere else (`--backoff-reset-after`, 1 s).
    assert_eq!(spec.backoff_reset_after, Duration::from_secs(1));
    assert_eq!(spec.grace, Duration::from_secs(1));
    assert_eq!(spec.stop_timeout, Duration::from_secs(10));
    assert_eq!(Spec::from_args(&spec.to_args()).unwrap(), spec);
}

#[test]
fn what_the_windows_service_cannot_do_is_refused_by_name() {
    let d = def(
        &[
            "--user=www",
            "--stop-signal=INT",
            "--ready=tcp:8080",
            "--liveness=tcp:8080",
            "--log-max-size=1M",
            "--user=www",
        ],
        &["prog"],
    );
    let err = format!("{:#}", Spec::from_def(&d, Path::new("l")).unwrap_err());
    assert!(
        err.contains("service web: not supported by the Windows service: user, stop-signal, ready, liveness, log-max-size"),
        "{err}"
    );
    let bad = [
        "windows-service",
        "--name=web",
        "--watchdog=1s",
        "--",
        "prog",
    ]
    .map(String::from);
    assert!(format!("{:#}", Spec::from_args(&bad).unwrap_err()).contains("--watchdog"));
}

fn spec(restart: Restart) -> Spec {
    let mut s = Spec::from_def(&def(&[], &["prog"]), Path::new("l")).unwrap();
    s.restart = restart;
    s
}

#[test]
fn restarts_follow_the_policy_with_doubling_capped_backoff() {
    let t0 = Instant::now();
    let short = Duration::from_millis(100);
    let mut r = Restarts::new(&spec(Restart::OnFailure));
    r.started(t0);
    assert_eq!(
        r.exited(1, short, t0),
        Next::Restart(Duration::from_secs(1))
    );
    assert_eq!(
        r.exited(1, short, t0),
        Next::Restart(Duration::from_secs(2))
    );
    assert_eq!(
        r.exited(1, short, t0),
        Next::Restart(Duration::from_secs(4))
    );
    // A run longer than backoff-reset-after forgives the crashes before it.
    assert_eq!(
        r.exited(1, Duration::from_secs(11), t0),
        Next::Restart(Duration::from_secs(1))
    );
    for _ in 0..10 {
        r.exited(1, short, t0);
    }
    assert_eq!(
        r.exited(1, short, t0),
        Next::Restart(Duration::from_secs(60)),
        "capped"
    );
    assert_eq!(
        r.exited(0, short, t0),
        Next::End("exited with status 0".into())
    );

    let mut never = Restarts::new(&spec(Restart::Never));
    assert!(matches!(never.exited(1, short, t0), Next::End(_)));
    let mut always = Restarts::new(&spec(Restart::Always));
    assert!(matches!(always.exited(0, short, t0), Next::Restart(_)));
}

#[test]
fn the_start_limit_gives_up() {
    let mut s = spec(Restart::Always);
    s.start_limit = Some((2, Duration::from_secs(60)));
    let mut r = Restarts::new(&s);
    let t0 = Instant::now();
    let short = Duration::from_millis(10);
    r.started(t0);
    let Next::Restart(delay) = r.exited(1, short, t0) else {
        panic!("the second start is within the limit")
    };
    r.started(t0 + delay);
    match r.exited(1, short, t0 + delay) {
        Next::End(why) => assert!(why.contains("gave up: 2 starts within 60 s"), "{why}"),
        other => panic!("{other:?}"),
    }
}

#[test]
fn command_lines_are_quoted_as_the_service_manager_stores_them() {
    let args: Vec<String> = ["--name=web", "", "a b", r#"say "hi""#, r"C:\dir\", r"x\y"]
        .map(String::from)
        .to_vec();
    assert_eq!(
        command_line(r"C:\Program Files\daemonic.exe", &args),
        r#""C:\Program Files\daemonic.exe" --name=web "" "a b" "say \"hi\"" C:\dir\ x\y"#
    );
    // A trailing backslash inside quotes is doubled, so the quote still closes.
    assert_eq!(command_line("p", &[r"a b\".to_string()]), r#"p "a b\\""#);
}
