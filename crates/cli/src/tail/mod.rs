//! Reading a log the way `tail` does: the last N lines, through the rotated files when the
//! active one has fewer ([`last_lines`]), and following it as it grows and rotates
//! ([`follow::Follower`]).
//!
//! The files are those of [`daemonic::logging::RotatingWriter`]'s naming scheme: the
//! active `NAME` and, beside it, `NAME.YYYYmmdd-HHMMSS[_NNN]`, possibly `.gz` (read with
//! `flate2`) or `.zst` (not readable here: reading stops there with a note). A plain file
//! is read backwards from its end in 64 KiB blocks, so the last lines of a 100 MB file
//! cost a block or two; a gzip file has no way to seek backwards and is decompressed
//! whole, keeping only its tail in memory.
//!
//! A line is what ends with `\n`; a last line without one counts as a line (`tail` does the
//! same), except where the caller wants complete lines only (before following: the rest of
//! that line is printed once its newline arrives).
//!
//! Every file is opened with [`open_log`]: no symlink anywhere in its path is followed,
//! and only a regular file (as root: root's own, with one link) is read, so a
//! service that can write its log directory cannot make root print another file.

pub mod follow;
pub mod merge;

use std::fs::File;
use std::io::{self, Read, Write};
use std::os::unix::fs::{FileExt, MetadataExt};
use std::path::{Path, PathBuf};

/// Bytes read per step, backwards or forwards.
const BLOCK: usize = 64 * 1024;

/// Bytes to print, oldest first: ranges of open files, or decompressed lines.
pub enum Segment {
    File { file: File, start: u64, end: u64 },
    Bytes(Vec<u8>),
}

/// The last lines of a log, and where following continues.
pub struct Tail {
    /// Oldest first; printed in this order they are the last `n` lines.
    pub segments: Vec<Segment>,
    /// The active file, open; following continues at `follow_from`.
    pub active: File,
    pub follow_from: u64,
    /// Things the user should know (a rotated file that could not be read).
    pub notes: Vec<String>,
}

/// The last `n` lines of the log whose active file is `active`: from the active file and,
/// while it has fewer, from the rotated files, newest first. With `complete_only`, a
/// trailing line without its newline is left out (and `follow_from` is its start).
///
/// The active file is opened before the rotated files are listed, and the listing is
/// taken again if a rotation renamed the active file meanwhile, so a file is never read
/// both as the active one and as a rotated one. The error for a missing active file keeps
/// `ErrorKind::NotFound` for the caller.
pub fn last_lines(active: &Path, n: usize, complete_only: bool) -> io::Result<Tail> {
    let (file, rotated) = open_consistent(active)?;
    let ctx = |e: io::Error| annotate(e, "read", active);
    let len = file.metadata().map_err(ctx)?.len();
    let end = if complete_only {
        after_last_newline(&file, len).map_err(ctx)?
    } else {
        len
    };
    let (start, found) = scan_back(&file, end, n).map_err(ctx)?;
    let id = file.metadata().map_err(ctx)?.ino();
    let mut tail = Tail {
        segments: Vec::new(),
        active: file.try_clone().map_err(ctx)?,
        follow_from: end,
        notes: Vec::new(),
    };
    tail.segments.push(Segment::File { file, start, end });
    let mut need = n - found;
    for path in rotated.iter().rev() {
        if need == 0 {
            break;
        }
        match open_rotated(path)? {
            Rotated::Plain(f, _) => {
                let meta = f.metadata().map_err(|e| annotate(e, "read", path))?;
                if meta.ino() == id {
                    continue; // the active file, renamed after all: already read
                }
                let (start, found) =
                    scan_back(&f, meta.len(), need).map_err(|e| annotate(e, "read", path))?;
                tail.segments.push(Segment::File {
                    file: f,
                    start,
                    end: meta.len(),
                });
                need -= found;
            }
            Rotated::Gzip(f, p) => {
                let (bytes, found) = gzip_tail(f, need).map_err(|e| annotate(e, "read", &p))?;
                tail.segments.push(Segment::Bytes(bytes));
                need -= found;
            }
            Rotated::Unreadable(p) => {
                tail.notes.push(format!(
                    "older lines are in {} (zstd), which daemonic logs cannot read",
                    p.display()
                ));
                break;
            }
            Rotated::Refused(e) => tail.notes.push(format!("skipped: {e}")),
            Rotated::Gone => {}
        }
    }
    tail.segments.reverse();
    Ok(tail)
}

