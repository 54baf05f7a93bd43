//! Signals as events.
//!
//! [`Signals::new`] installs handlers for SIGTERM, SIGINT, SIGHUP and SIGUSR1 and turns
//! them into [`Event`]s that the program reads where it chooses: from a blocking loop
//! ([`Signals::wait`], [`Signals::wait_timeout`]), from its own `poll(2)` loop (the
//! descriptor from [`AsFd`] becomes readable, then call [`Signals::pending`]), or, with the
//! `tokio` feature, with `signals.recv().await`.
//!
//! | signal          | event                                  |
//! |-----------------|----------------------------------------|
//! | SIGTERM, SIGINT | [`Event::Shutdown`]                    |
//! | SIGHUP          | [`Event::Reload`]                      |
//! | SIGUSR1         | [`Event::ReopenLogs`]                  |
//! | added with [`Signals::also`] | [`Event::Signal`]         |
//!
//! The handlers contain no logic: each sets an atomic flag and writes a byte to a
//! non-blocking socket (signal-hook's async-signal-safe primitives). Several deliveries of
//! one signal before the program looks are reported once.
//!
//! **Forced exit.** Once a SIGTERM or SIGINT has arrived, a second one ends the process at
//! once with status 128+signal — the operator's way out of a shutdown that hangs. Turn it
//! off with [`Signals::force_exit_on_second`]. A [`Signals::shutdown_deadline`] ends the
//! process (status 1, with a message on stderr) if shutdown takes longer than allowed.
//! Either way destructors do not run: a pid file is left behind, and reclaimed by the next
//! start because its lock died with the process.

use std::io::Read;
use std::os::fd::{AsFd, BorrowedFd};
use std::os::unix::net::UnixStream;
use std::sync::Arc;
use std::sync::atomic::{AtomicBool, Ordering};
use std::time::{Duration, Instant};

use nix::poll::{PollFd, PollFlags, PollTimeout, poll};
use nix::sys::signal::Signal;
use signal_hook::SigId;

use crate::{Error, Result};

/// What a signal asks the program to do.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Event {
    /// SIGTERM or SIGINT: stop cleanly.
    Shutdown,
    /// SIGHUP: reload the configuration.
    Reload,
    /// SIGUSR1: reopen log files (after an external rotation).
    ReopenLogs,
    /// A signal added with [`Signals::also`].
    Signal(Signal),
}

/// Signal handlers installed for this process, delivering [`Event`]s.
///
/// Dropping it unregisters the handlers (the default actions do not come back: the
/// signals are then ignored, as signal-hook documents).
#[derive(Debug)]
pub struct Signals {
    reader: UnixStream,
    writer: UnixStream,
    watched: Vec<(Signal, Event, Arc<AtomicBool>)>,
    shutting_down: Arc<AtomicBool>,
    /// Whether a second SIGTERM/SIGINT ends the process; read by the forced-exit handlers,
    /// which are registered once, in [`Signals::new`].
    force_exit: Arc<AtomicBool>,
    deadline: Option<Duration>,
    ids: Vec<SigId>,
    #[cfg(feature = "tokio")]
    async_reader: Option<tokio::net::UnixStream>,
}

impl Signals {
    /// Installs the handlers for SIGTERM, SIGINT, SIGHUP and SIGUSR1.
    pub fn new() -> Result<Signals> {
        let (reader, writer) =
            UnixStream::pair().map_err(|e| Error::io("socketpair for signals", e))?;
        for s in [&reader, &writer] {
            s.set_nonblocking(true)
                .map_err(|e| Error::io("set O_NONBLOCK on signal socket", e))?;
        }
        let mut signals = Signals {
            reader,
            writer,
            watched: Vec::new(),
            shutting_down: Arc::new(AtomicBool::new(false)),
            force_exit: Arc::new(AtomicBool::new(true)),
            deadline: None,
            ids: Vec::new(),
            #[cfg(feature = "tokio")]
            async_reader: None,
        };
        // The forced exit must be registered before the handler that records the first
        // shutdown signal, so that the first delivery only records and the second exits.
        // Registered once: re-registering (to turn it back on) would put it after the
        // recorder, and the first signal would exit; `force_exit_on_second` toggles a flag.
        for sig in [Signal::SIGTERM, Signal::SIGINT] {
            let id = crate::sys::register_exit_if(
                sig,
                signals.force_exit.clone(),
                signals.shutting_down.clone(),
            )
            .map_err(|e| Error::io(format!("install {sig} handler"), e))?;
            signals.ids.push(id);
        }
        for (sig, event) in [
            (Signal::SIGTERM, Event::Shutdown),
            (Signal::SIGINT, Event::Shutdown),
            (Signal::SIGHUP, Event::Reload),
            (Signal::SIGUSR1, Event::ReopenLogs),
        ] {
            signals.watch(sig, event)?;
        }
        Ok(signals)
    }

