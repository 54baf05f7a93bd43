//! Temp dirs and child processes that clean up after themselves, polling with a deadline,
//! and reading back every line a writer produced (current and rotated files, decompressed).

use std::fs;
use std::io::Read;
use std::path::{Path, PathBuf};
use std::process::Child;
use std::sync::atomic::{AtomicU32, Ordering};
use std::time::{Duration, Instant};

/// A directory removed on drop, even when the test panics.
pub struct TempDir(PathBuf);

impl TempDir {
    pub fn new(tag: &str) -> TempDir {
        static N: AtomicU32 = AtomicU32::new(0);
        let n = N.fetch_add(1, Ordering::Relaxed);
        let p = std::env::temp_dir().join(format!("daemonic-log-{tag}-{}-{n}", std::process::id()));
        let _ = fs::remove_dir_all(&p);
        fs::create_dir_all(&p).unwrap();
        TempDir(p)
    }
    pub fn path(&self) -> &Path {
        &self.0
    }
}

impl Drop for TempDir {
    fn drop(&mut self) {
        let _ = fs::remove_dir_all(&self.0);
    }
}

/// A child killed and reaped on drop.
pub struct Running(pub Option<Child>);

impl Running {
    pub fn pid(&self) -> i32 {
        self.0.as_ref().unwrap().id() as i32
    }
    /// Takes the child to wait for it normally.
    pub fn take(&mut self) -> Child {
        self.0.take().unwrap()
    }
}

impl Drop for Running {
    fn drop(&mut self) {
        if let Some(c) = self.0.as_mut() {
            let _ = c.kill();
            let _ = c.wait();
        }
    }
}

/// Calls `f` until it returns true; panics naming `what` after `limit`.
pub fn poll_until(limit: Duration, what: &str, mut f: impl FnMut() -> bool) {
    let deadline = Instant::now() + limit;
    let mut pause = Duration::from_millis(1);
    while !f() {
        assert!(
            Instant::now() < deadline,
            "timed out after {limit:?} waiting for {what}"
        );
        std::thread::sleep(pause);
        pause = (pause * 2).min(Duration::from_millis(50));
    }
}

/// The path of a cargo example built alongside this test binary.
pub fn example(name: &str) -> PathBuf {
    let exe = std::env::current_exe().unwrap();
    // target/<profile>/deps/logging-HASH → target/<profile>/examples/NAME
    exe.parent()
        .unwrap()
        .parent()
        .unwrap()
        .join("examples")
        .join(name)
}

/// Whether `tool` is on PATH.
pub fn have(tool: &str) -> bool {
    std::env::var_os("PATH")
        .is_some_and(|paths| std::env::split_paths(&paths).any(|d| d.join(tool).is_file()))
}

/// The decompressed content of `path` (plain, `.gz`, or `.zst` via the `zstd` tool).
pub fn read_maybe_compressed(path: &Path) -> Vec<u8> {
    let name = path.to_string_lossy();
    let mut out = Vec::new();
    if name.ends_with(".gz") {
        flate2::read::GzDecoder::new(fs::File::open(path).unwrap())
            .read_to_end(&mut out)
            .unwrap();
    } else if name.ends_with(".zst") {
        let o = std::process::Command::new("zstd")
            .args(["-dc"])
            .arg(path)
            .output()
            .unwrap();
        assert!(o.status.success(), "zstd -dc {name}");
        out = o.stdout;
    } else {
        out = fs::read(path).unwrap();
    }
    out
}

/// Every file in `dir` whose name starts with `prefix`, sorted by name.
pub fn files_with_prefix(dir: &Path, prefix: &str) -> Vec<PathBuf> {
    let mut v: Vec<PathBuf> = fs::read_dir(dir)
        .unwrap()
        .flatten()
        .filter(|e| e.file_name().to_string_lossy().starts_with(prefix))
        .map(|e| e.path())
        .collect();
    v.sort();
    v
}

/// Splits `data` into lines; fails if the last one has no newline (a torn tail).
pub fn lines(data: &[u8], origin: &Path) -> Vec<String> {
    if data.is_empty() {
        return Vec::new();
    }
    assert_eq!(
        data.last(),
        Some(&b'\n'),
        "{} ends inside a line",
        origin.display()
    );
    data[..data.len() - 1]
        .split(|&b| b == b'\n')
        .map(|l| String::from_utf8(l.to_vec()).unwrap())
        .collect()
}
