//! The service watchdog: systemd restarts a service that stops sending `WATCHDOG=1`
//! within `WatchdogSec=`.
//!
//! ## When it is on
//!
//! systemd passes the interval in `WATCHDOG_USEC` and, since a forking service's children
//! inherit the environment, the pid that must ping in `WATCHDOG_PID`. The watchdog is on
//! only when `WATCHDOG_USEC` is a positive number *and* `WATCHDOG_PID` is unset or names
//! this process ([`Watchdog::from_env`] returns `Ok(None)` otherwise, which is not an
//! error). The environment is read once per process.
//!
//! ## Who pings: the main loop, not a thread
//!
//! A watchdog exists to notice a daemon that is alive but stuck. A background thread that
//! pings on a timer defeats it: the thread keeps pinging while the main loop is deadlocked.
//! So this module has no thread. The loop that does the daemon's work calls
//! [`Watchdog::kick`] once per iteration; `kick` sends `WATCHDOG=1` only when half the
//! interval has passed since the last ping (so a busy loop does not flood the manager),
//! and [`Watchdog::until_due`] tells a `poll`-style loop how long it may sleep. A loop
//! that hangs stops kicking, the pings stop, and systemd restarts the service — the
//! natural use is the correct one.
//!
//! ```no_run
//! use std::time::Duration;
//! use daemonic::systemd::watchdog::Watchdog;
//!
//! # fn handle_requests(_timeout: Duration) {}
//! # fn main() -> daemonic::Result<()> {
//! let mut watchdog = Watchdog::from_env()?; // None: no watchdog configured
//! loop {
//!     let timeout = watchdog.as_ref().map_or(Duration::from_secs(60), |w| w.until_due());
//!     handle_requests(timeout); // waits at most `timeout` for work
//!     if let Some(w) = &mut watchdog {
//!         w.kick()?; // pings if half the interval has passed
//!     }
//! }
//! # }
//! ```
//!
//! A daemon that detects a hang by other means (a worker that missed its own deadline) can
//! ask to be treated as expired at once with [`Watchdog::trigger`].

use std::ffi::OsStr;
use std::sync::OnceLock;
use std::time::{Duration, Instant};

use nix::unistd::Pid;

use super::notify::{Notifier, State};
use crate::{Error, ErrorKind, Result};

/// A watchdog pinger driven by the daemon's main loop. See the [module docs](self).
#[derive(Debug)]
pub struct Watchdog {
    interval: Duration,
    last_ping: Option<Instant>,
    notifier: Notifier,
}

impl Watchdog {
    /// The watchdog systemd configured for this process, or `None` if there is none for us
    /// (no `WATCHDOG_USEC`, `WATCHDOG_PID` names another process, or no `NOTIFY_SOCKET`).
    /// The variables are read on the first call and remembered.
    pub fn from_env() -> Result<Option<Watchdog>> {
        static INTERVAL: OnceLock<std::result::Result<Option<Duration>, String>> = OnceLock::new();
        let interval = INTERVAL.get_or_init(|| {
            interval_from(
                std::env::var_os("WATCHDOG_USEC").as_deref(),
                std::env::var_os("WATCHDOG_PID").as_deref(),
                Pid::this(),
            )
            .map_err(|e| e.to_string())
        });
        let interval = match interval {
            Ok(Some(i)) => *i,
            Ok(None) => return Ok(None),
            Err(why) => return Err(Error::new(ErrorKind::InvalidInput, why.clone())),
        };
        match super::notify::manager() {
            Some(n) => Ok(Some(Watchdog::new(interval, Notifier::new(n.address())?))),
            None => Ok(None),
        }
    }

    /// A watchdog that pings `notifier` and must be heard from within `interval`.
    pub fn new(interval: Duration, notifier: Notifier) -> Watchdog {
        Watchdog {
            interval,
            last_ping: None,
            notifier,
        }
    }

    /// The manager's limit (`WatchdogSec=`).
    pub fn interval(&self) -> Duration {
        self.interval
    }

    /// How often [`kick`](Self::kick) actually pings: half the interval, as systemd
    /// recommends, so one late iteration does not cost the service its life.
    pub fn ping_interval(&self) -> Duration {
        self.interval / 2
    }

