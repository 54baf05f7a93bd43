//! The two background threads of a [`RotatingWriter`](super::RotatingWriter).
//!
//! * The **flusher** (`Ticker`) wakes at the flush interval or the next rotation boundary,
//!   whichever is sooner, flushes the buffer and rotates on time. It holds only a `Weak`
//!   reference, so it never keeps a writer alive, and stops when told or when the writer is
//!   gone.
//! * The **archiver** compresses rotated files and enforces retention, so neither ever runs
//!   on a thread that writes log lines. Its thread runs only while there is work: it takes
//!   rotated paths from a queue and ends when it finds the queue empty; the next rotation
//!   starts it again (rotations are rare; an idle thread per log would cost a stack and a
//!   kernel task each — 100 of them in a config file of 100 services). The writer's
//!   `close` waits for it. At start it first repairs what a crash may have left: removes
//!   `.tmp` files, removes the uncompressed copy of a file whose compressed form is
//!   complete, and compresses rotated files still uncompressed.

use std::path::PathBuf;
use std::sync::atomic::{AtomicU64, Ordering};
use std::sync::mpsc::{self, Receiver, Sender};
use std::sync::{Arc, Condvar, Mutex, Weak};
use std::thread::{self, JoinHandle};
use std::time::{Duration, SystemTime};

use super::compress::{self, Compression};
use super::dir::LogDir;
use super::naming::{self, TMP_SUFFIX};
use super::policy::{Config, Flush, Fsync};
use super::retention::{self, Retention};
use crate::{Error, Result};

/// Errors of the archiver, read by `RotatingWriter::stats`.
#[derive(Debug, Default)]
pub(crate) struct ArchiveStatus {
    errors: AtomicU64,
    last: Mutex<Option<String>>,
}

impl ArchiveStatus {
    fn record(&self, e: &Error) {
        self.errors.fetch_add(1, Ordering::Relaxed);
        *self.last.lock().unwrap_or_else(|p| p.into_inner()) = Some(e.to_string());
    }

    pub fn snapshot(&self) -> (u64, Option<String>) {
        let last = self.last.lock().unwrap_or_else(|p| p.into_inner()).clone();
        (self.errors.load(Ordering::Relaxed), last)
    }
}

/// The archiver: a thread that runs only while it has work (see [`Archiver::submit`]).
#[derive(Debug)]
pub(crate) struct Archiver {
    job: Arc<ArchiveJob>,
    running: Arc<Running>,
    tx: Sender<PathBuf>,
}

/// Whether the archiver's thread is still taking jobs from its queue. The thread sets it
/// to false, holding the lock, just after finding the queue empty, and then ends; a job is
/// sent only while the lock is held and the flag is true, so none is left behind in a
/// queue nobody reads. The thread is detached (nobody joins it): a joinable thread that
/// has ended keeps its stack mapped until it is joined, 8 KiB resident per log file.
#[derive(Debug, Default)]
struct Running {
    flag: Mutex<bool>,
    ended: Condvar,
}

impl Running {
    fn lock(&self) -> std::sync::MutexGuard<'_, bool> {
        self.flag.lock().unwrap_or_else(|p| p.into_inner())
    }
}

/// Held by the thread for its whole life, so that a panic too clears the flag and wakes
/// `join`. Only then: a thread that ended normally cleared it already, and a newer
/// thread may have set it again since.
struct Ends {
    running: Arc<Running>,
    cleared: bool,
}

impl Drop for Ends {
    fn drop(&mut self) {
        if !self.cleared {
            *self.running.lock() = false;
            self.running.ended.notify_all();
        }
    }
}

impl Archiver {
    /// Starts the thread with the start-up pass (repairs, then retention); it ends when
    /// that is done and nothing was submitted meanwhile.
    pub fn spawn(cfg: &Config, dir: Arc<LogDir>, status: Arc<ArchiveStatus>) -> Result<Archiver> {
        let job = Arc::new(ArchiveJob {
            dir,
            active: cfg.path.clone(),
            compression: cfg.compression,
            retention: cfg.retention,
            durable: cfg.fsync != Fsync::Never,
            status,
        });
        let running = Arc::new(Running::default());
        *running.lock() = true;
        let tx = start(&job, &running, true)?;
        Ok(Archiver { job, running, tx })
    }

