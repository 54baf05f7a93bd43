//! `${VAR}` in a config file, with docker-compose's rules, from the environment `up` or
//! `check` runs in and the project's `.env` (beside the file).
//!
//! | written | becomes |
//! |---|---|
//! | `$VAR`, `${VAR}` | the value; unset is an error at its line:column |
//! | `${VAR:-default}` / `${VAR-default}` | the value, or `default` if unset or empty / unset |
//! | `${VAR:?message}` / `${VAR?message}` | the value, or an error with `message` if unset or empty / unset |
//! | `${VAR:+other}` / `${VAR+other}` | `other` if set and not empty / set, else nothing |
//! | `$$` | a literal `$` |
//!
//! A default (or other text) may itself hold `${…}`. Every string value is interpolated —
//! commands, `env`, paths, probes — before it is read as what its key needs; keys and
//! non-string values are not. The environment wins over `.env` (as in compose); `.env` is
//! for interpolation only and is not given to the services (that is `env-file`'s job).
//! Unlike compose, an unset variable without a default is an error, not an empty string:
//! a typo must not start a service with an empty argument.

use std::collections::HashMap;

use super::diagnostic::Sink;
use super::node::{Node, Span, Table, Value};

/// Where values come from.
pub struct Vars {
    dotenv: HashMap<String, String>,
    /// `DAEMONIC_INSTANCE` while a replica's table is interpolated (see `replicas`).
    pub instance: Option<u32>,
}

impl Vars {
    /// The environment, and `dotenv`'s variables under it.
    pub fn new(dotenv: Vec<(String, String)>) -> Vars {
        Vars {
            dotenv: dotenv.into_iter().collect(),
            instance: None,
        }
    }

    fn get(&self, name: &str) -> Option<String> {
        if let Some(i) = self.instance
            && name == super::replicas::VARIABLE
        {
            return Some(i.to_string());
        }
        std::env::var(name)
            .ok()
            .or_else(|| self.dotenv.get(name).cloned())
    }
}

/// Interpolates every string in `t` in place; each error goes to `sink` at the variable's
/// place in `source` (the file's text).
pub fn table(t: &mut Table, vars: &Vars, source: &str, sink: &mut Sink<'_>) {
    for e in &mut t.0 {
        node(&mut e.node, vars, source, sink);
    }
}

pub fn node(n: &mut Node, vars: &Vars, source: &str, sink: &mut Sink<'_>) {
    match &mut n.value {
        Value::Str(s) if s.contains('$') => match expand(s, vars) {
            Ok(v) => *s = v,
            Err((needle, why)) => sink.error(place(source, &n.span, &needle), why),
        },
        Value::Array(items) => items.iter_mut().for_each(|i| node(i, vars, source, sink)),
        Value::Table(t) => table(t, vars, source, sink),
        _ => {}
    }
}

/// Where `needle` (`${NAME` or `$NAME`) is written inside `span`, else the span's start.
fn place(source: &str, span: &Span, needle: &str) -> Span {
    let written = source.get(span.clone()).unwrap_or("");
    match written.find(needle) {
        Some(at) => span.start + at..span.start + at + needle.len(),
        None => span.clone(),
    }
}

/// `text` with its variables replaced, or the first error: what to point at, and why.
pub fn expand(text: &str, vars: &Vars) -> Result<String, (String, String)> {
    let mut out = String::with_capacity(text.len());
    let mut rest = text;
    while let Some(at) = rest.find('$') {
        out.push_str(&rest[..at]);
        let after = &rest[at + 1..];
        if let Some(tail) = after.strip_prefix('$') {
            out.push('$');
            rest = tail;
        } else if let Some(inner) = after.strip_prefix('{') {
            let end = closing_brace(inner).ok_or_else(|| {
                (
                    "${".to_string(),
                    format!("`${{` without its `}}` in {text:?} (write `$$` for a literal `$`)"),
                )
            })?;
            out.push_str(&braced(&inner[..end], vars)?);
            rest = &inner[end + 1..];
        } else {
            let len = after
                .find(|c: char| !(c.is_ascii_alphanumeric() || c == '_'))
                .unwrap_or(after.len());
            let name = &after[..len];
            if name.is_empty() || name.starts_with(|c: char| c.is_ascii_digit()) {
                return Err((
                    "$".to_string(),
                    format!(
                        "a `$` that starts no variable in {text:?} (write `$$` for a literal `$`)"
                    ),
                ));
            }
            out.push_str(
                &vars
                    .get(name)
                    .ok_or_else(|| unset(name, &format!("${name}")))?,
            );
            rest = &after[len..];
        }
    }
    out.push_str(rest);
    Ok(out)
}

