//! `reload NAME`: the service's reload signal to its main process (as systemd's
//! `ExecReload=kill -HUP $MAINPID`); answered once sent.
//!
//! `reload --wait`: answered when the reload is over, as `systemctl reload` waits for a
//! `Type=notify-reload` service: the service says `RELOADING=1` with a `MONOTONIC_USEC=`
//! no earlier than the moment the signal was sent (older `RELOADING=1`s are another
//! reload's), then `READY=1`. The client's timeout bounds the wait; the child exiting or
//! leaving `ready` first is an error.

use super::{Answer, Wait};
use crate::control::Response;
use crate::service::Readiness;
use crate::supervisor::notify::monotonic_usec;
use crate::supervisor::units::UnitId;
use crate::supervisor::{State, Supervisor, Unit};

pub fn answer(sup: &mut Supervisor, i: UnitId, wait: bool) -> Answer {
    let sig = sup.units[i].unit.service.reload_signal;
    let u = &sup.units[i].unit;
    if !wait {
        return super::signal::answer(sup, i, sig);
    }
    if matches!(
        u.service.ready,
        Readiness::Grace | Readiness::Probe(_) | Readiness::Log(_)
    ) {
        return Answer::Now(Response::Error(format!(
            "{}: reload --wait needs --ready notify or auto (a program that says \
             RELOADING=1 and READY=1)",
            u.name()
        )));
    }
    if u.state() != State::Ready {
        return Answer::Now(Response::Error(format!(
            "{}: {}, not ready: nothing to reload",
            u.name(),
            u.shown_str()
        )));
    }
    let (generation, sent) = (u.generation(), monotonic_usec());
    match super::signal::answer(sup, i, sig) {
        Answer::Now(Response::Done(_)) => Answer::Later(Wait::Reloaded { generation, sent }),
        other => other,
    }
}

/// The answer to a pending `reload --wait`, once there is one.
pub fn settle(u: &Unit, generation: u64, sent: u64) -> Option<Response> {
    if u.generation() != generation || u.state() != State::Ready {
        return Some(Response::Error(format!(
            "{}: {} before its reload was over",
            u.name(),
            u.shown_str()
        )));
    }
    (u.told.reloading.is_none() && u.told.reloaded.is_some_and(|at| at >= sent))
        .then(|| Response::Done(format!("{}: reloaded", u.name())))
}
