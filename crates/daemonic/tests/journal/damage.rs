//! Damaged files: whatever happens to the bytes, recovery yields a prefix of what was
//! written — never more, never different — or refuses with `Corrupt`.

use std::path::{Path, PathBuf};
use std::time::Duration;

use daemonic::ErrorKind;
use daemonic::journal::{Durability, Journal, Options};

use crate::fixture::{Recorded, event};
use crate::support::TempDir;

const FIRST_LOG: &str = "wal-00000000000000000001.log";
const EVENTS: u64 = 6;

/// Writes `EVENTS` events to a fresh journal and returns the log's bytes and the offset at
/// which each record ends.
fn reference_log(tmp: &TempDir) -> (Vec<u8>, Vec<usize>) {
    let dir = tmp.join("reference");
    let journal: Journal<Recorded> = Options::new()
        .durability(Durability::Interval(Duration::from_secs(60)))
        .open(&dir)
        .unwrap();
    let mut ends = Vec::new();
    let mut end = 32;
    for n in 0..EVENTS {
        journal.append(event(0, n)).unwrap();
        end += 16 + event(0, n).len();
        ends.push(end);
    }
    journal.close().unwrap();
    let mut bytes = std::fs::read(dir.join(FIRST_LOG)).unwrap();
    // The rest is preallocated space, all zeros; the tests damage the records alone.
    assert!(
        bytes[end..].iter().all(|&b| b == 0),
        "preallocated space is not zeros"
    );
    bytes.truncate(end);
    (bytes, ends)
}

fn expected(k: usize) -> Vec<Vec<u8>> {
    (0..k as u64).map(|n| event(0, n)).collect()
}

/// A journal directory holding only `log` as its first generation.
fn dir_with_log(tmp: &TempDir, name: &str, log: &[u8]) -> PathBuf {
    let dir = tmp.join(name);
    std::fs::create_dir_all(&dir).unwrap();
    std::fs::write(dir.join(FIRST_LOG), log).unwrap();
    dir
}

fn open(dir: &Path, repair: bool) -> daemonic::Result<Journal<Recorded>> {
    Options::new().repair(repair).open(dir)
}

#[test]
fn truncation_at_every_offset_recovers_exactly_the_complete_records() {
    let tmp = TempDir::new("cut");
    let (log, ends) = reference_log(&tmp);
    for cut in 0..=log.len() {
        let dir = dir_with_log(&tmp, &format!("cut{cut}"), &log[..cut]);
        let whole = ends.iter().filter(|&&e| e <= cut).count();
        let journal = open(&dir, false).unwrap_or_else(|e| panic!("cut at {cut}: {e}"));
        assert_eq!(journal.state().events, expected(whole), "cut at {cut}");
        let at_boundary = cut == 32 || ends.contains(&cut);
        assert_eq!(
            journal.recovery().truncated.len(),
            usize::from(!at_boundary),
            "cut {cut}"
        );
        // The journal goes on: append, reopen, nothing lost or reported twice.
        journal.append(event(0, whole as u64)).unwrap();
        drop(journal);
        let journal = open(&dir, false).unwrap();
        assert_eq!(
            journal.state().events,
            expected(whole + 1),
            "cut at {cut}, reopened"
        );
        assert!(journal.recovery().truncated.is_empty());
        drop(journal);
        std::fs::remove_dir_all(&dir).unwrap();
    }
}

