//! Probes: is the service answering? A TCP connect, an HTTP request, or a shell command,
//! run without ever blocking the supervisor.
//!
//! The supervisor is one single-threaded `poll(2)` loop with one timer (see the parent
//! module). A probe that blocked — a `connect()` to an address that drops packets, a
//! server that accepts and never answers, a command that hangs — would freeze signals,
//! stops and restarts with it. So a probe is never *run*; an [`Attempt`] is *started* and
//! then *advanced* by the loop:
//!
//! 1. [`Probe::start`] begins the work and returns at once: a non-blocking socket whose
//!    `connect()` is in progress, or a spawned `/bin/sh -c COMMAND`.
//! 2. The loop adds [`Attempt::poll_fds`] to its `poll(2)` set and arms its timer no later
//!    than [`Attempt::deadline`].
//! 3. When one of those fds is ready (any `revents`, including `POLLERR`/`POLLHUP`), or the
//!    deadline has come, the loop calls [`Attempt::advance`], which does whatever can be
//!    done *now* without waiting and returns `Some(`[`Outcome`]`)` once the attempt has
//!    finished — exactly once. Calling it at any other time is harmless (it returns
//!    `None`): it checks readiness itself.
//!
//! What each kind does, stage by stage:
//!
//! - **tcp** — `connect()` on a `SOCK_NONBLOCK` socket returns `EINPROGRESS`; the socket
//!   becomes writable when the handshake has finished either way, and `SO_ERROR` tells
//!   which (`Connection refused`, …). Success is a completed handshake; the socket is then
//!   closed. A host with several addresses (`localhost` is `127.0.0.1` then `::1`) is
//!   tried address after address within the one deadline (an address that drops packets
//!   uses the deadline up: the addresses are not raced).
//! - **http** — the same connect, then on the same socket: write `GET PATH HTTP/1.1`
//!   (`POLLOUT` until all is written), read until the status line is complete (`POLLIN`,
//!   at most [`MAX_STATUS_LINE`] bytes), compare its code with the expected range, close.
//!   The headers and body are never read. Plain HTTP only.
//! - **exec** — `/bin/sh -c COMMAND` spawned with [`daemonic::process::spawn`] (its own
//!   process group, SIGKILLed if the supervisor dies), in the service's directory, stdin
//!   from `/dev/null`, without daemonic's own variables (`NOTIFY_SOCKET`, `LISTEN_*`, …).
//!   Its pidfd is readable once it exits; then what is left of its process group is
//!   killed and it is reaped. Its stdout and stderr go to a pipe that is drained as it
//!   fills (so a chatty command never blocks on it); the last line is kept for the failure
//!   message. At the deadline its whole group is SIGKILLed and the attempt waits (still
//!   polling, up to [`KILL_WAIT`] more) for the pidfd to report the death, so nothing is
//!   left behind — not even a zombie.
//!
//! Every attempt has a deadline: `start`'s `now + timeout` (for exec, moved once to
//! `+ KILL_WAIT` after the SIGKILL at the timeout). An attempt dropped before it finished
//! closes its socket, or SIGKILLs its command's group and reaps it.
//!
//! Host names are resolved by [`Probe::parse`], once, when the command line is read:
//! numeric addresses and `localhost` need no resolver; any other name costs one blocking
//! `getaddrinfo` there, before the loop runs, and never again. The addresses are then
//! fixed for the life of the supervisor (a name whose addresses change needs a restart,
//! or an `exec:` probe). Resolving inside the loop would either block it (glibc's
//! resolver has no non-blocking interface; its timeouts are seconds) or need a thread.
//!
//! How often to probe is the caller's business; [`Schedule`] is the rule for it.

mod exec;
pub mod listener;
mod net;

use std::net::SocketAddr;
use std::path::Path;
use std::time::{Duration, Instant};

use nix::poll::PollFd;

pub use crate::service::probe::{Probe, Schedule, Target};
pub use exec::KILL_WAIT;
pub use net::MAX_STATUS_LINE;

/// How a finished attempt went.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Outcome {
    Success,
    /// Why not, naming the operation and the address or command: `connect
    /// 127.0.0.1:8080: Connection refused`, `HTTP 503 from http://127.0.0.1:8080/health
    /// (expected 200-399)`, ``exec `curl -f …` exited with status 22: curl: (22) …``,
    /// `connect 10.0.0.5:5432: timed out after 1s`.
    Failure(String),
}

impl Outcome {
    pub fn is_success(&self) -> bool {
        *self == Outcome::Success
    }
}

