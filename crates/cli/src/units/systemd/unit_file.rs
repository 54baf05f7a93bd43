//! A unit file as text: comments, then `[Unit]`, `[Service]`, `[Install]`, each a list of
//! `Key=value` lines in the order they were added; and the quoting systemd expects.
//!
//! systemd reads a value as written except for *specifiers* (`%n`, `%h`, … — a literal
//! `%` is `%%`) everywhere, and in command lines (`ExecStart=`) also *variables*
//! (`$X`, `${X}` — a literal `$` is `$$`), C-style escapes and quotes. The helpers below
//! turn any text into the value that reads back as that text.

use std::fmt::Write as _;
use std::time::Duration;

use crate::service::systemd::{Directive, Section};

/// The text of a service unit being built.
#[derive(Debug, Default)]
pub struct UnitFile {
    /// Comment lines at the top (without the `# `).
    comments: Vec<String>,
    lines: Vec<(Section, String, String)>,
}

impl UnitFile {
    pub fn comment(&mut self, text: impl Into<String>) {
        self.comments.push(text.into());
    }

    /// Adds `key=value` to `section` (after the lines already there).
    pub fn add(&mut self, section: Section, key: &str, value: impl Into<String>) {
        self.lines.push((section, key.to_string(), value.into()));
    }

    /// The values of `key` in `section`, in order.
    pub fn get(&self, section: Section, key: &str) -> Vec<&str> {
        self.lines
            .iter()
            .filter(|(s, k, _)| *s == section && k == key)
            .map(|(_, _, v)| v.as_str())
            .collect()
    }

    /// Each directive replaces every line of its key in its section (where the first of
    /// them was, or at the end of the section); an empty value only removes them.
    pub fn apply(&mut self, overrides: &[Directive]) {
        for d in overrides {
            let at = self
                .lines
                .iter()
                .position(|(s, k, _)| *s == d.section && *k == d.key);
            self.lines
                .retain(|(s, k, _)| !(*s == d.section && *k == d.key));
            if d.value.is_empty() {
                continue;
            }
            let line = (d.section, d.key.clone(), d.value.clone());
            match at {
                Some(i) => self.lines.insert(i.min(self.lines.len()), line),
                None => self.lines.push(line),
            }
        }
    }

    pub fn render(&self) -> String {
        let mut out = String::new();
        for c in &self.comments {
            let _ = writeln!(out, "# {c}");
        }
        for section in [Section::Unit, Section::Service, Section::Install] {
            let lines: Vec<_> = self
                .lines
                .iter()
                .filter(|(s, _, _)| *s == section)
                .collect();
            if lines.is_empty() {
                continue;
            }
            let _ = writeln!(out, "\n[{}]", section.name());
            for (_, k, v) in lines {
                let _ = writeln!(out, "{k}={v}");
            }
        }
        out
    }
}

/// A value read as plain text (paths, descriptions): only `%` is special.
pub fn plain(text: &str) -> String {
    text.replace('%', "%%")
}

/// One word of a command line (`ExecStart=`): escaped, and quoted when it has to be.
pub fn exec_word(word: &str) -> String {
    let mut escaped = String::with_capacity(word.len());
    for c in word.chars() {
        match c {
            '%' => escaped.push_str("%%"),
            '$' => escaped.push_str("$$"),
            '\\' => escaped.push_str("\\\\"),
            '"' => escaped.push_str("\\\""),
            '\n' => escaped.push_str("\\n"),
            '\t' => escaped.push_str("\\t"),
            c => escaped.push(c),
        }
    }
    if word == ";" {
        // A lone `;` would separate two commands.
        return "\\;".into();
    }
    let needs_quotes = word.is_empty()
        || word
            .chars()
            .any(|c| c.is_whitespace() || matches!(c, '"' | '\''));
    if needs_quotes {
        format!("\"{escaped}\"")
    } else {
        escaped
    }
}

/// A command line for `ExecStart=`.
pub fn exec_line<S: AsRef<str>>(words: &[S]) -> String {
    words
        .iter()
        .map(|w| exec_word(w.as_ref()))
        .collect::<Vec<_>>()
        .join(" ")
}

/// One `Environment=` assignment, quoted (`"KEY=value with spaces"`); no `$` expansion
/// happens there.
pub fn env_assignment(key: &str, value: &str) -> String {
    let mut escaped = String::new();
    for c in format!("{key}={value}").chars() {
        match c {
            '%' => escaped.push_str("%%"),
            '\\' => escaped.push_str("\\\\"),
            '"' => escaped.push_str("\\\""),
            '\n' => escaped.push_str("\\n"),
            c => escaped.push(c),
        }
    }
    format!("\"{escaped}\"")
}

/// A path in a space-separated list (`ReadWritePaths=`), quoted if it has spaces.
pub fn list_path(path: &str) -> String {
    let p = plain(path);
    if p.chars().any(char::is_whitespace) {
        format!("\"{}\"", p.replace('\\', "\\\\").replace('"', "\\\""))
    } else {
        p
    }
}

/// A time span as systemd reads it: `10s`, `1500ms`, `250us`.
pub fn span(d: Duration) -> String {
    if d.subsec_nanos() == 0 {
        format!("{}s", d.as_secs())
    } else if d.as_nanos().is_multiple_of(1_000_000) {
        format!("{}ms", d.as_millis())
    } else {
        format!("{}us", d.as_micros().max(1))
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn command_words_read_back_as_written() {
        assert_eq!(exec_word("/usr/bin/web"), "/usr/bin/web");
        assert_eq!(exec_word("a b"), "\"a b\"");
        assert_eq!(exec_word(""), "\"\"");
        assert_eq!(exec_word("100%"), "100%%");
        assert_eq!(exec_word("$HOME"), "$$HOME");
        assert_eq!(exec_word("say \"hi\""), "\"say \\\"hi\\\"\"");
        assert_eq!(exec_word("it's"), "\"it's\"");
        assert_eq!(exec_word(";"), "\\;");
        assert_eq!(exec_word("a\\b"), "a\\\\b");
    }

    #[test]
    fn environment_is_one_quoted_assignment() {
        assert_eq!(env_assignment("A", "x y"), "\"A=x y\"");
        assert_eq!(env_assignment("P", "50%"), "\"P=50%%\"");
        assert_eq!(env_assignment("Q", "\"q\""), "\"Q=\\\"q\\\"\"");
    }

    #[test]
    fn spans_keep_their_precision() {
        assert_eq!(span(Duration::from_secs(10)), "10s");
        assert_eq!(span(Duration::from_millis(1500)), "1500ms");
        assert_eq!(span(Duration::from_micros(250)), "250us");
        assert_eq!(span(Duration::ZERO), "0s");
    }

    #[test]
    fn overrides_replace_in_place_add_or_remove() {
        let mut u = UnitFile::default();
        u.add(Section::Service, "Type", "exec");
        u.add(Section::Service, "PrivateTmp", "yes");
        u.add(Section::Service, "SystemCallFilter", "@system-service");
        u.add(Section::Service, "SystemCallFilter", "~@privileged");
        let set = |section, key: &str, value: &str| Directive {
            section,
            key: key.into(),
            value: value.into(),
        };
        u.apply(&[
            set(
                Section::Service,
                "SystemCallFilter",
                "@system-service @mount",
            ),
            set(Section::Service, "PrivateTmp", ""),
            set(Section::Install, "WantedBy", "graphical.target"),
        ]);
        assert_eq!(
            u.render(),
            "\n[Service]\nType=exec\nSystemCallFilter=@system-service @mount\n\n[Install]\nWantedBy=graphical.target\n"
        );
    }
}
