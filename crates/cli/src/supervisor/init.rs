//! Init mode: the supervisor as a container's init.
//!
//! `daemonic run --init`, and `daemonic run` whenever it is PID 1 (unless `--no-init`).
//! PID 1 of a pid namespace has three duties that no other process has, and the
//! supervisor takes them on without a second process:
//!
//! 1. **Reap orphans.** Every process whose parent dies is reparented to the init of its
//!    namespace (or to the nearest *subreaper* above it), which must reap it or it stays a
//!    zombie — holding a pid and a process-table entry — for the life of the container.
//!    Outside PID 1, `--init` makes daemonic a subreaper (`PR_SET_CHILD_SUBREAPER`) so that
//!    its services' orphans come to it. At the end of every turn of the loop, and so after
//!    every SIGCHLD (which wakes the loop in init mode) and after every child of its own
//!    is reaped, [`process::reap_orphans`] reaps the zombies that are not the supervisor's
//!    own.
//!
//!    *Never stealing an exit status.* The supervisor's own children — each service's
//!    main process, exec probes, the on-give-up hook — are reaped through their pidfds,
//!    and their exit statuses drive the state machine. The library *claims* every child
//!    started with `process::spawn` until its pidfd has reaped it; the orphan reaper
//!    peeks at exited children (`waitid(…, WNOWAIT)`), reaps unclaimed ones only, and
//!    stops at the first claimed one. That child's pidfd is readable already, so the loop
//!    reaps it in the same or the next turn, and the orphans behind it are reaped at the
//!    end of that turn. Nothing polls, and an orphan waits at most one turn. (A handle
//!    dropped unreaped — an exec probe stuck in uninterruptible sleep — gives up its
//!    claim, so its zombie is reaped as an orphan; so is a sentinel someone killed.)
//!
//! 2. **Handle signals.** The kernel gives PID 1 no default signal actions: a signal it
//!    does not catch is dropped (only SIGKILL and SIGSTOP from the parent namespace
//!    reach it). So every signal a container runtime or an operator sends must be caught
//!    and given a meaning:
//!
//!    | signal | in init mode |
//!    |---|---|
//!    | SIGTERM, SIGINT | stop every service: its stop signal to its process group, the stop timeout, SIGKILL to the group; then exit with the main service's status (as without init mode) |
//!    | SIGPWR | the same (what `lxc-stop` sends to ask a container's init to shut down) |
//!    | SIGHUP | each main process gets its reload signal (as without init mode) |
//!    | SIGUSR1 | forwarded to each main process; daemonic also reopens its own log files |
//!    | SIGQUIT, SIGUSR2, SIGWINCH, SIGCONT, SIGALRM | forwarded as they are to each main process |
//!    | SIGCHLD | wakes the loop: orphans are reaped |
//!
//!    Forwarded means: through the main process's pidfd (never a reused pid), to that
//!    process only, as tini does by default and as systemd's `kill -HUP $MAINPID` — a
//!    wrapper script should `exec` the program. A service in backoff, with no process,
//!    misses the signal. Not caught, so with their default actions outside PID 1 and
//!    dropped as PID 1: SIGTSTP, SIGTTIN, SIGTTOU (forwarded, job control would stop the
//!    services but not daemonic; dumb-init forwards them and then stops itself).
//!
//! 3. **Exit with the program's status.** The supervisor ends when every service is
//!    final; `run` exits with the main service's last status (128+N if signal N killed
//!    it). When PID 1 exits, the kernel SIGKILLs everything left in its namespace: an
//!    orphan that escaped its service's process group (a daemon that called `setsid`) gets
//!    no SIGTERM first, as under tini or dumb-init. Outside PID 1 such orphans, if still
//!    running when daemonic exits, are handed to the next subreaper up (as with `tini -s`).
//!
//! **Sentinel and `PR_SET_PDEATHSIG` as PID 1.** Both exist so that nothing of a service
//! survives a killed supervisor. As PID 1 the kernel guarantees it outright: when the
//! init of a pid namespace dies, every other process in it is SIGKILLed. So PID 1 starts
//! no sentinel (one process less in the container); the parent-death signal stays
//! (harmless, and still right if the pid namespace is shared with an outer init). With
//! `--init` outside PID 1 both work as usual.

