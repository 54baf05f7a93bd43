//! `daemonic.toml`: many services in one file, for `daemonic up`, `down`, `check` and
//! `run -f`.
//!
//! ```toml
//! project = "shop"            # optional; default: the name of the file's directory
//! main = "web"                # optional; whose exit status `run -f` exits with
//!
//! [defaults]                  # under every service; any service key
//! restart = "on-failure"
//! stop-timeout = "5s"
//!
//! [services.db]
//! command = "redis-server --port 6380 --save ''"
//! ready = "tcp:6380"
//!
//! [services.web]
//! command = ["./web", "--port", "8080"]
//! depends-on = ["db"]         # started once db is ready; stopped before db
//! env = { DB = "127.0.0.1:6380" }
//! env-file = "-web.env"       # a leading - makes it optional
//! ready = "http://127.0.0.1:8080/health"
//!
//! [services.web.linux]        # over the rest, on Linux only (also: macos)
//! stop-signal = "INT"
//! ```
//!
//! A service's keys are the long flags of `daemonic start`/`run` (see [`schema`]), plus
//! `command` (a string, split like a shell would without expanding anything, or an array
//! of words) and `depends-on`. Layers apply in this order, each over the one before:
//! `[defaults]`, `[defaults.<os>]`, the service, `[services.NAME.<os>]`; `env` and
//! `env-file` add up across layers, every other key replaces. Relative paths (`dir`,
//! files, a command with a `/`) are relative to the file's directory, which is also the
//! default `dir`.
//!
//! Loading checks everything it can — syntax, unknown keys (with a "did you mean"),
//! types, each value with the option's own parser (the service is built from the values
//! themselves: [`ServiceArgs::from_values`]), unknown dependencies and cycles, missing
//! programs, unknown users and groups — and reports *all* errors at once, each at its
//! `file:line:column` ([`Report`]).

mod check;
mod def;
pub mod diagnostic;
mod interpolate;
mod layers;
mod node;
mod procfile;
mod replicas;
pub mod schema;
mod words;

use std::collections::{BTreeMap, HashMap, HashSet};
use std::path::{Path, PathBuf};

use anyhow::{Context, Result, anyhow};
use toml::de::DeTable;

use crate::service::Kind;
pub use def::Def;
pub use diagnostic::{Diagnostic, Report};
use diagnostic::{Sink, did_you_mean};
use layers::{Layers, absolute_program, layers, string, table, unknown};
use node::{Span, Value};

/// The file `up`, `down` and `check` use unless `-f` names another.
pub const DEFAULT_FILE: &str = "daemonic.toml";

/// Platform tables, each applied on its platform only.
const PLATFORMS: &[&str] = &["linux", "macos"];
const TOP_LEVEL: &[&str] = &["project", "main", "defaults", "services"];

/// A loaded, checked config file.
#[derive(Debug, Clone)]
pub struct Config {
    /// The file, as an absolute path.
    pub file: PathBuf,
    /// The project's name, for people: `project = …`, or the file's directory's name.
    pub project: String,
    /// Which supervisor runs the file (`<state-dir>/up/<id>.pid`): the `project` when the
    /// file names one (files that give the same name share a supervisor, on purpose), else
    /// the directory's name and a hash of the file's absolute path, so that two files never
    /// share a supervisor by accident (`app-3f2a9c1e`).
    pub id: String,
    /// The service whose exit status is the supervisor's (in the foreground).
    pub main: Option<String>,
    /// In the order of the file.
    pub services: Vec<Def>,
    /// Each service's place in `services`, by name.
    index: HashMap<String, usize>,
    /// The instances of each replicated service (`instances = N`), by the name written.
    pub groups: HashMap<String, Vec<String>>,
}

/// What a service waits for of a dependency: `depends-on = ["db"]` means `ready`; the
/// table form names one per dependency, `depends-on = { db = "healthy", migrate =
/// "completed-successfully" }` (docker-compose's conditions).
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Condition {
    /// Its first child was spawned.
    Started,
    /// It is ready (its `ready` condition met, and its readiness check passing if it has
    /// one), or a one-shot has completed.
    Ready,
    /// Ready with its readiness check passing: it must have a `readiness` check.
    Healthy,
    /// A one-shot (`type = "oneshot"`) that completed: exited with a success status.
    CompletedSuccessfully,
}

