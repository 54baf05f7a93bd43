//! What of daemonic's own environment no child gets: every process the supervisor starts
//! (a service's child, an exec probe, the give-up hook) begins from the supervisor's
//! environment without these, and is then given what is meant for it.

use std::ffi::OsStr;
use std::process::Command;

/// Variables that describe daemonic's own environment, never a child's. With every
/// `DAEMONIC_*` variable of daemonic's environment (`DAEMONIC_STATE_DIR`, …), they are
/// removed by [`strip_internal`]; the child then gets what it is given anew
/// (`NOTIFY_SOCKET`, `WATCHDOG_USEC` and `WATCHDOG_PID`, `INVOCATION_ID`, and with `--user` the user's
/// `HOME`, `USER`, `LOGNAME`, `SHELL`). Everything else is inherited.
pub const NOT_FOR_CHILD: &[&str] = &[
    "NOTIFY_SOCKET",
    "WATCHDOG_USEC",
    "WATCHDOG_PID",
    "LISTEN_FDS",
    "LISTEN_PID",
    "LISTEN_FDNAMES",
    "DAEMONIC_REEXEC",
    "DAEMONIC_STATE_DIR",
    "INVOCATION_ID",
];

/// Removes from `cmd`'s environment what no child of daemonic gets (see [`NOT_FOR_CHILD`]);
/// call it before setting variables for the child.
pub fn strip_internal(cmd: &mut Command) {
    static OWN: std::sync::OnceLock<Vec<std::ffi::OsString>> = std::sync::OnceLock::new();
    let own = OWN.get_or_init(|| {
        use std::os::unix::ffi::OsStrExt;
        std::env::vars_os()
            .map(|(k, _)| k)
            .filter(|k| k.as_bytes().starts_with(b"DAEMONIC_"))
            .collect()
    });
    for var in NOT_FOR_CHILD
        .iter()
        .map(OsStr::new)
        .chain(own.iter().map(|k| k.as_os_str()))
    {
        cmd.env_remove(var);
    }
}
