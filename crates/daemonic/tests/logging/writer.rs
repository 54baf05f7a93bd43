//! The rotating writer on its own: floods, retention, startup rotation, reopen, a full disk,
//! and raw byte streams.

use std::collections::HashMap;
use std::fs;
use std::io::Write;
use std::path::Path;
use std::time::{Duration, SystemTime};

use daemonic::logging::{Compression, Flush, Period, RotatingWriter};
use nix::sys::stat::{UtimensatFlags, utimensat};
use nix::sys::time::TimeSpec;

use super::support::{TempDir, files_with_prefix, lines, read_maybe_compressed};

const PAD: &str = "lorem ipsum dolor sit amet consectetur adipiscing elit sed do eiusmod";

fn line(thread: usize, n: usize) -> String {
    format!("t={thread} n={n} {PAD}|")
}

/// Reads the active file and every rotated sibling, decompressed; returns (file, lines).
fn read_back(dir: &Path, base: &str) -> Vec<(String, Vec<String>)> {
    files_with_prefix(dir, base)
        .into_iter()
        .map(|p| {
            let name = p.file_name().unwrap().to_string_lossy().into_owned();
            (name, lines(&read_maybe_compressed(&p), &p))
        })
        .collect()
}

/// Sets `path`'s mtime `age` into the past (as an old rotated file would have).
fn age_file(path: &Path, age: Duration) {
    let t = SystemTime::now() - age;
    let d = t.duration_since(SystemTime::UNIX_EPOCH).unwrap();
    let ts = TimeSpec::new(d.as_secs() as i64, 0);
    utimensat(
        nix::fcntl::AT_FDCWD,
        path,
        &ts,
        &ts,
        UtimensatFlags::FollowSymlink,
    )
    .unwrap();
}

#[test]
fn flood_from_threads_rotates_without_losing_or_tearing_a_line() {
    const THREADS: usize = 4;
    const LINES: usize = 50_000; // ~100 bytes each: ~17 MB, ~8 rotations at 2 MiB
    const MAX: u64 = 2 << 20;
    let dir = TempDir::new("flood");
    let log = RotatingWriter::builder(dir.path().join("app.log"))
        .max_size(MAX)
        .compress(Compression::Gzip)
        .open()
        .unwrap();
    std::thread::scope(|s| {
        for t in 0..THREADS {
            let log = log.clone();
            s.spawn(move || {
                if t % 2 == 0 {
                    for n in 0..LINES {
                        log.write_line(line(t, n).as_bytes());
                    }
                } else {
                    // Raw bytes in odd-sized chunks, as from a pipe: lines must stay whole.
                    let mut stream = log.line_stream();
                    let all: String = (0..LINES).map(|n| line(t, n) + "\n").collect();
                    for chunk in all.as_bytes().chunks(4093 + t) {
                        stream.write_all(chunk).unwrap();
                    }
                    assert_eq!(stream.pending(), 0);
                }
            });
        }
    });
    log.close().unwrap();
    let stats = log.stats();
    assert!(stats.rotations >= 6, "{stats:?}");
    assert_eq!(
        (stats.lines_dropped, stats.errors, stats.archive_errors),
        (0, 0, 0),
        "{stats:?}"
    );

    let files = read_back(dir.path(), "app.log");
    assert_eq!(
        files.len() as u64,
        stats.rotations + 1,
        "{:?}",
        files.iter().map(|f| &f.0).collect::<Vec<_>>()
    );
    let mut seen: HashMap<(usize, usize), usize> = HashMap::new();
    for (name, ls) in &files {
        if name != "app.log" {
            assert!(name.ends_with(".gz"), "rotated file {name} not compressed");
        }
        let bytes: usize = ls.iter().map(|l| l.len() + 1).sum();
        assert!(bytes as u64 <= MAX, "{name} has {bytes} bytes");
        for l in ls {
            let rest = l
                .strip_prefix("t=")
                .unwrap_or_else(|| panic!("torn line {l:?} in {name}"));
            let (t, rest) = rest.split_once(" n=").unwrap();
            let (n, pad) = rest.split_once(' ').unwrap();
            assert_eq!(pad, format!("{PAD}|"), "torn line {l:?} in {name}");
            *seen
                .entry((t.parse().unwrap(), n.parse().unwrap()))
                .or_default() += 1;
        }
    }
    assert_eq!(seen.len(), THREADS * LINES, "lines missing");
    assert!(seen.values().all(|&c| c == 1), "a line appears twice");
}

