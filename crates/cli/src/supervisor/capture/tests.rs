//! Captures fed through real pipes into real files.

use std::fs::{self, File};
use std::io::Write;
use std::path::{Path, PathBuf};
use std::time::{Duration, Instant};

use daemonic::logging::{RotatingWriter, rotated_files};
use nix::poll::{PollFd, PollFlags, PollTimeout, poll};

use super::*;

/// A directory removed on drop, even when the test fails.
struct TempDir(PathBuf);

impl TempDir {
    fn new(tag: &str) -> TempDir {
        let base = std::env::temp_dir();
        for n in 0.. {
            let p = base.join(format!("daemonic-capture-{tag}-{}-{n}", std::process::id()));
            if fs::create_dir(&p).is_ok() {
                return TempDir(p);
            }
        }
        unreachable!()
    }
}

impl Drop for TempDir {
    fn drop(&mut self) {
        let _ = fs::remove_dir_all(&self.0);
    }
}

fn writer(path: &Path, max_size: Option<u64>) -> RotatingWriter {
    let cfg = LogConfig {
        path: path.to_path_buf(),
        stderr_path: None,
        max_size,
        keep: 10_000,
        timestamps: false,
        compress: LogCompress::None,
    };
    cfg.open().unwrap()
}

/// A pipe: its capture, and the write end as a `File`.
fn piped(log: &RotatingWriter, timestamps: bool) -> (Capture, File) {
    let (cap, w) = Capture::pipe(log, timestamps).unwrap();
    (cap, File::from(w))
}

fn read(path: &Path) -> String {
    fs::read_to_string(path).unwrap_or_default()
}

/// Every line of the rotated files (oldest first) and then the active file, with the
/// file each came from.
fn all_lines(active: &Path) -> Vec<(PathBuf, String)> {
    let mut files = rotated_files(active).unwrap();
    files.push(active.to_path_buf());
    let mut out = Vec::new();
    for f in files {
        let text = fs::read_to_string(&f).unwrap();
        assert!(
            text.is_empty() || text.ends_with('\n'),
            "{} ends mid-line",
            f.display()
        );
        out.extend(text.lines().map(|l| (f.clone(), l.to_string())));
    }
    out
}

/// Polls the captures and feeds them until every one has reached end of file.
fn pump_to_eof(caps: &mut [Capture], limit: Duration) {
    let deadline = Instant::now() + limit;
    let mut done = vec![false; caps.len()];
    while done.contains(&false) {
        assert!(
            Instant::now() < deadline,
            "captures not at EOF within {limit:?}"
        );
        let live: Vec<usize> = (0..caps.len()).filter(|&i| !done[i]).collect();
        let mut fds: Vec<PollFd> = live
            .iter()
            .map(|&i| PollFd::new(caps[i].fd(), PollFlags::POLLIN))
            .collect();
        poll(&mut fds, PollTimeout::from(100u16)).unwrap();
        let ready: Vec<usize> = live
            .iter()
            .zip(&fds)
            .filter(|(_, f)| f.revents().is_some_and(|r| !r.is_empty()))
            .map(|(&i, _)| i)
            .collect();
        drop(fds);
        for i in ready {
            done[i] = caps[i].on_readable().unwrap();
        }
    }
}

#[test]
fn find_newline_finds_the_first_one() {
    let mut s = vec![b'x'; 40];
    assert_eq!(find_newline(&s), None);
    for i in (0..40).rev() {
        s[i] = b'\n';
        assert_eq!(find_newline(&s), Some(i), "{i}");
    }
    // Bytes that differ from '\n' by one bit or a borrow, before a real one.
    assert_eq!(find_newline(b"\x0b\x09\x8a\x00\x01\x8b\x0a\n"), Some(6));
    assert_eq!(
        find_newline(b"\x0b\x09\x8a\x00\x01\x8b\x0b\x09\x0a"),
        Some(8)
    );
    assert_eq!(find_newline(b""), None);
    assert_eq!(find_newline(b"abc\n"), Some(3));
}

