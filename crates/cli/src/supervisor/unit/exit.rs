//! The end of a unit's child: reaping it, what is said about its exit, the give-up
//! hook.

use std::process::Command;
use std::time::Duration;

use anyhow::{Context as _, Result};
use daemonic::Signal;
use daemonic::process::{self, Exit};

use super::{Context, Unit, strip_internal};
use crate::supervisor::containment::{self, Cgroup};
use crate::supervisor::limits;
use crate::supervisor::machine::{Event, State};

/// How many of the program's last lines a failed first start shows.
pub(super) const TAIL_LINES: usize = 5;

impl Unit {
    /// Kills what is left of the exited child's group (with a cgroup: of the whole tree,
    /// and waits until it is gone), then reaps the child: its exit, as
    /// [`Event::OomKilled`] if the OOM killer killed in the group meanwhile.
    pub fn reap(&mut self) -> Result<Event> {
        let child = self
            .child
            .take()
            .context("supervisor bug: no child to reap")?;
        // The child is a zombie now: its pid still pins its process group id, so this
        // reaches only what is left of that group.
        child.signal_group(Signal::SIGKILL)?;
        let kills = self.cgroup().and_then(Cgroup::oom_kills);
        self.oom = matches!((self.oom_kills, kills), (Some(before), Some(now)) if now > before);
        if let Some(cg) = self.cgroup() {
            // SIGKILL cannot be held off: the wait is for the kernel to tear the
            // processes down, not for them to finish anything.
            if let Err(e) = cg.empty(self.service.stop_timeout) {
                self.note(&format!("{e:#}"));
            }
        }
        if self.subreaper {
            let spare: Vec<i32> = self.sentinel.into_iter().collect();
            containment::kill_descendants(&spare, self.service.stop_timeout);
        }
        let exit = loop {
            if let Some(exit) = child.pidfd.reap()? {
                break exit;
            }
        };
        // The killed orphans are this supervisor's children now; nobody else reaps them.
        if self.subreaper
            && let Err(e) = process::reap_orphans()
        {
            self.note(&format!("reap orphans: {e}"));
        }
        Ok(if self.oom {
            Event::OomKilled(exit)
        } else {
            Event::ChildExited(exit)
        })
    }

    /// The last exit as `status` shows it: `killed by the OOM killer: memory-max 256M`
    /// when it was (see [`reap`](Self::reap)).
    pub fn last_exit_text(&self) -> Option<String> {
        self.machine.last_exit().map(|e| self.exit_text(e))
    }

    pub(super) fn exit_text(&self, exit: Exit) -> String {
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
    pub(super) fn report_exit(&self, before: State, exit: Exit, cx: &Context<'_>) {
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
            let text = format!(
                "{program} {exit}; restart {} in {}ms",
                self.machine.restarts(),
                delay.as_millis()
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

    /// Runs the on-give-up hook once and waits for it (up to the stop timeout).
    pub(super) fn give_up(&self, last_exit: Exit, reason: &str) {
        let name = &self.service.name;
        self.note(&format!("gave up: {reason}"));
        let Some(hook) = &self.service.on_give_up else {
            return;
        };
        let mut cmd = Command::new("/bin/sh");
        strip_internal(&mut cmd);
        cmd.arg("-c")
            .arg(hook)
            .current_dir(&self.service.dir)
            .env("DAEMONIC_SERVICE", name)
            .env("DAEMONIC_LAST_EXIT", last_exit.shell_status().to_string())
            .env("DAEMONIC_REASON", reason);
        match run_to_end(&mut cmd, self.service.stop_timeout) {
            Ok(exit) if exit.success() => {}
            Ok(exit) => self.note(&format!("on-give-up hook {exit}")),
            Err(e) => self.note(&format!("on-give-up hook: {e:#}")),
        }
    }
}

/// Runs a helper command (own process group) to its end, SIGKILLing its group after
/// `limit`.
fn run_to_end(cmd: &mut Command, limit: Duration) -> Result<Exit> {
    let child = process::spawn(cmd)?;
    if !child.pidfd.wait_exit(limit)? {
        child.signal_group(Signal::SIGKILL)?;
        child.pidfd.wait_exit(Duration::from_secs(3600))?;
    }
    child.signal_group(Signal::SIGKILL)?;
    loop {
        if let Some(exit) = child.pidfd.reap()? {
            return Ok(exit);
        }
    }
}
