//! Compressing a rotated file, off the write path (the background archiver calls this).
//!
//! Steps, each one safe to interrupt: stream `NAME.STAMP` into `NAME.STAMP.gz.tmp`, finish
//! the stream, optionally `fsync` it, give it the original's mtime (age-based retention reads
//! mtimes), rename it to `NAME.STAMP.gz`, then remove `NAME.STAMP`. A crash before the
//! rename leaves a `.tmp` that the next start removes and redoes; a crash after it leaves
//! both forms, and the next start removes the uncompressed one. Either way every line exists
//! in exactly one finished file.
//!
//! Every step goes through the log's [`LogDir`]: the source is opened without following
//! a symlink and must be a regular file of ours (a planted symlink or device is refused,
//! not copied), the temporary file is created with `O_EXCL | O_NOFOLLOW` (a name planted
//! in advance is removed first, never opened), and the compressed file gets the source's
//! mode and group (not the directory's, which a setgid directory would impose).

use std::ffi::{OsStr, OsString};
use std::fs::File;
use std::io::{self, BufReader, Write};
use std::os::unix::fs::MetadataExt;
use std::path::PathBuf;

use super::dir::LogDir;
use super::naming::TMP_SUFFIX;
use crate::{Error, ErrorKind, Result};

/// How rotated files are compressed.
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq)]
#[non_exhaustive]
pub enum Compression {
    /// Leave rotated files as they are.
    #[default]
    None,
    /// gzip (`.gz`), readable by `zcat`, `zgrep`, `less`.
    Gzip,
    /// zstd (`.zst`): faster and smaller than gzip. Needs the `zstd` cargo feature;
    /// without it, opening a writer configured with it fails with
    /// [`ErrorKind::InvalidInput`].
    Zstd,
}

impl Compression {
    /// The suffix compressed files get, `""` for none.
    pub fn suffix(self) -> &'static str {
        match self {
            Compression::None => "",
            Compression::Gzip => ".gz",
            Compression::Zstd => ".zst",
        }
    }

    /// Fails if this build cannot produce the format.
    pub(crate) fn check_available(self) -> Result<()> {
        if self == Compression::Zstd && !cfg!(feature = "zstd") {
            return Err(Error::new(
                ErrorKind::InvalidInput,
                "zstd compression of rotated logs needs daemonic's `zstd` cargo feature",
            ));
        }
        Ok(())
    }
}

/// Compresses `name` in `dir` to `name` + suffix and removes `name`; returns the new path.
///
/// `durable` fsyncs the compressed file before it replaces the original.
pub(crate) fn compress_file(
    dir: &LogDir,
    name: &OsStr,
    how: Compression,
    durable: bool,
) -> Result<PathBuf> {
    let dst_name = suffixed(name, how.suffix());
    let tmp_name = suffixed(&dst_name, TMP_SUFFIX);
    let (src, dst, tmp) = (dir.join(name), dir.join(&dst_name), dir.join(&tmp_name));
    let input = dir.open_read(name)?;
    let meta = input
        .metadata()
        .map_err(|e| Error::io(format!("stat {}", src.display()), e))?;
    // A stale temporary (a crash, or a name planted in advance) is removed, not reused.
    match dir.remove(&tmp_name) {
        Err(e) if e.os_error() != Some(libc::ENOENT) => return Err(e),
        _ => {}
    }
    let out = dir.create_new(&tmp_name, meta.mode() & 0o777)?;
    // The source's group, not the one a setgid directory gives new files.
    let gid = out
        .metadata()
        .map_err(|e| Error::io(format!("stat {}", tmp.display()), e))?
        .gid();
    if gid != meta.gid() {
        nix::unistd::fchown(&out, None, Some(nix::unistd::Gid::from_raw(meta.gid())))
            .map_err(|e| Error::sys(format!("chown {}", tmp.display()), e))?;
    }
    let written = encode(BufReader::with_capacity(64 * 1024, input), out, how).map_err(|e| {
        Error::io(
            format!("compress {} into {}", src.display(), tmp.display()),
            e,
        )
    });
    let out = match written {
        Ok(out) => out,
        Err(e) => {
            let _ = dir.remove(&tmp_name);
            return Err(e);
        }
    };
    if durable {
        out.sync_all()
            .map_err(|e| Error::io(format!("fsync {}", tmp.display()), e))?;
    }
    if let Ok(mtime) = meta.modified() {
        out.set_modified(mtime)
            .map_err(|e| Error::io(format!("set mtime of {}", tmp.display()), e))?;
    }
    drop(out);
    dir.rename(&tmp_name, &dst_name)?;
    dir.remove(name)?;
    Ok(dst)
}

/// `name` with `suffix` appended.
fn suffixed(name: &OsStr, suffix: &str) -> OsString {
    let mut s = name.to_owned();
    s.push(suffix);
    s
}