#[test]
fn lines_split_over_reads_are_reassembled() {
    let dir = TempDir::new("split");
    let path = dir.0.join("app.log");
    let log = writer(&path, None);
    let (mut cap, mut w) = piped(&log, false);
    w.write_all(b"hel").unwrap();
    assert!(!cap.on_readable().unwrap());
    assert_eq!(read(&path), "", "a partial line is held back");
    w.write_all(b"lo\nwor").unwrap();
    assert!(!cap.on_readable().unwrap());
    assert_eq!(read(&path), "hello\n");
    w.write_all(b"ld\n\nlast").unwrap();
    assert!(!cap.on_readable().unwrap());
    assert_eq!(read(&path), "hello\nworld\n\n");
    assert!(!cap.on_readable().unwrap(), "nothing to read is not EOF");
    drop(w);
    assert!(cap.on_readable().unwrap(), "EOF");
    assert_eq!(
        read(&path),
        "hello\nworld\n\nlast\n",
        "EOF flushes the partial line"
    );
    assert!(cap.on_readable().unwrap(), "still EOF");
}

#[test]
fn eof_flushes_a_partial_line_with_a_newline_added() {
    let dir = TempDir::new("eof");
    let path = dir.0.join("app.log");
    let log = writer(&path, None);
    let (cap, mut w) = piped(&log, false);
    let mut caps = [cap];
    w.write_all(b"first\nlast words").unwrap();
    drop(w);
    pump_to_eof(&mut caps, Duration::from_secs(10));
    assert_eq!(read(&path), "first\nlast words\n");
}

#[test]
fn stdout_and_stderr_into_one_file_keep_their_lines_whole() {
    let dir = TempDir::new("interleave");
    let path = dir.0.join("app.log");
    let log = writer(&path, None);
    let (mut out, mut out_w) = piped(&log, false);
    let (mut err, mut err_w) = piped(&log, false);
    out_w.write_all(b"out: begins ").unwrap();
    out.on_readable().unwrap();
    err_w.write_all(b"err: whole line\nerr: begins ").unwrap();
    err.on_readable().unwrap();
    out_w.write_all(b"and ends\n").unwrap();
    out.on_readable().unwrap();
    err_w.write_all(b"and ends too\n").unwrap();
    err.on_readable().unwrap();
    assert_eq!(
        read(&path),
        "err: whole line\nout: begins and ends\nerr: begins and ends too\n"
    );
}

#[test]
fn stderr_to_its_own_file() {
    let dir = TempDir::new("separate");
    let cfg = LogConfig {
        path: dir.0.join("logs/app.log"),
        stderr_path: Some(dir.0.join("logs/app.err")),
        max_size: None,
        keep: 1,
        timestamps: false,
        compress: LogCompress::None,
    };
    let log = cfg.open().unwrap();
    let err_log = cfg.open_stderr(&log).unwrap();
    let (out, mut out_w) = piped(&log, false);
    let (err, mut err_w) = piped(&err_log, false);
    out_w.write_all(b"to stdout\n").unwrap();
    err_w.write_all(b"to stderr\n").unwrap();
    drop((out_w, err_w));
    pump_to_eof(&mut [out, err], Duration::from_secs(10));
    assert_eq!(read(&dir.0.join("logs/app.log")), "to stdout\n");
    assert_eq!(read(&dir.0.join("logs/app.err")), "to stderr\n");
    let mode = |p: &str| {
        use std::os::unix::fs::PermissionsExt;
        fs::metadata(dir.0.join(p)).unwrap().permissions().mode() & 0o777
    };
    assert_eq!(mode("logs"), LOG_DIR_MODE & !umask());
    assert_eq!(mode("logs/app.log"), LOG_FILE_MODE & !umask());
}

/// The process's umask, read without changing it (which would race other tests).
fn umask() -> u32 {
    let status = fs::read_to_string("/proc/self/status").unwrap();
    let line = status.lines().find(|l| l.starts_with("Umask:")).unwrap();
    u32::from_str_radix(line["Umask:".len()..].trim(), 8).unwrap()
}

