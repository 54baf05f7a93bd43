//! The Windows service itself (Windows only): `daemonic windows-service …` hands its
//! process to the Service Control Manager (SCM), which calls back into [`run_program`] on a
//! thread of its own; that runs the program, restarts it, and stops it on *Stop*.
//!
//! Everything waits on one channel of [`Event`]s, never by polling: the SCM's control
//! handler sends `Stop`, and each child has a waiter thread that sends `Exited` when
//! `Child::wait` returns. The waiter keeps the child's process handle open until the
//! supervisor has taken the exit (dropping [`Running`]): while a handle is open Windows
//! does not reuse the pid, so a `taskkill /PID` racing with the exit can never reach
//! another process.
//!
//! Stopping: `taskkill /PID pid /T` asks the program's process tree to close (a program
//! with a window gets WM_CLOSE); after `stop-timeout`, or at once if that request was
//! refused (a console program without a window "can only be terminated forcefully"),
//! `taskkill /T /F` ends the tree. Windows has no SIGTERM for console programs short of
//! attaching to their console, which this design does not do.

use std::fs::{File, OpenOptions};
use std::io::Write;
use std::path::Path;
use std::process::{Command, ExitStatus, Stdio};
use std::sync::OnceLock;
use std::sync::mpsc::{self, Receiver, RecvTimeoutError, Sender};
use std::time::{Duration, Instant};

use anyhow::{Context, Result, anyhow};
use windows_service::service::{
    ServiceControl, ServiceControlAccept, ServiceExitCode, ServiceState, ServiceStatus, ServiceType,
};
use windows_service::service_control_handler::{
    self, ServiceControlHandlerResult, ServiceStatusHandle,
};

use super::{Next, Restarts, Spec};

/// The service to run, set once by [`run`] before the SCM calls back.
static SPEC: OnceLock<Spec> = OnceLock::new();

/// Extra time the SCM is told a start or stop may take beyond our own timeouts.
const MARGIN: Duration = Duration::from_secs(5);

/// `daemonic windows-service --name=NAME … -- CMD…` (the registered launch arguments,
/// after the program's own name): runs the service until the SCM stops it.
pub fn run(args: &[String]) -> Result<()> {
    let spec = Spec::from_args(args)?;
    let name = spec.service_name();
    SPEC.set(spec)
        .map_err(|_| anyhow!("{name}: the service is already set up in this process"))?;
    dispatch::start(&name).with_context(|| {
        format!("start the service dispatcher for {name} (only the Service Control Manager can run this)")
    })
}

/// The SCM's entry point. `define_windows_service!` expands to an `extern "system" fn`
/// whose `unsafe` block turns the SCM's `argc`/`argv` of wide strings into `OsString`s:
/// sound by the windows-service crate's contract, since the SCM passes a valid argv.
#[allow(unsafe_code)]
mod dispatch {
    windows_service::define_windows_service!(ffi_service_main, service_main);

    pub(super) fn start(name: &str) -> windows_service::Result<()> {
        windows_service::service_dispatcher::start(name, ffi_service_main)
    }

    fn service_main(_arguments: Vec<std::ffi::OsString>) {
        let Some(spec) = super::SPEC.get() else {
            return;
        };
        if let Err(e) = super::run_program(spec) {
            // No terminal here: daemonic's own messages go to the service's log.
            super::note(spec, &format!("{e:#}"));
        }
    }
}

enum Event {
    Stop,
    Exited(std::io::Result<ExitStatus>),
}

