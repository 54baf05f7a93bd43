//! The state directory, its pid files and control sockets against another local user
//! (uid 65534 plays them): a planted symlink at the directory, a foreign
//! `XDG_RUNTIME_DIR` kept by `su`/`sudo -E`, a server socket run by someone else, and a
//! pid file whose lock holder names an unrelated process. No command may show their
//! text as a service's status or signal the process they name.
//!
//! The tests that need a second user run as root and skip with a printed reason
//! otherwise (CI runs as root).

use daemonic_test_support as support;

use std::fs::File;
use std::os::unix::fs::{PermissionsExt, lchown, symlink};
use std::os::unix::process::CommandExt;
use std::path::Path;
use std::process::{Child, Command, Output};

use daemonic::Pid;
use daemonic::pidfile::{Holder, PidFile};
use nix::fcntl::{Flock, FlockArg};
use support::*;

const BIN: &str = env!("CARGO_BIN_EXE_daemonic");
const NOBODY: u32 = 65534;

/// An unrelated process of the attacker's choosing: it must survive every command.
struct Victim(Child);

impl Victim {
    fn start() -> Victim {
        Victim(Command::new("sleep").arg("60").spawn().unwrap())
    }

    fn pid(&self) -> Pid {
        Pid::from_raw(self.0.id() as i32)
    }

    fn alive(&mut self) -> bool {
        matches!(self.0.try_wait(), Ok(None))
    }
}

impl Drop for Victim {
    fn drop(&mut self) {
        let _ = self.0.kill();
        let _ = self.0.wait();
    }
}

fn mkdir(path: &Path, mode: u32, uid: u32) {
    std::fs::create_dir(path).unwrap();
    std::fs::set_permissions(path, std::fs::Permissions::from_mode(mode)).unwrap();
    lchown(path, Some(uid), Some(uid)).unwrap();
}

/// A "service" whose pid file names `pid` and is locked — held by this test process,
/// standing for whoever holds it — with a status file of forged text; all owned by `uid`.
fn forge(dir: &Path, name: &str, pid: Pid, uid: u32) -> Flock<File> {
    let pid_file = dir.join(format!("{name}.pid"));
    std::fs::write(&pid_file, format!("{pid}\n")).unwrap();
    let status = dir.join(format!("{name}.status"));
    std::fs::write(
        &status,
        format!("state=ready\npid={pid}\nstatus=forged by uid {uid}\n"),
    )
    .unwrap();
    for f in [&pid_file, &status] {
        lchown(f, Some(uid), Some(uid)).unwrap();
    }
    Flock::lock(
        File::open(&pid_file).unwrap(),
        FlockArg::LockExclusiveNonblock,
    )
    .unwrap()
}

fn daemonic(state: &Path, args: &[&str]) -> Output {
    run(Command::new(BIN)
        .args(args)
        .env("DAEMONIC_STATE_DIR", state)
        .current_dir(state.parent().unwrap()))
}

#[test]
fn a_state_dir_symlink_planted_by_another_user_is_refused_by_every_command() {
    if !root("a_state_dir_symlink_planted_by_another_user_is_refused_by_every_command") {
        return;
    }
    let tmp = TempDir::new("statesec-symlink");
    let attacker = tmp.join("attacker");
    mkdir(&attacker, 0o700, NOBODY);
    let mut victim = Victim::start();
    let _held = forge(&attacker, "web", victim.pid(), NOBODY);
    let state = tmp.join("state");
    symlink(&attacker, &state).unwrap();
    lchown(&state, Some(NOBODY), Some(NOBODY)).unwrap();
    std::fs::write(
        tmp.join("daemonic.toml"),
        "[services.web]\ncommand = \"/bin/sleep\"\n",
    )
    .unwrap();
    let commands: [&[&str]; 9] = [
        &["status", "web"],
        &["status"],
        &["list"],
        &["stop", "web"],
        &["signal", "web", "TERM"],
        &["restart", "web"],
        &["reload", "web"],
        &["logs", "web"],
        &["down"],
    ];
    for args in commands {
        let out = daemonic(&state, args);
        assert!(
            !out.status.success() && stderr(&out).contains("is a symlink; refused"),
            "daemonic {args:?} must refuse the planted symlink: {:?}\nstdout: {}\nstderr: {}",
            out.status,
            stdout(&out),
            stderr(&out)
        );
        assert!(!stdout(&out).contains("forged"), "{}", stdout(&out));
        assert!(victim.alive(), "daemonic {args:?} signalled the victim");
    }
    assert!(
        !attacker.join("up").exists(),
        "nothing is created through the symlink"
    );
}

