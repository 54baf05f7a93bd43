//! The end of a unit's child: reaping it, tearing down what it left (its cgroup emptied
//! in the poll set), what is said about its exit, and the give-up hook.

use std::os::fd::AsFd;
use std::time::{Duration, Instant};

use anyhow::{Context as _, Result};
use daemonic::process::{self, Exit, PidFd};
use daemonic::{Pid, Signal};
use nix::poll::{PollFd, PollFlags};

use super::{Shared, Unit};
use crate::supervisor::containment::{self, Cgroup, Emptying};
use crate::supervisor::hook::{self, Hook};
use crate::supervisor::limits;
use crate::supervisor::machine::{Event, State};

/// How many of the program's last lines a failed first start shows.
pub(super) const TAIL_LINES: usize = 5;

/// What is left of a service being torn down, watched in the poll set: after its child
/// has exited and been reaped, what it left (the exit is reported once its cgroup is empty
/// and the descendants killed in subreaper mode have died); or before its first start,
/// what an earlier run left in its group. Either way until `deadline` at most.
#[derive(Debug)]
pub(super) struct Drain {
    then: Then,
    emptying: Option<Emptying>,
    /// Subreaper mode: the descendants SIGKILLed, until each has died.
    killed: Vec<PidFd>,
    deadline: Instant,
    /// Stop and restart requests that came meanwhile, for after the exit.
    deferred: Vec<Event>,
}

/// What follows a drain.
#[derive(Debug)]
enum Then {
    /// The child's exit, for the machine.
    Exit(Event),
    /// The first start, which waited; how many leftovers were killed.
    Spawn { leftovers: usize },
}

/// What the loop does once a drain is over.
pub enum Resume {
    /// Delivers this event to the unit.
    Event(Event),
    /// Has the unit carry out its spawn again (the group is empty now).
    Spawn,
}

impl Drain {
    /// The first start waits for `leftovers` processes of an earlier run to go.
    pub(super) fn leftovers(emptying: Emptying, leftovers: usize, deadline: Instant) -> Drain {
        Drain {
            then: Then::Spawn { leftovers },
            emptying: Some(emptying),
            killed: Vec::new(),
            deadline,
            deferred: Vec::new(),
        }
    }

    /// The first start waits for the processes of an earlier run it found by their tree
    /// mark and SIGKILLed (`killed`) to die.
    pub(super) fn marked_leftovers(killed: Vec<PidFd>, deadline: Instant) -> Drain {
        Drain {
            then: Then::Spawn {
                leftovers: killed.len(),
            },
            emptying: None,
            killed,
            deadline,
            deferred: Vec::new(),
        }
    }
}

impl Unit {
    /// The child's pidfd was readable: kills what is left of its process group, reaps it,
    /// and kills what is left of its tree. Its exit (as [`Event::OomKilled`] if the OOM
    /// killer killed in the group meanwhile) — or `None` while its cgroup empties, watched
    /// in the poll set ([`Self::advance_drain`]).
    ///
    /// A forking service's started process that exits with a success status while
    /// starting leaves its daemon, which is looked for instead ([`super::forking`]).
    pub fn on_exited(&mut self, now: Instant) -> Result<Option<Event>> {
        let child = self
            .child
            .take()
            .context("supervisor bug: no child to reap")?;
        // A forking program that exits 0 while starting leaves its daemon, which may be in
        // its process group: that group is left alone (its status is read unreaped first).
        let forked = self.forking()
            && self.machine.state() == State::Starting
            && child.pidfd.peek_exit()?.is_some_and(Exit::success);
        // The child is a zombie now: its pid still pins its process group id, so this
        // reaches only what is left of that group.
        if !forked {
            child.signal_group(Signal::SIGKILL)?;
        }
        let Some(exit) = child.pidfd.reap()? else {
            // A readable pidfd is an exited child: this is not expected. Kept, and looked
            // at again when the loop wakes next.
            self.child = Some(child);
            return Ok(None);
        };
        if forked {
            return self.look_for_daemon(exit, now);
        }
        let kills = self.cgroup().and_then(Cgroup::oom_kills);
        self.oom = matches!((self.oom_kills, kills), (Some(before), Some(now)) if now > before);
        let event = if self.oom {
            Event::OomKilled(exit)
        } else {
            Event::ChildExited(exit)
        };
        self.tear_down(event, now)
    }