#[test]
fn a_bit_flip_at_every_offset_is_cut_as_a_tail_or_refused_as_corruption() {
    let tmp = TempDir::new("flip");
    let (log, ends) = reference_log(&tmp);
    for offset in 0..log.len() {
        let mut bad = log.clone();
        bad[offset] ^= 1 << (offset % 8);
        // Which record the flip landed in (None: the file header).
        let record = (offset >= 32).then(|| ends.iter().position(|&e| offset < e).unwrap());
        let dir = dir_with_log(&tmp, &format!("flip{offset}"), &bad);
        let in_last = record == Some(EVENTS as usize - 1);
        match open(&dir, false) {
            Ok(journal) => {
                assert!(in_last, "flip at {offset} (record {record:?}) not refused");
                assert_eq!(journal.state().events, expected(EVENTS as usize - 1));
                let cut = &journal.recovery().truncated;
                assert_eq!(cut.len(), 1);
                assert!(!cut[0].repaired);
            }
            Err(e) => {
                assert!(!in_last, "flip at {offset} in the last record refused: {e}");
                assert_eq!(e.kind(), ErrorKind::Corrupt, "flip at {offset}: {e}");
                assert!(e.to_string().contains(FIRST_LOG), "{e}");
                // Refusing changed nothing on disk.
                assert_eq!(std::fs::read(dir.join(FIRST_LOG)).unwrap(), bad);
            }
        }
        // Repair keeps exactly the records before the damaged one.
        let journal = open(&dir, true).unwrap_or_else(|e| panic!("repair flip {offset}: {e}"));
        let kept = record.unwrap_or(0);
        assert_eq!(journal.state().events, expected(kept), "flip at {offset}");
        // (A flip in the last record was already cut by the strict open above.)
        let cut = &journal.recovery().truncated;
        assert_eq!(
            cut.len(),
            usize::from(!in_last),
            "flip at {offset}: {cut:?}"
        );
        assert!(cut.iter().all(|c| c.repaired), "flip at {offset}: {cut:?}");
        drop(journal);
        let journal = open(&dir, false).expect("repaired journal opens cleanly");
        assert_eq!(journal.state().events, expected(kept));
        drop(journal);
        std::fs::remove_dir_all(&dir).unwrap();
    }
}

#[test]
fn garbage_in_preallocated_space_is_cut_keeping_every_record() {
    let tmp = TempDir::new("prealloc");
    let (log, _) = reference_log(&tmp);
    for garbage_at in [0, 1, 15, 16, 4000] {
        let mut file = log.clone();
        file.resize(log.len() + 8192, 0);
        file[log.len() + garbage_at] = 0x5a;
        let dir = dir_with_log(&tmp, &format!("garbage{garbage_at}"), &file);
        let journal = open(&dir, false).unwrap();
        assert_eq!(journal.state().events, expected(EVENTS as usize));
        assert_eq!(
            journal.recovery().truncated.len(),
            1,
            "garbage at {garbage_at}"
        );
        // Zeros alone are the clean end of the log: nothing to report.
        let dir = dir_with_log(
            &tmp,
            &format!("zeros{garbage_at}"),
            &file[..log.len() + garbage_at],
        );
        let journal = open(&dir, false).unwrap();
        assert_eq!(journal.state().events, expected(EVENTS as usize));
        assert!(
            journal.recovery().truncated.is_empty(),
            "zeros up to {garbage_at}"
        );
    }
}

/// A journal with a snapshot at 5 and records 6..=8 in `wal-…6.log`.
fn snapshotted(tmp: &TempDir) -> PathBuf {
    let dir = tmp.join("snap");
    let journal: Journal<Recorded> = Journal::open(&dir).unwrap();
    for n in 0..5 {
        journal.append(event(0, n)).unwrap();
    }
    journal.snapshot().unwrap();
    for n in 5..8 {
        journal.append(event(0, n)).unwrap();
    }
    drop(journal);
    dir
}

#[test]
fn a_damaged_snapshot_is_corruption_not_an_empty_state() {
    let tmp = TempDir::new("bad-snapshot");
    let dir = snapshotted(&tmp);
    let path = dir.join("snapshot");
    let mut bytes = std::fs::read(&path).unwrap();
    let last = bytes.len() - 1;
    bytes[last] ^= 0x40;
    std::fs::write(&path, &bytes).unwrap();
    let err = Journal::<Recorded>::open(&dir).unwrap_err();
    assert_eq!(err.kind(), ErrorKind::Corrupt);
    assert!(
        err.to_string().contains("snapshot checksum mismatch"),
        "{err}"
    );
}

