//! Projects of many services (`daemonic.toml`) as compose users write them: `${VAR}` from
//! the environment and the project's `.env`.

use daemonic_test_support as support;

mod env;

use env::{Env, text};

#[test]
fn variables_come_from_the_environment_over_dot_env_and_run_the_service() {
    let env = Env::new("interp");
    let dir = env.dir.join("shop");
    std::fs::create_dir(&dir).unwrap();
    std::fs::write(dir.join(".env"), "GREETING=from-dotenv\nWHO=dotenv\n").unwrap();
    let file = dir.join("daemonic.toml");
    std::fs::write(
        &file,
        r#"
[services.hello]
command = ["sh", "-c", "echo ${GREETING} ${WHO} ${MISSING:-fallback} '$$HOME-literal' $$LEVEL; exec sleep 60"]
env = { LEVEL = "${LEVEL:-info}" }
"#,
    )
    .unwrap();
    let f = file.to_str().unwrap();
    let out = env
        .cmd()
        .env("WHO", "shell")
        .args(["up", "-f", f])
        .output()
        .unwrap();
    assert!(out.status.success(), "{}", text(&out));
    let log = env.dir.join("state").join("hello.log");
    support::wait_for("the greeting in the log", support::SOON, || {
        std::fs::read_to_string(&log)
            .ok()
            .filter(|t| t.contains("from-dotenv shell fallback $HOME-literal info"))
    });
    let out = env.daemonic(&["down", "-f", f]);
    assert!(out.status.success(), "{}", text(&out));
}

#[test]
fn an_unset_variable_is_an_error_at_its_line_and_column() {
    let env = Env::new("interp-unset");
    let file = env.dir.join("daemonic.toml");
    std::fs::write(
        &file,
        "[services.web]\ncommand = \"sleep 60\"\nready = \"tcp:${WEB_PORT_UNSET_HERE}\"\n",
    )
    .unwrap();
    let f = file.to_str().unwrap();
    let out = env.daemonic(&["check", "-f", f]);
    assert_eq!(out.status.code(), Some(1), "{}", text(&out));
    let err = String::from_utf8_lossy(&out.stderr);
    assert!(
        err.contains(&format!(
            "{f}:3:14: variable WEB_PORT_UNSET_HERE is not set"
        )),
        "{err}"
    );
    // With a default it checks.
    std::fs::write(
        &file,
        "[services.web]\ncommand = \"sleep 60\"\nready = \"tcp:${WEB_PORT_UNSET_HERE:-8080}\"\n",
    )
    .unwrap();
    let out = env.daemonic(&["check", "-f", f]);
    assert!(out.status.success(), "{}", text(&out));
}

#[test]
fn a_procfile_is_a_project_of_long_running_services_with_dot_env_and_port() {
    let env = Env::new("procfile");
    let dir = env.dir.join("app");
    std::fs::create_dir(&dir).unwrap();
    std::fs::write(dir.join(".env"), "SECRET=from-dotenv\n").unwrap();
    let file = dir.join("Procfile");
    std::fs::write(
        &file,
        "# a comment\nweb: echo web $PORT $SECRET && exec sleep 60\n\nworker:   echo worker $PORT; exec sleep 60\n",
    )
    .unwrap();
    let f = file.to_str().unwrap();
    let out = env.daemonic(&["check", "-f", f]);
    assert!(out.status.success(), "{}", text(&out));
    assert!(text(&out).contains("ok, 2 services"), "{}", text(&out));
    let out = env.daemonic(&["up", "-f", f]);
    assert!(out.status.success(), "{}", text(&out));
    for (name, line) in [("web", "web 5000 from-dotenv"), ("worker", "worker 5100")] {
        let log = env.dir.join("state").join(format!("{name}.log"));
        support::wait_for(line, support::SOON, || {
            std::fs::read_to_string(&log)
                .ok()
                .filter(|t| t.contains(line))
        });
    }
    let out = env.daemonic(&["down", "-f", f]);
    assert!(out.status.success(), "{}", text(&out));

    std::fs::write(&file, "web echo no colon\n").unwrap();
    let out = env.daemonic(&["check", "-f", f]);
    assert_eq!(out.status.code(), Some(1));
    assert!(
        text(&out).contains(&format!("{f}:1:1: expected `name: command`")),
        "{}",
        text(&out)
    );
}