    /// Also delivers `sig` as [`Event::Signal`].
    pub fn also(mut self, sig: Signal) -> Result<Signals> {
        self.watch(sig, Event::Signal(sig))?;
        Ok(self)
    }

    /// Whether a second SIGTERM/SIGINT ends the process at once (default: yes).
    ///
    /// Either way the first one is only delivered as [`Event::Shutdown`]. Never fails
    /// (the handlers were installed by [`Signals::new`]); the `Result` is kept for
    /// compatibility.
    pub fn force_exit_on_second(&mut self, on: bool) -> Result<()> {
        self.force_exit.store(on, Ordering::SeqCst);
        Ok(())
    }

    /// Ends the process (status 1) if it is still running `limit` after the first
    /// [`Event::Shutdown`] was delivered.
    pub fn shutdown_deadline(mut self, limit: Duration) -> Signals {
        self.deadline = Some(limit);
        self
    }

    fn watch(&mut self, sig: Signal, event: Event) -> Result<()> {
        let flag = Arc::new(AtomicBool::new(false));
        let ctx = || format!("install {sig} handler");
        if event == Event::Shutdown {
            let id = signal_hook::flag::register(sig as i32, self.shutting_down.clone())
                .map_err(|e| Error::io(ctx(), e))?;
            self.ids.push(id);
        }
        let id = signal_hook::flag::register(sig as i32, flag.clone())
            .map_err(|e| Error::io(ctx(), e))?;
        self.ids.push(id);
        let writer = self.writer.try_clone().map_err(|e| Error::io(ctx(), e))?;
        let id = signal_hook::low_level::pipe::register(sig as i32, writer)
            .map_err(|e| Error::io(ctx(), e))?;
        self.ids.push(id);
        self.watched.push((sig, event, flag));
        Ok(())
    }

    /// The events that arrived since the last call, without waiting.
    pub fn pending(&mut self) -> Vec<Event> {
        let mut sink = [0u8; 64];
        while matches!(self.reader.read(&mut sink), Ok(n) if n > 0) {}
        let mut events = Vec::new();
        for (_, event, flag) in &self.watched {
            if flag.swap(false, Ordering::SeqCst) && !events.contains(event) {
                events.push(*event);
            }
        }
        if events.contains(&Event::Shutdown) {
            self.arm_deadline();
        }
        events
    }

    /// Waits for the next events (at least one).
    pub fn wait(&mut self) -> Vec<Event> {
        loop {
            if let Some(events) = self.wait_until(None) {
                return events;
            }
        }
    }

    /// Waits at most `timeout` for events; an empty vector means none came.
    pub fn wait_timeout(&mut self, timeout: Duration) -> Vec<Event> {
        self.wait_until(Some(Instant::now() + timeout))
            .unwrap_or_default()
    }

    fn wait_until(&mut self, deadline: Option<Instant>) -> Option<Vec<Event>> {
        loop {
            let events = self.pending();
            if !events.is_empty() {
                return Some(events);
            }
            let timeout = match deadline {
                None => PollTimeout::NONE,
                Some(d) => {
                    let left = d.saturating_duration_since(Instant::now());
                    if left.is_zero() {
                        return None;
                    }
                    PollTimeout::try_from(left.as_millis().clamp(1, i32::MAX as u128) as i32)
                        .unwrap_or(PollTimeout::MAX)
                }
            };
            let mut fds = [PollFd::new(self.reader.as_fd(), PollFlags::POLLIN)];
            // EINTR (a signal we do not watch) just loops.
            let _ = poll(&mut fds, timeout);
        }
    }

    fn arm_deadline(&mut self) {
        if let Some(limit) = self.deadline.take() {
            std::thread::spawn(move || {
                std::thread::sleep(limit);
                eprintln!("shutdown did not finish within {limit:?}; exiting");
                std::process::exit(1);
            });
        }
    }

