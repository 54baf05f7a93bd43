//! `--socket-activation required`: did the program take its sockets?
//!
//! A program that takes its sockets by socket activation — through libsystemd's
//! `sd_listen_fds` (C, Python's `systemd.daemon`), go-systemd's `activation`, or
//! daemonic's own `Activation` — marks each passed descriptor close-on-exec, so that what
//! it runs does not inherit its listeners. A program that knows nothing of `LISTEN_FDS`
//! leaves descriptor 3 as it got it: not close-on-exec (daemonic cleared the flag to pass
//! it). So, once the program is ready, each passed descriptor of its main process
//! (`/proc/PID/fd/N`, `/proc/PID/fdinfo/N`) is looked at: still the socket and marked
//! close-on-exec (or moved elsewhere: the socket held at another number) is taken;
//! closed, or still as passed, is not.
//!
//! Limits: a heuristic about the main process only. A program that forks its server and
//! exits, or one whose activation code does not set close-on-exec (some hand-written
//! ones), is reported as not taking its sockets: keep the default `optional` for those.

use std::os::fd::AsFd;

use nix::sys::stat::fstat;

use super::Bound;

/// `O_CLOEXEC` as `/proc/PID/fdinfo` shows it in `flags:` (octal).
const O_CLOEXEC: u32 = 0o2000000;

/// Why the program with pid `pid` did not take the sockets of `held` (passed as 3, 4, …),
/// or `None` if it took every one.
pub fn not_taken(pid: i32, held: &[std::sync::Arc<Bound>]) -> Option<String> {
    let mut missing = Vec::new();
    for (i, b) in held.iter().enumerate() {
        let fd = 3 + i;
        let Ok(ino) = fstat(b.as_fd()).map(|st| st.st_ino) else {
            continue;
        };
        let want = format!("socket:[{ino}]");
        let link = std::fs::read_link(format!("/proc/{pid}/fd/{fd}"))
            .map(|l| l.to_string_lossy().into_owned());
        let why = match link {
            Ok(l) if l == want => match cloexec(pid, fd) {
                Some(true) | None => continue,
                Some(false) => format!(
                    "socket {} is still descriptor {fd} as passed (not marked close-on-exec)",
                    b.name()
                ),
            },
            _ if held_elsewhere(pid, &want) => continue,
            _ => format!("socket {} was closed (descriptor {fd})", b.name()),
        };
        missing.push(why);
    }
    (!missing.is_empty()).then(|| {
        format!(
            "the program did not take its sockets by socket activation (LISTEN_FDS): {}; \
             --socket-activation required",
            missing.join(", ")
        )
    })
}

/// Whether descriptor `fd` of `pid` is close-on-exec (`None`: cannot be read).
fn cloexec(pid: i32, fd: usize) -> Option<bool> {
    let info = std::fs::read_to_string(format!("/proc/{pid}/fdinfo/{fd}")).ok()?;
    let flags = info.lines().find_map(|l| l.strip_prefix("flags:"))?;
    let flags = u32::from_str_radix(flags.trim(), 8).ok()?;
    Some(flags & O_CLOEXEC != 0)
}

fn held_elsewhere(pid: i32, want: &str) -> bool {
    std::fs::read_dir(format!("/proc/{pid}/fd")).is_ok_and(|d| {
        d.flatten()
            .any(|e| std::fs::read_link(e.path()).is_ok_and(|l| l.as_os_str() == want))
    })
}
