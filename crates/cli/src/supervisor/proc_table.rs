//! One reading of `/proc`: each live process's parent and the tree mark it carries, from
//! which the trees of services without a cgroup are found. `status` and `list` read it
//! once per request however many services they show (a scan per service would make a
//! `list` of a thousand services read `/proc` a thousand times, in the loop).

use std::collections::HashMap;

use daemonic::Pid;
use daemonic::tree_mark::TreeMark;

/// What `/proc` said when it was read (see the module docs).
#[derive(Debug, Default)]
pub struct ProcTable {
    /// Each live (not zombie) process's parent.
    parent: HashMap<i32, i32>,
    /// The processes that carry a tree mark, by mark.
    marked: HashMap<TreeMark, Vec<i32>>,
}

impl ProcTable {
    /// Reads `/proc` now: `stat` of every process, and `limits` of the live ones.
    pub fn read() -> ProcTable {
        ProcTable::scan(true)
    }

    /// [`read`](Self::read) without the marks: parentage only.
    pub fn parents() -> ProcTable {
        ProcTable::scan(false)
    }

    fn scan(marks: bool) -> ProcTable {
        let mut table = ProcTable::default();
        let Ok(dir) = std::fs::read_dir("/proc") else {
            return table;
        };
        for e in dir.flatten() {
            let Some(pid) = e.file_name().to_str().and_then(|s| s.parse::<i32>().ok()) else {
                continue;
            };
            let Some(ppid) = live_parent(pid) else {
                continue;
            };
            table.parent.insert(pid, ppid);
            if marks && let Some(mark) = TreeMark::carried(Pid::from_raw(pid)) {
                table.marked.entry(mark).or_default().push(pid);
            }
        }
        table
    }

    /// The descendants of `root`, but `spare` and theirs.
    pub fn descendants(&self, root: i32, spare: &[i32]) -> Vec<i32> {
        let mut out = Vec::new();
        for &pid in self.parent.keys() {
            let mut at = pid;
            // Bounded: a pid chain is at most as long as the table.
            for _ in 0..self.parent.len() {
                if spare.contains(&at) {
                    break;
                }
                match self.parent.get(&at) {
                    Some(&p) if p == root => {
                        out.push(pid);
                        break;
                    }
                    Some(&p) => at = p,
                    None => break,
                }
            }
        }
        out
    }

    /// The processes that carry `mark`.
    pub fn marked(&self, mark: TreeMark) -> &[i32] {
        self.marked.get(&mark).map_or(&[], Vec::as_slice)
    }
}

/// The parent of `pid` from `/proc/PID/stat`, unless it is a zombie (or gone).
pub(crate) fn live_parent(pid: i32) -> Option<i32> {
    let stat = std::fs::read_to_string(format!("/proc/{pid}/stat")).ok()?;
    let rest = stat.get(stat.rfind(')')? + 2..)?;
    let mut f = rest.split(' ');
    let state = f.next()?;
    let ppid = f.next()?.parse().ok()?;
    (state != "Z").then_some(ppid)
}
