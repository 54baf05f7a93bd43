//! A Procfile (foreman, honcho, overmind, Heroku) as a project of long-running services:
//! `daemonic up -f Procfile`, `run -f Procfile`.
//!
//! ```text
//! web: bundle exec puma -p $PORT
//! worker: python3 worker.py --queue default
//! # comments and blank lines are skipped
//! ```
//!
//! As foreman runs it: each command by `/bin/sh -c` (so `$PORT`, `&&` and quotes are the
//! shell's) in the file's directory; the `.env` beside the file is given to every service
//! (`env-file`, optional); `PORT` is 5000 for the first service, 5100 for the second, and
//! so on. A file is read as a Procfile when its name starts with `Procfile` (`Procfile`,
//! `Procfile.dev`). Every other option takes daemonic's defaults; for more, write a
//! `daemonic.toml`.

use std::path::Path;

use super::diagnostic::Sink;
use super::{Config, Def, check};

/// Whether `file` is read as a Procfile.
pub fn is_procfile(file: &Path) -> bool {
    file.file_name()
        .and_then(|n| n.to_str())
        .is_some_and(|n| n.starts_with("Procfile"))
}

/// The first port (foreman's default), and the step from one service to the next.
const BASE_PORT: u32 = 5000;
const PORT_STEP: u32 = 100;

/// Parses and checks a Procfile's `text`; errors go to `sink`.
pub fn parse(file: &Path, text: &str, sink: &mut Sink<'_>) -> Config {
    let base = file.parent().unwrap_or(Path::new("/")).to_path_buf();
    let dotenv = format!("-{}", base.join(".env").display());
    let mut services: Vec<Def> = Vec::new();
    let mut spans = std::collections::BTreeMap::new();
    let mut offset = 0;
    for line in text.split_inclusive('\n') {
        let start = offset;
        offset += line.len();
        let content = line.trim_end_matches(['\n', '\r']);
        let trimmed = content.trim_start();
        if trimmed.is_empty() || trimmed.starts_with('#') {
            continue;
        }
        let at = start + (content.len() - trimmed.len());
        let Some((name, command)) = trimmed.split_once(':') else {
            sink.error(
                at..at,
                format!("expected `name: command`, found {trimmed:?}"),
            );
            continue;
        };
        let name = name.trim_end();
        if let Err(why) = crate::state_dir::check_name(name) {
            sink.error(at..at + name.len(), format!("{why:#}"));
            continue;
        }
        let command = command.trim();
        let command_at = start + line.find(command).unwrap_or(0);
        if command.is_empty() {
            sink.error(at..at, format!("service `{name}` has no command"));
            continue;
        }
        if services.iter().any(|d| d.name == name) {
            sink.error(
                at..at + name.len(),
                format!("service `{name}` is defined twice"),
            );
            continue;
        }
        let port = BASE_PORT + PORT_STEP * services.len() as u32;
        let values = [
            ("dir".to_string(), vec![base.display().to_string()]),
            ("env-file".to_string(), vec![dotenv.clone()]),
            ("env".to_string(), vec![format!("PORT={port}")]),
        ];
        let words = vec!["/bin/sh".into(), "-c".into(), command.to_string()];
        match Def::new(name.to_string(), &values, words, Vec::new()) {
            Ok(def) => services.push(def),
            Err(e) => {
                sink.error(at..at, format!("{name}: {e}"));
                continue;
            }
        }
        spans.insert(
            name.to_string(),
            check::Spans {
                command: command_at..command_at + command.len(),
                depends_on: Vec::new(),
            },
        );
    }
    // Read when the services are set up: a malformed one fails the check now.
    if let Err(e) = crate::env_file::read(Path::new(&dotenv)) {
        sink.error(0..0, format!("{e:#}"));
    }
    if services.is_empty() && sink.found.is_empty() {
        sink.error(0..0, "no services: add a line `name: command`");
    }
    let names: Vec<String> = services.iter().map(|d| d.name.clone()).collect();
    let config = Config::new(file.to_path_buf(), None, None, services);
    check::all(&config, &names, &spans, None, sink);
    sink.found.sort_by_key(|d| (d.line, d.column));
    config
}
