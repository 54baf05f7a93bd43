//! The restart settings of a service: when it is started again ([`Restart`]), how long
//! it waits first ([`Backoff`]) and when the supervisor gives up ([`StartLimit`], and
//! [`Policy::start_retries`] before the first ready). The
//! decisions made with them are pure functions in `supervisor::policy`.

use std::time::Duration;

use clap::ValueEnum;

/// The whole restart policy of a service.
#[derive(Debug, Clone, PartialEq)]
pub struct Policy {
    pub restart: Restart,
    pub success_codes: Vec<i32>,
    pub backoff: Backoff,
    pub start_limit: Option<StartLimit>,
    /// How many times a child that exits before the service was first ready is started
    /// again (`--start-retries`); then the supervisor gives up.
    pub start_retries: u32,
}

/// When an exited child is started again.
#[derive(Debug, Clone, Copy, PartialEq, Eq, ValueEnum)]
pub enum Restart {
    /// Never: the supervisor ends with the child.
    Never,
    /// When it exits with a status not in --success-exit-codes, or is killed by a signal.
    OnFailure,
    /// Whenever it exits, however it exits.
    Always,
}

impl Restart {
    /// As the flag is written.
    pub fn as_str(self) -> &'static str {
        match self {
            Restart::Never => "never",
            Restart::OnFailure => "on-failure",
            Restart::Always => "always",
        }
    }
}

/// How long to wait before a restart.
#[derive(Debug, Clone, Copy, PartialEq)]
pub struct Backoff {
    pub initial: Duration,
    pub multiplier: f64,
    pub max: Duration,
    pub jitter: bool,
    /// A run at least this long resets the sequence to `initial`.
    pub reset_after: Duration,
}

/// At most `burst` starts within `window`; parsed from `N/WINDOW` (`6/10m`).
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct StartLimit {
    pub burst: u32,
    pub window: Duration,
}

impl StartLimit {
    /// `N/WINDOW`, e.g. `5/10m`; the error names the value and the form.
    pub fn parse(text: &str) -> Result<StartLimit, String> {
        let bad = || format!("invalid start limit {text:?} (expected N/WINDOW, e.g. 6/10m)");
        let (n, window) = text.split_once('/').ok_or_else(bad)?;
        let burst: u32 = n.trim().parse().map_err(|_| bad())?;
        let window = crate::duration::parse(window).map_err(|_| bad())?;
        if burst == 0 || window.is_zero() {
            return Err(bad());
        }
        Ok(StartLimit { burst, window })
    }
}

impl std::fmt::Display for StartLimit {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        let window = crate::human::span(self.window);
        write!(f, "{} starts within {window}", self.burst)
    }
}
