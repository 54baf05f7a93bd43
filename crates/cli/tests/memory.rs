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
    smaps_kib(&pid.to_string(), |header| {
        // range perms offset dev inode path
        let f: Vec<&str> = header.split_ascii_whitespace().collect();
        f.len() >= 6 && f[1] == "r-xp" && exe.as_os_str() == f[5..].join(" ").as_str()
    })
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

/// KiB of `pid`'s `[heap]` mapping resident.
fn heap_kib(pid: Pid) -> u64 {
    smaps_kib(&pid.to_string(), |header| header.ends_with("[heap]")).0
}

/// The sentinel is the binary started afresh, not a forked copy of the supervisor: it
/// holds none of the supervisor's heap (a copy held 130–160 KiB of it, its own once the
/// supervisor wrote to its pages), and `ps` shows whose sentinel it is.
#[test]
fn the_sentinel_is_a_fresh_process_not_a_copy_of_the_supervisor() {
    let env = Env::new("memory-sentinel");
    let out = env.daemonic(&["start", "--name", "watched", "--", "sleep", "1000"]);
    assert!(out.status.success(), "{}", stderr(&out));
    let supervisor = KillOnDrop::new(env.supervisor_pid("watched"));
    let child = KillOnDrop::new(env.child_pid("watched"));
    let sentinel = KillOnDrop::new(sentinel_of(supervisor.pid()));
    let cmdline = std::fs::read(format!("/proc/{}/cmdline", sentinel.pid())).unwrap();
    let words: Vec<String> = cmdline
        .split(|b| *b == 0)
        .map(|w| String::from_utf8_lossy(w).into_owned())
        .collect();
    assert_eq!(words[1], "--daemonic-sentinel", "{words:?}");
    let whose = words
        .iter()
        .position(|w| w == "for")
        .expect("`for` SUPERVISOR…");
    assert!(
        words[whose + 1..].iter().any(|w| w == "watched"),
        "the sentinel's command line does not name its supervisor's: {words:?}"
    );
    let heap = wait_for("the sentinel to settle", Duration::from_secs(5), || {
        (std::fs::read_to_string(format!("/proc/{}/comm", sentinel.pid()))
            .ok()?
            .trim()
            == "daemonic-sentin")
            .then(|| heap_kib(sentinel.pid()))
    });
    assert!(heap < 96, "the sentinel holds {heap} KiB of heap");
    // And it does its job: the supervisor SIGKILLed, the sentinel ends the service.
    nix::sys::signal::kill(supervisor.pid(), nix::sys::signal::Signal::SIGKILL).unwrap();
    wait_for("the child to be killed", Duration::from_secs(10), || {
        (!alive(child.pid())).then_some(())
    });
    wait_for("the sentinel to end", Duration::from_secs(10), || {
        (!alive(sentinel.pid())).then_some(())
    });
}

/// Threads of `pid`.
fn threads(pid: Pid) -> usize {
    std::fs::read_dir(format!("/proc/{pid}/task"))
        .map(|d| d.count())
        .unwrap_or(0)
}

/// The log archiver (compression, retention) runs only while it has work: an idle
/// supervisor is one thread, and a rotation brings the archiver back until its file is
/// compressed.
#[test]
fn the_log_archiver_runs_only_while_it_has_work() {
    let env = Env::new("memory-archiver");
    let go = env.dir.join("go");
    let script = format!(
        "while [ ! -e {go} ]; do sleep 0.05; done; i=0; \
         while [ $i -lt 300 ]; do echo \"line $i of the burst that rotates the log\"; i=$((i+1)); done; \
         exec sleep 1000",
        go = go.display()
    );
    let out = env.daemonic(&[
        "start",
        "--name",
        "rotates",
        "--log-max-size",
        "4K",
        "--log-keep",
        "3",
        "--log-compress",
        "gzip",
        "--",
        "sh",
        "-c",
        &script,
    ]);
    assert!(out.status.success(), "{}", stderr(&out));
    let supervisor = KillOnDrop::new(env.supervisor_pid("rotates"));
    let _child = KillOnDrop::new(env.child_pid("rotates"));
    wait_for(
        "the archiver's start-up pass to end",
        Duration::from_secs(10),
        || (threads(supervisor.pid()) == 1).then_some(()),
    );
    std::fs::write(&go, "").unwrap();
    let gz = wait_for("a compressed rotated log", Duration::from_secs(10), || {
        std::fs::read_dir(env.dir.join("state"))
            .ok()?
            .flatten()
            .map(|e| e.file_name().to_string_lossy().into_owned())
            .find(|n| n.starts_with("rotates.log.") && n.ends_with(".gz"))
    });
    wait_for("the archiver to end again", Duration::from_secs(10), || {
        (threads(supervisor.pid()) == 1).then_some(())
    });
    eprintln!("compressed: {gz}");
    let out = env.daemonic(&["stop", "rotates"]);
    assert!(out.status.success(), "{}", stderr(&out));
}

