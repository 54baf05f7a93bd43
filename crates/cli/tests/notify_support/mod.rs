//! Helpers shared by the notify tests (`notify_clients.rs`, `notify_protocol.rs`).
#![allow(dead_code)]

use std::process::Command;
use std::time::Duration;

use crate::env::Env;

/// Starting, reloading: generous (a loaded 2-core machine), never asserted as speed.
pub const LIMIT: Duration = Duration::from_secs(20);

/// A command's stdout as text.
pub fn out_text(o: &std::process::Output) -> String {
    String::from_utf8_lossy(&o.stdout).into_owned()
}

/// A shell script in the test's directory, readable and executable by everyone (the
/// uid 65534 case runs it).
pub fn script(env: &Env, name: &str, body: &str) -> String {
    use std::os::unix::fs::PermissionsExt;
    let path = env.dir.join(name);
    std::fs::write(&path, body).unwrap();
    std::fs::set_permissions(&path, std::fs::Permissions::from_mode(0o755)).unwrap();
    std::fs::set_permissions(env.dir.path(), std::fs::Permissions::from_mode(0o755)).unwrap();
    path.display().to_string()
}

/// `status NAME`'s line.
pub fn status(env: &Env, name: &str) -> String {
    out_text(&env.daemonic(&["status", name]))
}

/// The child's `NOTIFY_SOCKET`, from its environment.
pub fn notify_socket_of(pid: daemonic::Pid) -> String {
    let environ = std::fs::read(format!("/proc/{pid}/environ")).unwrap();
    environ
        .split(|&b| b == 0)
        .find_map(|v| v.strip_prefix(b"NOTIFY_SOCKET="))
        .map(|v| String::from_utf8_lossy(v).into_owned())
        .unwrap_or_default()
}

/// Whether `program` is on the PATH.
pub fn have(program: &str) -> bool {
    Command::new("sh")
        .args(["-c", &format!("command -v {program} >/dev/null")])
        .status()
        .is_ok_and(|s| s.success())
}

/// Whether `program` is missing; says the test is skipped if so.
pub fn lacks(program: &str) -> bool {
    let missing = !have(program);
    if missing {
        eprintln!("skipped: {program} is not installed");
    }
    missing
}
