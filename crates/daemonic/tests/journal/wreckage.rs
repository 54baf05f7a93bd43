//! Heavier damage than `damage`: multi-bit bursts, zeroed pages in the middle of a log (a
//! lost write), a torn snapshot beside a damaged log, and a cut at every offset of a log of
//! two generations. Each case is recovered or refused exactly as docs/journal.md says:
//! damage with a valid record after it (or in a generation with a successor) is `Corrupt`,
//! with nothing changed on disk; `repair(true)` then keeps exactly the records before it;
//! damage with nothing valid after it in the last generation is a torn tail, cut.

use std::path::Path;
use std::time::Duration;

use daemonic::ErrorKind;
use daemonic::journal::{Durability, Journal, Options};

use crate::fixture::{Recorded, event};
use crate::support::{ShmDir, TempDir};

fn open(dir: &Path, repair: bool) -> daemonic::Result<Journal<Recorded>> {
    Options::new().no_compaction().repair(repair).open(dir)
}

fn expected(range: std::ops::Range<u64>) -> Vec<Vec<u8>> {
    range.map(|n| event(0, n)).collect()
}

/// A log of events `first..first + count` as generation `first + 1`: its bytes (without the
/// preallocated zeros) and where each record ends.
fn log_bytes(scratch: &Path, first: u64, count: u64) -> (Vec<u8>, Vec<usize>) {
    let dir = scratch.join(format!("ref-{first}"));
    let _ = std::fs::remove_dir_all(&dir);
    let journal: Journal<Recorded> = Options::new()
        .durability(Durability::Interval(Duration::from_secs(3600)))
        .no_compaction()
        .open(&dir)
        .unwrap();
    for n in 0..first {
        journal.append(event(0, n)).unwrap();
    }
    journal.snapshot().unwrap();
    let mut ends = Vec::new();
    let mut end = 32;
    for n in first..first + count {
        journal.append(event(0, n)).unwrap();
        end += 16 + event(0, n).len();
        ends.push(end);
    }
    journal.close().unwrap();
    let name = format!("wal-{:020}.log", first + 1);
    let mut bytes = std::fs::read(dir.join(name)).unwrap();
    bytes.truncate(end);
    std::fs::remove_dir_all(&dir).unwrap();
    (bytes, ends)
}

/// Writes `files` into a fresh `dir`.
fn lay_out(dir: &Path, files: &[(&str, &[u8])]) {
    let _ = std::fs::remove_dir_all(dir);
    std::fs::create_dir_all(dir).unwrap();
    for (name, bytes) in files {
        std::fs::write(dir.join(name), bytes).unwrap();
    }
}

fn contents(dir: &Path) -> Vec<(String, Vec<u8>)> {
    let mut files: Vec<_> = std::fs::read_dir(dir)
        .unwrap()
        .map(|e| e.unwrap())
        .filter(|e| e.file_name() != "lock")
        .map(|e| {
            (
                e.file_name().into_string().unwrap(),
                std::fs::read(e.path()).unwrap(),
            )
        })
        .collect();
    files.sort();
    files
}

const GEN1: &str = "wal-00000000000000000001.log";

/// Checks one damaged single-generation log whose first damaged record is `record`
/// (`None`: the header); `tail` says whether no intact record follows the damage.
fn check_damaged(dir: &Path, bad: &[u8], record: Option<usize>, tail: bool, what: &str) {
    lay_out(dir, &[(GEN1, bad)]);
    let in_last = tail && record.is_some();
    match open(dir, false) {
        Ok(j) => {
            // Only damage in the last record may read as a torn tail.
            assert!(in_last, "{what}: damage in record {record:?} not refused");
            let kept = record.unwrap_or(0) as u64;
            assert_eq!(j.state().events, expected(0..kept), "{what}");
            return;
        }
        Err(e) => {
            assert_eq!(e.kind(), ErrorKind::Corrupt, "{what}: {e}");
            assert_eq!(
                contents(dir),
                vec![(GEN1.to_string(), bad.to_vec())],
                "{what}"
            );
        }
    }
    let kept = record.unwrap_or(0) as u64;
    let j = open(dir, true).unwrap_or_else(|e| panic!("{what}: repair: {e}"));
    assert_eq!(j.state().events, expected(0..kept), "{what}: repaired");
}

#[test]
fn multi_bit_bursts_anywhere_are_cut_as_a_tail_or_refused() {
    let tmp = TempDir::new("bursts");
    let shm = ShmDir::new("bursts", tmp.path());
    let (log, ends) = log_bytes(&shm.0, 0, 12);
    let dir = shm.0.join("j");
    for len in [2usize, 3, 8, 17, 64] {
        for start in (0..log.len()).step_by(7) {
            let mut bad = log.clone();
            let end = (start + len).min(bad.len());
            for (i, b) in bad[start..end].iter_mut().enumerate() {
                *b ^= 0x5A ^ (i as u8).wrapping_mul(29) | 1;
            }
            // The first record the burst touched (None: the header).
            let record = (start >= 32).then(|| ends.iter().position(|&e| start < e).unwrap());
            // Damage reaching the last record leaves nothing intact after it: a tail.
            let tail = end > ends[ends.len() - 2];
            let what = format!("burst of {len} at {start}");
            check_damaged(&dir, &bad, record, tail, &what);
        }
    }
}

