//! Tips for usage errors that clap cannot know to give, and the usage-error type that makes
//! an invalid value found after parsing (a service name) exit with status 2 like clap's
//! own errors.
//!
//! - `daemonic start --name web sleep 1`: clap says "unexpected argument 'sleep'"; the
//!   command goes after `--`, so the tip shows the line with `--` in its place.
//! - `daemonic start --name -x`: clap's tip would be "use '-- -x'", which makes `-x` the
//!   command; a service name cannot start with `-`, so the tip says that instead.

use std::ffi::OsString;

use clap::error::{ContextKind, ContextValue, ErrorKind};

/// An error in what the user typed (exit status 2, as clap's usage errors).
#[derive(Debug)]
pub struct UsageError(pub String);

impl std::fmt::Display for UsageError {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.write_str(&self.0)
    }
}

impl std::error::Error for UsageError {}

/// `e` with a better tip where the raw command line `args` (without the program name)
/// shows what went wrong.
pub fn improve(mut e: clap::Error, args: &[OsString]) -> clap::Error {
    if e.kind() != ErrorKind::UnknownArgument {
        return e;
    }
    let Some(ContextValue::String(bad)) = e.get(ContextKind::InvalidArg).cloned() else {
        return e;
    };
    let Some(at) = args.iter().position(|a| a.to_str() == Some(bad.as_str())) else {
        return e;
    };
    let before = at.checked_sub(1).and_then(|i| args[i].to_str());
    let tip = if matches!(before, Some("--name" | "-n")) {
        format!("a service name cannot start with '-' ('{bad}')")
    } else if !bad.starts_with('-') && takes_command(args) {
        let mut line: Vec<String> = vec!["daemonic".into()];
        line.extend(args[..at].iter().map(|a| a.to_string_lossy().into_owned()));
        line.push("--".into());
        line.extend(args[at..].iter().map(|a| a.to_string_lossy().into_owned()));
        format!("the command to run goes after `--`: {}", line.join(" "))
    } else {
        return e;
    };
    e.insert(
        ContextKind::Suggested,
        ContextValue::StyledStrs(vec![tip.into()]),
    );
    e
}

/// Whether the subcommand in `args` is one that runs a command given after `--`.
fn takes_command(args: &[OsString]) -> bool {
    let mut words = args.iter().filter_map(|a| a.to_str());
    while let Some(w) = words.next() {
        match w {
            "--state-dir" => {
                words.next();
            }
            w if w.starts_with('-') => {}
            w => return matches!(w, "start" | "run"),
        }
    }
    false
}

#[cfg(test)]
mod tests {
    use super::*;
    use clap::Parser;

    #[derive(Parser, Debug)]
    struct Cli {
        #[command(subcommand)]
        cmd: Cmd,
    }

    #[derive(clap::Subcommand, Debug)]
    enum Cmd {
        Start {
            #[arg(long)]
            name: String,
            #[arg(last = true)]
            command: Vec<String>,
        },
    }

    fn tip(line: &[&str]) -> String {
        let args: Vec<OsString> = line.iter().map(OsString::from).collect();
        let argv = std::iter::once(OsString::from("daemonic")).chain(args.clone());
        let e = Cli::try_parse_from(argv).unwrap_err();
        improve(e, &args).render().to_string()
    }

    #[test]
    fn a_command_without_the_double_dash_is_shown_with_it() {
        let text = tip(&["start", "--name", "x", "sleep", "1"]);
        assert!(
            text.contains(
                "tip: the command to run goes after `--`: daemonic start --name x -- sleep 1"
            ),
            "{text}"
        );
    }

    #[test]
    fn a_name_starting_with_a_dash_gets_the_right_tip() {
        let text = tip(&["start", "--name", "-x"]);
        assert!(
            text.contains("a service name cannot start with '-'"),
            "{text}"
        );
        assert!(!text.contains("use '-- -x'"), "{text}");
    }
}
