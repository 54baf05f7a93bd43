//! Errors in a config file, each pointing at `file:line:column`, and the "did you mean"
//! hints that go with them.

use std::fmt;
use std::ops::Range;
use std::path::{Path, PathBuf};

/// One error at one place of one file.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Diagnostic {
    pub file: PathBuf,
    /// 1-based.
    pub line: usize,
    /// 1-based, in characters.
    pub column: usize,
    pub message: String,
    pub hint: Option<String>,
}

impl fmt::Display for Diagnostic {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(
            f,
            "{}:{}:{}: {}",
            self.file.display(),
            self.line,
            self.column,
            self.message
        )?;
        if let Some(hint) = &self.hint {
            write!(f, "\n  hint: {hint}")?;
        }
        Ok(())
    }
}

/// Every error found in a config file (never empty), in the order of the file.
#[derive(Debug)]
pub struct Report(pub Vec<Diagnostic>);

impl fmt::Display for Report {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        for d in &self.0 {
            writeln!(f, "{d}")?;
        }
        let n = self.0.len();
        write!(f, "{n} error{}", if n == 1 { "" } else { "s" })
    }
}

impl std::error::Error for Report {}

/// Collects diagnostics about one source text.
pub struct Sink<'a> {
    file: &'a Path,
    text: &'a str,
    pub found: Vec<Diagnostic>,
}

impl<'a> Sink<'a> {
    pub fn new(file: &'a Path, text: &'a str) -> Sink<'a> {
        Sink {
            file,
            text,
            found: Vec::new(),
        }
    }

    pub fn error(&mut self, span: Range<usize>, message: impl Into<String>) {
        self.push(span, message.into(), None);
    }

    pub fn error_hint(&mut self, span: Range<usize>, message: impl Into<String>, hint: String) {
        self.push(span, message.into(), Some(hint));
    }

    fn push(&mut self, span: Range<usize>, message: String, hint: Option<String>) {
        let (line, column) = line_column(self.text, span.start);
        let d = Diagnostic {
            file: self.file.to_path_buf(),
            line,
            column,
            message,
            hint,
        };
        if !self.found.contains(&d) {
            self.found.push(d);
        }
    }
}

/// The 1-based line and column (in characters) of byte `offset` in `text`.
pub fn line_column(text: &str, offset: usize) -> (usize, usize) {
    let mut offset = offset.min(text.len());
    while !text.is_char_boundary(offset) {
        offset -= 1;
    }
    let before = &text[..offset];
    let line = before.matches('\n').count() + 1;
    let start = before.rfind('\n').map_or(0, |i| i + 1);
    (line, before[start..].chars().count() + 1)
}

/// "did you mean `x`?" for the candidate closest to `word`, if one is close enough to be
/// a typo (or differs only in `_` for `-`).
pub fn did_you_mean<'c>(
    word: &str,
    candidates: impl IntoIterator<Item = &'c str>,
) -> Option<String> {
    let kebab = word.replace('_', "-").to_ascii_lowercase();
    let best = candidates
        .into_iter()
        .map(|c| (distance(&kebab, c), c))
        .min_by_key(|(d, _)| *d)?;
    let limit = (word.chars().count() / 3).max(1);
    (best.0 <= limit).then(|| format!("did you mean `{}`?", best.1))
}

/// Edit distance counting insertions, deletions, substitutions and swaps of neighbours
/// (`restrat` is one swap from `restart`), in characters.
fn distance(a: &str, b: &str) -> usize {
    let (a, b): (Vec<char>, Vec<char>) = (a.chars().collect(), b.chars().collect());
    let mut d = vec![vec![0usize; b.len() + 1]; a.len() + 1];
    for (i, row) in d.iter_mut().enumerate() {
        row[0] = i;
    }
    d[0] = (0..=b.len()).collect();
    for i in 1..=a.len() {
        for j in 1..=b.len() {
            let cost = usize::from(a[i - 1] != b[j - 1]);
            let mut best = (d[i - 1][j] + 1)
                .min(d[i][j - 1] + 1)
                .min(d[i - 1][j - 1] + cost);
            if i > 1 && j > 1 && a[i - 1] == b[j - 2] && a[i - 2] == b[j - 1] {
                best = best.min(d[i - 2][j - 2] + 1);
            }
            d[i][j] = best;
        }
    }
    d[a.len()][b.len()]
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn lines_and_columns_are_one_based_and_count_characters() {
        let text = "a = 1\nπ = \"x\"\n";
        assert_eq!(line_column(text, 0), (1, 1));
        assert_eq!(line_column(text, 6), (2, 1));
        // After the two-byte π and a space: column 3.
        assert_eq!(line_column(text, 9), (2, 3));
    }

    #[test]
    fn hints_name_the_closest_key_only_when_close() {
        let keys = ["restart", "ready", "stop-timeout"];
        assert_eq!(
            did_you_mean("restrat", keys).as_deref(),
            Some("did you mean `restart`?")
        );
        assert_eq!(
            did_you_mean("stop_timeout", keys).as_deref(),
            Some("did you mean `stop-timeout`?")
        );
        assert_eq!(did_you_mean("colour", keys), None);
    }
}
