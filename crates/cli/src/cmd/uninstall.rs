//! `daemonic uninstall NAME [--user|--system]`: stop and disable a service's systemd unit
//! and remove its file; `daemonic uninstall --up [-f FILE]` does it for the file's
//! supervisor.
//!
//! Idempotent: a unit that is not installed is a note, not an error. Only a unit file
//! daemonic wrote is removed (unless `--force`); units the service depended on stay (other
//! services may need them). With `--unit-dir`, only the file is removed; systemd is not
//! told.

use std::path::PathBuf;

use anyhow::{Context as _, Result, bail};

use daemonic::durable::sync_dir;

use super::install::systemctl;
use super::unit::{Target, What, file_name};
use crate::units::written_by_daemonic;

#[derive(clap::Args, Debug)]
pub struct Args {
    #[command(flatten)]
    what: What,
    #[command(flatten)]
    target: Target,
    /// Remove the unit from DIR instead of the manager's unit directory, and do not tell
    /// systemd.
    #[arg(long, value_name = "DIR")]
    unit_dir: Option<PathBuf>,
    /// Remove a unit file daemonic did not write.
    #[arg(long)]
    force: bool,
}

pub fn run(a: Args) -> Result<u8> {
    let name = file_name(&a.what)?;
    let scope = a.target.scope();
    let dir = match &a.unit_dir {
        Some(d) => d.clone(),
        None => scope.unit_dir()?,
    };
    let path = dir.join(&name);
    let text = match std::fs::read_to_string(&path) {
        Ok(t) => t,
        Err(e) if e.kind() == std::io::ErrorKind::NotFound => {
            println!("not installed: {} (nothing to do)", path.display());
            return Ok(0);
        }
        Err(e) => return Err(e).with_context(|| format!("read {}", path.display())),
    };
    if !a.force && !written_by_daemonic(&text) {
        bail!(
            "{}: was not written by daemonic; not removing it (--force does)",
            path.display()
        );
    }
    if a.unit_dir.is_none() {
        // Stops it too; disabling a unit that is not enabled is a no-op.
        systemctl(scope, &["disable", "--now", "--quiet", &name])?;
        println!("stopped and disabled: {name}");
    }
    std::fs::remove_file(&path).with_context(|| format!("remove {}", path.display()))?;
    sync_dir(&dir)?;
    println!("removed: {}", path.display());
    if a.unit_dir.is_none() {
        systemctl(scope, &["daemon-reload"])?;
        // Forget a failed state, so the name does not linger in `systemctl --failed`.
        let _ = systemctl(scope, &["reset-failed", &name]);
    }
    Ok(0)
}