    /// Queues a rotated file (compression, then retention); starts the thread again if it
    /// ended. A thread that cannot be started is an archiver error (in the writer's
    /// stats); the file stays as it is, and the next pass (or start) takes it.
    pub fn submit(&mut self, rotated: PathBuf) {
        let mut running = self.running.lock();
        if *running && self.tx.send(rotated.clone()).is_ok() {
            return;
        }
        // Ended (or ending: it cleared the flag and returns without touching anything
        // more), so a new thread with a new queue.
        match start(&self.job, &self.running, false) {
            Ok(tx) => {
                let _ = tx.send(rotated);
                *running = true;
                self.tx = tx;
            }
            Err(e) => self.job.status.record(&e),
        }
    }

    /// Waits until everything queued is done.
    pub fn join(self) {
        let mut running = self.running.lock();
        while *running {
            running = self
                .running
                .ended
                .wait(running)
                .unwrap_or_else(|p| p.into_inner());
        }
    }
}

/// Starts a detached thread that takes jobs from a new queue (after the start-up pass,
/// with `first`) until it finds the queue empty.
fn start(job: &Arc<ArchiveJob>, running: &Arc<Running>, first: bool) -> Result<Sender<PathBuf>> {
    let (tx, rx) = mpsc::channel();
    let (job, running) = (Arc::clone(job), Arc::clone(running));
    thread::Builder::new()
        .name("log-archiver".into())
        .spawn(move || {
            // Made in the thread: a spawn that fails drops no guard (its caller may hold
            // the lock the guard takes).
            let mut ends = Ends {
                running,
                cleared: false,
            };
            job.run(&rx, &mut ends, first)
        })
        .map_err(|e| Error::io("spawn log archiver thread", e))?;
    Ok(tx)
}

#[derive(Debug)]
struct ArchiveJob {
    /// The log's directory: every file is reached through it (see [`LogDir`]).
    dir: Arc<LogDir>,
    active: PathBuf,
    compression: Compression,
    retention: Retention,
    durable: bool,
    status: Arc<ArchiveStatus>,
}

impl ArchiveJob {
    /// The thread's life: the start-up pass with `first`, then every queued job, then
    /// the end (no thread waits between rotations, which are rare).
    fn run(&self, rx: &Receiver<PathBuf>, ends: &mut Ends, first: bool) {
        if first {
            self.recover();
            self.enforce_retention();
        }
        loop {
            let next = {
                let mut running = ends.running.lock();
                match rx.try_recv() {
                    Ok(rotated) => rotated,
                    Err(_) => {
                        *running = false;
                        ends.running.ended.notify_all();
                        drop(running);
                        ends.cleared = true;
                        return;
                    }
                }
            };
            self.archive(&next);
        }
    }

    fn archive(&self, rotated: &std::path::Path) {
        let name = rotated.file_name().unwrap_or_default();
        if self.compression != Compression::None
            && self.dir.stat(name).is_ok()
            && let Err(e) = self.compress(name)
        {
            self.status.record(&e);
        }
        self.enforce_retention();
    }

    fn compress(&self, name: &std::ffi::OsStr) -> Result<()> {
        compress::compress_file(&self.dir, name, self.compression, self.durable).map(drop)
    }

    fn enforce_retention(&self) {
        let now = SystemTime::now();
        if let Err(e) = retention::enforce(&self.dir, &self.active, self.retention, now) {
            self.status.record(&e);
        }
    }