/// Found by the `journal_recover` fuzz target: recovery removed `snapshot.tmp` before it
/// found the snapshot damaged, so an open that refused had still changed the directory.
#[test]
fn an_open_refused_for_a_damaged_snapshot_leaves_snapshot_tmp_in_place() {
    let tmp = TempDir::new("bad-snapshot-tmp");
    let dir = snapshotted(&tmp);
    let good = std::fs::read(dir.join("snapshot")).unwrap();
    std::fs::write(dir.join("snapshot.tmp"), &good).unwrap();
    std::fs::write(dir.join("snapshot"), b"torn").unwrap();
    let err = Journal::<Recorded>::open(&dir).unwrap_err();
    assert_eq!(err.kind(), ErrorKind::Corrupt, "{err}");
    assert_eq!(std::fs::read(dir.join("snapshot.tmp")).unwrap(), good);
}

#[test]
fn a_missing_generation_is_a_gap_not_silent_loss() {
    let tmp = TempDir::new("gap");
    let dir = snapshotted(&tmp);
    std::fs::remove_file(dir.join("snapshot")).unwrap();
    let err = Journal::<Recorded>::open(&dir).unwrap_err();
    assert_eq!(err.kind(), ErrorKind::Corrupt);
    assert!(err.to_string().contains("records are missing"), "{err}");
}

#[test]
fn a_newer_format_version_is_refused_by_name() {
    let tmp = TempDir::new("version");
    let (mut log, _) = reference_log(&tmp);
    log[8] = 2; // version 2, header checksum recomputed
    let crc = crc_of(&log[0..24]);
    log[24..28].copy_from_slice(&crc.to_le_bytes());
    let dir = dir_with_log(&tmp, "v2", &log);
    let err = open(&dir, true).unwrap_err();
    assert_eq!(err.kind(), ErrorKind::InvalidInput);
    assert!(err.to_string().contains("format version 2"), "{err}");
}

#[test]
fn a_torn_new_generation_header_is_recreated() {
    // A power loss while a snapshot created `wal-<n+1>.log`: the file exists, its header
    // is incomplete. The snapshot (durable before the file was created) covers the rest.
    let tmp = TempDir::new("torn-gen");
    let dir = snapshotted(&tmp);
    let journal: Journal<Recorded> = Journal::open(&dir).unwrap();
    assert_eq!(journal.snapshot().unwrap(), 8);
    drop(journal);
    let new_gen = dir.join("wal-00000000000000000009.log");
    let header = std::fs::read(&new_gen).unwrap();
    std::fs::write(&new_gen, &header[..11]).unwrap();
    let journal: Journal<Recorded> = Journal::open(&dir).unwrap();
    assert_eq!(journal.state().events, expected(8));
    assert_eq!(journal.recovery().truncated.len(), 1);
    journal.append(event(0, 8)).unwrap();
    drop(journal);
    let journal: Journal<Recorded> = Journal::open(&dir).unwrap();
    assert_eq!(journal.state().events, expected(9));
}

/// CRC-32 (IEEE), bit by bit: the tests do not trust the code under test to compute it.
fn crc_of(bytes: &[u8]) -> u32 {
    let mut crc = !0u32;
    for &b in bytes {
        crc ^= u32::from(b);
        for _ in 0..8 {
            crc = if crc & 1 != 0 {
                (crc >> 1) ^ 0xEDB8_8320
            } else {
                crc >> 1
            };
        }
    }
    !crc
}

/// Found by the `journal_recover` fuzz target: a file named for sequence number 0 (which
/// no journal writes: numbers start at 1) made recovery compute `0 - 1` and panic.
#[test]
fn a_log_named_for_sequence_zero_is_not_a_generation() {
    let tmp = TempDir::new("seq-zero");
    let dir = tmp.join("j");
    std::fs::create_dir_all(&dir).unwrap();
    std::fs::write(dir.join("wal-00000000000000000000.log"), b"").unwrap();
    let journal = open(&dir, false).expect("open beside a foreign wal-0 file");
    assert!(journal.state().events.is_empty());
    assert_eq!(journal.append(event(0, 0)).unwrap(), 1);
}
