//! Power loss, enumerated: the journal's real file backend runs under the `iotrace` shim,
//! and from the recorded calls this builds every directory a power loss could leave, then
//! recovers each one in-process.
//!
//! The model (what a POSIX file system promises, no more):
//! - a file's data is durable up to its last fsync/fdatasync; writes (and truncates,
//!   fallocates) since then may each be lost, kept, or — a write — torn: some 512-byte
//!   sectors new, one sector garbage (not zeros), the rest old. Later writes may survive
//!   while earlier ones are lost (reordering);
//! - names (create, rename, unlink) are durable up to the directory's last fsync; after
//!   it, any prefix of them may have happened (ext4 and xfs order namespace operations).
//!
//! A crash may come after any traced call. For each crash point and each choice of
//! surviving unsynced data the test checks the contract: `open` succeeds with a prefix of
//! what was written holding every acknowledged record (for `Interval`, every record before
//! the last `sync()` or snapshot) — or, only where a later unsynced write survived an
//! earlier lost one, refuses with `Corrupt`, and `repair(true)` then keeps every
//! acknowledged record. The journal must then take an append.
//!
//! `JOURNAL_CRASH_STATES` (default 64) is the number of survivor choices tried per crash
//! point: all of them when there are at most that many, else that many drawn at random
//! (seeded; `JOURNAL_TEST_SEED` replays); states already checked are skipped. The fixture
//! appends `JOURNAL_CRASH_APPENDS` events (default 12), snapshotting after every 5th.
//! The long run: `JOURNAL_CRASH_STATES=4096 JOURNAL_CRASH_APPENDS=200`.

use std::collections::BTreeMap;
use std::path::Path;

use daemonic::ErrorKind;
use daemonic::journal::{Journal, Options};

use crate::fixture::{Recorded, event};
use crate::iotrace::{self, Op};
use crate::support::{Rng, ShmDir, TempDir};

const SECTOR: usize = 512;

/// A file's contents as a power loss may leave them.
#[derive(Debug, Clone, Default)]
struct Inode {
    durable: Content,
    /// Operations since the last sync, in order (Create/Truncate/Fallocate/Write only).
    pending: Vec<Op>,
}

/// What happens to one pending data operation in a crash state.
#[derive(Debug, Clone, Copy, PartialEq)]
enum Fate {
    Lost,
    Kept,
    /// Sectors before `.0` new, sector `.0` garbage, the rest old.
    Torn(usize),
}

#[derive(Debug, Default, Clone)]
struct Model {
    inodes: Vec<Inode>,
    /// Names as of the last directory fsync, and the namespace operations since.
    durable_names: BTreeMap<String, usize>,
    pending_names: Vec<NameOp>,
    names: BTreeMap<String, usize>,
}

impl Model {
    fn apply(&mut self, op: &Op) {
        match op {
            Op::Create(name) => {
                if !self.names.contains_key(name) {
                    self.inodes.push(Inode::default());
                    let ino = self.inodes.len() - 1;
                    self.names.insert(name.clone(), ino);
                    self.pending_names.push(NameOp::Create(name.clone(), ino));
                }
            }
            Op::Write { file, .. } | Op::Truncate(file, _) | Op::Fallocate { file, .. } => {
                let ino = self.names[file];
                self.inodes[ino].pending.push(op.clone());
            }
            Op::Sync(file) => {
                let ino = self.names[file];
                let inode = &mut self.inodes[ino];
                for op in std::mem::take(&mut inode.pending) {
                    apply_data(&mut inode.durable, &op, Fate::Kept);
                }
            }
            Op::DirSync => {
                self.durable_names = self.names.clone();
                self.pending_names.clear();
            }
            Op::Rename(from, to) => {
                let ino = self.names.remove(from).expect("rename of a known file");
                self.names.insert(to.clone(), ino);
                self.pending_names
                    .push(NameOp::Rename(from.clone(), to.clone()));
            }
            Op::Unlink(name) => {
                self.names.remove(name);
                self.pending_names.push(NameOp::Unlink(name.clone()));
            }
            Op::Said(_) => {}
        }
    }

    /// The names after the durable ones and the first `k` pending namespace operations.
    fn names_after(&self, k: usize) -> BTreeMap<String, usize> {
        let mut names = self.durable_names.clone();
        for op in &self.pending_names[..k] {
            match op {
                NameOp::Create(name, ino) => {
                    names.insert(name.clone(), *ino);
                }
                NameOp::Rename(from, to) => {
                    if let Some(ino) = names.remove(from) {
                        names.insert(to.clone(), ino);
                    }
                }
                NameOp::Unlink(name) => {
                    names.remove(name);
                }
            }
        }
        names
    }
}

/// A namespace operation not yet made durable by a directory fsync.
#[derive(Debug, Clone)]
enum NameOp {
    Create(String, usize),
    Rename(String, String),
    Unlink(String),
}

