//! Lines/s and MB/s into daemonic's `RotatingWriter` versus a plain `BufWriter<File>` and
//! tracing-appender's `RollingFileAppender`, in one run, on one machine.
//!
//! Every variant writes the same pre-built lines (80–140 bytes, cycling) to a fresh file in
//! DIR; the clock stops after the final flush (for the rotating writer: after `flush()`,
//! before `close()` waits for background compression, which is off the write path by
//! design). Rounds are interleaved (A B C D, A B C D, …) so drift in a noisy machine hits
//! all variants alike; the median round is reported.

use std::fs::{self, File};
use std::io::{BufWriter, Write};
use std::path::{Path, PathBuf};
use std::sync::{Arc, Mutex};
use std::time::{Duration, Instant};

use daemonic::logging::{Compression, Fsync, RotatingWriter};
use tracing_appender::rolling::{RollingFileAppender, Rotation};

fn make_lines() -> Vec<Vec<u8>> {
    (0..1024)
        .map(|i| {
            let pad = "x".repeat(i % 61);
            format!(
                "2025-03-09T14:07:02.{i:06}Z  INFO web::http: served path=/api/v1/items/{i} status=200 {pad}\n"
            )
            .into_bytes()
        })
        .collect()
}

type Variant = (&'static str, fn(&Path, &[Vec<u8>], usize) -> Duration);

fn bufwriter(dir: &Path, lines: &[Vec<u8>], n: usize) -> Duration {
    let mut w = BufWriter::new(File::create(dir.join("plain.log")).unwrap());
    let t = Instant::now();
    for i in 0..n {
        w.write_all(&lines[i % lines.len()]).unwrap();
    }
    w.flush().unwrap();
    t.elapsed()
}

fn rotating(dir: &Path, lines: &[Vec<u8>], n: usize) -> Duration {
    let w = RotatingWriter::builder(dir.join("rot.log")).open().unwrap();
    let t = Instant::now();
    for i in 0..n {
        w.write_line(&lines[i % lines.len()]);
    }
    w.flush().unwrap();
    let e = t.elapsed();
    w.close().unwrap();
    e
}

fn bufwriter_64k(dir: &Path, lines: &[Vec<u8>], n: usize) -> Duration {
    let f = File::create(dir.join("plain64.log")).unwrap();
    let mut w = BufWriter::with_capacity(64 * 1024, f);
    let t = Instant::now();
    for i in 0..n {
        w.write_all(&lines[i % lines.len()]).unwrap();
    }
    w.flush().unwrap();
    t.elapsed()
}

fn rotating_64m(dir: &Path, lines: &[Vec<u8>], n: usize) -> Duration {
    rotating_with(dir, lines, n, Compression::None, Fsync::OnRotate)
}

fn rotating_64m_gzip_nosync(dir: &Path, lines: &[Vec<u8>], n: usize) -> Duration {
    rotating_with(dir, lines, n, Compression::Gzip, Fsync::Never)
}

fn rotating_with(dir: &Path, lines: &[Vec<u8>], n: usize, c: Compression, s: Fsync) -> Duration {
    let w = RotatingWriter::builder(dir.join("rotx.log"))
        .max_size(64 << 20)
        .compress(c)
        .fsync(s)
        .open()
        .unwrap();
    let t = Instant::now();
    for i in 0..n {
        w.write_line(&lines[i % lines.len()]);
    }
    w.flush().unwrap();
    let e = t.elapsed();
    w.close().unwrap();
    e
}

fn rotating_64m_gzip(dir: &Path, lines: &[Vec<u8>], n: usize) -> Duration {
    let w = RotatingWriter::builder(dir.join("rotgz.log"))
        .max_size(64 << 20)
        .compress(Compression::Gzip)
        .open()
        .unwrap();
    let t = Instant::now();
    for i in 0..n {
        w.write_line(&lines[i % lines.len()]);
    }
    w.flush().unwrap();
    let e = t.elapsed();
    w.close().unwrap();
    e
}

fn appender(dir: &Path, lines: &[Vec<u8>], n: usize) -> Duration {
    let mut w = RollingFileAppender::new(Rotation::NEVER, dir, "appender.log");
    let t = Instant::now();
    for i in 0..n {
        w.write_all(&lines[i % lines.len()]).unwrap();
    }
    w.flush().unwrap();
    t.elapsed()
}

fn two_threads<W: Fn(&[u8]) + Sync>(lines: &[Vec<u8>], n: usize, write: W) -> Duration {
    let t = Instant::now();
    std::thread::scope(|s| {
        for k in 0..2 {
            let write = &write;
            s.spawn(move || {
                for i in (k..n).step_by(2) {
                    write(&lines[i % lines.len()]);
                }
            });
        }
    });
    t.elapsed()
}

fn bufwriter_mutex_2t(dir: &Path, lines: &[Vec<u8>], n: usize) -> Duration {
    let w = Mutex::new(BufWriter::new(File::create(dir.join("plain2.log")).unwrap()));
    let mut e = two_threads(lines, n, |l| w.lock().unwrap().write_all(l).unwrap());
    let t = Instant::now();
    w.lock().unwrap().flush().unwrap();
    e += t.elapsed();
    e
}

fn rotating_2t(dir: &Path, lines: &[Vec<u8>], n: usize) -> Duration {
    let w = Arc::new(RotatingWriter::builder(dir.join("rot2.log")).open().unwrap());
    let mut e = two_threads(lines, n, |l| w.write_line(l));
    let t = Instant::now();
    w.flush().unwrap();
    e += t.elapsed();
    w.close().unwrap();
    e
}

fn main() {
    let mut args = std::env::args().skip(1);
    let base = PathBuf::from(args.next().unwrap_or_else(|| "/tmp/daemonic-logging-bench".into()));
    let n: usize = args.next().map_or(1_000_000, |s| s.parse().unwrap());
    let rounds: usize = args.next().map_or(5, |s| s.parse().unwrap());
    let lines = make_lines();
    let avg_len = lines.iter().map(Vec::len).sum::<usize>() as f64 / lines.len() as f64;
    let bytes = n as f64 * avg_len;
    let variants: [Variant; 9] = [
        ("BufWriter<File> (8 KiB, baseline)", bufwriter),
        ("BufWriter<File> with 64 KiB", bufwriter_64k),
        ("daemonic RotatingWriter (no rotation)", rotating),
        ("daemonic RotatingWriter (64 MiB, fsync/rot.)", rotating_64m),
        ("daemonic RotatingWriter (64 MiB + gzip)", rotating_64m_gzip),
        ("daemonic ... (64 MiB + gzip, Fsync::Never)", rotating_64m_gzip_nosync),
        ("tracing-appender RollingFileAppender (never)", appender),
        ("Mutex<BufWriter<File>>, 2 threads", bufwriter_mutex_2t),
        ("daemonic RotatingWriter, 2 threads", rotating_2t),
    ];
    let mut times: Vec<Vec<Duration>> = vec![Vec::new(); variants.len()];
    for _ in 0..rounds {
        for (i, (_, f)) in variants.iter().enumerate() {
            let _ = fs::remove_dir_all(&base);
            fs::create_dir_all(&base).unwrap();
            times[i].push(f(&base, &lines, n));
        }
    }
    let _ = fs::remove_dir_all(&base);
    println!("{n} lines/round, {avg_len:.1} bytes/line avg, {rounds} rounds interleaved, median shown");
    println!("{:<46} {:>12} {:>9} {:>12}", "writer", "lines/s", "MB/s", "vs baseline");
    let median = |v: &mut Vec<Duration>| {
        v.sort();
        v[v.len() / 2]
    };
    let base_t = median(&mut times[0].clone());
    let base_2t = median(&mut times[7].clone());
    for (i, (name, _)) in variants.iter().enumerate() {
        let t = median(&mut times[i]);
        let reference = if i >= 7 { base_2t } else { base_t };
        println!(
            "{name:<46} {:>12.0} {:>9.1} {:>11.0}%",
            n as f64 / t.as_secs_f64(),
            bytes / t.as_secs_f64() / 1e6,
            100.0 * reference.as_secs_f64() / t.as_secs_f64()
        );
    }
}
