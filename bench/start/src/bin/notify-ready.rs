//! `notify-ready [--silent]`: the benchmark's child, a program that is ready at once.
//!
//! If `$NOTIFY_SOCKET` is set, it sends `READY=1` there as its very first act — from its
//! own pid, the pid its supervisor spawned (systemd's `NotifyAccess=main`, which daemonic
//! follows; `systemd-notify --ready` would not do, as it sends from a pid of its own). Then
//! it waits, doing nothing, until a signal ends it.
//!
//! Without `$NOTIFY_SOCKET`, or with `--silent`, it only waits: a plain sleeper, for tools
//! that have no readiness protocol (daemon(1), `start-stop-daemon` without
//! `--notify-await`) and for daemonic's `--ready grace`. One program for every variant
//! keeps the cost of its `exec` the same everywhere.
//!
//! Both address forms of the protocol are accepted: a path (what `start-stop-daemon
//! --notify-await` binds) and `@name` in the abstract namespace (what daemonic binds).

use std::os::linux::net::SocketAddrExt;
use std::os::unix::net::{SocketAddr, UnixDatagram};
use std::process::ExitCode;

fn main() -> ExitCode {
    let silent = match std::env::args().nth(1).as_deref() {
        None => false,
        Some("--silent") => true,
        Some(other) => {
            eprintln!(
                "notify-ready: unexpected argument {other:?} (usage: notify-ready [--silent])"
            );
            return ExitCode::from(2);
        }
    };
    if let (false, Some(addr)) = (silent, std::env::var_os("NOTIFY_SOCKET")) {
        let addr = addr.to_string_lossy();
        if let Err(e) = notify_ready(&addr) {
            eprintln!("notify-ready: send READY=1 to {addr}: {e}");
            return ExitCode::FAILURE;
        }
    }
    // The default action of SIGTERM (or SIGKILL) ends the process; nothing else wakes it.
    loop {
        std::thread::park();
    }
}

fn notify_ready(addr: &str) -> std::io::Result<()> {
    let to = match addr.strip_prefix('@') {
        Some(name) => SocketAddr::from_abstract_name(name)?,
        None => SocketAddr::from_pathname(addr)?,
    };
    UnixDatagram::unbound()?.send_to_addr(b"READY=1", &to)?;
    Ok(())
}