/// A file's bytes: `bytes`, then zeros up to `size` (preallocated space stays implicit, so
/// a 4 MiB fallocate costs nothing to copy).
#[derive(Debug, Clone, Default, PartialEq, Eq, Hash)]
struct Content {
    bytes: Vec<u8>,
    size: u64,
}

fn apply_data(c: &mut Content, op: &Op, fate: Fate) {
    match (op, fate) {
        (_, Fate::Lost) => {}
        (Op::Truncate(_, len), _) => {
            c.bytes.truncate(*len as usize);
            c.size = *len;
        }
        (Op::Fallocate { off, len, .. }, _) => c.size = c.size.max(off + len),
        (Op::Write { off, data, .. }, _) => {
            let off = *off as usize;
            let end = off + data.len();
            if c.bytes.len() < end {
                c.bytes.resize(end, 0);
            }
            c.size = c.size.max(end as u64);
            let bytes = &mut c.bytes;
            match fate {
                Fate::Kept => bytes[off..end].copy_from_slice(data),
                Fate::Torn(sector) => {
                    // Sectors are aligned to the file, not to the write.
                    let cut = ((off / SECTOR + sector) * SECTOR).clamp(off, end);
                    let garbage_end = (cut + SECTOR - cut % SECTOR).min(end);
                    bytes[off..cut].copy_from_slice(&data[..cut - off]);
                    for (i, b) in bytes[cut..garbage_end].iter_mut().enumerate() {
                        *b = 0xA5 ^ (i as u8).wrapping_mul(37);
                    }
                }
                Fate::Lost => unreachable!(),
            }
        }
        _ => unreachable!("not a data operation: {op:?}"),
    }
}

/// The fates worth trying for one pending operation.
fn fates(op: &Op) -> Vec<Fate> {
    match op {
        Op::Write { off, data, .. } => {
            let sectors = (*off as usize + data.len()).div_ceil(SECTOR) - *off as usize / SECTOR;
            let mut f = vec![Fate::Lost, Fate::Kept];
            f.extend((0..sectors).map(Fate::Torn));
            f
        }
        _ => vec![Fate::Lost, Fate::Kept],
    }
}

/// One crash state: how many pending namespace operations happened, and a fate for each
/// pending data operation of each inode.
struct Choice {
    names: usize,
    fates: Vec<Vec<Fate>>,
}

fn choices(model: &Model, budget: usize, rng: &mut Rng) -> Vec<Choice> {
    let options: Vec<Vec<Vec<Fate>>> = model
        .inodes
        .iter()
        .map(|i| i.pending.iter().map(fates).collect())
        .collect();
    let mut total: usize = model.pending_names.len() + 1;
    for per_op in options.iter().flatten() {
        total = total.saturating_mul(per_op.len());
    }
    let pick = |index: &mut usize, n: usize| {
        let v = *index % n;
        *index /= n;
        v
    };
    let build = |mut index: usize, rng: Option<&mut Rng>| {
        let mut rng = rng;
        let mut draw = |n: usize| match rng.as_deref_mut() {
            Some(r) => r.below(n as u64) as usize,
            None => pick(&mut index, n),
        };
        let names = draw(model.pending_names.len() + 1);
        let fates = options
            .iter()
            .map(|ops| ops.iter().map(|f| f[draw(f.len())]).collect())
            .collect();
        Choice { names, fates }
    };
    if total <= budget {
        return (0..total).map(|i| build(i, None)).collect();
    }
    // Always the two extremes (nothing unsynced survives; everything does), then a sample.
    let extreme = |fate: Fate, names: usize| Choice {
        names,
        fates: options.iter().map(|ops| vec![fate; ops.len()]).collect(),
    };
    let mut out = vec![
        extreme(Fate::Lost, 0),
        extreme(Fate::Kept, model.pending_names.len()),
    ];
    out.extend((2..budget).map(|_| build(0, Some(rng))));
    out
}

/// Whether a later write survived where an earlier one in the same file did not: the case
/// the contract lets recovery call corruption.
fn reordered(fates: &[Vec<Fate>]) -> bool {
    fates.iter().any(|f| {
        f.iter()
            .skip_while(|&&x| x == Fate::Kept)
            .any(|&x| x == Fate::Kept)
    })
}

/// The files of a crash state, by name.
type Files = Vec<(String, Content)>;

fn files_of(model: &Model, choice: &Choice) -> Files {
    let mut files = Vec::new();
    for (name, &ino) in &model.names_after(choice.names) {
        let inode = &model.inodes[ino];
        let mut content = inode.durable.clone();
        for (op, &fate) in inode.pending.iter().zip(&choice.fates[ino]) {
            apply_data(&mut content, op, fate);
        }
        files.push((name.clone(), content));
    }
    files
}

fn materialize(files: &Files, dir: &Path) {
    let _ = std::fs::remove_dir_all(dir);
    std::fs::create_dir_all(dir).unwrap();
    for (name, content) in files {
        // Preallocated zeros become a sparse tail: the same bytes, far less copying.
        let file = std::fs::File::create(dir.join(name)).unwrap();
        std::io::Write::write_all(&mut &file, &content.bytes).unwrap();
        file.set_len(content.size).unwrap();
    }
}