/// Runs the program until *Stop*, or until the restart policy ends it.
fn run_program(spec: &Spec) -> Result<()> {
    let (tx, rx) = mpsc::channel::<Event>();
    let stop = tx.clone();
    let handle =
        service_control_handler::register(spec.service_name(), move |control| match control {
            ServiceControl::Stop | ServiceControl::Shutdown => {
                let _ = stop.send(Event::Stop);
                ServiceControlHandlerResult::NoError
            }
            ServiceControl::Interrogate => ServiceControlHandlerResult::NoError,
            _ => ServiceControlHandlerResult::NotImplemented,
        })
        .context("register the service control handler")?;
    let status = Reporter::new(handle);
    let mut restarts = Restarts::new(spec);
    let mut reported_running = false;
    loop {
        if !reported_running {
            status.pending(
                ServiceState::StartPending,
                spec.grace + spec.backoff_max + MARGIN,
            )?;
        }
        let started = Instant::now();
        restarts.started(started);
        let child = match Running::spawn(spec, tx.clone()) {
            Ok(c) => c,
            Err(e) => {
                status.stopped(1)?;
                return Err(e);
            }
        };
        // Wait for the child's end (or a stop), reporting Running once it lived `grace`.
        let event = loop {
            if reported_running {
                break rx.recv().unwrap_or(Event::Stop);
            }
            match rx.recv_timeout(spec.grace.saturating_sub(started.elapsed())) {
                Ok(event) => break event,
                Err(RecvTimeoutError::Timeout) => {
                    status.running()?;
                    reported_running = true;
                }
                Err(RecvTimeoutError::Disconnected) => break Event::Stop,
            }
        };
        let code = match event {
            Event::Stop => {
                child.stop(spec, &rx, &status)?;
                return status.stopped(0);
            }
            Event::Exited(Ok(st)) => st.code().unwrap_or(1),
            Event::Exited(Err(e)) => {
                note(spec, &format!("wait for {}: {e}", spec.command[0]));
                1
            }
        };
        drop(child);
        match restarts.exited(code, started.elapsed(), Instant::now()) {
            Next::Restart(delay) => {
                note(
                    spec,
                    &format!("exited with status {code}; restarting in {delay:?}"),
                );
                match rx.recv_timeout(delay) {
                    Err(RecvTimeoutError::Timeout) => continue,
                    _ => return status.stopped(0),
                }
            }
            Next::End(why) => {
                note(spec, &why);
                return status.stopped(code);
            }
        }
    }
}

/// A started child, and the waiter thread that holds its process handle.
struct Running {
    pid: u32,
    /// Dropping it lets the waiter close the process handle (see the module docs).
    _release: Sender<()>,
}

impl Running {
    fn spawn(spec: &Spec, events: Sender<Event>) -> Result<Running> {
        let program = &spec.command[0];
        let mut cmd = Command::new(program);
        cmd.args(&spec.command[1..]).stdin(Stdio::null());
        if let Some(dir) = &spec.dir {
            cmd.current_dir(dir);
        }
        cmd.envs(spec.environment()?);
        let out = open_log(&spec.log_file)?;
        let err = match &spec.log_stderr_file {
            Some(path) => open_log(path)?,
            None => out
                .try_clone()
                .with_context(|| format!("duplicate {}", spec.log_file.display()))?,
        };
        cmd.stdout(out).stderr(err);
        let mut child = cmd.spawn().with_context(|| format!("start {program}"))?;
        let pid = child.id();
        let (release, released) = mpsc::channel::<()>();
        std::thread::spawn(move || {
            let status = child.wait();
            let _ = events.send(Event::Exited(status));
            let _ = released.recv();
            drop(child);
        });
        Ok(Running {
            pid,
            _release: release,
        })
    }

    /// Asks the process tree to close, then ends it after the stop timeout.
    fn stop(self, spec: &Spec, events: &Receiver<Event>, status: &Reporter) -> Result<()> {
        status.pending(ServiceState::StopPending, spec.stop_timeout + MARGIN)?;
        let asked = taskkill(self.pid, false);
        if asked && exited_within(events, spec.stop_timeout) {
            return Ok(());
        }
        if !taskkill(self.pid, true) {
            note(spec, &format!("taskkill /F /T /PID {} failed", self.pid));
        }
        if !exited_within(events, MARGIN) {
            note(
                spec,
                &format!("pid {} did not end after taskkill /F", self.pid),
            );
        }
        Ok(())
    }
}

