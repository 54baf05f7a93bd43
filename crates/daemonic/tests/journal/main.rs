//! Integration tests of `daemonic::journal` (one test binary; modules in `tests/journal/`).
//!
//! - `basics`: the API end to end — modes, lock, compaction, what recovery reports.
//! - `crash_states`: every state a power loss can leave, built from the real calls
//!   (`iotrace`: an `LD_PRELOAD` shim, `iotrace.c`), recovered and checked.
//! - `syncs`: the real backend fsyncs before it acknowledges (traced by `iotrace`).
//! - `damage`: every truncation and a bit flip at every byte of a small log.
//! - `faults`: EIO, ENOSPC, EINTR and short writes injected into the real calls.
//! - `wreckage`: bursts, zeroed pages, a torn snapshot with a damaged log, every cut of a
//!   two-generation log.
//! - `kill`: a child process appending under `kill -9`, round after round.
//! - `snapshot_crash`: a child killed at each step of a snapshot.

mod basics;
mod crash_states;
mod damage;
mod faults;
mod fixture;
mod iotrace;
mod kill;
mod snapshot_crash;
mod support;
mod syncs;
mod wreckage;

use daemonic_test_support as shared;
