//! A state directory per test and the `daemonic` binary pointed at it; shared by the CLI's
//! test files.
#![allow(dead_code)]

pub mod containment;
pub mod daemons;
pub mod renames;
pub mod units;

use std::path::{Path, PathBuf};
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

    /// The supervisor's pid, from its pid file.
    pub fn supervisor_pid(&self, name: &str) -> Pid {
        let text = std::fs::read_to_string(self.pid_file(name)).unwrap();
        Pid::from_raw(text.trim().parse().unwrap())
    }

    /// What `daemonic status NAME` prints.
    pub fn status_line(&self, name: &str) -> String {
        String::from_utf8(self.daemonic(&["status", name]).stdout).unwrap()
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

/// Writes `text` as `daemonic.toml` in the test's directory; returns its path.
pub fn config(env: &Env, text: &str) -> PathBuf {
    let path = env.dir.join("daemonic.toml");
    std::fs::write(&path, text).unwrap();
    path
}

/// `daemonic up -f FILE EXTRA…`.
pub fn up(env: &Env, file: &Path, extra: &[&str]) -> Output {
    let mut args = vec!["up", "-f", file.to_str().unwrap()];
    args.extend(extra);
    env.daemonic(&args)
}

/// `daemonic start --name NAME --ready notify -- COMMAND…`.
pub fn start_notify(env: &Env, name: &str, command: &[&str]) -> Output {
    let mut args = vec!["start", "--name", name, "--ready", "notify", "--"];
    args.extend(command);
    env.daemonic(&args)
}

/// [`start_notify`] of `notify-ready 100 warm`: a service that is ready 100 ms after its
/// start; panics unless the start succeeds.
pub fn start_notify_ready(env: &Env, name: &str) {
    let out = start_notify(env, name, &[&fixture("notify-ready"), "100", "warm"]);
    assert!(out.status.success(), "{}", stderr(&out));
}

/// `daemonic start --name web --socket SOCKET OPTS… -- socket-http ARGS…`: the
/// socket-activated HTTP fixture behind one socket.
pub fn start_web(env: &Env, socket: &str, opts: &[&str], args: &[&str]) -> Output {
    let program = fixture("socket-http");
    let mut all = vec!["start", "--name", "web", "--socket", socket];
    all.extend(opts);
    all.extend(["--", program.as_str()]);
    all.extend(args);
    env.daemonic(&all)
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
