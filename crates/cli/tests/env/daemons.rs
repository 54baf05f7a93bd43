//! What the tests of self-daemonizing programs share (`forking.rs`, `forking_nginx.rs`):
//! the pid a program's own pid file holds, the processes a test's daemon left, a free port.

use std::net::TcpListener;
use std::path::Path;

use daemonic::Pid;

use crate::support::alive;

/// The pid a pid file holds, once it holds one.
pub fn pid_in(path: &Path) -> Option<Pid> {
    let text = std::fs::read_to_string(path).ok()?;
    text.trim().parse().ok().map(Pid::from_raw)
}

/// Every live process whose command line names `path` (a test's pid file or config: what
/// its daemons were started with), to check that none is left.
pub fn naming(path: &Path) -> Vec<Pid> {
    let wanted = path.display().to_string();
    std::fs::read_dir("/proc")
        .unwrap()
        .flatten()
        .filter_map(|e| e.file_name().to_str()?.parse::<i32>().ok())
        .map(Pid::from_raw)
        .filter(|&p| alive(p))
        .filter(|p| {
            std::fs::read(format!("/proc/{p}/cmdline"))
                .is_ok_and(|c| String::from_utf8_lossy(&c).contains(&wanted))
        })
        .collect()
}

/// A port nobody listens on right now (bound on :0 and let go).
pub fn free_port() -> u16 {
    TcpListener::bind("127.0.0.1:0")
        .unwrap()
        .local_addr()
        .unwrap()
        .port()
}
