//! One file per subcommand.

pub mod run;
pub mod start;
pub mod status;
pub mod stop;

/// A process's exit status as the `u8` a shell sees (codes are 0–255; 128+signal).
fn exit_code(exit: daemonic::process::Exit) -> u8 {
    exit.shell_status().clamp(0, 255) as u8
}

/// Supervises `service` until it is stopped, exits for good or gives up, then releases the
/// pid file; the exit status is the child's (last): 127/126 if it could not be
/// found/executed (with the reason on stderr), 128+N if signal N killed it.
fn supervise(
    service: &crate::service::Service,
    running: daemonic::Running,
    status: Option<std::path::PathBuf>,
) -> anyhow::Result<u8> {
    use anyhow::Context;
    let entry = crate::supervisor::Entry {
        service: service.clone(),
        status_file: status,
    };
    let exits = crate::supervisor::supervise(vec![entry], &running)?;
    running.finish().with_context(|| service.name.clone())?;
    Ok(exits.first().map_or(0, |e| exit_code(*e)))
}
