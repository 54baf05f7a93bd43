//! # daemonic — make a Rust program a well-behaved Unix daemon
//!
//! (Crate documentation is completed as the modules land; see the README.)

#![deny(unsafe_code)]
#![warn(missing_docs)]

mod error;
pub mod journal;
#[allow(unsafe_code)]
mod sys;

pub use error::{Error, ErrorKind, Result};