#[test]
fn a_foreign_xdg_runtime_dir_is_ignored_as_root() {
    if !root("a_foreign_xdg_runtime_dir_is_ignored_as_root") {
        return;
    }
    let tmp = TempDir::new("statesec-xdg");
    let xdg = tmp.join("xdg");
    mkdir(&xdg, 0o700, NOBODY);
    mkdir(&xdg.join("daemonic"), 0o700, NOBODY);
    // A name no real service of root's in /run/daemonic has.
    let name = format!("statesec-xdg-{}", std::process::id());
    let mut victim = Victim::start();
    let _held = forge(&xdg.join("daemonic"), &name, victim.pid(), NOBODY);
    let as_root_after_su = |args: &[&str]| {
        run(Command::new(BIN)
            .args(args)
            .env_remove("DAEMONIC_STATE_DIR")
            .env("XDG_RUNTIME_DIR", &xdg))
    };
    let out = as_root_after_su(&["status", &name]);
    assert_eq!(
        out.status.code(),
        Some(3),
        "{}{}",
        stdout(&out),
        stderr(&out)
    );
    assert_eq!(
        stdout(&out),
        format!("{name}: not running (never started in /run/daemonic)\n")
    );
    let note = format!(
        "daemonic: ignoring XDG_RUNTIME_DIR={}: it belongs to uid {NOBODY}, not to root; \
         using /run/daemonic\n",
        xdg.display()
    );
    assert_eq!(stderr(&out), note);
    // It never ran in root's directory: an error, and nothing signalled.
    let out = as_root_after_su(&["stop", &name]);
    assert_eq!(out.status.code(), Some(1), "{}", stderr(&out));
    assert!(
        stderr(&out).ends_with(&format!(
            "daemonic: {name}: no such service (never started in /run/daemonic)\n"
        )),
        "{}",
        stderr(&out)
    );
    assert!(
        victim.alive(),
        "stop signalled the process nobody's pid file names"
    );
}

#[test]
fn a_server_socket_run_by_another_user_is_refused() {
    if !root("a_server_socket_run_by_another_user_is_refused") {
        return;
    }
    let tmp = TempDir::new("statesec-socket");
    std::fs::set_permissions(tmp.path(), std::fs::Permissions::from_mode(0o755)).unwrap();
    // A real supervisor, run by nobody in a directory of nobody's.
    let theirs = tmp.join("nobody");
    mkdir(&theirs, 0o700, NOBODY);
    let their_state = theirs.join("state");
    let started = run(Command::new(BIN)
        .args(["start", "--name", "web", "--", "/bin/sleep", "60"])
        .env("DAEMONIC_STATE_DIR", &their_state)
        .current_dir("/")
        .uid(NOBODY)
        .gid(NOBODY));
    let their_supervisor = match PidFile::holder(their_state.join("web.pid")) {
        Ok(Holder::Locked(Some(pid))) => KillOnDrop::new(pid),
        other => panic!("{other:?}: {}", stderr(&started)),
    };
    // Its socket ends up where root's supervisor of `web` would listen (how it got there
    // does not matter: the client must not take its word).
    let state = tmp.join("state");
    mkdir(&state, 0o700, 0);
    let _held = forge(&state, "web", their_supervisor.pid(), 0);
    std::fs::rename(their_state.join("web.sock"), state.join("web.sock")).unwrap();
    let refused = format!(
        "{}: refused: the server there runs as uid {NOBODY}",
        state.join("web.sock").display()
    );
    let commands: [&[&str]; 4] = [
        &["status", "web"],
        &["restart", "web"],
        &["signal", "web", "TERM"],
        &["reload", "web"],
    ];
    for args in commands {
        let out = daemonic(&state, args);
        assert!(
            !out.status.success() && stderr(&out).contains(&refused),
            "daemonic {args:?} must refuse nobody's server: {:?}\nstdout: {}\nstderr: {}",
            out.status,
            stdout(&out),
            stderr(&out)
        );
    }
    let out = daemonic(&state, &["list"]);
    assert_eq!(stdout(&out).lines().count(), 1, "{}", stdout(&out));
    assert!(stderr(&out).contains(&refused), "{}", stderr(&out));
}

#[test]
fn stop_does_not_signal_a_pid_that_does_not_hold_the_lock() {
    let tmp = TempDir::new("statesec-stop");
    let state = tmp.join("state");
    std::fs::create_dir(&state).unwrap();
    std::fs::set_permissions(&state, std::fs::Permissions::from_mode(0o700)).unwrap();
    let mut victim = Victim::start();
    let me = nix::unistd::geteuid().as_raw();
    // Someone else (this test) holds the lock and wrote the victim's pid.
    let held = forge(&state, "web", victim.pid(), me);
    let out = daemonic(&state, &["stop", "web"]);
    assert!(
        victim.alive(),
        "stop signalled a process that holds no lock"
    );
    assert_eq!(out.status.code(), Some(1), "{}", stderr(&out));
    assert!(
        stderr(&out).contains(&format!(
            "is locked, but not by pid {} that it names",
            victim.pid()
        )),
        "{}",
        stderr(&out)
    );
    // Not held at all: a stale file naming a live process.
    drop(held);
    let out = daemonic(&state, &["stop", "web"]);
    assert!(out.status.success(), "{}", stderr(&out));
    assert!(victim.alive(), "stop signalled the pid of a stale file");
}

#[test]
fn as_root_stop_refuses_a_pid_file_of_another_user() {
    if !root("as_root_stop_refuses_a_pid_file_of_another_user") {
        return;
    }
    let tmp = TempDir::new("statesec-owner");
    let state = tmp.join("state");
    mkdir(&state, 0o700, 0);
    let mut victim = Victim::start();
    let _held = forge(&state, "web", victim.pid(), NOBODY);
    let out = daemonic(&state, &["stop", "web"]);
    assert!(victim.alive(), "stop signalled the pid nobody's file names");
    assert_eq!(out.status.code(), Some(1), "{}", stderr(&out));
    assert!(
        stderr(&out).contains("refused as root: the pid file belongs to uid 65534"),
        "{}",
        stderr(&out)
    );
}
