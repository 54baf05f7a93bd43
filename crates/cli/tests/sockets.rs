//! Sockets held by the supervisor (`--socket`), end to end: real supervisors, the
//! `socket-http` fixture (the library's activation API), real loopback clients.
//! Counts are asserted (connections refused, requests answered), never how long anything
//! took. What a program receives and what is refused at setup are in `sockets_setup.rs`.

use daemonic_test_support as support;

mod env;

use std::io::{Read, Write};
use std::net::{TcpListener, TcpStream};
use std::sync::Arc;
use std::sync::atomic::{AtomicBool, AtomicU64, Ordering};
use std::time::Duration;

use env::{Env, fixture, start_web};
use support::*;

const SOON: Duration = Duration::from_secs(20);

/// One HTTP request on a new connection: the response's body, or the error as the client
/// sees it.
fn get(port: u16, path: &str) -> std::io::Result<String> {
    let mut c = TcpStream::connect(("127.0.0.1", port))?;
    c.set_read_timeout(Some(SOON))?;
    write!(c, "GET {path} HTTP/1.1\r\nHost: test\r\n\r\n")?;
    let mut got = String::new();
    c.read_to_string(&mut got)?;
    match got.split_once("\r\n\r\n") {
        Some((head, body)) if head.starts_with("HTTP/1.1 200 ") => Ok(body.to_string()),
        _ => Err(std::io::Error::other(format!("bad response {got:?}"))),
    }
}

/// What the load saw.
#[derive(Default)]
struct Counts {
    sent: AtomicU64,
    answered: AtomicU64,
    refused: AtomicU64,
    /// Any other failure (reset, timeout, a bad response); the first one kept.
    failed: AtomicU64,
    first_failure: std::sync::Mutex<Option<String>>,
}

/// `clients` threads sending requests one after another until `stop`.
fn load(
    port: u16,
    clients: usize,
    stop: Arc<AtomicBool>,
) -> (Arc<Counts>, Vec<std::thread::JoinHandle<()>>) {
    let counts = Arc::new(Counts::default());
    let threads = (0..clients)
        .map(|_| {
            let (counts, stop) = (counts.clone(), stop.clone());
            std::thread::spawn(move || {
                while !stop.load(Ordering::Relaxed) {
                    counts.sent.fetch_add(1, Ordering::Relaxed);
                    match get(port, "/") {
                        Ok(_) => counts.answered.fetch_add(1, Ordering::Relaxed),
                        Err(e) if e.kind() == std::io::ErrorKind::ConnectionRefused => {
                            counts.refused.fetch_add(1, Ordering::Relaxed)
                        }
                        Err(e) => {
                            counts
                                .first_failure
                                .lock()
                                .unwrap()
                                .get_or_insert(e.to_string());
                            counts.failed.fetch_add(1, Ordering::Relaxed)
                        }
                    };
                }
            })
        })
        .collect();
    (counts, threads)
}

#[test]
fn fifty_restarts_and_crashes_behind_a_held_socket_refuse_no_connection() {
    let env = Env::new("held-load");
    let port = free_port();
    let socket = format!("web=tcp:127.0.0.1:{port}");
    let out = start_web(
        &env,
        &socket,
        &["--restart", "always", "--backoff", "0s"],
        &["--startup-ms", "20"],
    );
    assert!(out.status.success(), "{}", stderr(&out));
    let stop = Arc::new(AtomicBool::new(false));
    let (counts, threads) = load(port, 2, stop.clone());
    let mut pid = word_value(&get(port, "/").unwrap(), "pid");
    for i in 0..50 {
        let before = counts.answered.load(Ordering::Relaxed);
        if i % 2 == 0 {
            let out = env.daemonic(&["restart", "web"]);
            assert!(out.status.success(), "restart {i}: {}", stderr(&out));
        } else {
            // Answered, then the program aborts: a crash between two requests.
            get(port, "/crash").unwrap();
        }
        // A new program answers, and the load goes on through every restart.
        pid = wait_for("a new program answering", SOON, || {
            let now = word_value(&get(port, "/").ok()?, "pid");
            (now != pid && counts.answered.load(Ordering::Relaxed) > before).then_some(now)
        });
    }
    stop.store(true, Ordering::Relaxed);
    for t in threads {
        t.join().unwrap();
    }
    let status = env.status_line("web");
    let _ = env.daemonic(&["stop", "web"]);
    let (sent, answered) = (
        counts.sent.load(Ordering::Relaxed),
        counts.answered.load(Ordering::Relaxed),
    );
    eprintln!("load: {sent} requests sent, {answered} answered across 50 restarts");
    assert_eq!(
        counts.refused.load(Ordering::Relaxed),
        0,
        "connections refused"
    );
    assert_eq!(
        counts.failed.load(Ordering::Relaxed),
        0,
        "failed requests, first: {:?}",
        counts.first_failure.lock().unwrap()
    );
    assert_eq!(answered, sent, "every request answered");
    assert!(
        answered >= 50,
        "the load ran through the restarts: {answered}"
    );
    assert!(status.contains("restarts 50"), "{status}");
    assert!(
        status.contains(&format!("sockets web=tcp:127.0.0.1:{port}")),
        "{status}"
    );
}

