//! A service's keys are its options: `stop-timeout = "5s"` in a service table is what
//! `--stop-timeout 5s` is on the command line. The keys, their shapes, their defaults and
//! their checks all come from the service's option table ([`crate::service::options`]),
//! so every option `start` and `run` have is a config key with the same name, the same
//! default and the same validation — by construction, not by a second list kept in step.
//!
//! A value is read as the text the option's parser takes: strings as written, integers in
//! decimal (an octal `0o027` stays octal, `027`, for a umask), floats as written,
//! booleans for on/off options (`backoff-jitter = true`), arrays for repeatable ones
//! (`success-exit-codes = [0, 143]`), and `env` and `socket` also as a table (`env = { PORT = 8080 }`,
//! `socket = { web = "tcp:8080" }`).
//! Each text is checked by the option's own parser here, where its `file:line:column` is
//! known; the service is then built from the texts ([`ServiceArgs::from_values`]).
//!
//! [`ServiceArgs::from_values`]: crate::service::ServiceArgs::from_values

use super::diagnostic::{Sink, did_you_mean};
use super::node::{Node, Value};
use crate::service::ServiceArgs;
use crate::service::options::{Opt, Shape};
use crate::service::table;

/// Every option a service table accepts (not `command`, `depends-on` or the platform
/// tables, which the file adds).
pub fn keys() -> &'static [Opt<ServiceArgs>] {
    table::all()
}

/// The texts `node` stands for as the value of `key`, each checked by the option's
/// parser; wrong values are reported to `sink` and left out.
pub fn texts(key: &Opt<ServiceArgs>, node: &Node, sink: &mut Sink<'_>) -> Vec<String> {
    match (key.shape, &node.value) {
        (Shape::Switch, Value::Bool(on)) => vec![on.to_string()],
        (Shape::Switch, other) => {
            sink.error(
                node.span.clone(),
                format!("`{}` is true or false, not {}", key.name, other.kind()),
            );
            Vec::new()
        }
        (Shape::Many, Value::Array(items)) => {
            items.iter().flat_map(|item| one(key, item, sink)).collect()
        }
        // `env = { PORT = 8080 }`, `socket = { web = "tcp:8080" }`: NAME=VALUE each.
        (Shape::Many, Value::Table(t)) if matches!(key.name, "env" | "socket") => {
            t.0.iter()
                .flat_map(|e| match e.node.value.as_text() {
                    Some(text) => checked(key, format!("{}={text}", e.key), &e.node, sink),
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
        _ => one(key, node, sink),
    }
}

fn one(key: &Opt<ServiceArgs>, node: &Node, sink: &mut Sink<'_>) -> Vec<String> {
    match (&node.value, node.value.as_text()) {
        (Value::Bool(_), _) | (_, None) => {
            let possible = key.possible();
            let expected = if possible.is_empty() {
                format!("a {} (a string or a number)", key.value_name)
            } else {
                format!("one of {}", possible.join(", "))
            };
            sink.error(
                node.span.clone(),
                format!("`{}` takes {expected}, not {}", key.name, node.value.kind()),
            );
            Vec::new()
        }
        (_, Some(text)) => checked(key, text, node, sink),
    }
}

/// `text` if the option's own parser accepts it (each part of a list).
fn checked(key: &Opt<ServiceArgs>, text: String, node: &Node, sink: &mut Sink<'_>) -> Vec<String> {
    match key.check(&text) {
        Ok(()) => vec![text],
        Err(why) => {
            let message = format!("`{}`: {why}", key.name);
            let possible = key.possible();
            match did_you_mean(&text, possible.iter().map(String::as_str)) {
                Some(hint) if !possible.is_empty() => {
                    sink.error_hint(node.span.clone(), message, hint)
                }
                _ => sink.error(node.span.clone(), message),
            }
            Vec::new()
        }
    }
}
