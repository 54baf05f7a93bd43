//! The units of a supervisor, each under a stable [`UnitId`].
//!
//! An id is given once, when the unit is added, and never reused or renumbered: a unit
//! removed (a retired version of a service, forgotten once final) takes its id with it,
//! and whatever still names another unit — a pending control request, a descriptor of
//! the poll set — names the same unit as before. Ids grow with every unit added, so
//! their order is the order of creation: of two versions of a service, the older has
//! the smaller id.
//!
//! Beside each [`Unit`] the supervisor keeps its [`Standing`]: how it ended and what a
//! config file adds to it (see [`super::group`]).

use std::collections::{BTreeMap, HashMap};
use std::ops::{Index, IndexMut};

use daemonic::pidfile::PidFile;
use daemonic::process::Exit;

use super::machine::Action;
use super::unit::Unit;
use crate::config::Condition;

/// A unit's name inside its supervisor, for as long as the supervisor keeps it.
#[derive(Debug, Clone, Copy, PartialEq, Eq, PartialOrd, Ord, Hash)]
pub struct UnitId(u64);

impl UnitId {
    /// A number that differs between the units of one supervisor (a jitter seed).
    pub fn number(self) -> u64 {
        self.0
    }
}

/// A unit and its standing in the supervisor.
pub struct Member {
    pub unit: Unit,
    pub standing: Standing,
}

/// What the supervisor keeps beside a unit: how it ended, and what a config file adds to
/// it (held, down, retired: see [`super::group`]).
#[derive(Default)]
pub struct Standing {
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
    /// The resolved service's digest, to see whether an edit changed it.
    pub fingerprint: u128,
    /// `<state-dir>/NAME.pid`, held while this unit runs the service.
    pub lock: Option<PidFile>,
}

/// Every unit of a supervisor, in the order they were added.
#[derive(Default)]
pub struct Units {
    next: u64,
    /// Boxed: a member is 2.2 KiB, and a B-tree node holds eleven in place, about half of
    /// them empty after the splits of in-order inserts (measured with 3.3 KiB members:
    /// 5.2 KiB per unit at 100 units in place, 3.3 boxed).
    members: BTreeMap<UnitId, Box<Member>>,
    /// Each name's units, oldest first.
    by_name: HashMap<String, Vec<UnitId>>,
}

impl Units {
    /// The id the next unit added gets.
    pub fn next_id(&self) -> UnitId {
        UnitId(self.next)
    }

    /// Adds a unit (the newest of its name); its id.
    pub fn add(&mut self, unit: Unit, standing: Standing) -> UnitId {
        let id = UnitId(self.next);
        self.next += 1;
        self.by_name
            .entry(unit.name().to_string())
            .or_default()
            .push(id);
        self.members.insert(id, Box::new(Member { unit, standing }));
        id
    }

    /// Removes a unit; its id is not given again.
    pub fn remove(&mut self, id: UnitId) -> Option<Member> {
        let member = self.members.remove(&id)?;
        if let Some(versions) = self.by_name.get_mut(member.unit.name()) {
            versions.retain(|&v| v != id);
            if versions.is_empty() {
                self.by_name.remove(member.unit.name());
            }
        }
        Some(*member)
    }

    /// The newest unit named `name`: the one requests and dependencies mean. A hash
    /// lookup: `reconcile`, `status` and `take_down` ask it per unit and per dependency,
    /// so a scan would make each of them quadratic in the number of services.
    pub fn newest(&self, name: &str) -> Option<UnitId> {
        self.by_name.get(name).and_then(|v| v.last().copied())
    }

    /// The units named `name`, oldest first.
    pub fn versions(&self, name: &str) -> &[UnitId] {
        self.by_name.get(name).map_or(&[], Vec::as_slice)
    }

    /// Every id, oldest first (a copy: the caller may change the units as it goes).
    pub fn ids(&self) -> Vec<UnitId> {
        self.members.keys().copied().collect()
    }

    /// Every unit with its id, oldest first.
    pub fn iter(&self) -> impl Iterator<Item = (UnitId, &Member)> {
        self.members.iter().map(|(&id, m)| (id, &**m))
    }

    /// The units alone, oldest first.
    pub fn units(&self) -> impl Iterator<Item = &Unit> + Clone {
        self.members.values().map(|m| &m.unit)
    }
}

impl Index<UnitId> for Units {
    type Output = Member;

    /// The unit `id`: ids are handed out by the supervisor and dropped with their unit,
    /// so one that is missing is a bug.
    fn index(&self, id: UnitId) -> &Member {
        self.members
            .get(&id)
            .unwrap_or_else(|| panic!("supervisor bug: no unit {id:?}"))
    }
}

impl IndexMut<UnitId> for Units {
    fn index_mut(&mut self, id: UnitId) -> &mut Member {
        self.members
            .get_mut(&id)
            .unwrap_or_else(|| panic!("supervisor bug: no unit {id:?}"))
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::service::{Service, ServiceArgs};

    /// A unit of `name` that is never started (its first actions are dropped).
    fn unit(name: &str) -> Unit {
        let mut args = ServiceArgs::from_values(|_| Vec::new()).unwrap();
        args.command = vec!["true".into()];
        let service = Service::from_args(name.into(), args, None).unwrap();
        let config = super::super::machine_config(&service, false);
        Unit::new(service, config, 0).unwrap().0
    }

    /// What one service costs the supervisor of a config file, in place: the aim is
    /// supervisord's 7.8 KiB per extra service, all of it (docs/benchmarks.md). Parts that
    /// most services never use are boxed (probe attempts, health checks, the `--user`
    /// lookup); a field that makes this fail should be boxed too, or the bound argued.
    #[test]
    fn a_member_stays_small() {
        let size = std::mem::size_of::<Member>();
        assert!(size <= 2304, "a Member is {size} bytes");
    }

    #[test]
    fn a_removed_unit_takes_its_id_with_it_and_no_other_id_changes() {
        let mut units = Units::default();
        let a = units.add(unit("a"), Standing::default());
        let b = units.add(unit("b"), Standing::default());
        let a2 = units.add(unit("a"), Standing::default());
        assert!(a < b && b < a2, "ids follow the order of creation");
        assert_eq!(units.newest("a"), Some(a2));
        assert_eq!(units.versions("a"), [a, a2]);

        assert_eq!(
            units.remove(a).map(|m| m.unit.name().to_string()),
            Some("a".into())
        );
        // What named b or the newer a before names the same unit now.
        assert_eq!(units[b].unit.name(), "b");
        assert_eq!(units[a2].unit.name(), "a");
        assert_eq!(units.versions("a"), [a2]);
        assert_eq!(units.ids(), [b, a2]);
        assert!(units.remove(a).is_none(), "removed once");

        // A new unit never gets an id that was given before.
        let c = units.add(unit("c"), Standing::default());
        assert!(c > a2 && c != a);
        units.remove(b);
        assert_eq!(units.newest("b"), None);
        assert!(units.versions("b").is_empty());
    }
}