impl Condition {
    pub const ALL: [Condition; 4] = [
        Condition::Started,
        Condition::Ready,
        Condition::Healthy,
        Condition::CompletedSuccessfully,
    ];

    /// As written in the file.
    pub fn as_str(self) -> &'static str {
        match self {
            Condition::Started => "started",
            Condition::Ready => "ready",
            Condition::Healthy => "healthy",
            Condition::CompletedSuccessfully => "completed-successfully",
        }
    }

    /// For "waiting for db to be healthy".
    pub fn waited(self) -> &'static str {
        match self {
            Condition::Started => "to start",
            Condition::Ready => "to be ready",
            Condition::Healthy => "to be healthy",
            Condition::CompletedSuccessfully => "to complete",
        }
    }
}

impl Config {
    /// `project`: the name the file gives, else `None` (the directory's name is used).
    fn new(
        file: PathBuf,
        project: Option<String>,
        main: Option<String>,
        services: Vec<Def>,
    ) -> Config {
        let base = file.parent().unwrap_or(Path::new("/"));
        let (project, id) = match project {
            Some(p) => (p.clone(), p),
            None => {
                let p = default_project(base);
                let id = format!("{}-{:08x}", p, path_hash(&file) as u32);
                (p, id)
            }
        };
        Config {
            file,
            id,
            project,
            main,
            index: services
                .iter()
                .enumerate()
                .map(|(i, d)| (d.name.clone(), i))
                .collect(),
            services,
            groups: HashMap::new(),
        }
    }

    pub fn get(&self, name: &str) -> Option<&Def> {
        self.position(name).map(|i| &self.services[i])
    }

    /// Where `name` is in [`services`](Self::services) (a hash lookup: files of thousands
    /// of services are checked and ordered in linear time).
    fn position(&self, name: &str) -> Option<usize> {
        self.index.get(name).copied()
    }

    /// `names` and everything they depend on, directly or not, in start order (every
    /// service after what it depends on); all services when `names` is empty. An unknown
    /// name is an error.
    pub fn with_dependencies(&self, names: &[String]) -> Result<Vec<String>> {
        let mut wanted: HashSet<&str> = HashSet::new();
        let mut todo: Vec<&str> = if names.is_empty() {
            self.services.iter().map(|d| d.name.as_str()).collect()
        } else {
            names.iter().map(String::as_str).collect()
        };
        while let Some(name) = todo.pop() {
            // `web` of `instances = N`: each of its instances.
            if let Some(instances) = self.groups.get(name) {
                todo.extend(instances.iter().map(String::as_str));
                continue;
            }
            let def = self.get(name).ok_or_else(|| {
                let hint = did_you_mean(name, self.services.iter().map(|d| d.name.as_str()));
                anyhow!(
                    "no service named {name:?} in {}{}",
                    self.file.display(),
                    hint.map_or(String::new(), |h| format!("; {h}"))
                )
            })?;
            if wanted.insert(name) {
                todo.extend(def.depends_on.iter().map(String::as_str));
            }
        }
        Ok(self
            .start_order()
            .into_iter()
            .filter(|n| wanted.contains(n.as_str()))
            .collect())
    }

    /// The services `name` means: the instances of a replicated service, else itself.
    pub fn instances(&self, name: &str) -> Vec<String> {
        self.groups
            .get(name)
            .cloned()
            .unwrap_or_else(|| vec![name.to_string()])
    }

