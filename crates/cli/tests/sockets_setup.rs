//! Setting up sockets held by the supervisor (`--socket`), end to end: what a program
//! receives (kinds, families and names, as libsystemd and Python read them) and what is
//! refused before it runs (a port in use, unsafe unix socket paths, a missing program).
//! Real supervisors and real programs; skipped with the reason where python3-systemd or
//! root is missing.

use daemonic_test_support as support;

mod env;

use std::net::TcpListener;

use env::{Env, fixture, start_web};
use support::*;

#[test]
fn libsystemd_reads_the_names_and_its_own_pid() {
    let Some(python) = env::python3_systemd("libsystemd_reads_the_names_and_its_own_pid") else {
        return;
    };
    let env = Env::new("libsystemd");
    let api = env.dir.join("api.sock");
    let out = env.daemonic(&[
        "run", "--ready", "grace", "--grace", "0s",
        "--socket", "web=tcp:127.0.0.1:0",
        "--socket", &format!("api=unix:{}", api.display()),
        "--", python, "-c",
        "from systemd.daemon import listen_fds_with_names as l; import os; print(sorted(l().items()), os.environ.get('LISTEN_PID') == str(os.getpid()))",
    ]);
    let stdout = String::from_utf8_lossy(&out.stdout);
    assert!(out.status.success(), "{}", stderr(&out));
    // sd_listen_fds checks LISTEN_PID itself: names only if it is the program's own pid.
    assert!(stdout.contains("[(3, 'web'), (4, 'api')] True"), "{stdout}");
    assert!(
        !api.exists(),
        "the supervisor removes its unix socket when it ends"
    );
}

#[test]
fn a_port_in_use_is_an_error_naming_the_flag_and_the_holder() {
    let env = Env::new("in-use");
    let taken = TcpListener::bind("127.0.0.1:0").unwrap();
    let port = taken.local_addr().unwrap().port();
    let socket = format!("web=tcp:127.0.0.1:{port}");
    let out = start_web(&env, &socket, &[], &[]);
    let err = stderr(&out);
    assert!(!out.status.success());
    assert!(
        err.contains(&format!("--socket {socket}: bind 127.0.0.1:{port}")),
        "{err}"
    );
    assert!(
        err.contains(&format!("held by pid {}", std::process::id())),
        "{err}"
    );
}

#[test]
fn unix_socket_paths_refuse_symlinks_and_foreign_files_and_replace_a_stale_socket() {
    let env = Env::new("unix");
    let sleeper = fixture("sleeper");
    let start = |path: &std::path::Path, extra: &str| {
        env.daemonic(&[
            "start",
            "--name",
            "u",
            "--ready",
            "grace",
            "--grace",
            "0s",
            "--socket",
            &format!("api=unix:{}{extra}", path.display()),
            "--",
            &sleeper,
            "60",
        ])
    };
    // A symlink planted at the name: never followed, never replaced.
    let link = env.dir.join("link.sock");
    std::os::unix::fs::symlink("/etc/passwd", &link).unwrap();
    let out = start(&link, "");
    assert!(!out.status.success());
    assert!(
        stderr(&out).contains("exists and is a symlink: refusing to replace it"),
        "{}",
        stderr(&out)
    );
    // A regular file is not a stale socket.
    let file = env.dir.join("file.sock");
    std::fs::write(&file, "data").unwrap();
    let out = start(&file, "");
    assert!(
        stderr(&out).contains("is a regular file"),
        "{}",
        stderr(&out)
    );
    assert_eq!(std::fs::read_to_string(&file).unwrap(), "data");
    // A socket nobody listens on (an earlier run's) is replaced; the mode is applied.
    let stale = env.dir.join("stale.sock");
    drop(std::os::unix::net::UnixListener::bind(&stale).unwrap());
    let out = start(&stale, ",mode=0600");
    assert!(out.status.success(), "{}", stderr(&out));
    use std::os::unix::fs::PermissionsExt;
    let mode = std::fs::metadata(&stale).unwrap().permissions().mode() & 0o777;
    let connected = std::os::unix::net::UnixStream::connect(&stale);
    let _ = env.daemonic(&["stop", "u"]);
    assert_eq!(mode, 0o600);
    assert!(connected.is_ok(), "{connected:?}");
    assert!(!stale.exists(), "removed when the supervisor ends");
}