#[test]
fn timestamps_prefix_each_line_with_the_time_its_first_bytes_were_read() {
    let dir = TempDir::new("stamps");
    let path = dir.0.join("app.log");
    let log = writer(&path, None);
    let (mut cap, mut w) = piped(&log, true);
    let before = timestamp::prefix(SystemTime::now());
    w.write_all(b"one\ntw").unwrap();
    cap.on_readable().unwrap();
    let first_read = read(&path);
    // Let the clock move on (by a microsecond), so that the two reads' times differ.
    let first = timestamp::prefix(SystemTime::now());
    while timestamp::prefix(SystemTime::now()) == first {}
    w.write_all(b"o\nthree\n").unwrap();
    cap.on_readable().unwrap();
    let after = timestamp::prefix(SystemTime::now());
    let text = read(&path);
    let lines: Vec<&str> = text.lines().collect();
    assert_eq!(lines.len(), 3, "{text}");
    let (stamps, rest): (Vec<&str>, Vec<&str>) =
        lines.iter().map(|l| l.split_at(timestamp::LEN)).unzip();
    assert_eq!(rest, ["one", "two", "three"]);
    for s in &stamps {
        // 2025-03-09T14:07:02.123456Z + a space
        let b = s.as_bytes();
        assert_eq!(
            (b[4], b[10], b[19], b[26], b[27]),
            (b'-', b'T', b'.', b'Z', b' '),
            "{s}"
        );
        assert!(
            s.as_bytes() >= &before[..] && s.as_bytes() <= &after[..],
            "{s}"
        );
    }
    assert_eq!(stamps[0], stamps[1], "`two` started in the first read");
    assert!(stamps[2] > stamps[1], "`three` was read later");
    assert!(first_read.starts_with(stamps[0]) && first_read.ends_with(" one\n"));
}

#[test]
fn an_overlong_line_is_written_in_max_line_pieces() {
    for timestamps in [false, true] {
        let dir = TempDir::new("long");
        let path = dir.0.join("app.log");
        let log = writer(&path, None);
        let (cap, mut w) = piped(&log, timestamps);
        let long = vec![b'x'; 2 * MAX_LINE + 100];
        let feeder = std::thread::spawn(move || {
            w.write_all(b"before\n").unwrap();
            w.write_all(&long).unwrap();
            w.write_all(b"\nafter\n").unwrap();
        });
        pump_to_eof(&mut [cap], Duration::from_secs(10));
        feeder.join().unwrap();
        let text = read(&path);
        let prefix = if timestamps { timestamp::LEN } else { 0 };
        let lens: Vec<usize> = text.lines().map(|l| l.len() - prefix).collect();
        assert_eq!(
            lens,
            [6, MAX_LINE, MAX_LINE, 100, 5],
            "timestamps: {timestamps}"
        );
        if timestamps {
            assert!(text.lines().all(|l| l.as_bytes()[26..28] == *b"Z "));
        }
    }
}

/// The line `n` of stream `tag` as the feeders write it: its number, then filler that
/// depends on the number, so a torn or spliced line cannot pass for a whole one.
fn numbered(tag: char, n: usize) -> String {
    let fill = (b'a' + (n % 26) as u8) as char;
    format!("{tag} {n:08} {}", fill.to_string().repeat(40 + n % 50))
}