/// `daemonic --daemonic-sentinel` with what no supervisor would give is refused (status
/// 2, the reason), and kills nothing.
#[test]
fn a_sentinel_started_by_hand_with_bad_arguments_is_refused() {
    let env = Env::new("memory-sentinel-args");
    for args in [
        vec!["--daemonic-sentinel"],
        vec!["--daemonic-sentinel", "1", "1", "X=0123456789abcdef"],
        vec!["--daemonic-sentinel", "7", "7", "X=0123456789abcdef"],
        vec!["--daemonic-sentinel", "0", "0,3", "no marker"],
    ] {
        let out = env.cmd().args(&args).output().unwrap();
        assert_eq!(out.status.code(), Some(2), "{args:?}: {}", stderr(&out));
        assert!(
            stderr(&out).starts_with("daemonic-sentinel: "),
            "{args:?}: {}",
            stderr(&out)
        );
    }
}

/// Anonymous mappings of 2 MiB or more in `pid`: thread stacks (Rust's default is 2 MiB),
/// in use, cached by glibc for the next thread, or kept by a thread that ended unjoined.
fn stack_sized_mappings(pid: Pid) -> usize {
    let maps = std::fs::read_to_string(format!("/proc/{pid}/maps")).unwrap();
    maps.lines()
        .filter(|l| {
            let f: Vec<&str> = l.split_ascii_whitespace().collect();
            let Some((a, b)) = f[0].split_once('-') else {
                return false;
            };
            let size = u64::from_str_radix(b, 16).unwrap() - u64::from_str_radix(a, 16).unwrap();
            f.len() == 5 && f[1] == "rw-p" && size >= 2 << 20
        })
        .count()
}

/// The archiver threads of a file's services (one per log, each with a start-up pass)
/// leave no stack behind per service: detached, an ended thread's stack goes back to
/// glibc, which keeps at most 40 MiB of them for reuse. Joinable and never joined, each
/// kept its 2 MiB mapping (8 KiB resident) for as long as the supervisor ran.
#[test]
fn the_archivers_of_many_services_leave_no_stack_each() {
    const SERVICES: usize = 30;
    let env = Env::new("memory-archivers");
    let text: String = (0..SERVICES)
        .map(|i| format!("[services.s{i}]\ncommand = [\"sleep\", \"1000\"]\n\n"))
        .collect();
    let file = env::config(&env, &text);
    let out = env::up(&env, &file, &[]);
    assert!(out.status.success(), "{}", stderr(&out));
    let supervisor = KillOnDrop::new(env.supervisor_pid("s0"));
    wait_for(
        "the start-up passes to end",
        Duration::from_secs(20),
        || (threads(supervisor.pid()) == 1).then_some(()),
    );
    let stacks = stack_sized_mappings(supervisor.pid());
    assert!(
        stacks < SERVICES * 2 / 3,
        "{stacks} stack-sized mappings left by {SERVICES} archiver threads"
    );
    let out = env.daemonic(&["down", "-f", file.to_str().unwrap()]);
    assert!(out.status.success(), "{}", stderr(&out));
}
