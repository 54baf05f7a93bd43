//! Health checks end to end: a failing liveness check restarts the child, a failing
//! readiness check only shows, and a real redis-server, killed with -9, comes back
//! healthy. Real supervisors and programs, observed through `status`, `list` and the log.

use daemonic_test_support as support;

mod env;

use std::io::{Read, Write};
use std::net::TcpStream;
use std::path::Path;
use std::time::Duration;

use daemonic::Pid;
use env::{Env, fixture};
use support::*;

/// What `status` says after `health: ` (up to `; status:`), if anything.
fn health(line: &str) -> Option<String> {
    let rest = line.split(", health: ").nth(1)?;
    Some(
        rest.split("; status:")
            .next()
            .unwrap()
            .trim_end()
            .to_string(),
    )
}

/// `restarts N` from a status line (0 when absent).
fn restarts(line: &str) -> u32 {
    line.split(", restarts ")
        .nth(1)
        .and_then(|s| s.split(',').next())
        .map_or(0, |n| n.trim().parse().unwrap())
}

/// The child's pid from a status line of a ready service.
fn ready_pid(line: &str, name: &str) -> Option<Pid> {
    let rest = line.strip_prefix(&format!("{name}: ready, pid "))?;
    let pid = rest.split(' ').next()?.parse().ok()?;
    Some(Pid::from_raw(pid))
}

fn read_log(path: &Path) -> String {
    std::fs::read_to_string(path).unwrap_or_default()
}

#[test]
fn a_failing_liveness_check_restarts_the_child() {
    let env = Env::new("liveness");
    let log = env.dir.join("l.log");
    let alive_flag = env.dir.join("alive");
    std::fs::write(&alive_flag, "").unwrap();
    let probe = format!("exec:test -e {}", alive_flag.display());
    let out = env.daemonic(&[
        "start",
        "--name",
        "l",
        "--ready",
        "grace",
        "--grace",
        "100ms",
        "--liveness",
        &probe,
        "--liveness-interval",
        "50ms",
        "--liveness-failures",
        "2",
        "--restart",
        "always",
        "--backoff",
        "10ms",
        "--log-file",
        log.to_str().unwrap(),
        "--",
        &fixture("sleeper"),
    ]);
    assert!(out.status.success(), "{}", stderr(&out));
    let first = env.child_pid("l");
    let line = env.status_line("l");
    assert_eq!(health(&line).as_deref(), Some("healthy"), "{line}");

    std::fs::remove_file(&alive_flag).unwrap();
    // Read from the one line: the new child fails its checks too, and may be gone again.
    let (second, line) = wait_for("a restart after failed liveness checks", SOON, || {
        let line = env.status_line("l");
        let pid = ready_pid(&line, "l")?;
        (restarts(&line) >= 1).then_some((pid, line))
    });
    assert_ne!(first, second, "{line}");
    assert!(!alive(first), "the old child was stopped");
    let text = read_log(&log);
    assert!(
        text.contains(&format!(
            "l: liveness failed 2 times in a row: exec `test -e {}` exited with status 1",
            alive_flag.display()
        )),
        "{text}"
    );
    assert!(
        text.contains("sleeper killed by SIGTERM; restart 1"),
        "{text}"
    );

    // Alive again: the new child stays.
    std::fs::write(&alive_flag, "").unwrap();
    let last = wait_for("a new child, healthy", SOON, || {
        let line = env.status_line("l");
        let pid = ready_pid(&line, "l")?;
        (health(&line).as_deref() == Some("healthy")).then_some(pid)
    });
    assert!(env.daemonic(&["stop", "l"]).status.success());
    assert!(!alive(last), "stop ends the child");
}

