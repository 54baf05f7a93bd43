//! `daemonic install` / `uninstall --unit-dir` and what `unit` warns about or refuses: an
//! install that is idempotent and replaces only its own files, names that clash with
//! packaged units, aliases or state directories, paths the sandbox hides or the dynamic
//! user cannot read, directories, limits and timeouts as keys (the generated units
//! themselves are `units.rs`).

use daemonic_test_support as support;

mod env;

use std::path::{Path, PathBuf};

use env::units::*;
use env::{Env, config, fixture};
use support::{stderr, stdout};

#[test]
fn install_is_idempotent_and_replaces_only_its_own_files() {
    let env = Env::new("units-install");
    let file = config(&env, &spread());
    let dir = env.dir.join("units");
    // `always` depends on `notifier`: both are installed, the dependency first.
    let out = install(&env, &file, &dir, &["always", "--system"]);
    assert!(out.status.success(), "{}", stderr(&out));
    assert_eq!(
        stdout(&out),
        format!(
            "installed: {0}/notifier.service\ninstalled: {0}/always.service\nnot told to systemd (--unit-dir)\n",
            dir.display()
        )
    );
    let written = std::fs::read_to_string(dir.join("always.service")).unwrap();
    assert_eq!(written, unit(&env, &file, &["always", "--system"]));
    let out = install(&env, &file, &dir, &["always", "--system"]);
    assert!(stdout(&out).contains(&format!("unchanged: {}/always.service", dir.display())));
    // A changed service updates its file.
    let edited = spread().replace("umask = \"027\"", "umask = \"077\"");
    std::fs::write(&file, edited).unwrap();
    let out = install(&env, &file, &dir, &["always", "--system"]);
    assert!(
        stdout(&out).contains(&format!("updated: {}/always.service", dir.display())),
        "{}",
        stdout(&out)
    );
    // A file daemonic did not write is left alone.
    std::fs::write(
        dir.join("plain.service"),
        "[Service]\nExecStart=/bin/true\n",
    )
    .unwrap();
    let out = install(&env, &file, &dir, &["plain", "--system"]);
    assert!(!out.status.success());
    assert!(
        stderr(&out).contains("plain.service: exists and was not written by daemonic"),
        "{}",
        stderr(&out)
    );
    let uninstall =
        |name: &str| env.daemonic(&["uninstall", name, "--unit-dir", dir.to_str().unwrap()]);
    let out = uninstall("plain");
    assert!(!out.status.success(), "not ours, not removed");
    assert!(dir.join("plain.service").exists());
    let out = uninstall("always");
    assert!(out.status.success(), "{}", stderr(&out));
    assert!(!dir.join("always.service").exists());
    assert!(dir.join("notifier.service").exists(), "dependencies stay");
    let out = uninstall("always");
    assert!(out.status.success(), "uninstalling twice is not an error");
    assert!(stdout(&out).contains("not installed:"), "{}", stdout(&out));
}

