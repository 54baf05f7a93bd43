//! The supervisor: the process that owns a set of services' children.
//!
//! `start` and `run` give it one service (crash isolation, like runit/s6); a config file
//! (`up`, `run -f`) gives it many (cheap per service, like supervisord; see [`group`]).
//! Each service is a [`unit`]:
//! a pure state machine ([`machine`], restart policy in [`policy`]) and the executor of
//! its actions.
//!
//! One `poll(2)` loop waits on everything at once — signals (as events), the shared
//! notify socket, each child's pidfd (readable when it exits), probe attempts (readiness,
//! liveness and readiness checks: [`probe`], [`health`]), and the earliest armed timer of
//! any unit (readiness grace, stop timeout, restart delay, watchdog, health checks). It
//! turns what it sees into machine events for the unit concerned. Nothing ticks while
//! idle: with every child ready, no watchdog and no health check, `poll` sleeps until
//! something happens. The first time it has had nothing to do for a second,
//! it gives back the pages only its start-up used — the executable's code and the heap's
//! free pages ([`daemonic::memory`]; `event_loop`).
//!
//! Where things are: this file holds the entry points ([`supervise`],
//! [`supervise_group`]); the `Supervisor` and its loop are `event_loop.rs` (one turn:
//! build the poll set → wait → dispatch → deliver each event to its unit → tidy; the
//! unit's machine returns actions, the executor carries them out and returns follow-up
//! events); the units, under stable ids, are [`units`]; the handlers of the loop's other
//! sources are `notify.rs` (datagrams), `signals.rs` and `requests/` (control requests,
//! one file each); a config file's rules are [`group`]. `docs/supervisor.md`, "How an
//! event flows", follows one event through it all.
//!
//! States, as `daemonic status` shows them: `starting` → `ready` → `stopping`, and after an
//! exit `backoff` → `starting` again, or one of the final `stopped`, `exited`, `gave-up`.
//! A ready child between `RELOADING=1` and `READY=1` is shown `reloading` (not a machine
//! state: see `notify`).
//! The supervisor ends when every unit is final. Readiness is forwarded to whoever waits
//! for the supervisor itself (the `daemonic start` launcher, systemd, an outer
//! supervisor) once every unit has been ready.
//!
//! Notify messages: one filesystem socket for the supervisor ([`notify_socket`]); a
//! datagram speaks for the unit whose tree its sender is in (the kernel-verified sender
//! pid), as that unit's `notify-access` allows (see `notify`).
//!
//! When a child exits, whatever is left of its process group is killed before the child
//! is reaped (while its pid still pins the group id), so no grandchild outlives it. If the
//! supervisor itself is killed, its children die with it (`PR_SET_PDEATHSIG`) and a
//! [`Sentinel`] kills their descendants, found by the `INVOCATION_ID` each child gets.
//!
//! In [`init`] mode (a container's PID 1, or `run --init`) the loop also reaps adopted
//! orphans and forwards signals to the services.
//!
//! **systemd's watchdog on the supervisor** (`WatchdogSec=` in a unit that runs
//! `daemonic run`): the loop pings at half the interval once readiness was forwarded —
//! one more deadline of the poll, none without a watchdog. A missed ping means the
//! supervisor is stuck; a failing service is handled by its own policy, not by systemd
//! restarting the supervisor (`docs/systemd.md`, "The watchdog through daemonic run").

pub mod capture;
pub mod child_env;
pub mod containment;
mod event_loop;
pub mod group;
pub mod health;
pub mod hook;
mod in_group;
pub mod init;
pub mod limits;
pub mod machine;
mod notify;
pub mod notify_socket;
pub mod policy;
pub mod probe;
pub mod proc_table;
mod requests;
mod signals;
mod sockets;
pub mod status_file;
pub mod unit;
pub mod units;

use std::os::fd::AsFd;
use std::path::PathBuf;
use std::time::SystemTime;

use anyhow::{Context as _, Result};
use daemonic::process::Exit;
use daemonic::sentinel::Sentinel;
use daemonic::{Running, Signal, Signals};

