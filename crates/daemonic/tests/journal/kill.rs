//! `kill -9` at random moments: every acknowledged event survives, nothing is invented.
//!
//! Each round starts `journal-appender` on the same directory (so it first recovers what
//! the previous round left), lets it acknowledge a random number of appends, SIGKILLs it,
//! and recovers in this process. Small `compact_after` values make snapshots frequent, so
//! kills also land inside snapshots and log rotations.
//!
//! `JOURNAL_SOAK_ROUNDS=N` runs N rounds per mode instead of the CI default (the
//! documented soak in docs/journal.md is `JOURNAL_SOAK_ROUNDS=1000`).

use std::collections::HashMap;
use std::os::unix::process::ExitStatusExt;

use daemonic::journal::Journal;

use crate::fixture::{Recorded, parse};
use crate::support::{Fixture, Rng, TempDir};

/// Runs `rounds` kill-and-recover rounds of the fixture in `mode` with `threads` writers.
fn kill_rounds(name: &str, mode: &str, threads: u8, rounds: u32, max_acks: u64) {
    let rounds = std::env::var("JOURNAL_SOAK_ROUNDS")
        .ok()
        .and_then(|s| s.parse().ok())
        .unwrap_or(rounds);
    let tmp = TempDir::new(name);
    let dir = tmp.path().to_str().unwrap().to_owned();
    let mut rng = Rng::seeded();
    // Highest acknowledged n per stream, over all rounds so far.
    let mut acked: HashMap<u8, u64> = HashMap::new();
    for round in 0..rounds {
        let compact = (1024 + rng.below(8192)).to_string();
        let target = 1 + rng.below(max_acks);
        let mut child = Fixture::spawn(&["append", &dir, mode, &threads.to_string(), &compact]);
        assert_eq!(child.line(), "ready", "round {round}");
        let mut seen = 0;
        while seen < target {
            record_ack(&child.line(), &mut acked);
            seen += 1;
        }
        let status = child.kill();
        assert_eq!(status.signal(), Some(9), "round {round}: {status:?}");
        // Acks printed before the kill are acknowledgements too.
        while let Some(Ok(line)) = child.lines.next() {
            record_ack(&line, &mut acked);
        }
        check_recovery(tmp.path(), &acked, round);
    }
    let total: u64 = acked.values().map(|n| n + 1).sum();
    eprintln!("{mode}: {rounds} rounds of kill -9, {total} acknowledged events, none lost");
}

fn record_ack(line: &str, acked: &mut HashMap<u8, u64>) {
    let mut words = line.split(' ');
    assert_eq!(words.next(), Some("ack"), "unexpected line {line:?}");
    let stream: u8 = words.next().unwrap().parse().unwrap();
    let n: u64 = words.next().unwrap().parse().unwrap();
    let best = acked.entry(stream).or_insert(0);
    *best = (*best).max(n);
}

fn check_recovery(dir: &std::path::Path, acked: &HashMap<u8, u64>, round: u32) {
    let journal: Journal<Recorded> =
        Journal::open(dir).unwrap_or_else(|e| panic!("round {round}: recovery failed: {e}"));
    let mut next: HashMap<u8, u64> = HashMap::new();
    for (i, e) in journal.state().events.iter().enumerate() {
        let (stream, n) =
            parse(e).unwrap_or_else(|| panic!("round {round}: event {i} was never written"));
        let expected = next.entry(stream).or_insert(0);
        assert_eq!(
            n, *expected,
            "round {round}: stream {stream} out of order or duplicated"
        );
        *expected += 1;
    }
    for (stream, &n) in acked {
        let have = next.get(stream).copied().unwrap_or(0);
        assert!(
            have > n,
            "round {round}: stream {stream} acknowledged {n} but recovered only 0..{have}"
        );
    }
    assert!(
        journal.recovery().truncated.iter().all(|t| !t.repaired),
        "round {round}"
    );
}

#[test]
fn kill_9_while_appending_with_fsync_per_append_loses_no_acknowledged_event() {
    kill_rounds("kill-every", "every", 1, 12, 60);
}

#[test]
fn kill_9_while_group_committing_from_four_threads_loses_no_acknowledged_event() {
    kill_rounds("kill-group", "group", 4, 15, 300);
}

#[test]
fn kill_9_in_interval_mode_loses_no_event_whose_append_returned() {
    // Interval mode promises survival of a *process* crash at return (the record is in the
    // kernel); only a machine crash can take the last interval.
    kill_rounds("kill-interval", "interval", 2, 15, 600);
}
