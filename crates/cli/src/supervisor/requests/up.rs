//! `up [NAME…]` to a running config-file supervisor: read the file again and apply it
//! (see [`crate::supervisor::group`]). Answered at once with what it did — `daemonic up`
//! then follows the services' progress with `status` requests. SIGHUP does the same for
//! every service.

use crate::control::{ControlServer, Response};
use crate::supervisor::Supervisor;

pub fn answer(
    sup: &mut Supervisor,
    names: &[String],
    rerun: &[String],
    server: &mut ControlServer,
) -> Response {
    apply(sup, names, rerun, Some(server))
}

/// Reads the supervisor's file and applies it with `names` wanted up (all when empty),
/// running the one-shots `rerun` again.
pub fn apply(
    sup: &mut Supervisor,
    names: &[String],
    rerun: &[String],
    server: Option<&mut ControlServer>,
) -> Response {
    let Some(group) = &sup.group else {
        return Response::Error(
            "not a config-file supervisor (started by `daemonic start`)".into(),
        );
    };
    if sup.ending {
        return Response::Error(
            "the supervisor is stopping everything; try again once it has ended".into(),
        );
    }
    let config = match crate::config::load(&group.config.file) {
        Ok(c) => c,
        Err(e) => return Response::Error(format!("{e:#}; nothing changed")),
    };
    if config.id != group.config.id {
        return Response::Error(format!(
            "{}: the project is now {:?}, not {:?}; `down` the old one first",
            config.file.display(),
            config.id,
            group.config.id
        ));
    }
    let rerun = match config.one_shots(rerun) {
        Ok(r) => r,
        Err(e) => return Response::Error(format!("{e:#}; nothing changed")),
    };
    let targets = (!names.is_empty()).then_some(names);
    match sup.apply(config, targets, &rerun, server) {
        Ok(applied) => Response::Done(applied.summary()),
        Err(e) => Response::Error(format!("{e:#}")),
    }
}
