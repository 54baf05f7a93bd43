//! `down [NAME…]` to a config-file supervisor: stop the services named and what depends
//! on them, dependents first (every service when none is named, and then the supervisor
//! ends). Answered at once; `daemonic down` follows the stops with `status` requests.

use super::Answer;
use crate::control::Response;
use crate::supervisor::Supervisor;

pub fn answer(sup: &mut Supervisor, names: &[String]) -> Answer {
    let Some(group) = &sup.group else {
        return Answer::Now(Response::Error(
            "not a config-file supervisor (stop it with `daemonic stop`)".into(),
        ));
    };
    // `down worker` of `instances = N`: each instance.
    let names: Vec<String> = names
        .iter()
        .flat_map(|n| group.config.instances(n))
        .collect();
    let names = names.as_slice();
    if let Some(unknown) = names.iter().find(|n| sup.units.newest(n).is_none()) {
        return Answer::Now(Response::Error(format!(
            "no service named {unknown:?} here"
        )));
    }
    if names.is_empty() {
        sup.ending = true;
    }
    let down = sup.take_down(names);
    Answer::Now(Response::Done(format!("stopping: {}", down.join(" "))))
}