/// Waits up to `limit` for the child's exit (further stop requests change nothing).
fn exited_within(events: &Receiver<Event>, limit: Duration) -> bool {
    let deadline = Instant::now() + limit;
    loop {
        match events.recv_timeout(deadline.saturating_duration_since(Instant::now())) {
            Ok(Event::Exited(_)) => return true,
            Ok(Event::Stop) => continue,
            Err(_) => return false,
        }
    }
}

/// `taskkill /PID pid /T`, with `/F` if `force`; whether it succeeded.
fn taskkill(pid: u32, force: bool) -> bool {
    let pid = pid.to_string();
    let mut args = vec!["/PID", pid.as_str(), "/T"];
    if force {
        args.push("/F");
    }
    Command::new("taskkill")
        .args(&args)
        .stdin(Stdio::null())
        .stdout(Stdio::null())
        .stderr(Stdio::null())
        .status()
        .is_ok_and(|s| s.success())
}

/// Opens `path` for appending, creating it and its directory.
fn open_log(path: &Path) -> Result<File> {
    if let Some(dir) = path.parent().filter(|d| !d.as_os_str().is_empty()) {
        std::fs::create_dir_all(dir).with_context(|| format!("create {}", dir.display()))?;
    }
    OpenOptions::new()
        .create(true)
        .append(true)
        .open(path)
        .with_context(|| format!("open {}", path.display()))
}

/// A line from daemonic itself in the service's log (best effort: there is nowhere else
/// to report a failure to write it).
fn note(spec: &Spec, text: &str) {
    if let Ok(mut f) = open_log(&spec.log_file) {
        let _ = writeln!(f, "daemonic: {}: {text}", spec.name);
    }
}

/// Reports the service's state to the SCM.
struct Reporter {
    handle: ServiceStatusHandle,
    checkpoint: std::cell::Cell<u32>,
}

impl Reporter {
    fn new(handle: ServiceStatusHandle) -> Reporter {
        Reporter {
            handle,
            checkpoint: std::cell::Cell::new(0),
        }
    }

    /// A pending state; each call moves the checkpoint on, so the SCM sees progress.
    fn pending(&self, state: ServiceState, wait_hint: Duration) -> Result<()> {
        self.checkpoint.set(self.checkpoint.get() + 1);
        self.set(
            state,
            ServiceControlAccept::empty(),
            ServiceExitCode::Win32(0),
            wait_hint,
        )
    }

    fn running(&self) -> Result<()> {
        self.checkpoint.set(0);
        self.set(
            ServiceState::Running,
            ServiceControlAccept::STOP | ServiceControlAccept::SHUTDOWN,
            ServiceExitCode::Win32(0),
            Duration::ZERO,
        )
    }

    /// Stopped, with the program's last status as the service-specific exit code.
    fn stopped(&self, code: i32) -> Result<()> {
        self.checkpoint.set(0);
        let exit = if code == 0 {
            ServiceExitCode::Win32(0)
        } else {
            ServiceExitCode::ServiceSpecific(code as u32)
        };
        self.set(
            ServiceState::Stopped,
            ServiceControlAccept::empty(),
            exit,
            Duration::ZERO,
        )
    }

    fn set(
        &self,
        state: ServiceState,
        accept: ServiceControlAccept,
        exit_code: ServiceExitCode,
        wait_hint: Duration,
    ) -> Result<()> {
        self.handle
            .set_service_status(ServiceStatus {
                service_type: ServiceType::OWN_PROCESS,
                current_state: state,
                controls_accepted: accept,
                exit_code,
                checkpoint: self.checkpoint.get(),
                wait_hint,
                process_id: None,
            })
            .with_context(|| format!("report {state:?} to the Service Control Manager"))
    }
}