#[test]
fn ten_megabytes_through_small_rotations_lose_and_tear_nothing() {
    const LINES: usize = 60_000; // ~5.5 MB per stream, ~11 MB in all
    const MAX_SIZE: u64 = 256 * 1024;
    let dir = TempDir::new("flood");
    let path = dir.0.join("app.log");
    let log = writer(&path, Some(MAX_SIZE));
    let (out, out_w) = piped(&log, false);
    let (err, err_w) = piped(&log, false);
    // Each stream written in odd-sized chunks that cut lines anywhere.
    let feed = |tag: char, mut w: File, chunk: usize| {
        std::thread::spawn(move || {
            let mut all = Vec::new();
            for n in 0..LINES {
                writeln!(all, "{}", numbered(tag, n)).unwrap();
            }
            for piece in all.chunks(chunk) {
                w.write_all(piece).unwrap();
            }
        })
    };
    let feeders = [feed('o', out_w, 7919), feed('e', err_w, 65_537)];
    pump_to_eof(&mut [out, err], Duration::from_secs(120));
    for f in feeders {
        f.join().unwrap();
    }
    log.close().unwrap();

    let lines = all_lines(&path);
    let files = rotated_files(&path).unwrap();
    assert!(files.len() >= 30, "{} rotations", files.len());
    for f in files.iter().chain([&path]) {
        let size = fs::metadata(f).unwrap().len();
        assert!(size <= MAX_SIZE, "{} is {size} bytes", f.display());
    }
    let mut next = [0usize; 2];
    for (file, line) in &lines {
        let stream = usize::from(line.starts_with('e'));
        let n = next[stream];
        let tag = if stream == 1 { 'e' } else { 'o' };
        assert_eq!(line, &numbered(tag, n), "in {}", file.display());
        next[stream] += 1;
    }
    assert_eq!(next, [LINES, LINES], "every line exactly once, in order");
}

/// This thread's hot captures, and whether the big read buffer exists.
fn hot_state() -> (usize, bool) {
    SCRATCH.with_borrow(|s| {
        s.as_ref()
            .map_or((0, false), |s| (s.hot, s.hot_input.is_some()))
    })
}

fn pipe_size(w: &File) -> usize {
    fcntl(w, FcntlArg::F_GETPIPE_SZ).unwrap() as usize
}

#[test]
fn a_full_pipe_is_made_big_until_its_child_goes_quiet() {
    let dir = TempDir::new("hot");
    let path = dir.0.join("app.log");
    let log = writer(&path, None);
    let (mut cap, mut w) = piped(&log, false);
    assert_eq!(pipe_size(&w), READ_CHUNK, "a new pipe has the default size");
    let line = [b"y".repeat(63), b"\n".to_vec()].concat();
    w.write_all(&line.repeat(READ_CHUNK / 64)).unwrap(); // fills it
    assert!(!cap.on_readable().unwrap());
    assert_eq!(pipe_size(&w), HOT_PIPE, "found full: made big");
    assert_eq!(hot_state(), (1, true));
    // Hot: 2 MiB read in 1 MiB pieces cut mid-line lose nothing.
    let stream = line.repeat(2 * HOT_PIPE / 64);
    w.write_all(&stream[..HOT_PIPE - 10]).unwrap();
    assert!(!cap.on_readable().unwrap());
    assert_eq!(
        pipe_size(&w),
        HOT_PIPE,
        "still hot (or the write would block)"
    );
    w.write_all(&stream[HOT_PIPE - 10..2 * HOT_PIPE - 10])
        .unwrap();
    assert!(!cap.on_readable().unwrap());
    assert_eq!(hot_state(), (1, true), "still busy: still hot");
    w.write_all(&stream[2 * HOT_PIPE - 10..]).unwrap();
    w.write_all(b"bye\n").unwrap();
    assert!(!cap.on_readable().unwrap());
    assert_eq!(pipe_size(&w), READ_CHUNK, "quiet: back to the default");
    assert_eq!(hot_state(), (0, false), "and the big buffer is gone");
    let text = read(&path);
    assert_eq!(text.len(), READ_CHUNK + 2 * HOT_PIPE + 4);
    assert!(
        text.lines()
            .take(text.lines().count() - 1)
            .all(|l| l.as_bytes() == &line[..63])
    );
    assert!(text.ends_with("\nbye\n"));
}

#[test]
fn a_hot_capture_dropped_or_at_its_end_frees_the_big_buffer() {
    let dir = TempDir::new("hot-end");
    let path = dir.0.join("app.log");
    let log = writer(&path, None);
    let fill = |w: &mut File| w.write_all(&b"z\n".repeat(READ_CHUNK / 2)).unwrap();
    let (mut a, mut aw) = piped(&log, false);
    let (mut b, mut bw) = piped(&log, true);
    fill(&mut aw);
    fill(&mut bw);
    assert!(!a.on_readable().unwrap());
    assert!(!b.on_readable().unwrap());
    assert_eq!(hot_state(), (2, true), "timestamped captures get hot too");
    drop(a);
    assert_eq!(hot_state(), (1, true), "b still uses it");
    bw.write_all(b"last").unwrap();
    drop(bw);
    assert!(b.on_readable().unwrap(), "EOF");
    assert_eq!(hot_state(), (0, false));
    drop(aw);
    let text = read(&path);
    assert_eq!(text.lines().count(), READ_CHUNK + 1);
    assert!(text.ends_with("Z last\n"), "{:?}", &text[text.len() - 40..]);
}