/// One probe attempt in flight; see the module docs for how a poll loop drives it.
#[derive(Debug)]
pub struct Attempt {
    state: State,
}

#[derive(Debug)]
enum State {
    /// Failed (or succeeded) at once; reported by the first `advance`.
    Finished {
        outcome: Option<Outcome>,
        at: Instant,
    },
    Net(net::Net),
    Exec(exec::Exec),
}

impl Probe {
    /// Starts one attempt that gives up at `now + timeout`. Never blocks: see the module
    /// docs. `dir` is the working directory of an exec probe (the service's).
    ///
    /// An attempt that finished at once (every address refused, the shell could not be
    /// spawned) has nothing to poll and a deadline already due: the next `advance`
    /// reports it.
    pub fn start(&self, timeout: Duration, dir: &Path, now: Instant) -> Attempt {
        self.start_as(timeout, dir, None, now)
    }

    /// [`start`](Self::start), with an exec probe's shell run as the service runs
    /// (`privileges`: its user, groups, capabilities, chroot…), never as the supervisor.
    pub fn start_as(
        &self,
        timeout: Duration,
        dir: &Path,
        privileges: Option<&daemonic::privileges::Prepared>,
        now: Instant,
    ) -> Attempt {
        let started = match self {
            Probe::Tcp(target) => net::Net::start(target, None, timeout, now).map(State::Net),
            Probe::Http {
                target,
                path,
                expect,
            } => {
                let request = net::Request::get(target, path, expect.clone());
                net::Net::start(target, Some(request), timeout, now).map(State::Net)
            }
            Probe::Exec { command } => {
                exec::Exec::start(command, dir, privileges, timeout, now).map(State::Exec)
            }
        };
        let state = started.unwrap_or_else(|outcome| State::Finished {
            outcome: Some(outcome),
            at: now,
        });
        Attempt { state }
    }
}

impl Attempt {
    /// The fds to add to the poll set, each with the events it waits for (`POLLOUT`
    /// while connecting or sending, `POLLIN` while receiving, and for an exec probe its
    /// pidfd and its output pipe). Empty once the attempt has finished. The set changes
    /// as the attempt advances: build it afresh for every `poll`.
    pub fn poll_fds(&self) -> Vec<PollFd<'_>> {
        match &self.state {
            State::Finished { .. } => Vec::new(),
            State::Net(n) => n.poll_fd().into_iter().collect(),
            State::Exec(e) => e.poll_fds(),
        }
    }

    /// When to call [`advance`](Attempt::advance) at the latest. Read it again after
    /// every `advance` (an exec probe's moves once, see the module docs).
    pub fn deadline(&self) -> Instant {
        match &self.state {
            State::Finished { at, .. } => *at,
            State::Net(n) => n.deadline(),
            State::Exec(e) => e.deadline(),
        }
    }

    /// The address a tcp or http attempt connected to, once it has (for
    /// [`listener::check`]).
    pub fn connected_to(&self) -> Option<SocketAddr> {
        match &self.state {
            State::Net(n) => n.connected_to(),
            _ => None,
        }
    }

    /// Does what can be done now without blocking; `Some` once the attempt has finished
    /// (exactly once; `None` afterwards).
    pub fn advance(&mut self, now: Instant) -> Option<Outcome> {
        match &mut self.state {
            State::Finished { outcome, .. } => outcome.take(),
            State::Net(n) => n.advance(now),
            State::Exec(e) => e.advance(now),
        }
    }
}

/// `1s`, `1.5s`, `100ms` — how the CLI's durations are written ([`crate::human::span`]).
fn human(d: Duration) -> String {
    crate::human::span(d)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn durations_read_as_written() {
        assert_eq!(human(Duration::from_secs(1)), "1s");
        assert_eq!(human(Duration::from_millis(1500)), "1.5s");
        assert_eq!(human(Duration::from_millis(100)), "100ms");
        assert_eq!(human(Duration::from_micros(1)), "1us");
    }

    #[test]
    fn an_attempt_that_fails_at_once_is_due_and_reported_once() {
        let probe = Probe::parse("exec:true").unwrap();
        let now = Instant::now();
        let mut a = probe.start(Duration::from_secs(1), Path::new("/nonexistent-dir"), now);
        assert!(a.poll_fds().is_empty());
        assert_eq!(a.deadline(), now);
        let Some(Outcome::Failure(why)) = a.advance(now) else {
            panic!("expected a failure")
        };
        assert!(why.contains("/nonexistent-dir"), "{why}");
        assert_eq!(a.advance(now), None);
    }
}