/// Writes the segments to `out`, each ending with a newline except the last (the active
/// file's trailing partial line, if it was asked for, prints as it is, like `tail`).
pub fn print(segments: &[Segment], out: &mut impl Write) -> io::Result<()> {
    let mut buf = vec![0; BLOCK];
    for (i, seg) in segments.iter().enumerate() {
        let last_byte = match seg {
            Segment::Bytes(b) => {
                out.write_all(b)?;
                b.last().copied()
            }
            Segment::File { file, start, end } => copy_range(file, *start, *end, &mut buf, out)?,
        };
        // A rotated file that ends mid-line (a torn write) must not run into the next one.
        if i + 1 < segments.len() && last_byte.is_some_and(|b| b != b'\n') {
            out.write_all(b"\n")?;
        }
    }
    Ok(())
}

/// Copies `file[start..end]` (or to its end, if shorter) to `out`; returns the last byte
/// copied.
fn copy_range(
    file: &File,
    mut start: u64,
    end: u64,
    buf: &mut [u8],
    out: &mut impl Write,
) -> io::Result<Option<u8>> {
    let mut last = None;
    while start < end {
        let want = buf.len().min((end - start) as usize);
        let got = file.read_at(&mut buf[..want], start)?;
        if got == 0 {
            break; // truncated meanwhile
        }
        out.write_all(&buf[..got])?;
        last = Some(buf[got - 1]);
        start += got as u64;
    }
    Ok(last)
}

/// Opens the active file and lists the rotated ones such that the file opened was still
/// the active one after the listing (three tries; then the last try is taken as it is).
fn open_consistent(active: &Path) -> io::Result<(File, Vec<PathBuf>)> {
    let mut tries = 0;
    loop {
        let file = open_log(active)?;
        let rotated = daemonic::logging::rotated_files(active)
            .map_err(|e| io::Error::other(e.to_string()))?;
        tries += 1;
        let same = match (file.metadata(), std::fs::symlink_metadata(active)) {
            (Ok(a), Ok(b)) => (a.dev(), a.ino()) == (b.dev(), b.ino()),
            _ => false,
        };
        if same || tries == 3 {
            return Ok((file, rotated));
        }
    }
}

/// A rotated file, opened in whichever form it has now.
pub enum Rotated {
    Plain(File, PathBuf),
    Gzip(File, PathBuf),
    /// A form this build cannot read (zstd).
    Unreadable(PathBuf),
    /// Not a regular file of ours (see [`open_log`]): skipped, with a note.
    Refused(io::Error),
    /// Deleted by retention before it could be opened.
    Gone,
}

/// Opens a rotated file as listed; if the archiver compressed it meanwhile, its `.gz` or
/// `.zst` form.
pub fn open_rotated(path: &Path) -> io::Result<Rotated> {
    let mut candidates = vec![path.to_path_buf()];
    let name = path.as_os_str().to_string_lossy();
    if !name.ends_with(".gz") && !name.ends_with(".zst") {
        candidates.extend([".gz", ".zst"].map(|s| PathBuf::from(format!("{name}{s}"))));
    }
    for p in candidates {
        let text = p.to_string_lossy();
        if text.ends_with(".zst") {
            if p.exists() {
                return Ok(Rotated::Unreadable(p));
            }
            continue;
        }
        match open_log(&p) {
            Ok(f) if text.ends_with(".gz") => return Ok(Rotated::Gzip(f, p)),
            Ok(f) => return Ok(Rotated::Plain(f, p)),
            Err(e) if e.kind() == io::ErrorKind::NotFound => {}
            Err(e) if e.kind() == io::ErrorKind::InvalidInput => return Ok(Rotated::Refused(e)),
            Err(e) => return Err(e),
        }
    }
    Ok(Rotated::Gone)
}

