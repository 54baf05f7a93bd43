//! # daemonic — make a Rust program a well-behaved Unix daemon
//!
//! The `myserver -d` use case done right: the command returns only once the server is
//! ready, prints the server's own error in the terminal when it is not, holds a pid-file
//! *lock* for life, and hands signals to the program as events. The same program behaves
//! right in the foreground, self-daemonized, under the daemonic supervisor and under
//! systemd, because readiness is always systemd's notify protocol.
//!
//! The quick start (`examples/quickstart.rs`; `cargo run --example quickstart` returns once
//! it serves, `kill $(cat quickstart.pid)` stops it):
//!
//! ```no_run
#![doc = include_str!("../examples/quickstart.rs")]
//! ```
//!
//! How it keeps its promise:
//!
//! - **The real error in the terminal.** Until [`Running::ready`], the daemon's stderr is a
//!   pipe to the waiting launcher, which prints it ([`Daemon::forward_stderr`], on by
//!   default): an error returned from `main` — a failed `bind` with `?` — appears where
//!   the command was typed, followed by `quickstart: not ready: daemon (pid N) exited with
//!   status 1`, and the command exits 1. [`Error`] prints as its message from `main`
//!   (`Error: bind 127.0.0.1:7878: Address already in use (os error 98)`), not as a
//!   struct. To report a failure without printing, [`Running::fail`] sends the launcher
//!   the message (and errno) it shows. (A `std::io::Error` returned from `main` as is
//!   prints std's `Os { code: 98, … }` form: give it its operation with [`Error::io`].)
//! - **A serving loop that also waits for signals.** [`Signals`] turns SIGTERM/SIGINT into
//!   [`Event::Shutdown`]; the connections are served on a thread started after `ready()`
//!   (fork-based detaching needs a single-threaded process until `start`).
//! - **A relative pid file** is made absolute before the daemon changes to `/`, so it is
//!   created, and removed at exit, where the command was started.
//!
//! ## Anatomy
//!
//! | module | what it does |
//! |---|---|
//! | [`daemon`] | [`Daemon`]: detach (double fork or re-exec), readiness, the launcher |
//! | [`pidfile`] | [`PidFile`]: a lock, not a check |
//! | [`signals`] | [`Signals`]: signals as [`Event`]s, blocking, pollable or async |
//! | [`systemd`] | the notify protocol, sending ([`systemd::notify`], [`systemd::watchdog`]) and receiving ([`systemd::listen`]); socket activation ([`systemd::activation`], [`systemd::handoff`]) |
//! | [`privileges`] | [`privileges::Privileges`]: run as a user and group, keep chosen capabilities, `no_new_privs`, chroot |
//! | [`process`] | processes by handle ([`process::PidFd`]), supervised children, [`process::Exit`] |
//! | [`launch`] | [`launch::launch`]: a supervised child made by one `clone`, born in its cgroup, without `fork` |
//! | [`sentinel`] | [`sentinel::Sentinel`]: kills a supervisor's leftover descendants if it dies |
//! | [`tree_mark`] | [`tree_mark::TreeMark`]: a mark the kernel keeps for a whole process tree, found without cgroups |
//! | [`journal`] | crash-safe application state: snapshot + write-ahead log |
//! | [`logging`] | one-call `tracing` setup; [`logging::RotatingWriter`] that never loses or tears a line |
//! | [`memory`] | [`memory::release_startup_pages`]: an idle process gives back the code and heap only its start-up used |
//!
//! All `unsafe` code lives in one private module (`sys`), each block with the reason it is
//! sound. Errors are one type, [`Error`], with a [`kind()`](Error::kind) to match on and a
//! message naming the operation and the path.
//!
//! ## Limitations
//!
//! Linux only for now (pidfds, `close_range`, `SO_PASSCRED`, child subreapers; kernel 5.9
//! or later). Detaching by fork needs a single-threaded process: call
//! [`Daemon::start`] before starting threads or an async runtime, or use re-exec mode.
//! Descriptors opened before `start` and not kept with [`Daemon::keep_fd`] are closed in
//! the daemon: do not use (or drop) their owners afterwards.

#![deny(unsafe_code)]
#![warn(missing_docs)]

pub mod daemon;
pub mod durable;
mod error;
pub mod journal;
pub mod launch;
pub mod logging;
pub mod memory;
pub mod pidfile;
pub mod privileges;
pub mod process;
mod random;
pub mod sentinel;
pub mod signals;
#[allow(unsafe_code)]
mod sys;
pub mod systemd;
pub mod tree_mark;

pub use daemon::{Daemon, Output, Running};
pub use error::{Error, ErrorKind, Result};
pub use nix::sys::signal::Signal;
pub use nix::unistd::Pid;
pub use pidfile::PidFile;
pub use signals::{Event, Signals};

/// The exit status of a process of daemonic's own (the detaching launcher or
/// intermediate, a daemon whose set-up failed after the fork, a sentinel) that failed
/// after forking, with a message on stderr: `EX_SOFTWARE` of `sysexits.h`. The one
/// definition; the README's exit-status tables list it.
pub const EXIT_INTERNAL: i32 = 70;
