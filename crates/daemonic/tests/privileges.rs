//! Privileges in the library: a `Daemon` that drops to a user (fork and re-exec modes), a
//! child spawned with `spawn_as`, and the pid-file rules as root, on real processes.
//!
//! Tests that switch users need root and skip with a printed reason otherwise.

use daemonic_test_support as support;

use std::io::Read;
use std::os::unix::fs::{MetadataExt, PermissionsExt};
use std::process::{Command, Stdio};

use daemonic::privileges::Privileges;
use daemonic::{ErrorKind, Pid, PidFile, Signal};
use support::*;

const NOBODY: u32 = 65534;

fn chmod(path: &std::path::Path, mode: u32) {
    std::fs::set_permissions(path, std::fs::Permissions::from_mode(mode)).unwrap();
}

/// The daemon switches after detaching; the pid file stays root's, and at exit the
/// unprivileged daemon empties what it may not remove.
fn daemon_drops_to_nobody(reexec: bool) {
    let dir = TempDir::new("priv-daemon");
    chmod(dir.path(), 0o755);
    // The report is written by the daemon, after the switch.
    let out = dir.join("out");
    std::fs::create_dir(&out).unwrap();
    nix::unistd::chown(&out, Some(NOBODY.into()), Some(NOBODY.into())).unwrap();
    let report = out.join("report");
    // Re-exec mode runs the program again as nobody: it must be executable by nobody.
    // Copied by another process: a copy open for writing in this one would be inherited
    // by children that other tests fork meanwhile, and exec would fail with ETXTBSY.
    let prog = dir.join("daemon-probe");
    let copied = run(Command::new("install")
        .args(["-m", "0755"])
        .arg(example("daemon-probe"))
        .arg(&prog));
    assert!(copied.status.success(), "install: {}", stderr(&copied));
    let pid_file = dir.join("p.pid");
    let mut cmd = Command::new(&prog);
    cmd.arg("--report")
        .arg(&report)
        .arg("--pid-file")
        .arg(&pid_file);
    cmd.args(["--user", "nobody", "--groups", "4000,4001"]);
    if reexec {
        cmd.arg("--reexec");
    }
    let launched = run(&mut cmd);
    assert!(launched.status.success(), "launcher: {}", stderr(&launched));
    let pid = Pid::from_raw(await_key(&report, "pid").parse().unwrap());
    let daemon = KillOnDrop::new(pid);
    await_key(&report, "signals");

    assert_eq!(proc_status(pid, "Uid:"), "65534 65534 65534 65534");
    assert_eq!(proc_status(pid, "Groups:"), "4000 4001");
    let r = support::report(&report);
    assert_eq!(get(&r, "setuid0").as_deref(), Some("EPERM"));
    assert_eq!(get(&r, "cap_eff").as_deref(), Some("0000000000000000"));
    let meta = std::fs::metadata(&pid_file).unwrap();
    assert_eq!((meta.uid(), meta.mode() & 0o777), (0, 0o644 & !umask()));
    assert_eq!(
        std::fs::read_to_string(&pid_file).unwrap(),
        format!("{pid}\n")
    );

    daemon.0.as_ref().unwrap().signal(Signal::SIGTERM).unwrap();
    await_key(&report, "finished");
    assert!(daemon.exited_within(SOON));
    assert_eq!(
        std::fs::read_to_string(&pid_file).unwrap(),
        "",
        "emptied, since nobody may not remove it from root's directory"
    );
    assert_eq!(
        PidFile::holder(&pid_file).unwrap(),
        daemonic::pidfile::Holder::None
    );
}

#[test]
fn a_forked_daemon_runs_as_the_user_with_exactly_its_groups() {
    if root("a_forked_daemon_runs_as_the_user_with_exactly_its_groups") {
        daemon_drops_to_nobody(false);
    }
}

#[test]
fn a_reexecuted_daemon_starts_already_switched() {
    if root("a_reexecuted_daemon_starts_already_switched") {
        daemon_drops_to_nobody(true);
    }
}