    /// `names` as one-shots (`type = "oneshot"`), for `up --rerun`: a replicated one as
    /// each of its instances. A name that is not a one-shot of the file is an error.
    pub fn one_shots(&self, names: &[String]) -> Result<Vec<String>> {
        let mut out = Vec::new();
        for name in names {
            let each = match self.groups.get(name) {
                Some(instances) => instances.clone(),
                None => vec![name.clone()],
            };
            for n in each {
                let def = self.get(&n).ok_or_else(|| {
                    anyhow!("--rerun: no service named {n:?} in {}", self.file.display())
                })?;
                if def.args.kind != Kind::Oneshot {
                    return Err(anyhow!(
                        "--rerun {n}: not a one-shot (`type = \"oneshot\"`); `restart {n}` restarts a service"
                    ));
                }
                out.push(n);
            }
        }
        Ok(out)
    }

    /// Every service, each after the services it depends on (file order otherwise).
    ///
    /// The order is that of repeated passes over the file, each taking every service whose
    /// dependencies are taken (earlier passes, or earlier in this pass) — computed without
    /// the passes: a service's pass is the latest of its dependencies' passes, one later for
    /// a dependency further down the file (it is taken after the service in that pass), and
    /// services are sorted by (pass, place in the file). Linear in services and edges, plus
    /// the sort.
    pub fn start_order(&self) -> Vec<String> {
        let n = self.services.len();
        let mut pass: Vec<Option<usize>> = vec![None; n];
        // Waiting for its dependencies: everything above it on the stack depends on it.
        let mut expanding = vec![false; n];
        for root in 0..n {
            // Depth first without recursion (a chain may be thousands long).
            let mut stack = vec![root];
            while let Some(&i) = stack.last() {
                if pass[i].is_some() {
                    stack.pop();
                    continue;
                }
                let deps: Vec<usize> = self.services[i]
                    .depends_on
                    .iter()
                    .filter_map(|d| self.position(d))
                    .collect();
                let pending: Vec<usize> = deps
                    .iter()
                    .copied()
                    .filter(|&d| pass[d].is_none())
                    .collect();
                if pending.is_empty() {
                    let p = deps
                        .iter()
                        .map(|&d| pass[d].expect("done") + usize::from(d > i))
                        .max()
                        .unwrap_or(0);
                    pass[i] = Some(p);
                    stack.pop();
                } else {
                    assert!(
                        !expanding[i] && pending.iter().all(|&d| !expanding[d]),
                        "cycles are refused when loading"
                    );
                    expanding[i] = true;
                    stack.extend(pending);
                }
            }
        }
        let mut order: Vec<usize> = (0..n).collect();
        order.sort_by_key(|&i| (pass[i], i));
        order
            .into_iter()
            .map(|i| self.services[i].name.clone())
            .collect()
    }
}

/// Reads and checks `file`; the error is the whole [`Report`] when the file is wrong.
pub fn load(file: &Path) -> Result<Config> {
    let text = std::fs::read_to_string(file).with_context(|| format!("read {}", file.display()))?;
    let absolute = std::path::absolute(file).with_context(|| format!("{}", file.display()))?;
    let mut sink = Sink::new(file, &text);
    let config = if procfile::is_procfile(file) {
        Some(procfile::parse(&absolute, &text, &mut sink))
    } else {
        parse(&absolute, &text, &mut sink)
    };
    match config {
        Some(c) if sink.found.is_empty() => Ok(c),
        _ => Err(Report(sink.found).into()),
    }
}