#[test]
fn two_files_in_one_directory_are_two_projects() {
    let env = Env::new("two-files");
    let sleeper = env::fixture("sleeper");
    let a = env.dir.join("a.toml");
    let b = env.dir.join("b.toml");
    std::fs::write(
        &a,
        format!("[services.pa]\ncommand = [{sleeper:?}, \"600\"]\n"),
    )
    .unwrap();
    std::fs::write(
        &b,
        format!("[services.pb]\ncommand = [{sleeper:?}, \"600\"]\n"),
    )
    .unwrap();
    let (a, b) = (a.to_str().unwrap(), b.to_str().unwrap());
    let out = env.daemonic(&["up", "-f", a]);
    assert!(out.status.success(), "{}", text(&out));
    let out = env.daemonic(&["up", "-f", b]);
    assert!(
        out.status.success(),
        "b.toml gets its own supervisor: {}",
        text(&out)
    );
    assert!(text(&out).contains("pb: ready"), "{}", text(&out));
    assert!(!text(&out).contains("pa"), "{}", text(&out));
    let out = env.daemonic(&["down", "-f", b]);
    assert!(out.status.success(), "{}", text(&out));
    let status = env.daemonic(&["status", "pa"]);
    assert_eq!(
        status.status.code(),
        Some(0),
        "down -f b.toml left pa alone: {}",
        text(&status)
    );
    let status = env.daemonic(&["status", "pb"]);
    assert_eq!(status.status.code(), Some(3), "{}", text(&status));
    let out = env.daemonic(&["down", "-f", a]);
    assert!(out.status.success(), "{}", text(&out));
}

#[test]
fn list_all_shows_what_ended_and_why() {
    let env = Env::new("list-all");
    let sleeper = env::fixture("sleeper");
    let out = env.daemonic(&["start", "--name", "kept", "--", &sleeper]);
    assert!(out.status.success(), "{}", text(&out));
    let out = env.daemonic(&["start", "--name", "halted", "--", &sleeper]);
    assert!(out.status.success(), "{}", text(&out));
    let out = env.daemonic(&["stop", "halted"]);
    assert!(out.status.success(), "{}", text(&out));
    let out = env.daemonic(&[
        "start",
        "--name",
        "flaky",
        "--restart",
        "always",
        "--backoff",
        "10ms",
        "--start-limit",
        "2/1m",
        "--grace",
        "100ms",
        "--",
        "sh",
        "-c",
        "sleep 0.2; exit 4",
    ]);
    assert!(out.status.success(), "{}", text(&out));
    // Until its supervisor has given up and ended (`status` exit 3, "not running").
    support::wait_for("flaky to give up", support::SOON, || {
        let s = env.daemonic(&["status", "flaky"]);
        (s.status.code() == Some(3) && String::from_utf8_lossy(&s.stdout).contains("gave-up"))
            .then_some(())
    });
    let plain = String::from_utf8(env.daemonic(&["list"]).stdout).unwrap();
    assert!(plain.contains("\nkept "), "{plain}");
    assert!(
        !plain.contains("halted") && !plain.contains("flaky"),
        "{plain}"
    );
    let all = String::from_utf8(env.daemonic(&["list", "--all"]).stdout).unwrap();
    let row = |name: &str| {
        all.lines()
            .find(|l| l.starts_with(name))
            .unwrap_or_else(|| panic!("{name}: {all}"))
            .to_string()
    };
    assert!(row("flaky").contains("gave-up"), "{all}");
    assert!(row("flaky").contains("exited with status 4"), "{all}");
    assert!(row("halted").contains("stopped"), "{all}");
    assert!(row("kept").contains("ready"), "{all}");
    let _ = env.daemonic(&["stop", "kept"]);
}

