//! Environment files (`--env-file`, `env-file = …`): the format systemd's
//! `EnvironmentFile=` and docker's `--env-file` share.
//!
//! One `KEY=VALUE` per line; blank lines and lines starting with `#` are skipped; an
//! `export ` in front is allowed (so the file can be sourced by a shell too). A value may
//! be quoted with '…' (taken as written) or "…" (where `\"`, `\\`, `\n` and `\t` are
//! escapes); unquoted, it runs to the end of the line, trailing spaces dropped. Nothing is
//! expanded. A path starting with `-` names an optional file: missing, it is skipped.

use std::path::Path;

use anyhow::{Context, Result};

/// The variables of the file `spec` names (see the module docs for `-`), in file order.
pub fn read(spec: &Path) -> Result<Vec<(String, String)>> {
    let text = spec.to_string_lossy();
    let (path, optional) = match text.strip_prefix('-') {
        Some(rest) => (Path::new(rest), true),
        None => (spec, false),
    };
    let content = match std::fs::read_to_string(path) {
        Ok(c) => c,
        Err(e) if optional && e.kind() == std::io::ErrorKind::NotFound => return Ok(Vec::new()),
        Err(e) => return Err(e).with_context(|| format!("read env file {}", path.display())),
    };
    parse(&content).map_err(|(line, why)| anyhow::anyhow!("{}:{line}: {why}", path.display()))
}

/// The variables in `text`, or the first bad line (1-based) and why.
pub fn parse(text: &str) -> Result<Vec<(String, String)>, (usize, String)> {
    let mut vars = Vec::new();
    for (n, line) in text.lines().enumerate() {
        let line = line.trim_start();
        if line.is_empty() || line.starts_with('#') {
            continue;
        }
        let line = line.strip_prefix("export ").unwrap_or(line).trim_start();
        let Some((key, value)) = line.split_once('=') else {
            return Err((n + 1, format!("expected KEY=VALUE, found {line:?}")));
        };
        let key = key.trim_end();
        check_key(key).map_err(|why| (n + 1, why))?;
        let value = unquote(value.trim()).map_err(|why| (n + 1, why))?;
        vars.push((key.to_string(), value));
    }
    Ok(vars)
}

/// A variable name as a shell accepts it.
pub fn check_key(key: &str) -> Result<(), String> {
    let mut chars = key.chars();
    let first_ok = chars
        .next()
        .is_some_and(|c| c.is_ascii_alphabetic() || c == '_');
    if !first_ok || !chars.all(|c| c.is_ascii_alphanumeric() || c == '_') {
        return Err(format!(
            "invalid variable name {key:?} (letters, digits and '_', not starting with a digit)"
        ));
    }
    Ok(())
}

fn unquote(value: &str) -> Result<String, String> {
    if let Some(inner) = value.strip_prefix('\'') {
        return match inner.strip_suffix('\'') {
            Some(v) => Ok(v.to_string()),
            None => Err(format!("unclosed ' quote in {value:?}")),
        };
    }
    let Some(inner) = value.strip_prefix('"') else {
        return Ok(value.to_string());
    };
    let mut out = String::new();
    let mut chars = inner.chars();
    while let Some(c) = chars.next() {
        match c {
            '"' if chars.as_str().trim().is_empty() => return Ok(out),
            '"' => return Err(format!("text after the closing quote in {value:?}")),
            '\\' => match chars.next() {
                Some('n') => out.push('\n'),
                Some('t') => out.push('\t'),
                Some(c @ ('"' | '\\' | '$' | '`')) => out.push(c),
                Some(c) => {
                    out.push('\\');
                    out.push(c);
                }
                None => break,
            },
            c => out.push(c),
        }
    }
    Err(format!("unclosed \" quote in {value:?}"))
}

/// `KEY=VALUE` as given to `--env`.
pub fn parse_assignment(text: &str) -> Result<(String, String), String> {
    let Some((key, value)) = text.split_once('=') else {
        return Err(format!("invalid --env {text:?} (expected KEY=VALUE)"));
    };
    check_key(key)?;
    Ok((key.to_string(), value.to_string()))
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn reads_what_systemd_and_docker_env_files_hold() {
        let text =
            "# db\nexport HOST=db.local\nPORT = 5432\nMOTD='a  $b'\nQ=\"x\\\"y\\n\"\n\nEMPTY=\n";
        assert_eq!(
            parse(text).unwrap(),
            [
                ("HOST".into(), "db.local".into()),
                ("PORT".into(), "5432".into()),
                ("MOTD".into(), "a  $b".into()),
                ("Q".into(), "x\"y\n".into()),
                ("EMPTY".into(), String::new()),
            ]
        );
    }

    #[test]
    fn bad_lines_are_named() {
        assert_eq!(parse("A=1\nnonsense\n").unwrap_err().0, 2);
        assert!(
            parse("1X=2")
                .unwrap_err()
                .1
                .contains("invalid variable name")
        );
        assert!(parse("A=\"open").unwrap_err().1.contains("unclosed"));
        assert!(
            parse("A=\"x\" y")
                .unwrap_err()
                .1
                .contains("after the closing quote")
        );
    }

    #[test]
    fn a_dash_makes_a_file_optional() {
        assert!(read(Path::new("-/nonexistent/env")).unwrap().is_empty());
        let e = read(Path::new("/nonexistent/env")).unwrap_err();
        assert!(format!("{e:#}").contains("/nonexistent/env"));
    }
}
