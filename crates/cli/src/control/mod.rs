//! The control socket: how `daemonic status`, `list`, `restart`, `reload` and `signal` talk
//! to a running supervisor.
//!
//! Each supervisor listens on a unix stream socket, `<state-dir>/<name>.sock`, mode 0600 in
//! the 0700 state directory. A client connects, sends **one request**, reads **one
//! response**, and the supervisor closes the connection. There is no session and no
//! pipelining: one connection, one question.
//!
//! # Who may ask
//!
//! Only the supervisor's owner (its effective uid) and root. File modes already keep
//! others out; the server checks the peer's credentials (`SO_PEERCRED`, filled in by the
//! kernel at `connect`, so a client cannot lie about them) as well, so a socket or
//! directory made wider by mistake lets nobody else in. A refused peer gets
//! `permission denied: uid N is not the owner` and its request is never read.
//!
//! # Frames
//!
//! Both directions use the same frame ([`wire`]):
//!
//! ```text
//! +------+------+------+------+---------+-----------------------+----------------+
//! | 'd'  | 'm'  | 'n'  | 'c'  | version | payload length (u32,  | payload (UTF-8,|
//! |      magic (4 bytes)      |  = 1    | big-endian)           | ≤ 64 KiB)      |
//! +------+------+------+------+---------+-----------------------+----------------+
//! ```
//!
//! The magic rejects a peer that is not speaking this protocol at all; the version lets a
//! later daemonic change the payload without an old supervisor misreading it (a mismatch
//! is an error naming both versions, never a guess); the length is checked against the cap
//! *before* the payload is read, so a client cannot make the supervisor buffer more than
//! 64 KiB.
//!
//! # Payloads
//!
//! `key=value` lines ([`message`]), each ending in `\n`. In values, a backslash is written
//! `\\` and a newline `\n`; nothing else is escaped. A request starts with `op=`:
//!
//! ```text
//! op=signal
//! name=web
//! signal=SIGUSR1
//! ```
//!
//! A response starts with `response=` (`services`, `done` or `error`). A `services`
//! response holds one record per service, each starting at its `name=` line:
//!
//! ```text
//! response=services
//! name=web
//! state=ready
//! pid=4242
//! supervisor_pid=4241
//! ...
//! ```
//!
//! Requests are decoded strictly — an unknown op, a missing, repeated, ill-typed or
//! unknown field is an error — because a request the supervisor half-understands must not
//! be acted on. Responses are decoded leniently about *unknown* fields (ignored), so a
//! newer supervisor can report more about a service to an older client.
//!
//! # The server never blocks
//!
//! [`ControlServer`] is made for the supervisor's single-threaded `poll(2)` loop: it gives
//! the descriptors to poll ([`ControlServer::fds`]), reads whatever is ready without
//! blocking ([`ControlServer::poll_requests`]), and names the next moment it must be
//! called even if nothing happens ([`ControlServer::next_deadline`]: a client that has
//! not sent a whole request within 5 s is dropped). At most 16 connections are open at
//! once; beyond that a new one is answered `too many connections` and closed (accepting
//! and closing, rather than leaving it in the backlog, keeps the listener from staying
//! readable and spinning the loop). Every request that [`ControlServer::poll_requests`]
//! returns must be answered, exactly once, with [`ControlServer::reply`].
//!
//! A malformed request — wrong magic or version, too long, cut short, not UTF-8, unknown
//! op, bad field — is answered with [`Response::Error`] naming what was wrong, the
//! connection is closed, and the request is never returned to the caller.

mod client;
pub mod json;
pub mod message;
mod server;
pub mod wire;

use std::path::Path;

use anyhow::{Result, bail};

pub use client::{ForeignServer, NotListening, call};
pub use server::{ConnId, ControlServer, MAX_CONNECTIONS, REQUEST_TIMEOUT, WRITE_TIMEOUT};

/// What a client asks a supervisor.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Request {
    /// The state of one service (`name`), or of every service of this supervisor (`None`).
    Status { name: Option<String> },
    /// Every service of this supervisor (what `daemonic list` shows).
    List,
    /// Stop the service (its stop signal, its timeout, then SIGKILL to its process group).
    Stop { name: String },
    /// Stop the service's program and start it again.
    Restart { name: String },
    /// Ask the service's program to reload (its reload signal); with `wait`, answered
    /// when it has (`RELOADING=1` stamped after the signal, then `READY=1`).
    Reload { name: String, wait: bool },
    /// Reopen the service's log files (after logrotate renamed them: its `create` mode).
    Reopen { name: String },
    /// Send `signal` to the service's program.
    Signal {
        name: String,
        signal: daemonic::Signal,
    },
    /// (A supervisor of a config file.) Read the file again and apply it: start `names`
    /// and what they depend on (every service when empty), restart what changed, stop
    /// what was removed. Answered at once, with what it did. The one-shots in `rerun` run
    /// again even if unchanged and completed (an optional field: absent from an older
    /// client's request).
    Up {
        names: Vec<String>,
        rerun: Vec<String>,
    },
    /// (A supervisor of a config file.) Stop `names` and what depends on them, dependents
    /// first (every service, and then the supervisor, when empty). Answered at once.
    Down { names: Vec<String> },
}