    /// True if a ping is due now.
    pub fn due(&self) -> bool {
        self.until_due().is_zero()
    }

    /// How long until the next ping is due (zero if it is due now): a loop waiting for
    /// work should not sleep longer than this.
    pub fn until_due(&self) -> Duration {
        match self.last_ping {
            None => Duration::ZERO,
            Some(t) => self.ping_interval().saturating_sub(t.elapsed()),
        }
    }

    /// Called by the main loop on every iteration: pings if due. `Ok(true)` if a ping was
    /// sent.
    pub fn kick(&mut self) -> Result<bool> {
        if !self.due() {
            return Ok(false);
        }
        self.ping()?;
        Ok(true)
    }

    /// Pings now (`WATCHDOG=1`), due or not.
    pub fn ping(&mut self) -> Result<()> {
        self.notifier.notify(&[State::Watchdog])?;
        self.last_ping = Some(Instant::now());
        Ok(())
    }

    /// Tells the manager the service is hung (`WATCHDOG=trigger`): it acts as if the
    /// watchdog had expired (with `Restart=on-watchdog`, a restart).
    pub fn trigger(&self) -> Result<()> {
        self.notifier.notify(&[State::WatchdogTrigger])
    }
}

/// The watchdog interval for process `me`, from the values of `WATCHDOG_USEC` and
/// `WATCHDOG_PID`: `None` when the watchdog is not for `me`.
///
/// ```
/// use std::ffi::OsStr;
/// use std::time::Duration;
/// use daemonic::systemd::watchdog::interval_from;
/// use daemonic::Pid;
///
/// let me = Pid::from_raw(42);
/// let usec = Some(OsStr::new("3000000"));
/// assert_eq!(interval_from(usec, None, me).unwrap(), Some(Duration::from_secs(3)));
/// assert_eq!(interval_from(usec, Some(OsStr::new("42")), me).unwrap(), Some(Duration::from_secs(3)));
/// assert_eq!(interval_from(usec, Some(OsStr::new("7")), me).unwrap(), None); // another process's
/// assert_eq!(interval_from(None, None, me).unwrap(), None);
/// assert!(interval_from(Some(OsStr::new("3s")), None, me).is_err());
/// ```
pub fn interval_from(
    usec: Option<&OsStr>,
    pid: Option<&OsStr>,
    me: Pid,
) -> Result<Option<Duration>> {
    let Some(usec) = usec.filter(|v| !v.is_empty()) else {
        return Ok(None);
    };
    let usec = number(usec, "WATCHDOG_USEC")?;
    if let Some(pid) = pid.filter(|v| !v.is_empty())
        && number(pid, "WATCHDOG_PID")? != me.as_raw() as u64
    {
        return Ok(None);
    }
    Ok((usec > 0).then(|| Duration::from_micros(usec)))
}

fn number(value: &OsStr, var: &str) -> Result<u64> {
    value.to_str().and_then(|s| s.parse().ok()).ok_or_else(|| {
        Error::new(
            ErrorKind::InvalidInput,
            format!("{var}={value:?}: not an unsigned integer"),
        )
    })
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::systemd::listen::{Message, NotifyListener};

    #[test]
    fn kick_pings_at_half_the_interval() {
        let listener = NotifyListener::bind_private().unwrap();
        listener.set_nonblocking(true).unwrap();
        let mut w = Watchdog::new(
            Duration::from_secs(3600),
            Notifier::new(listener.env_value()).unwrap(),
        );
        assert!(w.due(), "the first kick pings at once");
        assert!(w.kick().unwrap());
        assert_eq!(listener.recv().unwrap().messages, vec![Message::Watchdog]);
        // Half an hour is not up: further kicks send nothing.
        assert!(!w.kick().unwrap());
        assert!(w.until_due() > Duration::from_secs(1700));
        assert_eq!(listener.recv().unwrap_err().os_error(), Some(libc::EAGAIN));
        w.trigger().unwrap();
        assert_eq!(
            listener.recv().unwrap().messages,
            vec![Message::WatchdogTrigger]
        );
    }

    #[test]
    fn zero_interval_is_off() {
        assert_eq!(
            interval_from(Some(OsStr::new("0")), None, Pid::this()).unwrap(),
            None
        );
    }
}
