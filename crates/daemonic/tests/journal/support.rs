//! Test plumbing: a child process that cleans up after itself even when the test fails, and
//! the path of the `journal-appender` fixture (temp dirs come from the shared support).

use std::io::{BufRead, BufReader, Lines};
use std::path::{Path, PathBuf};
use std::process::{Child, ChildStdout, Command, ExitStatus, Stdio};

pub use crate::shared::TempDir;

/// `target/<profile>/examples/journal-appender`, built by `cargo test`.
pub fn appender() -> PathBuf {
    crate::shared::example("journal-appender")
}

/// A running `journal-appender`: SIGKILLed and reaped on drop, so no test leaves one behind.
pub struct Fixture {
    child: Option<Child>,
    pub lines: Lines<BufReader<ChildStdout>>,
}

impl Fixture {
    pub fn spawn(args: &[&str]) -> Fixture {
        let mut child = Command::new(appender())
            .args(args)
            .stdin(Stdio::piped())
            .stdout(Stdio::piped())
            .stderr(Stdio::inherit())
            .spawn()
            .expect("spawn journal-appender");
        let stdout = child.stdout.take().expect("piped stdout");
        Fixture {
            child: Some(child),
            lines: BufReader::new(stdout).lines(),
        }
    }

    /// The next line of output; panics at EOF.
    pub fn line(&mut self) -> String {
        match self.lines.next() {
            Some(Ok(line)) => line,
            other => panic!("journal-appender said no more ({other:?})"),
        }
    }

    pub fn pid(&self) -> u32 {
        self.child.as_ref().expect("running").id()
    }

    /// SIGKILL (a no-op if it is already dead) and reap.
    pub fn kill(&mut self) -> ExitStatus {
        let mut child = self.child.take().expect("running");
        let _ = child.kill();
        child.wait().expect("wait for journal-appender")
    }

    /// Waits for it to exit on its own.
    pub fn wait(&mut self) -> ExitStatus {
        let mut child = self.child.take().expect("running");
        drop(child.stdin.take());
        child.wait().expect("wait for journal-appender")
    }
}

impl Drop for Fixture {
    fn drop(&mut self) {
        if let Some(mut child) = self.child.take() {
            let _ = child.kill();
            let _ = child.wait();
        }
    }
}

/// A small deterministic PRNG (xorshift64*), seeded per test and printed, so a failing
/// round can be replayed.
pub struct Rng(u64);

impl Rng {
    pub fn seeded() -> Rng {
        let seed = std::env::var("JOURNAL_TEST_SEED")
            .ok()
            .and_then(|s| s.parse().ok())
            .unwrap_or_else(|| {
                let t = std::time::SystemTime::now()
                    .duration_since(std::time::UNIX_EPOCH)
                    .unwrap();
                t.as_nanos() as u64 | 1
            });
        eprintln!("JOURNAL_TEST_SEED={seed}");
        Rng(seed)
    }

    pub fn below(&mut self, n: u64) -> u64 {
        self.0 ^= self.0 >> 12;
        self.0 ^= self.0 << 25;
        self.0 ^= self.0 >> 27;
        self.0.wrapping_mul(0x2545_F491_4F6C_DD1D) % n
    }
}

/// A scratch directory on tmpfs (`/dev/shm`) where there is one, else under `fallback`;
/// removed on drop. For tests that recover thousands of directories: recovery fsyncs what
/// it repairs, which costs nothing on tmpfs and ~10 ms on a shared disk.
pub struct ShmDir(pub PathBuf);

impl ShmDir {
    pub fn new(tag: &str, fallback: &Path) -> ShmDir {
        let shm = Path::new("/dev/shm");
        let base = if shm.is_dir() { shm } else { fallback };
        let dir = base.join(format!("daemonic-journal-{tag}-{}", std::process::id()));
        let _ = std::fs::remove_dir_all(&dir);
        std::fs::create_dir_all(&dir).unwrap();
        ShmDir(dir)
    }
}

impl Drop for ShmDir {
    fn drop(&mut self) {
        let _ = std::fs::remove_dir_all(&self.0);
    }
}