#[test]
fn a_failing_readiness_check_shows_unhealthy_and_never_restarts() {
    let env = Env::new("readiness");
    let log = env.dir.join("r.log");
    let serving = env.dir.join("serving");
    let probe = format!("exec:test -e {}", serving.display());
    let out = env.daemonic(&[
        "start",
        "--name",
        "r",
        "--readiness",
        &probe,
        "--readiness-interval",
        "50ms",
        "--readiness-failures",
        "1",
        "--restart",
        "always",
        "--log-file",
        log.to_str().unwrap(),
        "--",
        &fixture("notify-ready"),
        "0",
        "up",
    ]);
    assert!(out.status.success(), "{}", stderr(&out));
    let pid = env.child_pid("r");

    // The count of failures in a row grows with every check: evidence that checks ran
    // again and again while the child stayed.
    let why = format!("exec `test -e {}` exited with status 1", serving.display());
    let line = wait_for("five failed readiness checks", SOON, || {
        let line = env.status_line("r");
        let n: u32 = health(&line)?
            .strip_prefix("unhealthy: readiness failed ")?
            .split(' ')
            .next()?
            .parse()
            .ok()?;
        (n >= 5).then_some(line)
    });
    assert!(
        line.starts_with(&format!("r: ready, pid {pid} ")),
        "the same child, still ready: {line}"
    );
    assert_eq!(restarts(&line), 0, "{line}");
    assert!(health(&line).unwrap().ends_with(&why), "{line}");
    assert!(alive(pid));
    let json = String::from_utf8(env.daemonic(&["status", "r", "--json"]).stdout).unwrap();
    assert!(
        json.contains("\"health\":\"unhealthy: readiness failed "),
        "{json}"
    );
    let list = String::from_utf8(env.daemonic(&["list"]).stdout).unwrap();
    assert!(list.lines().next().unwrap().ends_with("  HEALTH"), "{list}");
    assert!(list.contains("  unhealthy: readiness failed "), "{list}");

    // Serving again: healthy, said once in the log, same child.
    std::fs::write(&serving, "").unwrap();
    wait_for("healthy again", SOON, || {
        (health(&env.status_line("r")).as_deref() == Some("healthy")).then_some(())
    });
    assert_eq!(env.child_pid("r"), pid);
    let text = read_log(&log);
    assert!(
        text.contains(&format!("r: unhealthy: readiness failed once: {why}")),
        "{text}"
    );
    assert_eq!(
        text.matches("unhealthy: readiness failed").count(),
        1,
        "{text}"
    );
    assert!(
        text.contains("r: healthy again: readiness passed once"),
        "{text}"
    );
    assert!(env.daemonic(&["stop", "r"]).status.success());
}

/// `PING` over a fresh connection; true on `+PONG`.
fn redis_pings(port: u16) -> bool {
    let Ok(mut s) = TcpStream::connect(("127.0.0.1", port)) else {
        return false;
    };
    let _ = s.set_read_timeout(Some(Duration::from_secs(2)));
    if s.write_all(b"PING\r\n").is_err() {
        return false;
    }
    let mut answer = [0u8; 7];
    s.read_exact(&mut answer).is_ok() && &answer == b"+PONG\r\n"
}

#[test]
fn redis_killed_with_sigkill_comes_back_healthy() {
    let Some(redis) = find_on_path("redis-server") else {
        eprintln!("skipped: redis-server is not installed (Debian package redis-server)");
        return;
    };
    let env = Env::new("redis");
    let port = free_port().to_string();
    let tcp = format!("tcp:{port}");
    let dir = env.dir.join("data");
    std::fs::create_dir(&dir).unwrap();
    let out = env.daemonic(&[
        "start",
        "--name",
        "redis",
        "--ready",
        &tcp,
        "--liveness",
        &tcp,
        "--liveness-interval",
        "200ms",
        "--readiness",
        &tcp,
        "--readiness-interval",
        "200ms",
        "--restart",
        "always",
        "--backoff",
        "10ms",
        "--dir",
        dir.to_str().unwrap(),
        "--",
        redis.to_str().unwrap(),
        "--port",
        &port,
        "--bind",
        "127.0.0.1",
        "--save",
        "",
        "--appendonly",
        "no",
        "--daemonize",
        "no",
    ]);
    assert!(out.status.success(), "{}", stderr(&out));
    let port: u16 = port.parse().unwrap();
    assert!(redis_pings(port), "redis answers once start returns");
    let first = env.child_pid("redis");
    wait_for("redis healthy", SOON, || {
        (health(&env.status_line("redis")).as_deref() == Some("healthy")).then_some(())
    });

    nix::sys::signal::kill(first, nix::sys::signal::Signal::SIGKILL).unwrap();
    let second = wait_for("a new redis, ready and healthy", SOON, || {
        let line = env.status_line("redis");
        let pid = ready_pid(&line, "redis")?;
        (pid != first && health(&line).as_deref() == Some("healthy")).then_some(pid)
    });
    assert!(!alive(first));
    assert!(redis_pings(port), "the new redis answers PING");
    assert!(restarts(&env.status_line("redis")) >= 1);
    let out = env.daemonic(&["stop", "redis"]);
    assert!(out.status.success(), "{}", stderr(&out));
    assert!(!alive(second), "stop ends redis");
    assert!(!redis_pings(port));
}

fn find_on_path(program: &str) -> Option<std::path::PathBuf> {
    let path = std::env::var_os("PATH")?;
    std::env::split_paths(&path)
        .map(|dir| dir.join(program))
        .find(|p| p.is_file())
}
