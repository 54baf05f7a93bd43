use std::path::Path;

use super::*;

const FILE: &str = "/srv/shop/daemonic.toml";

fn load_text(text: &str) -> Result<Config, Vec<Diagnostic>> {
    let mut sink = Sink::new(Path::new(FILE), text);
    match parse(Path::new(FILE), text, &mut sink) {
        Some(c) if sink.found.is_empty() => Ok(c),
        _ => Err(sink.found),
    }
}

fn errors(text: &str) -> Vec<String> {
    load_text(text)
        .expect_err("the file is wrong")
        .iter()
        .map(ToString::to_string)
        .collect()
}

#[test]
fn keys_are_the_flags_of_start_with_defaults_and_platform_tables_under_them() {
    let c = load_text(
        r#"
[defaults]
restart = "on-failure"
stop-timeout = "5s"
env = { A = "1" }

[defaults.linux]
stop-timeout = "7s"

[services.db]
command = "sleep 60"
ready = "tcp:6380"

[services.web]
command = ["sleep", "60"]
depends-on = ["db"]
restart = "always"
backoff-jitter = true
success-exit-codes = [0, 143]
env = { B = 2 }
env-file = "-web.env"

[services.web.macos]
stop-signal = "INT"
"#,
    )
    .unwrap();
    assert_eq!(c.project, "shop");
    let web = c.get("web").unwrap().args.clone();
    assert_eq!(web.restart.as_str(), "always");
    assert!(web.backoff_jitter);
    assert_eq!(web.success_exit_codes, [0, 143]);
    assert_eq!(
        web.env,
        [("A".into(), "1".into()), ("B".into(), "2".into())]
    );
    assert_eq!(web.env_file, [Path::new("-/srv/shop/web.env")]);
    assert_eq!(web.dir.as_deref(), Some(Path::new("/srv/shop")));
    if cfg!(target_os = "linux") {
        assert_eq!(web.stop_timeout, std::time::Duration::from_secs(7));
        assert_eq!(
            web.stop_signal,
            daemonic::Signal::SIGTERM,
            "macos table ignored"
        );
    }
    let db = c.get("db").unwrap().args.clone();
    assert_eq!(db.restart.as_str(), "on-failure");
    assert_eq!(c.start_order(), ["db", "web"]);
    assert_eq!(c.with_dependencies(&["web".into()]).unwrap(), ["db", "web"]);
    assert_eq!(c.with_dependencies(&["db".into()]).unwrap(), ["db"]);
    assert!(
        c.with_dependencies(&["wbe".into()])
            .unwrap_err()
            .to_string()
            .contains("did you mean `web`?")
    );
}

#[test]
fn a_misspelled_key_is_reported_at_its_line_and_column_with_a_hint() {
    let e = errors("[services.web]\ncommand = \"sleep 1\"\n  restrat = \"always\"\n");
    assert_eq!(
        e,
        [format!(
            "{FILE}:3:3: unknown key `restrat` in a service\n  hint: did you mean `restart`?"
        )]
    );
}

#[test]
fn a_dependency_cycle_is_reported_once_where_it_starts() {
    let e = errors(
        r#"[services.a]
command = "sleep 1"
depends-on = ["b"]
[services.b]
command = "sleep 1"
depends-on = ["c"]
[services.c]
command = "sleep 1"
depends-on = ["a"]
"#,
    );
    assert_eq!(e, [format!("{FILE}:3:15: dependency cycle: a → b → c → a")]);
}

#[test]
fn every_error_is_reported_at_once() {
    let e = errors(
        r#"[defaults]
stop_timeout = "5s"

[services.web]
command = "no-such-program-anywhere --x"
restart = "sometimes"
grace = "soon"
backoff-jitter = "yes"
depends-on = ["dbb"]
user = "no-such-user-here"

[services.db]
command = 42

[servics.x]
"#,
    );
    let text = e.join("\n");
    for expected in [
        "2:1: unknown key `stop_timeout` in [defaults]\n  hint: did you mean `stop-timeout`?",
        "6:11: `restart`: invalid value \"sometimes\"",
        "7:9: `grace`: invalid duration \"soon\"",
        "8:18: `backoff-jitter` is true or false, not a string",
        "9:15: `depends-on` names an unknown service `dbb`\n  hint: did you mean `db`?",
        "10:8: `user`: no user named `no-such-user-here` on this system",
        "13:11: `command` is a string or an array of strings, not an integer",
        "15:2: unknown key `servics` at the top level\n  hint: did you mean `services`?",
        "5:11: service `web`: program `no-such-program-anywhere` not found in PATH",
    ] {
        assert!(text.contains(expected), "missing {expected:?} in:\n{text}");
    }
}