    /// Kills what is left of the service's tree after its child has gone: `event` (its
    /// exit) at once when nothing is left, or `None` while its cgroup empties and the
    /// descendants killed die, watched in the poll set ([`Self::advance_drain`]).
    pub(super) fn tear_down(&mut self, event: Event, now: Instant) -> Result<Option<Event>> {
        // SIGKILL cannot be held off: what is waited for is the kernel tearing the
        // processes down, not them finishing anything.
        let emptying = match self.cgroup().map(Cgroup::start_emptying).transpose() {
            Ok(e) => e.flatten(),
            Err(e) => {
                self.note(&format!("{e:#}"));
                None
            }
        };
        let killed = match (self.subreaper, self.mark) {
            (true, _) => {
                let spare: Vec<i32> = self.sentinel.into_iter().collect();
                containment::kill_descendants(&spare)
            }
            // Not a subreaper (one of many services): its orphans went to init, where
            // only the tree mark finds them.
            (false, Some(mark)) => mark.kill(&[]),
            (false, None) => Vec::new(),
        };
        if emptying.is_none() && killed.is_empty() {
            return Ok(Some(event));
        }
        self.draining = Some(Drain {
            then: Then::Exit(event),
            emptying,
            killed,
            deadline: now + self.service.stop_timeout,
            deferred: Vec::new(),
        });
        Ok(None)
    }

