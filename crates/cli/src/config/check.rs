//! Checks across services and against the system: dependencies (unknown, cycles),
//! `main`, programs that do not exist.

use std::collections::{BTreeMap, HashSet};
use std::os::unix::fs::PermissionsExt;
use std::path::Path;

use super::diagnostic::{Sink, did_you_mean};
use super::node::Span;
use super::{Condition, Config, Def};
use crate::service::Kind;

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
    let known: HashSet<&str> = names.iter().copied().collect();
    if let (Some(m), Some(span)) = (&config.main, main)
        && !known.contains(m.as_str())
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
            } else if !known.contains(dep.as_str()) {
                unknown_service(dep, span.clone(), "`depends-on` names", &names, sink);
            }
        }
        program(def, s.command.clone(), sink);
        conditions(config, def, s, sink);
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

/// A condition its dependency can meet: `healthy` needs a readiness check,
/// `completed-successfully` a one-shot (a long-running service never completes).
fn conditions(config: &Config, def: &Def, spans: &Spans, sink: &mut Sink<'_>) {
    for ((dep, condition), (_, span)) in def
        .depends_on
        .iter()
        .zip(&def.conditions)
        .zip(&spans.depends_on)
    {
        let Some(d) = config.get(dep) else { continue };
        let why = match condition {
            Condition::Healthy if d.args.health.readiness.is_none() => format!(
                "`{}` waits for `{dep}` to be healthy, but `{dep}` has no `readiness` check",
                def.name
            ),
            Condition::CompletedSuccessfully if d.args.kind != Kind::Oneshot => format!(
                "`{}` waits for `{dep}` to complete, but `{dep}` is not `type = \"oneshot\"` (it runs until stopped)",
                def.name
            ),
            _ => continue,
        };
        sink.error(span.clone(), why);
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
/// service that comes first in the file. Depth first from each service in file order,
/// without recursion; a service is entered once, so this is linear in services and edges
/// (a cycle is seen at the edge that closes it, back to a service on the current path).
fn cycles(config: &Config) -> Vec<Vec<String>> {
    let n = config.services.len();
    let deps: Vec<Vec<usize>> = config
        .services
        .iter()
        .enumerate()
        .map(|(i, d)| {
            d.depends_on
                .iter()
                .filter_map(|name| config.position(name))
                // Depending on itself is reported as such, not as a cycle.
                .filter(|&j| j != i)
                .collect()
        })
        .collect();
    let mut found: Vec<Vec<String>> = Vec::new();
    let mut seen: HashSet<Vec<usize>> = HashSet::new();
    let mut entered = vec![false; n];
    // Where a service is on the current path, if it is.
    let mut on_path: Vec<Option<usize>> = vec![None; n];
    for root in 0..n {
        if entered[root] {
            continue;
        }
        // (service, next dependency to try)
        let mut path: Vec<(usize, usize)> = vec![(root, 0)];
        entered[root] = true;
        on_path[root] = Some(0);
        while let Some(&mut (i, ref mut next)) = path.last_mut() {
            let Some(&child) = deps[i].get(*next) else {
                on_path[i] = None;
                path.pop();
                continue;
            };
            *next += 1;
            if let Some(at) = on_path[child] {
                let members: Vec<usize> = path[at..].iter().map(|&(m, _)| m).collect();
                let mut key = members.clone();
                key.sort_unstable();
                if seen.insert(key) {
                    let mut cycle: Vec<String> = members
                        .iter()
                        .map(|&m| config.services[m].name.clone())
                        .collect();
                    cycle.push(config.services[child].name.clone());
                    found.push(cycle);
                }
            } else if !entered[child] {
                entered[child] = true;
                on_path[child] = Some(path.len());
                path.push((child, 0));
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