#[test]
fn syntax_errors_point_at_the_place() {
    let e = errors("[services.web]\ncommand = \"sleep 1\nrestart = 1\n");
    assert!(e[0].starts_with(&format!("{FILE}:2:")), "{e:?}");
}

#[test]
fn a_program_with_a_slash_is_relative_to_the_files_directory() {
    let e = errors("[services.web]\ncommand = \"./bin/web\"\n");
    assert!(
        e[0].contains("/srv/shop/bin/web: No such file or directory"),
        "{e:?}"
    );
}

#[test]
fn an_env_file_that_cannot_be_read_or_parsed_fails_the_check_but_an_optional_one_may_be_missing() {
    let dir = std::env::temp_dir().join(format!("daemonic-config-env-{}", std::process::id()));
    std::fs::create_dir_all(&dir).unwrap();
    std::fs::write(dir.join("bad.env"), "A=1\nbad line\n").unwrap();
    let file = dir.join("daemonic.toml");
    let text = "[services.a]\ncommand = \"sleep 1\"\nenv-file = [\"bad.env\", \"-missing.env\"]\n";
    let mut sink = Sink::new(&file, text);
    parse(&file, text, &mut sink);
    let errors: Vec<String> = sink.found.iter().map(ToString::to_string).collect();
    std::fs::remove_dir_all(&dir).unwrap();
    assert_eq!(errors.len(), 1, "{errors:?}");
    assert!(
        errors[0].ends_with("bad.env:2: expected KEY=VALUE, found \"bad line\""),
        "{errors:?}"
    );
}

#[test]
fn a_service_that_depends_on_itself_is_one_error_not_also_a_cycle() {
    let e = errors("[services.a]\ncommand = \"sleep 1\"\ndepends-on = [\"a\"]\n");
    assert_eq!(e, [format!("{FILE}:3:15: service `a` depends on itself")]);
}

/// The start order as it was first defined: passes over the file, each taking every
/// service whose dependencies are taken. Quadratic or worse; the reference for the linear
/// [`Config::start_order`].
fn start_order_by_passes(c: &Config) -> Vec<String> {
    let mut done: Vec<String> = Vec::new();
    while done.len() < c.services.len() {
        for d in &c.services {
            if !done.contains(&d.name) && d.depends_on.iter().all(|p| done.contains(p)) {
                done.push(d.name.clone());
            }
        }
    }
    done
}

#[test]
fn the_linear_start_order_is_the_order_of_passes_over_the_file() {
    // Random acyclic graphs (an edge always goes from a higher to a lower number, and the
    // services are written in a shuffled order), from a fixed seed.
    let mut seed: u64 = 0x9e37_79b9_7f4a_7c15;
    let mut next = move |bound: u64| {
        seed ^= seed << 13;
        seed ^= seed >> 7;
        seed ^= seed << 17;
        seed % bound
    };
    for round in 0..200 {
        let n = 1 + next(25) as usize;
        let mut order: Vec<usize> = (0..n).collect();
        for i in (1..n).rev() {
            order.swap(i, next(i as u64 + 1) as usize);
        }
        let mut text = String::new();
        for &i in &order {
            let deps: Vec<String> = (0..i)
                .filter(|_| next(4) == 0)
                .map(|d| format!("\"s{d}\""))
                .collect();
            text += &format!(
                "[services.s{i}]\ncommand = \"sleep 1\"\ndepends-on = [{}]\n",
                deps.join(", ")
            );
        }
        let c = load_text(&text).unwrap_or_else(|e| panic!("round {round}: {e:?}\n{text}"));
        assert_eq!(
            c.start_order(),
            start_order_by_passes(&c),
            "round {round}:\n{text}"
        );
    }
}

