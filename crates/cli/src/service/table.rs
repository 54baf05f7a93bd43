//! The whole table, in `--help` order: every group's options as options of
//! [`ServiceArgs`], and what is built from it — the flags of `run` and `start` (the
//! [`clap::Args`] implementation of [`ServiceArgs`]) and a service from the config file's
//! values ([`ServiceArgs::from_values`]).

use std::ffi::OsString;
use std::sync::LazyLock;

use clap::{Arg, ArgAction, ArgMatches, Command};

use super::args::{self, ServiceArgs};
use super::options::{Blank, Opt, Shape};
use super::{health, limits, log, privileges, sockets, systemd};

/// Every option of a service, in `--help` order.
pub fn all() -> &'static [Opt<ServiceArgs>] {
    static TABLE: LazyLock<Vec<Opt<ServiceArgs>>> = LazyLock::new(|| {
        let mut t = args::general();
        t.extend(args::restarts());
        let health = health::options().into_iter();
        t.extend(health.map(|o| o.within(|a: &mut ServiceArgs| &mut a.health)));
        let log = log::options().into_iter();
        t.extend(log.map(|o| o.within(|a: &mut ServiceArgs| &mut a.log)));
        let limits = limits::options().into_iter();
        t.extend(limits.map(|o| o.within(|a: &mut ServiceArgs| &mut a.limits)));
        let privileges = privileges::options().into_iter();
        t.extend(privileges.map(|o| o.within(|a: &mut ServiceArgs| &mut a.privileges)));
        let sockets = sockets::options().into_iter();
        t.extend(sockets.map(|o| o.within(|a: &mut ServiceArgs| &mut a.sockets)));
        let unit = systemd::options().into_iter();
        t.extend(unit.map(|o| o.within(|a: &mut ServiceArgs| &mut a.unit)));
        t.extend(args::environment());
        t
    });
    &TABLE
}

/// The option `name` (a flag without `--`, or a config key).
pub fn find(name: &str) -> Option<&'static Opt<ServiceArgs>> {
    all().iter().find(|o| o.name == name)
}

/// The positional `-- CMD ARGS…` (not an option: the config file's `command`).
fn command_arg() -> Arg {
    Arg::new("command")
        .help("The program and its arguments")
        .value_name("CMD")
        .action(ArgAction::Append)
        .num_args(1..)
        .value_parser(clap::value_parser!(OsString))
        .last(true)
}

impl clap::Args for ServiceArgs {
    fn augment_args(cmd: Command) -> Command {
        all()
            .iter()
            .fold(cmd, |cmd, o| cmd.arg(o.arg()))
            .arg(command_arg())
    }

    fn augment_args_for_update(cmd: Command) -> Command {
        Self::augment_args(cmd)
    }
}

impl clap::FromArgMatches for ServiceArgs {
    fn from_arg_matches(m: &ArgMatches) -> Result<Self, clap::Error> {
        let mut a = ServiceArgs::blank();
        for o in all() {
            let values: Vec<&str> = match o.shape {
                Shape::Switch => vec![if m.get_flag(o.name) { "true" } else { "false" }],
                // The defaults are among them, as clap fills them in.
                Shape::One | Shape::Many => m
                    .get_many::<String>(o.name)
                    .map(|v| v.map(String::as_str).collect())
                    .unwrap_or_default(),
            };
            for v in values {
                (o.set)(&mut a, v).map_err(|why| {
                    clap::Error::raw(
                        clap::error::ErrorKind::ValueValidation,
                        format!("--{}: {why}\n", o.name),
                    )
                })?;
            }
        }
        a.command = m
            .get_many::<OsString>("command")
            .map(|v| v.cloned().collect())
            .unwrap_or_default();
        Ok(a)
    }

    fn update_from_arg_matches(&mut self, m: &ArgMatches) -> Result<(), clap::Error> {
        *self = Self::from_arg_matches(m)?;
        Ok(())
    }
}

impl ServiceArgs {
    /// The options `values` gives (each key's texts, as written: a list option's text may
    /// hold several values), the others at their defaults. The error names the key.
    pub fn from_values<'v>(values: impl Fn(&str) -> Vec<&'v str>) -> Result<ServiceArgs, String> {
        let mut a = ServiceArgs::blank();
        for o in all() {
            let mut texts = values(o.name);
            if texts.is_empty() {
                texts.extend(o.default);
            }
            for part in texts.into_iter().flat_map(|t| o.parts(t)) {
                (o.set)(&mut a, part).map_err(|why| format!("`{}`: {why}", o.name))?;
            }
        }
        Ok(a)
    }
}

