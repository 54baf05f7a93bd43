//! `spew BYTES STAMP-FILE [MARKER]`: the child of the log-capture measurement.
//!
//! Reads `CLOCK_MONOTONIC` and writes it to STAMP-FILE (`PID NANOS\n`), then writes BYTES
//! (rounded down to whole lines) of numbered 64-byte lines to stdout as fast as it can, in
//! 64 KiB writes, and exits 0. With MARKER: if MARKER exists it writes nothing and sleeps
//! until a signal (a supervisor that restarts it regardless, like runsv, does not get a
//! second helping); otherwise it creates MARKER first.

use std::fs::{File, OpenOptions};
use std::io::Write;
use std::os::fd::FromRawFd;

const LINE: usize = 64;

fn main() {
    let mut ts = libc::timespec {
        tv_sec: 0,
        tv_nsec: 0,
    };
    // SAFETY: a valid pointer to a timespec.
    unsafe { libc::clock_gettime(libc::CLOCK_MONOTONIC, &mut ts) };
    let nanos = ts.tv_sec as u128 * 1_000_000_000 + ts.tv_nsec as u128;
    let args: Vec<String> = std::env::args().skip(1).collect();
    if args.len() < 2 {
        eprintln!("usage: spew BYTES STAMP-FILE [MARKER]");
        std::process::exit(2);
    }
    let bytes: usize = args[0].parse().expect("BYTES: a number");
    if let Some(marker) = args.get(2)
        && OpenOptions::new()
            .write(true)
            .create_new(true)
            .open(marker)
            .is_err()
    {
        loop {
            // SAFETY: no preconditions.
            unsafe { libc::pause() };
        }
    }
    std::fs::write(&args[1], format!("{} {}\n", std::process::id(), nanos)).expect("stamp file");
    // SAFETY: fd 1 is our stdout, open for the life of the process; the File owns it from here.
    let mut out = unsafe { File::from_raw_fd(1) };
    let mut buf = vec![0u8; 64 * 1024];
    let per = buf.len() / LINE;
    let lines = bytes / LINE;
    // The harness looks for the last line with this same text.
    let tail = b" abcdefghijklmnopqrstuvwxyz0123456789ABCDEFGHIJKLMN\n";
    assert_eq!(12 + tail.len(), LINE);
    let mut n = 0usize;
    while n < lines {
        let k = per.min(lines - n);
        for (i, line) in buf.chunks_exact_mut(LINE).take(k).enumerate() {
            let mut v = n + i;
            for d in line[..12].iter_mut().rev() {
                *d = b'0' + (v % 10) as u8;
                v /= 10;
            }
            line[12..].copy_from_slice(tail);
        }
        if let Err(e) = out.write_all(&buf[..k * LINE]) {
            eprintln!("spew: write: {e}");
            std::process::exit(1);
        }
        n += k;
    }
}
