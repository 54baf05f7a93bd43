//! A fixture for the journal's crash tests (not a user-facing example): a process that
//! appends to a journal until it is killed, or kills itself in the middle of a snapshot.
//!
//! ```text
//! journal-appender append DIR every|group|interval THREADS COMPACT_AFTER_BYTES
//!     opens DIR, prints "ready", then THREADS threads append events of streams
//!     0..THREADS and print "ack STREAM N" after each append returns Ok (that is, once
//!     the event is acknowledged). Runs until killed, stdout closes, or 100000 appends.
//! journal-appender snapshot-crash DIR STEP
//!     appends 10 events, snapshots, appends 10 more, prints "appended 20", then snapshots
//!     again and sends itself SIGKILL right after STEP (a `SnapshotStep` name).
//! journal-appender hold DIR
//!     opens DIR, prints "ready", and keeps the journal open until stdin closes.
//! journal-appender script DIR every|group|interval COUNT SNAPSHOT_EVERY
//!     one thread appends events 0..COUNT of stream 0 (COUNT may be 0), snapshotting after
//!     every SNAPSHOT_EVERY-th (0: never; no automatic compaction), then closes. Prints
//!     "ack 0 N" after each append that returns Ok, "err N KIND ERRNO" after one that fails
//!     (and goes on; ERRNO is "-" without an OS error), "snapshot SEQ" / "snaperr KIND
//!     ERRNO" after each snapshot. In interval mode
//!     (the flusher's interval is an hour) it calls sync() after every third append and
//!     prints "synced N" or "syncerr KIND ERRNO". The I/O-trace and fault tests run it.
//! ```

use std::io::{BufRead, Write};
use std::process::ExitCode;
use std::sync::Arc;
use std::time::Duration;

use daemonic::journal::{Durability, Journal, Options};
use nix::sys::signal::{Signal, raise};

#[path = "../tests/journal/fixture.rs"]
mod fixture;
use fixture::{Recorded, count_of, event};

fn main() -> ExitCode {
    let args: Vec<String> = std::env::args().skip(1).collect();
    let args: Vec<&str> = args.iter().map(String::as_str).collect();
    let result = match args.as_slice() {
        ["append", dir, mode, threads, compact] => append(dir, mode, threads, compact),
        ["snapshot-crash", dir, step] => snapshot_crash(dir, step),
        ["hold", dir] => hold(dir),
        ["script", dir, mode, count, every] => script(dir, mode, count, every),
        _ => Err("usage: see the comment at the top of journal-appender.rs".into()),
    };
    match result {
        Ok(()) => ExitCode::SUCCESS,
        Err(e) => {
            eprintln!("journal-appender: {e}");
            ExitCode::FAILURE
        }
    }
}

type Res = Result<(), Box<dyn std::error::Error>>;

fn append(dir: &str, mode: &str, threads: &str, compact: &str) -> Res {
    let durability = match mode {
        "every" => Durability::EveryAppend,
        "group" => Durability::GroupCommit,
        "interval" => Durability::Interval(Duration::from_millis(5)),
        other => return Err(format!("unknown mode {other}").into()),
    };
    let threads: u8 = threads.parse()?;
    let journal: Arc<Journal<Recorded>> = Arc::new(
        Options::new()
            .durability(durability)
            .compact_after(compact.parse()?)
            .open(dir)?,
    );
    println!("ready");
    std::io::stdout().flush()?;
    let workers: Vec<_> = (0..threads)
        .map(|stream| {
            let journal = Arc::clone(&journal);
            std::thread::spawn(move || -> Result<(), String> {
                let first = count_of(&journal.state(), stream);
                for n in first..first + 100_000 {
                    journal
                        .append(event(stream, n))
                        .map_err(|e| e.to_string())?;
                    let mut out = std::io::stdout().lock();
                    if writeln!(out, "ack {stream} {n}")
                        .and_then(|_| out.flush())
                        .is_err()
                    {
                        return Ok(()); // the test stopped listening
                    }
                }
                Ok(())
            })
        })
        .collect();
    for w in workers {
        w.join().map_err(|_| "appender thread panicked")??;
    }
    Ok(())
}

fn snapshot_crash(dir: &str, step: &str) -> Res {
    let journal: Journal<Recorded> = Options::new()
        .durability(Durability::EveryAppend)
        .no_compaction()
        .open(dir)?;
    for n in 0..10 {
        journal.append(event(0, n))?;
    }
    journal.snapshot()?;
    for n in 10..20 {
        journal.append(event(0, n))?;
    }
    println!("appended 20");
    std::io::stdout().flush()?;
    journal.snapshot_observed(|s| {
        if format!("{s:?}") == step {
            // The real thing: SIGKILL cannot be caught, nothing runs after it.
            let _ = raise(Signal::SIGKILL);
        }
    })?;
    Err(format!("snapshot finished without reaching step {step}").into())
}

fn hold(dir: &str) -> Res {
    let _journal: Journal<Recorded> = Journal::open(dir)?;
    println!("ready");
    std::io::stdout().flush()?;
    for line in std::io::stdin().lock().lines() {
        line?;
    }
    Ok(())
}

fn script(dir: &str, mode: &str, count: &str, every: &str) -> Res {
    let durability = match mode {
        "every" => Durability::EveryAppend,
        "group" => Durability::GroupCommit,
        "interval" => Durability::Interval(Duration::from_secs(3600)),
        other => return Err(format!("unknown mode {other}").into()),
    };
    let (count, every): (u64, u64) = (count.parse()?, every.parse()?);
    let journal: Journal<Recorded> = Options::new()
        .durability(durability)
        .no_compaction()
        .open(dir)?;
    let mut out = std::io::stdout().lock();
    for n in 0..count {
        match journal.append(event(0, n)) {
            Ok(_) => writeln!(out, "ack 0 {n}")?,
            Err(e) => writeln!(out, "err {n} {:?} {}", e.kind(), errno(&e))?,
        }
        if mode == "interval" && n % 3 == 2 {
            match journal.sync() {
                Ok(()) => writeln!(out, "synced {n}")?,
                Err(e) => writeln!(out, "syncerr {:?} {}", e.kind(), errno(&e))?,
            }
        }
        if every > 0 && (n + 1) % every == 0 {
            match journal.snapshot() {
                Ok(seq) => writeln!(out, "snapshot {seq}")?,
                Err(e) => writeln!(out, "snaperr {:?} {}", e.kind(), errno(&e))?,
            }
        }
        out.flush()?;
    }
    Ok(journal.close()?)
}

/// The OS error number behind a journal error, or "-".
fn errno(e: &daemonic::Error) -> String {
    e.os_error()
        .map_or_else(|| "-".to_string(), |n| n.to_string())
}