#[test]
fn a_chain_written_backwards_starts_from_its_end() {
    let mut text = String::new();
    for i in 0..2000 {
        text += &format!("[services.s{i}]\ncommand = \"sleep 1\"\n");
        if i < 1999 {
            text += &format!("depends-on = [\"s{}\"]\n", i + 1);
        }
    }
    let c = load_text(&text).unwrap();
    let order = c.start_order();
    assert_eq!(order.first().map(String::as_str), Some("s1999"));
    assert_eq!(order.last().map(String::as_str), Some("s0"));
    assert_eq!(c.with_dependencies(&["s1990".into()]).unwrap().len(), 10);
}

#[test]
fn instances_make_one_service_each_with_its_number_in_command_env_and_paths() {
    let c = load_text(
        r#"
[services.web]
instances = 3
command = "sleep 6${DAEMONIC_INSTANCE}"
env = { PORT = "808${DAEMONIC_INSTANCE}" }
log-file = "logs/web-${DAEMONIC_INSTANCE}.log"

[services.proxy]
command = "sleep 60"
depends-on = { web = "started" }
"#,
    )
    .unwrap();
    let names: Vec<&str> = c.services.iter().map(|d| d.name.as_str()).collect();
    assert_eq!(names, ["web.1", "web.2", "web.3", "proxy"]);
    let two = c.get("web.2").unwrap();
    assert_eq!(two.command, ["sleep", "62"]);
    assert!(
        two.flags.contains(&"--env=PORT=8082".to_string()),
        "{:?}",
        two.flags
    );
    assert!(two.flags.contains(&"--env=DAEMONIC_INSTANCE=2".to_string()));
    assert!(
        two.flags
            .contains(&"--log-file=/srv/shop/logs/web-2.log".to_string())
    );
    let proxy = c.get("proxy").unwrap();
    assert_eq!(proxy.depends_on, ["web.1", "web.2", "web.3"]);
    assert_eq!(proxy.conditions, [Condition::Started; 3]);
    assert_eq!(
        c.with_dependencies(&["web".to_string()]).unwrap(),
        ["web.1", "web.2", "web.3"]
    );
}

#[test]
fn a_bad_instances_value_is_reported_at_its_place() {
    for (value, why) in [
        ("0", "`instances` is from 1 to 1000, not 0"),
        ("-2", "`instances` is from 1 to 1000, not -2"),
        ("1001", "`instances` is from 1 to 1000, not 1001"),
        (
            "2.5",
            "`instances` is an integer from 1 to 1000, not a number",
        ),
        (
            "\"3\"",
            "`instances` is an integer from 1 to 1000, not a string",
        ),
    ] {
        let text = format!("[services.web]\ncommand = \"sleep 60\"\ninstances = {value}\n");
        assert_eq!(errors(&text), [format!("{FILE}:3:13: {why}")], "{value}");
    }
    let text = "[defaults]\ninstances = 2\n[services.web]\ncommand = \"sleep 60\"\n";
    assert!(errors(text)[0].starts_with(&format!("{FILE}:2:1: `instances` belongs")));
    let text = "[services.web]\ncommand = \"sleep 60\"\ninstances = 2\n[services.\"web.2\"]\ncommand = \"sleep 60\"\n";
    assert_eq!(
        errors(text),
        [format!(
            "{FILE}:1:11: instance `web.2` of `web` is also a service of its own"
        )]
    );
}

#[test]
fn sockets_are_a_table_of_names_or_an_array_and_wrong_ones_point_at_their_value() {
    let c = load_text(
        r#"
[services.web]
command = "sleep 60"
socket = { web = "tcp:127.0.0.1:8080,backlog=64", admin = "unix:/run/web/admin.sock" }

[services.dns]
command = "sleep 60"
socket = ["dns=udp:53"]
"#,
    )
    .unwrap();
    let names = |s: &str| -> Vec<String> {
        let args = &c.get(s).unwrap().args;
        args.sockets
            .sockets
            .iter()
            .map(|s| s.name.clone())
            .collect()
    };
    assert_eq!(names("web"), ["web", "admin"]);
    assert_eq!(names("dns"), ["dns"]);
    let e = errors(
        r#"
[services.web]
command = "sleep 60"
socket = { web = "tcp:http" }
"#,
    );
    assert_eq!(e.len(), 1, "{e:?}");
    assert!(e[0].contains(":4:"), "{e:?}");
    assert!(e[0].contains("port \"http\""), "{e:?}");
}