#[test]
fn a_service_never_ready_under_up_is_killed_at_its_timeout() {
    let env = Env::new("up-timeout");
    let sleeper = env::fixture("sleeper");
    let file = env.dir.join("daemonic.toml");
    std::fs::write(
        &file,
        format!(
            "[services.stuck]\ncommand = [{sleeper:?}]\nready = \"notify\"\ntimeout = \"500ms\"\nrestart = \"never\"\n"
        ),
    )
    .unwrap();
    let f = file.to_str().unwrap();
    let out = env.daemonic(&["up", "-f", f, "--timeout", "20s"]);
    assert_eq!(
        out.status.code(),
        Some(1),
        "failed, not timed out: {}",
        text(&out)
    );
    assert!(text(&out).contains("stuck: failed"), "{}", text(&out));
    let log = std::fs::read_to_string(env.dir.join("state").join("stuck.log")).unwrap();
    assert!(
        log.contains("not ready within 500ms (--timeout); stopping it"),
        "{log}"
    );
    let status = env.status_line("stuck");
    assert!(status.contains("exited"), "{status}");
    let _ = env.daemonic(&["down", "-f", f]);
}

#[test]
fn a_oneshot_completes_its_dependents_start_after_it_and_up_does_not_rerun_it() {
    let env = Env::new("oneshot");
    let sleeper = env::fixture("sleeper");
    let runs = env.dir.join("migrations");
    let file = env.dir.join("daemonic.toml");
    std::fs::write(
        &file,
        format!(
            "[services.migrate]\ntype = \"oneshot\"\ncommand = [\"sh\", \"-c\", \"echo run >> {runs}\"]\n\n\
             [services.web]\ncommand = [{sleeper:?}]\ndepends-on = [\"migrate\"]\n",
            runs = runs.display()
        ),
    )
    .unwrap();
    let f = file.to_str().unwrap();
    let out = env.daemonic(&["up", "-f", f]);
    assert_eq!(out.status.code(), Some(0), "{}", text(&out));
    assert!(text(&out).contains("migrate: completed"), "{}", text(&out));
    assert!(text(&out).contains("web: ready"), "{}", text(&out));
    let status = env.status_line("migrate");
    assert!(status.starts_with("migrate: completed"), "{status}");
    let out = env.daemonic(&["up", "-f", f]);
    assert_eq!(out.status.code(), Some(0), "{}", text(&out));
    assert!(
        text(&out).contains("unchanged: migrate web"),
        "{}",
        text(&out)
    );
    assert_eq!(
        std::fs::read_to_string(&runs).unwrap(),
        "run\n",
        "not run again"
    );
    let _ = env.daemonic(&["down", "-f", f]);

    // `start` of a one-shot returns once it has completed.
    let out = env.daemonic(&[
        "start", "--name", "task", "--type", "oneshot", "--", "sh", "-c", "exit 0",
    ]);
    assert_eq!(out.status.code(), Some(0), "{}", text(&out));
    let status = env.daemonic(&["status", "task"]);
    assert!(
        text(&status).contains("task: completed") || text(&status).contains("(completed "),
        "{}",
        text(&status)
    );
    // A failing one is a failure, with its status.
    let out = env.daemonic(&[
        "start", "--name", "bad", "--type", "oneshot", "--", "sh", "-c", "exit 5",
    ]);
    assert_eq!(out.status.code(), Some(5), "{}", text(&out));
}