/// One service, as a supervisor reports it.
#[derive(Debug, Clone, PartialEq, Eq, Default)]
pub struct ServiceInfo {
    pub name: String,
    /// `starting`, `ready`, `stopping`, `backoff`, `stopped`, `exited` or `gave-up`.
    pub state: String,
    /// The program's pid; none between runs.
    pub pid: Option<i32>,
    /// The supervisor's pid; 0 only while it is not known yet (a service that is still
    /// starting, read from its status file before the supervisor has written its pid).
    pub supervisor_pid: i32,
    /// When the service entered `state`, in seconds since the Unix epoch; 0 only while
    /// not known yet (like `supervisor_pid`).
    pub since_unix: u64,
    pub restarts: u32,
    /// How the last run ended, as a person reads it (`exited with status 3`).
    pub last_exit: Option<String>,
    /// The restart delay being waited out (in `backoff`).
    pub next_delay_ms: Option<u64>,
    /// The restart delays chosen so far (the most recent ones), oldest first.
    pub delays_ms: Vec<u64>,
    /// The program's own `STATUS=` text (empty if it sent none).
    pub status: String,
    /// CPU time used by the program and the children it has reaped, in milliseconds.
    pub cpu_ms: Option<u64>,
    /// The program's resident memory, in bytes.
    pub rss_bytes: Option<u64>,
    /// Where the program's output goes, when daemonic captures it to a file.
    pub log_file: Option<String>,
    /// The project of the config file the service comes from (`daemonic up`); none for a
    /// service of its own supervisor (`daemonic start`).
    pub group: Option<String>,
    /// The health checks' verdict while ready: `healthy`, `checking` (no readiness
    /// verdict yet) or `unhealthy: why`, with failures in a row after a `;` or `:`; none
    /// without checks or when not ready.
    pub health: Option<String>,
    /// Ready, as dependents and `status --ready` mean it: in state `ready` with its
    /// readiness check (if it has one) passing (not `checking` or `unhealthy`) — the
    /// supervisor's own verdict, not read back from `state` and `health`. A completed
    /// one-shot is not `ready` (its state says `completed`). Absent from an older
    /// supervisor's answer: not ready.
    pub ready: bool,
    /// What holds the service's processes together: `cgroup /sys/fs/cgroup/…`, or
    /// `process group` (see `supervisor::containment`); none when not known.
    pub containment: Option<String>,
    /// How many processes the service's whole tree has (its cgroup's).
    pub tree_processes: Option<u64>,
    /// The whole tree's memory, in bytes (`memory.current`, else the sum of its
    /// processes' resident sets).
    pub tree_memory_bytes: Option<u64>,
    /// The whole tree's CPU time so far, in milliseconds (`cpu.stat`).
    pub tree_cpu_ms: Option<u64>,
    /// Lines of the program's output its log files dropped because they could not be
    /// written (a full disk); none when none were.
    pub log_lines_dropped: Option<u64>,
    /// The last write error of a log file that dropped lines (`write /var/log/web.log: No
    /// space left on device (os error 28)`).
    pub log_error: Option<String>,
    /// The sockets the supervisor holds for it (`--socket`): name and where it listens
    /// (`tcp:127.0.0.1:8080`, `unix:/run/app.sock`).
    pub sockets: Vec<(String, String)>,
    /// How many descriptors its fd store holds (none: no store).
    pub fd_store: Option<u64>,
}

/// What a supervisor answers.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Response {
    /// The answer to `Status` and `List`.
    Services(Vec<ServiceInfo>),
    /// The request was carried out (or begun); the text says what was done.
    Done(String),
    /// The request was refused or failed; the text says why.
    Error(String),
}

/// The longest path a unix socket address holds: `sun_path` is 108 bytes on Linux,
/// including the terminating NUL.
pub const MAX_SOCKET_PATH: usize = 107;

/// Fails with a clear message if `path` does not fit in a unix socket address, where the
/// kernel would say only "File name too long"; `what` names the operation (`bind`,
/// `connect`).
pub fn check_socket_path(what: &str, path: &Path) -> Result<()> {
    let len = path.as_os_str().len();
    if len > MAX_SOCKET_PATH {
        bail!(
            "{what} {}: socket path too long ({len} bytes; a unix socket path holds at most \
             {MAX_SOCKET_PATH}): use a shorter --state-dir or service name",
            path.display()
        );
    }
    Ok(())
}

#[cfg(test)]
mod tests;
