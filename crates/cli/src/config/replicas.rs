//! Replicas: `instances = N` in a service's table makes N services of it, `web.1` …
//! `web.N`, each an ordinary service of its own (so `up` after a change of N adds or
//! removes instances only: the others are unchanged, and so untouched).
//!
//! Each instance is interpolated on its own, with `${DAEMONIC_INSTANCE}` its number, and
//! has `DAEMONIC_INSTANCE` in its environment. `depends-on = ["web"]` means every instance
//! of `web` (each with the condition given); a single one is named as `web.2`.
//!
//! `instances` is read from the service's own table only (not `[defaults]`, not a
//! platform table), as an integer written as such: it decides the services there are, so
//! it is read before anything is interpolated.

use std::collections::{HashMap, HashSet};

use super::diagnostic::Sink;
use super::node::{Table, Value};

/// The key.
pub const KEY: &str = "instances";
/// The most instances of one service: a typo of a zero too many must not fork thousands.
pub const MAX: i128 = 1000;
/// The variable and environment entry holding an instance's number.
pub const VARIABLE: &str = "DAEMONIC_INSTANCE";

/// What [`expand`] made.
#[derive(Debug, Default)]
pub struct Replicas {
    /// Each instance's number, by its name (`web.2` → 2).
    pub number: HashMap<String, u32>,
    /// Each replicated service's instances, in order, by the name written (`web`).
    pub groups: HashMap<String, Vec<String>>,
}

/// Replaces each service table of `services` that has `instances = N` by N tables
/// `NAME.1` … `NAME.N` (without the key); a bad value goes to `sink` at its place and
/// leaves the table as one service.
pub fn expand(services: &mut Table, sink: &mut Sink<'_>) -> Replicas {
    let mut out = Replicas::default();
    let written: HashSet<String> = services.0.iter().map(|e| e.key.clone()).collect();
    let mut entries = Vec::with_capacity(services.0.len());
    for mut e in std::mem::take(&mut services.0) {
        let Value::Table(t) = &mut e.node.value else {
            entries.push(e);
            continue;
        };
        let Some(at) = t.0.iter().position(|k| k.key == KEY) else {
            entries.push(e);
            continue;
        };
        let key = t.0.remove(at);
        let n = match key.node.value {
            Value::Int { value, .. } if (1..=MAX).contains(&value) => value as u32,
            Value::Int { value, .. } => {
                sink.error(
                    key.node.span.clone(),
                    format!("`{KEY}` is from 1 to {MAX}, not {value}"),
                );
                entries.push(e);
                continue;
            }
            ref other => {
                sink.error(
                    key.node.span.clone(),
                    format!(
                        "`{KEY}` is an integer from 1 to {MAX}, not {}",
                        other.kind()
                    ),
                );
                entries.push(e);
                continue;
            }
        };
        let longest = format!("{}.{n}", e.key);
        if let Err(why) = crate::state_dir::check_name(&longest) {
            sink.error(e.key_span.clone(), format!("`{KEY}` = {n}: {why:#}"));
        }
        let mut names = Vec::with_capacity(n as usize);
        for i in 1..=n {
            let name = format!("{}.{i}", e.key);
            if written.contains(&name) {
                sink.error(
                    e.key_span.clone(),
                    format!(
                        "instance `{name}` of `{}` is also a service of its own",
                        e.key
                    ),
                );
            }
            let mut instance = e.clone();
            instance.key = name.clone();
            out.number.insert(name.clone(), i);
            names.push(name);
            entries.push(instance);
        }
        out.groups.insert(e.key, names);
    }
    services.0 = entries;
    out
}
