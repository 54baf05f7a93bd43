//! # daemonic — make a Rust program a well-behaved Unix daemon
//!
//! (Crate documentation is completed as the modules land; see the README.)

#![deny(unsafe_code)]
#![warn(missing_docs)]

pub mod daemon;
mod error;
pub mod pidfile;
pub mod process;
mod random;
pub mod signals;
#[allow(unsafe_code)]
mod sys;
pub mod systemd;

pub use daemon::{Daemon, Output, Running};
pub use error::{Error, ErrorKind, Result};
pub use nix::sys::signal::Signal;
pub use nix::unistd::Pid;
pub use pidfile::PidFile;
pub use signals::{Event, Signals};