    /// While the exited child's tree is torn down: the emptying cgroup's `cgroup.events`
    /// and the killed descendants' pidfds, for the poll set.
    pub fn drain_fds(&self) -> Vec<PollFd<'_>> {
        let Some(d) = &self.draining else {
            return Vec::new();
        };
        let pidfds = d
            .killed
            .iter()
            .map(|h| PollFd::new(h.as_fd(), PollFlags::POLLIN));
        d.emptying
            .iter()
            .map(Emptying::poll_fd)
            .chain(pidfds)
            .collect()
    }

    /// When the emptying of the exited child's cgroup is given up on.
    pub(super) fn drain_deadline(&self) -> Option<Instant> {
        self.draining.as_ref().map(|d| d.deadline)
    }

    /// Whether the exited child's tree is still being torn down.
    pub fn draining(&self) -> bool {
        self.draining.is_some()
    }

    /// Looks at what is being torn down if one of its descriptors was ready (`woken`) or
    /// the deadline has passed: once the cgroup is empty and every killed descendant has
    /// died (or the deadline has passed, which is said), the exit, and the requests
    /// deferred meanwhile.
    pub fn advance_drain(&mut self, woken: bool, now: Instant) -> Option<(Resume, Vec<Event>)> {
        let d = self.draining.as_mut()?;
        if !woken && d.deadline > now {
            return None;
        }
        // A pidfd is readable once its process has died: asked without waiting.
        d.killed
            .retain(|h| !h.wait_exit(Duration::ZERO).unwrap_or(true));
        let mut error = None;
        if let Some(e) = d.emptying.as_mut() {
            match e.is_empty() {
                Ok(true) => d.emptying = None,
                Ok(false) => {}
                Err(why) => {
                    error = Some(format!("{why:#}"));
                    d.emptying = None;
                }
            }
        }
        let done = d.emptying.is_none() && d.killed.is_empty();
        if !done && d.deadline > now {
            return None;
        }
        let d = self.draining.take()?;
        if let Some(why) = error {
            self.note(&why);
        }
        if !done {
            let mut left: Vec<String> = d
                .emptying
                .iter()
                .map(|e| format!("cgroup {}", e.dir().display()))
                .collect();
            if !d.killed.is_empty() {
                let pids: Vec<Pid> = d.killed.iter().map(PidFd::pid).collect();
                left.push(format!("processes {pids:?}"));
            }
            self.note(&format!(
                "{} still there {} after SIGKILL",
                left.join(", "),
                crate::human::span(self.service.stop_timeout)
            ));
        }
        // The killed orphans are this supervisor's children now; nobody else reaps them.
        if self.subreaper
            && let Err(e) = process::reap_orphans()
        {
            self.note(&format!("reap orphans: {e}"));
        }
        let resume = match d.then {
            Then::Exit(event) => Resume::Event(event),
            Then::Spawn { .. } if !done => {
                self.spawn_failed = true;
                Resume::Event(Event::SpawnFailed(Exit::Code(126)))
            }
            Then::Spawn { leftovers } => {
                self.note_leftovers(leftovers, &self.leftovers_found());
                Resume::Spawn
            }
        };
        Some((resume, d.deferred))
    }

    /// An event for this unit, unless its exited child's tree is being torn down: then a
    /// stop or restart request waits for the exit, and anything else (news of the child
    /// that is gone, its timers) is dropped.
    pub fn admit(&mut self, event: Event) -> Option<Event> {
        let Some(d) = self.draining.as_mut() else {
            return Some(event);
        };
        if matches!(event, Event::StopRequested | Event::RestartRequested) {
            d.deferred.push(event);
        }
        None
    }

    /// The last exit as `status` shows it: `killed by the OOM killer: memory-max 256M`
    /// when it was (see [`on_exited`](Self::on_exited)).
    pub fn last_exit_text(&self) -> Option<String> {
        self.machine.last_exit().map(|e| self.exit_text(e))
    }

    pub(super) fn exit_text(&self, exit: Exit) -> String {
        if let Some(why) = &self.fork_failure {
            return format!("{exit}, {why}");
        }
        if !self.oom {
            return exit.to_string();
        }
        match self.service.limits.memory_max {
            Some(max) => format!(
                "killed by the OOM killer: memory-max {} ({exit})",
                limits::show_size(max)
            ),
            None => format!("killed by the OOM killer ({exit})"),
        }
    }

    /// Tells the user (stderr) and a waiting launcher what became of an exit.
    pub(super) fn report_exit(&self, before: State, exit: Exit, cx: &Shared<'_>) {
        let program = crate::service::default_name(&self.service.program);
        let exit = self.exit_text(exit);
        let state = self.machine.state();
        if cx.single
            && !self.spawn_failed
            && before == State::Starting
            && matches!(state, State::Exited | State::GaveUp)
        {
            // The program's own last words from this start, then the reason: what a
            // launcher waiting in a terminal shows (`start`'s progress).
            if cx.outer.detached() {
                for line in self.log_tail(TAIL_LINES) {
                    let _ = cx.outer.status(&format!("| {line}"));
                }
            }
            let _ = cx
                .outer
                .fail(&format!("{program} {exit} before it was ready"), None);
        }
        match state {
            State::Exited => self.note(&format!(
                "{program} {exit}; not restarted (--restart {})",
                self.service.policy.restart.as_str()
            )),
            State::Stopped => self.note(&format!("{program} {exit}; stopped")),
            _ => {}
        }
        if state == State::Backoff
            && let Some(delay) = self.machine.delays().last()
        {
            // Before the first ready, which attempt comes next of how many.
            let attempt = match self.machine.attempt() {
                Some((n, all)) => format!(" (attempt {n} of {all})"),
                None => String::new(),
            };
            let text = format!(
                "{program} {exit}; restart {}{attempt} in {}",
                self.machine.restarts(),
                crate::human::span(delay)
            );
            // A launcher still waiting shows each attempt (after readiness it is gone).
            if cx.single && cx.outer.detached() && before == State::Starting {
                let _ = cx.outer.status(&text);
            }
            self.note(&text);
        }
    }

    /// The last `n` lines the program wrote since the supervisor first started it (its
    /// captured log from the first spawn on, without the supervisor's own notes), at most
    /// 64 KiB back from the end.
    pub(super) fn log_tail(&self, n: usize) -> Vec<String> {
        use std::io::{Read, Seek, SeekFrom};
        let (Some(log), Some(start)) = (&self.service.log, self.log_start) else {
            return Vec::new();
        };
        let Ok(mut file) = daemonic::logging::open_log_file(&log.path) else {
            return Vec::new();
        };
        let end = file.metadata().map_or(0, |m| m.len());
        let from = start.max(end.saturating_sub(64 * 1024));
        let mut text = String::new();
        if file.seek(SeekFrom::Start(from)).is_err()
            || file.take(end - from).read_to_string(&mut text).is_err()
        {
            return Vec::new();
        }
        let prefix = format!("daemonic: {}: ", self.service.name);
        let lines: Vec<String> = text
            .lines()
            .filter(|l| !l.contains(&prefix))
            .map(str::to_string)
            .collect();
        lines[lines.len().saturating_sub(n)..].to_vec()
    }

    /// Starts the on-give-up hook (see [`hook`](crate::supervisor::hook)), if the
    /// service has one; it runs in the poll set.
    pub(super) fn give_up(&mut self, last_exit: Exit, reason: &str, now: Instant) {
        self.note(&format!("gave up: {reason}"));
        let Some(command) = &self.service.on_give_up else {
            return;
        };
        let given = hook::Given {
            service: &self.service.name,
            last_exit,
            reason,
            dir: &self.service.dir,
        };
        match Hook::start(command, &given, self.service.stop_timeout, now) {
            Ok(h) => self.hook = Some(h),
            Err(e) => self.note(&format!("on-give-up hook: {e:#}")),
        }
    }

    /// The running on-give-up hook's pidfd, for the poll set.
    pub fn hook_fd(&self) -> Option<PollFd<'_>> {
        self.hook.as_ref().map(Hook::poll_fd)
    }

    /// Moves the on-give-up hook on (`exited`: its pidfd was readable): kills it at its
    /// time limit, notes a failure once it has ended.
    pub fn advance_hook(&mut self, exited: bool, now: Instant) {
        let Some(h) = self.hook.as_mut() else {
            return;
        };
        match h.advance(exited, now) {
            Ok(None) => {}
            Ok(Some(exit)) => {
                self.hook = None;
                if !exit.success() {
                    self.note(&format!("on-give-up hook {exit}"));
                }
            }
            Err(e) => {
                self.hook = None;
                self.note(&format!("on-give-up hook: {e:#}"));
            }
        }
    }

    /// Whether something of this unit still runs after it became final (its give-up
    /// hook), or its child's tree is still being torn down: the unit is not done yet.
    pub fn busy(&self) -> bool {
        self.hook.is_some() || self.draining.is_some()
    }
}
