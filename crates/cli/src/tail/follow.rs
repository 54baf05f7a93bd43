//! Following a log file as it grows, across rotations and truncation (`tail -F`).
//!
//! The follower holds the active file open and reads what was appended since its last
//! look, printing complete lines only (the rest of a line is printed once its newline
//! arrives). It notices two things by looking at the path:
//!
//! * **Rotation** (the path names another file — renamed by the writer's rotation or by
//!   logrotate's `create`): once the new file has data (the writer has moved on; with
//!   logrotate the writer keeps appending to the renamed file until it reopens), the old
//!   file is read to its end, then the files rotated *between* the old one and the new one
//!   (several rotations between two looks), then the new file from its start. No line is
//!   skipped or printed twice. The old file is found among the rotated ones by its inode,
//!   or, once compressed, by its mtime (compression keeps it); if it cannot be found (it is
//!   not in daemonic's naming scheme), nothing is printed between.
//! * **Truncation** (`copytruncate`): the open file is shorter than what was read, or the
//!   last bytes printed are no longer those before the read position (the file was
//!   truncated and has grown back past it since the last look): a note on stderr, and
//!   reading goes on from the start. A file rewritten with the very same bytes there
//!   passes for unchanged.
//!
//! Looking is the caller's business (a poll every 100 ms in `daemonic logs -f`).

use std::fs::{self, File, Metadata};
use std::io::{self, Write};
use std::os::unix::fs::{FileExt, MetadataExt};
use std::path::{Path, PathBuf};

use super::{Rotated, annotate, copy_range, gzip_copy, open_log, open_rotated};

/// Enough for the longest line a capture writes (64 KiB and a time prefix) in one read.
const BUF: usize = 128 * 1024;

/// A log file being followed.
pub struct Follower {
    path: PathBuf,
    file: File,
    /// Everything before this offset of `file` has been printed.
    pos: u64,
    /// The last bytes printed (up to `SEEN`), which end at `pos` while the file is intact.
    seen: Vec<u8>,
    buf: Vec<u8>,
}

/// How many of the last bytes printed are checked for a rewrite.
const SEEN: usize = 64;

impl Follower {
    /// Follows `path`, whose active file is `file`, from offset `pos`.
    pub fn new(path: &Path, file: File, pos: u64) -> Follower {
        let n = SEEN.min(pos as usize);
        let mut seen = vec![0; n];
        if file.read_exact_at(&mut seen, pos - n as u64).is_err() {
            seen.clear(); // changed already: the first look will tell
        }
        Follower {
            path: path.to_path_buf(),
            file,
            pos,
            seen,
            buf: vec![0; BUF],
        }
    }

    /// Prints to `out` the complete lines written since the last call, following a
    /// rotation or a truncation; true if it printed anything. Errors writing `out` are
    /// returned as they are (a closed pipe is `BrokenPipe`); others name the file.
    pub fn step(&mut self, out: &mut impl Write) -> io::Result<bool> {
        if self.truncated()? {
            eprintln!(
                "daemonic: {} was truncated; reading it again from the start",
                self.path.display()
            );
            self.pos = 0;
            self.seen.clear();
        }
        let mut wrote = self.read_lines(out)?;
        let now = self.meta(&self.file, &self.path)?;
        if let Some(next) = self.rotated_to(&now)? {
            wrote |= self.finish(out)?;
            wrote |= self.print_between(&now, &next, out)?;
            self.file = next;
            self.pos = 0;
            self.seen.clear();
            wrote |= self.read_lines(out)?;
        }
        Ok(wrote)
    }

    /// Whether the bytes before `pos` are no longer those printed.
    fn truncated(&self) -> io::Result<bool> {
        if self.meta(&self.file, &self.path)?.len() < self.pos {
            return Ok(true);
        }
        let mut now = [0; SEEN];
        let now = &mut now[..self.seen.len()];
        match self.file.read_exact_at(now, self.pos - now.len() as u64) {
            Ok(()) => Ok(now != self.seen.as_slice()),
            Err(e) if e.kind() == io::ErrorKind::UnexpectedEof => Ok(true),
            Err(e) => Err(annotate(e, "read", &self.path)),
        }
    }

    /// Remembers the last `SEEN` bytes of what was just printed.
    fn saw(&mut self, printed: usize) {
        let tail = &self.buf[printed.saturating_sub(SEEN)..printed];
        self.seen.extend_from_slice(tail);
        let excess = self.seen.len().saturating_sub(SEEN);
        self.seen.drain(..excess);
    }

    /// Reads from `pos` to the end of the file; prints up to the last newline.
    fn read_lines(&mut self, out: &mut impl Write) -> io::Result<bool> {
        let mut wrote = false;
        loop {
            let n = self
                .file
                .read_at(&mut self.buf, self.pos)
                .map_err(|e| annotate(e, "read", &self.path))?;
            let take = match self.buf[..n].iter().rposition(|&b| b == b'\n') {
                Some(i) => i + 1,
                // A line longer than the buffer (not one of daemonic's): print it as it is.
                None if n == self.buf.len() => n,
                None => return Ok(wrote),
            };
            out.write_all(&self.buf[..take])?;
            out.flush()?;
            self.pos += take as u64;
            self.saw(take);
            wrote = true;
        }
    }

    /// The old file's last lines, a last line without a newline included (it will get
    /// none: the file has been rotated).
    fn finish(&mut self, out: &mut impl Write) -> io::Result<bool> {
        let mut wrote = self.read_lines(out)?;
        let n = self
            .file
            .read_at(&mut self.buf, self.pos)
            .map_err(|e| annotate(e, "read", &self.path))?;
        if n > 0 {
            out.write_all(&self.buf[..n])?;
            out.write_all(b"\n")?;
            out.flush()?;
            wrote = true;
        }
        Ok(wrote)
    }

