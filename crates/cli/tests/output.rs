//! One view of many services' output: `daemonic logs` of several services (merged in time
//! order, prefixed `name | `, followed), end to end with the real binary, real
//! supervisors and real log files.

use daemonic_test_support as support;

mod env;

use std::io::{BufRead, BufReader};
use std::path::{Path, PathBuf};
use std::process::{Child, Stdio};
use std::sync::mpsc::{Receiver, channel};
use std::time::{Duration, Instant};

use env::Env;
use support::*;

/// A `daemonic` child whose stdout lines arrive on a channel; killed on drop.
struct Reading {
    child: Child,
    lines: Receiver<String>,
    seen: Vec<String>,
}

impl Reading {
    fn start(env: &Env, args: &[&str], dir: &Path) -> Reading {
        let mut child = env
            .cmd()
            .args(args)
            .current_dir(dir)
            .stdout(Stdio::piped())
            .spawn()
            .unwrap();
        let out = child.stdout.take().unwrap();
        let (tx, lines) = channel();
        std::thread::spawn(move || {
            for line in BufReader::new(out).lines().map_while(Result::ok) {
                if tx.send(line).is_err() {
                    return;
                }
            }
        });
        Reading {
            child,
            lines,
            seen: Vec::new(),
        }
    }

    /// Waits (10 s at most) for a line equal to `want`; every line seen so far.
    fn wait_for(&mut self, want: &str) -> &[String] {
        let deadline = Instant::now() + Duration::from_secs(10);
        while !self.seen.iter().any(|l| l == want) {
            let left = deadline.saturating_duration_since(Instant::now());
            match self.lines.recv_timeout(left) {
                Ok(l) => self.seen.push(l),
                Err(_) => panic!("no line {want:?}; saw {:#?}", self.seen),
            }
        }
        &self.seen
    }
}

impl Drop for Reading {
    fn drop(&mut self) {
        let _ = self.child.kill();
        let _ = self.child.wait();
    }
}

const T1: &str = "2026-01-01T10:00:00.000001Z";
const T2: &str = "2026-01-01T10:00:00.000002Z";
const T3: &str = "2026-01-01T10:00:00.000003Z";

#[test]
fn logs_of_several_services_merge_by_their_timestamps_with_a_prefix_each() {
    let env = Env::new("out-merge");
    let state = env.dir.join("state");
    std::fs::create_dir_all(&state).unwrap();
    let (a, web) = (
        rotating_writer(&state.join("a.log")),
        rotating_writer(&state.join("web.log")),
    );
    a.write_line(format!("{T1} a first").as_bytes());
    a.write_line(format!("{T3} a third").as_bytes());
    a.write_line(b"a's line without a time");
    web.write_line(format!("{T2} web second").as_bytes());
    let want = format!(
        "a   | {T1} a first\nweb | {T2} web second\na   | {T3} a third\na   | a's line without a time\n"
    );
    let out = env.daemonic(&["logs", "a", "web"]);
    assert!(out.status.success(), "{out:?}");
    assert_eq!(stdout(&out), want);

    // No NAME: the services of the config file (-c), in the same view.
    let file = env.dir.join("daemonic.toml");
    std::fs::write(
        &file,
        "[services.web]\ncommand = \"sleep 1\"\n[services.a]\ncommand = \"sleep 1\"\n",
    )
    .unwrap();
    let out = env.daemonic(&["logs", "-c", file.to_str().unwrap()]);
    assert_eq!(stdout(&out), want, "{out:?}");
    // ... and ./daemonic.toml by default.
    let out = run(env.cmd().arg("logs").current_dir(env.dir.join(".")));
    assert_eq!(stdout(&out), want, "{out:?}");

    // One NAME: as before, no prefix.
    let out = env.daemonic(&["logs", "web"]);
    assert_eq!(stdout(&out), format!("{T2} web second\n"));
    let out = env.daemonic(&["logs", "a", "web", "--file", "/dev/null"]);
    assert!(!out.status.success(), "{out:?}");
}

#[test]
fn logs_follow_of_several_services_prints_new_lines_with_their_prefix() {
    let env = Env::new("out-follow");
    let state = env.dir.join("state");
    std::fs::create_dir_all(&state).unwrap();
    let (a, b) = (
        rotating_writer(&state.join("a.log")),
        rotating_writer(&state.join("bb.log")),
    );
    a.write_line(b"a old");
    b.write_line(b"bb old");
    let mut reading = Reading::start(&env, &["logs", "-f", "a", "bb"], &env.dir.join("."));
    reading.wait_for("bb | bb old");
    // Written after `logs -f` printed the tails: followed, with its prefix.
    b.write_line(b"bb new");
    reading.wait_for("bb | bb new");
    a.write_line(b"a new");
    let seen = reading.wait_for("a  | a new");
    assert!(seen.contains(&"a  | a old".to_string()), "{seen:#?}");
    // A service whose log appears only later is picked up.
    let c = rotating_writer(&state.join("c.log"));
    drop(reading);
    let mut reading = Reading::start(
        &env,
        &["logs", "-f", "a", "bb", "nolog"],
        &env.dir.join("."),
    );
    reading.wait_for("a     | a new");
    let late = rotating_writer(&state.join("nolog.log"));
    late.write_line(b"at last");
    reading.wait_for("nolog | at last");
    drop(c);
}

