//! `reopen NAME`: reopen the service's log files, for logrotate's `create` mode (the
//! rotated file was renamed; the supervisor goes on appending to it until it reopens the
//! path). Answered once done, with the error if a file could not be reopened (the old one
//! is then kept, so no line is lost).

use super::Answer;
use crate::control::Response;
use crate::supervisor::Supervisor;
use crate::supervisor::units::UnitId;

pub fn answer(sup: &mut Supervisor, i: UnitId) -> Answer {
    let unit = &sup.units[i].unit;
    Answer::Now(match unit.reopen_logs() {
        Ok(0) => Response::Error(format!(
            "{}: no log files to reopen (its output is not captured)",
            unit.name()
        )),
        Ok(n) => Response::Done(format!(
            "{}: {n} log file{} reopened",
            unit.name(),
            if n == 1 { "" } else { "s" }
        )),
        Err(why) => Response::Error(format!("{}: {why}", unit.name())),
    })
}
