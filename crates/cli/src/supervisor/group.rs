//! A supervisor for a config file (`daemonic up`, `daemonic run -f`): services that come
//! and go while it runs, started in dependency order and stopped in reverse.
//!
//! Each unit has a [`Slot`] beside it with what the file adds to a lone service:
//! - **held**: a unit is created with its first actions held back; it is released (its
//!   first child spawned) once every service it depends on is *ready* — its `--ready`
//!   condition met and its readiness check, if it has one, passing — and any older
//!   version of the same service has finished.
//! - **down**: a unit asked to stop is stopped only once every unit that depends on it
//!   has finished (dependents first); a held unit just ends, never started.
//! - **retired**: a unit removed from the file, or replaced by a changed version, stops at
//!   once (without waiting for dependents) and is forgotten once final. A replacement
//!   takes over its pid-file lock; the replacement starts when the old one has finished.
//!
//! [`Supervisor::reconcile`] applies these rules after every turn of the loop: the rules
//! are declarative (what each unit wants), so a change made anywhere — a request, a
//! signal, an exit — is acted on in one place.
//!
//! Applying a file ([`Supervisor::apply`]) compares each service with the unit running it
//! by the service's full resolved description (every option, the environment read from
//! its env files): unchanged services are not touched at all, changed ones are replaced,
//! removed ones are stopped, new ones are started (when wanted).

use anyhow::{Context as _, Result};
use daemonic::pidfile::PidFile;
use daemonic::process::Exit;

use std::collections::{HashMap, HashSet};

use super::machine::{Action, Event};
use super::unit::{Context, Unit};
use super::{State, Supervisor, machine_config, seed};
use crate::config::{Condition, Config};
use crate::control::ControlServer;
use crate::state_dir::StateDir;

/// What a config-file supervisor runs from.
pub struct Group {
    pub config: Config,
    pub dirs: StateDir,
    /// Detached (`up`): output is captured to log files, and the supervisor stays until
    /// `down` even when every service has ended. In the foreground (`run -f`): output goes
    /// to the supervisor's stdout and stderr, `name | ` before each line (`capture::console`), and the supervisor ends with the last service (or with `main`).
    pub detached: bool,
}

/// What the file adds to a unit (see the module docs).
#[derive(Default)]
pub struct Slot {
    /// The last exit, once the unit has finished.
    pub exit: Option<Exit>,
    /// Final: stopped, exited, gave up — or held and then stopped, never started.
    pub finished: bool,
    pub been_ready: bool,
    /// The first actions, held until the dependencies are ready.
    pub held: Option<Vec<Action>>,
    pub deps: Vec<String>,
    /// What is waited for of each of `deps` (same order).
    pub conditions: Vec<Condition>,
    pub down: bool,
    /// The stop was delivered (a second one would escalate to SIGKILL).
    pub stop_sent: bool,
    pub retired: bool,
    /// The resolved service, to see whether an edit changed it.
    pub fingerprint: String,
    /// `<state-dir>/NAME.pid`, held while this unit runs the service.
    pub lock: Option<PidFile>,
}

/// What applying a file did, for `up` to print.
#[derive(Default, Debug)]
pub struct Applied {
    pub started: Vec<String>,
    pub replaced: Vec<String>,
    pub removed: Vec<String>,
    pub unchanged: Vec<String>,
}

impl Applied {
    pub fn summary(&self) -> String {
        let mut parts = Vec::new();
        for (what, names) in [
            ("started", &self.started),
            ("changed, restarted", &self.replaced),
            ("removed, stopped", &self.removed),
            ("unchanged", &self.unchanged),
        ] {
            if !names.is_empty() {
                parts.push(format!("{what}: {}", names.join(" ")));
            }
        }
        if parts.is_empty() {
            "nothing to do".into()
        } else {
            parts.join("; ")
        }
    }
}

impl Supervisor {
    /// The newest unit named `name`: the one requests and dependencies mean. A hash
    /// lookup: `reconcile`, `status` and `take_down` ask it per unit and per dependency, so
    /// a scan would make each of them quadratic in the number of services.
    pub fn find(&self, name: &str) -> Option<usize> {
        self.by_name.get(name).and_then(|v| v.last().copied())
    }

