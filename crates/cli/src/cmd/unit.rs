//! `daemonic unit NAME [-f FILE]`: print the systemd unit of a configured service.
//! `daemonic unit --up [-f FILE]`: print the unit of the file's supervisor.
//! `daemonic unit --launchd NAME [-f FILE]`: print a service's launchd plist instead (on
//! any system: to review or package it; see `docs/platforms.md`).
//!
//! The mapping and the sandboxing are described in [`crate::units`]; the unit is printed
//! to stdout, nothing is installed (that is `daemonic install`). Also the shared part of
//! `install`: which units a command line means, and their text.

use std::path::{Path, PathBuf};

use anyhow::{Context as _, Result, bail};

use crate::config::{self, Config, Def};
use crate::units::{self, Host, Scope, systemd};

#[derive(clap::Args, Debug)]
pub struct Args {
    #[command(flatten)]
    pub what: What,
    #[command(flatten)]
    pub target: Target,
    /// Print the service's launchd plist (a daemon in /Library/LaunchDaemons; with --user
    /// an agent in ~/Library/LaunchAgents) instead of a systemd unit.
    #[arg(long, conflicts_with = "up")]
    pub launchd: bool,
    /// Print the service's .socket units (one per `socket`; see docs/sockets.md) instead
    /// of its .service unit.
    #[arg(long, conflicts_with_all = ["up", "launchd"])]
    pub sockets: bool,
}

/// Which unit: a service of a config file, or the file's supervisor.
#[derive(clap::Args, Debug)]
pub struct What {
    /// The service (a [services.NAME] table of the config file).
    #[arg(
        value_name = "NAME",
        required_unless_present = "up",
        conflicts_with = "up"
    )]
    pub name: Option<String>,
    /// The config file.
    #[arg(short = 'f', long = "file", default_value = config::DEFAULT_FILE, value_name = "FILE")]
    pub file: PathBuf,
    /// The unit of the file's own supervisor instead (`daemonic run -f FILE`: all its
    /// services in one unit, daemonic-PROJECT.service).
    #[arg(long)]
    pub up: bool,
}

/// Which manager, and the binary a unit runs.
#[derive(clap::Args, Debug)]
pub struct Target {
    /// A unit for your user's manager (systemctl --user; WantedBy=default.target)
    /// [default: a system unit as root, a user unit otherwise].
    #[arg(long, conflicts_with = "system")]
    pub user: bool,
    /// A unit for the system manager (WantedBy=multi-user.target).
    #[arg(long)]
    pub system: bool,
    /// The daemonic binary a unit runs when it needs `daemonic run` [default: this one].
    #[arg(long, value_name = "PATH")]
    pub daemonic: Option<PathBuf>,
}

impl Target {
    pub fn scope(&self) -> Scope {
        match (self.user, self.system) {
            (true, _) => Scope::User,
            (_, true) => Scope::System,
            _ => Scope::default_for_me(),
        }
    }
}

/// One generated unit: its file name and text.
pub struct Generated {
    pub file_name: String,
    pub text: String,
    /// Why installing it would go wrong: its name clashes with a packaged unit, an alias
    /// or a state directory; its dynamic user could not read a path it needs.
    pub problems: Vec<String>,
}

impl Generated {
    fn new(file_name: String, text: String, scope: Scope) -> Generated {
        let state: Vec<String> = text
            .lines()
            .filter_map(|l| l.strip_prefix("StateDirectory="))
            .flat_map(|v| v.split_whitespace().map(str::to_string))
            .collect();
        let problems = systemd::clashes(&file_name, scope, &state);
        Generated {
            file_name,
            text,
            problems,
        }
    }
}

pub fn run(a: Args) -> Result<u8> {
    let (config, _) = load(&a.what)?;
    if a.launchd {
        print!("{}", launchd_plist(&config, &a)?.text);
        return Ok(0);
    }
    let units = generate(&config, &a.what, &a.target, false)?;
    let unit = units
        .last()
        .expect("generate returns the unit asked for last");
    let sockets: Vec<&Generated> = units
        .iter()
        .filter(|u| u.file_name.ends_with(".socket"))
        .collect();
    let shown = if a.sockets {
        sockets.clone()
    } else {
        vec![unit]
    };
    for (i, u) in shown.iter().enumerate() {
        for why in &u.problems {
            eprintln!(
                "warning: {}: {why}; `daemonic install` refuses it (--force installs it anyway)",
                u.file_name
            );
        }
        if i > 0 {
            println!();
        }
        print!("{}", u.text);
    }
    if !a.sockets && !sockets.is_empty() {
        let names: Vec<&str> = sockets.iter().map(|u| u.file_name.as_str()).collect();
        eprintln!(
            "note: with its socket unit{} {} (`daemonic unit {} --sockets` prints {}; `install` writes {})",
            if names.len() == 1 { "" } else { "s" },
            names.join(", "),
            a.what.name.as_deref().unwrap_or_default(),
            if names.len() == 1 { "it" } else { "them" },
            if names.len() == 1 { "it" } else { "them" },
        );
    }
    Ok(0)
}

