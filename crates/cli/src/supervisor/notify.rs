//! Notify datagrams from the children: one socket for the supervisor, a datagram speaks
//! for the unit whose *main* process sent it (the kernel-verified sender pid; systemd's
//! `NotifyAccess=main`); anything else is dropped.
//!
//! The socket is reachable by every local user (it is listed in `/proc/net/unix`), so
//! what arrives is hostile until proven otherwise:
//!
//! - a datagram from a process that is not a unit's main process is dropped *before* it
//!   is parsed (see [`NotifyListener::recv_from`]), and a main process's malformed
//!   datagram is rejected after; neither writes a line per datagram — [`Notes`] allows one
//!   note per sender pid and at most [`NOTES_PER_INTERVAL`] in all per [`NOTE_INTERVAL`],
//!   then one summary ("… 1,234 more dropped in the last 10 s");
//! - at most [`DATAGRAMS_PER_WAKEUP`] datagrams are read per wakeup of the loop, so a
//!   flood cannot keep it from the control socket, exits and timers (the rest wait in the
//!   socket's queue, which the kernel bounds).

use std::time::{Duration, Instant};

use anyhow::Result;
use daemonic::Pid;
use daemonic::systemd::listen::{Message, NotifyListener};

use super::Supervisor;
use super::machine::Event;
use super::unit::Shared;
use super::units::UnitId;
use crate::service::Readiness;

impl Supervisor {
    /// Drains the notify socket into events of the units whose main process spoke.
    pub(super) fn on_datagrams(
        &mut self,
        listener: &NotifyListener,
        cx: &Shared<'_>,
    ) -> Result<()> {
        for _ in 0..DATAGRAMS_PER_WAKEUP {
            let mut sender = None;
            let units = &self.units;
            let received = listener.recv_from(|s| {
                sender = s.map(|s| s.pid);
                sender.is_some_and(|pid| units.units().any(|u| u.pid() == Some(pid)))
            });
            let now = Instant::now();
            let mut datagram = match received {
                Ok(Some(d)) => d,
                Ok(None) => {
                    self.notes.note(sender, now, || {
                        let from =
                            sender.map_or("an unknown sender".into(), |p| format!("pid {p}"));
                        format!("datagram from {from} dropped: no service's main process")
                    });
                    continue;
                }
                Err(e) if e.os_error() == Some(libc::EAGAIN) => return Ok(()),
                Err(e) => {
                    self.notes.note(sender, now, || e.to_string());
                    continue;
                }
            };
            let found = self.units.iter().find(|(_, m)| m.unit.pid() == sender);
            let Some((i, _)) = found else {
                continue;
            };
            let fds = std::mem::take(&mut datagram.fds);
            self.units[i].unit.store_fds(&datagram.messages, fds);
            for m in datagram.messages {
                let event = match m {
                    // `--ready grace` or a probe: that only, by the user's choice.
                    Message::Ready
                        if matches!(
                            self.units[i].unit.service.ready,
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
        Ok(())
    }

    pub(super) fn set_status(&mut self, i: UnitId, text: &str, cx: &Shared<'_>) {
        if cx.single {
            let _ = cx.outer.status(text);
        }
        let unit = &mut self.units[i].unit;
        unit.status_text = text.to_string();
        unit.publish();
    }
}

/// The most datagrams read per wakeup of the loop (module docs).
const DATAGRAMS_PER_WAKEUP: usize = 256;
/// The interval over which notes about dropped datagrams are limited.
pub(super) const NOTE_INTERVAL: Duration = Duration::from_secs(10);
/// The most notes (one per sender pid) written per [`NOTE_INTERVAL`].
pub(super) const NOTES_PER_INTERVAL: usize = 8;

/// Rate-limited notes about dropped datagrams, on stderr (the supervisor's log): bounded
/// memory (the pids noted in the current interval, at most [`NOTES_PER_INTERVAL`]).
#[derive(Debug)]
pub(super) struct Notes {
    since: Instant,
    noted: Vec<Option<Pid>>,
    /// Dropped without a note in the current interval.
    more: u64,
}

impl Notes {
    pub(super) fn new(now: Instant) -> Notes {
        Notes {
            since: now,
            noted: Vec::new(),
            more: 0,
        }
    }

    /// Notes that a datagram from `sender` was dropped (`why` made only if written).
    pub(super) fn note(&mut self, sender: Option<Pid>, now: Instant, why: impl FnOnce() -> String) {
        if let Some(line) = self.line(sender, now, why) {
            eprintln!("daemonic: notify socket: {line}");
        }
    }

    /// What [`note`](Self::note) writes, if anything: the summary of the interval before
    /// first when one has ended.
    fn line(
        &mut self,
        sender: Option<Pid>,
        now: Instant,
        why: impl FnOnce() -> String,
    ) -> Option<String> {
        let mut summary = None;
        if now.saturating_duration_since(self.since) >= NOTE_INTERVAL {
            if self.more > 0 {
                summary = Some(format!(
                    "{} more dropped in the last {} s",
                    thousands(self.more),
                    now.saturating_duration_since(self.since).as_secs()
                ));
            }
            *self = Notes::new(now);
        }
        let note = if self.noted.contains(&sender) || self.noted.len() >= NOTES_PER_INTERVAL {
            self.more += 1;
            None
        } else {
            self.noted.push(sender);
            Some(daemonic::systemd::listen::printable(&why()).into_owned())
        };
        match (summary, note) {
            (Some(s), Some(n)) => Some(format!("{s}\ndaemonic: notify socket: {n}")),
            (s, n) => s.or(n),
        }
    }
}

/// `1234567` as `1,234,567`.
fn thousands(n: u64) -> String {
    let digits = n.to_string();
    let mut out = String::new();
    for (i, c) in digits.chars().enumerate() {
        if i > 0 && (digits.len() - i).is_multiple_of(3) {
            out.push(',');
        }
        out.push(c);
    }
    out
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn one_note_per_sender_and_a_cap_per_interval_then_a_summary() {
        let t0 = Instant::now();
        let mut notes = Notes::new(t0);
        let mut lines = Vec::new();
        for n in 0..100_000 {
            let pid = Some(Pid::from_raw(1000 + n % 50));
            lines.extend(notes.line(pid, t0, || "dropped".into()));
            assert!(notes.noted.len() <= NOTES_PER_INTERVAL);
        }
        assert_eq!(lines.len(), NOTES_PER_INTERVAL);
        assert_eq!(lines[0], "dropped");
        let later = notes
            .line(None, t0 + NOTE_INTERVAL, || "bad".into())
            .unwrap();
        assert_eq!(
            later,
            "99,992 more dropped in the last 10 s\n\
             daemonic: notify socket: bad"
        );
        assert_eq!(thousands(999), "999");
        assert_eq!(thousands(1_234_567), "1,234,567");
    }
}