/// A capture made hot by one full pipe of `line`s (written to `w`).
fn heat_up(cap: &mut Capture, w: &mut File, line: &[u8]) {
    w.write_all(&line.repeat(READ_CHUNK / line.len())).unwrap();
    assert!(!cap.on_readable().unwrap());
    assert_eq!(pipe_size(w), HOT_PIPE);
}

#[test]
fn a_long_line_inside_a_hot_read_is_still_cut_at_max_line() {
    let dir = TempDir::new("hot-long");
    let path = dir.0.join("app.log");
    let log = writer(&path, None);
    let (mut cap, mut w) = piped(&log, false);
    let line = [b"s".repeat(63), b"\n".to_vec()].concat();
    heat_up(&mut cap, &mut w, &line);
    let mut read = line.repeat(1000);
    read.extend_from_slice(&[b"L".repeat(100_000), b"\n".to_vec()].concat());
    read.extend_from_slice(&line.repeat((HOT_PIPE - read.len()) / 64));
    w.write_all(&read).unwrap();
    assert!(!cap.on_readable().unwrap());
    let text = read_to_lines(&path);
    assert!(
        text.iter().all(|l| l.len() <= MAX_LINE),
        "a line over MAX_LINE"
    );
    let long: Vec<usize> = text
        .iter()
        .filter(|l| l.starts_with('L'))
        .map(String::len)
        .collect();
    assert_eq!(long, [MAX_LINE, 100_000 - MAX_LINE]);
    assert_eq!(
        text.len(),
        READ_CHUNK / 64 + 1000 + 2 + (HOT_PIPE - 1000 * 64 - 100_001) / 64
    );
}

#[test]
fn hot_writes_fill_rotated_files_to_their_limit_and_no_further() {
    const MAX_SIZE: u64 = 3 * 1024 * 1024;
    let dir = TempDir::new("hot-rotate");
    let path = dir.0.join("app.log");
    let log = writer(&path, Some(MAX_SIZE));
    let (mut cap, mut w) = piped(&log, false);
    let line = [b"r".repeat(99), b"\n".to_vec()].concat();
    let stream = line.repeat(12 * HOT_PIPE / 100);
    heat_up(
        &mut cap,
        &mut w,
        &[b"h".repeat(63), b"\n".to_vec()].concat(),
    );
    for piece in stream.chunks(HOT_PIPE - 7) {
        // (Still hot, or the write below would wait for a reader for good.)
        assert_eq!(pipe_size(&w), HOT_PIPE);
        w.write_all(piece).unwrap();
        assert!(!cap.on_readable().unwrap());
    }
    drop(w);
    pump_to_eof(&mut [cap], Duration::from_secs(10));
    log.close().unwrap();
    let files = rotated_files(&path).unwrap();
    assert!(files.len() >= 3, "{} rotations", files.len());
    for f in &files {
        let size = fs::metadata(f).unwrap().len();
        assert!(size <= MAX_SIZE, "{} is {size} bytes", f.display());
        assert!(
            size > MAX_SIZE - 2 * READ_CHUNK as u64,
            "{} is only {size} bytes",
            f.display()
        );
    }
    let lines = all_lines(&path);
    assert_eq!(lines.len(), READ_CHUNK / 64 + stream.len() / 100);
    assert!(
        lines
            .iter()
            .skip(READ_CHUNK / 64)
            .all(|(_, l)| l.as_bytes() == &line[..99])
    );
}

fn read_to_lines(path: &Path) -> Vec<String> {
    read(path).lines().map(str::to_string).collect()
}
