//! Checks across services and against the system: dependencies (unknown, cycles),
//! `main`, programs that do not exist.

use std::collections::BTreeMap;
use std::os::unix::fs::PermissionsExt;
use std::path::Path;

use super::diagnostic::{Sink, did_you_mean};
use super::node::Span;
use super::{Config, Def};

/// Where a service's parts were written, for the messages.
pub struct Spans {
    pub command: Span,
    pub depends_on: Vec<(String, Span)>,
}

pub fn all(
    config: &Config,
    all_names: &[String],
    spans: &BTreeMap<String, Spans>,
    main: Option<Span>,
    sink: &mut Sink<'_>,
) {
    let names: Vec<&str> = all_names.iter().map(String::as_str).collect();
    if let (Some(m), Some(span)) = (&config.main, main)
        && !names.contains(&m.as_str())
    {
        unknown_service(m, span, "`main` names", &names, sink);
    }
    for def in &config.services {
        let Some(s) = spans.get(&def.name) else {
            continue;
        };
        for (dep, span) in &s.depends_on {
            if dep == &def.name {
                sink.error(span.clone(), format!("service `{dep}` depends on itself"));
            } else if !names.contains(&dep.as_str()) {
                unknown_service(dep, span.clone(), "`depends-on` names", &names, sink);
            }
        }
        program(def, s.command.clone(), sink);
    }
    for cycle in cycles(config) {
        let first = &cycle[0];
        let span = spans
            .get(first)
            .and_then(|s| s.depends_on.iter().find(|(d, _)| *d == cycle[1]))
            .map_or(0..0, |(_, span)| span.clone());
        sink.error(span, format!("dependency cycle: {}", cycle.join(" → ")));
    }
}

fn unknown_service(name: &str, span: Span, what: &str, names: &[&str], sink: &mut Sink<'_>) {
    let message = format!("{what} an unknown service `{name}`");
    match did_you_mean(name, names.iter().copied()) {
        Some(hint) => sink.error_hint(span, message, hint),
        None => sink.error(span, message),
    }
}

/// Each cycle once, as a path that ends where it starts (`a → b → a`), starting at the
/// service that comes first in the file.
fn cycles(config: &Config) -> Vec<Vec<String>> {
    let deps = |name: &str| -> Vec<String> {
        config
            .get(name)
            .map(|d| d.depends_on.clone())
            .unwrap_or_default()
    };
    let mut found: Vec<Vec<String>> = Vec::new();
    let mut finished: Vec<String> = Vec::new();
    for def in &config.services {
        // Depth first with an explicit stack of (service, next dependency to try).
        let mut path: Vec<(String, usize)> = vec![(def.name.clone(), 0)];
        while let Some((name, next)) = path.last().cloned() {
            let children = deps(&name);
            if next >= children.len() {
                finished.push(name);
                path.pop();
                continue;
            }
            path.last_mut().expect("not empty").1 += 1;
            let child = &children[next];
            if child == &name {
                // Depending on itself is reported as such, not as a cycle.
            } else if let Some(at) = path.iter().position(|(n, _)| n == child) {
                let mut cycle: Vec<String> = path[at..].iter().map(|(n, _)| n.clone()).collect();
                cycle.push(child.clone());
                let mut key = cycle[..cycle.len() - 1].to_vec();
                key.sort();
                let seen = found.iter().any(|c| {
                    let mut k = c[..c.len() - 1].to_vec();
                    k.sort();
                    k == key
                });
                if !seen {
                    found.push(cycle);
                }
            } else if !finished.contains(child) && config.get(child).is_some() {
                path.push((child.clone(), 0));
            }
        }
    }
    found
}

/// The program must exist and be executable (in `PATH` when it has no `/`).
fn program(def: &Def, span: Span, sink: &mut Sink<'_>) {
    let program = &def.command[0];
    if program.contains('/') {
        if let Err(why) = executable(Path::new(program)) {
            sink.error(span, format!("service `{}`: {program}: {why}", def.name));
        }
        return;
    }
    let path = service_path(def).unwrap_or_else(|| std::env::var("PATH").unwrap_or_default());
    let found = std::env::split_paths(&path)
        .map(|dir| dir.join(program))
        .any(|candidate| executable(&candidate).is_ok());
    if !found {
        sink.error(
            span,
            format!(
                "service `{}`: program `{program}` not found in PATH ({path})",
                def.name
            ),
        );
    }
}

/// The service's own `PATH`, if its `env` sets one.
fn service_path(def: &Def) -> Option<String> {
    def.flags
        .iter()
        .filter_map(|f| f.strip_prefix("--env=PATH="))
        .next_back()
        .map(str::to_string)
}

fn executable(path: &Path) -> Result<(), String> {
    match std::fs::metadata(path) {
        Ok(m) if m.is_dir() => Err("is a directory".into()),
        Ok(m) if m.permissions().mode() & 0o111 == 0 => Err("is not executable".into()),
        Ok(_) => Ok(()),
        Err(e) => Err(e.to_string()),
    }
}