    /// The file now at the path, if it is another one and has data (see the module docs).
    fn rotated_to(&self, current: &Metadata) -> io::Result<Option<File>> {
        let at_path = match fs::symlink_metadata(&self.path) {
            Ok(m) => m,
            // Between the rename and the creation of the new file, or deleted.
            Err(e) if e.kind() == io::ErrorKind::NotFound => return Ok(None),
            Err(e) => return Err(annotate(e, "stat", &self.path)),
        };
        if same_file(&at_path, current) || at_path.len() == 0 {
            return Ok(None);
        }
        match open_log(&self.path) {
            Ok(f) => Ok(Some(f)),
            Err(e) if e.kind() == io::ErrorKind::NotFound => Ok(None),
            Err(e) => Err(e),
        }
    }

    /// Prints the files rotated after `old` and before `next` whole, oldest first.
    fn print_between(&self, old: &Metadata, next: &File, out: &mut impl Write) -> io::Result<bool> {
        let next = self.meta(next, &self.path)?;
        let rotated = daemonic::logging::rotated_files(&self.path)
            .map_err(|e| io::Error::other(e.to_string()))?;
        let is = |m: &Metadata, p: &Path| {
            fs::symlink_metadata(p).is_ok_and(|pm| {
                same_file(&pm, m) || (is_compressed(p) && pm.modified().ok() == m.modified().ok())
            })
        };
        let Some(from) = rotated.iter().position(|p| is(old, p)) else {
            return Ok(false);
        };
        let mut wrote = false;
        for p in rotated[from + 1..].iter().take_while(|p| !is(&next, p)) {
            let last = match open_rotated(p)? {
                Rotated::Plain(f, p) => copy_range(&f, 0, u64::MAX, &mut vec![0; BUF], out)
                    .map_err(|e| annotate(e, "read", &p))?,
                Rotated::Gzip(f, p) => gzip_copy(f, out).map_err(|e| annotate(e, "read", &p))?,
                Rotated::Unreadable(p) => {
                    eprintln!(
                        "daemonic: lines in {} (zstd) skipped: daemonic logs cannot read it",
                        p.display()
                    );
                    continue;
                }
                Rotated::Refused(e) => {
                    eprintln!("daemonic: skipped: {e}");
                    continue;
                }
                Rotated::Gone => {
                    eprintln!(
                        "daemonic: {} was deleted before it could be read",
                        p.display()
                    );
                    continue;
                }
            };
            if last.is_some_and(|b| b != b'\n') {
                out.write_all(b"\n")?;
            }
            wrote |= last.is_some();
        }
        out.flush()?;
        Ok(wrote)
    }

    fn meta(&self, file: &File, path: &Path) -> io::Result<Metadata> {
        file.metadata().map_err(|e| annotate(e, "stat", path))
    }
}

fn same_file(a: &Metadata, b: &Metadata) -> bool {
    (a.dev(), a.ino()) == (b.dev(), b.ino())
}

fn is_compressed(p: &Path) -> bool {
    let s = p.as_os_str().to_string_lossy();
    s.ends_with(".gz") || s.ends_with(".zst")
}

#[cfg(test)]
mod tests {
    use super::*;

    /// A directory removed on drop.
    struct Dir(PathBuf);

    impl Drop for Dir {
        fn drop(&mut self) {
            let _ = fs::remove_dir_all(&self.0);
        }
    }

    fn append(path: &Path, text: &str) {
        let mut f = fs::OpenOptions::new()
            .append(true)
            .create(true)
            .open(path)
            .unwrap();
        f.write_all(text.as_bytes()).unwrap();
    }

    fn step(f: &mut Follower) -> String {
        let mut out = Vec::new();
        f.step(&mut out).unwrap();
        String::from_utf8(out).unwrap()
    }

    #[test]
    fn files_rotated_between_two_looks_are_printed_even_once_compressed() {
        let dir = Dir(std::env::temp_dir().join(format!("daemonic-follow-{}", std::process::id())));
        fs::create_dir_all(&dir.0).unwrap();
        let active = dir.0.join("web.log");
        append(&active, "a1\n");
        let mut f = Follower::new(&active, File::open(&active).unwrap(), 0);
        assert_eq!(step(&mut f), "a1\n");
        append(&active, "a2\npart");
        assert_eq!(step(&mut f), "a2\n", "complete lines only");

        // Between two looks: the followed file is rotated and compressed (mtime kept),
        // then two more rotations, then the current file gets a line.
        append(&active, "ial\n");
        let old = dir.0.join("web.log.20250309-140702");
        fs::rename(&active, &old).unwrap();
        let mtime = fs::metadata(&old).unwrap().modified().unwrap();
        let gz = File::create(dir.0.join("web.log.20250309-140702.gz")).unwrap();
        let mut enc = flate2::write::GzEncoder::new(gz, flate2::Compression::fast());
        enc.write_all(&fs::read(&old).unwrap()).unwrap();
        enc.finish().unwrap().set_modified(mtime).unwrap();
        fs::remove_file(&old).unwrap();
        append(&dir.0.join("web.log.20250309-140702_001"), "b1\nb2\n");
        append(&dir.0.join("web.log.20250309-140703"), "c1\nc-torn");
        append(&active, "d1\n");

        assert_eq!(step(&mut f), "partial\nb1\nb2\nc1\nc-torn\nd1\n");
        append(&active, "d2\n");
        assert_eq!(step(&mut f), "d2\n");
        assert_eq!(step(&mut f), "");
    }
}
