//! `stop NAME`: the unit's stop sequence; answered once it is stopped.

use super::{Answer, Wait};
use crate::control::Response;
use crate::supervisor::Supervisor;
use crate::supervisor::machine::Event;
use crate::supervisor::unit::Shared;
use crate::supervisor::units::UnitId;

pub fn answer(sup: &mut Supervisor, i: UnitId, cx: &Shared<'_>) -> Answer {
    if sup.units[i].unit.state().is_final() {
        return Answer::Now(Response::Done(format!(
            "{}: already {}",
            sup.units[i].unit.name(),
            sup.units[i].unit.state().as_str()
        )));
    }
    if sup.units[i].standing.held.is_some() {
        // Not started yet (waiting for its dependencies): it just never starts.
        sup.units[i].standing.down = true;
        return Answer::Later(Wait::Final);
    }
    match sup.deliver(i, Event::StopRequested, cx) {
        Ok(()) => Answer::Later(Wait::Final),
        Err(e) => Answer::Now(Response::Error(format!("{e:#}"))),
    }
}