use crate::control::ControlServer;
use crate::service::{Readiness, Service};
use event_loop::Io;
pub(crate) use event_loop::Supervisor;
pub use group::Group;
use init::Init;
pub use machine::State;
use notify_socket::NotifySockets;
pub use status_file::StatusFile;
use unit::Shared;
pub use unit::Unit;
use units::UnitId;

/// A service to supervise, and where to keep its status file (if anywhere).
pub struct Entry {
    pub service: Service,
    pub status_file: Option<PathBuf>,
}

/// Supervises `entries` until every one has finished (stopped, exited without restart, or
/// gave up); returns each child's last exit, in the order given. With `control`, serves
/// the control socket at that path (the caller holds the pid-file lock that makes it
/// ours).
///
/// For a single service, failing to start the child is reported to `outer` (`STATUS=` and
/// `ERRNO=`) so a waiting launcher prints it. With `init`, the supervisor is an init
/// (see [`init`]).
pub fn supervise(
    entries: Vec<Entry>,
    outer: &Running,
    control: Option<PathBuf>,
    init: Option<Init>,
) -> Result<Vec<Exit>> {
    let pid1 = init.as_ref().is_some_and(Init::is_pid1);
    let ended = with_sentinel(outer, control, pid1, |server, sentinel| {
        run(Start::Entries(entries), outer, sentinel, server, init)
    })?;
    Ok(ended
        .into_iter()
        .map(|(_, exit)| exit.expect("every unit of a list is started"))
        .collect())
}

/// Supervises the services of a config file (see [`group`]) until `down` (detached) or
/// until they have all ended (in the foreground); `targets` are the services wanted up
/// at first (with what they depend on; all when empty). Serves its control socket at
/// `control` and each service's at `<state-dir>/NAME.sock`. Returns the last exit of the
/// file's `main` service (or of its only one), if it ran. With `init`, the supervisor is
/// an init (see [`init`]).
pub fn supervise_group(
    group: Group,
    targets: &[String],
    outer: &Running,
    control: PathBuf,
    init: Option<Init>,
) -> Result<Option<Exit>> {
    let main = group
        .config
        .main
        .clone()
        .or_else(|| match group.config.services.as_slice() {
            [only] => Some(only.name.clone()),
            _ => None,
        });
    let detached = group.detached;
    let pid1 = init.as_ref().is_some_and(Init::is_pid1);
    let ended = with_sentinel(outer, Some(control), pid1, |server, sentinel| {
        run(
            Start::Group(Box::new(group), targets),
            outer,
            sentinel,
            server,
            init,
        )
    })?;
    let exit = ended
        .into_iter()
        .rev()
        .find(|(name, _)| Some(name) == main.as_ref())
        .and_then(|(_, exit)| exit);
    match (main, exit) {
        // Its status is the supervisor's: no status is not success.
        (Some(main), None) if !detached => anyhow::bail!(
            "{main} never ran (stopped first, or what it depends on ended before it was ready)"
        ),
        (_, exit) => Ok(exit),
    }
}

/// Runs `body` with a sentinel started first (not as PID 1) and the control socket bound.
fn with_sentinel<T>(
    outer: &Running,
    control: Option<PathBuf>,
    pid1: bool,
    body: impl FnOnce(Option<&mut ControlServer>, Option<&Sentinel>) -> Result<T>,
) -> Result<T> {
    // First, while the process runs one thread: the sentinel keeps the pid-file lock
    // until it has cleaned up after a killed supervisor. Not as PID 1, whose death kills
    // every process of its pid namespace.
    let keep: Vec<_> = outer.pid_file().map(|p| p.as_fd()).into_iter().collect();
    let sentinel = (!pid1).then(|| Sentinel::start_exec("INVOCATION_ID", &keep));
    let sentinel = match sentinel.transpose() {
        Ok(s) => s,
        Err(e) => {
            eprintln!("daemonic: no sentinel, descendants may outlive a killed supervisor: {e}");
            None
        }
    };
    let result = match control.as_deref().map(ControlServer::bind).transpose() {
        Ok(mut server) => body(server.as_mut(), sentinel.as_ref()),
        Err(e) => Err(e),
    };
    if let Some(s) = sentinel {
        s.disarm().context("stop the sentinel")?;
    }
    result
}