    /// Repairs what an interrupted compression left behind.
    fn recover(&self) {
        let base = naming::base_name(&self.active);
        remove_tmp_files(&self.dir, &base);
        let gens = match retention::scan(&self.dir, &self.active) {
            Ok(g) => g,
            Err(e) => return self.status.record(&e),
        };
        for g in gens {
            let (plain, packed): (Vec<&PathBuf>, Vec<&PathBuf>) = g.paths.iter().partition(|p| {
                !naming::COMPRESSED_SUFFIXES
                    .iter()
                    .any(|s| p.to_string_lossy().ends_with(s))
            });
            for p in plain {
                let name = p.file_name().unwrap_or_default();
                let result = if !packed.is_empty() {
                    // The compressed form was renamed into place: it is complete.
                    self.dir.remove(name)
                } else if self.compression != Compression::None {
                    self.compress(name)
                } else {
                    Ok(())
                };
                if let Err(e) = result {
                    self.status.record(&e);
                }
            }
        }
    }
}

/// Removes `BASE.*.tmp` names in `dir`: compressions a crash interrupted (or anything
/// planted under such a name; a symlink is removed, never followed).
fn remove_tmp_files(dir: &LogDir, base: &str) {
    let Ok(names) = dir.names() else {
        return;
    };
    for name in names {
        let text = name.to_string_lossy();
        if text.starts_with(&format!("{base}.")) && text.ends_with(TMP_SUFFIX) {
            let _ = dir.remove(&name);
        }
    }
}

/// The flusher thread; stops when told or when the writer is gone.
#[derive(Debug)]
pub(crate) struct Ticker {
    stop: Arc<(Mutex<bool>, Condvar)>,
    handle: JoinHandle<()>,
}

impl Ticker {
    pub fn spawn<T: Tick>(shared: Weak<T>) -> Result<Ticker> {
        let stop = Arc::new((Mutex::new(false), Condvar::new()));
        let stop2 = Arc::clone(&stop);
        let handle = thread::Builder::new()
            .name("log-flusher".into())
            .spawn(move || tick_loop(&shared, &stop2))
            .map_err(|e| Error::io("spawn log flusher thread", e))?;
        Ok(Ticker { stop, handle })
    }

    /// Tells the thread to stop; waits for it unless called from the thread itself (which
    /// happens when the flusher held the last reference to the writer).
    pub fn stop(self) {
        let (flag, cv) = &*self.stop;
        *flag.lock().unwrap_or_else(|p| p.into_inner()) = true;
        cv.notify_all();
        if self.handle.thread().id() != thread::current().id() {
            let _ = self.handle.join();
        }
    }
}

/// What the flusher thread drives: the writer's shared state (`rotate::Shared`). A trait,
/// so that this module, which `rotate` uses, does not use `rotate` back.
pub(crate) trait Tick: Send + Sync + 'static {
    /// The writer's flush policy.
    fn flush_policy(&self) -> Flush;
    /// Flushes, and rotates if a time boundary passed; returns the next boundary.
    fn tick(&self, now: SystemTime) -> Option<SystemTime>;
}

fn tick_loop<T: Tick>(shared: &Weak<T>, stop: &(Mutex<bool>, Condvar)) {
    let Some(s) = shared.upgrade() else { return };
    let interval = match s.flush_policy() {
        Flush::Interval(d) => Some(d.max(Duration::from_millis(1))),
        Flush::EachWrite => None,
    };
    let mut next_boundary = s.tick(SystemTime::now());
    drop(s);
    let (flag, cv) = stop;
    let mut stopped = flag.lock().unwrap_or_else(|p| p.into_inner());
    loop {
        let until_boundary = next_boundary.map(|b| {
            b.duration_since(SystemTime::now())
                .unwrap_or(Duration::ZERO)
        });
        let wait = match (interval, until_boundary) {
            (Some(i), Some(b)) => i.min(b),
            (Some(i), None) => i,
            (None, Some(b)) => b,
            (None, None) => return,
        };
        // Wake at least once a minute so a changed wall clock is noticed.
        let wait = wait.min(Duration::from_secs(60));
        if !*stopped {
            stopped = cv
                .wait_timeout(stopped, wait)
                .unwrap_or_else(|p| p.into_inner())
                .0;
        }
        if *stopped {
            return;
        }
        drop(stopped);
        let Some(s) = shared.upgrade() else { return };
        next_boundary = s.tick(SystemTime::now());
        drop(s);
        stopped = flag.lock().unwrap_or_else(|p| p.into_inner());
    }
}
