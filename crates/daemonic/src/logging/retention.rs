//! Which rotated files to delete: keep the newest N, and/or those younger than D.
//!
//! With both limits set a file must satisfy both to stay (N is a ceiling on count, D on
//! age). Order comes from the names (`stamp`, `_NNN`), age from the file's mtime, which is
//! the time of its last write, i.e. of its rotation; compression preserves it. The active
//! file is never touched. Retention runs on the background thread after every rotation and
//! once at startup.

use std::collections::BTreeMap;
use std::path::{Path, PathBuf};
use std::time::{Duration, SystemTime};

use super::dir::LogDir;
use super::naming::{self, Rotated};
use crate::Result;

/// How many rotated files to keep. The default keeps everything.
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq)]
pub struct Retention {
    /// Keep at most this many rotated files (the newest).
    pub max_files: Option<usize>,
    /// Delete rotated files whose mtime is older than this.
    pub max_age: Option<Duration>,
}

impl Retention {
    /// Whether any limit is set.
    pub fn is_bounded(&self) -> bool {
        self.max_files.is_some() || self.max_age.is_some()
    }
}

/// One rotated file (all its forms: plain and compressed share a key while compressing).
#[derive(Debug, Clone)]
pub(crate) struct Generation {
    pub paths: Vec<PathBuf>,
    pub mtime: SystemTime,
}

/// Lists the rotated siblings of `active` in `dir`, oldest first, grouped by rotation.
/// Only regular files count: a symlink or anything else planted under a rotated name is
/// neither listed, compressed nor deleted.
pub(crate) fn scan(dir: &LogDir, active: &Path) -> Result<Vec<Generation>> {
    let base = naming::base_name(active);
    let mut by_key: BTreeMap<(String, u32), Generation> = BTreeMap::new();
    for name in dir.names()? {
        let Some(r) = naming::parse(&base, dir.path(), &name.to_string_lossy()) else {
            continue;
        };
        // A file that vanished meanwhile (another process's retention) is simply skipped.
        let Ok(st) = dir.stat(&name) else {
            continue;
        };
        if st.st_mode & libc::S_IFMT != libc::S_IFREG {
            continue;
        }
        let mtime = SystemTime::UNIX_EPOCH
            + Duration::new(
                st.st_mtime.max(0) as u64,
                st.st_mtime_nsec.clamp(0, 999_999_999) as u32,
            );
        let Rotated {
            path, stamp, seq, ..
        } = r;
        let g = by_key.entry((stamp, seq)).or_insert(Generation {
            paths: Vec::new(),
            mtime,
        });
        g.mtime = g.mtime.max(mtime);
        g.paths.push(path);
    }
    Ok(by_key.into_values().collect())
}

/// The generations (oldest first in `gens`) that `policy` says to delete at `now`.
pub(crate) fn expired(gens: &[Generation], policy: Retention, now: SystemTime) -> Vec<usize> {
    let too_many = policy
        .max_files
        .map_or(0, |keep| gens.len().saturating_sub(keep));
    (0..gens.len())
        .filter(|&i| {
            i < too_many
                || policy.max_age.is_some_and(|age| {
                    now.duration_since(gens[i].mtime)
                        .is_ok_and(|elapsed| elapsed > age)
                })
        })
        .collect()
}

/// Deletes what `policy` expires; returns the paths removed.
pub(crate) fn enforce(
    dir: &LogDir,
    active: &Path,
    policy: Retention,
    now: SystemTime,
) -> Result<Vec<PathBuf>> {
    if !policy.is_bounded() {
        return Ok(Vec::new());
    }
    let gens = scan(dir, active)?;
    let mut removed = Vec::new();
    for i in expired(&gens, policy, now) {
        for p in &gens[i].paths {
            match dir.remove(p.file_name().unwrap_or_default()) {
                Ok(()) => removed.push(p.clone()),
                Err(e) if e.os_error() == Some(libc::ENOENT) => {}
                Err(e) => return Err(e),
            }
        }
    }
    Ok(removed)
}

/// The rotated files of the active log file `active`, oldest first, one path per rotation.
///
/// Order comes from the names (stamp, then `_NNN`), as retention sees it. While a rotated
/// file is being compressed both `NAME.STAMP` and `NAME.STAMP.gz` may exist for a moment;
/// the plain one is listed. A reader racing the archiver may find it gone when it opens it:
/// the same path with `.gz` (or `.zst`) appended then holds the same lines. Files removed by
/// retention meanwhile are simply gone. The active file itself is not listed, nor is
/// anything that is not a regular file (a symlink planted among them). No symlink in the
/// path is followed (see [`open_log_file`](super::open_log_file)).
///
/// ```no_run
/// for p in daemonic::logging::rotated_files("/var/log/web/web.log".as_ref())? {
///     println!("{}", p.display()); // web.log.20250309-140702, web.log.20250309-140702_001.gz, …
/// }
/// # Ok::<(), daemonic::Error>(())
/// ```
pub fn rotated_files(active: &Path) -> crate::Result<Vec<PathBuf>> {
    let dir = super::dir::LogDir::of(active, false)?;
    Ok(scan(&dir, active)?
        .into_iter()
        .filter_map(|g| {
            let plain = g.paths.iter().position(|p| {
                !naming::COMPRESSED_SUFFIXES
                    .iter()
                    .any(|s| p.to_string_lossy().ends_with(s))
            });
            let mut paths = g.paths;
            match plain {
                Some(i) => Some(paths.swap_remove(i)),
                None => paths.pop(),
            }
        })
        .collect())
}

#[cfg(test)]
mod tests {
    use super::*;
    use std::time::UNIX_EPOCH;

    fn gens(ages_days: &[u64], now: SystemTime) -> Vec<Generation> {
        ages_days
            .iter()
            .map(|d| Generation {
                paths: vec![PathBuf::from(format!("g{d}"))],
                mtime: now - Duration::from_secs(d * 86_400),
            })
            .collect()
    }

    #[test]
    fn count_limit_deletes_the_oldest() {
        let now = UNIX_EPOCH + Duration::from_secs(1_000_000_000);
        let g = gens(&[5, 4, 3, 2, 1], now);
        let p = Retention {
            max_files: Some(2),
            max_age: None,
        };
        assert_eq!(expired(&g, p, now), [0, 1, 2]);
        let p = Retention {
            max_files: Some(9),
            max_age: None,
        };
        assert!(expired(&g, p, now).is_empty());
    }

    #[test]
    fn age_limit_and_count_limit_both_apply() {
        let now = UNIX_EPOCH + Duration::from_secs(1_000_000_000);
        let g = gens(&[10, 8, 3, 2, 1], now);
        let week = Some(Duration::from_secs(7 * 86_400));
        let p = Retention {
            max_files: None,
            max_age: week,
        };
        assert_eq!(expired(&g, p, now), [0, 1]);
        let p = Retention {
            max_files: Some(2),
            max_age: week,
        };
        assert_eq!(expired(&g, p, now), [0, 1, 2]);
        assert!(expired(&g, Retention::default(), now).is_empty());
    }
}