/// A project whose two services print a line each at start, and `logs -f` of the project
/// seeing a line that one of them prints later (when the test creates `go`).
#[test]
fn logs_follow_of_a_running_project_shows_every_service_prefixed() {
    let env = Env::new("out-project");
    let go = env.dir.join("go");
    let late = format!(
        "echo db up; while [ ! -e {} ]; do sleep 0.05; done; echo db late; exec sleep 600",
        go.display()
    );
    let file: PathBuf = env.dir.join("daemonic.toml");
    std::fs::write(
        &file,
        format!(
            "[defaults]\nlog-timestamps = true\ngrace = \"100ms\"\n\n\
             [services.db]\ncommand = [\"/bin/sh\", \"-c\", {late:?}]\n\n\
             [services.web]\ncommand = [\"/bin/sh\", \"-c\", \"echo web up; exec sleep 600\"]\n"
        ),
    )
    .unwrap();
    let out = env.daemonic(&["up", "-f", file.to_str().unwrap()]);
    assert!(out.status.success(), "{out:?}");
    let mut reading = Reading::start(&env, &["logs", "-f"], &env.dir.join("."));
    let ends = |want: &'static str| move |l: &String| l.ends_with(want);
    let deadline = Instant::now() + Duration::from_secs(10);
    while !(reading.seen.iter().any(ends(" db up")) && reading.seen.iter().any(ends(" web up"))) {
        let left = deadline.saturating_duration_since(Instant::now());
        match reading.lines.recv_timeout(left) {
            Ok(l) => reading.seen.push(l),
            Err(_) => panic!("no start lines; saw {:#?}", reading.seen),
        }
    }
    std::fs::write(&go, "").unwrap();
    while !reading.seen.iter().any(ends(" db late")) {
        let left = deadline.saturating_duration_since(Instant::now());
        match reading.lines.recv_timeout(left) {
            Ok(l) => reading.seen.push(l),
            Err(_) => panic!("no late line; saw {:#?}", reading.seen),
        }
    }
    let late = reading
        .seen
        .iter()
        .find(|l| l.ends_with(" db late"))
        .unwrap();
    assert!(
        late.starts_with("db  | 20"),
        "a prefix, then the time: {late}"
    );
    assert!(
        reading
            .seen
            .iter()
            .all(|l| l.starts_with("db  | ") || l.starts_with("web | ")),
        "{:#?}",
        reading.seen
    );
    let _ = env.daemonic(&["down", "-f", file.to_str().unwrap()]);
}

/// A file of two services that print and exit (web on stdout and stderr, db on stdout).
fn two_printers(env: &Env) -> PathBuf {
    let file = env.dir.join("daemonic.toml");
    std::fs::write(
        &file,
        "[services.web]\ncommand = [\"/bin/sh\", \"-c\", \"echo hello from web; echo oops >&2\"]\n\
         [services.db]\ncommand = [\"/bin/sh\", \"-c\", \"echo db here\"]\n",
    )
    .unwrap();
    file
}

fn sorted_lines(text: &str) -> Vec<&str> {
    let mut lines: Vec<&str> = text.lines().collect();
    lines.sort();
    lines
}

#[test]
fn run_f_prefixes_each_line_with_its_service_plain_when_piped() {
    let env = Env::new("out-run-plain");
    let file = two_printers(&env);
    let out = env.daemonic(&["run", "-f", file.to_str().unwrap()]);
    assert!(out.status.success(), "{out:?}");
    assert_eq!(
        sorted_lines(&stdout(&out)),
        ["db  | db here", "web | hello from web"],
        "{out:?}"
    );
    let err = String::from_utf8_lossy(&out.stderr);
    assert!(err.lines().any(|l| l == "web | oops"), "{err}");
    assert!(
        !stdout(&out).contains('\x1b'),
        "no colour without a terminal"
    );
}

#[test]
fn run_f_colours_the_names_on_a_terminal_unless_no_color() {
    if std::process::Command::new("script")
        .arg("--version")
        .output()
        .is_err()
    {
        eprintln!("skipping run_f_colours_the_names_on_a_terminal_unless_no_color: no script(1)");
        return;
    }
    let env = Env::new("out-run-colour");
    let file = two_printers(&env);
    let command = format!(
        "{} run -f {}",
        env!("CARGO_BIN_EXE_daemonic"),
        file.display()
    );
    let on_pty = |no_color: bool| {
        let mut c = std::process::Command::new("script");
        c.args(["-qec", &command, "/dev/null"])
            .env("DAEMONIC_STATE_DIR", env.dir.join("state"))
            .env_remove("NO_COLOR")
            .stdin(Stdio::null());
        if no_color {
            c.env("NO_COLOR", "1");
        }
        let out = run(&mut c);
        assert!(out.status.success(), "{out:?}");
        stdout(&out).replace('\r', "")
    };
    // web comes first in the file (cyan), db second (yellow); names padded to the longest.
    let text = on_pty(false);
    let lines = sorted_lines(&text);
    assert!(
        lines.contains(&"\x1b[36mweb\x1b[0m | hello from web"),
        "{text:?}"
    );
    assert!(lines.contains(&"\x1b[33mdb \x1b[0m | db here"), "{text:?}");
    assert!(lines.contains(&"\x1b[36mweb\x1b[0m | oops"), "{text:?}");
    let text = on_pty(true);
    let lines = sorted_lines(&text);
    assert!(lines.contains(&"web | hello from web"), "{text:?}");
    assert!(!text.contains('\x1b'), "NO_COLOR: {text:?}");
}

