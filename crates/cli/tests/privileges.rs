//! Least privilege, end to end and as root: children run as the configured user with
//! exactly the configured groups and no way back to root; a kept capability binds port 80;
//! pid files, state directories and the files in them are safe from other users.
//!
//! Tests that switch users need root and skip with a printed reason otherwise (CI runs as
//! root). Port 80 is bound inside a fresh network namespace (`unshare --net`), so nothing
//! else on the machine can hold it and the test holds nothing of the machine's.

mod env;
use daemonic_test_support as support;

use std::os::unix::fs::{MetadataExt, PermissionsExt};
use std::path::{Path, PathBuf};
use std::process::Command;

use env::{Env, fixture};
use support::*;

const BIN: &str = env!("CARGO_BIN_EXE_daemonic");
const NOBODY: u32 = 65534;

/// The report fixture, copied where any user may execute it: the build directory may sit
/// below a directory `nobody` cannot enter. Copied by another process: a copy open for
/// writing in this one would be inherited by children that other tests fork meanwhile,
/// and exec would fail with ETXTBSY.
fn shared_fixture(dir: &TempDir) -> String {
    std::fs::set_permissions(dir.path(), std::fs::Permissions::from_mode(0o755)).unwrap();
    let path = dir.join("privileges-report");
    let copied = run(Command::new("install")
        .args(["-m", "0755"])
        .arg(example("privileges-report"))
        .arg(&path));
    assert!(copied.status.success(), "install: {}", stderr(&copied));
    path.display().to_string()
}

/// `key=value` lines of a fixture's stdout.
fn parse(stdout: &[u8]) -> Vec<(String, String)> {
    String::from_utf8_lossy(stdout)
        .lines()
        .filter_map(|l| l.split_once('='))
        .map(|(k, v)| (k.to_string(), v.to_string()))
        .collect()
}

fn field(report: &[(String, String)], key: &str) -> String {
    get(report, key).unwrap_or_else(|| panic!("no {key}= in {report:?}"))
}

#[test]
fn a_started_child_runs_as_the_user_with_exactly_the_configured_groups() {
    if !root("a_started_child_runs_as_the_user_with_exactly_the_configured_groups") {
        return;
    }
    let env = Env::new("priv-ids");
    let prog = shared_fixture(&env.dir);
    let out = run(env
        .cmd()
        .env("DAEMONIC_TEST_SECRET", "of the supervisor")
        .args(["start", "--name", "ids", "--ready", "notify"])
        .args(["--user", "65534", "--group", "65534"])
        .args(["--supplementary-groups", "4000,4001"])
        .args(["--", &prog, "--stay"]));
    assert!(out.status.success(), "start failed: {}", stderr(&out));
    let pid = env.child_pid("ids");

    assert_eq!(proc_status(pid, "Uid:"), "65534 65534 65534 65534");
    assert_eq!(proc_status(pid, "Gid:"), "65534 65534 65534 65534");
    assert_eq!(
        proc_status(pid, "Groups:"),
        "4000 4001",
        "exactly these, none of root's"
    );
    assert_eq!(proc_status(pid, "CapEff:"), "0000000000000000");

    let log = env.dir.join("state").join("ids.log");
    await_key(&log, "done");
    let r = report(&log);
    assert_eq!(field(&r, "setuid0"), "EPERM", "root cannot be regained");
    assert_eq!(field(&r, "setgid0"), "EPERM");
    // daemonic's own variables never reach a child; the user's identity does.
    assert_eq!(field(&r, "env_DAEMONIC_STATE_DIR"), "<unset>");
    assert_eq!(field(&r, "env_DAEMONIC_TEST_SECRET"), "<unset>");
    if let Ok(Some(user)) = nix::unistd::User::from_uid(NOBODY.into()) {
        assert_eq!(field(&r, "env_USER"), user.name);
        assert_eq!(field(&r, "env_HOME"), user.dir.display().to_string());
    }
    let stop = env.daemonic(&["stop", "ids"]);
    assert!(stop.status.success(), "stop: {}", stderr(&stop));
}