/// Decompresses a whole gzip file into `out`.
pub fn gzip_copy(file: File, out: &mut impl Write) -> io::Result<Option<u8>> {
    let mut dec = flate2::read::MultiGzDecoder::new(io::BufReader::with_capacity(BLOCK, file));
    let mut buf = vec![0; BLOCK];
    let mut last = None;
    loop {
        let n = dec.read(&mut buf)?;
        if n == 0 {
            return Ok(last);
        }
        out.write_all(&buf[..n])?;
        last = Some(buf[n - 1]);
    }
}

/// The last `n` lines of a gzip file (and how many it has, if fewer): it is decompressed
/// from the start, and what precedes the last `n` lines is dropped as it goes.
fn gzip_tail(file: File, n: usize) -> io::Result<(Vec<u8>, usize)> {
    let mut dec = flate2::read::MultiGzDecoder::new(io::BufReader::with_capacity(BLOCK, file));
    let mut kept = Vec::new();
    let mut trim_at = 4 * BLOCK;
    let mut chunk = vec![0; BLOCK];
    loop {
        let got = dec.read(&mut chunk)?;
        if got == 0 {
            break;
        }
        kept.extend_from_slice(&chunk[..got]);
        if kept.len() > trim_at {
            let (start, _) = scan_back_slice(&kept, n);
            kept.drain(..start);
            // Trimming rescans what is kept: let it grow in proportion (linear overall).
            trim_at = 2 * kept.len() + 4 * BLOCK;
        }
    }
    let (start, found) = scan_back_slice(&kept, n);
    kept.drain(..start);
    Ok((kept, found))
}

/// Counts lines backwards, block by block: where the last `want` lines start.
struct BackScan {
    want: usize,
    found: usize,
    /// No byte seen yet (the very last byte is treated apart: a newline there ends the
    /// last line rather than starting a new one).
    first: bool,
}

impl BackScan {
    fn new(want: usize) -> BackScan {
        BackScan {
            want,
            found: 0,
            first: true,
        }
    }

    /// Scans `block`, which ends where the bytes scanned so far begin; `Some(i)` once the
    /// wanted lines are found: they start at `block[i]`.
    fn block(&mut self, block: &[u8]) -> Option<usize> {
        let mut i = block.len();
        if self.first && i > 0 {
            self.first = false;
            if block[i - 1] == b'\n' {
                i -= 1;
            }
        }
        while let Some(j) = block[..i].iter().rposition(|&b| b == b'\n') {
            self.found += 1;
            if self.found == self.want {
                return Some(j + 1);
            }
            i = j;
        }
        None
    }

    /// At the start of the data: the lines found, the first one included.
    fn lines_at_start(&self) -> usize {
        if self.first { 0 } else { self.found + 1 }
    }
}

/// Where the last `n` lines of `file[..end]` start, and how many there are (`n`, or fewer).
fn scan_back(file: &File, end: u64, n: usize) -> io::Result<(u64, usize)> {
    if n == 0 {
        return Ok((end, 0));
    }
    let mut scan = BackScan::new(n);
    let mut buf = vec![0; BLOCK];
    let mut pos = end;
    while pos > 0 {
        let len = BLOCK.min(pos as usize);
        let from = pos - len as u64;
        file.read_exact_at(&mut buf[..len], from)?;
        if let Some(i) = scan.block(&buf[..len]) {
            return Ok((from + i as u64, n));
        }
        pos = from;
    }
    Ok((0, scan.lines_at_start()))
}

