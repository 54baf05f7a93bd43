//! `signal NAME SIG`: a signal to the service's main process (the child, or the process
//! its `MAINPID=` named), through its pidfd.

use daemonic::Signal;

use super::Answer;
use crate::control::Response;
use crate::supervisor::Supervisor;
use crate::supervisor::units::UnitId;

pub fn answer(sup: &mut Supervisor, i: UnitId, sig: Signal) -> Answer {
    let u = &sup.units[i].unit;
    let Some(child) = u.child() else {
        return Answer::Now(Response::Error(format!(
            "{}: no process to signal ({})",
            u.name(),
            u.state().as_str()
        )));
    };
    let main = u.told.main_pid.as_ref().unwrap_or(&child.pidfd);
    let pid = main.pid();
    Answer::Now(match main.signal(sig) {
        Ok(()) => Response::Done(format!("{}: sent {sig} to pid {pid}", u.name())),
        Err(e) => Response::Error(format!("{}: {e}", u.name())),
    })
}
