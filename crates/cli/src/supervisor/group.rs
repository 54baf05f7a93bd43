//! A supervisor for a config file (`daemonic up`, `daemonic run -f`): services that come
//! and go while it runs, started in dependency order and stopped in reverse.
//!
//! Each unit has a [`Standing`] beside it with what the file adds to a lone service:
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

use std::collections::{HashMap, HashSet};

use super::machine::Event;
use super::unit::{Shared, Unit};
use super::units::{Standing, UnitId};
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
    /// The units (not retired) that depend on each name: one pass over every unit's
    /// dependencies, so the questions asked per unit are lookups.
    fn dependents(&self) -> HashMap<String, Vec<UnitId>> {
        let mut map: HashMap<String, Vec<UnitId>> = HashMap::new();
        for (j, m) in self.units.iter() {
            if m.standing.retired {
                continue;
            }
            for d in &m.standing.deps {
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
        for id in self.units.ids() {
            let m = &self.units[id];
            if !m.standing.retired && config.get(m.unit.name()).is_none() {
                if !m.standing.finished {
                    applied.removed.push(m.unit.name().to_string());
                }
                self.retire(id);
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
            let fingerprint = fingerprint(&service);
            let want = wanted.contains(&name);
            if !self.needs_new_unit(&name, def, fingerprint, (want, rerun), &mut applied) {
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

    /// Compares the service `name` of the file (`def`, resolved to `fingerprint`) with
    /// the unit running it, if any; notes in `applied` what applying does to it. `true`
    /// when a new unit is to run it (the old one, if any, is retired).
    fn needs_new_unit(
        &mut self,
        name: &str,
        def: &crate::config::Def,
        fingerprint: u128,
        (want, rerun): (bool, &[String]),
        applied: &mut Applied,
    ) -> bool {
        let live = self
            .units
            .newest(name)
            .filter(|&i| !self.units[i].standing.retired);
        let Some(i) = live else {
            if want {
                applied.started.push(name.to_string());
            }
            return want;
        };
        let m = &mut self.units[i];
        m.standing.deps = def.depends_on.clone();
        m.standing.conditions = def.conditions.clone();
        let same = m.standing.fingerprint == fingerprint;
        let running = !m.standing.finished && !m.standing.down;
        // A one-shot that completed is done: an unchanged one is not run again (unless
        // asked to be).
        let completed = m.unit.state() == State::Completed
            && !m.standing.down
            && !rerun.iter().any(|r| r == name);
        match (same, want, running || completed) {
            (true, true, true) => {
                applied.unchanged.push(name.to_string());
                return false;
            }
            // Unchanged and not wanted: left as it is, running or not.
            (true, false, _) => return false,
            (false, false, false) => {
                self.retire(i);
                return false;
            }
            _ => {}
        }
        if same {
            applied.started.push(name.to_string());
        } else {
            applied.replaced.push(name.to_string());
        }
        self.retire(i);
        true
    }

    /// A new held unit for `service` (its pid file locked, its control socket bound).
    fn add(
        &mut self,
        service: crate::service::Service,
        fingerprint: u128,
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
        let (unit, first) = Unit::new(service, config, seed(self.units.next_id()))?;
        self.units.add(
            unit.with_status_file(dirs.status_file(&name)),
            Standing {
                held: Some(first),
                deps,
                conditions,
                fingerprint,
                lock: Some(lock),
                ..Standing::default()
            },
        );
        Ok(())
    }

    /// The pid-file lock of the unit now running `name`, for its replacement.
    fn take_lock(&mut self, name: &str) -> Option<PidFile> {
        let id = self.units.newest(name)?;
        self.units[id].standing.lock.take()
    }

    fn retire(&mut self, id: UnitId) {
        let m = &mut self.units[id];
        m.standing.retired = true;
        m.standing.down = true;
        m.unit.forget_status_file();
    }

    /// Marks `names` and everything that depends on them down (every unit when empty).
    pub fn take_down(&mut self, names: &[String]) -> Vec<String> {
        let mut down: Vec<String> = if names.is_empty() {
            self.units.units().map(|u| u.name().to_string()).collect()
        } else {
            names.to_vec()
        };
        let mut seen: HashSet<String> = down.iter().cloned().collect();
        let dependents = self.dependents();
        let mut k = 0;
        while k < down.len() {
            for &j in dependents.get(&down[k]).into_iter().flatten() {
                let name = self.units[j].unit.name();
                if seen.insert(name.to_string()) {
                    down.push(name.to_string());
                }
            }
            k += 1;
        }
        for name in &down {
            if let Some(id) = self.units.newest(name) {
                self.units[id].standing.down = true;
            }
        }
        down
    }

    /// Acts on what each unit wants (see the module docs) until nothing changes.
    pub fn reconcile(&mut self, cx: &Shared<'_>) -> Result<()> {
        // Which units depend on which does not change while reconciling (no unit is added
        // or removed, no dependency edited), so it is worked out once.
        let dependents = self.dependents();
        loop {
            let mut changed = false;
            for id in self.units.ids() {
                changed |= self.reconcile_one(id, &dependents, cx)?;
            }
            if !changed {
                return Ok(());
            }
        }
    }

    fn reconcile_one(
        &mut self,
        id: UnitId,
        dependents: &HashMap<String, Vec<UnitId>>,
        cx: &Shared<'_>,
    ) -> Result<bool> {
        let m = &self.units[id];
        let s = &m.standing;
        if s.finished {
            return Ok(false);
        }
        if s.down {
            if s.held.is_some() {
                let s = &mut self.units[id].standing;
                s.held = None;
                s.finished = true;
                return Ok(true);
            }
            let waiting_for_dependents = !s.retired
                && dependents
                    .get(m.unit.name())
                    .into_iter()
                    .flatten()
                    .any(|&j| {
                        let d = &self.units[j].standing;
                        j != id && !d.finished && d.held.is_none()
                    });
            if s.stop_sent || waiting_for_dependents {
                return Ok(false);
            }
            let stopping = m.unit.state() == State::Stopping;
            self.units[id].standing.stop_sent = true;
            if !stopping {
                self.deliver(id, Event::StopRequested, cx)?;
            }
            return Ok(true);
        }
        if s.held.is_none() || !self.may_start(id) {
            return Ok(false);
        }
        let first = self.units[id].standing.held.take().expect("held");
        self.carry_out(id, first, cx)?;
        Ok(true)
    }

    /// A held unit may start once no older version of it runs and every service it
    /// depends on is ready.
    fn may_start(&self, id: UnitId) -> bool {
        let versions = self.units.versions(self.units[id].unit.name());
        let older_runs = versions
            .iter()
            .any(|&j| j < id && !self.units[j].standing.finished);
        !older_runs && self.waiting_for(id).is_empty()
    }

    /// The dependencies of unit `id` whose condition is not met yet, each with what it
    /// waits for (`to be ready`, `to complete`, …).
    pub fn waiting_for(&self, id: UnitId) -> Vec<(String, Condition)> {
        let s = &self.units[id].standing;
        s.deps
            .iter()
            .zip(
                s.conditions
                    .iter()
                    .copied()
                    .chain(std::iter::repeat(Condition::Ready)),
            )
            .filter(|(d, condition)| {
                !self.units.newest(d).is_some_and(|j| {
                    let m = &self.units[j];
                    let u = &m.unit;
                    m.standing.held.is_none()
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

    /// Forgets retired units that have finished, and whose give-up hook (if any) has
    /// ended (their replacements, if any, go on). Their ids go with them; nothing else
    /// is renumbered.
    pub fn sweep(&mut self, mut server: Option<&mut ControlServer>) {
        let gone: Vec<UnitId> = self
            .units
            .iter()
            .filter(|(_, m)| m.standing.retired && m.standing.finished && !m.unit.busy())
            .map(|(id, _)| id)
            .collect();
        for id in gone {
            let Some(member) = self.units.remove(id) else {
                continue;
            };
            let name = member.unit.name().to_string();
            // What still waits for this unit gets its answer now, not never.
            let why = format!("{name}: replaced or removed by an edit of the config file");
            for p in self.pending.iter().filter(|p| p.unit == id) {
                if let Some(server) = server.as_deref_mut() {
                    server.reply(p.conn, &crate::control::Response::Error(why.clone()));
                }
            }
            self.pending.retain(|p| p.unit != id);
            let replaced = !self.units.versions(&name).is_empty();
            if !replaced && let Some(g) = &self.group {
                let dirs = g.dirs.clone();
                if let Some(server) = server.as_deref_mut() {
                    server.stop_listening(&dirs.control_socket(&name));
                }
                let _ = std::fs::remove_file(dirs.status_file(&name));
                drop(member.standing.lock);
            }
        }
    }

    /// What `status` shows for unit `id`: a held unit is `waiting` (or `stopped`, if it
    /// was taken down before it started).
    pub fn shown_state(&self, id: UnitId) -> (&'static str, Option<String>) {
        let m = &self.units[id];
        match (&m.standing.held, m.standing.finished) {
            (Some(_), _) => {
                let deps = self.waiting_for(id);
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
            (None, true) if m.unit.generation() == 0 => ("stopped", None),
            _ => (m.unit.shown_str(), None),
        }
    }

    /// Whether the loop is over: every unit finished (or, in the foreground, held with
    /// nothing left that could release it) and none still busy (a give-up hook running);
    /// a detached group waits for `down`.
    pub fn over(&self) -> bool {
        if self.units.units().any(Unit::busy) {
            return false;
        }
        let finished = |s: &Standing| s.finished;
        let idle = |s: &Standing| s.finished || (s.held.is_some() && self.group.is_some());
        let all = |f: &dyn Fn(&Standing) -> bool| self.units.iter().all(|(_, m)| f(&m.standing));
        match &self.group {
            Some(g) if g.detached => self.ending && all(&finished),
            _ => all(&idle),
        }
    }
}

/// What tells an edit of a service: 128 bits of digest of the resolved service (its
/// `Debug` text, every field), kept per unit instead of the text (about 1 KiB a service).
fn fingerprint(service: &crate::service::Service) -> u128 {
    use std::hash::{Hash as _, Hasher as _};
    let text = format!("{service:?}");
    let half = |salt: u8| {
        let mut h = std::hash::DefaultHasher::new();
        salt.hash(&mut h);
        text.hash(&mut h);
        h.finish()
    };
    (u128::from(half(0)) << 64) | u128::from(half(1))
}
