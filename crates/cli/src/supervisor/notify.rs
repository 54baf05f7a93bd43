//! Notify datagrams from the children: one socket for the supervisor (see
//! [`super::notify_socket`]); a datagram speaks for the unit whose tree its sender is in
//! (the kernel-verified sender pid), if that unit's `notify-access` lets it:
//!
//! - `main` (and `exec`: daemonic runs no control commands that notify): only the main
//!   process — the child daemonic started, or the pid it named with `MAINPID=`;
//! - `all` (the default): any process of the service's tree — in its cgroup, or a
//!   descendant of its main process in `/proc` (or in its process group) — so that
//!   `systemd-notify --ready` in a shell script counts, also as a non-root user (then
//!   it sends from its own pid, not the shell's).
//!
//! A sender in no service's tree never counts. Caveat (systemd's too): a sender that has
//! exited *and been reaped* before its datagram is read cannot be placed in a tree any
//! more (its `/proc` entry is gone); its datagram is dropped with a note saying so.
//!
//! The socket is reachable by every local user (it is listed in `/proc/net/unix`), so
//! what arrives is hostile until proven otherwise:
//!
//! - a datagram from a process in no service's tree is dropped *before* it is parsed
//!   (see [`NotifyListener::recv_from`]); one from a tree the access does not allow, and a
//!   malformed one, after; neither writes a line per datagram — [`Notes`] allows one
//!   note per sender pid and at most [`NOTES_PER_INTERVAL`] in all per [`NOTE_INTERVAL`],
//!   then one summary ("… 1,234 more dropped in the last 10 s"). A single service's
//!   ignored `READY=1` is also told to the waiting launcher as the status, so that
//!   `start`'s timeout message names it;
//! - at most [`DATAGRAMS_PER_WAKEUP`] datagrams are read per wakeup of the loop, so a
//!   flood cannot keep it from the control socket, exits and timers (the rest wait in the
//!   socket's queue, which the kernel bounds).
//!
//! **Reloading is a state** (as in systemd): `RELOADING=1` makes a ready service
//! `reloading` until its next `READY=1`; the `STATUS=` text is only ever set by
//! `STATUS=`. The reload's `MONOTONIC_USEC=` (the receipt time when absent) is what
//! `reload --wait` compares with the time it sent the reload signal.
//!
//! **`MAINPID=`** from an allowed sender names the service's main process, if that pid
//! is in the service's tree: it then gets the reload and watchdog signals, and
//! `notify-access = main` means it. **`EXTEND_TIMEOUT_USEC=`** while starting pushes the
//! start timeout to at least that long from now (the launcher of `start` is told too);
//! while stopping, the stop timeout (the SIGKILL waits).

use std::time::{Duration, Instant};

use anyhow::Result;
use daemonic::Pid;
use daemonic::systemd::listen::{Message, NotifyListener};
use daemonic::systemd::notify::State as Say;

use super::Supervisor;
use super::in_group::{cgroup_of, in_cgroup};
use super::machine::Event;
use super::unit::Shared;
use super::units::UnitId;
use crate::service::{NotifyAccess, Readiness};

/// How a sender relates to a unit.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
enum Role {
    Main,
    /// In the tree, not the main process.
    Tree,
}

