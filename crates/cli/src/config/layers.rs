//! Reading the tables of a config file: a service's (or the defaults') keys into the
//! texts of its options, its platform table over it, and the values the file adds
//! (`command`, `depends-on`).

use std::collections::BTreeMap;
use std::path::{Path, PathBuf};

use super::diagnostic::{Sink, did_you_mean};
use super::node::{Node, Span, Table, Value};
use super::schema;
use super::{PLATFORMS, words};
use crate::service::ServiceArgs;
use crate::service::options::{Opt, Shape};

/// What one service table (or the defaults) says, with its platform table for this
/// platform applied over it.
#[derive(Debug, Clone, Default)]
pub(super) struct Layers {
    /// Each option's texts (checked), by key, in key order (a fixed order, so an
    /// unchanged file gives the same service).
    pub(super) values: BTreeMap<String, Vec<String>>,
    pub(super) has_dir: bool,
    pub(super) command: Option<(Vec<String>, Span)>,
    /// A `command` key was written (even if its value was wrong).
    pub(super) command_given: bool,
    /// Each dependency, what is waited for of it, and where it was written.
    pub(super) depends_on: Vec<(String, super::Condition, Span)>,
}

impl Layers {
    /// `over` applied over `self`: `env` and `env-file` add up, the rest replaces.
    pub(super) fn merged_with(&self, over: &Layers) -> Layers {
        let mut merged = self.clone();
        for (key, texts) in &over.values {
            match key.as_str() {
                "env" | "env-file" => merged
                    .values
                    .entry(key.clone())
                    .or_default()
                    .extend(texts.iter().cloned()),
                _ => {
                    merged.values.insert(key.clone(), texts.clone());
                }
            }
        }
        merged.has_dir |= over.has_dir;
        merged.command_given |= over.command_given;
        if over.command.is_some() {
            merged.command = over.command.clone();
        }
        if !over.depends_on.is_empty() {
            merged.depends_on = over.depends_on.clone();
        }
        merged
    }
}

/// Reads one service table (or the defaults, `is_defaults`), and its platform tables.
pub(super) fn layers(
    t: &Table,
    keys: &[Opt<ServiceArgs>],
    base: &Path,
    is_defaults: bool,
    sink: &mut Sink<'_>,
) -> Layers {
    let mut own = layer(t, keys, base, is_defaults, true, sink);
    for p in PLATFORMS {
        let Some(e) = t.get(p) else { continue };
        if let Some(pt) = table(&e.node, &format!("`{p}`"), sink) {
            let platform = layer(pt, keys, base, is_defaults, false, sink);
            if *p == std::env::consts::OS {
                own = own.merged_with(&platform);
            }
        }
    }
    own
}

/// Reads the keys of one table (without applying platform tables).
pub(super) fn layer(
    t: &Table,
    keys: &[Opt<ServiceArgs>],
    base: &Path,
    is_defaults: bool,
    top: bool,
    sink: &mut Sink<'_>,
) -> Layers {
    let mut l = Layers::default();
    for e in &t.0 {
        let key = e.key.as_str();
        match key {
            p if PLATFORMS.contains(&p) && top => {}
            "command" | "depends-on" if is_defaults => sink.error(
                e.key_span.clone(),
                format!("`{key}` belongs in a service, not in [defaults]"),
            ),
            "command" => {
                l.command_given = true;
                l.command = command(&e.node, sink).map(|c| (c, e.node.span.clone()));
            }
            "depends-on" => l.depends_on = depends_on(&e.node, sink),
            // A service's own `instances` was taken out before (see `replicas`).
            super::replicas::KEY => sink.error(
                e.key_span.clone(),
                "`instances` belongs in a service's own [services.NAME] table, not in [defaults] or a platform table",
            ),
            _ => match keys.iter().find(|k| k.name == key) {
                Some(k) => {
                    if matches!(key, "user" | "group" | "supplementary-groups") {
                        account(key, &e.node, sink);
                    }
                    let texts = schema::texts(k, &e.node, sink);
                    let texts = relative_to(base, k, texts);
                    l.has_dir |= key == "dir";
                    l.values.insert(key.to_string(), texts);
                }
                None => {
                    let mut known: Vec<&str> = keys.iter().map(|k| k.name).collect();
                    known.extend(["command", "depends-on"]);
                    if top {
                        known.extend(PLATFORMS);
                    }
                    let place = if is_defaults {
                        "in [defaults]"
                    } else {
                        "in a service"
                    };
                    unknown(key, e.key_span.clone(), place, known, sink);
                }
            },
        }
    }
    l
}

/// User and group names must exist (a number is taken as an id as it is).
pub(super) fn account(key: &str, node: &Node, sink: &mut Sink<'_>) {
    let names: Vec<&str> = match &node.value {
        Value::Str(s) => s.split(',').map(str::trim).collect(),
        Value::Array(items) => items
            .iter()
            .filter_map(|i| match &i.value {
                Value::Str(s) => Some(s.as_str()),
                _ => None,
            })
            .collect(),
        _ => return,
    };
    for name in names
        .into_iter()
        .filter(|n| !n.is_empty() && n.parse::<u32>().is_err())
    {
        let (what, missing) = match key {
            "user" => (
                "user",
                matches!(nix::unistd::User::from_name(name), Ok(None)),
            ),
            _ => (
                "group",
                matches!(nix::unistd::Group::from_name(name), Ok(None)),
            ),
        };
        if missing {
            sink.error(
                node.span.clone(),
                format!("`{key}`: no {what} named `{name}` on this system"),
            );
        }
    }
}

