//! `stamp [FILE]`: the supervised child of the restart-latency and memory measurements.
//!
//! Its first act is to read `CLOCK_MONOTONIC`; it then appends `PID NANOS\n` to
//! `$STAMP_FILE` if set (so that runit's and s6's `./run` can be a symlink to this binary
//! and need no shell; s6-supervise passes the service name as the first argument), else
//! to FILE, else to `./stamps`, and sleeps until a signal ends it (or, with `STAMP_EXIT`
//! set and not empty, exits 1 at once: the crash-loop child). The harness SIGKILLs it and
//! takes the next line's NANOS minus the time of the kill as the restart latency; both
//! clocks are the same system-wide `CLOCK_MONOTONIC`.

use std::fs::OpenOptions;
use std::io::Write;

fn main() {
    let mut ts = libc::timespec {
        tv_sec: 0,
        tv_nsec: 0,
    };
    // SAFETY: a valid pointer to a timespec.
    unsafe { libc::clock_gettime(libc::CLOCK_MONOTONIC, &mut ts) };
    let nanos = ts.tv_sec as u128 * 1_000_000_000 + ts.tv_nsec as u128;
    let path = std::env::var_os("STAMP_FILE")
        .or_else(|| std::env::args_os().nth(1))
        .unwrap_or_else(|| "stamps".into());
    let line = format!("{} {}\n", std::process::id(), nanos);
    // One write(2) on an O_APPEND file: lines of concurrent children never interleave.
    match OpenOptions::new().create(true).append(true).open(&path) {
        Ok(mut f) => {
            if let Err(e) = f.write_all(line.as_bytes()) {
                eprintln!("stamp: {}: {e}", path.to_string_lossy());
            }
        }
        Err(e) => eprintln!("stamp: {}: {e}", path.to_string_lossy()),
    }
    if std::env::var_os("STAMP_EXIT").is_some_and(|v| !v.is_empty()) {
        std::process::exit(1);
    }
    loop {
        // SAFETY: pause has no preconditions; it returns after a caught signal (none are).
        unsafe { libc::pause() };
    }
}
