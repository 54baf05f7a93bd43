//! A snapshot interrupted by `kill -9` right after each of its steps leaves a journal that
//! recovers every event and goes on working.
//!
//! The fixture appends 10 events, snapshots, appends 10 more, then snapshots again and
//! SIGKILLs itself from the [`SnapshotStep`] observer: a real process death at a real point
//! of the real code, with the files exactly as that step left them.

use std::os::unix::process::ExitStatusExt;

use daemonic::journal::{Journal, SnapshotStep};

use crate::fixture::{Recorded, event};
use crate::support::{Fixture, TempDir};

fn files(dir: &std::path::Path) -> Vec<String> {
    let mut names: Vec<String> = std::fs::read_dir(dir)
        .unwrap()
        .map(|e| e.unwrap().file_name().into_string().unwrap())
        .collect();
    names.sort();
    names
}

#[test]
fn a_snapshot_killed_after_each_step_recovers_every_event() {
    let tmp = TempDir::new("snapshot-crash");
    for step in SnapshotStep::ALL {
        let dir = tmp.join(&format!("{step:?}"));
        let mut child = Fixture::spawn(&[
            "snapshot-crash",
            dir.to_str().unwrap(),
            &format!("{step:?}"),
        ]);
        assert_eq!(child.line(), "appended 20");
        let status = child.wait();
        assert_eq!(
            status.signal(),
            Some(9),
            "{step:?}: the fixture was not killed at the step"
        );

        // What the kill left on disk proves where it happened.
        let on_disk = files(&dir);
        let temp_left = on_disk.contains(&"snapshot.tmp".to_string());
        let generations = on_disk.iter().filter(|n| n.starts_with("wal-")).count();
        assert_eq!(
            temp_left,
            step == SnapshotStep::TempWritten,
            "{step:?}: {on_disk:?}"
        );
        let expected_generations = if step == SnapshotStep::NewLogCreated {
            2
        } else {
            1
        };
        assert_eq!(generations, expected_generations, "{step:?}: {on_disk:?}");

        let journal: Journal<Recorded> =
            Journal::open(&dir).unwrap_or_else(|e| panic!("{step:?}: recovery failed: {e}"));
        let expected: Vec<_> = (0..20).map(|n| event(0, n)).collect();
        assert_eq!(journal.state().events, expected, "{step:?}");
        let r = journal.recovery();
        let new_snapshot = !matches!(step, SnapshotStep::LogSynced | SnapshotStep::TempWritten);
        assert_eq!(
            r.snapshot_seq,
            if new_snapshot { 20 } else { 10 },
            "{step:?}"
        );
        assert_eq!(r.replayed, if new_snapshot { 0 } else { 10 }, "{step:?}");
        assert!(r.truncated.is_empty(), "{step:?}: {:?}", r.truncated);

        // It goes on: more events, a full snapshot, a clean reopen with one generation.
        for n in 20..25 {
            journal.append(event(0, n)).unwrap();
        }
        assert_eq!(journal.snapshot().unwrap(), 25);
        drop(journal);
        let journal: Journal<Recorded> = Journal::open(&dir).unwrap();
        assert_eq!(journal.state().events.len(), 25, "{step:?}");
        assert_eq!(
            files(&dir).iter().filter(|n| n.starts_with("wal-")).count(),
            1
        );
    }
}
