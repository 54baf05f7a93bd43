//! One file per subcommand.

pub mod run;
pub mod start;
pub mod status;
pub mod stop;

/// A process's exit status as the `u8` a shell sees (codes are 0–255; 128+signal).
fn exit_code(exit: daemonic::process::Exit) -> u8 {
    exit.shell_status().clamp(0, 255) as u8
}

/// The shell's statuses for a command that could not be run: 127 not found, 126 not
/// executable; `None` for other errors.
pub fn spawn_failure_code(err: &anyhow::Error) -> Option<u8> {
    let e = err.downcast_ref::<daemonic::Error>()?;
    match e.os_error()? {
        libc::ENOENT => Some(127),
        libc::EACCES | libc::ENOEXEC | libc::EISDIR | libc::ENOTDIR => Some(126),
        _ => None,
    }
}