#[test]
fn by_default_the_groups_are_the_users_own_and_options_apply() {
    if !root("by_default_the_groups_are_the_users_own_and_options_apply") {
        return;
    }
    let env = Env::new("priv-default");
    let prog = shared_fixture(&env.dir);
    let out = run(Command::new(BIN)
        .args([
            "run",
            "--user",
            "nobody",
            "--no-new-privs",
            "--umask",
            "077",
        ])
        .args(["--chroot", "/", "--dir", env.dir.path().to_str().unwrap()])
        .args(["--", &prog]));
    assert!(out.status.success(), "run failed: {}", stderr(&out));
    let r = parse(&out.stdout);
    let user = nix::unistd::User::from_name("nobody").unwrap().unwrap();
    let name = std::ffi::CString::new("nobody").unwrap();
    let groups: Vec<String> = nix::unistd::getgrouplist(&name, user.gid)
        .unwrap()
        .iter()
        .map(|g| g.to_string())
        .collect();
    assert_eq!(field(&r, "uid"), format!("{0} {0} {0} {0}", user.uid));
    assert_eq!(field(&r, "gid"), format!("{0} {0} {0} {0}", user.gid));
    assert_eq!(
        field(&r, "groups"),
        groups.join(" "),
        "the user's group list"
    );
    assert_eq!(field(&r, "setuid0"), "EPERM");
    assert_eq!(
        field(&r, "cap_bnd"),
        "0000000000000000",
        "no capability left to gain"
    );
    assert_eq!(field(&r, "no_new_privs"), "1");
    assert_eq!(field(&r, "umask"), "0077");
    assert_eq!(field(&r, "cwd"), env.dir.path().display().to_string());
}

/// `unshare --net`, or the reason it cannot be used.
fn fresh_netns() -> Result<Command, String> {
    match Command::new("unshare").args(["--net", "true"]).output() {
        Ok(o) if o.status.success() => {
            let mut c = Command::new("unshare");
            c.args(["--net", "--", BIN]);
            Ok(c)
        }
        Ok(o) => Err(format!("unshare --net failed: {}", stderr(&o).trim())),
        Err(e) => Err(format!("unshare (util-linux) not available: {e}")),
    }
}

#[test]
fn a_kept_capability_binds_port_80_and_without_it_the_bind_fails() {
    if !root("a_kept_capability_binds_port_80_and_without_it_the_bind_fails") {
        return;
    }
    let netns = match fresh_netns() {
        Ok(c) => c,
        Err(why) => {
            eprintln!("skipped a_kept_capability_binds_port_80…: {why}");
            return;
        }
    };
    let dir = TempDir::new("priv-port80");
    let prog = shared_fixture(&dir);
    let bind_80 = |keep: &[&str]| {
        let mut cmd = Command::new(netns.get_program());
        cmd.args(netns.get_args())
            .args(["run", "--user", "nobody"])
            .args(keep)
            .args(["--", &prog, "--bind", "80"]);
        let out = run(&mut cmd);
        assert!(out.status.success(), "run failed: {}", stderr(&out));
        parse(&out.stdout)
    };
    let kept = bind_80(&["--keep-caps", "net_bind_service"]);
    assert_eq!(field(&kept, "bind"), "ok", "{kept:?}");
    assert_eq!(
        field(&kept, "cap_amb"),
        "0000000000000400",
        "CAP_NET_BIND_SERVICE only"
    );
    assert_eq!(field(&kept, "cap_eff"), "0000000000000400");
    assert_eq!(field(&kept, "setuid0"), "EPERM");
    let without = bind_80(&[]);
    assert_eq!(field(&without, "bind"), "EACCES", "{without:?}");
}

#[test]
fn a_symlink_planted_at_the_pid_file_path_is_not_followed() {
    let env = Env::new("priv-symlink");
    let state = env.dir.join("state");
    std::fs::create_dir(&state).unwrap();
    std::fs::set_permissions(&state, std::fs::Permissions::from_mode(0o700)).unwrap();
    let target = env.dir.join("precious");
    std::fs::write(&target, "precious data\n").unwrap();
    std::os::unix::fs::symlink(&target, env.pid_file("web")).unwrap();

    let out = env.daemonic(&["start", "--name", "web", "--", &fixture("sleeper")]);
    assert!(!out.status.success(), "start followed the symlink");
    let err = stderr(&out);
    assert!(
        err.contains(&format!("open {}", env.pid_file("web").display()))
            && err.contains("Too many levels of symbolic links"),
        "{err}"
    );
    assert_eq!(std::fs::read_to_string(&target).unwrap(), "precious data\n");
    assert!(
        std::fs::symlink_metadata(env.pid_file("web"))
            .unwrap()
            .is_symlink()
    );
}

