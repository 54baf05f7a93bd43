//! Signals to the supervisor, as events: SIGTERM/SIGINT stop every service (dependents
//! first), SIGHUP reloads (a config file's supervisor reads its file again and applies it,
//! as `up`; otherwise each main process gets its reload signal), SIGUSR1 reopens the log
//! files. In init mode some are forwarded to the services first (see [`super::init`]).

use anyhow::Result;

use super::event_loop::{Io, Supervisor};
use super::requests;
use super::unit::Shared;

impl Supervisor {
    #[inline(never)] // see `Supervisor::run`: off the idle stack
    pub(super) fn on_signals(&mut self, io: &mut Io<'_>, cx: &Shared<'_>) -> Result<()> {
        let mut events = io.signals.pending();
        if let Some(init) = &self.init {
            events = init.on_signals(events, self.units.units());
        }
        for event in events {
            match event {
                daemonic::Event::Shutdown => self.shut_down(cx),
                // A config file's supervisor reads the file again and applies it, as `up`.
                daemonic::Event::Reload if self.group.is_some() => {
                    match requests::up::apply(self, &[], &[], io.control.as_deref_mut()) {
                        crate::control::Response::Error(why) => {
                            eprintln!("daemonic: SIGHUP: {why}")
                        }
                        other => eprintln!("daemonic: SIGHUP: {other:?}"),
                    }
                }
                // Like systemd's `kill -HUP $MAINPID`: each main process only.
                daemonic::Event::Reload => {
                    for u in self.units.units() {
                        if let Some(c) = u.child() {
                            let _ = c.pidfd.signal(u.service.reload_signal);
                        }
                    }
                }
                daemonic::Event::ReopenLogs => {
                    // Errors are noted in the service's log by `reopen_logs` itself.
                    self.units.units().for_each(|u| drop(u.reopen_logs()))
                }
                daemonic::Event::Signal(_) => {}
            }
        }
        Ok(())
    }
}
