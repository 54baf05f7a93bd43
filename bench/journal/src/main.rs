//! Appends per second for each durability mode of `daemonic::journal`, and the time to
//! recover a log of N small events — next to SQLite in WAL mode doing the equivalent
//! single-row inserts (one transaction each) and the equivalent full read, in the same run.
//!
//! ```text
//! cargo run --release -- [--secs S] [--threads T] [--events N] [--dir DIR]
//! ```
//!
//! Each throughput case runs for S seconds in all (default 5, in 5 interleaved slices), each
//! slice in a fresh directory under DIR
//! (default: the system temp dir). An event is 16 bytes (two u64s); the state sums them.

use std::path::{Path, PathBuf};
use std::sync::Arc;
use std::sync::atomic::{AtomicBool, AtomicU64, Ordering};
use std::time::{Duration, Instant};

use daemonic::journal::{DecodeError, Durability, Journal, Options, State};

/// The benchmark's state: a count and a sum, so applying an event costs next to nothing
/// and the figures measure the journal.
#[derive(Default)]
struct Sum {
    count: u64,
    total: u64,
}

impl State for Sum {
    type Event = [u64; 2];
    fn apply(&mut self, e: [u64; 2]) {
        self.count += 1;
        self.total = self.total.wrapping_add(e[0] ^ e[1]);
    }
    fn encode_event(e: &[u64; 2], out: &mut Vec<u8>) {
        out.extend_from_slice(&e[0].to_le_bytes());
        out.extend_from_slice(&e[1].to_le_bytes());
    }
    fn decode_event(b: &[u8]) -> Result<[u64; 2], DecodeError> {
        if b.len() != 16 {
            return Err(DecodeError::new("expected 16 bytes"));
        }
        let (a, c) = b.split_at(8);
        Ok([
            u64::from_le_bytes(a.try_into().unwrap()),
            u64::from_le_bytes(c.try_into().unwrap()),
        ])
    }
    fn encode(&self, out: &mut Vec<u8>) {
        Self::encode_event(&[self.count, self.total], out);
    }
    fn decode(b: &[u8]) -> Result<Self, DecodeError> {
        let [count, total] = Self::decode_event(b)?;
        Ok(Sum { count, total })
    }
}

struct Args {
    secs: f64,
    threads: usize,
    events: u64,
    dir: PathBuf,
}

fn parse_args() -> Args {
    let mut a = Args {
        secs: 3.0,
        threads: 32,
        events: 1_000_000,
        dir: std::env::temp_dir(),
    };
    let argv: Vec<String> = std::env::args().skip(1).collect();
    let mut it = argv.iter();
    while let Some(flag) = it.next() {
        let mut value = || it.next().expect("flag needs a value").clone();
        match flag.as_str() {
            "--secs" => a.secs = value().parse().expect("--secs"),
            "--threads" => a.threads = value().parse().expect("--threads"),
            "--events" => a.events = value().parse().expect("--events"),
            "--dir" => a.dir = value().into(),
            _ => {
                eprintln!("usage: journal-bench [--secs S] [--threads T] [--events N] [--dir DIR]");
                std::process::exit(2);
            }
        }
    }
    a
}

/// A fresh, empty directory for one case, removed when dropped.
struct Scratch(PathBuf);
impl Scratch {
    fn new(root: &Path, name: &str) -> Scratch {
        let p = root.join(format!("journal-bench-{}-{name}", std::process::id()));
        let _ = std::fs::remove_dir_all(&p);
        std::fs::create_dir_all(&p).unwrap();
        Scratch(p)
    }
}
impl Drop for Scratch {
    fn drop(&mut self) {
        let _ = std::fs::remove_dir_all(&self.0);
    }
}

