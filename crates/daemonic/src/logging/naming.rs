//! Names of rotated files: `NAME.YYYYmmdd-HHMMSS[_NNN][.gz|.zst]`.
//!
//! The active file keeps the name it was given (`app.log`). On rotation it is renamed to
//! `app.log.20250309-140702` (the UTC time of the rotation); a second rotation within the
//! same second gets `_001`, `_002`, …, so that a plain byte-wise sort (`LC_ALL=C ls`) is
//! chronological (`_` sorts after `.`, and the number is zero-padded; past `_999` in one
//! second the sort breaks, which a log never reaches). Compression appends `.gz` or `.zst`. Rotated files are
//! never renamed again (no `.1 → .2` cascade), so a reader holding a name keeps a valid name
//! and the background compressor never races a rename. Sorting by `(stamp, NNN)` is
//! chronological; retention relies on that (it sorts the parsed numbers, not the names).

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
    /// The `_NNN` disambiguator, 0 when absent.
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

/// A name for the file being rotated out at `now`, later in sort order than every rotated
/// file of the same second — those on disk and `last`, the previous rotation of this
/// process (retention may have deleted it, and reusing its number would put a newer file
/// before older ones). Returns the path and its `(stamp, seq)`.
pub(crate) fn rotated_path(
    dir: &super::dir::LogDir,
    active: &Path,
    now: SystemTime,
    last: Option<&(String, u32)>,
) -> (PathBuf, (String, u32)) {
    let stamp = Utc::from_system_time(now).compact();
    let base = base_name(active);
    let mut next = last.filter(|(s, _)| *s == stamp).map_or(0, |(_, n)| n + 1);
    if let Ok(names) = dir.names() {
        for n in names {
            if let Some(r) = parse(&base, dir.path(), &n.to_string_lossy())
                && r.stamp == stamp
            {
                next = next.max(r.seq + 1);
            }
        }
    }
    let name = if next == 0 {
        format!("{base}.{stamp}")
    } else {
        format!("{base}.{stamp}_{next:03}")
    };
    (active.with_file_name(name), (stamp, next))
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
    let (stamp, seq) = match rest.split_once('_') {
        Some((stamp, n)) if n.bytes().all(|b| b.is_ascii_digit()) => {
            (stamp, n.parse::<u32>().ok().filter(|n| *n > 0)?)
        }
        Some(_) => return None,
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
        let r = parse("app.log", d, "app.log.20250309-140702_003.gz").unwrap();
        assert_eq!((r.seq, r.compression), (3, ".gz"));
        assert_eq!(r.path, Path::new("/l/app.log.20250309-140702_003.gz"));
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
            "app.log.20250309-140702_000",
            "app.log.20250309-140702_x",
            "app.log.20250309-140702.1",
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
            "app.log.20250309-140702_010",
            "app.log.20250309-140702",
            "app.log.20250309-140702_002",
        ]
        .iter()
        .map(|n| parse("app.log", d, n).unwrap())
        .collect();
        v.sort_by(|a, b| (&a.stamp, a.seq).cmp(&(&b.stamp, b.seq)));
        let seqs: Vec<u32> = v.iter().map(|r| r.seq).collect();
        assert_eq!(seqs, [0, 2, 10]);
    }
}
