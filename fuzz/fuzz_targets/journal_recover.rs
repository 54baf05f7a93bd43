//! Fuzzes journal recovery (`Journal::open`: the snapshot loader and the log scanner) over
//! arbitrary directory contents: any set of `snapshot`, `snapshot.tmp` and `wal-<n>.log`
//! files holding any bytes.
//!
//! Beyond "never panics, never hangs", it checks what recovery promises: an open that
//! succeeds leaves a journal that takes an append and reopens (without repair) to the same
//! state plus that event; `repair(true)` never reports `Corrupt` for damaged log records;
//! and an open that refuses with `Corrupt` changes nothing on disk.
//!
//! Input layout: a sequence of files, each `[kind, start (1 byte), len (2 bytes LE), bytes]`.
//! To reach deep states quickly, a kind may ask for a *valid* log or snapshot built from
//! the bytes (each byte an event), which the rest of the input can then damage.

#![no_main]

use std::path::Path;

use daemonic::ErrorKind;
use daemonic::journal::{DecodeError, Durability, Journal, Options, State};
use libfuzzer_sys::fuzz_target;

#[derive(Debug, Default, Clone, PartialEq, Eq)]
struct Events(Vec<Vec<u8>>);

impl State for Events {
    type Event = Vec<u8>;
    fn apply(&mut self, event: Vec<u8>) {
        self.0.push(event);
    }
    fn encode_event(event: &Vec<u8>, out: &mut Vec<u8>) {
        out.extend_from_slice(event);
    }
    fn decode_event(bytes: &[u8]) -> Result<Vec<u8>, DecodeError> {
        Ok(bytes.to_vec())
    }
    fn encode(&self, out: &mut Vec<u8>) {
        for e in &self.0 {
            out.push(u8::try_from(e.len()).unwrap_or(u8::MAX));
            out.extend_from_slice(&e[..e.len().min(255)]);
        }
    }
    fn decode(mut bytes: &[u8]) -> Result<Self, DecodeError> {
        let mut events = Vec::new();
        while let Some((&n, rest)) = bytes.split_first() {
            let n = usize::from(n);
            if rest.len() < n {
                return Err(DecodeError::new("snapshot ends early"));
            }
            events.push(rest[..n].to_vec());
            bytes = &rest[n..];
        }
        Ok(Events(events))
    }
}

fn wal_name(start: u64) -> String {
    format!("wal-{start:020}.log")
}

/// Writes the files the input describes into `dir`.
fn build(dir: &Path, mut data: &[u8]) {
    let mut files = 0;
    while data.len() >= 4 && files < 8 {
        files += 1;
        let (kind, start) = (data[0], u64::from(data[1]));
        let len = usize::from(u16::from_le_bytes([data[2], data[3]])).min(data.len() - 4);
        let bytes = &data[4..4 + len];
        data = &data[4 + len..];
        match kind % 6 {
            0 => write(dir, "snapshot", bytes),
            1 => write(dir, "snapshot.tmp", bytes),
            2 => write(dir, &wal_name(start), bytes),
            // A valid generation holding one event per byte, then the raw bytes after it.
            3 | 4 => {
                let _ = std::fs::remove_file(dir.join("lock"));
                if let Ok(j) = Options::new()
                    .durability(Durability::Interval(std::time::Duration::from_secs(3600)))
                    .no_compaction()
                    .repair(true)
                    .open::<Events>(dir)
                {
                    for &b in bytes {
                        let _ = j.append(vec![b; usize::from(b % 7)]);
                    }
                    if kind % 6 == 4 {
                        let _ = j.snapshot();
                    }
                    let _ = j.close();
                }
            }
            // Damage: xor the bytes into the file chosen by `start`, at offset `len`.
            _ => damage(dir, start, bytes),
        }
    }
}

fn write(dir: &Path, name: &str, bytes: &[u8]) {
    let _ = std::fs::write(dir.join(name), bytes);
}

fn damage(dir: &Path, pick: u64, bytes: &[u8]) {
    let Some((&at, mask)) = bytes.split_first() else {
        return;
    };
    let mut names: Vec<_> = std::fs::read_dir(dir)
        .into_iter()
        .flatten()
        .flatten()
        .map(|e| e.path())
        .filter(|p| p.file_name().is_some_and(|n| n != "lock"))
        .collect();
    names.sort();
    if names.is_empty() {
        return;
    }
    let path = &names[pick as usize % names.len()];
    let Ok(mut contents) = std::fs::read(path) else {
        return;
    };
    if contents.is_empty() {
        return;
    }
    let start = usize::from(at) * contents.len() / 256;
    for (i, m) in mask.iter().enumerate() {
        if let Some(b) = contents.get_mut(start + i) {
            *b ^= m;
        }
    }
    let _ = std::fs::write(path, contents);
}

fn snapshot_of(dir: &Path) -> Vec<(String, Vec<u8>)> {
    let mut files: Vec<_> = std::fs::read_dir(dir)
        .into_iter()
        .flatten()
        .flatten()
        .filter(|e| e.file_name() != "lock")
        .map(|e| {
            let bytes = std::fs::read(e.path()).unwrap_or_default();
            (e.file_name().to_string_lossy().into_owned(), bytes)
        })
        .collect();
    files.sort();
    files
}

fuzz_target!(|data: &[u8]| {
    let base = if Path::new("/dev/shm").is_dir() {
        "/dev/shm"
    } else {
        "/tmp"
    };
    let dir = tempdir_in(base);
    build(&dir, data);
    let before = snapshot_of(&dir);
    match Options::new().no_compaction().open::<Events>(&dir) {
        Ok(j) => {
            let state = (*j.state()).clone();
            j.append(b"fuzz".to_vec())
                .expect("append after a good open");
            j.close().expect("close");
            let again: Journal<Events> = Options::new()
                .no_compaction()
                .open(&dir)
                .expect("reopen after a good open and an append");
            let mut expected = state;
            expected.0.push(b"fuzz".to_vec());
            assert_eq!(*again.state(), expected, "reopen lost or invented events");
        }
        Err(e) if e.kind() == ErrorKind::Corrupt => {
            assert_eq!(before, snapshot_of(&dir), "a refused open changed files");
            // Repair keeps a prefix of the log; it may still refuse a damaged snapshot.
            if let Err(e) = Options::new()
                .repair(true)
                .no_compaction()
                .open::<Events>(&dir)
            {
                assert!(
                    matches!(e.kind(), ErrorKind::Corrupt | ErrorKind::InvalidInput),
                    "repair failed with {e}"
                );
            }
        }
        Err(e) => assert!(
            matches!(e.kind(), ErrorKind::InvalidInput),
            "open failed with an unexpected kind: {e}"
        ),
    }
    let _ = std::fs::remove_dir_all(&dir);
});

fn tempdir_in(base: &str) -> std::path::PathBuf {
    use std::sync::atomic::{AtomicU64, Ordering};
    static N: AtomicU64 = AtomicU64::new(0);
    let dir = Path::new(base).join(format!(
        "journal-fuzz-{}-{}",
        std::process::id(),
        N.fetch_add(1, Ordering::Relaxed)
    ));
    let _ = std::fs::remove_dir_all(&dir);
    std::fs::create_dir_all(&dir).expect("create fuzz dir");
    dir
}