/// The `}` that closes a `${`, counting nested `${…}`.
fn closing_brace(inner: &str) -> Option<usize> {
    let mut depth = 0;
    let bytes = inner.as_bytes();
    let mut i = 0;
    while i < bytes.len() {
        match bytes[i] {
            b'$' if bytes.get(i + 1) == Some(&b'{') => {
                depth += 1;
                i += 1;
            }
            b'}' if depth == 0 => return Some(i),
            b'}' => depth -= 1,
            _ => {}
        }
        i += 1;
    }
    None
}

/// The inside of `${…}`: a name, and maybe an operator and its text.
fn braced(inside: &str, vars: &Vars) -> Result<String, (String, String)> {
    let len = inside
        .find(|c: char| !(c.is_ascii_alphanumeric() || c == '_'))
        .unwrap_or(inside.len());
    let (name, op) = inside.split_at(len);
    let needle = format!("${{{name}");
    if name.is_empty() || name.starts_with(|c: char| c.is_ascii_digit()) {
        return Err((needle, format!("invalid variable name in `${{{inside}}}`")));
    }
    let value = vars.get(name);
    let set_and_not_empty = value.as_deref().is_some_and(|v| !v.is_empty());
    let operator = [":-", ":?", ":+", "-", "?", "+"]
        .into_iter()
        .find(|o| op.starts_with(o))
        .unwrap_or(if op.is_empty() { "" } else { "?unknown" });
    let word = op.get(operator.len()..).unwrap_or("");
    let word = || expand(word, vars);
    match operator {
        "" => value.ok_or_else(|| unset(name, &needle)),
        ":-" => {
            if set_and_not_empty {
                Ok(value.unwrap_or_default())
            } else {
                word()
            }
        }
        "-" => match value {
            Some(v) => Ok(v),
            None => word(),
        },
        ":?" | "?" => {
            let ok = if operator == ":?" {
                set_and_not_empty
            } else {
                value.is_some()
            };
            match value {
                Some(v) if ok => Ok(v),
                _ => {
                    let message = word()?;
                    Err((needle, format!("variable {name} is not set: {message}")))
                }
            }
        }
        ":+" => {
            if set_and_not_empty {
                word()
            } else {
                Ok(String::new())
            }
        }
        "+" => {
            if value.is_some() {
                word()
            } else {
                Ok(String::new())
            }
        }
        _ => Err((
            needle,
            format!("unknown operator in `${{{inside}}}` (expected :-, -, :?, ?, :+ or +)"),
        )),
    }
}

fn unset(name: &str, needle: &str) -> (String, String) {
    (
        needle.to_string(),
        format!(
            "variable {name} is not set (in the environment or .env); give a default with ${{{name}:-default}}, or write $$ for a literal $"
        ),
    )
}

#[cfg(test)]
mod tests {
    use super::*;

    fn vars() -> Vars {
        Vars::new(vec![("DOTENV_ONLY".into(), "from-dotenv".into())])
    }

    fn ex(text: &str) -> Result<String, String> {
        expand(text, &vars()).map_err(|(_, why)| why)
    }

    #[test]
    fn compose_rules() {
        // PATH is set in any test environment; the rest are this test's own names.
        let path = std::env::var("PATH").unwrap();
        assert_eq!(ex("a $PATH b").unwrap(), format!("a {path} b"));
        assert_eq!(ex("${PATH}x").unwrap(), format!("{path}x"));
        assert_eq!(ex("$$PATH costs $$5").unwrap(), "$PATH costs $5");
        assert_eq!(ex("${DOTENV_ONLY}").unwrap(), "from-dotenv");
        assert_eq!(ex("${NOPE_UNSET_X:-fallback}").unwrap(), "fallback");
        assert_eq!(ex("${NOPE_UNSET_X-fallback}").unwrap(), "fallback");
        assert_eq!(
            ex("${NOPE_UNSET_X:-${DOTENV_ONLY}}").unwrap(),
            "from-dotenv"
        );
        assert_eq!(ex("${NOPE_UNSET_X:+yes}").unwrap(), "");
        assert_eq!(ex("${DOTENV_ONLY:+yes}").unwrap(), "yes");
        assert_eq!(ex("port ${NOPE_UNSET_X:-80}0").unwrap(), "port 800");
        let why = ex("x ${NOPE_UNSET_X} y").unwrap_err();
        assert!(why.starts_with("variable NOPE_UNSET_X is not set"), "{why}");
        let why = ex("${NOPE_UNSET_X:?give the port}").unwrap_err();
        assert!(why.ends_with("give the port"), "{why}");
        assert!(ex("${NOPE").unwrap_err().contains("without its"));
        assert!(ex("cost $5").unwrap_err().contains("starts no variable"));
        assert!(ex("${A:=b}").unwrap_err().contains("unknown operator"));
    }

    #[test]
    fn the_error_points_at_the_variable() {
        let source = r#"command = "run --port ${NOPE_UNSET_X}""#;
        let span = 10..source.len();
        assert_eq!(place(source, &span, "${NOPE_UNSET_X"), 22..36);
    }
}