impl Supervisor {
    /// Drains the notify socket into events of the units whose tree spoke.
    #[inline(never)] // see `Supervisor::run`: off the idle stack
    pub(super) fn on_datagrams(
        &mut self,
        listener: &NotifyListener,
        cx: &Shared<'_>,
    ) -> Result<()> {
        for _ in 0..DATAGRAMS_PER_WAKEUP {
            let mut sender = None;
            let mut owner = None;
            let received = listener.recv_from(|s| {
                sender = s.map(|s| s.pid);
                owner = sender.and_then(|pid| self.owner_of(pid));
                owner.is_some()
            });
            let now = Instant::now();
            let mut datagram = match received {
                Ok(Some(d)) => d,
                Ok(None) => {
                    self.notes.note(sender, now, || match sender {
                        None => "datagram from an unknown sender dropped".into(),
                        Some(p) if !std::path::Path::new(&format!("/proc/{p}")).exists() => {
                            format!(
                                "datagram from pid {p} dropped: it exited before it could be \
                                 placed in a service's tree"
                            )
                        }
                        Some(p) => {
                            format!("datagram from pid {p} dropped: in no service's tree")
                        }
                    });
                    continue;
                }
                Err(e) if e.os_error() == Some(libc::EAGAIN) => return Ok(()),
                Err(e) => {
                    self.notes.note(sender, now, || e.to_string());
                    continue;
                }
            };
            let Some((i, role)) = owner else { continue };
            let access = self.units[i].unit.service.notify_access;
            if role == Role::Tree && access != NotifyAccess::All {
                self.ignored(i, sender, &datagram.messages, access, cx);
                continue;
            }
            let fds = std::mem::take(&mut datagram.fds);
            self.units[i].unit.store_fds(&datagram.messages, fds);
            self.take(i, datagram.messages, cx)?;
        }
        Ok(())
    }

    /// A datagram from unit `i`'s tree that its access does not allow: a note (rate
    /// limited), and for a single service's `READY=1` the launcher's status.
    fn ignored(
        &mut self,
        i: UnitId,
        sender: Option<Pid>,
        messages: &[Message],
        access: NotifyAccess,
        cx: &Shared<'_>,
    ) {
        let what = if messages.contains(&Message::Ready) {
            "READY=1"
        } else {
            "datagram"
        };
        let pid = sender.map_or("?".into(), |p| p.to_string());
        let why = format!(
            "{what} from pid {pid} ignored: not the main process (notify-access = {})",
            access.as_str()
        );
        let name = self.units[i].unit.name().to_string();
        self.notes
            .note(sender, Instant::now(), || format!("{name}: {why}"));
        if cx.single && what == "READY=1" {
            let _ = cx.outer.status(&why);
        }
    }

