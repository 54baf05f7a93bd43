//! The real file backend issues its syncs: traced by the `iotrace` shim, every
//! acknowledged append (in `Interval` mode every `sync()`) comes after an fsync of each log
//! file written to, and every snapshot fsyncs its temp file before the rename, the
//! directory after it, and the new generation's header and name before appends go there.
//!
//! Killing a process keeps the page cache, so the `kill -9` tests cannot see a missing
//! fsync; this test (and `crash_states`, which models power loss from the same trace) can.

use std::collections::BTreeSet;

use crate::iotrace::{self, Op};
use crate::support::TempDir;

/// Checks the trace of `journal-appender script DIR MODE 10 4`.
fn check(mode: &str) {
    if iotrace::shim().is_none() {
        eprintln!("skipping: no iotrace shim");
        return;
    }
    let tmp = TempDir::new("syncs");
    let dir = iotrace::journal_dir(&tmp, mode);
    let run = iotrace::run_script(&dir, mode, 10, 4, None);
    assert!(run.status.success(), "fixture failed: {:?}", run.status);
    let (mut dirty, mut acks, mut snapshots) = (BTreeSet::new(), 0, 0);
    // Since the last directory fsync: names created or renamed that are not yet durable.
    let mut undurable_names = BTreeSet::new();
    for (i, op) in run.ops.iter().enumerate() {
        let at = format!("{mode}: op {i} ({op:?})");
        match op {
            Op::Write { file, .. } | Op::Truncate(file, _) | Op::Fallocate { file, .. } => {
                dirty.insert(file.clone());
            }
            Op::Sync(file) => {
                dirty.remove(file);
            }
            Op::Create(file) => {
                undurable_names.insert(file.clone());
            }
            Op::Rename(from, to) => {
                assert!(
                    !dirty.contains(from),
                    "{at}: renamed before its data was fsynced"
                );
                undurable_names.insert(to.clone());
            }
            Op::DirSync => undurable_names.clear(),
            Op::Unlink(_) => {}
            Op::Said(said) => {
                let word = said.split(' ').next().unwrap_or("");
                let must_be_durable = match (word, mode) {
                    ("ack", "every" | "group") | ("synced", _) => true,
                    ("snapshot", _) => {
                        snapshots += 1;
                        let named = |f: &String| f == "snapshot" || f.starts_with("wal-");
                        let pending: Vec<_> = undurable_names.iter().filter(|f| named(f)).collect();
                        assert!(
                            pending.is_empty(),
                            "{at}: names not yet durable: {pending:?}"
                        );
                        true
                    }
                    _ => false,
                };
                acks += u32::from(word == "ack");
                if must_be_durable {
                    let logs: Vec<_> = dirty.iter().filter(|f| f.starts_with("wal-")).collect();
                    assert!(
                        logs.is_empty(),
                        "{at}: acknowledged, but not fsynced: {logs:?}"
                    );
                    assert!(!dirty.contains("snapshot"), "{at}: snapshot not fsynced");
                }
            }
        }
    }
    assert_eq!((acks, snapshots), (10, 2), "{mode}: the fixture's output");
}

#[test]
fn every_append_is_fdatasynced_before_it_is_acknowledged() {
    check("every");
}

#[test]
fn group_commit_fdatasyncs_before_it_acknowledges() {
    check("group");
}

#[test]
fn interval_sync_and_every_snapshot_fsync_what_they_promise() {
    check("interval");
}
