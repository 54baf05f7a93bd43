//! Installing a job: the plist file, then `launchctl`.
//!
//! Idempotent by construction: the file is rewritten only when its bytes differ
//! ([`Change::Unchanged`] otherwise), and the `launchctl` steps are planned from what is
//! already true (is the job loaded? did the file change?) by the pure [`plan_install`] and
//! [`plan_uninstall`], so running `install` twice does nothing the second time and
//! `uninstall` of something absent succeeds saying so.
//!
//! What the flags mean on launchd (there is no separate "enabled" state as systemd has):
//!
//! - the plist in `/Library/LaunchDaemons` (or `~/Library/LaunchAgents`) is what makes
//!   launchd load the job at boot (or login) — writing it *is* enabling it, as far as
//!   launchd has such a thing;
//! - `--enable` also runs `launchctl enable DOMAIN/LABEL`, which clears an earlier
//!   `launchctl disable` (a disabled job is not loaded even with its plist in place);
//! - `--now` loads it now with `launchctl bootstrap DOMAIN PLIST` (and, the job having
//!   `RunAtLoad`, starts it). A loaded job whose plist changed is reloaded — `bootout`
//!   then `bootstrap`, which restarts it — only with `--now`; without it the new
//!   definition applies at the next load.
//!
//! `uninstall`: `launchctl bootout DOMAIN/LABEL` if the job is loaded (launchd sends it
//! SIGTERM, then SIGKILL after `ExitTimeOut`), then the plist is removed.
//!
//! The file is written the durable way: a temporary file beside it, `sync_all`, rename,
//! then the directory synced, so a crash leaves the old plist or the new one, never half
//! of one. Mode 0644: launchd refuses a plist that group or others may write to.

use std::io::Write;
use std::os::unix::fs::OpenOptionsExt;
use std::path::{Path, PathBuf};

use anyhow::{Context, Result};
use daemonic::durable::sync_dir;

/// What happened to a file.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Change {
    Created,
    Updated,
    /// It already had exactly this content.
    Unchanged,
    Removed,
    /// There was nothing to remove.
    Absent,
}

impl Change {
    pub fn as_str(self) -> &'static str {
        match self {
            Change::Created => "created",
            Change::Updated => "updated",
            Change::Unchanged => "unchanged",
            Change::Removed => "removed",
            Change::Absent => "not installed",
        }
    }
}

/// One `launchctl` call.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Step {
    /// `launchctl enable DOMAIN/LABEL`
    Enable { target: String },
    /// `launchctl bootstrap DOMAIN PLIST`
    Bootstrap { domain: String, plist: PathBuf },
    /// `launchctl bootout DOMAIN/LABEL`
    Bootout { target: String },
}

impl Step {
    /// The command line, `launchctl` first.
    pub fn argv(&self) -> Vec<String> {
        let words: Vec<&str> = match self {
            Step::Enable { target } => vec!["enable", target],
            Step::Bootstrap { domain, plist } => {
                return vec![
                    "launchctl".into(),
                    "bootstrap".into(),
                    domain.clone(),
                    plist.display().to_string(),
                ];
            }
            Step::Bootout { target } => vec!["bootout", target],
        };
        std::iter::once("launchctl")
            .chain(words)
            .map(String::from)
            .collect()
    }
}

/// The `launchctl` calls that make the job as asked, given the file's `change` and
/// whether the job is `loaded` (see the module docs for what the flags mean).
pub fn plan_install(
    change: Change,
    loaded: bool,
    enable: bool,
    now: bool,
    domain: &str,
    label: &str,
    plist: &Path,
) -> Vec<Step> {
    let target = format!("{domain}/{label}");
    let mut steps = Vec::new();
    if enable {
        steps.push(Step::Enable {
            target: target.clone(),
        });
    }
    let bootstrap = Step::Bootstrap {
        domain: domain.to_string(),
        plist: plist.to_path_buf(),
    };
    match (loaded, change, now) {
        (false, _, true) => steps.push(bootstrap),
        (true, Change::Created | Change::Updated, true) => {
            steps.push(Step::Bootout { target });
            steps.push(bootstrap);
        }
        _ => {}
    }
    steps
}

/// The `launchctl` calls that remove the job from launchd, if it is `loaded`.
pub fn plan_uninstall(loaded: bool, domain: &str, label: &str) -> Vec<Step> {
    if loaded {
        vec![Step::Bootout {
            target: format!("{domain}/{label}"),
        }]
    } else {
        Vec::new()
    }
}