    /// Adds a unit (the newest of its name) and its slot.
    pub(super) fn push(&mut self, unit: Unit, slot: Slot) {
        self.by_name
            .entry(unit.name().to_string())
            .or_default()
            .push(self.units.len());
        self.units.push(unit);
        self.slots.push(slot);
    }

    /// `by_name` anew, after units were removed (their successors moved down).
    fn reindex(&mut self) {
        self.by_name.clear();
        for (i, u) in self.units.iter().enumerate() {
            self.by_name
                .entry(u.name().to_string())
                .or_default()
                .push(i);
        }
    }

    /// The units (not retired) that depend on each name: one pass over every unit's
    /// dependencies, so the questions asked per unit are lookups.
    fn dependents(&self) -> HashMap<String, Vec<usize>> {
        let mut map: HashMap<String, Vec<usize>> = HashMap::new();
        for (j, s) in self.slots.iter().enumerate() {
            if s.retired {
                continue;
            }
            for d in &s.deps {
                map.entry(d.clone()).or_default().push(j);
            }
        }
        map
    }

    /// Brings the running units in line with `config`: `targets` (with what they depend
    /// on; every service when `None`) are wanted up, and so are the one-shots in `rerun`,
    /// which run again even if unchanged and completed; see the module docs.
    pub fn apply(
        &mut self,
        config: Config,
        targets: Option<&[String]>,
        rerun: &[String],
        mut server: Option<&mut ControlServer>,
    ) -> Result<Applied> {
        let wanted = match targets {
            Some(t) => config.with_dependencies(&[t, rerun].concat())?,
            None => config.with_dependencies(&[])?,
        };
        let mut applied = Applied::default();
        for i in 0..self.units.len() {
            if !self.slots[i].retired && config.get(self.units[i].name()).is_none() {
                if !self.slots[i].finished {
                    applied.removed.push(self.units[i].name().to_string());
                }
                self.retire(i);
            }
        }
        let group = self
            .group
            .as_ref()
            .context("not a config-file supervisor")?;
        let (dirs, detached) = (group.dirs.clone(), group.detached);
        super::capture::console::widen(
            config
                .services
                .iter()
                .map(|d| d.name.len())
                .max()
                .unwrap_or(0),
        );
        let places: std::collections::HashMap<&str, usize> = config
            .services
            .iter()
            .enumerate()
            .map(|(i, d)| (d.name.as_str(), i))
            .collect();
        for name in config.start_order() {
            let def = config.get(&name).expect("in the start order");
            let log = detached.then(|| dirs.log_file(&name));
            super::limits::check(&def.args.limits.limits()).with_context(|| name.clone())?;
            let mut service = def.service(log)?;
            if !detached && service.log.is_none() {
                service.console = Some(super::capture::Console::new(&name, places[name.as_str()]));
            }
            let fingerprint = format!("{service:?}");
            let want = wanted.contains(&name);
            let live = self.find(&name).filter(|&i| !self.slots[i].retired);
            if let Some(i) = live {
                self.slots[i].deps = def.depends_on.clone();
                self.slots[i].conditions = def.conditions.clone();
                let same = self.slots[i].fingerprint == fingerprint;
                let running = !self.slots[i].finished && !self.slots[i].down;
                // A one-shot that completed is done: an unchanged one is not run again
                // (unless asked to be).
                let completed = self.units[i].state() == State::Completed
                    && !self.slots[i].down
                    && !rerun.contains(&name);
                match (same, want, running || completed) {
                    (true, true, true) => {
                        applied.unchanged.push(name);
                        continue;
                    }
                    // Unchanged and not wanted: left as it is, running or not.
                    (true, false, _) => continue,
                    (false, false, false) => {
                        self.retire(i);
                        continue;
                    }
                    _ => {}
                }
                if same {
                    applied.started.push(name.clone());
                } else {
                    applied.replaced.push(name.clone());
                }
                self.retire(i);
            } else if want {
                applied.started.push(name.clone());
            } else {
                continue;
            }
            let lock = self.take_lock(&name);
            self.add(
                service,
                fingerprint,
                (def.depends_on.clone(), def.conditions.clone()),
                lock,
                &dirs,
                server.as_deref_mut(),
            )
            .with_context(|| name.clone())?;
        }
        if let Some(g) = self.group.as_mut() {
            g.config = config;
        }
        Ok(applied)
    }