pub(super) fn unknown<'k>(
    key: &str,
    span: Span,
    place: &str,
    known: impl IntoIterator<Item = &'k str>,
    sink: &mut Sink<'_>,
) {
    let message = format!("unknown key `{key}` {place}");
    match did_you_mean(key, known) {
        Some(hint) => sink.error_hint(span, message, hint),
        None => sink.error(span, message),
    }
}

/// Path values (`FILE`, `DIR`) relative to the config file's directory.
pub(super) fn relative_to(
    base: &Path,
    key: &Opt<ServiceArgs>,
    mut texts: Vec<String>,
) -> Vec<String> {
    if !matches!(key.value_name, "FILE" | "DIR") || key.shape == Shape::Switch {
        return texts;
    }
    for text in texts.iter_mut() {
        let (dash, path) = match text.strip_prefix('-') {
            Some(rest) if key.name == "env-file" => ("-", rest),
            _ => ("", text.as_str()),
        };
        if Path::new(path).is_relative() {
            *text = format!("{dash}{}", clean(&base.join(path)).display());
        }
    }
    texts
}

/// A relative program with a `/` (`./bin/web`) runs from the service's `dir` (`None`:
/// the file's directory).
pub(super) fn absolute_program(
    mut command: Vec<String>,
    dir: Option<&str>,
    base: &Path,
) -> Vec<String> {
    let dir = dir.map_or(base.to_path_buf(), PathBuf::from);
    if let Some(program) = command.first_mut()
        && program.contains('/')
        && Path::new(program.as_str()).is_relative()
    {
        *program = clean(&dir.join(program.as_str())).display().to_string();
    }
    command
}

/// `path` without its `.` components (`/srv/./bin` is `/srv/bin`).
pub(super) fn clean(path: &Path) -> PathBuf {
    path.components().collect()
}

pub(super) fn command(node: &Node, sink: &mut Sink<'_>) -> Option<Vec<String>> {
    let words = match &node.value {
        Value::Str(line) => match words::split(line) {
            Ok(w) => w,
            Err(why) => {
                sink.error(node.span.clone(), format!("`command`: {why}"));
                return None;
            }
        },
        Value::Array(items) => {
            let mut words = Vec::new();
            for item in items {
                match &item.value {
                    Value::Str(s) => words.push(s.clone()),
                    other => {
                        sink.error(
                            item.span.clone(),
                            format!("`command` words are strings, not {}", other.kind()),
                        );
                        return None;
                    }
                }
            }
            words
        }
        other => {
            sink.error(
                node.span.clone(),
                format!(
                    "`command` is a string or an array of strings, not {}",
                    other.kind()
                ),
            );
            return None;
        }
    };
    if words.first().is_none_or(String::is_empty) {
        sink.error(node.span.clone(), "`command` is empty");
        return None;
    }
    Some(words)
}

pub(super) fn depends_on(
    node: &Node,
    sink: &mut Sink<'_>,
) -> Vec<(String, super::Condition, Span)> {
    use super::Condition;
    let items: Vec<&Node> = match &node.value {
        Value::Array(items) => items.iter().collect(),
        Value::Str(_) => vec![node],
        // `{ db = "healthy", migrate = "completed-successfully" }`
        Value::Table(t) => {
            return t
                .0
                .iter()
                .filter_map(|e| {
                    let Value::Str(c) = &e.node.value else {
                        sink.error(
                            e.node.span.clone(),
                            format!(
                                "a `depends-on` condition is a string (started, ready, healthy or completed-successfully), not {}",
                                e.node.value.kind()
                            ),
                        );
                        return None;
                    };
                    match Condition::ALL.into_iter().find(|k| k.as_str() == c) {
                        Some(k) => Some((e.key.clone(), k, e.key_span.clone())),
                        None => {
                            let message = format!(
                                "unknown `depends-on` condition `{c}` (expected started, ready, healthy or completed-successfully)"
                            );
                            match did_you_mean(c, Condition::ALL.map(Condition::as_str)) {
                                Some(hint) => sink.error_hint(e.node.span.clone(), message, hint),
                                None => sink.error(e.node.span.clone(), message),
                            }
                            None
                        }
                    }
                })
                .collect();
        }
        other => {
            sink.error(
                node.span.clone(),
                format!(
                    "`depends-on` is an array of service names or a table of conditions, not {}",
                    other.kind()
                ),
            );
            return Vec::new();
        }
    };
    items
        .into_iter()
        .filter_map(|item| match &item.value {
            Value::Str(s) => Some((s.clone(), Condition::Ready, item.span.clone())),
            other => {
                sink.error(
                    item.span.clone(),
                    format!(
                        "`depends-on` names services (strings), not {}",
                        other.kind()
                    ),
                );
                None
            }
        })
        .collect()
}

pub(super) fn string(node: &Node, key: &str, sink: &mut Sink<'_>) -> Option<String> {
    match &node.value {
        Value::Str(s) => Some(s.clone()),
        other => {
            sink.error(
                node.span.clone(),
                format!("`{key}` is a string, not {}", other.kind()),
            );
            None
        }
    }
}

pub(super) fn table<'n>(node: &'n Node, what: &str, sink: &mut Sink<'_>) -> Option<&'n Table> {
    match &node.value {
        Value::Table(t) => Some(t),
        other => {
            sink.error(
                node.span.clone(),
                format!("{what} is a table, not {}", other.kind()),
            );
            None
        }
    }
}