/// Writes `text` to `path` (mode 0644, creating its directory) unless it holds exactly
/// that already.
pub fn write_file(path: &Path, text: &str) -> Result<Change> {
    let change = match std::fs::read(path) {
        Ok(old) if old == text.as_bytes() => return Ok(Change::Unchanged),
        Ok(_) => Change::Updated,
        Err(e) if e.kind() == std::io::ErrorKind::NotFound => Change::Created,
        Err(e) => return Err(e).with_context(|| format!("read {}", path.display())),
    };
    let dir = path
        .parent()
        .with_context(|| format!("{}: no parent directory", path.display()))?;
    std::fs::create_dir_all(dir).with_context(|| format!("create {}", dir.display()))?;
    let name = path.file_name().unwrap_or_default().to_string_lossy();
    let tmp = dir.join(format!(".{name}.tmp"));
    // A leftover of a crash would keep its old mode through `truncate`.
    let _ = std::fs::remove_file(&tmp);
    let mut file = std::fs::OpenOptions::new()
        .write(true)
        .create(true)
        .truncate(true)
        .mode(0o644)
        .open(&tmp)
        .with_context(|| format!("create {}", tmp.display()))?;
    file.write_all(text.as_bytes())
        .and_then(|()| file.sync_all())
        .with_context(|| format!("write {}", tmp.display()))?;
    drop(file);
    std::fs::rename(&tmp, path)
        .with_context(|| format!("rename {} to {}", tmp.display(), path.display()))?;
    sync_dir(dir)?;
    Ok(change)
}

/// Removes `path`; [`Change::Absent`] if it was not there.
pub fn remove_file(path: &Path) -> Result<Change> {
    match std::fs::remove_file(path) {
        Ok(()) => {
            if let Some(dir) = path.parent() {
                sync_dir(dir)?;
            }
            Ok(Change::Removed)
        }
        Err(e) if e.kind() == std::io::ErrorKind::NotFound => Ok(Change::Absent),
        Err(e) => Err(e).with_context(|| format!("remove {}", path.display())),
    }
}

#[cfg(target_os = "macos")]
pub use macos::{Installed, Uninstalled, install, uninstall};

/// The calls themselves; macOS only (compile-checked only where that target is installed).
#[cfg(target_os = "macos")]
mod macos {
    use std::path::PathBuf;
    use std::process::Command;

    use anyhow::{Context as _, Result, bail};

    use super::{Change, Step, plan_install, plan_uninstall, remove_file, write_file};
    use crate::config::Def;
    use crate::units::launchd::{PlistHost, Scope, label, plist};

    /// What `install` did.
    #[derive(Debug)]
    pub struct Installed {
        pub plist: PathBuf,
        pub change: Change,
        pub ran: Vec<Step>,
        /// Why the job runs under `daemonic run` (empty: launchd runs the program).
        pub supervised_because: Vec<String>,
    }

    /// What `uninstall` did.
    #[derive(Debug)]
    pub struct Uninstalled {
        pub plist: PathBuf,
        pub change: Change,
        pub ran: Vec<Step>,
    }

    /// Writes the job of `def` into `scope`'s directory and runs what `enable`/`now` ask
    /// (see the module docs). Running it again with the same definition does nothing.
    pub fn install(def: &Def, scope: Scope, enable: bool, now: bool) -> Result<Installed> {
        let home = home(scope)?;
        let daemonic = std::env::current_exe()
            .and_then(std::fs::canonicalize)
            .context("find the daemonic binary (current_exe)")?;
        let ctx = PlistHost {
            daemonic,
            scope,
            default_log: scope.default_log(&home, &def.name),
        };
        let job = plist(def, &ctx)?;
        let path = scope.directory(&home).join(format!("{}.plist", job.label));
        // launchd opens the log files but does not create their directories.
        for log in &job.log_files {
            if let Some(dir) = log.parent() {
                std::fs::create_dir_all(dir)
                    .with_context(|| format!("create {}", dir.display()))?;
            }
        }
        let change = write_file(&path, &job.text)?;
        let domain = domain(scope);
        let loaded = loaded(&domain, &job.label)?;
        let steps = plan_install(change, loaded, enable, now, &domain, &job.label, &path);
        for step in &steps {
            run(step)?;
        }
        Ok(Installed {
            plist: path,
            change,
            ran: steps,
            supervised_because: job.supervised_because,
        })
    }

    /// Boots the job out of launchd if it is loaded, then removes its plist.
    pub fn uninstall(name: &str, scope: Scope) -> Result<Uninstalled> {
        let home = home(scope)?;
        let label = label(name);
        let path = scope.directory(&home).join(format!("{label}.plist"));
        let domain = domain(scope);
        let steps = plan_uninstall(loaded(&domain, &label)?, &domain, &label);
        for step in &steps {
            run(step)?;
        }
        let change = remove_file(&path)?;
        Ok(Uninstalled {
            plist: path,
            change,
            ran: steps,
        })
    }