#[test]
fn retention_by_count_keeps_the_newest_files() {
    let dir = TempDir::new("count");
    let log = RotatingWriter::builder(dir.path().join("app.log"))
        .max_size(4096)
        .keep_files(3)
        .compress(Compression::Gzip)
        .open()
        .unwrap();
    for n in 0..1000 {
        log.write_line(line(0, n).as_bytes());
    }
    log.close().unwrap();
    assert!(log.stats().rotations > 10);
    let files = read_back(dir.path(), "app.log");
    assert_eq!(files.len(), 4, "3 rotated + the active one");
    // What is left is the tail of the sequence, in name order, ending in the active file.
    let mut all: Vec<usize> = Vec::new();
    let (active, rotated): (Vec<_>, Vec<_>) = files.into_iter().partition(|f| f.0 == "app.log");
    for (_, ls) in rotated.iter().chain(active.iter()) {
        all.extend(
            ls.iter()
                .map(|l| l.split(' ').nth(1).unwrap()[2..].parse::<usize>().unwrap()),
        );
    }
    assert_eq!(*all.last().unwrap(), 999);
    assert!(
        all.windows(2).all(|w| w[1] == w[0] + 1),
        "kept files are not the newest ones: {:?}",
        rotated
            .iter()
            .map(|f| (&f.0, f.1.first(), f.1.last()))
            .collect::<Vec<_>>()
    );
}

#[test]
fn retention_by_age_removes_only_old_rotated_files() {
    let dir = TempDir::new("age");
    let old = [
        "app.log.20200101-000000.gz",
        "app.log.20200102-000000",
        "app.log.20200103-000000_001.gz",
    ];
    let young = ["app.log.20200104-000000.gz"];
    let unrelated = ["other.log.20200101-000000", "app.log.notes"];
    for name in old.iter().chain(&young).chain(&unrelated) {
        fs::write(dir.path().join(name), b"x\n").unwrap();
    }
    for name in old.iter().chain(&unrelated) {
        age_file(&dir.path().join(name), Duration::from_secs(10 * 86_400));
    }
    age_file(&dir.path().join(young[0]), Duration::from_secs(86_400));

    let log = RotatingWriter::builder(dir.path().join("app.log"))
        .keep_for(Duration::from_secs(7 * 86_400))
        .open()
        .unwrap();
    log.close().unwrap(); // waits for the archiver's startup pass
    for name in old {
        assert!(!dir.path().join(name).exists(), "{name} should be deleted");
    }
    for name in young.iter().chain(&unrelated) {
        assert!(dir.path().join(name).exists(), "{name} should be kept");
    }
}

#[test]
fn a_file_from_an_earlier_day_is_rotated_at_startup() {
    let dir = TempDir::new("startup");
    let path = dir.path().join("app.log");
    fs::write(&path, b"yesterday\n").unwrap();
    age_file(&path, Duration::from_secs(2 * 86_400));
    let log = RotatingWriter::builder(&path)
        .rotate_every(Period::Daily)
        .open()
        .unwrap();
    log.write_line(b"today");
    log.close().unwrap();
    let files = read_back(dir.path(), "app.log");
    assert_eq!(files.len(), 2, "{files:?}");
    assert_eq!(files[0], ("app.log".to_owned(), vec!["today".to_owned()]));
    assert!(files[1].0.starts_with("app.log.2"), "{files:?}");
    assert_eq!(files[1].1, ["yesterday"]);
}

#[test]
fn reopen_follows_an_external_rename() {
    let dir = TempDir::new("reopen");
    let path = dir.path().join("app.log");
    let log = RotatingWriter::builder(&path)
        .flush(Flush::EachWrite)
        .open()
        .unwrap();
    log.write_line(b"one");
    fs::rename(&path, dir.path().join("moved.log")).unwrap();
    log.write_line(b"two"); // still the old file, as with any open fd
    log.reopen().unwrap();
    log.write_line(b"three");
    log.close().unwrap();
    assert_eq!(
        fs::read_to_string(dir.path().join("moved.log")).unwrap(),
        "one\ntwo\n"
    );
    assert_eq!(fs::read_to_string(&path).unwrap(), "three\n");
    assert_eq!(log.stats().reopens, 1);
}

