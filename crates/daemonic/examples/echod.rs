//! A small TCP echo daemon built on daemonic: `echod [-d] [--pid-file PATH] [--port N]
//! [--log FILE] [--reexec]`.
//!
//! With `-d` it detaches, and the command returns only once the port is bound — so a
//! script can connect right after `echod -d` returns. If the port is taken, the error is
//! printed in the terminal that ran `echod -d`, and the exit status is non-zero. Under
//! systemd (`Type=notify`) the same binary stays in the foreground and tells systemd.
//!
//! SIGTERM/SIGINT stop it cleanly (the pid file is removed), SIGHUP is logged as a reload.

use std::io::{BufRead, BufReader, Write};
use std::net::{TcpListener, TcpStream};
use std::os::fd::AsFd;
use std::time::Duration;

use daemonic::{Daemon, Event, Output, Signals};
use nix::poll::{PollFd, PollFlags, PollTimeout, poll};

fn main() {
    let mut args = std::env::args().skip(1);
    let (mut detach, mut port, mut daemon) = (false, 7878u16, Daemon::new());
    while let Some(arg) = args.next() {
        let mut value = || {
            args.next()
                .unwrap_or_else(|| usage(&format!("{arg} needs a value")))
        };
        match arg.as_str() {
            "-d" | "--daemon" => detach = true,
            "--pid-file" => daemon = daemon.pid_file(value()),
            "--port" => {
                port = value()
                    .parse()
                    .unwrap_or_else(|_| usage("--port takes a number"))
            }
            "--log" => {
                let log = value();
                daemon = daemon.stdout(Output::file(&log)).stderr(Output::file(&log));
            }
            "--reexec" => daemon = daemon.reexec(true),
            other => usage(&format!("unknown argument {other}")),
        }
    }
    // Returns in the daemon; with -d the launcher exits inside once we call ready().
    let running = match daemon.foreground(!detach).start() {
        Ok(r) => r,
        Err(e) => {
            eprintln!("echod: {e}");
            std::process::exit(1);
        }
    };
    let listener = match TcpListener::bind(("127.0.0.1", port)) {
        Ok(l) => l,
        Err(e) => {
            let msg = format!("bind 127.0.0.1:{port}: {e}");
            let _ = running.fail(&msg, e.raw_os_error());
            eprintln!("echod: {msg}");
            std::process::exit(1);
        }
    };
    let mut signals = Signals::new().expect("install signal handlers");
    running
        .status(&format!("listening on 127.0.0.1:{port}"))
        .ok();
    running.ready().expect("report readiness");
    println!("echod: listening on 127.0.0.1:{port}");

    loop {
        let mut fds = [
            PollFd::new(listener.as_fd(), PollFlags::POLLIN),
            PollFd::new(signals.as_fd(), PollFlags::POLLIN),
        ];
        let _ = poll(&mut fds, PollTimeout::NONE);
        let connection = fds[0]
            .revents()
            .is_some_and(|r| r.contains(PollFlags::POLLIN));
        for event in signals.pending() {
            match event {
                Event::Shutdown => {
                    println!("echod: shutting down");
                    return; // `running` is dropped: the pid file is removed
                }
                Event::Reload => println!("echod: reload requested (nothing to reload)"),
                _ => {}
            }
        }
        if connection && let Ok((stream, _)) = listener.accept() {
            echo_line(stream);
        }
    }
}

/// Echoes one line back (a toy: one client at a time, bounded by a timeout).
fn echo_line(stream: TcpStream) {
    let _ = stream.set_read_timeout(Some(Duration::from_secs(2)));
    let mut line = String::new();
    if BufReader::new(&stream).read_line(&mut line).is_ok() {
        let _ = (&stream).write_all(line.as_bytes());
    }
}

fn usage(why: &str) -> ! {
    eprintln!(
        "echod: {why}\nusage: echod [-d] [--pid-file PATH] [--port N] [--log FILE] [--reexec]"
    );
    std::process::exit(2)
}