#[test]
fn names_of_packaged_units_aliases_and_existing_state_directories_warn_and_refuse() {
    let env = Env::new("units-names");
    let sleeper = fixture("sleeper");
    // Created here, removed at the end: a /var/lib/NAME that the unit would take over.
    let taken = format!("daemonic-test-taken-{}", std::process::id());
    let var_lib = Path::new("/var/lib").join(&taken);
    let root = nix::unistd::geteuid().is_root();
    /// Removes the directory even when the test fails.
    struct Remove(PathBuf);
    impl Drop for Remove {
        fn drop(&mut self) {
            let _ = std::fs::remove_dir(&self.0);
        }
    }
    let _remove = root.then(|| {
        std::fs::create_dir_all(&var_lib).unwrap();
        Remove(var_lib.clone())
    });
    let file = config(
        &env,
        &format!(
            "[services.systemd-journald]\ncommand = [{sleeper:?}, \"1\"]\n\n\
             [services.redis]\ncommand = [{sleeper:?}, \"1\"]\n\n\
             [services.{taken}]\ncommand = [{sleeper:?}, \"1\"]\n\n\
             [services.fresh]\ncommand = [{sleeper:?}, \"1\"]\n"
        ),
    );
    let dir = env.dir.join("units");
    let mut cases = vec![("fresh", None)];
    let packaged = ["/lib/systemd/system", "/usr/lib/systemd/system"]
        .iter()
        .any(|d| Path::new(d).join("systemd-journald.service").exists());
    if packaged {
        cases.push((
            "systemd-journald",
            Some("systemd-journald.service is also a unit not written by daemonic"),
        ));
    } else {
        eprintln!("skipping the packaged-unit case: no systemd-journald.service here");
    }
    let aliased = ["/lib/systemd/system", "/usr/lib/systemd/system"]
        .iter()
        .any(|d| Path::new(d).join("redis-server.service").exists());
    if aliased {
        cases.push(("redis", Some("redis.service is an Alias= of the packaged ")));
    } else {
        eprintln!("skipping the Alias= case: redis-server is not installed");
    }
    let want = format!(
        "{} exists: StateDirectory={taken} would take it over",
        var_lib.display()
    );
    if root {
        cases.push((taken.as_str(), Some(want.as_str())));
    } else {
        eprintln!("skipping the /var/lib case: not root");
    }
    for (name, clash) in cases {
        let out = env.daemonic(&["unit", "-f", file.to_str().unwrap(), name, "--system"]);
        assert!(out.status.success(), "unit {name}: {}", stderr(&out));
        let warned = stderr(&out);
        let out = install(&env, &file, &dir, &[name, "--system"]);
        match clash {
            None => {
                assert_eq!(warned, "", "{name}");
                assert!(out.status.success(), "{}", stderr(&out));
            }
            Some(why) => {
                assert!(
                    warned.starts_with("warning: ") && warned.contains(why),
                    "{name}: {warned}"
                );
                assert!(!out.status.success(), "install {name} was not refused");
                let err = stderr(&out);
                assert!(err.contains(why) && err.contains("--force"), "{err}");
                let forced = install(&env, &file, &dir, &[name, "--system", "--force"]);
                assert!(forced.status.success(), "{}", stderr(&forced));
            }
        }
    }
}

#[test]
fn paths_the_sandbox_hides_are_bound_in_and_directories_limits_and_timeouts_are_keys() {
    let env = Env::new("units-paths");
    // A project in /root (made here as root, removed at the end; elsewhere skipped).
    let root = nix::unistd::geteuid().is_root();
    let home = PathBuf::from(format!("/root/daemonic-test-units-{}", std::process::id()));
    struct Remove(PathBuf);
    impl Drop for Remove {
        fn drop(&mut self) {
            let _ = std::fs::remove_dir_all(&self.0);
        }
    }
    let _remove = root.then(|| {
        std::fs::create_dir_all(home.join("venv/bin")).unwrap();
        std::fs::create_dir_all(home.join("app")).unwrap();
        std::fs::copy(fixture("sleeper"), home.join("venv/bin/app")).unwrap();
        Remove(home.clone())
    });
    let home_table = if root {
        format!(
            "[services.home]\ncommand = [\"{0}/venv/bin/app\"]\ndir = \"{0}/app\"\n",
            home.display()
        )
    } else {
        eprintln!("skipping the /root case: not root");
        String::new()
    };
    let file = config(
        &env,
        &format!(
            "[services.tmp]\ncommand = [{:?}, \"1\"]\nready = \"notify\"\nenv-file = \"-app.env\"\n\
             unit-writable = [\"data\"]\ntimeout = \"5m\"\nstop-timeout = \"2m\"\n\
             unit-state-directory = [\"tmp-data\"]\nunit-runtime-directory = [\"tmp\"]\n\
             unit-logs-directory = [\"tmp\"]\nunit-limit-nofile = \"65536\"\nunit-deny-write-execute = true\n\n{home_table}",
            fixture("notify-ready")
        ),
    );
    tmp_unit(&env, &file);
    if root {
        home_unit(&env, &file, &home);
    }
    let bad = config(
        &env,
        "[services.x]\ncommand = \"true\"\nunit-state-directory = [\"../etc\"]\n",
    );
    let out = env.daemonic(&["unit", "-f", bad.to_str().unwrap(), "x"]);
    assert!(!out.status.success());
    assert!(
        stderr(&out).contains("invalid directory \"../etc\""),
        "{}",
        stderr(&out)
    );
}

