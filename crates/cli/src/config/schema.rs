//! A service's keys are its command-line flags: `stop-timeout = "5s"` in a service table
//! means `--stop-timeout 5s`. The keys, their shapes and their checks all come from
//! [`ServiceArgs`] itself (clap's description of it), so every option `start` and `run`
//! have is a config key with the same name, the same default and the same validation —
//! by construction, not by a second list kept in step.
//!
//! A value becomes command-line text: strings as written, integers in decimal (an octal
//! `0o027` stays octal, `027`, for a umask), floats as written, booleans for on/off flags
//! (`backoff-jitter = true`), arrays for repeatable flags (`success-exit-codes = [0, 143]`),
//! and `env` and `socket` also as a table (`env = { PORT = 8080 }`,
//! `socket = { web = "tcp:8080" }`).

use clap::{ArgAction, CommandFactory, Parser};

use super::diagnostic::{Sink, did_you_mean};
use super::node::{Node, Value};
use crate::service::ServiceArgs;

/// `ServiceArgs` as a parser of its own, for a service's flags made from its keys.
#[derive(Parser, Debug)]
#[command(name = "daemonic.toml", no_binary_name = true)]
pub struct Flags {
    #[command(flatten)]
    pub service: ServiceArgs,
}

#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Shape {
    /// An on/off flag: a boolean.
    Switch,
    /// One value.
    One,
    /// Repeatable: an array (or one value).
    Many,
}

#[derive(Debug, Clone)]
pub struct Key {
    pub name: String,
    pub shape: Shape,
    /// What clap calls the value (`DURATION`, `SIGNAL`…).
    pub value_name: String,
    /// The allowed values of an enumerated key (`restart`), else empty.
    pub possible: Vec<String>,
}

/// Every key a service table accepts from the flags (not `command`, `depends-on` or the
/// platform tables, which the file adds).
pub fn keys() -> Vec<Key> {
    let cmd = Flags::command();
    cmd.get_arguments()
        .filter(|a| !a.is_positional())
        .filter_map(|a| {
            let name = a.get_long()?.to_string();
            if name == "help" {
                return None;
            }
            let shape = match a.get_action() {
                ArgAction::SetTrue => Shape::Switch,
                ArgAction::Append => Shape::Many,
                _ => Shape::One,
            };
            let value_name = a
                .get_value_names()
                .and_then(|v| v.first())
                .map_or_else(|| "VALUE".to_string(), |v| v.to_string());
            let possible = a
                .get_possible_values()
                .iter()
                .map(|p| p.get_name().to_string())
                .collect();
            Some(Key {
                name,
                shape,
                value_name,
                possible,
            })
        })
        .collect()
}

/// The flags `node` stands for as the value of `key`; wrong values are reported to
/// `sink` (each one checked by the flag's own parser) and left out.
pub fn to_flags(key: &Key, node: &Node, sink: &mut Sink<'_>) -> Vec<String> {
    let flag = format!("--{}", key.name);
    match (key.shape, &node.value) {
        (Shape::Switch, Value::Bool(on)) => {
            if *on {
                vec![flag]
            } else {
                Vec::new()
            }
        }
        (Shape::Switch, other) => {
            sink.error(
                node.span.clone(),
                format!("`{}` is true or false, not {}", key.name, other.kind()),
            );
            Vec::new()
        }
        (Shape::Many, Value::Array(items)) => items
            .iter()
            .flat_map(|item| one(key, &flag, item, sink))
            .collect(),
        // `env = { PORT = 8080 }`, `socket = { web = "tcp:8080" }`: NAME=VALUE each.
        (Shape::Many, Value::Table(t)) if matches!(key.name.as_str(), "env" | "socket") => {
            t.0.iter()
                .flat_map(|e| match e.node.value.as_text() {
                    Some(text) => checked(key, &flag, format!("{}={text}", e.key), &e.node, sink),
                    None => {
                        let what = if key.name == "env" {
                            "variable"
                        } else {
                            "socket"
                        };
                        sink.error(
                            e.node.span.clone(),
                            format!(
                                "the value of {what} `{}` must be a string or a number, not {}",
                                e.key,
                                e.node.value.kind()
                            ),
                        );
                        Vec::new()
                    }
                })
                .collect()
        }
        _ => one(key, &flag, node, sink),
    }
}

fn one(key: &Key, flag: &str, node: &Node, sink: &mut Sink<'_>) -> Vec<String> {
    match (&node.value, node.value.as_text()) {
        (Value::Bool(_), _) | (_, None) => {
            let expected = if key.possible.is_empty() {
                format!("a {} (a string or a number)", key.value_name)
            } else {
                format!("one of {}", key.possible.join(", "))
            };
            sink.error(
                node.span.clone(),
                format!("`{}` takes {expected}, not {}", key.name, node.value.kind()),
            );
            Vec::new()
        }
        (_, Some(text)) => checked(key, flag, text, node, sink),
    }
}

/// `--flag=text` (one word, so a value starting with `-` stays a value) if the flag's
/// own parser accepts `text`.
fn checked(key: &Key, flag: &str, text: String, node: &Node, sink: &mut Sink<'_>) -> Vec<String> {
    let word = format!("{flag}={text}");
    match Flags::try_parse_from([word.as_str(), "--", "true"]) {
        Ok(_) => vec![word],
        Err(e) => {
            let why = match std::error::Error::source(&e) {
                Some(inner) => inner.to_string(),
                None if e.kind() == clap::error::ErrorKind::InvalidValue => format!(
                    "invalid value {text:?} (expected one of {})",
                    key.possible.join(", ")
                ),
                None => first_line(&e.to_string()),
            };
            let message = format!("`{}`: {why}", key.name);
            match did_you_mean(&text, key.possible.iter().map(String::as_str)) {
                Some(hint) if !key.possible.is_empty() => {
                    sink.error_hint(node.span.clone(), message, hint)
                }
                _ => sink.error(node.span.clone(), message),
            }
            Vec::new()
        }
    }
}

fn first_line(rendered: &str) -> String {
    let line = rendered.lines().next().unwrap_or(rendered);
    line.strip_prefix("error: ").unwrap_or(line).to_string()
}