/// Parses and checks `text` (the content of `file`); errors go to `sink`.
fn parse(file: &Path, text: &str, sink: &mut Sink<'_>) -> Option<Config> {
    let (root, errors) = DeTable::parse_recoverable(text);
    for e in &errors {
        let message = e.message().lines().next().unwrap_or("syntax error").trim();
        sink.error(e.span().unwrap_or(0..0), format!("TOML: {message}"));
    }
    if !errors.is_empty() {
        return None;
    }
    let mut root = node::table(root.get_ref());
    let base = file.parent().unwrap_or(Path::new("/")).to_path_buf();
    let replicas = interpolate_all(&mut root, &base, text, sink);
    let top = top_level(&root, &base, sink);
    if top.services.is_empty() && sink.found.is_empty() {
        sink.error(
            0..0,
            "no services: add a [services.NAME] table with a `command`",
        );
    }
    // Every name the file gives, even of a service with errors of its own.
    let names: Vec<String> = top.services.iter().map(|(n, _, _)| n.clone()).collect();
    let mut defs = Vec::new();
    let mut spans = BTreeMap::new();
    for (name, span, own) in top.services {
        let merged = top.defaults.merged_with(&own);
        if let Some((def, def_spans)) = service(&name, &span, merged, &replicas, &base, sink) {
            spans.insert(name, def_spans);
            defs.push(def);
        }
    }
    let project = top.project.map(|(p, span)| {
        if let Err(why) = crate::state_dir::check_name(&p) {
            sink.error(span, format!("`project`: {why:#}"));
        }
        p
    });
    let main_name = top.main.as_ref().map(|(m, _)| m.clone());
    let mut config = Config::new(file.to_path_buf(), project, main_name, defs);
    config.groups = replicas.groups;
    check::all(
        &config,
        &names,
        &spans,
        top.main.as_ref().map(|(_, s)| s.clone()),
        sink,
    );
    sink.found.sort_by_key(|d| (d.line, d.column));
    Some(config)
}

/// Expands `replicas` and `${VAR}` (the `.env` beside the file, each instance's number)
/// in the whole file, in place; the replica groups.
fn interpolate_all(
    root: &mut node::Table,
    base: &Path,
    text: &str,
    sink: &mut Sink<'_>,
) -> replicas::Replicas {
    let mut vars = interpolate::Vars::new(dotenv(base, sink));
    let mut replicas = replicas::Replicas::default();
    for e in &mut root.0 {
        match &mut e.node.value {
            Value::Table(services) if e.key == "services" => {
                replicas = replicas::expand(services, sink);
                for s in &mut services.0 {
                    vars.instance = replicas.number.get(&s.key).copied();
                    interpolate::node(&mut s.node, &vars, text, sink);
                }
                vars.instance = None;
            }
            _ => interpolate::node(&mut e.node, &vars, text, sink),
        }
    }
    replicas
}

/// The top level of a config file, each value with where it stands.
struct TopLevel {
    project: Option<(String, Span)>,
    main: Option<(String, Span)>,
    defaults: Layers,
    /// Each `[services.NAME]`: its name, the name's span, its own settings.
    services: Vec<(String, Span, Layers)>,
}

/// Reads the top-level keys; an unknown one, or a service name that cannot be one, goes
/// to `sink`.
fn top_level(root: &node::Table, base: &Path, sink: &mut Sink<'_>) -> TopLevel {
    let keys = schema::keys();
    let mut top = TopLevel {
        project: None,
        main: None,
        defaults: Layers::default(),
        services: Vec::new(),
    };
    for e in &root.0 {
        match e.key.as_str() {
            "project" => {
                top.project = string(&e.node, "project", sink).map(|s| (s, e.node.span.clone()))
            }
            "main" => top.main = string(&e.node, "main", sink).map(|s| (s, e.node.span.clone())),
            "defaults" => {
                if let Some(t) = table(&e.node, "defaults", sink) {
                    top.defaults = layers(t, keys, base, true, sink);
                }
            }
            "services" => {
                let Some(t) = table(&e.node, "services", sink) else {
                    continue;
                };
                for s in &t.0 {
                    if let Err(why) = crate::state_dir::check_name(&s.key) {
                        sink.error(s.key_span.clone(), format!("{why:#}"));
                    }
                    let what = format!("service `{}`", s.key);
                    if let Some(t) = table(&s.node, &what, sink) {
                        top.services.push((
                            s.key.clone(),
                            s.key_span.clone(),
                            layers(t, keys, base, false, sink),
                        ));
                    }
                }
            }
            other => unknown(
                other,
                e.key_span.clone(),
                "at the top level",
                TOP_LEVEL.iter().copied(),
                sink,
            ),
        }
    }
    top
}