    fn home(scope: Scope) -> Result<PathBuf> {
        match (scope, std::env::var_os("HOME")) {
            (Scope::System, home) => Ok(home.map(PathBuf::from).unwrap_or_default()),
            (Scope::User, Some(h)) if !h.is_empty() => Ok(PathBuf::from(h)),
            (Scope::User, _) => bail!("HOME is not set: cannot find ~/Library/LaunchAgents"),
        }
    }

    /// `system`, or `gui/UID` for the user running daemonic.
    fn domain(scope: Scope) -> String {
        match scope {
            Scope::System => "system".into(),
            Scope::User => format!("gui/{}", nix::unistd::getuid()),
        }
    }

    /// Whether launchd has the job loaded: `launchctl print` knows it.
    fn loaded(domain: &str, label: &str) -> Result<bool> {
        let target = format!("{domain}/{label}");
        let out = Command::new("launchctl")
            .args(["print", &target])
            .output()
            .with_context(|| format!("run launchctl print {target}"))?;
        Ok(out.status.success())
    }

    fn run(step: &Step) -> Result<()> {
        let argv = step.argv();
        let out = Command::new(&argv[0])
            .args(&argv[1..])
            .output()
            .with_context(|| format!("run {}", argv.join(" ")))?;
        if !out.status.success() {
            bail!(
                "{}: {} {}",
                argv.join(" "),
                out.status,
                String::from_utf8_lossy(&out.stderr).trim()
            );
        }
        Ok(())
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn plan(change: Change, loaded: bool, enable: bool, now: bool) -> Vec<Vec<String>> {
        plan_install(
            change,
            loaded,
            enable,
            now,
            "system",
            "dev.daemonic.web",
            Path::new("/Library/LaunchDaemons/dev.daemonic.web.plist"),
        )
        .iter()
        .map(Step::argv)
        .collect()
    }

    #[test]
    fn install_loads_only_with_now_and_reloads_only_a_changed_loaded_job() {
        let bootstrap = vec![
            "launchctl",
            "bootstrap",
            "system",
            "/Library/LaunchDaemons/dev.daemonic.web.plist",
        ];
        let bootout = vec!["launchctl", "bootout", "system/dev.daemonic.web"];
        let enable = vec!["launchctl", "enable", "system/dev.daemonic.web"];
        assert!(plan(Change::Created, false, false, false).is_empty());
        assert_eq!(
            plan(Change::Created, false, false, true),
            std::slice::from_ref(&bootstrap)
        );
        assert_eq!(
            plan(Change::Unchanged, false, true, true),
            [enable.clone(), bootstrap.clone()]
        );
        // Idempotent: the same definition, already loaded: nothing to do.
        assert!(plan(Change::Unchanged, true, false, true).is_empty());
        assert_eq!(
            plan(Change::Updated, true, false, true),
            [bootout, bootstrap]
        );
        // Without --now a changed definition waits for the next load.
        assert!(plan(Change::Updated, true, false, false).is_empty());
        assert_eq!(plan(Change::Unchanged, true, true, false), [enable]);
    }

    #[test]
    fn uninstall_boots_out_only_a_loaded_job() {
        assert!(plan_uninstall(false, "gui/501", "dev.daemonic.web").is_empty());
        assert_eq!(
            plan_uninstall(true, "gui/501", "dev.daemonic.web")[0].argv(),
            ["launchctl", "bootout", "gui/501/dev.daemonic.web"]
        );
    }

    #[test]
    fn the_file_is_written_once_and_removed_once() {
        let dir = std::env::temp_dir().join(format!("daemonic-launchd-{}", std::process::id()));
        let path = dir.join("LaunchDaemons/dev.daemonic.web.plist");
        assert_eq!(write_file(&path, "one").unwrap(), Change::Created);
        assert_eq!(write_file(&path, "one").unwrap(), Change::Unchanged);
        assert_eq!(write_file(&path, "two").unwrap(), Change::Updated);
        assert_eq!(std::fs::read_to_string(&path).unwrap(), "two");
        use std::os::unix::fs::PermissionsExt;
        let mode = std::fs::metadata(&path).unwrap().permissions().mode();
        assert_eq!(mode & 0o022, 0, "group/others must not write: {mode:o}");
        assert_eq!(remove_file(&path).unwrap(), Change::Removed);
        assert_eq!(remove_file(&path).unwrap(), Change::Absent);
        std::fs::remove_dir_all(&dir).unwrap();
    }
}
