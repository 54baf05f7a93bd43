//! No module imports another that imports it back: for every two sibling modules of the
//! CLI crate and of the library (`service` and `supervisor`, `config::layers` and
//! `config::schema`, …), at most one refers to the other. A reference is a path through
//! `crate::` or `super::` anywhere in a module's code (comments aside), its submodules
//! included — a `use` line, or a path written in place.
//!
//! Known cycles, still to be broken, are listed in [`KNOWN`]: the test fails when a new
//! one appears, and when a listed one is gone (so that the list shrinks with the code).

use std::collections::{BTreeMap, BTreeSet};
use std::path::{Path, PathBuf};

/// Cycles that remain (both sides named), each with why it is not broken yet.
const KNOWN: &[(&str, &str, &str)] = &[];

type Module = Vec<String>;

/// Every module of the crate at `src` and the module paths its code refers to.
fn references(src: &Path) -> BTreeMap<Module, BTreeSet<Module>> {
    let mut out = BTreeMap::new();
    let mut todo = vec![src.to_path_buf()];
    while let Some(dir) = todo.pop() {
        for entry in std::fs::read_dir(&dir).unwrap() {
            let path = entry.unwrap().path();
            if path.is_dir() {
                todo.push(path);
            } else if path.extension().is_some_and(|e| e == "rs") {
                let module = module_of(src, &path);
                let text = std::fs::read_to_string(&path).unwrap();
                let refs: &mut BTreeSet<Module> = out.entry(module.clone()).or_default();
                refs.extend(paths_in(&text, &module));
            }
        }
    }
    out
}

/// `src/config/mod.rs` is `config`, `src/config/layers.rs` is `config::layers`.
fn module_of(src: &Path, file: &Path) -> Module {
    let rel = file.strip_prefix(src).unwrap().with_extension("");
    let mut parts: Module = rel
        .components()
        .map(|c| c.as_os_str().to_string_lossy().into_owned())
        .collect();
    if matches!(
        parts.last().map(String::as_str),
        Some("mod" | "lib" | "main")
    ) {
        parts.pop();
    }
    parts
}

/// The modules `text` (the code of `module`) names through `crate::` or `super::`.
fn paths_in(text: &str, module: &Module) -> Vec<Module> {
    let mut found = Vec::new();
    for line in text.lines() {
        let code = line.trim_start();
        if code.starts_with("//") {
            continue;
        }
        let mut rest = code;
        while let Some(at) = rest.find(['c', 's']) {
            let word_start = at == 0 || !is_ident(rest.as_bytes()[at - 1] as char);
            let tail = &rest[at..];
            let (base, after) = if let Some(t) = tail.strip_prefix("crate::") {
                (Some(Vec::new()), t)
            } else if tail.starts_with("super::") {
                let mut t = tail;
                let mut up = 0;
                while let Some(next) = t.strip_prefix("super::") {
                    t = next;
                    up += 1;
                }
                (
                    module.len().checked_sub(up).map(|n| module[..n].to_vec()),
                    t,
                )
            } else {
                (None, "")
            };
            match base {
                Some(mut path) if word_start => {
                    // Lower-case segments are modules (or a function, which is harmless
                    // here); a type, a `{` or the end of the path stops it.
                    for segment in after.split("::") {
                        let word: String = segment.chars().take_while(|c| is_ident(*c)).collect();
                        if !word.starts_with(|c: char| c.is_ascii_lowercase()) {
                            break;
                        }
                        let whole = word.len() == segment.len();
                        path.push(word);
                        if !whole {
                            break;
                        }
                    }
                    found.push(path);
                    rest = &rest[at + 1..];
                }
                _ => rest = &rest[at + 1..],
            }
        }
    }
    found
}

fn is_ident(c: char) -> bool {
    c.is_ascii_alphanumeric() || c == '_'
}

fn under(m: &[String], prefix: &[String]) -> bool {
    m.len() >= prefix.len() && m[..prefix.len()] == *prefix
}

/// Every pair of sibling modules that refer to each other.
fn cycles(refs: &BTreeMap<Module, BTreeSet<Module>>) -> BTreeSet<(String, String)> {
    let uses = |a: &Module, b: &Module| {
        refs.iter()
            .filter(|(m, _)| under(m, a))
            .any(|(_, r)| r.iter().any(|r| under(r, b)))
    };
    let mut found = BTreeSet::new();
    let parents: BTreeSet<Module> = refs
        .keys()
        .map(|m| m[..m.len().saturating_sub(1)].to_vec())
        .collect();
    for parent in &parents {
        let children: BTreeSet<Module> = refs
            .keys()
            .filter(|m| m.len() > parent.len() && under(m, parent))
            .map(|m| m[..=parent.len()].to_vec())
            .collect();
        for a in &children {
            for b in children.range(a.clone()..).skip(1) {
                if uses(a, b) && uses(b, a) {
                    found.insert((a.join("::"), b.join("::")));
                }
            }
        }
    }
    found
}

fn crate_src(name: &str) -> PathBuf {
    let here = Path::new(env!("CARGO_MANIFEST_DIR"));
    match name {
        "daemonic-cli" => here.join("src"),
        _ => here.join("../daemonic/src"),
    }
}

#[test]
fn no_module_imports_one_that_imports_it_back() {
    let mut report = Vec::new();
    for krate in ["daemonic-cli", "daemonic"] {
        let found = cycles(&references(&crate_src(krate)));
        let known: BTreeSet<(String, String)> = KNOWN
            .iter()
            .filter(|(k, _, _)| *k == krate)
            .map(|(_, a, b)| (a.to_string(), b.to_string()))
            .collect();
        for (a, b) in found.difference(&known) {
            report.push(format!("{krate}: {a} and {b} import each other"));
        }
        for (a, b) in known.difference(&found) {
            report.push(format!("{krate}: {a} ↔ {b} is gone: remove it from KNOWN"));
        }
    }
    assert!(report.is_empty(), "{}", report.join("\n"));
}

/// The check itself finds a cycle, through `use` lines and paths in place alike.
#[test]
fn a_cycle_is_found() {
    let module = |p: &str| p.split("::").map(String::from).collect::<Module>();
    let mut refs = BTreeMap::new();
    refs.insert(
        module("a"),
        BTreeSet::from_iter(paths_in("use crate::b::X;", &module("a"))),
    );
    refs.insert(
        module("b::inner"),
        BTreeSet::from_iter(paths_in(
            "let x = super::super::a::f();",
            &module("b::inner"),
        )),
    );
    refs.insert(
        module("c"),
        BTreeSet::from_iter(paths_in("// crate::a", &module("c"))),
    );
    let found = cycles(&refs);
    assert_eq!(found, BTreeSet::from([("a".to_string(), "b".to_string())]));
}