#[test]
fn dependency_conditions_started_healthy_and_completed_successfully() {
    let env = Env::new("conditions");
    let sleeper = env::fixture("sleeper");
    let file = env.dir.join("daemonic.toml");
    let write = |migrate_exit: i32| {
        std::fs::write(
            &file,
            format!(
                "[services.db]\ncommand = [{sleeper:?}]\nreadiness = \"exec:true\"\nreadiness-interval = \"100ms\"\n\n\
                 [services.migrate]\ntype = \"oneshot\"\ncommand = [\"sh\", \"-c\", \"exit {migrate_exit}\"]\ndepends-on = [\"db\"]\n\n\
                 [services.web]\ncommand = [{sleeper:?}]\ndepends-on = {{ db = \"healthy\", migrate = \"completed-successfully\" }}\n\n\
                 [services.worker]\ncommand = [{sleeper:?}]\ndepends-on = {{ web = \"started\" }}\n"
            ),
        )
        .unwrap()
    };
    write(0);
    let f = file.to_str().unwrap();
    let out = env.daemonic(&["check", "-f", f]);
    assert!(out.status.success(), "{}", text(&out));
    let out = env.daemonic(&["up", "-f", f]);
    assert_eq!(out.status.code(), Some(0), "{}", text(&out));
    for s in [
        "db: ready",
        "migrate: completed",
        "web: ready",
        "worker: ready",
    ] {
        assert!(text(&out).contains(s), "{s}: {}", text(&out));
    }
    let out = env.daemonic(&["down", "-f", f]);
    assert!(out.status.success(), "{}", text(&out));

    // A failing one-shot fails what waits for it, with the reason, at once.
    write(3);
    let out = env.daemonic(&["up", "-f", f, "--timeout", "20s"]);
    assert_eq!(out.status.code(), Some(1), "{}", text(&out));
    assert!(
        text(&out).contains("its dependency migrate cannot become ready: exited with status 3"),
        "{}",
        text(&out)
    );
    let _ = env.daemonic(&["down", "-f", f]);

    // Conditions a dependency cannot meet are errors of the file.
    std::fs::write(
        &file,
        format!(
            "[services.db]\ncommand = [{sleeper:?}]\n\n[services.web]\ncommand = [{sleeper:?}]\n\
             depends-on = {{ db = \"healthy\" }}\n\n[services.api]\ncommand = [{sleeper:?}]\n\
             depends-on = {{ db = \"completed-successfuly\" }}\n"
        ),
    )
    .unwrap();
    let out = env.daemonic(&["check", "-f", f]);
    assert_eq!(out.status.code(), Some(1));
    let err = text(&out);
    assert!(
        err.contains("`web` waits for `db` to be healthy, but `db` has no `readiness` check"),
        "{err}"
    );
    assert!(
        err.contains("unknown `depends-on` condition `completed-successfuly`"),
        "{err}"
    );
    assert!(
        err.contains("did you mean `completed-successfully`?"),
        "{err}"
    );
}

/// A file of hundreds of services: `up` and `list` get the whole answer (a response was
/// capped at 64 KiB, some 200 services' worth).
#[test]
fn up_and_list_of_three_hundred_services() {
    let env = Env::new("many");
    let sleeper = env::fixture("sleeper");
    let file = env.dir.join("daemonic.toml");
    let services: String = (0..300)
        .map(|i| {
            format!(
                "[services.s{i}]\ncommand = [{sleeper:?}]\nready = \"grace\"\ngrace = \"10ms\"\n"
            )
        })
        .collect();
    std::fs::write(&file, services).unwrap();
    let f = file.to_str().unwrap();
    let out = env.daemonic(&["up", "-f", f, "--timeout", "60s"]);
    assert_eq!(out.status.code(), Some(0), "{}", text(&out));
    let list = env.daemonic(&["list"]);
    assert!(list.status.success(), "{}", text(&list));
    let rows = String::from_utf8_lossy(&list.stdout).lines().count();
    assert_eq!(rows, 301, "a header and 300 rows: {}", text(&list));
    let out = env.daemonic(&["down", "-f", f, "--timeout", "60s"]);
    assert!(out.status.success(), "{}", text(&out));
}