    /// Carries out the messages of one allowed datagram of unit `i`, in order.
    fn take(&mut self, i: UnitId, messages: Vec<Message>, cx: &Shared<'_>) -> Result<()> {
        let stamp = messages.iter().find_map(|m| match m {
            Message::MonotonicUsec(t) => Some(*t),
            _ => None,
        });
        for m in messages {
            let event = match m {
                Message::Ready if self.units[i].unit.told.reloading.is_some() => {
                    let u = &mut self.units[i].unit;
                    u.told.reloaded = u.told.reloading.take();
                    u.publish();
                    if cx.single {
                        let _ = cx.outer.notify(&[Say::Ready]);
                    }
                    continue;
                }
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
                    if self.units[i].unit.state() == super::State::Ready {
                        let at = stamp.unwrap_or_else(monotonic_usec);
                        self.units[i].unit.told.reloading = Some(at);
                        self.units[i].unit.publish();
                        if cx.single {
                            let _ = cx.outer.notify(&[Say::Reloading]);
                        }
                    }
                    continue;
                }
                Message::Status(text) => {
                    self.set_status(i, &text, cx);
                    continue;
                }
                Message::MainPid(pid) => {
                    self.main_pid(i, pid);
                    continue;
                }
                Message::ExtendTimeoutUsec(usec) => {
                    let more = Duration::from_micros(usec);
                    let starting = self.units[i].unit.state() == super::State::Starting;
                    self.units[i].unit.extend_timeout(more, Instant::now());
                    if cx.single && starting {
                        let _ = cx.outer.notify(&[Say::ExtendTimeout(more)]);
                    }
                    continue;
                }
                Message::Errno(n) if cx.single => {
                    let _ = cx.outer.notify(&[Say::Errno(n)]);
                    continue;
                }
                _ => continue,
            };
            self.deliver(i, event, cx)?;
        }
        Ok(())
    }

    /// `MAINPID=pid` for unit `i`: taken if the pid is in its tree.
    fn main_pid(&mut self, i: UnitId, pid: Pid) {
        match self.owner_of(pid) {
            Some((j, _)) if j == i => match daemonic::process::PidFd::open(pid) {
                Ok(fd) => {
                    self.units[i].unit.told.main_pid = Some(fd);
                    self.units[i].unit.publish();
                }
                Err(e) => self.units[i]
                    .unit
                    .note(&format!("MAINPID={pid} ignored: {e}")),
            },
            _ => {
                let name = self.units[i].unit.name().to_string();
                self.notes.note(Some(pid), Instant::now(), || {
                    format!("{name}: MAINPID={pid} ignored: not a process of its tree")
                });
            }
        }
    }

    /// The unit whose tree `pid` is in, and how: its main process, or in its cgroup, or a
    /// descendant (or process group member) of its main process.
    fn owner_of(&self, pid: Pid) -> Option<(UnitId, Role)> {
        let live = |u: &super::Unit| u.child().is_some() || u.awaiting_daemon();
        let units = || self.units.iter().map(|(id, m)| (id, &m.unit));
        if let Some((i, _)) = units().find(|(_, u)| live(u) && u.main_pid() == Some(pid)) {
            return Some((i, Role::Main));
        }
        if let Some(cgroup) = cgroup_of(pid)
            && let Some((i, _)) = units()
                .find(|(_, u)| live(u) && u.cgroup().is_some_and(|c| in_cgroup(&cgroup, c.dir())))
        {
            return Some((i, Role::Tree));
        }
        let roots: Vec<(UnitId, i32)> = units()
            .filter_map(|(i, u)| Some((i, u.pid()?.as_raw())))
            .collect();
        let mut at = pid.as_raw();
        // Bounded: a chain of parents is short, and a loop in a racing /proc read ends.
        for _ in 0..64 {
            let (ppid, pgrp) = parent_and_group(at)?;
            if let Some(&(i, _)) = roots.iter().find(|(_, r)| *r == at || *r == pgrp) {
                return Some((i, Role::Tree));
            }
            if ppid == Pid::this().as_raw() {
                return self.adopter_of(Pid::from_raw(at));
            }
            if ppid <= 1 {
                return None;
            }
            at = ppid;
        }
        None
    }

    /// The forking service whose daemon is being looked for, if `orphan` (an unclaimed
    /// child of the supervisor) can only be of that one: the only
    /// service looking, without a cgroup (one with a cgroup places it by its group).
    fn adopter_of(&self, orphan: Pid) -> Option<(UnitId, Role)> {
        if daemonic::process::is_claimed(orphan) {
            return None;
        }
        let mut looking = self
            .units
            .iter()
            .filter(|(_, m)| m.unit.awaiting_daemon() && m.unit.cgroup().is_none());
        match (looking.next(), looking.next()) {
            (Some((i, _)), None) => Some((i, Role::Tree)),
            _ => None,
        }
    }

    pub(super) fn set_status(&mut self, i: UnitId, text: &str, cx: &Shared<'_>) {
        if cx.single {
            let _ = cx.outer.status(text);
        }
        self.units[i].unit.status_text = text.to_string();
        self.units[i].unit.publish();
    }
}

/// Now on `CLOCK_MONOTONIC` in microseconds (`MONOTONIC_USEC`'s clock).
pub fn monotonic_usec() -> u64 {
    nix::time::clock_gettime(nix::time::ClockId::CLOCK_MONOTONIC)
        .map(|t| t.tv_sec() as u64 * 1_000_000 + t.tv_nsec() as u64 / 1_000)
        .unwrap_or(0)
}

/// `pid`'s parent and process group, from `/proc/PID/stat`.
fn parent_and_group(pid: i32) -> Option<(i32, i32)> {
    let stat = std::fs::read_to_string(format!("/proc/{pid}/stat")).ok()?;
    let rest = &stat[stat.rfind(')')? + 2..];
    let mut f = rest.split(' ').skip(1);
    Some((f.next()?.parse().ok()?, f.next()?.parse().ok()?))
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
