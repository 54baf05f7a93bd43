//! Registering the Windows service with the Service Control Manager (Windows only).
//!
//! Idempotent: an existing `daemonic-NAME` whose configuration (command line, display
//! name, start type) is already the one asked for is left alone ([`Change::Unchanged`]);
//! one that differs is changed in place (the running program keeps the old definition
//! until its next start, as with `sc.exe config`); a missing one is created.
//! `unregister` of a service that does not exist succeeds with [`Change::Absent`].
//!
//! `--enable` makes it start automatically at boot (`AutoStart`; otherwise `OnDemand`);
//! `--now` starts it if it is stopped. Both need an administrator.

use std::ffi::OsString;
use std::time::{Duration, Instant};

use anyhow::{Context, Result};
use windows_service::service::{
    ServiceAccess, ServiceErrorControl, ServiceInfo, ServiceStartType, ServiceState, ServiceType,
};
use windows_service::service_manager::{ServiceManager, ServiceManagerAccess};

use super::{Spec, command_line};
use crate::units::launchd::Change;

/// winerror.h: the named service is not installed.
const ERROR_SERVICE_DOES_NOT_EXIST: i32 = 1060;

/// Registers (or updates) the service `spec` describes, running this `daemonic.exe`.
pub fn register(spec: &Spec, enable: bool, now: bool) -> Result<Change> {
    let name = spec.service_name();
    let daemonic = std::env::current_exe().context("find daemonic.exe (current_exe)")?;
    let info = ServiceInfo {
        name: OsString::from(&name),
        display_name: OsString::from(format!("daemonic: {}", spec.name)),
        service_type: ServiceType::OWN_PROCESS,
        start_type: if enable {
            ServiceStartType::AutoStart
        } else {
            ServiceStartType::OnDemand
        },
        error_control: ServiceErrorControl::Normal,
        executable_path: daemonic.clone(),
        launch_arguments: spec.to_args().into_iter().map(OsString::from).collect(),
        dependencies: Vec::new(),
        account_name: None, // LocalSystem
        account_password: None,
    };
    let manager = manager(ServiceManagerAccess::CONNECT | ServiceManagerAccess::CREATE_SERVICE)?;
    let access = ServiceAccess::QUERY_CONFIG
        | ServiceAccess::CHANGE_CONFIG
        | ServiceAccess::QUERY_STATUS
        | ServiceAccess::START;
    let (service, change) = match manager.open_service(&name, access) {
        Ok(service) => {
            let config = service
                .query_config()
                .with_context(|| format!("query the configuration of service {name}"))?;
            let wanted = command_line(&daemonic.to_string_lossy(), &spec.to_args());
            let same = config.executable_path.to_string_lossy() == wanted
                && config.display_name == info.display_name
                && config.start_type == info.start_type;
            if same {
                (service, Change::Unchanged)
            } else {
                service
                    .change_config(&info)
                    .with_context(|| format!("change the configuration of service {name}"))?;
                (service, Change::Updated)
            }
        }
        Err(windows_service::Error::Winapi(e))
            if e.raw_os_error() == Some(ERROR_SERVICE_DOES_NOT_EXIST) =>
        {
            let service = manager
                .create_service(&info, access)
                .with_context(|| format!("create service {name}"))?;
            service
                .set_description(format!(
                    "{} supervised by daemonic (daemonic.toml [services.{}])",
                    spec.command[0], spec.name
                ))
                .with_context(|| format!("describe service {name}"))?;
            (service, Change::Created)
        }
        Err(e) => return Err(e).with_context(|| format!("open service {name}")),
    };
    if now {
        let state = service
            .query_status()
            .with_context(|| format!("query the status of service {name}"))?
            .current_state;
        if state == ServiceState::Stopped {
            service
                .start::<OsString>(&[])
                .with_context(|| format!("start service {name}"))?;
        }
    }
    Ok(change)
}

/// Stops the service `daemonic-NAME` if it runs, and deletes it.
pub fn unregister(name: &str) -> Result<Change> {
    let name = format!("{}{name}", super::SERVICE_PREFIX);
    let manager = manager(ServiceManagerAccess::CONNECT)?;
    let access = ServiceAccess::QUERY_STATUS | ServiceAccess::STOP | ServiceAccess::DELETE;
    let service = match manager.open_service(&name, access) {
        Ok(s) => s,
        Err(windows_service::Error::Winapi(e))
            if e.raw_os_error() == Some(ERROR_SERVICE_DOES_NOT_EXIST) =>
        {
            return Ok(Change::Absent);
        }
        Err(e) => return Err(e).with_context(|| format!("open service {name}")),
    };
    // Marked for deletion first: the SCM deletes it once it has stopped and every
    // handle to it is closed.
    service
        .delete()
        .with_context(|| format!("delete service {name}"))?;
    let state = service
        .query_status()
        .with_context(|| format!("query the status of service {name}"))?
        .current_state;
    if state != ServiceState::Stopped {
        service
            .stop()
            .with_context(|| format!("stop service {name}"))?;
    }
    drop(service);
    // Wait (bounded) until it is gone, so that an `install` right after does not meet
    // ERROR_SERVICE_MARKED_FOR_DELETE.
    let deadline = Instant::now() + Duration::from_secs(30);
    while Instant::now() < deadline {
        match manager.open_service(&name, ServiceAccess::QUERY_STATUS) {
            Err(windows_service::Error::Winapi(e))
                if e.raw_os_error() == Some(ERROR_SERVICE_DOES_NOT_EXIST) =>
            {
                return Ok(Change::Removed);
            }
            _ => std::thread::sleep(Duration::from_millis(200)),
        }
    }
    anyhow::bail!(
        "service {name} is marked for deletion but still exists after 30 s (is something holding it open, such as services.msc?)"
    )
}

fn manager(access: ServiceManagerAccess) -> Result<ServiceManager> {
    ServiceManager::local_computer(None::<&str>, access)
        .context("connect to the Service Control Manager (needs an administrator)")
}
