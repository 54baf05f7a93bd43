//! `reload NAME`: the service's reload signal to its main process (as systemd's
//! `ExecReload=kill -HUP $MAINPID`); answered once sent.

use super::Answer;
use crate::supervisor::Supervisor;

pub fn answer(sup: &mut Supervisor, i: usize) -> Answer {
    let sig = sup.units[i].service.reload_signal;
    super::signal::answer(sup, i, sig)
}
