//! Log files written and read as root for a service that runs as another user (65534):
//! nothing the service can write makes root overwrite, create, expose or lose a file.
//!
//! Each test plays an attack of issue 14 (see `docs/security.md`, "Log files"): a planted
//! gzip temporary file, a planted "rotated" symlink, a directory of the log path swapped
//! for a symlink, the service deleting its own log, and `daemonic logs` reading a symlink.
//! They need root (to own files the service must not reach) and skip otherwise.

mod env;
use daemonic_test_support as support;

use std::os::unix::fs::{MetadataExt, PermissionsExt, symlink};
use std::path::Path;
use std::process::Command;
use std::time::{Duration, SystemTime};

use daemonic::logging::{Compression, Flush, RotatingWriter};
use env::Env;
use support::*;

const NOBODY: u32 = 65534;
const SECRET: &str = "root's secret, not for the service\n";

/// A directory the service's user owns (it can plant, rename and delete names in it).
fn service_dir(path: &Path, mode: u32) {
    std::fs::create_dir_all(path).unwrap();
    std::os::unix::fs::chown(path, Some(NOBODY), Some(NOBODY)).unwrap();
    std::fs::set_permissions(path, std::fs::Permissions::from_mode(mode)).unwrap();
}

/// A root-only file the service would like to read or overwrite.
fn victim(env: &Env) -> std::path::PathBuf {
    let private = env.dir.join("private");
    std::fs::create_dir(&private).unwrap();
    std::fs::set_permissions(&private, std::fs::Permissions::from_mode(0o700)).unwrap();
    let v = private.join("victim");
    std::fs::write(&v, SECRET).unwrap();
    std::fs::set_permissions(&v, std::fs::Permissions::from_mode(0o640)).unwrap();
    v
}

fn gzip_writer(path: &Path) -> daemonic::Result<RotatingWriter> {
    RotatingWriter::builder(path)
        .flush(Flush::EachWrite)
        .compress(Compression::Gzip)
        .open()
}

/// The compact UTC stamp (`YYYYmmdd-HHMMSS`) of `t`, as rotated names carry it.
fn stamp(t: SystemTime) -> String {
    let secs = t.duration_since(SystemTime::UNIX_EPOCH).unwrap().as_secs();
    let out = run(Command::new("date")
        .args(["-u", "+%Y%m%d-%H%M%S", "-d"])
        .arg(format!("@{secs}")));
    String::from_utf8(out.stdout).unwrap().trim().to_owned()
}

#[test]
fn a_planted_gzip_temp_file_does_not_make_root_overwrite_a_file() {
    if !root("a_planted_gzip_temp_file_does_not_make_root_overwrite_a_file") {
        return;
    }
    let env = Env::new("logsec-tmp");
    let target = victim(&env);
    let logs = env.dir.join("logs");
    service_dir(&logs, 0o755);
    let path = logs.join("x.log");
    let log = match gzip_writer(&path) {
        Ok(log) => log,
        Err(e) => {
            // The fix: a directory the service owns is refused before anything is written.
            assert!(e.to_string().contains("refused as root"), "{e}");
            assert_eq!(std::fs::read_to_string(&target).unwrap(), SECRET);
            return;
        }
    };
    // Let the archiver's start-up pass (which removes `.tmp` names) finish first, as an
    // attacker would: wait for a first compression.
    log.write_line(b"first");
    log.rotate();
    wait_for("the first compression", Duration::from_secs(10), || {
        daemonic::logging::rotated_files(&path)
            .unwrap()
            .iter()
            .any(|p| p.to_string_lossy().ends_with(".gz"))
            .then_some(())
    });
    // The service plants the temporary names of the next rotations, a few seconds ahead.
    let now = SystemTime::now();
    for s in 0..10 {
        let stamp = stamp(now + Duration::from_secs(s));
        for seq in ["", "_001", "_002"] {
            symlink(&target, logs.join(format!("x.log.{stamp}{seq}.gz.tmp"))).unwrap();
        }
    }
    log.write_line(b"second");
    log.rotate();
    log.close().unwrap();
    assert_eq!(
        std::fs::read_to_string(&target).unwrap_or_default(),
        SECRET,
        "root overwrote the file a planted .gz.tmp symlink pointed to"
    );
}