use anyhow::{Context as _, Result};
use daemonic::process;
use daemonic::{Event, Pid, Signal, Signals};

use super::unit::Unit;

/// What init mode does with a signal it catches beyond the supervisor's own (SIGTERM,
/// SIGINT, SIGHUP, SIGUSR1: see the module docs).
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
enum Meaning {
    /// Stop every service, like SIGTERM.
    Stop,
    /// Send it on to each service's main process.
    Forward,
    /// Only wake the loop, whose turn ends by reaping orphans.
    Reap,
}

/// The signals init mode catches in addition to the supervisor's own.
const CAUGHT: &[(Signal, Meaning)] = &[
    (Signal::SIGCHLD, Meaning::Reap),
    (Signal::SIGPWR, Meaning::Stop),
    (Signal::SIGQUIT, Meaning::Forward),
    (Signal::SIGUSR2, Meaning::Forward),
    (Signal::SIGWINCH, Meaning::Forward),
    (Signal::SIGCONT, Meaning::Forward),
    (Signal::SIGALRM, Meaning::Forward),
];

/// The supervisor is an init (see the module docs).
#[derive(Debug)]
pub struct Init {
    pid1: bool,
}

impl Init {
    /// Init mode if asked for (`--init`), or automatically as PID 1 unless `opt_out`
    /// (`--no-init`). Outside PID 1, makes this process a subreaper; call it before any
    /// child is started.
    pub fn wanted(asked: bool, opt_out: bool) -> Result<Option<Init>> {
        let pid1 = Pid::this() == Pid::from_raw(1);
        if opt_out || !(asked || pid1) {
            return Ok(None);
        }
        if !pid1 {
            process::become_subreaper().context("init mode")?;
        }
        Ok(Some(Init { pid1 }))
    }

    /// True when daemonic is PID 1 of its pid namespace: its death kills the namespace.
    pub fn is_pid1(&self) -> bool {
        self.pid1
    }

    /// Adds the signals init mode catches to `signals`.
    pub fn catch(&self, mut signals: Signals) -> Result<Signals> {
        for (sig, _) in CAUGHT {
            signals = signals.also(*sig).context("install signal handlers")?;
        }
        Ok(signals)
    }

    /// Carries out the init's part of the signal `events` (forwarding) and returns what
    /// is left for the supervisor: SIGPWR becomes [`Event::Shutdown`], SIGUSR1 is both
    /// forwarded and left as [`Event::ReopenLogs`].
    pub fn on_signals<'a>(
        &self,
        events: Vec<Event>,
        units: impl Iterator<Item = &'a Unit> + Clone,
    ) -> Vec<Event> {
        let mut left = Vec::new();
        for event in events {
            let event = match event {
                Event::ReopenLogs => {
                    forward(Signal::SIGUSR1, units.clone());
                    Event::ReopenLogs
                }
                Event::Signal(sig) => match meaning(sig) {
                    Some(Meaning::Stop) => Event::Shutdown,
                    Some(Meaning::Forward) => {
                        forward(sig, units.clone());
                        continue;
                    }
                    Some(Meaning::Reap) | None => continue,
                },
                other => other,
            };
            if !left.contains(&event) {
                left.push(event);
            }
        }
        left
    }

    /// Reaps the orphans that have exited (see the module docs); a failure is reported
    /// and the next turn tries again.
    pub fn reap_orphans(&self) {
        if let Err(e) = process::reap_orphans() {
            eprintln!("daemonic: reap orphans: {e}");
        }
    }
}

fn meaning(sig: Signal) -> Option<Meaning> {
    CAUGHT.iter().find(|(s, _)| *s == sig).map(|(_, m)| *m)
}

/// Sends `sig` to each service's main process, through its pidfd.
fn forward<'a>(sig: Signal, units: impl Iterator<Item = &'a Unit>) {
    for u in units {
        if let Some(c) = u.child() {
            // ESRCH: it has just exited; its exit is on its way to the loop.
            let _ = c.pidfd.signal(sig);
        }
    }
}
