//! `process::into_cgroup`: a child born in its cgroup v2 by `clone3(CLONE_INTO_CGROUP)`,
//! as a child of the spawner that leads its own process group, its pipes and exit status
//! as for any spawned child; a failed exec leaves no zombie. Needs root and a cgroup2
//! mount (skipped with the reason elsewhere).
//!
//! Its own binary: it checks that this process has no unreaped child left, which other
//! tests running beside it would spoil.

use daemonic_test_support as support;

use std::io::Read;
use std::path::PathBuf;
use std::process::{Command, Stdio};

use daemonic::process::{self, Exit};
use nix::sys::wait::{WaitPidFlag, waitpid};
use support::*;

/// A fresh group below the cgroup2 mount, removed when dropped; `None` (with the reason
/// printed) where the test cannot run.
struct Group(PathBuf);

impl Group {
    fn new(test: &str) -> Option<Group> {
        if !root(test) {
            return None;
        }
        let Some(mount) = cgroup2_mount() else {
            eprintln!("skipped {test}: no cgroup2 file system is mounted");
            return None;
        };
        let dir = mount.join(format!("daemonic-test-{}", std::process::id()));
        std::fs::create_dir(&dir).unwrap();
        Some(Group(dir))
    }

    fn open(&self) -> std::os::fd::OwnedFd {
        std::fs::File::open(&self.0).unwrap().into()
    }
}

impl Drop for Group {
    fn drop(&mut self) {
        let _ = std::fs::remove_dir(&self.0);
    }
}

/// Whether this process has no child left, running or unreaped.
fn no_child_left() -> bool {
    waitpid(None, Some(WaitPidFlag::WNOHANG)) == Err(nix::errno::Errno::ECHILD)
}

#[test]
fn a_child_is_born_in_its_group_and_a_failed_exec_leaves_no_zombie() {
    let Some(group) = Group::new("a_child_is_born_in_its_group_and_a_failed_exec_leaves_no_zombie")
    else {
        return;
    };
    let mut cmd = Command::new("sh");
    // `read` is a builtin: /proc/self is the shell, the program itself.
    cmd.args([
        "-c",
        "while read -r cg; do case $cg in 0::*) echo \"$cg\";; esac; done < /proc/self/cgroup; \
         read -r stat < /proc/self/stat; echo \"$stat\"; exit 7",
    ])
    .stdout(Stdio::piped());
    let entry = process::into_cgroup(&mut cmd, group.open()).unwrap();
    let spawned = entry.settle(process::spawn(&mut cmd).unwrap()).unwrap();
    let pid = spawned.pidfd.pid();
    assert_ne!(
        pid.as_raw() as u32,
        spawned.child.id(),
        "not cloned into the group: the first child entered by writing cgroup.procs"
    );
    let mut child = spawned.child;
    let mut out = String::new();
    child
        .stdout
        .take()
        .unwrap()
        .read_to_string(&mut out)
        .unwrap();
    let mut lines = out.lines();
    let name = group.0.file_name().unwrap().to_str().unwrap();
    assert_eq!(lines.next(), Some(format!("0::/{name}").as_str()), "{out}");
    let stat: Vec<&str> = lines
        .next()
        .unwrap()
        .rsplit(") ")
        .next()
        .unwrap()
        .split(' ')
        .collect();
    // After the name: state, ppid, pgrp.
    assert_eq!(stat[1], std::process::id().to_string(), "parent: {out}");
    assert_eq!(stat[2], pid.to_string(), "process group: {out}");
    spawned.pidfd.wait_exit(SOON).unwrap();
    assert_eq!(spawned.pidfd.reap().unwrap(), Some(Exit::Code(7)));
    assert!(no_child_left(), "the first child was left unreaped");

    let mut cmd = Command::new("/nonexistent/program");
    let entry = process::into_cgroup(&mut cmd, group.open()).unwrap();
    let failed = process::spawn(&mut cmd);
    assert!(failed.is_err(), "{failed:?}");
    drop(entry);
    assert!(no_child_left(), "a failed exec left a zombie");
}
