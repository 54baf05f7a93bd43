//! What a new user meets first: usage errors that say how to fix them (exit status 2),
//! shell completions and manual pages generated from the same definition as the parser.
//! A first service's life (logs, pid files, typos, restarts) is in `first_hour_services.rs`.

use daemonic_test_support as support;

mod env;

use std::process::Command;

use env::{Env, text};

#[test]
fn a_command_typed_without_the_double_dash_gets_the_fixed_line() {
    let env = Env::new("hint-dash");
    let out = env.daemonic(&["start", "--name", "x", "sleep", "1"]);
    assert_eq!(out.status.code(), Some(2), "{}", text(&out));
    assert!(
        text(&out).contains(
            "tip: the command to run goes after `--`: daemonic start --name x -- sleep 1"
        ),
        "{}",
        text(&out)
    );
}

#[test]
fn a_name_starting_with_a_dash_is_a_usage_error_with_the_right_tip() {
    let env = Env::new("hint-name");
    let out = env.daemonic(&["start", "--name", "-x", "--", "true"]);
    assert_eq!(out.status.code(), Some(2), "{}", text(&out));
    assert!(
        text(&out).contains("a service name cannot start with '-'"),
        "{}",
        text(&out)
    );
    assert!(!text(&out).contains("use '-- -x'"), "{}", text(&out));
    // `--name=-x` gets past clap; the name check refuses it, also with status 2.
    let out = env.daemonic(&["start", "--name=-x", "--", "true"]);
    assert_eq!(out.status.code(), Some(2), "{}", text(&out));
    assert!(
        text(&out).contains("not starting with '.' or '-'"),
        "{}",
        text(&out)
    );
}

#[test]
fn an_invalid_name_exits_2_and_a_long_one_is_cut_short() {
    let env = Env::new("long-name");
    let long = "a".repeat(300);
    for cmd in [
        vec!["start", "--name", &long, "--", "true"],
        vec!["stop", &long],
    ] {
        let out = env.daemonic(&cmd);
        assert_eq!(out.status.code(), Some(2), "{cmd:?}: {}", text(&out));
        let err = String::from_utf8_lossy(&out.stderr);
        assert!(err.contains("invalid service name"), "{err}");
        assert!(err.contains("(300 bytes)"), "{err}");
        assert!(err.len() < 200, "the name is not echoed in full: {err}");
    }
}

/// `--timeout 0` (or `0ms`, or `timeout = "0s"` in a file) is refused with the value named,
/// rather than accepted as "not ready within 0ns".
#[test]
fn a_zero_timeout_is_refused() {
    let env = Env::new("zero-timeout");
    for cmd in [
        vec!["start", "--name", "z", "--timeout", "0", "--", "true"],
        vec!["run", "--timeout", "0ms", "--", "true"],
    ] {
        let out = env.daemonic(&cmd);
        assert_eq!(out.status.code(), Some(2), "{cmd:?}: {}", text(&out));
        assert!(
            text(&out).contains("expected more than 0"),
            "{}",
            text(&out)
        );
    }
    let file = env.dir.join("daemonic.toml");
    std::fs::write(
        &file,
        "[services.z]\ncommand = \"true\"\ntimeout = \"0s\"\n",
    )
    .unwrap();
    let out = env.daemonic(&["check", "-f", file.to_str().unwrap()]);
    assert!(!out.status.success(), "{}", text(&out));
    assert!(
        text(&out).contains(":3:11: `timeout`: invalid duration \"0s\" (expected more than 0"),
        "{}",
        text(&out)
    );
}

#[test]
fn the_usage_line_does_not_show_the_state_dir_as_required() {
    // `Env` sets DAEMONIC_STATE_DIR, as a user's shell may.
    let env = Env::new("usage-line");
    let out = env.daemonic(&["start"]);
    assert_eq!(out.status.code(), Some(2));
    let usage = text(&out);
    assert!(usage.contains("Usage: daemonic start "), "{usage}");
    assert!(!usage.contains("--state-dir"), "{usage}");
    // The variable still works: `start` creates the state directory there (and fails,
    // since the program does not exist).
    let out = env.daemonic(&["start", "--name", "t", "--", "/nonexistent/program"]);
    assert_eq!(out.status.code(), Some(127), "{}", text(&out));
    assert!(env.dir.join("state").is_dir());
}

