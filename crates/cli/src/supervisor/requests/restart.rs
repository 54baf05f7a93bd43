//! `restart NAME`: stop the child (stop signal, timeout, SIGKILL) and start a new one at
//! once, without backoff; answered when the new child is ready, or with why it is not.

use super::{Answer, Wait};
use crate::control::Response;
use crate::supervisor::Supervisor;
use crate::supervisor::machine::Event;
use crate::supervisor::unit::Shared;
use crate::supervisor::units::UnitId;

pub fn answer(sup: &mut Supervisor, i: UnitId, cx: &Shared<'_>) -> Answer {
    let u = &sup.units[i].unit;
    if u.state().is_final() {
        return Answer::Now(Response::Error(format!(
            "{}: {}; a finished service is started again with `daemonic {}`",
            u.name(),
            u.state().as_str(),
            if sup.group.is_some() {
                "up NAME"
            } else {
                "start"
            }
        )));
    }
    let generation = u.generation();
    match sup.deliver(i, Event::RestartRequested, cx) {
        Ok(()) => Answer::Later(Wait::ReadyAfter { generation }),
        Err(e) => Answer::Now(Response::Error(format!("{e:#}"))),
    }
}
