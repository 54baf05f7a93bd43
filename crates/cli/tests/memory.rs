//! The supervisor's memory once it is idle (issue 20): the code only its start-up ran —
//! flag parsing, the launcher's hand-over, the first spawn — is given back after a quiet
//! second (`daemonic::memory`), and the supervisor still does its job afterwards.

use daemonic_test_support as support;

mod env;

use std::time::Duration;

use daemonic::Pid;
use env::Env;
use support::*;

/// KiB of `pid`'s executable's code resident in its page tables (the `Rss` of its
/// readable + executable mappings of the file `/proc/PID/exe` names), and their size.
fn code_kib(pid: Pid) -> (u64, u64) {
    let exe = std::fs::read_link(format!("/proc/{pid}/exe")).unwrap();
    let smaps = std::fs::read_to_string(format!("/proc/{pid}/smaps")).unwrap();
    let (mut rss, mut size, mut inside) = (0, 0, false);
    for line in smaps.lines() {
        let first = line.split_ascii_whitespace().next().unwrap_or("");
        if first.contains('-') && !first.ends_with(':') {
            // A mapping's header: range perms offset dev inode path.
            let f: Vec<&str> = line.split_ascii_whitespace().collect();
            inside = f.len() >= 6 && f[1] == "r-xp" && exe.as_os_str() == f[5..].join(" ").as_str();
        } else if inside {
            let kib = || {
                line.split_ascii_whitespace()
                    .nth(1)
                    .unwrap()
                    .parse::<u64>()
                    .unwrap()
            };
            match first {
                "Rss:" => rss += kib(),
                "Size:" => size += kib(),
                _ => {}
            }
        }
    }
    (rss, size)
}

#[test]
fn an_idle_supervisor_gives_back_the_code_pages_of_its_start_up() {
    let env = Env::new("memory-idle");
    let out = env.daemonic(&[
        "start",
        "--name",
        "idle",
        "--restart",
        "always",
        "--backoff",
        "0s",
        "--",
        "sleep",
        "1000",
    ]);
    assert!(out.status.success(), "{}", stderr(&out));
    let pid = wait_for("the pid file", Duration::from_secs(5), || {
        std::fs::read_to_string(env.pid_file("idle"))
            .ok()?
            .trim()
            .parse()
            .ok()
            .map(Pid::from_raw)
    });
    let (busy, size) = code_kib(pid);
    assert!(
        size > 0,
        "no code mapping of the supervisor's executable found"
    );
    // Faults map 64 KiB around each page touched: a start-up leaves most of the binary's
    // code resident (over 80 % here). Idle for a second, the supervisor drops it; what it
    // runs between the release and its sleep comes back, a fifth or so.
    let idle = wait_for(
        "the supervisor's code pages to go",
        Duration::from_secs(20),
        || {
            let (rss, _) = code_kib(pid);
            (rss * 2 < size).then_some(rss)
        },
    );
    eprintln!("code resident: {busy} KiB after the start, {idle} KiB idle, of {size} KiB");
    // It still supervises: a killed child is restarted, and the service stops on request.
    let child = env.child_pid("idle");
    nix::sys::signal::kill(child, nix::sys::signal::Signal::SIGKILL).unwrap();
    wait_for("the restart", Duration::from_secs(10), || {
        let out = env.daemonic(&["status", "idle"]);
        let text = String::from_utf8_lossy(&out.stdout).into_owned();
        (text.contains(", pid ") && !text.contains(&format!(", pid {child} "))).then_some(())
    });
    let out = env.daemonic(&["stop", "idle"]);
    assert!(out.status.success(), "{}", stderr(&out));
    wait_for("the supervisor to end", Duration::from_secs(10), || {
        (!alive(pid)).then_some(())
    });
}