#[test]
fn a_world_writable_state_directory_is_refused() {
    let env = Env::new("priv-worldw");
    let state = env.dir.join("state");
    std::fs::create_dir(&state).unwrap();
    std::fs::set_permissions(&state, std::fs::Permissions::from_mode(0o777)).unwrap();

    let out = env.daemonic(&["start", "--name", "web", "--", &fixture("sleeper")]);
    assert!(
        !out.status.success(),
        "a world-writable state directory was used"
    );
    let err = stderr(&out);
    assert!(
        err.contains(&format!(
            "state directory {} is writable by group or others (mode 0777)",
            state.display()
        )),
        "{err}"
    );
    assert!(!env.pid_file("web").exists(), "nothing created in it");
}

fn mode_and_owner(path: &Path) -> (u32, u32) {
    let m =
        std::fs::symlink_metadata(path).unwrap_or_else(|e| panic!("stat {}: {e}", path.display()));
    (m.mode() & 0o7777, m.uid())
}

#[test]
fn files_have_the_documented_modes_and_owners() {
    if !root("files_have_the_documented_modes_and_owners") {
        return;
    }
    let env = Env::new("priv-modes");
    let prog = shared_fixture(&env.dir);
    let out = run(env
        .cmd()
        .args([
            "start", "--name", "m", "--ready", "notify", "--user", "nobody",
        ])
        .args(["--", &prog, "--stay"]));
    assert!(out.status.success(), "start failed: {}", stderr(&out));
    let state: PathBuf = env.dir.join("state");
    await_key(&state.join("m.log"), "done");
    // Root's files, though the service runs as nobody: it cannot rewrite its pid file or
    // its own log history.
    assert_eq!(mode_and_owner(&state), (0o700, 0), "state directory");
    assert_eq!(
        mode_and_owner(&env.pid_file("m")),
        (0o644 & !umask(), 0),
        "pid file: 0644 minus the launcher's umask"
    );
    assert_eq!(
        mode_and_owner(&state.join("m.sock")),
        (0o600, 0),
        "control socket"
    );
    assert_eq!(
        mode_and_owner(&state.join("m.status")),
        (0o640, 0),
        "status file"
    );
    assert_eq!(
        mode_and_owner(&state.join("m.log")),
        (0o640, 0),
        "captured log"
    );
    let stop = env.daemonic(&["stop", "m"]);
    assert!(stop.status.success(), "stop: {}", stderr(&stop));
}

#[test]
fn an_unknown_user_is_named_in_the_terminal_and_nothing_runs() {
    let env = Env::new("priv-unknown");
    let out = env.daemonic(&[
        "start",
        "--name",
        "u",
        "--user",
        "no-such-user-x9",
        "--",
        &fixture("sleeper"),
    ]);
    assert!(!out.status.success());
    assert!(
        stderr(&out).contains("unknown user \"no-such-user-x9\""),
        "{}",
        stderr(&out)
    );
    assert!(!env.pid_file("u").exists(), "no supervisor was started");
}

/// Regression: a credential change clears the parent-death signal, so the switch must come
/// before it is set; otherwise a child running as another user outlives a killed
/// supervisor.
#[test]
fn a_child_running_as_another_user_dies_with_its_killed_supervisor() {
    if !root("a_child_running_as_another_user_dies_with_its_killed_supervisor") {
        return;
    }
    let env = Env::new("priv-pdeath");
    let prog = shared_fixture(&env.dir);
    let out = run(env
        .cmd()
        .args([
            "start", "--name", "pd", "--ready", "notify", "--user", "nobody",
        ])
        .args(["--", &prog, "--stay"]));
    assert!(out.status.success(), "start failed: {}", stderr(&out));
    let child = KillOnDrop::new(env.child_pid("pd"));
    let log = env.dir.join("state").join("pd.log");
    await_key(&log, "done");
    // The kernel's guarantee; the sentinel below would hide its absence.
    assert_eq!(field(&report(&log), "pdeathsig"), "SIGKILL");
    let daemonic::pidfile::Holder::Locked(Some(supervisor)) =
        daemonic::PidFile::holder(env.pid_file("pd")).unwrap()
    else {
        panic!("no supervisor holds the pid file");
    };
    drop(KillOnDrop::new(supervisor)); // SIGKILL, and wait for it
    wait_for("the child to die with its supervisor", SOON, || {
        (!alive(child.pid())).then_some(())
    });
}

