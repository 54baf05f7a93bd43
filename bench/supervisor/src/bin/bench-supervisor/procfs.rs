//! Reading /proc: process states and trees, context switches, memory.

use std::collections::HashMap;
use std::fs::{self, File};
use std::os::unix::fs::FileExt;
use std::path::{Path, PathBuf};

use crate::Res;

/// The process state letter and parent pid from `/proc/PID/stat`.
pub fn stat(pid: i32) -> Option<(char, i32)> {
    let s = fs::read_to_string(format!("/proc/{pid}/stat")).ok()?;
    let rest = &s[s.rfind(')')? + 2..];
    let mut f = rest.split(' ');
    let state = f.next()?.chars().next()?;
    let ppid = f.next()?.parse().ok()?;
    Some((state, ppid))
}

pub fn alive(pid: i32) -> bool {
    matches!(stat(pid), Some((s, _)) if s != 'Z' && s != 'X')
}

pub fn exe(pid: i32) -> Option<PathBuf> {
    fs::read_link(format!("/proc/{pid}/exe")).ok()
}

pub fn comm(pid: i32) -> String {
    fs::read_to_string(format!("/proc/{pid}/comm"))
        .map(|s| s.trim().to_string())
        .unwrap_or_default()
}

/// `pids` and all their live descendants, parents first.
pub fn tree(pids: &[i32]) -> Vec<i32> {
    let mut kids: HashMap<i32, Vec<i32>> = HashMap::new();
    if let Ok(rd) = fs::read_dir("/proc") {
        for e in rd.flatten() {
            if let Some(pid) = e.file_name().to_str().and_then(|s| s.parse::<i32>().ok())
                && let Some((state, ppid)) = stat(pid)
                && state != 'Z'
            {
                kids.entry(ppid).or_default().push(pid);
            }
        }
    }
    let mut out: Vec<i32> = pids.iter().copied().filter(|&p| alive(p)).collect();
    let mut i = 0;
    while i < out.len() {
        if let Some(k) = kids.get(&out[i]) {
            for &c in k {
                if !out.contains(&c) {
                    out.push(c);
                }
            }
        }
        i += 1;
    }
    out
}

/// Sum of the `voluntary_ctxt_switches` and `nonvoluntary_ctxt_switches` of every thread.
pub fn ctxt(pid: i32) -> Option<u64> {
    let mut total = 0;
    for t in fs::read_dir(format!("/proc/{pid}/task")).ok()?.flatten() {
        let s = fs::read_to_string(t.path().join("status")).ok()?;
        for line in s.lines() {
            if let Some(v) = line
                .strip_prefix("voluntary_ctxt_switches:")
                .or_else(|| line.strip_prefix("nonvoluntary_ctxt_switches:"))
            {
                total += v.trim().parse::<u64>().ok()?;
            }
        }
    }
    Some(total)
}

/// KiB values from `/proc/PID/smaps_rollup` (and `VmPTE` from status).
#[derive(Clone, Copy, Default, Debug)]
pub struct Mem {
    pub rss: u64,
    pub pss: u64,
    pub private_clean: u64,
    pub private_dirty: u64,
    pub pte: u64,
}

impl Mem {
    pub fn private(&self) -> u64 {
        self.private_clean + self.private_dirty
    }
    pub fn add(&mut self, o: &Mem) {
        self.rss += o.rss;
        self.pss += o.pss;
        self.private_clean += o.private_clean;
        self.private_dirty += o.private_dirty;
        self.pte += o.pte;
    }
}