#[test]
fn up_attach_follows_the_project_logs_until_interrupted() {
    let env = Env::new("out-attach");
    let file = env.dir.join("daemonic.toml");
    std::fs::write(
        &file,
        "[defaults]\ngrace = \"100ms\"\n\n\
         [services.db]\ncommand = [\"/bin/sh\", \"-c\", \"echo db up; exec sleep 600\"]\n\n\
         [services.web]\ncommand = [\"/bin/sh\", \"-c\", \"echo web up; exec sleep 600\"]\n",
    )
    .unwrap();
    let mut reading = Reading::start(
        &env,
        &["up", "--attach", "-f", file.to_str().unwrap()],
        &env.dir.join("."),
    );
    reading.wait_for("db  | db up");
    reading.wait_for("web | web up");
    let pid = nix::unistd::Pid::from_raw(reading.child.id() as i32);
    nix::sys::signal::kill(pid, nix::sys::signal::Signal::SIGINT).unwrap();
    let status = reading.child.wait().unwrap();
    assert_eq!(
        status.code(),
        Some(0),
        "Ctrl-C ends the attached view quietly"
    );
    // The services go on.
    let out = env.daemonic(&["status", "web"]);
    assert!(stdout(&out).contains("ready"), "{out:?}");
    let _ = env.daemonic(&["down", "-f", file.to_str().unwrap()]);
}

/// A service that crashes three times, each run printing two lines: the tail `up` shows
/// has only the last run's (before the fix it had lines of earlier runs too).
#[test]
fn up_shows_a_failed_services_tail_from_its_last_run_only() {
    let env = Env::new("out-tail");
    let count = env.dir.join("count");
    let script = format!(
        "echo x >> {c}; n=$$(wc -l < {c}); echo run $$n starting; echo run $$n failed; exit 3",
        c = count.display()
    );
    let file = env.dir.join("daemonic.toml");
    std::fs::write(
        &file,
        format!(
            "[services.crashy]\ncommand = [\"/bin/sh\", \"-c\", {script:?}]\n\
             restart = \"on-failure\"\nbackoff = \"10ms\"\nstart-limit = \"3/1m\"\n"
        ),
    )
    .unwrap();
    let out = env.daemonic(&["up", "-f", file.to_str().unwrap(), "--timeout", "20s"]);
    assert_eq!(out.status.code(), Some(1), "{out:?}");
    let err = String::from_utf8_lossy(&out.stderr);
    let tail: Vec<&str> = err
        .lines()
        .skip_while(|l| !l.starts_with("daemonic: last lines of crashy's log"))
        .skip(1)
        .collect();
    assert!(
        tail.contains(&"  run 3 starting") && tail.contains(&"  run 3 failed"),
        "{err}"
    );
    assert!(
        !tail.iter().any(|l| {
            l.contains("run 1")
                || l.contains("run 2")
                || l.contains("restart")
                || l.contains("(pid")
        }),
        "lines of earlier runs: {err}"
    );
    // The log keeps every run, each after its start marker.
    let out = env.daemonic(&["logs", "crashy", "-n", "100"]);
    let log = stdout(&out);
    assert_eq!(
        log.matches("daemonic: crashy: started (pid ").count(),
        3,
        "{log}"
    );
    let _ = env.daemonic(&["down", "-f", file.to_str().unwrap()]);
}

/// Without NAME and without a config file here: every service of the state directory.
#[test]
fn logs_without_a_name_or_a_file_shows_the_state_directorys_services() {
    let env = Env::new("out-statedir");
    for name in ["one", "three"] {
        let script = format!("echo {name} says hi; exec sleep 600");
        let out = env.daemonic(&[
            "start", "--name", name, "--grace", "50ms", "--", "/bin/sh", "-c", &script,
        ]);
        assert!(out.status.success(), "{out:?}");
    }
    let empty = env.dir.join("elsewhere");
    std::fs::create_dir_all(&empty).unwrap();
    let deadline = Instant::now() + Duration::from_secs(10);
    loop {
        let out = run(env.cmd().arg("logs").current_dir(&empty));
        let text = stdout(&out);
        if text.contains("one   | one says hi") && text.contains("three | three says hi") {
            break;
        }
        assert!(Instant::now() < deadline, "{out:?}");
        std::thread::sleep(Duration::from_millis(20));
    }
    for name in ["one", "three"] {
        let _ = env.daemonic(&["stop", name]);
    }
}
