//! The control requests a supervisor answers, one file each (the wire format and the
//! server are in `crate::control`).
//!
//! A request names a service of this supervisor; an unknown name is answered with an
//! error and changes nothing. `status` and `list` are answered at once. `reload` and
//! `signal` are answered once the signal is sent, `reopen` once the files are reopened. `stop` and `restart` are answered when
//! they are over — the service stopped, or ready again — so that `daemonic restart web`
//! returns when web serves again; until then they wait in [`Pending`].

mod down;
mod reload;
mod reopen;
mod restart;
mod signal;
mod status;
mod stop;
pub mod up;

use std::time::Instant;

use crate::control::{ConnId, ControlServer, Request, Response};

use super::Supervisor;
use super::unit::Shared;
use super::units::UnitId;

/// A request answered later, when its unit reaches what it waits for.
pub struct Pending {
    pub conn: ConnId,
    pub unit: UnitId,
    pub wait: Wait,
}

pub enum Wait {
    /// A final state (stopped, exited, gave up).
    Final,
    /// `ready` with a child started after `generation`; a crash before that is an error.
    ReadyAfter { generation: u64 },
    /// A reload of child `generation` that began (`MONOTONIC_USEC`) at or after `sent`
    /// has ended with `READY=1`; the child leaving `ready` first is an error.
    Reloaded { generation: u64, sent: u64 },
}

/// Either the answer now, or the request is pending.
pub enum Answer {
    Now(Response),
    Later(Wait),
}

/// Carries out `request` (as far as it can at once).
pub fn answer(sup: &mut Supervisor, request: Request, cx: &Shared<'_>) -> (Option<UnitId>, Answer) {
    let unit = |sup: &Supervisor, name: &str| sup.units.newest(name);
    let unknown =
        |name: &str| Answer::Now(Response::Error(format!("no service named {name:?} here")));
    match request {
        Request::Status { name: None } | Request::List => (None, status::all(sup)),
        Request::Status { name: Some(name) } => match unit(sup, &name) {
            Some(i) => (Some(i), status::one(sup, i)),
            None => (None, unknown(&name)),
        },
        Request::Stop { name } => match unit(sup, &name) {
            Some(i) => (Some(i), stop::answer(sup, i, cx)),
            None => (None, unknown(&name)),
        },
        Request::Restart { name } => match unit(sup, &name) {
            Some(i) => (Some(i), restart::answer(sup, i, cx)),
            None => (None, unknown(&name)),
        },
        Request::Reload { name, wait } => match unit(sup, &name) {
            Some(i) => (Some(i), reload::answer(sup, i, wait)),
            None => (None, unknown(&name)),
        },
        Request::Reopen { name } => match unit(sup, &name) {
            Some(i) => (Some(i), reopen::answer(sup, i)),
            None => (None, unknown(&name)),
        },
        Request::Signal { name, signal } => match unit(sup, &name) {
            Some(i) => (Some(i), signal::answer(sup, i, signal)),
            None => (None, unknown(&name)),
        },
        Request::Down { names } => (None, down::answer(sup, &names)),
        // Answered by `up::answer`, which needs the control server.
        Request::Up { .. } => (
            None,
            Answer::Now(Response::Error("supervisor bug: up answered here".into())),
        ),
    }
}

/// The answer to a pending request, once its unit has got there.
pub fn settle(sup: &Supervisor, pending: &Pending) -> Option<Response> {
    let u = &sup.units[pending.unit].unit;
    let state = u.state();
    match pending.wait {
        Wait::Final => sup.units[pending.unit]
            .standing
            .finished
            .then(|| Response::Done(format!("{}: {}", u.name(), sup.shown_state(pending.unit).0))),
        Wait::Reloaded { generation, sent } => reload::settle(u, generation, sent),
        Wait::ReadyAfter { generation } => {
            if u.generation() <= generation {
                return state.is_final().then(|| {
                    Response::Error(format!(
                        "{}: {} before it restarted",
                        u.name(),
                        state.as_str()
                    ))
                });
            }
            match state {
                super::State::Ready => Some(Response::Done(format!("{}: ready", u.name()))),
                super::State::Starting => None,
                other => {
                    let last = u
                        .machine()
                        .last_exit()
                        .map_or(String::new(), |e| format!(" ({e})"));
                    Some(Response::Error(format!(
                        "{}: {} before it was ready{last}",
                        u.name(),
                        other.as_str()
                    )))
                }
            }
        }
    }
}

impl Supervisor {
    /// Reads the requests that have arrived; answers each now or when its unit gets there.
    #[inline(never)] // see `Supervisor::run`: off the idle stack
    pub(super) fn answer_requests(&mut self, server: &mut ControlServer, cx: &Shared<'_>) {
        for (conn, request) in server.poll_requests(Instant::now()) {
            if let Request::Up { names, rerun } = &request {
                let response = up::answer(self, names, rerun, server);
                server.reply(conn, &response);
                continue;
            }
            match answer(self, request, cx) {
                (_, Answer::Now(response)) => server.reply(conn, &response),
                (Some(unit), Answer::Later(wait)) => {
                    self.pending.push(Pending { conn, unit, wait })
                }
                (None, Answer::Later(_)) => unreachable!("a pending answer names a unit"),
            }
        }
    }

    /// Answers the pending requests whose units got where they waited for; with `all`
    /// (the supervisor is ending), every one left.
    pub(super) fn settle(&mut self, server: &mut ControlServer, all: bool) {
        if self.pending.is_empty() {
            return;
        }
        // Whoever is answered ("stopped", "ready") finds the status files saying so.
        self.write_statuses();
        let pending = std::mem::take(&mut self.pending);
        for p in pending {
            match settle(self, &p) {
                Some(response) => server.reply(p.conn, &response),
                None if all => {
                    server.reply(p.conn, &Response::Error("the supervisor is ending".into()))
                }
                None => self.pending.push(p),
            }
        }
    }
}