    /// A new held unit for `service` (its pid file locked, its control socket bound).
    fn add(
        &mut self,
        service: crate::service::Service,
        fingerprint: String,
        (deps, conditions): (Vec<String>, Vec<Condition>),
        lock: Option<PidFile>,
        dirs: &StateDir,
        server: Option<&mut ControlServer>,
    ) -> Result<()> {
        let name = service.name.clone();
        let lock = match lock {
            Some(l) => l,
            None => PidFile::lock(dirs.pid_file(&name))?,
        };
        if let Some(server) = server {
            server.listen_also(&dirs.control_socket(&name))?;
        }
        let config = machine_config(&service, false);
        let (unit, first) = Unit::new(service, config, seed(self.units.len()))?;
        self.push(
            unit.with_status_file(dirs.status_file(&name)),
            Slot {
                held: Some(first),
                deps,
                conditions,
                fingerprint,
                lock: Some(lock),
                ..Slot::default()
            },
        );
        Ok(())
    }

    /// The pid-file lock of the unit now running `name`, for its replacement.
    fn take_lock(&mut self, name: &str) -> Option<PidFile> {
        let i = self.find(name)?;
        self.slots[i].lock.take()
    }

    fn retire(&mut self, i: usize) {
        self.slots[i].retired = true;
        self.slots[i].down = true;
        self.units[i].forget_status_file();
    }

    /// Marks `names` and everything that depends on them down (every unit when empty).
    pub fn take_down(&mut self, names: &[String]) -> Vec<String> {
        let mut down: Vec<String> = if names.is_empty() {
            self.units.iter().map(|u| u.name().to_string()).collect()
        } else {
            names.to_vec()
        };
        let mut seen: HashSet<String> = down.iter().cloned().collect();
        let dependents = self.dependents();
        let mut k = 0;
        while k < down.len() {
            for &j in dependents.get(&down[k]).into_iter().flatten() {
                let name = self.units[j].name();
                if seen.insert(name.to_string()) {
                    down.push(name.to_string());
                }
            }
            k += 1;
        }
        for name in &down {
            if let Some(i) = self.find(name) {
                self.slots[i].down = true;
            }
        }
        down
    }

    /// Acts on what each unit wants (see the module docs) until nothing changes.
    pub fn reconcile(&mut self, cx: &Context<'_>) -> Result<()> {
        // Which units depend on which does not change while reconciling (no unit is added
        // or removed, no dependency edited), so it is worked out once.
        let dependents = self.dependents();
        loop {
            let mut changed = false;
            for i in 0..self.units.len() {
                changed |= self.reconcile_one(i, &dependents, cx)?;
            }
            if !changed {
                return Ok(());
            }
        }
    }

    fn reconcile_one(
        &mut self,
        i: usize,
        dependents: &HashMap<String, Vec<usize>>,
        cx: &Context<'_>,
    ) -> Result<bool> {
        let s = &self.slots[i];
        if s.finished {
            return Ok(false);
        }
        if s.down {
            if s.held.is_some() {
                let s = &mut self.slots[i];
                s.held = None;
                s.finished = true;
                return Ok(true);
            }
            let name = self.units[i].name();
            let waiting_for_dependents = !s.retired
                && dependents.get(name).into_iter().flatten().any(|&j| {
                    let d = &self.slots[j];
                    j != i && !d.finished && d.held.is_none()
                });
            if s.stop_sent || waiting_for_dependents {
                return Ok(false);
            }
            self.slots[i].stop_sent = true;
            if self.units[i].state() == State::Stopping {
                return Ok(true);
            }
            self.deliver(i, Event::StopRequested, cx)?;
            return Ok(true);
        }
        if s.held.is_none() || !self.may_start(i) {
            return Ok(false);
        }
        let first = self.slots[i].held.take().expect("held");
        let out = self.units[i].execute(first, cx)?;
        self.absorb(i, out, cx);
        Ok(true)
    }