#[test]
fn a_planted_rotated_symlink_is_not_compressed_for_the_service_to_read() {
    if !root("a_planted_rotated_symlink_is_not_compressed_for_the_service_to_read") {
        return;
    }
    let env = Env::new("logsec-rot");
    let target = victim(&env);
    // root:nogroup, setgid, group-writable: what gives the service new files' group.
    let logs = env.dir.join("logs");
    std::fs::create_dir(&logs).unwrap();
    std::os::unix::fs::chown(&logs, Some(0), Some(NOBODY)).unwrap();
    std::fs::set_permissions(&logs, std::fs::Permissions::from_mode(0o2775)).unwrap();
    symlink(&target, logs.join("x.log.20250101-000000")).unwrap();
    let refused = match gzip_writer(&logs.join("x.log")) {
        Ok(log) => log.close().map(|()| false).unwrap(),
        Err(e) => {
            assert!(e.to_string().contains("refused as root"), "{e}");
            true
        }
    };
    let gz = logs.join("x.log.20250101-000000.gz");
    assert!(
        !gz.exists(),
        "root compressed the symlink's target into {} (group {}, mode {:o})",
        gz.display(),
        std::fs::metadata(&gz).map(|m| m.gid()).unwrap_or(0),
        std::fs::metadata(&gz).map(|m| m.mode()).unwrap_or(0)
    );
    assert!(refused);
    assert_eq!(std::fs::read_to_string(&target).unwrap(), SECRET);
}

#[test]
fn a_directory_swapped_for_a_symlink_does_not_make_root_create_files_elsewhere() {
    if !root("a_directory_swapped_for_a_symlink_does_not_make_root_create_files_elsewhere") {
        return;
    }
    let env = Env::new("logsec-swap");
    let private = env.dir.join("private");
    std::fs::create_dir(&private).unwrap();
    std::fs::set_permissions(&private, std::fs::Permissions::from_mode(0o700)).unwrap();
    // The service owns `svc`; its log goes in `svc/logs`, which it swaps for a symlink.
    let svc = env.dir.join("svc");
    service_dir(&svc, 0o755);
    symlink(&private, svc.join("logs")).unwrap();
    let out = env.daemonic(&[
        "run",
        "--user",
        "65534",
        "--restart",
        "never",
        "--log-file",
        &svc.join("logs/x.log").display().to_string(),
        "--",
        "/bin/echo",
        "written by the service",
    ]);
    assert!(
        !private.join("x.log").exists(),
        "root created a log in the root-only directory behind the symlink"
    );
    assert!(!out.status.success());
    assert!(
        stderr(&out).contains(&svc.display().to_string()),
        "{}",
        stderr(&out)
    );

    // A symlink the service owns is not followed even where only root writes now (the
    // directory was the service's when it made the link); root's own links are.
    let tree = env.dir.join("tree");
    std::fs::create_dir(&tree).unwrap();
    symlink(&private, tree.join("logs")).unwrap();
    std::os::unix::fs::lchown(tree.join("logs"), Some(NOBODY), Some(NOBODY)).unwrap();
    let err = RotatingWriter::builder(tree.join("logs/x.log"))
        .open()
        .unwrap_err();
    assert_eq!(err.os_error(), Some(libc::ELOOP), "{err}");
    assert!(!private.join("x.log").exists());
    std::fs::remove_file(tree.join("logs")).unwrap();
    symlink(&private, tree.join("logs")).unwrap();
    let log = RotatingWriter::builder(tree.join("logs/x.log")).open();
    assert!(log.is_ok(), "root's own symlink: {:?}", log.err());
}