/// One service's definition from its settings over the defaults (`merged`), with the
/// spans the cross-service checks point at; `None` after reporting why to `sink`.
fn service(
    name: &str,
    span: &Span,
    mut merged: Layers,
    replicas: &replicas::Replicas,
    base: &Path,
    sink: &mut Sink<'_>,
) -> Option<(Def, check::Spans)> {
    // `depends-on = ["web"]` of a replicated `web`: each of its instances.
    merged.depends_on = merged
        .depends_on
        .into_iter()
        .flat_map(|(d, c, at)| match replicas.groups.get(&d) {
            Some(instances) => instances
                .iter()
                .map(|i| (i.clone(), c, at.clone()))
                .collect(),
            None => vec![(d, c, at)],
        })
        .collect();
    let Some((command, command_span)) = merged.command.clone() else {
        // A `command` that was there but wrong has been reported already.
        if !merged.command_given {
            sink.error(span.clone(), format!("service `{name}` has no `command`"));
        }
        return None;
    };
    let mut values: Vec<(String, Vec<String>)> = merged.values.into_iter().collect();
    if !merged.has_dir {
        values.push(("dir".into(), vec![base.display().to_string()]));
    }
    if let Some(i) = replicas.number.get(name) {
        values.push(("env".into(), vec![format!("{}={i}", replicas::VARIABLE)]));
    }
    let dir = values
        .iter()
        .find(|(k, _)| k == "dir")
        .and_then(|(_, texts)| texts.last())
        .map(String::as_str);
    let command = absolute_program(command, dir, base);
    let depends_on = merged
        .depends_on
        .iter()
        .map(|(d, c, _)| (d.clone(), *c))
        .collect();
    let def = match Def::new(name.to_string(), &values, command, depends_on) {
        Ok(def) => def,
        Err(e) => {
            sink.error(span.clone(), format!("{name}: {e}"));
            return None;
        }
    };
    // Env files are read when the service is set up: one that cannot be read or
    // parsed fails `up` then, so it fails the check now.
    for file in &def.args.env_file {
        if let Err(e) = crate::env_file::read(file) {
            sink.error(span.clone(), format!("service `{name}`: {e:#}"));
        }
    }
    let spans = check::Spans {
        command: command_span,
        depends_on: merged
            .depends_on
            .into_iter()
            .map(|(d, _, span)| (d, span))
            .collect(),
    };
    Some((def, spans))
}

/// The variables of the project's `.env` (beside the file), for `${VAR}`; none if there is
/// no such file. A malformed one is an error (at the file's start, naming `.env`'s line).
fn dotenv(base: &Path, sink: &mut Sink<'_>) -> Vec<(String, String)> {
    let path = base.join(".env");
    match std::fs::read_to_string(&path) {
        Ok(text) => crate::env_file::parse(&text).unwrap_or_else(|(line, why)| {
            sink.error(0..0, format!("{}:{line}: {why}", path.display()));
            Vec::new()
        }),
        Err(e) if e.kind() == std::io::ErrorKind::NotFound => Vec::new(),
        Err(e) => {
            sink.error(0..0, format!("read {}: {e}", path.display()));
            Vec::new()
        }
    }
}

/// FNV-1a of the path's bytes: stable across runs and builds (unlike std's hasher).
fn path_hash(path: &Path) -> u64 {
    use std::os::unix::ffi::OsStrExt;
    path.as_os_str()
        .as_bytes()
        .iter()
        .fold(0xcbf2_9ce4_8422_2325, |h, &b| {
            (h ^ u64::from(b)).wrapping_mul(0x0000_0100_0000_01b3)
        })
}

/// The name of the file's directory, made a valid name.
fn default_project(base: &Path) -> String {
    let raw = base
        .file_name()
        .map(|n| n.to_string_lossy().into_owned())
        .unwrap_or_default();
    let mut name: String = raw
        .chars()
        .map(|c| {
            if c.is_ascii_alphanumeric() || matches!(c, '_' | '-' | '.') {
                c
            } else {
                '-'
            }
        })
        .collect();
    // Room for the `-` and eight hex digits of the id within 64 bytes.
    name = name
        .trim_start_matches(['.', '-'])
        .chars()
        .take(55)
        .collect();
    if name.is_empty() {
        "default".into()
    } else {
        name
    }
}

#[cfg(test)]
mod tests;