/// What a supervisor starts from.
enum Start<'a> {
    /// Services given on the command line, all started at once.
    Entries(Vec<Entry>),
    /// A config file, and the services wanted up in it.
    Group(Box<Group>, &'a [String]),
}

/// Runs the loop; returns each unit's name and last exit (`None`: never started), in the
/// order the units were created.
fn run(
    start: Start<'_>,
    outer: &Running,
    sentinel: Option<&Sentinel>,
    mut control: Option<&mut ControlServer>,
    init: Option<Init>,
) -> Result<Vec<(String, Option<Exit>)>> {
    let mut signals = Signals::new().context("install signal handlers")?;
    if let Some(init) = &init {
        signals = init.catch(signals)?;
    } else if containment::top().is_err() {
        // A subreaper (containment without cgroups) is the parent of every orphan of its
        // service: each exit wakes the loop, whose turn ends by reaping them
        // (`Supervisor::tidy`), or their zombies would pile up while the service runs.
        signals = signals
            .also(Signal::SIGCHLD)
            .context("install signal handlers")?;
    }
    // A second SIGTERM escalates the stop instead of abandoning the children.
    signals
        .force_exit_on_second(false)
        .context("install signal handlers")?;
    // Many services need many descriptors; each child gets the usual limit back.
    if let Err(e) = daemonic::process::raise_nofile_limit() {
        eprintln!("daemonic: {e}");
    }
    let users = match &start {
        Start::Entries(e) => notify_socket::users(e.iter().map(|e| &e.service)),
        Start::Group(..) => notify_socket::Users::Several,
    };
    let sockets = NotifySockets::bind(control.as_deref().map(ControlServer::path), users)?;
    let cx = Shared {
        outer,
        notify: &sockets,
        sentinel,
        single: matches!(&start, Start::Entries(e) if e.len() == 1),
    };
    let mut sup = Supervisor::new(init);
    sup.begin(start, outer, control.as_deref_mut(), &cx)?;
    let mut io = Io {
        signals: &mut signals,
        notify: &sockets,
        control,
    };
    let result = sup.run(&mut io, &cx);
    // The last snapshots (`settle` below writes them first too, with a control socket).
    sup.write_statuses();
    // Whatever waits for a unit that has finished gets its answer, even on the way out.
    if let Some(server) = io.control {
        sup.settle(server, true);
    }
    result?;
    Ok(sup
        .units
        .iter()
        .map(|(_, m)| (m.unit.name().to_string(), m.standing.exit))
        .collect())
}

/// The machine's configuration for a service; `first_start_watched`: a launcher waits for
/// its first start with the same timeout (`daemonic start`).
fn machine_config(s: &Service, first_start_watched: bool) -> machine::Config {
    machine::Config {
        policy: s.policy.clone(),
        readiness: match s.ready {
            _ if s.kind == crate::service::Kind::Oneshot => machine::ReadyWhen::Exit,
            Readiness::Auto => machine::ReadyWhen::NotifyOrGrace(s.grace),
            Readiness::Notify => machine::ReadyWhen::Notify,
            Readiness::Grace => machine::ReadyWhen::Grace(s.grace),
            Readiness::Probe(_) => machine::ReadyWhen::Probe(s.probe.interval),
            Readiness::Log(_) => machine::ReadyWhen::Output,
            Readiness::Forking(_) => machine::ReadyWhen::Forked,
        },
        stop_signal: s.stop_signal,
        stop_timeout: s.stop_timeout,
        watchdog: s.watchdog,
        start_timeout: Some(s.start_timeout),
        first_start_watched,
        health: s.health.config(),
        memory_restart: s.memory_restart,
    }
}

/// A jitter seed that differs between supervisors and units started at the same moment.
fn seed(unit: UnitId) -> u64 {
    let nanos = SystemTime::now()
        .duration_since(SystemTime::UNIX_EPOCH)
        .map_or(0, |d| d.as_nanos() as u64);
    nanos ^ (u64::from(std::process::id()) << 32) ^ unit.number().wrapping_mul(0x9e37_79b9)
}
