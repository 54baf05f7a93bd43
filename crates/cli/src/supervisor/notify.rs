//! Notify datagrams from the children: one socket for the supervisor, a datagram speaks
//! for the unit whose *main* process sent it (the kernel-verified sender pid; systemd's
//! `NotifyAccess=main`); anything else is dropped.

use anyhow::Result;
use daemonic::systemd::listen::{Message, NotifyListener};

use super::Supervisor;
use super::machine::Event;
use super::unit::Context;
use crate::service::Readiness;

impl Supervisor {
    /// Drains the notify socket into events of the units whose main process spoke.
    pub(super) fn on_datagrams(
        &mut self,
        listener: &NotifyListener,
        cx: &Context<'_>,
    ) -> Result<()> {
        loop {
            let datagram = match listener.recv() {
                Ok(d) => d,
                Err(e) if e.os_error() == Some(libc::EAGAIN) => return Ok(()),
                Err(e) => {
                    eprintln!("daemonic: notify socket: {e}");
                    continue;
                }
            };
            let Some(sender) = datagram.sender.map(|s| s.pid) else {
                continue;
            };
            let Some(i) = self.units.iter().position(|u| u.pid() == Some(sender)) else {
                continue;
            };
            for m in datagram.messages {
                let event = match m {
                    // `--ready grace` or a probe: that only, by the user's choice.
                    Message::Ready
                        if matches!(
                            self.units[i].service.ready,
                            Readiness::Auto | Readiness::Notify
                        ) =>
                    {
                        Event::ReadyMessage
                    }
                    Message::Stopping => Event::StoppingMessage,
                    Message::Watchdog => Event::WatchdogPing,
                    Message::WatchdogTrigger => Event::WatchdogExpired,
                    Message::Reloading => {
                        self.set_status(i, "reloading", cx);
                        continue;
                    }
                    Message::Status(text) => {
                        self.set_status(i, &text, cx);
                        continue;
                    }
                    Message::Errno(n) if cx.single => {
                        let _ = cx
                            .outer
                            .notify(&[daemonic::systemd::notify::State::Errno(n)]);
                        continue;
                    }
                    _ => continue,
                };
                self.deliver(i, event, cx)?;
            }
        }
    }

    pub(super) fn set_status(&mut self, i: usize, text: &str, cx: &Context<'_>) {
        if cx.single {
            let _ = cx.outer.status(text);
        }
        self.units[i].status_text = text.to_string();
        self.units[i].publish();
    }
}