#[test]
fn completion_scripts_name_every_subcommand_and_parse_in_their_shell() {
    let env = Env::new("completions");
    for (shell, check) in [
        ("bash", ["bash", "-n"]),
        ("zsh", ["zsh", "-n"]),
        ("fish", ["fish", "--no-execute"]),
    ] {
        let out = env.daemonic(&["completions", shell]);
        assert!(out.status.success(), "{shell}: {}", text(&out));
        let script = String::from_utf8(out.stdout).unwrap();
        for sub in [
            "start",
            "stop",
            "status",
            "logs",
            "up",
            "install",
            "completions",
        ] {
            assert!(script.contains(sub), "{shell} script lacks {sub}");
        }
        assert!(
            script.contains("--stop-timeout"),
            "{shell} script lacks start's flags"
        );
        let file = env.dir.join(&format!("daemonic.{shell}"));
        std::fs::write(&file, &script).unwrap();
        match Command::new(check[0]).arg(check[1]).arg(&file).output() {
            Ok(o) => assert!(o.status.success(), "{shell} -n: {}", text(&o)),
            Err(_) => eprintln!(
                "skipping the {shell} syntax check: {} is not installed",
                check[0]
            ),
        }
    }
    let out = env.daemonic(&["completions", "tcsh"]);
    assert_eq!(
        out.status.code(),
        Some(2),
        "an unknown shell is a usage error"
    );
}

#[test]
fn manual_pages_cover_every_subcommand_and_render() {
    let env = Env::new("man");
    let out = env.daemonic(&["man"]);
    assert!(out.status.success(), "{}", text(&out));
    let page = String::from_utf8(out.stdout).unwrap();
    assert!(page.contains(".TH daemonic 1"), "{page}");
    let dir = env.dir.join("man1");
    let out = env.daemonic(&["man", "--dir", dir.to_str().unwrap()]);
    assert!(out.status.success(), "{}", text(&out));
    for sub in [
        "start", "stop", "status", "logs", "up", "down", "check", "unit", "install",
    ] {
        let path = dir.join(format!("daemonic-{sub}.1"));
        let page =
            std::fs::read_to_string(&path).unwrap_or_else(|e| panic!("{}: {e}", path.display()));
        assert!(
            page.contains(&format!(".TH daemonic-{sub} 1")),
            "{}",
            path.display()
        );
    }
    let start = std::fs::read_to_string(dir.join("daemonic-start.1")).unwrap();
    assert!(
        start.contains("stop\\-timeout"),
        "start's page documents its flags"
    );
    // Rendered by man(1) where it is installed: what a user reads.
    match Command::new("man")
        .arg("-l")
        .arg(dir.join("daemonic-start.1"))
        .env("MANPAGER", "cat")
        .output()
    {
        Ok(o) if o.status.success() => {
            let shown = String::from_utf8_lossy(&o.stdout);
            // man justifies lines: the words, however far apart.
            let words: Vec<&str> = shown.split_whitespace().collect();
            assert!(
                words.windows(2).any(|w| w == ["daemonic", "start"]),
                "{shown}"
            );
        }
        _ => eprintln!("skipping the man(1) rendering check: man is not installed"),
    }
    // Again: each page replaced, no temporary file left.
    let out = env.daemonic(&["man", "--dir", dir.to_str().unwrap()]);
    assert!(out.status.success(), "{}", text(&out));
    let leftovers: Vec<_> = std::fs::read_dir(&dir)
        .unwrap()
        .flatten()
        .filter(|e| e.file_name().to_string_lossy().ends_with(".tmp"))
        .collect();
    assert!(leftovers.is_empty(), "{leftovers:?}");
}