/// [`scan_back`] on bytes in memory.
fn scan_back_slice(data: &[u8], n: usize) -> (usize, usize) {
    if n == 0 {
        return (data.len(), 0);
    }
    let mut scan = BackScan::new(n);
    match scan.block(data) {
        Some(i) => (i, n),
        None => (0, scan.lines_at_start()),
    }
}

/// The offset just after the last newline in `file[..len]` (0 if there is none).
fn after_last_newline(file: &File, len: u64) -> io::Result<u64> {
    let mut buf = vec![0; BLOCK];
    let mut pos = len;
    while pos > 0 {
        let n = BLOCK.min(pos as usize);
        let from = pos - n as u64;
        file.read_exact_at(&mut buf[..n], from)?;
        if let Some(i) = buf[..n].iter().rposition(|&b| b == b'\n') {
            return Ok(from + i as u64 + 1);
        }
        pos = from;
    }
    Ok(0)
}

/// `e` with the operation and path in its message, its kind kept.
/// Opens a log file for reading with [`daemonic::logging::open_log_file`] (no symlink
/// followed; only a regular file of ours). The error names the path and keeps the kind
/// of its errno (`NotFound` for a file that is gone).
pub fn open_log(path: &Path) -> io::Result<File> {
    daemonic::logging::open_log_file(path).map_err(|e| {
        let kind = match e.os_error() {
            Some(n) => io::Error::from_raw_os_error(n).kind(),
            None => io::ErrorKind::InvalidInput,
        };
        io::Error::new(kind, e.to_string())
    })
}

pub fn annotate(e: io::Error, op: &str, path: &Path) -> io::Error {
    io::Error::new(e.kind(), format!("{op} {}: {e}", path.display()))
}

#[cfg(test)]
mod tests {
    use super::*;

    fn last(data: &str, n: usize) -> (&str, usize) {
        let (start, found) = scan_back_slice(data.as_bytes(), n);
        (&data[start..], found)
    }

    #[test]
    fn counts_lines_from_the_end() {
        assert_eq!(last("a\nb\nc\n", 2), ("b\nc\n", 2));
        assert_eq!(last("a\nb\nc\n", 3), ("a\nb\nc\n", 3));
        assert_eq!(last("a\nb\nc\n", 9), ("a\nb\nc\n", 3));
        assert_eq!(
            last("a\nb\nc", 1),
            ("c", 1),
            "an unterminated last line counts"
        );
        assert_eq!(last("a\n\n\n", 2), ("\n\n", 2), "empty lines count");
        assert_eq!(last("\n", 5), ("\n", 1));
        assert_eq!(last("", 5), ("", 0));
        assert_eq!(last("a\nb\n", 0), ("", 0));
    }

    #[test]
    fn scans_a_file_backwards_across_blocks() {
        let dir = std::env::temp_dir().join(format!("daemonic-tail-{}", std::process::id()));
        std::fs::create_dir_all(&dir).unwrap();
        let path = dir.join("big.log");
        // Lines of varied length, so block boundaries fall inside lines and on newlines.
        let text: String = (0..20_000)
            .map(|i| format!("{i} {}\n", "x".repeat(i % 97)))
            .collect();
        std::fs::write(&path, &text).unwrap();
        let f = File::open(&path).unwrap();
        let all: Vec<&str> = text.lines().collect();
        for n in [1, 10, 1000, 19_999, 20_000, 25_000] {
            let (start, found) = scan_back(&f, text.len() as u64, n).unwrap();
            assert_eq!(found, n.min(20_000));
            let want: String = all[20_000 - found..]
                .iter()
                .map(|l| format!("{l}\n"))
                .collect();
            assert_eq!(&text[start as usize..], want, "n={n}");
        }
        let end = after_last_newline(&f, text.len() as u64 - 3).unwrap();
        assert!(text[..end as usize].ends_with('\n') && end as usize > text.len() - 200);
        std::fs::remove_dir_all(&dir).unwrap();
    }
}