#[test]
fn as_root_a_unix_socket_in_a_directory_others_can_write_is_refused() {
    if !root("as_root_a_unix_socket_in_a_directory_others_can_write_is_refused") {
        return;
    }
    let env = Env::new("unix-root");
    let open = env.dir.join("open");
    std::fs::create_dir(&open).unwrap();
    use std::os::unix::fs::PermissionsExt;
    std::fs::set_permissions(&open, std::fs::Permissions::from_mode(0o777)).unwrap();
    let path = open.join("api.sock");
    let out = env.daemonic(&[
        "start",
        "--name",
        "u",
        "--socket",
        &format!("api=unix:{}", path.display()),
        "--",
        &fixture("sleeper"),
        "60",
    ]);
    let err = stderr(&out);
    assert!(!out.status.success());
    assert!(err.contains("open socket directory"), "{err}");
    assert!(
        err.contains("refused as root: it is writable by others"),
        "{err}"
    );
    assert!(!path.exists());
}

#[test]
fn libsystemd_takes_its_sockets_as_socket_activation_required_checks() {
    let Some(python) =
        env::python3_systemd("libsystemd_takes_its_sockets_as_socket_activation_required_checks")
    else {
        return;
    };
    let env = Env::new("libsystemd-required");
    let seen = env.dir.join("seen");
    let script = format!(
        "import time, systemd.daemon as d\nopen({:?}, 'w').write(repr(sorted(d.listen_fds_with_names().items())))\nd.notify('READY=1')\ntime.sleep(60)\n",
        seen.display().to_string()
    );
    let out = env.daemonic(&[
        "start",
        "--name",
        "py",
        "--ready",
        "notify",
        "--socket-activation",
        "required",
        "--socket",
        "web=tcp:127.0.0.1:0",
        "--",
        python,
        "-c",
        &script,
    ]);
    let _ = env.daemonic(&["stop", "py"]);
    assert!(out.status.success(), "{}", stderr(&out));
    assert_eq!(std::fs::read_to_string(&seen).unwrap(), "[(3, 'web')]");
}

#[test]
fn a_missing_program_with_sockets_fails_as_without_them() {
    let env = Env::new("missing");
    let out = env.daemonic(&[
        "start",
        "--name",
        "nf",
        "--socket",
        "web=tcp:127.0.0.1:0",
        "--",
        "/nonexistent/prog",
    ]);
    assert_eq!(out.status.code(), Some(127), "{}", stderr(&out));
    assert!(
        stderr(&out).contains("spawn /nonexistent/prog: No such file or directory"),
        "{}",
        stderr(&out)
    );
}

#[test]
fn udp_and_ipv6_sockets_arrive_as_what_they_are() {
    let env = Env::new("udp");
    // Where the kernel has IPv6 on loopback: an IPv6-only UDP socket beside a TCP one.
    let v6 = std::net::UdpSocket::bind("[::1]:0").is_ok();
    let mut args = vec![
        "run",
        "--ready",
        "grace",
        "--grace",
        "0s",
        "--socket",
        "web=tcp:127.0.0.1:0",
        "--socket",
        "dns=udp:127.0.0.1:0",
    ];
    if v6 {
        args.extend(["--socket", "dns6=udp:[::1]:0,ipv6-only"]);
    }
    let script = "import socket, os\n\
        n = int(os.environ['LISTEN_FDS'])\n\
        for fd in range(3, 3 + n):\n\
        \x20   s = socket.socket(fileno=fd)\n\
        \x20   print(s.type.name, s.family.name, s.getsockopt(socket.SOL_SOCKET, socket.SO_ACCEPTCONN))\n\
        \x20   s.detach()\n\
        print(os.environ['LISTEN_FDNAMES'])\n";
    args.extend(["--", "/usr/bin/python3", "-c", script]);
    let out = env.daemonic(&args);
    let stdout = String::from_utf8_lossy(&out.stdout).into_owned();
    assert!(out.status.success(), "{}", stderr(&out));
    let mut want = vec!["SOCK_STREAM AF_INET 1", "SOCK_DGRAM AF_INET 0"];
    if v6 {
        want.push("SOCK_DGRAM AF_INET6 0");
        want.push("web:dns:dns6");
    } else {
        want.push("web:dns");
    }
    assert_eq!(stdout.lines().collect::<Vec<_>>(), want, "{stdout}");
}