/// The records that must survive a crash after the ops so far: acknowledged appends
/// (`Interval`: those before the last sync or snapshot).
fn must_survive(said: &str, mode: &str, so_far: &mut u64) {
    let mut words = said.split(' ');
    let (w, n) = (
        words.next(),
        words.next_back().and_then(|n| n.parse::<u64>().ok()),
    );
    let Some(n) = n else { return };
    let durable = match (w, mode) {
        (Some("ack"), "every" | "group") | (Some("synced"), _) => n + 1,
        (Some("snapshot"), _) => n,
        _ => return,
    };
    *so_far = (*so_far).max(durable);
}

fn check_state(dir: &Path, acked: u64, written: u64, may_be_corrupt: bool, what: &str) {
    let journal: Journal<Recorded> = match Options::new().no_compaction().open(dir) {
        Ok(j) => j,
        Err(e) if e.kind() == ErrorKind::Corrupt && may_be_corrupt => Options::new()
            .no_compaction()
            .repair(true)
            .open(dir)
            .unwrap_or_else(|e| panic!("{what}: repair refused a state a crash can leave: {e}")),
        Err(e) => panic!("{what}: recovery failed on a state a crash can leave: {e}"),
    };
    let events = journal.state().events.clone();
    let n = events.len() as u64;
    assert!(
        n >= acked,
        "{what}: {n} events recovered, {acked} were acknowledged"
    );
    assert!(
        n <= written,
        "{what}: {n} events recovered, {written} written"
    );
    for (k, e) in events.iter().enumerate() {
        assert_eq!(
            *e,
            event(0, k as u64),
            "{what}: event {k} is not the one written"
        );
    }
    journal
        .append(event(0, n))
        .unwrap_or_else(|e| panic!("{what}: append after recovery: {e}"));
}

/// Runs the fixture in `mode` under the shim and checks every crash state of its trace.
/// Returns how many states were checked.
fn enumerate(mode: &str, snapshot_every: u64) -> Option<usize> {
    iotrace::shim()?;
    let count = std::env::var("JOURNAL_CRASH_APPENDS")
        .ok()
        .and_then(|s| s.parse().ok())
        .unwrap_or(12);
    let budget = std::env::var("JOURNAL_CRASH_STATES")
        .ok()
        .and_then(|s| s.parse().ok())
        .unwrap_or(64);
    let tmp = TempDir::new("crash-states");
    let dir = iotrace::journal_dir(&tmp, mode);
    let run = iotrace::run_script(&dir, mode, count, snapshot_every, None);
    assert!(run.status.success(), "fixture failed: {:?}", run.status);
    let mut rng = Rng::seeded();
    let (mut model, mut acked, mut written, mut checked) = (Model::default(), 0, 0, 0);
    let states = ShmDir::new(&format!("crash-{mode}"), tmp.path());
    let state_dir = states.0.join("state");
    // A state already checked with at least as many acknowledged records is not rechecked.
    let mut seen: std::collections::HashMap<Files, u64> = Default::default();
    for (i, op) in run.ops.iter().enumerate() {
        model.apply(op);
        if let Op::Said(s) = op {
            must_survive(s, mode, &mut acked);
        }
        // A record is one write after a log's 32-byte header (no short writes here).
        if let Op::Write { file, off, .. } = op
            && file.starts_with("wal-")
            && *off >= 32
        {
            written += 1;
        }
        if matches!(run.ops.get(i + 1), Some(Op::Said(_))) {
            continue; // the same files, checked after the acknowledgement with more to keep
        }
        for choice in choices(&model, budget, &mut rng) {
            let files = files_of(&model, &choice);
            if seen.get(&files).is_some_and(|&a| a >= acked) {
                continue;
            }
            materialize(&files, &state_dir);
            let what = format!(
                "{mode}: crash after op {i} ({op:?}), fates {:?}",
                choice.fates
            );
            check_state(&state_dir, acked, written, reordered(&choice.fates), &what);
            checked += 1;
            seen.insert(files, acked);
        }
    }
    assert_eq!(acked, count, "the fixture acknowledged every append");
    Some(checked)
}

#[test]
fn every_power_loss_state_of_every_append_recovers_the_acknowledged_records() {
    match enumerate("every", 5) {
        Some(n) => eprintln!("every: {n} crash states checked"),
        None => eprintln!("skipping: no iotrace shim"),
    }
}

#[test]
fn every_power_loss_state_of_group_commit_recovers_the_acknowledged_records() {
    match enumerate("group", 5) {
        Some(n) => eprintln!("group: {n} crash states checked"),
        None => eprintln!("skipping: no iotrace shim"),
    }
}

#[test]
fn every_power_loss_state_of_interval_mode_keeps_what_was_synced() {
    match enumerate("interval", 5) {
        Some(n) => eprintln!("interval: {n} crash states checked"),
        None => eprintln!("skipping: no iotrace shim"),
    }
}
