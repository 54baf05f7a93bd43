//! A state directory per test and the `daemonic` binary pointed at it; shared by the CLI's
//! test files.
#![allow(dead_code)]

pub mod containment;
pub mod daemons;
pub mod units;

use std::path::PathBuf;
use std::process::{Command, Output};

use daemonic::Pid;

use crate::support::*;

const BIN: &str = env!("CARGO_BIN_EXE_daemonic");

/// A state directory of its own per test; stops (SIGKILL) every supervisor in it on drop.
pub struct Env {
    pub dir: TempDir,
}

impl Env {
    pub fn new(tag: &str) -> Env {
        Env {
            dir: TempDir::new(tag),
        }
    }

    pub fn cmd(&self) -> Command {
        let mut c = Command::new(BIN);
        c.env("DAEMONIC_STATE_DIR", self.dir.join("state"));
        c
    }

    pub fn daemonic(&self, args: &[&str]) -> Output {
        run(self.cmd().args(args))
    }

    pub fn pid_file(&self, name: &str) -> PathBuf {
        self.dir.join("state").join(format!("{name}.pid"))
    }

    /// The child's pid, as `daemonic status` prints it.
    pub fn child_pid(&self, name: &str) -> Pid {
        let out = self.daemonic(&["status", name]);
        let text = String::from_utf8_lossy(&out.stdout);
        let pid = text
            .split(", pid ")
            .nth(1)
            .and_then(|s| s.split(' ').next())
            .unwrap_or_else(|| panic!("{text}"));
        Pid::from_raw(pid.parse().unwrap())
    }
}

impl Drop for Env {
    fn drop(&mut self) {
        let state = self.dir.join("state");
        let entries = [state.clone(), state.join("up")]
            .into_iter()
            .filter_map(|d| std::fs::read_dir(d).ok())
            .flatten()
            .flatten();
        for e in entries {
            let path = e.path();
            if path.extension().is_some_and(|x| x == "pid")
                && let Ok(daemonic::pidfile::Holder::Locked(Some(pid))) =
                    daemonic::PidFile::holder(&path)
            {
                // The child dies with its supervisor (PR_SET_PDEATHSIG).
                drop(KillOnDrop::new(pid));
            }
        }
    }
}

pub fn fixture(name: &str) -> String {
    example(name).display().to_string()
}

/// Standard output then standard error of `out`, as one text (for messages and `contains`).
pub fn text(out: &Output) -> String {
    String::from_utf8_lossy(&out.stdout).into_owned() + &String::from_utf8_lossy(&out.stderr)
}

/// Debian's python3-systemd (libsystemd's `sd_*` calls) is for the system's Python, not a
/// pyenv's first in PATH: that interpreter, or `None` after printing why `test` is
/// skipped (`.ci/run` installs the package).
pub fn python3_systemd(test: &str) -> Option<&'static str> {
    let python = "/usr/bin/python3";
    let found = Command::new(python)
        .args(["-c", "import systemd.daemon"])
        .output()
        .is_ok_and(|o| o.status.success());
    if !found {
        eprintln!(
            "skipped {test}: python3-systemd is not installed ({python} -c 'import systemd.daemon')"
        );
    }
    found.then_some(python)
}