pub fn mem(pid: i32) -> Res<Mem> {
    let s = fs::read_to_string(format!("/proc/{pid}/smaps_rollup"))
        .map_err(|e| format!("smaps_rollup of {pid}: {e}"))?;
    let mut m = Mem::default();
    let kib = |v: &str| {
        v.trim()
            .trim_end_matches("kB")
            .trim()
            .parse::<u64>()
            .unwrap_or(0)
    };
    for line in s.lines() {
        if let Some((k, v)) = line.split_once(':') {
            match k {
                "Rss" => m.rss = kib(v),
                "Pss" => m.pss = kib(v),
                "Private_Clean" => m.private_clean = kib(v),
                "Private_Dirty" => m.private_dirty = kib(v),
                _ => {}
            }
        }
    }
    if let Ok(st) = fs::read_to_string(format!("/proc/{pid}/status")) {
        for line in st.lines() {
            if let Some(v) = line.strip_prefix("VmPTE:") {
                m.pte = kib(v);
            }
        }
    }
    Ok(m)
}

/// KiB of resident pages mapped by `pids` and by nothing else: each present page's frame
/// (`/proc/PID/pagemap`) counted once if `/proc/kpagecount` equals the number of times the
/// group maps it. Needs root (frame numbers are hidden otherwise). Returns (all, the part
/// in file mappings: the programs' and libraries' text and read-only data).
pub fn group_unique(pids: &[i32]) -> Res<(u64, u64)> {
    const PAGE: u64 = 4096;
    // Frame → (times mapped by the group, from a file mapping).
    let mut seen: HashMap<u64, (u64, bool)> = HashMap::new();
    for &pid in pids {
        let maps = fs::read_to_string(format!("/proc/{pid}/maps"))
            .map_err(|e| format!("maps of {pid}: {e}"))?;
        let pagemap = File::open(format!("/proc/{pid}/pagemap"))
            .map_err(|e| format!("pagemap of {pid}: {e}"))?;
        for line in maps.lines() {
            if line.ends_with("[vsyscall]") {
                continue;
            }
            let Some((range, _)) = line.split_once(' ') else {
                continue;
            };
            // The 6th field, a path, is there for file mappings ([heap], [stack]: not files).
            let file = line
                .split_whitespace()
                .nth(5)
                .is_some_and(|p| p.starts_with('/'));
            let Some((a, b)) = range.split_once('-') else {
                continue;
            };
            let (Ok(a), Ok(b)) = (u64::from_str_radix(a, 16), u64::from_str_radix(b, 16)) else {
                continue;
            };
            let mut page = a / PAGE;
            let end = b / PAGE;
            let mut buf = vec![0u8; 8 * 4096];
            while page < end {
                let n = ((end - page) as usize).min(4096);
                let got = match pagemap.read_at(&mut buf[..n * 8], page * 8) {
                    Ok(g) => g / 8,
                    Err(_) => break,
                };
                if got == 0 {
                    break;
                }
                for e in buf[..got * 8].chunks_exact(8) {
                    let v = u64::from_ne_bytes(e.try_into().unwrap());
                    let pfn = v & ((1 << 55) - 1);
                    if v >> 63 == 1 && pfn != 0 {
                        let e = seen.entry(pfn).or_default();
                        e.0 += 1;
                        e.1 |= file;
                    }
                }
                page += got as u64;
            }
        }
    }
    if seen.is_empty() {
        return Err(format!(
            "no page frames of {pids:?} visible in pagemap (not root?)"
        ));
    }
    let kpc = File::open("/proc/kpagecount").map_err(|e| format!("/proc/kpagecount: {e}"))?;
    let (mut unique, mut file) = (0, 0);
    let mut b = [0u8; 8];
    for (pfn, (n, f)) in seen {
        if kpc.read_exact_at(&mut b, pfn * 8).is_ok() && u64::from_ne_bytes(b) <= n {
            unique += 1;
            file += u64::from(f);
        }
    }
    Ok((unique * PAGE / 1024, file * PAGE / 1024))
}

/// `PID NANOS` lines of a stamps file.
pub fn stamps(path: &Path) -> Vec<(i32, u64)> {
    fs::read_to_string(path)
        .unwrap_or_default()
        .lines()
        .filter_map(|l| {
            let (p, t) = l.split_once(' ')?;
            Some((p.parse().ok()?, t.parse().ok()?))
        })
        .collect()
}