/// The issue's project end to end: redis (ready by tcp, healthy by its own ping), a
/// migration one-shot, a web server that waits for `db = "healthy"` and `migrate =
/// "completed-successfully"`, and three workers; `up` in dependency order, `list --all`,
/// then an edit of `instances` that touches only instances.
#[test]
fn a_redis_project_with_a_migration_a_web_server_and_three_workers() {
    if std::process::Command::new("redis-server")
        .arg("--version")
        .output()
        .is_err()
    {
        eprintln!("skipping: redis-server is not installed (Debian package redis-server)");
        return;
    }
    let env = Env::new("redis-project");
    let sleeper = env::fixture("sleeper");
    let port = std::net::TcpListener::bind("127.0.0.1:0")
        .unwrap()
        .local_addr()
        .unwrap()
        .port();
    std::fs::write(env.dir.join(".env"), format!("DB_PORT={port}\n")).unwrap();
    let file = env.dir.join("daemonic.toml");
    let write = |workers: u32| {
        std::fs::write(
            &file,
            format!(
                "[services.db]\ncommand = \"redis-server --port ${{DB_PORT}} --bind 127.0.0.1 --save '' --appendonly no\"\n\
                 ready = \"tcp:127.0.0.1:${{DB_PORT}}\"\nreadiness = \"exec:redis-cli -p ${{DB_PORT}} ping\"\nreadiness-interval = \"200ms\"\n\n\
                 [services.migrate]\ntype = \"oneshot\"\ncommand = [\"redis-cli\", \"-p\", \"${{DB_PORT}}\", \"set\", \"schema\", \"1\"]\ndepends-on = {{ db = \"healthy\" }}\n\n\
                 [services.web]\ncommand = [{sleeper:?}]\ndepends-on = {{ db = \"healthy\", migrate = \"completed-successfully\" }}\n\n\
                 [services.worker]\ninstances = {workers}\ncommand = [\"sh\", \"-c\", \"echo worker ${{DAEMONIC_INSTANCE}}; exec {sleeper}\"]\ndepends-on = [\"web\"]\n"
            ),
        )
        .unwrap()
    };
    write(3);
    let f = file.to_str().unwrap();
    let out = env.daemonic(&["up", "-f", f, "--timeout", "60s"]);
    assert_eq!(out.status.code(), Some(0), "{}", text(&out));
    let lines = text(&out);
    let at = |what: &str| {
        lines
            .find(what)
            .unwrap_or_else(|| panic!("{what}: {lines}"))
    };
    assert!(at("db: ready") < at("migrate: completed"), "{lines}");
    assert!(at("migrate: completed") < at("web: ready"), "{lines}");
    assert!(at("web: ready") < at("worker.3: ready"), "{lines}");
    let schema = std::process::Command::new("redis-cli")
        .args(["-p", &port.to_string(), "get", "schema"])
        .output()
        .unwrap();
    assert_eq!(
        String::from_utf8_lossy(&schema.stdout).trim(),
        "1",
        "the migration ran"
    );
    let all = String::from_utf8(env.daemonic(&["list", "--all"]).stdout).unwrap();
    for row in [
        "db ",
        "migrate ",
        "web ",
        "worker.1 ",
        "worker.2 ",
        "worker.3 ",
    ] {
        assert!(all.lines().any(|l| l.starts_with(row)), "{row}: {all}");
    }
    assert!(
        all.lines()
            .any(|l| l.starts_with("migrate") && l.contains("completed")),
        "{all}"
    );
    let web = env.child_pid("web");
    let worker1 = env.child_pid("worker.1");
    write(2);
    let out = env.daemonic(&["up", "-f", f, "--timeout", "60s"]);
    assert_eq!(out.status.code(), Some(0), "{}", text(&out));
    assert!(
        text(&out).contains("removed, stopped: worker.3"),
        "{}",
        text(&out)
    );
    assert_eq!(env.child_pid("web"), web, "web untouched");
    assert_eq!(env.child_pid("worker.1"), worker1, "worker.1 untouched");
    let out = env.daemonic(&["down", "-f", f, "--timeout", "60s"]);
    assert!(out.status.success(), "{}", text(&out));
}