/// Runs `op` on `threads` threads for `secs`; returns operations per second.
fn throughput(threads: usize, secs: f64, op: impl Fn(u64) + Sync) -> f64 {
    let stop = AtomicBool::new(false);
    let done = AtomicU64::new(0);
    let start = Instant::now();
    std::thread::scope(|s| {
        for t in 0..threads {
            let (stop, done, op) = (&stop, &done, &op);
            s.spawn(move || {
                let mut i = (t as u64) << 40;
                while !stop.load(Ordering::Relaxed) {
                    op(i);
                    i += 1;
                    done.fetch_add(1, Ordering::Relaxed);
                }
            });
        }
        std::thread::sleep(Duration::from_secs_f64(secs));
        stop.store(true, Ordering::Relaxed);
    });
    done.load(Ordering::Relaxed) as f64 / start.elapsed().as_secs_f64()
}

fn journal_appends(args: &Args, name: &str, mode: Durability, threads: usize) -> f64 {
    let scratch = Scratch::new(&args.dir, name);
    let journal: Arc<Journal<Sum>> = Arc::new(
        Options::new()
            .durability(mode)
            .no_compaction()
            .open(&scratch.0)
            .unwrap(),
    );
    throughput(threads, args.secs, |i| {
        journal.append([i, i * 3]).unwrap();
    })
}

fn sqlite_open(path: &Path, synchronous: &str) -> rusqlite::Connection {
    let db = rusqlite::Connection::open(path).unwrap();
    db.pragma_update(None, "journal_mode", "WAL").unwrap();
    db.pragma_update(None, "synchronous", synchronous).unwrap();
    db.execute_batch(
        "CREATE TABLE IF NOT EXISTS events (seq INTEGER PRIMARY KEY, a INTEGER, b INTEGER)",
    )
    .unwrap();
    db
}

fn sqlite_inserts(args: &Args, synchronous: &str) -> f64 {
    let scratch = Scratch::new(&args.dir, &format!("sqlite-{synchronous}"));
    let db = std::sync::Mutex::new(sqlite_open(&scratch.0.join("db"), synchronous));
    // One connection, one thread: SQLite has one writer at a time anyway.
    throughput(1, args.secs, |i| {
        let db = db.lock().unwrap();
        let mut stmt = db
            .prepare_cached("INSERT INTO events (a, b) VALUES (?1, ?2)")
            .unwrap();
        stmt.execute((i as i64, (i * 3) as i64)).unwrap();
    })
}

/// Seconds to open a journal whose log holds `events` events (no snapshot): all replayed.
fn journal_recovery(args: &Args) -> f64 {
    let scratch = Scratch::new(&args.dir, "recovery");
    {
        let journal: Journal<Sum> = Options::new()
            .durability(Durability::Interval(Duration::from_secs(3600)))
            .no_compaction()
            .open(&scratch.0)
            .unwrap();
        for i in 0..args.events {
            journal.append([i, i * 3]).unwrap();
        }
        journal.close().unwrap();
    }
    // Read back from the page cache ("warm"), as SQLite's below: dropping caches needs
    // root and disturbs the other users of a shared machine.
    let start = Instant::now();
    let journal: Journal<Sum> = Journal::open(&scratch.0).unwrap();
    let took = start.elapsed().as_secs_f64();
    assert_eq!(journal.state().count, args.events);
    assert_eq!(journal.recovery().replayed, args.events);
    took
}

/// Seconds to open the SQLite database holding `events` rows and fold them all into the
/// same state (the equivalent of replaying the log).
fn sqlite_recovery(args: &Args) -> f64 {
    let scratch = Scratch::new(&args.dir, "sqlite-recovery");
    let path = scratch.0.join("db");
    {
        let mut db = sqlite_open(&path, "NORMAL");
        let tx = db.transaction().unwrap();
        {
            let mut stmt = tx
                .prepare("INSERT INTO events (a, b) VALUES (?1, ?2)")
                .unwrap();
            for i in 0..args.events {
                stmt.execute((i as i64, (i * 3) as i64)).unwrap();
            }
        }
        tx.commit().unwrap();
    }
    // Warm, like the journal's.
    let start = Instant::now();
    let db = sqlite_open(&path, "NORMAL");
    let mut state = Sum::default();
    let mut stmt = db.prepare("SELECT a, b FROM events ORDER BY seq").unwrap();
    let mut rows = stmt.query(()).unwrap();
    while let Some(row) = rows.next().unwrap() {
        let (a, b): (i64, i64) = (row.get(0).unwrap(), row.get(1).unwrap());
        state.apply([a as u64, b as u64]);
    }
    let took = start.elapsed().as_secs_f64();
    assert_eq!(state.count, args.events);
    took
}