#[test]
fn exec_probes_and_checks_run_as_the_service_user_not_as_root() {
    if !root("exec_probes_and_checks_run_as_the_service_user_not_as_root") {
        return;
    }
    let env = Env::new("priv-probe");
    // Ready only if the probe's shell runs as nobody; the readiness check likewise.
    let as_nobody = format!("exec:test \"$(id -u)\" = {NOBODY}");
    let out = env.daemonic(&[
        "start",
        "--name",
        "p",
        "--user",
        "nobody",
        "--dir",
        "/",
        "--timeout",
        "10s",
        "--ready",
        &as_nobody,
        "--readiness",
        &as_nobody,
        "--readiness-interval",
        "100ms",
        "--",
        "/bin/sleep",
        "60",
    ]);
    assert!(out.status.success(), "{}", stderr(&out));
    let healthy = wait_for("the readiness check passing", SOON, || {
        let s = env.status_line("p");
        s.contains("health: healthy").then_some(s)
    });
    assert!(healthy.contains("ready"), "{healthy}");
    assert!(env.daemonic(&["stop", "p"]).status.success());
}

#[test]
fn a_configured_home_wins_over_the_users_own() {
    if !root("a_configured_home_wins_over_the_users_own") {
        return;
    }
    let env = Env::new("priv-home");
    let prog = shared_fixture(&env.dir);
    let out = run(env
        .cmd()
        .args(["start", "--name", "home", "--ready", "notify"])
        .args(["--user", "nobody", "--env", "HOME=/srv/app"])
        .args(["--", &prog, "--stay"]));
    assert!(out.status.success(), "start failed: {}", stderr(&out));
    let log = env.dir.join("state").join("home.log");
    await_key(&log, "done");
    let r = report(&log);
    assert_eq!(field(&r, "env_HOME"), "/srv/app", "--env wins");
    assert_eq!(field(&r, "env_USER"), "nobody", "the rest is the user's");
    assert!(env.daemonic(&["stop", "home"]).status.success());
}

/// A chrooted service's program is looked for in its `PATH` inside its root, by the
/// child: a program that exists only there runs. (Looked for before the clone, in this
/// root, it was not found.)
#[test]
fn a_chrooted_program_is_found_in_its_path_inside_the_root() {
    if !root("a_chrooted_program_is_found_in_its_path_inside_the_root") {
        return;
    }
    let env = Env::new("priv-chroot-path");
    let jail = env.dir.join("jail");
    // /bin/echo with what it links to, copied by another process (see shared_fixture).
    let ldd = run(Command::new("ldd").arg("/bin/echo"));
    assert!(ldd.status.success(), "ldd: {}", stderr(&ldd));
    let mut copies: Vec<(String, String)> = stdout(&ldd)
        .split_whitespace()
        .filter(|w| w.starts_with('/'))
        .map(|lib| (lib.to_string(), lib.to_string()))
        .collect();
    copies.push(("/bin/echo".into(), "/usr/local/bin/only-in-the-jail".into()));
    for (from, to) in &copies {
        let to = jail.join(to.trim_start_matches('/'));
        let copied = run(Command::new("install").arg("-D").arg(from).arg(&to));
        assert!(
            copied.status.success(),
            "install {from}: {}",
            stderr(&copied)
        );
    }
    let out = run(Command::new(BIN)
        .env("PATH", "/usr/local/bin:/usr/bin:/bin")
        .arg("--state-dir")
        .arg(env.dir.join("state"))
        .args(["run", "--chroot"])
        .arg(&jail)
        .args(["--dir", "/", "--", "only-in-the-jail", "ran in the jail"]));
    assert!(out.status.success(), "run failed: {}", stderr(&out));
    assert_eq!(stdout(&out).trim(), "ran in the jail", "{}", stderr(&out));
}
