//! `process::reap_orphans` and `process::become_subreaper`: an init reaps adopted orphans
//! and never the exit status of a child it started with `process::spawn`.
//!
//! One test in its own binary on purpose: reaping is process-wide (any unclaimed exited
//! child of the test process is fair game), so nothing else may run children beside it.

use daemonic_test_support as support;

use std::io::Read;
use std::process::{Command, Stdio};

use daemonic::process::{self, Exit, PidFd};
use daemonic::{Pid, Signal};
use support::*;

/// A `sh -c SCRIPT` started with `process::spawn` (claimed).
fn claimed(script: &str) -> process::Spawned {
    process::spawn(Command::new("sh").args(["-c", script])).unwrap()
}

/// A child started with plain std, its handle forgotten (unclaimed, like an orphan).
fn unclaimed(script: &str) -> Pid {
    let child = Command::new("sh").args(["-c", script]).spawn().unwrap();
    let pid = Pid::from_raw(child.id() as i32);
    std::mem::forget(child);
    pid
}

fn zombie(pid: Pid) -> bool {
    stat_field(pid, 0).as_deref() == Some("Z")
}

fn wait_zombie(pid: Pid) {
    wait_for(&format!("pid {pid} to be a zombie"), SOON, || {
        zombie(pid).then_some(())
    });
}

#[test]
fn orphans_are_reaped_and_claimed_children_keep_their_status() {
    // Unclaimed first in the kernel's list: reaped; the claimed one behind it is left.
    let orphan = unclaimed("exit 3");
    let mine = claimed("exit 7");
    wait_zombie(orphan);
    wait_zombie(mine.pidfd.pid());
    assert_eq!(process::reap_orphans().unwrap(), 1);
    assert!(reaped(orphan), "the unclaimed zombie was not reaped");
    assert_eq!(mine.pidfd.reap().unwrap(), Some(Exit::Code(7)));

    // Claimed first: the round stops there (the orphan behind waits), and goes on once
    // the owner has reaped its child.
    let mine = claimed("exit 9");
    wait_zombie(mine.pidfd.pid());
    let orphan = unclaimed("exit 4");
    wait_zombie(orphan);
    assert_eq!(process::reap_orphans().unwrap(), 0);
    assert!(zombie(orphan));
    assert_eq!(mine.pidfd.reap().unwrap(), Some(Exit::Code(9)));
    assert_eq!(process::reap_orphans().unwrap(), 1);
    assert!(reaped(orphan));

    // A handle dropped before its child exited: the child is reaped as an orphan.
    let abandoned = claimed("exec sleep 3600");
    let pid = abandoned.pidfd.pid();
    let kill = KillOnDrop::new(pid);
    drop(abandoned);
    kill.0.as_ref().unwrap().signal(Signal::SIGKILL).unwrap();
    wait_zombie(pid);
    assert_eq!(process::reap_orphans().unwrap(), 1);
    assert!(reaped(pid));

    // As a subreaper this process adopts a grandchild whose parent exits.
    process::become_subreaper().unwrap();
    let mut parent = Command::new("sh")
        .args(["-c", "sleep 3600 >/dev/null & echo $!"])
        .stdout(Stdio::piped())
        .spawn()
        .unwrap();
    let mut text = String::new();
    parent
        .stdout
        .take()
        .unwrap()
        .read_to_string(&mut text)
        .unwrap();
    assert!(parent.wait().unwrap().success());
    let grandchild = Pid::from_raw(text.trim().parse().unwrap());
    let handle = KillOnDrop(PidFd::open(grandchild).ok());
    let me = std::process::id().to_string();
    wait_for("the grandchild to be adopted", SOON, || {
        (stat_field(grandchild, 1).as_deref() == Some(me.as_str())).then_some(())
    });
    handle.0.as_ref().unwrap().signal(Signal::SIGKILL).unwrap();
    wait_zombie(grandchild);
    assert_eq!(process::reap_orphans().unwrap(), 1);
    assert!(reaped(grandchild));
    assert_eq!(process::reap_orphans().unwrap(), 0);
}