#[test]
fn a_zeroed_page_in_the_middle_of_a_log_is_corruption_not_an_end() {
    let tmp = TempDir::new("zero-page");
    let shm = ShmDir::new("zero-page", tmp.path());
    let (log, ends) = log_bytes(&shm.0, 0, 400);
    assert!(log.len() > 4 * 4096, "the log spans several pages");
    let dir = shm.0.join("j");
    for page in 1..log.len() / 4096 {
        let mut bad = log.clone();
        bad[page * 4096..(page + 1) * 4096].fill(0);
        let record = ends.iter().position(|&e| page * 4096 < e).unwrap();
        let tail = (page + 1) * 4096 > ends[ends.len() - 2];
        check_damaged(&dir, &bad, Some(record), tail, &format!("page {page}"));
    }
}

#[test]
fn a_torn_snapshot_beside_a_damaged_log_is_refused_even_by_repair() {
    let tmp = TempDir::new("torn-snapshot");
    let dir = tmp.join("j");
    let journal: Journal<Recorded> = open(&dir, false).unwrap();
    for n in 0..6 {
        journal.append(event(0, n)).unwrap();
    }
    journal.snapshot().unwrap();
    for n in 6..12 {
        journal.append(event(0, n)).unwrap();
    }
    journal.close().unwrap();
    let snapshot = std::fs::read(dir.join("snapshot")).unwrap();
    let log_name = format!("wal-{:020}.log", 7);
    let mut log = std::fs::read(dir.join(&log_name)).unwrap();
    log[40] ^= 0xFF; // the first record after the snapshot
    // Torn: the first sector-sized part kept, then garbage (here: the rest missing too).
    let torn = &snapshot[..snapshot.len() / 2];
    lay_out(&dir, &[("snapshot", torn), (&log_name, &log)]);
    let before = contents(&dir);
    for repair in [false, true] {
        let Err(e) = open(&dir, repair) else {
            panic!("repair {repair}: a torn snapshot was not refused");
        };
        assert_eq!(e.kind(), ErrorKind::Corrupt, "repair {repair}: {e}");
        assert!(e.to_string().contains("snapshot"), "{e}");
        assert_eq!(contents(&dir), before, "repair {repair} changed files");
    }
    // With the snapshot intact, the damaged log alone is repairable to the snapshot.
    lay_out(&dir, &[("snapshot", &snapshot), (&log_name, &log)]);
    assert_eq!(
        open(&dir, false).err().map(|e| e.kind()),
        Some(ErrorKind::Corrupt)
    );
    let j = open(&dir, true).unwrap();
    assert_eq!(j.state().events, expected(0..6));
}

#[test]
fn a_cut_at_every_offset_of_a_two_generation_log_keeps_exactly_the_whole_records() {
    let tmp = TempDir::new("cut-two");
    let shm = ShmDir::new("cut-two", tmp.path());
    // Generation 1 holds events 0..60 (seq 1..=60), generation 61 events 60..120; no
    // snapshot, so both are needed.
    let (gen1, ends1) = log_bytes(&shm.0, 0, 60);
    let (gen2, ends2) = log_bytes(&shm.0, 60, 60);
    let gen2_name = format!("wal-{:020}.log", 61);
    let dir = shm.0.join("j");
    for cut in 0..=gen1.len() {
        lay_out(&dir, &[(GEN1, &gen1[..cut]), (&gen2_name, &gen2)]);
        let whole = ends1.iter().filter(|&&e| e <= cut).count() as u64;
        let what = format!("generation 1 cut at {cut}");
        if cut == gen1.len() {
            assert_eq!(open(&dir, false).unwrap().state().events, expected(0..120));
            continue;
        }
        // Damage in a generation with a successor: corruption, never a silent tail.
        let e = open(&dir, false)
            .err()
            .unwrap_or_else(|| panic!("{what}: not refused"));
        assert_eq!(e.kind(), ErrorKind::Corrupt, "{what}: {e}");
        let j = open(&dir, true).unwrap_or_else(|e| panic!("{what}: repair: {e}"));
        assert_eq!(j.state().events, expected(0..whole), "{what}");
        if cut % 29 == 0 {
            j.append(event(0, whole)).unwrap(); // (sampled: each append preallocates 4 MiB)
        }
    }
    for cut in 0..=gen2.len() {
        lay_out(&dir, &[(GEN1, &gen1), (&gen2_name, &gen2[..cut])]);
        let whole = 60 + ends2.iter().filter(|&&e| e <= cut).count() as u64;
        let what = format!("generation 61 cut at {cut}");
        // The last generation: a torn tail, cut, whatever the offset.
        let j = open(&dir, false).unwrap_or_else(|e| panic!("{what}: {e}"));
        assert_eq!(j.state().events, expected(0..whole), "{what}");
        if cut % 29 == 0 {
            j.append(event(0, whole)).unwrap();
            drop(j);
            let j = open(&dir, false).unwrap();
            assert_eq!(j.state().events, expected(0..whole + 1), "{what}: reopened");
        }
    }
}
