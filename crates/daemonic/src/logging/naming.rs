//! Names of rotated files: `NAME.YYYYmmdd-HHMMSS[.N][.gz|.zst]`.
//!
//! The active file keeps the name it was given (`app.log`). On rotation it is renamed to
//! `app.log.20250309-140702` (the UTC time of the rotation); a second rotation within the
//! same second gets `.1`, `.2`, …. Compression appends `.gz` or `.zst`. Rotated files are
//! never renamed again (no `.1 → .2` cascade), so a reader holding a name keeps a valid name
//! and the background compressor never races a rename. Sorting by `(stamp, N)` is
//! chronological; retention relies on that.

use std::path::{Path, PathBuf};
use std::time::SystemTime;

use super::clock::Utc;

/// Suffixes a rotated file may carry once compressed.
pub(crate) const COMPRESSED_SUFFIXES: [&str; 2] = [".gz", ".zst"];
/// Suffix of a compression in progress; removed (and redone) at startup if found.
pub(crate) const TMP_SUFFIX: &str = ".tmp";

/// One rotated file found on disk.
#[derive(Debug, Clone, PartialEq, Eq)]
pub(crate) struct Rotated {
    pub path: PathBuf,
    /// `YYYYmmdd-HHMMSS`.
    pub stamp: String,
    /// The `.N` disambiguator, 0 when absent.
    pub seq: u32,
    /// `""`, `".gz"` or `".zst"`.
    pub compression: &'static str,
}

/// The file name of the active log (`app.log` for `/var/log/app.log`).
pub(crate) fn base_name(active: &Path) -> String {
    active
        .file_name()
        .map(|n| n.to_string_lossy().into_owned())
        .unwrap_or_default()
}

/// A name for the file being rotated out at `now` that no existing file (compressed or not)
/// already has.
pub(crate) fn rotated_path(active: &Path, now: SystemTime) -> PathBuf {
    let stamp = Utc::from_system_time(now).compact();
    let base = base_name(active);
    let taken = |p: &PathBuf| {
        p.exists()
            || COMPRESSED_SUFFIXES
                .iter()
                .any(|s| with_suffix(p, s).exists())
    };
    let mut seq = 0u32;
    loop {
        let name = if seq == 0 {
            format!("{base}.{stamp}")
        } else {
            format!("{base}.{stamp}.{seq}")
        };
        let candidate = active.with_file_name(name);
        if !taken(&candidate) {
            return candidate;
        }
        seq += 1;
    }
}

/// `path` with `suffix` appended to its file name.
pub(crate) fn with_suffix(path: &Path, suffix: &str) -> PathBuf {
    let mut s = path.as_os_str().to_owned();
    s.push(suffix);
    PathBuf::from(s)
}

/// Parses `file_name` as a rotated sibling of the active file named `base`.
///
/// Returns `None` for anything else, including in-progress compressions (`.tmp`).
pub(crate) fn parse(base: &str, dir: &Path, file_name: &str) -> Option<Rotated> {
    let rest = file_name.strip_prefix(base)?.strip_prefix('.')?;
    let (rest, compression) = COMPRESSED_SUFFIXES
        .iter()
        .find_map(|s| rest.strip_suffix(s).map(|r| (r, *s)))
        .unwrap_or((rest, ""));
    let (stamp, seq) = match rest.split_once('.') {
        Some((stamp, n)) => (stamp, n.parse::<u32>().ok().filter(|n| *n > 0)?),
        None => (rest, 0),
    };
    let b = stamp.as_bytes();
    let shape_ok = b.len() == 15
        && b[8] == b'-'
        && b.iter()
            .enumerate()
            .all(|(i, c)| i == 8 || c.is_ascii_digit());
    shape_ok.then(|| Rotated {
        path: dir.join(file_name),
        stamp: stamp.to_owned(),
        seq,
        compression,
    })
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn parses_plain_numbered_and_compressed_names() {
        let d = Path::new("/l");
        let r = parse("app.log", d, "app.log.20250309-140702").unwrap();
        assert_eq!(
            (r.stamp.as_str(), r.seq, r.compression),
            ("20250309-140702", 0, "")
        );
        let r = parse("app.log", d, "app.log.20250309-140702.3.gz").unwrap();
        assert_eq!((r.seq, r.compression), (3, ".gz"));
        assert_eq!(r.path, Path::new("/l/app.log.20250309-140702.3.gz"));
        let r = parse("app.log", d, "app.log.20250309-140702.zst").unwrap();
        assert_eq!(r.compression, ".zst");
    }

    #[test]
    fn ignores_foreign_and_temporary_names() {
        let d = Path::new("/l");
        for name in [
            "app.log",
            "app.log.1",
            "app.log.20250309-140702.gz.tmp",
            "app.log.2025030-1407020",
            "app.log.20250309-140702.0",
            "app.log.20250309-140702.x",
            "other.log.20250309-140702",
            "app.logx.20250309-140702",
        ] {
            assert_eq!(parse("app.log", d, name), None, "{name}");
        }
    }

    #[test]
    fn numbered_names_sort_after_the_plain_one() {
        let d = Path::new("/l");
        let mut v: Vec<_> = [
            "app.log.20250309-140702.10",
            "app.log.20250309-140702",
            "app.log.20250309-140702.2",
        ]
        .iter()
        .map(|n| parse("app.log", d, n).unwrap())
        .collect();
        v.sort_by(|a, b| (&a.stamp, a.seq).cmp(&(&b.stamp, b.seq)));
        let seqs: Vec<u32> = v.iter().map(|r| r.seq).collect();
        assert_eq!(seqs, [0, 2, 10]);
    }
}
