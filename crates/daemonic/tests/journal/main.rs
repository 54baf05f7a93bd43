//! Integration tests of `daemonic::journal` (one test binary; modules in `tests/journal/`).
//!
//! - `basics`: the API end to end — modes, lock, compaction, what recovery reports.
//! - `damage`: every truncation and a bit flip at every byte of a small log.
//! - `kill`: a child process appending under `kill -9`, round after round.
//! - `snapshot_crash`: a child killed at each step of a snapshot.

mod basics;
mod damage;
mod fixture;
mod kill;
mod snapshot_crash;
mod support;
use daemonic_test_support as shared;
