//! Where daemonic keeps a service's pid file, status file and control socket.
//!
//! `--state-dir` / `DAEMONIC_STATE_DIR` if given; else `$XDG_RUNTIME_DIR/daemonic`; else
//! `/run/daemonic` for root; else `/tmp/daemonic-<uid>`. Created with mode 0700.

use std::os::unix::fs::DirBuilderExt;
use std::path::{Path, PathBuf};

use anyhow::{Context, Result, bail};

pub struct StateDir {
    dir: PathBuf,
}

impl StateDir {
    pub fn new(explicit: Option<PathBuf>) -> StateDir {
        let dir = explicit.unwrap_or_else(|| {
            if let Some(x) = std::env::var_os("XDG_RUNTIME_DIR").filter(|v| !v.is_empty()) {
                PathBuf::from(x).join("daemonic")
            } else if nix::unistd::geteuid().is_root() {
                PathBuf::from("/run/daemonic")
            } else {
                PathBuf::from(format!("/tmp/daemonic-{}", nix::unistd::geteuid()))
            }
        });
        StateDir { dir }
    }

    /// The directory, created (0700) if missing.
    pub fn ensure(&self) -> Result<&Path> {
        std::fs::DirBuilder::new()
            .recursive(true)
            .mode(0o700)
            .create(&self.dir)
            .with_context(|| format!("create state directory {}", self.dir.display()))?;
        Ok(&self.dir)
    }

    pub fn pid_file(&self, name: &str) -> PathBuf {
        self.dir.join(format!("{name}.pid"))
    }

    pub fn status_file(&self, name: &str) -> PathBuf {
        self.dir.join(format!("{name}.status"))
    }

    /// The supervisor's control socket, `<state-dir>/<name>.sock` (see [`crate::control`]).
    /// A unix socket path holds at most 107 bytes; binding or connecting to a longer one
    /// fails with a message saying so.
    pub fn control_socket(&self, name: &str) -> PathBuf {
        self.dir.join(format!("{name}.sock"))
    }

    /// The directory, whether or not it exists.
    pub fn path(&self) -> &Path {
        &self.dir
    }
}

/// A service name: letters, digits, `_`, `-`, `.`; not starting with `.`; 1–64 bytes.
pub fn check_name(name: &str) -> Result<()> {
    let ok_char = |c: char| c.is_ascii_alphanumeric() || matches!(c, '_' | '-' | '.');
    if name.is_empty() || name.len() > 64 || name.starts_with('.') || !name.chars().all(ok_char) {
        bail!(
            "invalid service name {name:?}: use 1-64 letters, digits, '_', '-' or '.', not starting with '.'"
        );
    }
    Ok(())
}