/// A service under the private /tmp: its directories, limits and timeouts as keys, and
/// what of /tmp is bound in.
fn tmp_unit(env: &Env, file: &Path) {
    let dir = env.dir.path().display().to_string();
    let t = unit(env, file, &["tmp", "--system"]);
    for (key, value) in [
        ("BindPaths", format!("{dir}/data")),
        ("PrivateTmp", "yes".into()),
        ("ProtectHome", "yes".into()),
        ("StateDirectory", "tmp-data".into()),
        ("RuntimeDirectory", "tmp".into()),
        ("LogsDirectory", "tmp".into()),
        ("LimitNOFILE", "65536".into()),
        ("TimeoutStartSec", "300s".into()),
        ("TimeoutStopSec", "120s".into()),
        ("MemoryDenyWriteExecute", "yes".into()),
        ("NotifyAccess", "all".into()),
    ] {
        assert_eq!(values(&t, key), [value.as_str()], "{key} in\n{t}");
    }
    // The working directory and the env file under the private /tmp: bound in, read-only
    // (the writable one read-write, above); /tmp itself stays private. The program too,
    // when the checkout (and so the fixture) is under /tmp.
    let program = fixture("notify-ready");
    let mut want = vec![dir.clone()];
    if program.starts_with("/tmp/") {
        want.insert(0, program);
    }
    let bound: Vec<String> = values(&t, "BindReadOnlyPaths")
        .iter()
        .flat_map(|v| v.split(' ').map(str::to_string))
        .collect();
    assert_eq!(bound, want, "BindReadOnlyPaths in\n{t}");
}

/// A service installed under /root (`home`): empty homes, its installation bound in.
fn home_unit(env: &Env, file: &Path, home: &Path) {
    let h = unit(env, file, &["home", "--system"]);
    // Under /root: empty homes, and the program's installation (which holds the
    // working directory too) bound in.
    let bound = home.display().to_string();
    for (key, value) in [
        ("ProtectHome", "tmpfs"),
        ("BindReadOnlyPaths", bound.as_str()),
        ("StateDirectory", "home"),
    ] {
        assert_eq!(values(&h, key), [value], "{key} in\n{h}");
    }
    assert!(
        values(&h, "MemoryDenyWriteExecute").is_empty(),
        "JITs work:\n{h}"
    );
    assert!(values(&h, "NotifyAccess").is_empty(), "{h}");
}

#[test]
fn a_path_the_dynamic_user_cannot_read_is_warned_about_and_refused() {
    use std::os::unix::fs::PermissionsExt;
    let env = Env::new("units-unreadable");
    let closed = env.dir.join("closed");
    std::fs::create_dir(&closed).unwrap();
    std::fs::set_permissions(&closed, std::fs::Permissions::from_mode(0o700)).unwrap();
    let file = config(
        &env,
        &format!(
            "[services.closed]\ncommand = [{:?}, \"1\"]\ndir = \"closed\"\n\n\
             [services.owned]\ncommand = [{:?}, \"1\"]\ndir = \"closed\"\nuser = \"daemon\"\n",
            fixture("sleeper"),
            fixture("sleeper")
        ),
    );
    let out = env.daemonic(&["unit", "-f", file.to_str().unwrap(), "closed", "--system"]);
    assert!(out.status.success());
    let want = format!(
        "{0} is not readable by the service's dynamic user: {0} is closed to others (chmod o+rx it, or give the service a `user`)",
        closed.display()
    );
    assert!(stderr(&out).contains(&want), "{}", stderr(&out));
    let dir = env.dir.join("units");
    let out = install(&env, &file, &dir, &["closed", "--system"]);
    assert!(!out.status.success(), "installed");
    assert!(stderr(&out).contains(&want), "{}", stderr(&out));
    // With a user of its own the permissions are that user's business.
    let out = env.daemonic(&["unit", "-f", file.to_str().unwrap(), "owned", "--system"]);
    assert!(out.status.success());
    assert_eq!(stderr(&out), "");
}