fn main() {
    let args = parse_args();
    println!(
        "journal-bench: {} s per case, {} threads for group commit, {} events for recovery, dir {}",
        args.secs,
        args.threads,
        args.events,
        args.dir.display()
    );
    // The machine is shared and its disk's fsync latency drifts by 10x over minutes, so the
    // cases run interleaved in `ROUNDS` slices, each case's rate being the mean over its
    // slices: a drift then hits every case alike instead of whichever ran during it.
    const ROUNDS: usize = 5;
    let slice = Args {
        secs: args.secs / ROUNDS as f64,
        dir: args.dir.clone(),
        ..args
    };
    type Case<'a> = (&'a str, Box<dyn Fn(&Args) -> f64>);
    let cases: [Case; 6] = [
        (
            "every",
            Box::new(|a| journal_appends(a, "every", Durability::EveryAppend, 1)),
        ),
        ("full", Box::new(|a| sqlite_inserts(a, "FULL"))),
        (
            "group1",
            Box::new(|a| journal_appends(a, "group1", Durability::GroupCommit, 1)),
        ),
        (
            "group",
            Box::new(|a| journal_appends(a, "group", Durability::GroupCommit, a.threads)),
        ),
        (
            "interval",
            Box::new(|a| {
                journal_appends(
                    a,
                    "interval",
                    Durability::Interval(Duration::from_millis(100)),
                    1,
                )
            }),
        ),
        ("normal", Box::new(|a| sqlite_inserts(a, "NORMAL"))),
    ];
    let mut sums = [0.0f64; 6];
    for _ in 0..ROUNDS {
        for (i, (_, case)) in cases.iter().enumerate() {
            sums[i] += case(&slice) / ROUNDS as f64;
        }
    }
    append_table(&slice, sums);
    recovery_table(&slice);
}

/// The appends/s of every case (each the mean over its slices), next to SQLite's.
fn append_table(args: &Args, sums: [f64; 6]) {
    let [every, full, group1, group, interval, normal] = sums;
    println!();
    println!("| case | appends/s | vs SQLite |");
    println!("|---|---:|---|");
    println!(
        "| journal EveryAppend, 1 thread | {every:.0} | {:.2}x SQLite FULL |",
        every / full
    );
    println!("| SQLite WAL synchronous=FULL, 1 thread | {full:.0} | 1.00x |");
    println!(
        "| journal GroupCommit, 1 thread | {group1:.0} | {:.2}x SQLite FULL |",
        group1 / full
    );
    println!(
        "| journal GroupCommit, {} threads | {group:.0} | {:.2}x SQLite NORMAL |",
        args.threads,
        group / normal
    );
    println!(
        "| journal Interval(100 ms), 1 thread | {interval:.0} | {:.2}x SQLite NORMAL |",
        interval / normal
    );
    println!("| SQLite WAL synchronous=NORMAL, 1 thread | {normal:.0} | 1.00x |");
}

/// The time to recover `--events` events, the journal next to SQLite.
fn recovery_table(args: &Args) {
    let jr = journal_recovery(args);
    let sr = sqlite_recovery(args);
    println!();
    println!(
        "| recovery of {} events | seconds | vs SQLite |",
        args.events
    );
    println!("|---|---:|---|");
    println!(
        "| journal: open + replay the log | {jr:.3} | {:.2}x the time |",
        jr / sr
    );
    println!("| SQLite: open + read every row into the state | {sr:.3} | 1.00x |");
}