    /// Waits for the next events without blocking the tokio runtime (feature `tokio`).
    /// Must be called from within a tokio runtime with I/O enabled.
    #[cfg(feature = "tokio")]
    pub async fn recv(&mut self) -> Result<Vec<Event>> {
        loop {
            let events = self.pending();
            if !events.is_empty() {
                return Ok(events);
            }
            if self.async_reader.is_none() {
                let clone = self
                    .reader
                    .try_clone()
                    .map_err(|e| Error::io("dup signal socket", e))?;
                let stream = tokio::net::UnixStream::from_std(clone)
                    .map_err(|e| Error::io("register signal socket with tokio", e))?;
                self.async_reader = Some(stream);
            }
            let reader = self.async_reader.as_ref().expect("registered above");
            reader
                .readable()
                .await
                .map_err(|e| Error::io("wait for signals", e))?;
            // Drain through tokio so that its readiness state is cleared too.
            let mut sink = [0u8; 64];
            while matches!(reader.try_read(&mut sink), Ok(n) if n > 0) {}
        }
    }
}

impl AsFd for Signals {
    /// Readable when events are pending; then call [`Signals::pending`].
    fn as_fd(&self) -> BorrowedFd<'_> {
        self.reader.as_fd()
    }
}

impl Drop for Signals {
    fn drop(&mut self) {
        for id in self.ids.drain(..) {
            signal_hook::low_level::unregister(id);
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    // These raise real signals in the test process; each test owns its own `Signals`, and
    // events from the other test's signals may show up too, so they check `contains`.

    #[test]
    fn sigusr1_is_reopen_logs_in_a_blocking_loop() {
        let mut signals = Signals::new().unwrap();
        nix::sys::signal::raise(Signal::SIGUSR1).unwrap();
        assert!(
            signals
                .wait_timeout(Duration::from_secs(10))
                .contains(&Event::ReopenLogs)
        );
    }

    /// Set in a child process: this test binary, re-run on one test.
    const CHILD: &str = "DAEMONIC_SIGNALS_TEST_CHILD";

    /// Runs [`two_sigterms`] in a child process (signals that end a process must not end
    /// the test runner) and returns its exit code and stdout. In that child it runs them
    /// and does not return; `None` in a child started for another test.
    fn two_sigterms_in_child(test: &str, force_exit: bool) -> Option<(Option<i32>, String)> {
        let mode = if force_exit { "on" } else { "off" };
        match std::env::var(CHILD) {
            Ok(m) if m == mode => two_sigterms(force_exit),
            Ok(_) => return None,
            Err(_) => {}
        }
        let out = std::process::Command::new(std::env::current_exe().unwrap())
            .args(["--exact", test, "--test-threads=1", "--nocapture"])
            .env(CHILD, mode)
            .output()
            .unwrap();
        let stdout = String::from_utf8_lossy(&out.stdout).into_owned();
        Some((out.status.code(), stdout))
    }

    /// In the child: SIGTERM twice, printing what survived.
    fn two_sigterms(force_exit: bool) -> ! {
        let mut signals = Signals::new().unwrap();
        signals.force_exit_on_second(force_exit).unwrap();
        nix::sys::signal::raise(Signal::SIGTERM).unwrap();
        assert!(signals.pending().contains(&Event::Shutdown));
        println!("child: first survived");
        nix::sys::signal::raise(Signal::SIGTERM).unwrap();
        assert!(signals.pending().contains(&Event::Shutdown));
        println!("child: second survived");
        std::process::exit(0);
    }

    /// Regression: `force_exit_on_second(true)` after `new()` re-registered the exit
    /// handler after the recorder, so the *first* SIGTERM ended the process with 143.
    #[test]
    fn turning_forced_exit_on_again_keeps_the_first_sigterm_an_event() {
        let test = "signals::tests::turning_forced_exit_on_again_keeps_the_first_sigterm_an_event";
        let Some((code, out)) = two_sigterms_in_child(test, true) else {
            return;
        };
        assert!(
            out.contains("child: first survived"),
            "exit {code:?}: {out}"
        );
        assert!(!out.contains("child: second survived"), "stdout: {out}");
        assert_eq!(code, Some(128 + Signal::SIGTERM as i32), "stdout: {out}");
    }

    #[test]
    fn without_forced_exit_a_second_sigterm_is_an_event_too() {
        let test = "signals::tests::without_forced_exit_a_second_sigterm_is_an_event_too";
        let Some((code, out)) = two_sigterms_in_child(test, false) else {
            return;
        };
        assert!(
            out.contains("child: second survived"),
            "exit {code:?}: {out}"
        );
        assert_eq!(code, Some(0));
    }

    #[cfg(feature = "tokio")]
    #[test]
    fn sighup_is_reload_under_tokio() {
        let rt = tokio::runtime::Builder::new_current_thread()
            .enable_io()
            .build()
            .unwrap();
        let mut signals = Signals::new().unwrap();
        nix::sys::signal::raise(Signal::SIGHUP).unwrap();
        let events = rt.block_on(signals.recv()).unwrap();
        assert!(events.contains(&Event::Reload), "{events:?}");
    }
}
