//! One file per subcommand.

pub mod logs;
pub mod run;
pub mod start;
pub mod status;
pub mod stop;

/// A process's exit status as the `u8` a shell sees (codes are 0–255; 128+signal).
fn exit_code(exit: daemonic::process::Exit) -> u8 {
    exit.shell_status().clamp(0, 255) as u8
}

/// Supervises `service` until it is stopped, exits for good or gives up, then releases the
/// pid file; the exit status is the child's (last), or 127/126 if it could not be found/executed (with the reason on stderr).
fn supervise(
    service: &crate::service::Service,
    running: daemonic::Running,
    status: Option<std::path::PathBuf>,
) -> anyhow::Result<u8> {
    use anyhow::Context;
    let name = &service.name;
    let exit = match crate::supervisor::supervise(service, &running, status) {
        Ok(exit) => exit,
        Err(e) => match spawn_failure_code(&e) {
            Some(code) => {
                eprintln!("daemonic: {name}: {e:#}");
                return Ok(code);
            }
            None => return Err(e),
        },
    };
    running.finish().with_context(|| name.clone())?;
    Ok(exit_code(exit))
}

/// The shell's statuses for a command that could not be run: 127 not found, 126 not
/// executable; `None` for other errors.
fn spawn_failure_code(err: &anyhow::Error) -> Option<u8> {
    let e = err.downcast_ref::<daemonic::Error>()?;
    match e.os_error()? {
        libc::ENOENT => Some(127),
        libc::EACCES | libc::ENOEXEC | libc::EISDIR | libc::ENOTDIR => Some(126),
        _ => None,
    }
}