/// Streams `input` through the encoder into `out`; returns `out` once the stream is finished.
fn encode(mut input: impl io::Read, out: File, how: Compression) -> io::Result<File> {
    match how {
        Compression::None => Ok(out),
        Compression::Gzip => {
            let mut enc = flate2::write::GzEncoder::new(out, flate2::Compression::default());
            io::copy(&mut input, &mut enc)?;
            enc.finish()
        }
        #[cfg(feature = "zstd")]
        Compression::Zstd => {
            let mut enc = zstd::stream::write::Encoder::new(out, 3)?;
            io::copy(&mut input, &mut enc)?;
            enc.finish()
        }
        #[cfg(not(feature = "zstd"))]
        Compression::Zstd => Err(io::Error::new(
            io::ErrorKind::Unsupported,
            "built without the zstd feature",
        )),
    }
    .and_then(|mut f| f.flush().map(|()| f))
}

#[cfg(test)]
mod tests {
    use super::*;
    use std::fs;
    use std::io::Read;
    use std::path::Path;

    fn compress_path(src: &Path, how: Compression, durable: bool) -> Result<PathBuf> {
        let dir = LogDir::of(src, true)?;
        compress_file(&dir, src.file_name().unwrap(), how, durable)
    }

    /// A temp dir removed on drop, even when the test fails.
    struct TempDir(PathBuf);

    impl Drop for TempDir {
        fn drop(&mut self) {
            let _ = fs::remove_dir_all(&self.0);
        }
    }

    impl std::ops::Deref for TempDir {
        type Target = PathBuf;
        fn deref(&self) -> &PathBuf {
            &self.0
        }
    }

    fn temp_dir(tag: &str) -> TempDir {
        let d =
            std::env::temp_dir().join(format!("daemonic-compress-{tag}-{}", std::process::id()));
        let _ = fs::remove_dir_all(&d);
        fs::create_dir_all(&d).unwrap();
        TempDir(d)
    }

    #[test]
    fn gzip_replaces_the_file_and_keeps_content_and_mtime() {
        let dir = temp_dir("gzip");
        let src = dir.join("app.log.20250101-000000");
        let body: Vec<u8> = (0..5000)
            .flat_map(|i| format!("line {i}\n").into_bytes())
            .collect();
        fs::write(&src, &body).unwrap();
        let old = std::time::SystemTime::UNIX_EPOCH + std::time::Duration::from_secs(1_600_000_000);
        File::options()
            .write(true)
            .open(&src)
            .unwrap()
            .set_modified(old)
            .unwrap();

        let dst = compress_path(&src, Compression::Gzip, true).unwrap();
        assert_eq!(dst, dir.join("app.log.20250101-000000.gz"));
        assert!(!src.exists());
        assert_eq!(fs::metadata(&dst).unwrap().modified().unwrap(), old);
        let mut back = Vec::new();
        flate2::read::GzDecoder::new(File::open(&dst).unwrap())
            .read_to_end(&mut back)
            .unwrap();
        assert_eq!(back, body);
    }

    #[test]
    fn a_planted_temporary_symlink_is_replaced_not_followed() {
        let dir = temp_dir("planted-tmp");
        let victim = dir.join("victim");
        fs::write(&victim, "keep").unwrap();
        let src = dir.join("app.log.20250101-000000");
        fs::write(&src, "line\n").unwrap();
        std::os::unix::fs::symlink(&victim, dir.join("app.log.20250101-000000.gz.tmp")).unwrap();
        let dst = compress_path(&src, Compression::Gzip, false).unwrap();
        assert_eq!(fs::read_to_string(&victim).unwrap(), "keep");
        assert!(fs::symlink_metadata(&dst).unwrap().is_file());
        assert!(!dir.join("app.log.20250101-000000.gz.tmp").exists());
    }

    #[test]
    fn a_rotated_name_that_is_a_symlink_is_not_compressed() {
        let dir = temp_dir("planted-src");
        let victim = dir.join("victim");
        fs::write(&victim, "secret").unwrap();
        let src = dir.join("app.log.20250101-000000");
        std::os::unix::fs::symlink(&victim, &src).unwrap();
        let err = compress_path(&src, Compression::Gzip, false).unwrap_err();
        assert_eq!(err.os_error(), Some(libc::ELOOP), "{err}");
        assert!(!dir.join("app.log.20250101-000000.gz").exists());
    }

    #[cfg(feature = "zstd")]
    #[test]
    fn zstd_round_trips() {
        let dir = temp_dir("zstd");
        let src = dir.join("app.log.20250101-000000");
        let body: Vec<u8> = (0..5000)
            .flat_map(|i| format!("line {i}\n").into_bytes())
            .collect();
        fs::write(&src, &body).unwrap();
        let dst = compress_path(&src, Compression::Zstd, false).unwrap();
        assert_eq!(dst, dir.join("app.log.20250101-000000.zst"));
        let back = zstd::stream::decode_all(File::open(&dst).unwrap()).unwrap();
        assert_eq!(back, body);
    }

    #[cfg(not(feature = "zstd"))]
    #[test]
    fn zstd_without_the_feature_is_refused() {
        let err = Compression::Zstd.check_available().unwrap_err();
        assert_eq!(err.kind(), ErrorKind::InvalidInput);
    }

    #[test]
    fn missing_source_names_the_path() {
        let err = compress_path(
            Path::new("/nonexistent/app.log.x"),
            Compression::Gzip,
            false,
        )
        .unwrap_err();
        assert_eq!(err.os_error(), Some(libc::ENOENT));
        assert!(
            err.to_string()
                .starts_with("open log directory /nonexistent:"),
            "{err}"
        );
    }
}