#[test]
fn a_full_disk_drops_and_counts_lines_then_reports_them() {
    let dir = TempDir::new("full");
    let path = dir.path().join("app.log");
    std::os::unix::fs::symlink("/dev/full", &path).unwrap();
    let log = RotatingWriter::builder(&path)
        .follow_symlinks(true)
        .open()
        .unwrap();
    for n in 0..10 {
        log.write_line(format!("doomed {n}").as_bytes());
    }
    let err = log.flush().unwrap_err();
    assert_eq!(err.os_error(), Some(libc::ENOSPC), "{err}");
    assert!(err.to_string().contains("app.log"), "{err}");
    let s = log.stats();
    assert_eq!(s.lines_dropped, 10, "{s:?}");
    assert!(s.errors >= 1, "{s:?}");

    // The disk "recovers": the path is a real file again.
    fs::remove_file(&path).unwrap();
    log.reopen().unwrap();
    log.write_line(b"back");
    log.close().unwrap();
    let text = fs::read_to_string(&path).unwrap();
    let ls: Vec<&str> = text.lines().collect();
    assert_eq!(ls.len(), 2, "{text}");
    assert!(ls[0].contains("lost 10 log lines"), "{text}");
    assert!(ls[0].contains("No space left on device"), "{text}");
    assert_eq!(ls[1], "back");
}

#[test]
fn a_line_stream_holds_partial_lines_and_splits_overlong_ones() {
    let dir = TempDir::new("stream");
    let path = dir.path().join("app.log");
    let log = RotatingWriter::builder(&path).max_line(100).open().unwrap();
    {
        let mut out = log.line_stream();
        let mut err = log.line_stream();
        out.write_all(b"hello ").unwrap();
        err.write_all(b"from stderr\n").unwrap(); // a whole line from another source
        out.write_all(b"world\npart").unwrap();
        assert_eq!(out.pending(), 4);
        out.write_all(&[b'x'; 250]).unwrap(); // 254 bytes, no newline: split at 100
        assert_eq!(out.pending(), 54);
        // Dropping the stream writes the unterminated rest.
    }
    log.close().unwrap();
    let text = fs::read_to_string(&path).unwrap();
    let ls: Vec<&str> = text.lines().collect();
    assert_eq!(ls[0], "from stderr");
    assert_eq!(ls[1], "hello world");
    assert_eq!(ls[2], format!("part{}", "x".repeat(96)));
    assert_eq!(ls[3], "x".repeat(100));
    assert_eq!(ls[4], "x".repeat(54));
    assert_eq!(log.stats().lines_split, 2);
}

#[test]
fn rotated_files_lists_one_path_per_rotation_oldest_first() {
    let dir = TempDir::new("list");
    let active = dir.path().join("app.log");
    // Names as the writer makes them; a rotation caught mid-compression has both forms.
    for name in [
        "app.log.20250309-140702_001.gz",
        "app.log.20250309-140702",
        "app.log.20250310-000000",
        "app.log.20250310-000000.gz",
        "app.log.20250310-000000.gz.tmp",
        "app.log.20250308-235959.zst",
        "app.log.1",
        "other.log.20250309-140702",
        "app.log",
    ] {
        fs::write(dir.path().join(name), "x\n").unwrap();
    }
    let names: Vec<String> = daemonic::logging::rotated_files(&active)
        .unwrap()
        .iter()
        .map(|p| p.file_name().unwrap().to_string_lossy().into_owned())
        .collect();
    assert_eq!(
        names,
        [
            "app.log.20250308-235959.zst",
            "app.log.20250309-140702",
            "app.log.20250309-140702_001.gz",
            "app.log.20250310-000000",
        ]
    );
}

#[test]
fn a_batch_larger_than_the_buffer_lands_whole_in_one_file() {
    let dir = TempDir::new("batch");
    let path = dir.path().join("app.log");
    let log = RotatingWriter::builder(&path)
        .flush(Flush::EachWrite)
        .buffer_capacity(1024)
        .max_size(10_000)
        .open()
        .unwrap();
    let batch: String = (0..100).map(|n| format!("{n:09}\n")).collect(); // 1,000 bytes
    log.write_lines(batch.repeat(8).as_bytes()); // 8,000 bytes: straight through
    log.write_lines(batch.repeat(3).as_bytes()); // would pass 10,000: rotates first
    log.close().unwrap();
    let rotated = daemonic::logging::rotated_files(&path).unwrap();
    assert_eq!(rotated.len(), 1);
    assert_eq!(fs::read_to_string(&rotated[0]).unwrap(), batch.repeat(8));
    assert_eq!(fs::read_to_string(&path).unwrap(), batch.repeat(3));
}
