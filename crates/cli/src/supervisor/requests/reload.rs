//! `reload NAME`: the service's reload signal to its main process (as systemd's
//! `ExecReload=kill -HUP $MAINPID`); answered once sent.

use super::Answer;
use crate::supervisor::Supervisor;
use crate::supervisor::units::UnitId;

pub fn answer(sup: &mut Supervisor, i: UnitId) -> Answer {
    let sig = sup.units[i].unit.service.reload_signal;
    super::signal::answer(sup, i, sig)
}
