//! A daemon that logs numbered lines into a [`RotatingWriter`] until SIGTERM, and reopens
//! its file on SIGUSR1 — the shape of a real daemon under an external `logrotate`.
//!
//! ```text
//! log-flood PATH [PACE_MICROS]
//! ```
//!
//! Each line is `seq=N pid=P <padding>|`; the trailing `|` lets a reader see a torn line.
//! On SIGTERM it closes the writer and prints
//! `wrote N reopens R truncations T dropped D` on stdout, then exits 0.
//! The integration tests (`tests/logging.rs`) drive it with the real `logrotate`.

use std::sync::Arc;
use std::sync::atomic::{AtomicBool, Ordering};
use std::time::Duration;

use daemonic::logging::RotatingWriter;
use signal_hook::consts::{SIGTERM, SIGUSR1};

fn main() -> Result<(), Box<dyn std::error::Error>> {
    let mut args = std::env::args().skip(1);
    let path = args.next().ok_or("usage: log-flood PATH [PACE_MICROS]")?;
    let pace = Duration::from_micros(args.next().map(|p| p.parse()).transpose()?.unwrap_or(0));

    // Handlers only set flags; the loop below acts on them (signals are events).
    let reopen = Arc::new(AtomicBool::new(false));
    let term = Arc::new(AtomicBool::new(false));
    signal_hook::flag::register(SIGUSR1, Arc::clone(&reopen))?;
    signal_hook::flag::register(SIGTERM, Arc::clone(&term))?;

    let log = RotatingWriter::builder(&path).open()?;
    let pid = std::process::id();
    let mut seq: u64 = 0;
    while !term.load(Ordering::Relaxed) {
        if reopen.swap(false, Ordering::Relaxed) {
            log.reopen()?;
        }
        let line = format!("seq={seq} pid={pid} the quick brown fox jumps over the lazy dog|");
        log.write_line(line.as_bytes());
        seq += 1;
        if !pace.is_zero() {
            std::thread::sleep(pace);
        }
    }
    log.close()?;
    let s = log.stats();
    println!(
        "wrote {seq} reopens {} truncations {} dropped {}",
        s.reopens, s.truncations_seen, s.lines_dropped
    );
    Ok(())
}
