//! How the supervisor decides that a child is ready ([`Readiness`], `--ready`).

use super::probe::Probe;

/// How the supervisor decides that the child is ready.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Readiness {
    /// `READY=1` on the notify socket, or the grace period passing, whichever comes first.
    Auto,
    /// Only `READY=1` on the notify socket (for programs that speak the protocol).
    Notify,
    /// The grace period passing without the child exiting.
    Grace,
    /// A probe succeeding: a TCP port accepting, an HTTP status, a command exiting 0.
    Probe(Probe),
    /// A line of its captured output (stdout or stderr) matching a pattern
    /// (`log:REGEX`, process-compose's `ready_log_line`).
    Log(LogLine),
    /// The program daemonizes itself (systemd's `Type=forking`): ready when the process
    /// daemonic started exits with a success status and the daemon it left is known — the
    /// pid in this file (the program's own pid file, `forking:PATH`; relative to the
    /// working directory), or the one `MAINPID=` named, or the only child left — which
    /// is supervised from then on.
    Forking(Option<std::path::PathBuf>),
}

/// The pattern of `--ready log:REGEX`: regex-lite's syntax (that of the `regex` crate,
/// without Unicode classes), matched against each whole line as written (without the
/// line's end or time prefix), anywhere in it unless anchored with `^`/`$`.
#[derive(Clone)]
pub struct LogLine(regex_lite::Regex);

impl LogLine {
    /// The longest pattern: a readiness line is a few words, not a program.
    const MAX: usize = 1024;

    fn parse(pattern: &str) -> Result<LogLine, String> {
        if pattern.is_empty() {
            return Err("`log:` needs a pattern (e.g. log:listening on)".into());
        }
        if pattern.len() > Self::MAX {
            return Err(format!("`log:` pattern longer than {} bytes", Self::MAX));
        }
        regex_lite::Regex::new(pattern)
            .map(LogLine)
            .map_err(|e| format!("invalid `log:` pattern {pattern:?}: {e}"))
    }

    /// Whether `line` (one whole line, without its newline; any bytes) matches.
    pub fn matches(&self, line: &[u8]) -> bool {
        self.0.is_match(&String::from_utf8_lossy(line))
    }

    pub fn as_str(&self) -> &str {
        self.0.as_str()
    }
}

impl std::fmt::Debug for LogLine {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        write!(f, "log:{}", self.0.as_str())
    }
}

impl std::fmt::Display for LogLine {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        write!(f, "log:{}", self.0.as_str())
    }
}

impl PartialEq for LogLine {
    fn eq(&self, other: &LogLine) -> bool {
        self.as_str() == other.as_str()
    }
}

impl Eq for LogLine {}

impl Readiness {
    /// `auto`, `notify`, `grace`, `forking[:PATH]`, a probe (`tcp:…`, `http://…`,
    /// `exec:…`) or `log:REGEX`.
    pub fn parse(text: &str) -> Result<Readiness, String> {
        match text.trim() {
            "auto" => Ok(Readiness::Auto),
            "notify" => Ok(Readiness::Notify),
            "grace" => Ok(Readiness::Grace),
            "forking" => Ok(Readiness::Forking(None)),
            t if t.starts_with("forking:") => match &t["forking:".len()..] {
                "" => Err(
                    "`forking:` needs the program's pid file (e.g. forking:/run/nginx.pid)".into(),
                ),
                path => Ok(Readiness::Forking(Some(path.into()))),
            },
            t if t.starts_with("tcp:") || t.starts_with("http") || t.starts_with("exec:") => {
                Probe::parse(t).map(Readiness::Probe)
            }
            // The pattern after `log:` is as written (not trimmed).
            _ if text.trim_start().starts_with("log:") => {
                LogLine::parse(&text.trim_start()["log:".len()..]).map(Readiness::Log)
            }
            _ => Err(format!(
                "invalid readiness {text:?} (expected auto, notify, grace, tcp:[HOST:]PORT, \
                 http://HOST[:PORT][/PATH][#200-399], exec:COMMAND, log:REGEX, forking or \
                 forking:PIDFILE)"
            )),
        }
    }
}