#[test]
fn spawn_as_gives_the_child_the_users_ids_and_environment() {
    if !root("spawn_as_gives_the_child_the_users_ids_and_environment") {
        return;
    }
    let p = Privileges::new().user("nobody").prepare().unwrap();
    let mut cmd = Command::new("/bin/sh");
    cmd.args([
        "-c",
        "grep -E '^(Uid|Groups):' /proc/self/status; echo USER=$USER",
    ])
    .stdout(Stdio::piped());
    let mut child = daemonic::process::spawn_as(&mut cmd, &p).unwrap();
    let mut text = String::new();
    child
        .child
        .stdout
        .take()
        .unwrap()
        .read_to_string(&mut text)
        .unwrap();
    assert!(child.pidfd.wait_exit(SOON).unwrap());
    assert_eq!(
        child.pidfd.reap().unwrap(),
        Some(daemonic::process::Exit::Code(0))
    );
    let user = nix::unistd::User::from_name("nobody").unwrap().unwrap();
    assert!(
        text.contains(&format!("Uid:\t{0}\t{0}\t{0}\t{0}", user.uid)),
        "{text}"
    );
    assert!(text.contains("USER=nobody"), "{text}");
}

#[test]
fn a_failed_switch_names_its_step_and_the_child_never_runs() {
    if !root("a_failed_switch_names_its_step_and_the_child_never_runs") {
        return;
    }
    let dir = TempDir::new("priv-fail");
    let missing = dir.join("no-such-root");
    let p = Privileges::new()
        .user("nobody")
        .chroot(&missing)
        .prepare()
        .unwrap();
    let marker = dir.join("ran");
    let mut cmd = Command::new("/bin/touch");
    cmd.arg(&marker);
    let e = daemonic::process::spawn_as(&mut cmd, &p).unwrap_err();
    let text = e.to_string();
    assert!(
        text.starts_with("spawn /bin/touch: drop privileges to user nobody")
            && text.contains(&format!("chroot {:?}", missing.display().to_string()))
            && text.contains(": No such file or directory"),
        "{text}"
    );
    assert_eq!(e.os_error(), Some(libc::ENOENT));
    assert!(!marker.exists());
}

#[test]
fn applying_in_a_threaded_process_is_refused() {
    // The test harness runs this test on a thread of its own: more than one thread.
    let e = Privileges::new()
        .umask(0o022)
        .prepare()
        .unwrap()
        .apply()
        .unwrap_err();
    assert_eq!(e.kind(), ErrorKind::Threaded, "{e}");
}

#[test]
fn a_symlink_at_the_pid_file_path_is_never_followed() {
    let dir = TempDir::new("priv-pid-symlink");
    let target = dir.join("precious");
    std::fs::write(&target, "keep me\n").unwrap();
    let path = dir.join("p.pid");
    std::os::unix::fs::symlink(&target, &path).unwrap();
    let e = PidFile::lock(&path).unwrap_err();
    assert_eq!(e.os_error(), Some(libc::ELOOP), "{e}");
    assert_eq!(std::fs::read_to_string(&target).unwrap(), "keep me\n");
    assert!(PidFile::holder(&path).is_err(), "not read through either");
}

#[test]
fn as_root_a_pid_file_others_could_replace_is_refused() {
    if !root("as_root_a_pid_file_others_could_replace_is_refused") {
        return;
    }
    let dir = TempDir::new("priv-pid-dir");
    let path = dir.join("p.pid");

    chmod(dir.path(), 0o777);
    let e = PidFile::lock(&path).unwrap_err();
    assert_eq!(e.kind(), ErrorKind::InvalidInput);
    assert!(
        e.to_string()
            .contains("is writable by group or others (mode 0777) and not sticky"),
        "{e}"
    );
    assert!(!path.exists());

    // Sticky, like /tmp: others cannot replace our file, but may plant theirs first.
    chmod(dir.path(), 0o1777);
    PidFile::lock(&path).unwrap().release().unwrap();
    std::fs::write(&path, "1\n").unwrap();
    nix::unistd::chown(&path, Some(NOBODY.into()), None).unwrap();
    let e = PidFile::lock(&path).unwrap_err();
    assert!(
        e.to_string().contains("the file belongs to uid 65534"),
        "{e}"
    );
    std::fs::remove_file(&path).unwrap();

    chmod(dir.path(), 0o755);
    nix::unistd::chown(dir.path(), Some(NOBODY.into()), None).unwrap();
    let e = PidFile::lock(&path).unwrap_err();
    assert!(e.to_string().contains("is owned by uid 65534"), "{e}");
}

#[test]
fn a_symlink_at_a_log_file_path_is_never_followed() {
    let dir = TempDir::new("priv-log-symlink");
    let target = dir.join("precious");
    std::fs::write(&target, "keep me\n").unwrap();
    let path = dir.join("app.log");
    std::os::unix::fs::symlink(&target, &path).unwrap();
    let e = daemonic::logging::RotatingWriter::builder(&path)
        .open()
        .unwrap_err();
    assert_eq!(e.os_error(), Some(libc::ELOOP), "{e}");
    assert_eq!(std::fs::read_to_string(&target).unwrap(), "keep me\n");
}
