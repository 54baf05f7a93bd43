//! `stop NAME`: the unit's stop sequence; answered once it is stopped.

use super::{Answer, Wait};
use crate::control::Response;
use crate::supervisor::Supervisor;
use crate::supervisor::machine::Event;
use crate::supervisor::unit::Context;

pub fn answer(sup: &mut Supervisor, i: usize, cx: &Context<'_>) -> Answer {
    if sup.units[i].state().is_final() {
        return Answer::Now(Response::Done(format!(
            "{}: already {}",
            sup.units[i].name(),
            sup.units[i].state().as_str()
        )));
    }
    if sup.slots[i].held.is_some() {
        // Not started yet (waiting for its dependencies): it just never starts.
        sup.slots[i].down = true;
        return Answer::Later(Wait::Final);
    }
    match sup.deliver(i, Event::StopRequested, cx) {
        Ok(()) => Answer::Later(Wait::Final),
        Err(e) => Answer::Now(Response::Error(format!("{e:#}"))),
    }
}