#[test]
fn the_service_cannot_delete_or_rename_its_root_owned_log() {
    if !root("the_service_cannot_delete_or_rename_its_root_owned_log") {
        return;
    }
    let env = Env::new("logsec-del");
    let logs = env.dir.join("logs");
    service_dir(&logs, 0o755);
    let log = logs.join("x.log");
    let script = format!(
        "echo history; mv {0} {0}.old; rm -f {0}.old; echo rewritten",
        log.display()
    );
    let out = env.daemonic(&[
        "run",
        "--user",
        "65534",
        "--restart",
        "never",
        "--log-file",
        &log.display().to_string(),
        "--",
        "/bin/sh",
        "-c",
        &script,
    ]);
    if out.status.success() {
        let text = std::fs::read_to_string(&log).unwrap_or_default();
        assert!(
            text.contains("history"),
            "the service removed its own log: {text:?}"
        );
    } else {
        // The fix: a log directory the service can write is refused, before it starts.
        assert!(stderr(&out).contains("refused as root"), "{}", stderr(&out));
        assert!(!log.exists());
    }
    // In a directory only root writes, the service's attempt fails.
    let safe = env.dir.join("safe");
    std::fs::create_dir(&safe).unwrap();
    std::fs::set_permissions(&safe, std::fs::Permissions::from_mode(0o755)).unwrap();
    let log = safe.join("x.log");
    let script = format!("mv {0} {0}.old; rm -f {0}; echo tried", log.display());
    let out = env.daemonic(&[
        "run",
        "--user",
        "65534",
        "--restart",
        "never",
        "--log-file",
        &log.display().to_string(),
        "--",
        "/bin/sh",
        "-c",
        &script,
    ]);
    assert!(out.status.success(), "{}", stderr(&out));
    let text = std::fs::read_to_string(&log).unwrap();
    assert!(text.contains("Permission denied"), "{text:?}");
    assert!(text.contains("tried"), "{text:?}");
}

#[test]
fn logs_as_root_refuses_symlinks_instead_of_printing_their_targets() {
    if !root("logs_as_root_refuses_symlinks_instead_of_printing_their_targets") {
        return;
    }
    let env = Env::new("logsec-read");
    let target = victim(&env);
    let logs = env.dir.join("logs");
    service_dir(&logs, 0o755);
    let active = logs.join("x.log");
    symlink(&target, &active).unwrap();
    let file = active.display().to_string();
    let out = env.daemonic(&["logs", "x", "--file", &file]);
    assert!(
        !String::from_utf8_lossy(&out.stdout).contains("secret"),
        "daemonic logs printed a symlink's target"
    );
    assert!(!out.status.success());
    assert!(stderr(&out).contains(&file), "{}", stderr(&out));

    // A planted rotated name is skipped; the real lines still print.
    std::fs::remove_file(&active).unwrap();
    std::fs::write(&active, "real line\n").unwrap();
    symlink(&target, logs.join("x.log.20250101-000000")).unwrap();
    let out = env.daemonic(&["logs", "x", "--file", &file, "-n", "50"]);
    let text = String::from_utf8_lossy(&out.stdout);
    assert!(
        !text.contains("secret"),
        "printed through a rotated symlink"
    );
    assert_eq!(text, "real line\n", "{}", stderr(&out));

    // So is a hard link to root's file.
    std::fs::remove_file(logs.join("x.log.20250101-000000")).unwrap();
    std::fs::hard_link(&target, logs.join("x.log.20250101-000001")).unwrap();
    let out = env.daemonic(&["logs", "x", "--file", &file, "-n", "50"]);
    assert_eq!(String::from_utf8_lossy(&out.stdout), "real line\n");
    assert!(stderr(&out).contains("has 2 links"), "{}", stderr(&out));
}
