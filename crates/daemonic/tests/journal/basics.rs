//! The journal's API end to end, in one process (plus a child holding the lock).

use std::sync::Arc;
use std::time::{Duration, Instant};

use daemonic::ErrorKind;
use daemonic::journal::{Durability, Journal, Options};

use crate::fixture::{Recorded, event};
use crate::support::{Fixture, TempDir};

fn open(dir: &std::path::Path, durability: Durability) -> Journal<Recorded> {
    Options::new()
        .durability(durability)
        .open(dir)
        .expect("open journal")
}

#[test]
fn events_survive_reopen_in_every_durability_mode() {
    let tmp = TempDir::new("modes");
    for (i, mode) in [
        Durability::EveryAppend,
        Durability::GroupCommit,
        Durability::Interval(Duration::from_millis(10)),
    ]
    .into_iter()
    .enumerate()
    {
        let dir = tmp.join(&format!("j{i}"));
        let journal = open(&dir, mode);
        for n in 0..20 {
            assert_eq!(journal.append(event(0, n)).unwrap(), n + 1);
        }
        journal.close().unwrap();
        let journal = open(&dir, mode);
        let expected: Vec<_> = (0..20).map(|n| event(0, n)).collect();
        assert_eq!(journal.state().events, expected, "{mode:?}");
        assert_eq!(journal.recovery().replayed, 20);
        assert_eq!(journal.last_seq(), 20);
        assert!(journal.recovery().truncated.is_empty());
    }
}

#[test]
fn second_open_in_the_same_process_is_refused_while_the_first_is_open() {
    let tmp = TempDir::new("lock-self");
    let first = open(tmp.path(), Durability::GroupCommit);
    let err = Journal::<Recorded>::open(tmp.path()).unwrap_err();
    assert_eq!(err.kind(), ErrorKind::Locked);
    let msg = err.to_string();
    assert!(msg.contains(&tmp.path().display().to_string()), "{msg}");
    assert!(msg.contains("locked by another process"), "{msg}");
    drop(first);
    open(tmp.path(), Durability::GroupCommit);
}

#[test]
fn lock_held_by_another_process_names_its_pid_and_dies_with_it() {
    let tmp = TempDir::new("lock-child");
    let dir = tmp.path().to_str().unwrap();
    let mut holder = Fixture::spawn(&["hold", dir]);
    assert_eq!(holder.line(), "ready");
    let err = Journal::<Recorded>::open(tmp.path()).unwrap_err();
    assert_eq!(err.kind(), ErrorKind::Locked);
    assert!(
        err.to_string()
            .contains(&format!("held by pid {}", holder.pid())),
        "{err}"
    );
    // kill -9: the kernel drops the flock with the process; no stale lock.
    holder.kill();
    open(tmp.path(), Durability::GroupCommit);
}

#[test]
fn group_commit_from_many_threads_acknowledges_every_append_durably() {
    let tmp = TempDir::new("group");
    let journal = Arc::new(open(tmp.path(), Durability::GroupCommit));
    let threads: Vec<_> = (0..8u8)
        .map(|stream| {
            let journal = Arc::clone(&journal);
            std::thread::spawn(move || {
                (0..50)
                    .map(|n| {
                        let seq = journal.append(event(stream, n)).unwrap();
                        assert!(journal.durable_seq() >= seq, "acknowledged but not durable");
                        seq
                    })
                    .collect::<Vec<u64>>()
            })
        })
        .collect();
    let mut seqs: Vec<u64> = threads
        .into_iter()
        .flat_map(|t| t.join().unwrap())
        .collect();
    seqs.sort();
    assert_eq!(
        seqs,
        (1..=400).collect::<Vec<_>>(),
        "every seq exactly once"
    );
    let before = journal.state().events.clone();
    drop(journal);
    let journal = open(tmp.path(), Durability::GroupCommit);
    assert_eq!(journal.state().events, before, "same order after recovery");
}

#[test]
fn interval_mode_becomes_durable_without_being_asked() {
    let tmp = TempDir::new("interval");
    let journal = open(tmp.path(), Durability::Interval(Duration::from_millis(20)));
    for n in 0..10 {
        journal.append(event(0, n)).unwrap();
    }
    let deadline = Instant::now() + Duration::from_secs(10);
    while journal.durable_seq() < 10 {
        assert!(Instant::now() < deadline, "the flusher never synced");
        std::thread::yield_now();
    }
}

#[test]
fn compaction_by_size_keeps_one_generation_and_every_event() {
    let tmp = TempDir::new("compact");
    let journal: Journal<Recorded> = Options::new()
        .compact_after(2048)
        .durability(Durability::Interval(Duration::from_secs(60)))
        .open(tmp.path())
        .unwrap();
    for n in 0..500 {
        journal.append(event(1, n)).unwrap();
    }
    assert!(journal.take_compaction_error().is_none());
    journal.close().unwrap();
    let logs: Vec<_> = std::fs::read_dir(tmp.path())
        .unwrap()
        .map(|e| e.unwrap().file_name().into_string().unwrap())
        .filter(|n| n.starts_with("wal-"))
        .collect();
    assert_eq!(logs.len(), 1, "{logs:?}");
    assert!(tmp.path().join("snapshot").exists());
    let journal = open(tmp.path(), Durability::GroupCommit);
    assert!(journal.recovery().snapshot_seq > 0);
    let expected: Vec<_> = (0..500).map(|n| event(1, n)).collect();
    assert_eq!(journal.state().events, expected);
}

#[test]
fn snapshot_then_more_events_replays_only_the_events_after_it() {
    let tmp = TempDir::new("snapshot");
    let journal = open(tmp.path(), Durability::EveryAppend);
    for n in 0..5 {
        journal.append(event(0, n)).unwrap();
    }
    assert_eq!(journal.snapshot().unwrap(), 5);
    assert_eq!(
        journal.snapshot().unwrap(),
        5,
        "a second snapshot is a no-op"
    );
    for n in 5..8 {
        journal.append(event(0, n)).unwrap();
    }
    drop(journal);
    let journal = open(tmp.path(), Durability::EveryAppend);
    let r = journal.recovery();
    assert_eq!((r.snapshot_seq, r.replayed, r.last_seq), (5, 3, 8));
    assert_eq!(journal.state().events.len(), 8);
}

#[test]
fn an_event_the_application_cannot_decode_is_reported_as_corrupt() {
    use daemonic::journal::{DecodeError, State};
    #[derive(Default)]
    struct Picky;
    impl State for Picky {
        type Event = Vec<u8>;
        fn apply(&mut self, _: Vec<u8>) {}
        fn encode_event(e: &Vec<u8>, out: &mut Vec<u8>) {
            out.extend_from_slice(e)
        }
        fn decode_event(_: &[u8]) -> Result<Vec<u8>, DecodeError> {
            Err(DecodeError::new("schema changed"))
        }
        fn encode(&self, _: &mut Vec<u8>) {}
        fn decode(_: &[u8]) -> Result<Self, DecodeError> {
            Ok(Picky)
        }
    }
    let tmp = TempDir::new("decode");
    let journal: Journal<Picky> = Journal::open(tmp.path()).unwrap();
    journal.append(b"x".to_vec()).unwrap();
    drop(journal);
    let err = Journal::<Picky>::open(tmp.path()).unwrap_err();
    assert_eq!(err.kind(), ErrorKind::Corrupt);
    assert!(err.to_string().contains("schema changed"), "{err}");
    assert!(err.to_string().contains("seq 1"), "{err}");
}
