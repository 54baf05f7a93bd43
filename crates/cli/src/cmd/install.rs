//! `daemonic install NAME [-f FILE] [--user|--system] [--enable] [--now]`: write the
//! systemd unit of a configured service (and of the services it depends on), and tell
//! systemd. `daemonic install --up` does it for the file's supervisor.
//!
//! Idempotent: a unit whose file already holds the same text is reported `unchanged`
//! and not written; systemd is reloaded only when a file changed. Files are replaced
//! atomically (temp file, fsync, rename, fsync the directory), and only files daemonic
//! wrote (they start with [`MARKER`](crate::units::MARKER)) unless `--force`. A unit
//! whose name clashes with a packaged unit, an `Alias=` of one, or an existing
//! `/var/lib/NAME` it would take as its `StateDirectory=` is refused too (into any
//! directory, `--unit-dir` included), unless `--force`: see `units::systemd::clashes`; so
//! is a unit whose dynamic user could not read a path it needs (`systemd::unreadable`).
//!
//! With `--now`, units whose files changed and that run are restarted (`try-restart`),
//! then the service is started (`systemctl start` waits until it is ready for
//! `Type=notify`). With `--unit-dir`, the files are written there and systemd is not
//! told (packaging, tests).

use std::io::Write;
use std::os::unix::fs::OpenOptionsExt;
use std::path::{Path, PathBuf};
use std::process::{Command, Stdio};

use anyhow::{Context as _, Result, bail};
use daemonic::durable::sync_dir;

use super::unit::{Generated, Target, What, generate, load};
use crate::units::Scope;
use crate::units::written_by_daemonic;

#[derive(clap::Args, Debug)]
pub struct Args {
    #[command(flatten)]
    what: What,
    #[command(flatten)]
    target: Target,
    /// Enable the unit: started at boot (system) or login (user).
    #[arg(long)]
    enable: bool,
    /// Start the unit now (restarting units whose files changed, if they run); waits
    /// until it is ready.
    #[arg(long)]
    now: bool,
    /// Write the units into DIR instead of the manager's unit directory, and do not tell
    /// systemd.
    #[arg(long, value_name = "DIR", conflicts_with_all = ["enable", "now"])]
    unit_dir: Option<PathBuf>,
    /// Replace a unit file daemonic did not write (or one that overrides a packaged unit).
    #[arg(long)]
    force: bool,
}

/// What happened to one unit file.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
enum Change {
    Installed,
    Updated,
    Unchanged,
}

pub fn run(a: Args) -> Result<u8> {
    let (config, _) = load(&a.what)?;
    let units = generate(&config, &a.what, &a.target, true)?;
    let scope = a.target.scope();
    let dir = match &a.unit_dir {
        Some(d) => d.clone(),
        None => scope.unit_dir()?,
    };
    std::fs::create_dir_all(&dir).with_context(|| format!("create {}", dir.display()))?;
    let mut changed = Vec::new();
    for unit in &units {
        let path = dir.join(&unit.file_name);
        if !a.force && !unit.problems.is_empty() {
            bail!(
                "{}: {}. Not installed (--force installs it anyway)",
                unit.file_name,
                unit.problems.join("; ")
            );
        }
        let change = write(&path, unit, a.force)?;
        let word = match change {
            Change::Installed => "installed",
            Change::Updated => "updated",
            Change::Unchanged => "unchanged",
        };
        println!("{word}: {}", path.display());
        if change != Change::Unchanged {
            changed.push(unit.file_name.clone());
        }
    }
    let main = &units.last().expect("at least the unit asked for").file_name;
    if a.unit_dir.is_some() {
        println!("not told to systemd (--unit-dir)");
        return Ok(0);
    }
    if !changed.is_empty() {
        systemctl(scope, &["daemon-reload"])?;
    }
    if a.enable {
        // Its sockets too: a connection then starts the service (`units::systemd::sockets`).
        let mut names: Vec<&str> = units
            .iter()
            .map(|u| u.file_name.as_str())
            .filter(|n| n.ends_with(".socket"))
            .collect();
        names.push(main);
        let mut args = vec!["enable", "--quiet"];
        args.extend(&names);
        systemctl(scope, &args)?;
        println!("enabled: {}", names.join(" "));
    }
    if a.now {
        if !changed.is_empty() {
            let mut args = vec!["try-restart"];
            args.extend(changed.iter().map(String::as_str));
            systemctl(scope, &args)?;
        }
        systemctl(scope, &["start", main])?;
        println!("started: {main}");
    }
    Ok(0)
}

/// Writes `unit` to `path` unless it already holds that text.
fn write(path: &Path, unit: &Generated, force: bool) -> Result<Change> {
    let change = match std::fs::read_to_string(path) {
        Ok(old) if old == unit.text => return Ok(Change::Unchanged),
        Ok(old) if !force && !written_by_daemonic(&old) => bail!(
            "{}: exists and was not written by daemonic; not replacing it (--force does)",
            path.display()
        ),
        Ok(_) => Change::Updated,
        Err(e) if e.kind() == std::io::ErrorKind::NotFound => Change::Installed,
        Err(e) => return Err(e).with_context(|| format!("read {}", path.display())),
    };
    replace(path, unit.text.as_bytes())?;
    Ok(change)
}

/// Replaces `path` with `bytes` atomically and durably: a temp file beside it, fsync,
/// rename over, fsync the directory. Mode 0644, as systemd expects of unit files.
pub fn replace(path: &Path, bytes: &[u8]) -> Result<()> {
    let dir = path.parent().unwrap_or(Path::new("/"));
    let name = path.file_name().unwrap_or_default().to_string_lossy();
    let tmp = dir.join(format!(".{name}.daemonic-{}", std::process::id()));
    let result = (|| {
        let mut f = std::fs::OpenOptions::new()
            .write(true)
            .create_new(true)
            .mode(0o644)
            .open(&tmp)
            .with_context(|| format!("create {}", tmp.display()))?;
        f.write_all(bytes)
            .and_then(|()| f.sync_all())
            .with_context(|| format!("write {}", tmp.display()))?;
        std::fs::rename(&tmp, path)
            .with_context(|| format!("rename {} to {}", tmp.display(), path.display()))
    })();
    if result.is_err() {
        let _ = std::fs::remove_file(&tmp);
    }
    result?;
    Ok(sync_dir(dir)?)
}

/// Runs `systemctl [--user] ARGS`; its stderr is in the error.
pub fn systemctl(scope: Scope, args: &[&str]) -> Result<()> {
    let mut cmd = Command::new("systemctl");
    if scope == Scope::User {
        cmd.arg("--user");
    }
    cmd.args(args).stdin(Stdio::null());
    let shown = format!(
        "systemctl {}{}",
        if scope == Scope::User { "--user " } else { "" },
        args.join(" ")
    );
    let out = cmd.output().with_context(|| shown.clone())?;
    if !out.status.success() {
        bail!(
            "{shown}: {}: {}",
            out.status,
            String::from_utf8_lossy(&out.stderr).trim()
        );
    }
    Ok(())
}