/// Reads the config file `what` names (checked as `daemonic check` does).
pub fn load(what: &What) -> Result<(Config, PathBuf)> {
    let config = config::load(&what.file)?;
    let file = config.file.clone();
    Ok((config, file))
}

/// The units `what` means, the one asked for last; with `dependencies`, first the units
/// of the services it depends on (directly or not), in start order.
pub fn generate(
    config: &Config,
    what: &What,
    target: &Target,
    dependencies: bool,
) -> Result<Vec<Generated>> {
    let exe = match &target.daemonic {
        Some(p) => std::path::absolute(p).with_context(|| format!("{}", p.display()))?,
        None => std::env::current_exe().context("find the daemonic binary (current_exe)")?,
    };
    let cx = Host {
        daemonic: &exe,
        config: &config.file,
        scope: target.scope(),
    };
    let Some(name) = &what.name else {
        return Ok(vec![Generated::new(
            systemd::file_unit_name(&config.project),
            systemd::file_unit(config, &cx)?,
            cx.scope,
        )]);
    };
    // Also the check that `name` is a service of the file (with a "did you mean").
    let with_dependencies = config.with_dependencies(std::slice::from_ref(name))?;
    let names = if dependencies {
        with_dependencies
    } else {
        vec![name.clone()]
    };
    let mut out = Vec::new();
    for n in names {
        let Some(def) = config.get(&n) else {
            bail!("no service named {n:?} in {}", config.file.display());
        };
        let def = with_program_path(def);
        let specs = def.args.sockets.sockets.clone();
        for spec in &specs {
            out.push(Generated::new(
                systemd::sockets::socket_unit_name(&n, spec, &specs),
                systemd::sockets::socket_unit(&n, spec, &config.file),
                cx.scope,
            ));
        }
        let mut unit = Generated::new(
            systemd::unit_name(&n),
            systemd::service_unit(&def, &cx).with_context(|| n.clone())?,
            cx.scope,
        );
        unit.problems.extend(systemd::unreadable(&def, &cx)?);
        out.push(unit);
    }
    // The one asked for is last in start order, after what it depends on.
    Ok(out)
}

/// `def` with its program found in `PATH` (the service's own, if its `env` sets one), as
/// an expert writes `ExecStart=/usr/bin/redis-server`; left as is when not found.
fn with_program_path(def: &Def) -> Def {
    let mut def = def.clone();
    if let Some(program) = def.command.first_mut()
        && !program.contains('/')
    {
        let path = def
            .flags
            .iter()
            .filter_map(|f| f.strip_prefix("--env=PATH="))
            .next_back()
            .map(str::to_string)
            .unwrap_or_else(|| std::env::var("PATH").unwrap_or_default());
        let found = std::env::split_paths(&path)
            .filter(|d| d.is_absolute())
            .map(|d| d.join(&*program))
            .find(|c| is_executable(c));
        if let Some(found) = found {
            *program = found.display().to_string();
        }
    }
    def
}

fn is_executable(path: &Path) -> bool {
    use std::os::unix::fs::PermissionsExt;
    std::fs::metadata(path).is_ok_and(|m| m.is_file() && m.permissions().mode() & 0o111 != 0)
}

/// The unit file name `what` means, without generating it (`uninstall NAME` needs no
/// config file).
pub fn file_name(what: &What) -> Result<String> {
    match &what.name {
        Some(name) => {
            crate::state_dir::check_name(name)?;
            Ok(systemd::unit_name(name))
        }
        None => Ok(systemd::file_unit_name(&config::load(&what.file)?.project)),
    }
}

/// The launchd job of the service `a` names.
fn launchd_plist(config: &Config, a: &Args) -> Result<units::launchd::Plist> {
    use units::launchd::{self, Scope as Launchd};
    let name = a.what.name.as_deref().context("a service NAME")?;
    let def = config
        .get(name)
        .with_context(|| format!("no service named {name:?} in {}", config.file.display()))?;
    let scope = if a.target.user {
        Launchd::User
    } else {
        Launchd::System
    };
    let home = std::env::var_os("HOME")
        .map(PathBuf::from)
        .unwrap_or_default();
    let daemonic = match &a.target.daemonic {
        Some(p) => p.clone(),
        None => std::env::current_exe().context("find the daemonic binary")?,
    };
    let ctx = launchd::PlistHost {
        daemonic,
        scope,
        default_log: scope.default_log(&home, name),
    };
    launchd::plist(def, &ctx)
}