impl Default for ServiceArgs {
    /// Every option at its default, no command.
    fn default() -> ServiceArgs {
        ServiceArgs::from_values(|_| Vec::new()).expect("the defaults are valid")
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use clap::Parser;
    use std::collections::HashSet;
    use std::path::Path;
    use std::time::Duration;

    use crate::service::health::Health;
    use crate::service::log::{LogCompress, LogConfig};

    #[test]
    fn every_option_once_with_a_valid_default() {
        let mut seen = HashSet::new();
        for o in all() {
            assert!(seen.insert(o.name), "--{} twice", o.name);
            assert!(!o.help.is_empty(), "--{} has no help", o.name);
            assert_eq!(
                o.shape == Shape::Switch,
                o.value_name.is_empty(),
                "{}",
                o.name
            );
            if let Some(d) = o.default {
                assert_eq!(o.check(d), Ok(()), "--{}", o.name);
            }
        }
        // The table is what clap sees: it refuses two flags of one name.
        <ServiceArgs as clap::Args>::augment_args(Command::new("x")).debug_assert();
    }

    /// What a unit that runs `daemonic run` says itself (and so does not pass on): the
    /// list `units::systemd` kept before the table held the mapping.
    #[test]
    fn the_unit_says_limits_environment_and_account_itself() {
        use crate::service::options::Systemd;
        let said: Vec<&str> = all()
            .iter()
            .filter(|o| matches!(o.systemd, Systemd::Said(_)))
            .map(|o| o.name)
            .collect();
        assert_eq!(
            said,
            [
                "memory-max",
                "memory-high",
                "cpu-max",
                "tasks-max",
                "user",
                "group",
                "supplementary-groups",
                "keep-caps",
                "no-new-privs",
                "chroot",
                "umask",
                "dir",
                "env",
                "env-file",
            ]
        );
        assert!(
            all()
                .iter()
                .all(|o| o.name.starts_with("unit-") == (o.systemd == Systemd::Unit))
        );
    }

    #[test]
    fn values_from_the_table_and_from_flags_agree() {
        let flags = Cli::try_parse_from([
            "x",
            "--restart",
            "on-failure",
            "--success-exit-codes",
            "0,143",
            "--backoff-jitter",
            "--env",
            "A=1",
            "--env",
            "B=2",
            "--",
            "prog",
        ])
        .unwrap()
        .service;
        let table = ServiceArgs::from_values(|k| match k {
            "restart" => vec!["on-failure"],
            "success-exit-codes" => vec!["0,143"],
            "backoff-jitter" => vec!["true"],
            "env" => vec!["A=1", "B=2"],
            _ => Vec::new(),
        })
        .unwrap();
        assert_eq!(
            format!(
                "{:?}",
                ServiceArgs {
                    command: Vec::new(),
                    ..flags
                }
            ),
            format!("{table:?}")
        );
        let e = ServiceArgs::from_values(|k| match k {
            "timeout" => vec!["soon"],
            _ => Vec::new(),
        })
        .unwrap_err();
        assert!(e.starts_with("`timeout`: invalid duration \"soon\""), "{e}");
    }

    #[derive(clap::Parser)]
    struct Cli {
        #[command(flatten)]
        service: ServiceArgs,
    }

    fn health(args: &[&str]) -> Result<Health, String> {
        let argv = std::iter::once("x").chain(args.iter().copied());
        Cli::try_parse_from(argv)
            .map(|c| c.service.health.into())
            .map_err(|e| e.to_string())
    }
    #[test]
    fn no_health_flags_no_checks() {
        assert_eq!(health(&[]).unwrap(), Health::default());
    }

    #[test]
    fn health_flags_resolve_to_checks_with_their_defaults() {
        let h = health(&[
            "--liveness",
            "tcp:6379",
            "--readiness",
            "http://127.0.0.1:8080/health#200",
            "--readiness-successes",
            "2",
            "--health-grace",
            "30s",
        ])
        .unwrap();
        let live = h.liveness.as_ref().unwrap();
        assert_eq!(live.probe.to_string(), "tcp:127.0.0.1:6379");
        assert_eq!(live.schedule.interval, Duration::from_secs(10));
        assert_eq!(live.schedule.timeout, Duration::from_secs(1));
        assert_eq!((live.rule.failures, live.rule.successes), (3, 1));
        let ready = h.readiness.as_ref().unwrap();
        assert_eq!((ready.rule.failures, ready.rule.successes), (3, 2));
        assert_eq!(h.grace, Duration::from_secs(30));
    }

    #[test]
    fn bad_health_values_are_named_with_the_accepted_forms() {
        let e = health(&["--liveness", "tcp:"]).unwrap_err();
        assert!(e.contains("invalid probe \"tcp:\": missing port"), "{e}");
        let e = health(&["--liveness-failures", "0"]).unwrap_err();
        assert!(
            e.contains("invalid count \"0\" (expected a whole number >= 1"),
            "{e}"
        );
        let e = health(&["--readiness-interval", "0s"]).unwrap_err();
        assert!(e.contains("expected more than 0"), "{e}");
        let e = health(&["--liveness-timeout", "soon"]).unwrap_err();
        assert!(e.contains("invalid duration \"soon\""), "{e}");
    }

    #[test]
    fn the_default_path_applies_only_without_log_file() {
        let a = Cli::parse_from(["x"]).service.log;
        let c = LogConfig::new(&a, "/d/web.log".into());
        assert_eq!(c.path, Path::new("/d/web.log"));
        assert_eq!(c.max_size, Some(10 << 20));
        assert_eq!(
            (c.keep, c.timestamps, c.compress),
            (5, false, LogCompress::None)
        );
        let a = Cli::parse_from([
            "x",
            "--log-file",
            "/l/a.log",
            "--log-max-size",
            "0",
            "--log-compress",
            "gzip",
            "--log-timestamps",
        ])
        .service
        .log;
        let c = LogConfig::new(&a, "/d/web.log".into());
        assert_eq!(c.path, Path::new("/l/a.log"));
        assert_eq!(c.max_size, None);
        assert!(c.timestamps);
        assert_eq!(c.compress, LogCompress::Gzip);
    }
}