#[test]
fn the_fd_store_survives_a_restart_and_comes_back_by_name() {
    let env = Env::new("fdstore");
    let port = free_port();
    let socket = format!("web=tcp:127.0.0.1:{port}");
    let out = start_web(&env, &socket, &[], &["--store"]);
    assert!(out.status.success(), "{}", stderr(&out));
    let first = get(port, "/").unwrap();
    assert_eq!(
        (word_value(&first, "starts"), word_value(&first, "names")),
        ("1".into(), "web".into())
    );
    let json =
        String::from_utf8_lossy(&env.daemonic(&["status", "web", "--json"]).stdout).into_owned();
    assert!(json.contains(r#""fd_store":1"#), "{json}");
    let out = env.daemonic(&["restart", "web"]);
    assert!(out.status.success(), "{}", stderr(&out));
    let second = get(port, "/").unwrap();
    let _ = env.daemonic(&["stop", "web"]);
    // The memfd the first start stored, counted on by the second.
    assert_eq!(word_value(&second, "starts"), "2", "{second}");
    assert_eq!(word_value(&second, "names"), "web:counter");
    assert_ne!(word_value(&first, "pid"), word_value(&second, "pid"));
}

#[test]
fn a_user_service_listens_on_port_80_through_the_supervisor() {
    if !root("a_user_service_listens_on_port_80_through_the_supervisor") {
        return;
    }
    if let Err(e) = TcpListener::bind("127.0.0.1:80") {
        eprintln!("skipped: port 80 on 127.0.0.1 is taken here ({e})");
        return;
    }
    let env = Env::new("port80");
    let out = start_web(&env, "web=tcp:127.0.0.1:80", &["--user", "65534"], &[]);
    assert!(out.status.success(), "{}", stderr(&out));
    let body = get(80, "/");
    let pid = env.child_pid("web");
    let uid = proc_status(pid, "Uid:");
    let caps = proc_status(pid, "CapEff:");
    let _ = env.daemonic(&["stop", "web"]);
    assert!(body.is_ok(), "{body:?}");
    assert_eq!(uid, "65534 65534 65534 65534", "runs as nobody");
    assert_eq!(caps, "0000000000000000", "without any capability");
}

#[test]
fn a_changed_service_of_a_file_takes_over_its_socket_and_refuses_nothing_meanwhile() {
    let env = Env::new("held-up");
    let port = free_port();
    let file = env.dir.join("daemonic.toml");
    let write = |version: &str| {
        let text = format!(
            "[services.web]\ncommand = [{:?}]\nenv = {{ VERSION = {version:?} }}\nsocket = {{ web = \"tcp:127.0.0.1:{port}\" }}\n",
            fixture("socket-http")
        );
        std::fs::write(&file, text).unwrap();
    };
    let f = file.display().to_string();
    write("1");
    let out = env.daemonic(&["up", "-f", &f]);
    assert!(out.status.success(), "{}", stderr(&out));
    let stop = Arc::new(AtomicBool::new(false));
    let (counts, threads) = load(port, 2, stop.clone());
    let first = word_value(&get(port, "/").unwrap(), "pid");
    // An edit replaces the running service: the new one gets the same socket.
    write("2");
    let out = env.daemonic(&["up", "-f", &f]);
    assert!(out.status.success(), "{}", stderr(&out));
    let second = wait_for("the edited service answering", SOON, || {
        let pid = word_value(&get(port, "/").ok()?, "pid");
        (pid != first).then_some(pid)
    });
    // Down and up again: the socket was closed with the last unit holding it, and is bound anew.
    stop.store(true, Ordering::Relaxed);
    for t in threads {
        t.join().unwrap();
    }
    let out = env.daemonic(&["down", "-f", &f, "web"]);
    assert!(out.status.success(), "{}", stderr(&out));
    let out = env.daemonic(&["up", "-f", &f, "web"]);
    let third = get(port, "/").map(|b| word_value(&b, "pid"));
    let _ = env.daemonic(&["down", "-f", &f]);
    assert!(out.status.success(), "{}", stderr(&out));
    assert!(third.as_ref().is_ok_and(|p| *p != second), "{third:?}");
    assert_eq!(
        counts.refused.load(Ordering::Relaxed),
        0,
        "connections refused"
    );
    assert_eq!(
        counts.failed.load(Ordering::Relaxed),
        0,
        "{:?}",
        counts.first_failure.lock().unwrap()
    );
}

#[test]
fn socket_activation_required_fails_a_program_that_ignores_its_socket() {
    let env = Env::new("required");
    let port = free_port();
    let socket = format!("web=tcp:127.0.0.1:{port}");
    let start = |name: &str, program: &[&str]| {
        let mut args = vec![
            "start",
            "--name",
            name,
            "--socket",
            &socket,
            "--socket-activation",
            "required",
            "--ready",
            "grace",
            "--grace",
            "200ms",
            "--",
        ];
        args.extend(program);
        env.daemonic(&args)
    };
    // The sleeper knows nothing of LISTEN_FDS: descriptor 3 stays as passed.
    let sleeper = fixture("sleeper");
    let out = start("ignores", &[&sleeper, "60"]);
    let err = stderr(&out);
    assert!(!out.status.success(), "{err}");
    assert!(
        err.contains("did not take its sockets by socket activation (LISTEN_FDS): socket web is still descriptor 3 as passed"),
        "{err}"
    );
    // The library's Activation takes it (close-on-exec): ready as usual.
    let http = fixture("socket-http");
    let out = start("takes", &[&http]);
    let body = get(port, "/");
    let _ = env.daemonic(&["stop", "takes"]);
    assert!(out.status.success(), "{}", stderr(&out));
    assert!(body.is_ok(), "{body:?}");
    let out = env.daemonic(&[
        "start",
        "--name",
        "none",
        "--socket-activation",
        "required",
        "--",
        &sleeper,
    ]);
    assert!(
        stderr(&out).contains("--socket-activation required: the service has no --socket"),
        "{}",
        stderr(&out)
    );
}

#[test]
fn with_the_fd_store_off_nothing_is_kept_and_that_is_said_once() {
    let env = Env::new("fdstore-off");
    let port = free_port();
    let socket = format!("web=tcp:127.0.0.1:{port}");
    let out = start_web(&env, &socket, &["--fd-store-max", "0"], &["--store"]);
    assert!(out.status.success(), "{}", stderr(&out));
    let restarted = env.daemonic(&["restart", "web"]);
    let second = get(port, "/");
    let log = std::fs::read_to_string(env.dir.join("state").join("web.log")).unwrap_or_default();
    let _ = env.daemonic(&["stop", "web"]);
    assert!(restarted.status.success(), "{}", stderr(&restarted));
    let second = second.unwrap();
    assert_eq!(
        (word_value(&second, "starts"), word_value(&second, "names")),
        ("1".into(), "web".into())
    );
    let said = "closed 1 descriptor of a notify datagram: the fd store is off (--fd-store-max 0)";
    assert_eq!(log.matches(said).count(), 2, "once per start: {log}");
}