    /// A held unit may start once no older version of it runs and every service it
    /// depends on is ready.
    fn may_start(&self, i: usize) -> bool {
        let versions = self.by_name.get(self.units[i].name());
        let older_runs = versions
            .into_iter()
            .flatten()
            .any(|&j| j < i && !self.slots[j].finished);
        !older_runs && self.waiting_for(i).is_empty()
    }

    /// The dependencies of unit `i` whose condition is not met yet, each with what it
    /// waits for (`to be ready`, `to complete`, …).
    pub fn waiting_for(&self, i: usize) -> Vec<(String, Condition)> {
        let s = &self.slots[i];
        s.deps
            .iter()
            .zip(
                s.conditions
                    .iter()
                    .copied()
                    .chain(std::iter::repeat(Condition::Ready)),
            )
            .filter(|(d, condition)| {
                !self.find(d).is_some_and(|j| {
                    let u = &self.units[j];
                    self.slots[j].held.is_none()
                        && match condition {
                            Condition::Started => u.generation() > 0,
                            Condition::Ready | Condition::Healthy => u.is_ready(),
                            Condition::CompletedSuccessfully => u.state() == State::Completed,
                        }
                })
            })
            .map(|(d, c)| (d.clone(), c))
            .collect()
    }

    /// Forgets retired units that have finished (their replacements, if any, go on).
    pub fn sweep(&mut self, server: Option<&mut ControlServer>) {
        let before = self.units.len();
        self.sweep_finished(server);
        if self.units.len() != before {
            self.reindex();
        }
    }

    fn sweep_finished(&mut self, mut server: Option<&mut ControlServer>) {
        let mut i = self.units.len();
        while i > 0 {
            i -= 1;
            if !(self.slots[i].retired && self.slots[i].finished) {
                continue;
            }
            let name = self.units[i].name().to_string();
            // Removed from `by_name` as it goes (units are removed from the last down, so
            // the indices below `i` are still right); what is left of the name is the rest.
            let versions = self.by_name.entry(name.clone()).or_default();
            versions.retain(|&j| j != i);
            let replaced = !versions.is_empty();
            self.units.remove(i);
            let slot = self.slots.remove(i);
            // What still waits for this unit gets its answer now, not never.
            for p in self.pending.iter().filter(|p| p.unit == i) {
                if let Some(server) = server.as_deref_mut() {
                    let why = format!("{name}: replaced or removed by an edit of the config file");
                    server.reply(p.conn, &crate::control::Response::Error(why));
                }
            }
            self.pending.retain(|p| p.unit != i);
            for p in &mut self.pending {
                if p.unit > i {
                    p.unit -= 1;
                }
            }
            if !replaced && let Some(g) = &self.group {
                let dirs = g.dirs.clone();
                if let Some(server) = server.as_deref_mut() {
                    server.stop_listening(&dirs.control_socket(&name));
                }
                let _ = std::fs::remove_file(dirs.status_file(&name));
                drop(slot.lock);
            }
        }
    }

    /// What `status` shows for unit `i`: a held unit is `waiting` (or `stopped`, if it
    /// was taken down before it started).
    pub fn shown_state(&self, i: usize) -> (&'static str, Option<String>) {
        let s = &self.slots[i];
        match (&s.held, s.finished) {
            (Some(_), _) => {
                let deps = self.waiting_for(i);
                let why = if deps.is_empty() {
                    "waiting for its older version to stop".to_string()
                } else {
                    let each: Vec<String> = deps
                        .iter()
                        .map(|(d, c)| format!("{d} {}", c.waited()))
                        .collect();
                    format!("waiting for {}", each.join(", "))
                };
                ("waiting", Some(why))
            }
            (None, true) if self.units[i].generation() == 0 => ("stopped", None),
            _ => (self.units[i].state().as_str(), None),
        }
    }

    /// Whether the loop is over: every unit finished (or, in the foreground, held with
    /// nothing left that could release it); a detached group waits for `down`.
    pub fn over(&self) -> bool {
        let idle = |i: usize| {
            self.slots[i].finished || (self.slots[i].held.is_some() && self.group.is_some())
        };
        let all_idle = (0..self.units.len()).all(idle);
        match &self.group {
            None => all_idle,
            Some(g) if g.detached => {
                self.ending && (0..self.units.len()).all(|i| self.slots[i].finished)
            }
            Some(_) => all_idle,
        }
    }
}
