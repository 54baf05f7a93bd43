//! Injected failures of the real backend's calls (the `iotrace` shim's `IOTRACE_FAULT`),
//! each checked against the documented contract (docs/journal.md, "When a call fails"):
//!
//! - EINTR on a write, an fsync or a fallocate, and a short write, are retried: nothing
//!   fails;
//! - EIO or ENOSPC on a write, a fallocate or an fsync fails that append with
//!   `ErrorKind::Io` carrying the errno, and every later call with `Poisoned`;
//! - a failed rename fails the snapshot (`Io`) but not the journal: appends go on;
//! - reopening recovers every acknowledged record, in order, plus at most the record whose
//!   append failed (its write may have reached the file), never anything else.

use daemonic::journal::{Journal, Options};

use crate::fixture::{Recorded, event};
use crate::iotrace::{self, Op};
use crate::support::TempDir;

const EIO: i32 = 5;
const EINTR: i32 = 4;
const ENOSPC: i32 = 28;

/// What the fixture's output must show for one fault.
#[derive(Debug, PartialEq)]
enum Expect {
    /// Every append acknowledged, every snapshot taken.
    Nothing,
    /// Append `n` fails with this errno, every later call is `Poisoned`.
    Poisons { n: u64, errno: i32 },
    /// The first snapshot fails with this errno; appends go on.
    SnapshotFails { errno: i32 },
}

/// The fixture appends 8 events with fsync per append, snapshotting after every 3rd.
/// Calls are counted from the start, per kind: writes are the lock file's pid (1), the
/// log header (2), then records (3 = event 0); syncs the header (1), then records (2 =
/// event 0); the first fallocate is at event 0; the first rename is the first snapshot's.
fn check(fault: &str, expect: Expect) {
    if iotrace::shim().is_none() {
        eprintln!("skipping: no iotrace shim");
        return;
    }
    let tmp = TempDir::new("faults");
    let dir = iotrace::journal_dir(&tmp, "j");
    let run = iotrace::run_script(&dir, "every", 8, 3, Some(fault));
    let said: Vec<&str> = run
        .ops
        .iter()
        .filter_map(|op| match op {
            Op::Said(s) => Some(s.as_str()),
            _ => None,
        })
        .collect();
    let acked = said.iter().filter(|s| s.starts_with("ack ")).count() as u64;
    match expect {
        Expect::Nothing => {
            assert_eq!(acked, 8, "{fault}: {said:?}");
            assert!(run.status.success(), "{fault}: {said:?}");
        }
        Expect::Poisons { n, errno } => {
            assert_eq!(acked, n, "{fault}: {said:?}");
            assert_eq!(said[n as usize], format!("err {n} Io {errno}"), "{fault}");
            for later in &said[n as usize + 1..] {
                assert!(later.contains(" Poisoned "), "{fault}: then {later:?}");
            }
            assert_eq!(said.len(), 8 + 2, "{fault}: every call answered: {said:?}");
        }
        Expect::SnapshotFails { errno } => {
            assert_eq!(acked, 8, "{fault}: {said:?}");
            assert!(
                said.contains(&format!("snaperr Io {errno}").as_str()),
                "{fault}: {said:?}"
            );
            assert!(
                said.contains(&"snapshot 6"),
                "{fault}: the next snapshot works"
            );
        }
    }
    // Reopen (without the shim): the acknowledged records, maybe the failed one, no more.
    let journal: Journal<Recorded> = Options::new()
        .open(&dir)
        .unwrap_or_else(|e| panic!("{fault}: reopen: {e}"));
    let events = journal.state().events.clone();
    let n = events.len() as u64;
    let in_flight = u64::from(matches!(expect, Expect::Poisons { .. }));
    assert!(
        acked <= n && n <= acked + in_flight,
        "{fault}: {n} recovered, {acked} acknowledged"
    );
    for (k, e) in events.iter().enumerate() {
        assert_eq!(*e, event(0, k as u64), "{fault}: event {k}");
    }
    journal.append(event(0, n)).expect("append after reopen");
}

#[test]
fn eio_or_enospc_on_a_record_write_poisons_and_reopen_keeps_the_acknowledged() {
    check("write:4:5", Expect::Poisons { n: 1, errno: EIO });
    check(
        "write:4:28",
        Expect::Poisons {
            n: 1,
            errno: ENOSPC,
        },
    );
}

#[test]
fn eintr_and_short_writes_are_retried() {
    check("write:4:4", Expect::Nothing);
    check("write:4:0", Expect::Nothing);
    // A short write of the snapshot file, and of a log header.
    check("write:6:0", Expect::Nothing);
    check("write:2:0", Expect::Nothing);
}

#[test]
fn eio_or_enospc_on_fsync_poisons_and_reopen_keeps_the_acknowledged() {
    check("sync:3:5", Expect::Poisons { n: 1, errno: EIO });
    check(
        "sync:3:28",
        Expect::Poisons {
            n: 1,
            errno: ENOSPC,
        },
    );
}

/// std retries an fsync interrupted before it did anything (`EINTR`), as it does a write.
#[test]
fn eintr_on_fsync_is_retried() {
    check("sync:3:4", Expect::Nothing);
}

#[test]
fn enospc_or_eio_on_fallocate_poisons_before_anything_is_written() {
    check(
        "fallocate:1:28",
        Expect::Poisons {
            n: 0,
            errno: ENOSPC,
        },
    );
    check("fallocate:1:5", Expect::Poisons { n: 0, errno: EIO });
}

/// Regression: EINTR from `posix_fallocate` poisoned the journal; it allocated nothing
/// and is now retried like an interrupted write.
#[test]
fn eintr_on_fallocate_is_retried() {
    check("fallocate:1:4", Expect::Nothing);
}

#[test]
fn a_failed_rename_fails_the_snapshot_not_the_journal() {
    check("rename:1:5", Expect::SnapshotFails { errno: EIO });
    check("rename:1:28", Expect::SnapshotFails { errno: ENOSPC });
    check("rename:1:4", Expect::SnapshotFails { errno: EINTR });
}

/// The snapshot's own write or fsync failing (the temp file) fails the snapshot; the live
/// log is untouched, so the journal goes on. Writes: lock (1), header (2), events 0..3
/// (3..5), so 6 is `snapshot.tmp`; syncs: header (1), events 0..3 (2..4), then the first
/// snapshot's log sync is skipped (already durable), so 5 is `snapshot.tmp`.
#[test]
fn a_failed_snapshot_write_or_fsync_fails_the_snapshot_not_the_journal() {
    check("write:6:5", Expect::SnapshotFails { errno: EIO });
    check("write:6:28", Expect::SnapshotFails { errno: ENOSPC });
    check("sync:5:5", Expect::SnapshotFails { errno: EIO });
}
