//! Service-manager files for configured services: a systemd unit (`daemonic unit`,
//! `daemonic install`), written as an expert would write it by hand; a launchd plist
//! ([`launchd`]) and a Windows service ([`windows`]; its service and registration code is
//! Windows-only) — see `docs/platforms.md` for those two.
//!
//! A service of `daemonic.toml` is described by the flags of `daemonic start`; a unit
//! says the same thing in systemd's own terms wherever systemd has them, so that systemd
//! itself supervises the program, with nothing between them:
//!
//! | daemonic option | systemd directive |
//! |---|---|
//! | `ready = "notify"` | `Type=notify` (active only after `READY=1`), `NotifyAccess=all`; anything else `Type=exec` |
//! | `timeout` | `TimeoutStartSec=` |
//! | `restart` | `Restart=no \| on-failure \| always` |
//! | `backoff` | `RestartSec=` (systemd 252 has no growing delay: a note in the unit says so) |
//! | `success-exit-codes` | `SuccessExitStatus=` |
//! | `start-limit = "N/WINDOW"` | `StartLimitBurst=N`, `StartLimitIntervalSec=WINDOW` in `[Unit]`; none: systemd's default, 5 starts in 10 s (or in 5 × `backoff`) |
//! | `watchdog` | `WatchdogSec=`, `NotifyAccess=all` |
//! | `stop-signal`, `stop-timeout` | `KillSignal=`, `TimeoutStopSec=`, `KillMode=control-group` |
//! | `reload-signal` | `ExecReload=/bin/kill -s SIG $MAINPID` |
//! | `user`, `group`, `supplementary-groups` | `User=`, `Group=`, `SupplementaryGroups=`; no user: `DynamicUser=yes` (strict hardening) |
//! | `keep-caps` | `AmbientCapabilities=` and `CapabilityBoundingSet=` (empty without) |
//! | `no-new-privs`, `chroot`, `umask` | `NoNewPrivileges=yes`, `RootDirectory=`, `UMask=` |
//! | `env`, `env-file` | `Environment=`, `EnvironmentFile=` (a leading `-` kept) |
//! | `dir` | `WorkingDirectory=` |
//! | `depends-on` | `Requires=` and `After=` on the other services' units |
//! | `socket` | a `.socket` unit per socket, with `FileDescriptorName=`; the service `Sockets=` them (see [`systemd::sockets`]) |
//! | `fd-store-max` (when given) | `FileDescriptorStoreMax=` |
//! | `unit-*` keys | the sandboxing: see [`args`] and [`systemd`] |
//!
//! **What systemd lacks makes the unit run `daemonic run`**: a readiness probe (`ready =
//! "tcp:…" | "http://…" | "exec:…"`), health checks (`liveness`, `readiness`), captured
//! log files with rotation (`log-file`, `log-stderr-file`) and the `on-give-up` hook.
//! Then `ExecStart=daemonic run <the service's flags> -- CMD…` (the flags written out,
//! so the unit does not read the config file at run time); daemonic is the main process
//! (`Type=notify`: it reports READY=1 once its probe passed), it restarts the program by
//! the service's own policy, backoff and start limit, stops it with its stop signal
//! (`KillMode=mixed`: systemd signals daemonic only, and SIGKILLs the whole cgroup if
//! daemonic overstays), forwards `systemctl reload` (SIGHUP) as the reload signal, and
//! pings systemd's watchdog from its loop. systemd restarts daemonic itself only if it
//! dies abnormally (`Restart=on-abnormal`); daemonic exiting 128+N after the stop
//! signal N ended the program is a clean stop (`SuccessExitStatus=`). Each unit names why it needs daemonic in a
//! comment at its top.
//!
//! The config file's supervisor (`daemonic run -f FILE`, what `up` runs) has a unit of
//! its own too: [`systemd::file_unit`].

pub mod launchd;
pub mod systemd;
pub mod windows;

use std::path::{Path, PathBuf};

/// Which systemd manager a unit is for.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Scope {
    /// The system manager: units in `/etc/systemd/system`, wanted by `multi-user.target`.
    System,
    /// A user's manager (`systemctl --user`): units in `~/.config/systemd/user`, wanted by
    /// `default.target`, running as that user.
    User,
}

impl Scope {
    /// System as root, user otherwise.
    pub fn default_for_me() -> Scope {
        if nix::unistd::geteuid().is_root() {
            Scope::System
        } else {
            Scope::User
        }
    }

    /// Where units of this scope are installed.
    pub fn unit_dir(self) -> anyhow::Result<PathBuf> {
        match self {
            Scope::System => Ok(PathBuf::from("/etc/systemd/system")),
            Scope::User => {
                let config = match std::env::var_os("XDG_CONFIG_HOME").filter(|v| !v.is_empty()) {
                    Some(dir) => PathBuf::from(dir),
                    None => std::env::home_dir()
                        .filter(|h| h.is_absolute())
                        .ok_or_else(|| {
                            anyhow::anyhow!("no home directory for user units (set HOME)")
                        })?
                        .join(".config"),
                };
                Ok(config.join("systemd/user"))
            }
        }
    }
}

/// What a unit is generated for, besides the service itself.
#[derive(Debug, Clone)]
pub struct Host<'a> {
    /// The `daemonic` binary a unit runs when it needs `daemonic run`.
    pub daemonic: &'a Path,
    /// The config file the service comes from (named in the unit's header).
    pub config: &'a Path,
    pub scope: Scope,
}

/// The first line of every unit daemonic writes; `install` replaces only files that
/// start with it.
pub const MARKER: &str = "# Generated by daemonic";

/// Whether a unit file's text is one daemonic wrote (`install` and `uninstall` replace
/// or remove only those).
pub fn written_by_daemonic(text: &str) -> bool {
    text.starts_with(MARKER)
}
