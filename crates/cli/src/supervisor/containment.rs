//! Containment: what keeps every process of a service inside the service, so that none
//! outlives a stop, a restart, a crash or the supervisor itself.
//!
//! **A cgroup v2 per service**, where one can be made. The child is born in its group
//! (`clone3(CLONE_INTO_CGROUP)` before exec, [`process::into_cgroup`]), so whatever it
//! starts — forked, double-forked, `setsid`, with a cleared environment — is in the group
//! too, and only
//! the kernel can take it out (a process may move itself only where it may write, and
//! the groups are the supervisor's). When the main process has exited, or the stop
//! timeout has passed, `cgroup.kill` SIGKILLs the whole group at once, and the unit
//! reports the exit only once `cgroup.events` says `populated 0`: that file is one more
//! descriptor of the supervisor's poll set ([`Emptying`], `POLLPRI` on each change; no
//! polling, and no other service waits meanwhile), so "exited" means the group is empty
//! and a restart never runs beside the previous generation. The group is removed after.
//!
//! Where the groups are (the layout):
//!
//! | the supervisor runs | groups under |
//! |---|---|
//! | in a group systemd delegated to its unit (`Delegate=yes`, as the generated units ask where daemonic runs as root; any user, root too) | `<own cgroup>/daemonic/<state dir>/<name>` |
//! | as root, elsewhere | `<cgroup2 mount>/daemonic/<state dir>/<name>` |
//! | in a cgroup delegated to its user by ownership (a systemd user session) | `<own cgroup>/daemonic/<state dir>/<name>` |
//!
//! systemd marks the groups it delegates (`user.delegate`, [`process::cgroup_delegated`]);
//! inside one, the service's groups stay inside the unit, so `systemctl status` shows its
//! processes and `systemctl stop` (or systemd's SIGKILL after the unit's stop timeout)
//! ends them all, even a killed daemonic's. The supervisor itself stays in the unit's
//! group; that is allowed while no controller is enabled below it, so limits
//! (`--memory-max` …) inside a delegated unit are not supported yet.
//!
//! `<state dir>` is the state directory's path with `/` written `-` (and `-` written
//! `\x2d`, as `systemd-escape` does): `/run/daemonic` → `run-daemonic`. The path of a
//! service is the same for every supervisor of it, so a new supervisor finds a group
//! left populated by one that was killed with its sentinel, kills it and says so.
//!
//! **Otherwise, a subreaper**, in a supervisor of one service ([`kill_descendants`]): every
//! orphan of the service is re-parented to the supervisor, so all its descendants but the
//! sentinel are the service's. Each child also carries the service's tree mark
//! (`daemonic::tree_mark`, a hard `RLIMIT_RTTIME` no child can raise), by which the
//! sentinel and a later supervisor find what outlived a killed supervisor, however it
//! left the tree (`Unit::mark_tree`). In a supervisor of many services parentage cannot
//! tell an orphan's service (it goes to init): there the process group and the tree mark
//! (one per service) hold each tree — killed by mark when the main process exits.
//! `DAEMONIC_CONTAINMENT=subreaper` forces this mode; see `docs/supervisor.md`.
//!
//! `DAEMONIC_CONTAINMENT` is read once: `auto` (the default), `cgroup` (fail to start
//! when no group can be made, saying why) or `subreaper`.

use std::io::Write as _;
use std::os::fd::{AsFd, OwnedFd};
use std::path::{Path, PathBuf};
use std::sync::OnceLock;

use anyhow::{Context as _, Result, bail};
use nix::poll::{PollFd, PollFlags};

use daemonic::process;

use crate::service::limits::Limits;

/// The variable that chooses the containment.
pub const VAR: &str = "DAEMONIC_CONTAINMENT";

/// Where the groups of this supervisor's services go, or why there are none.
#[derive(Debug, Clone)]
enum Base {
    /// The top of the supervisor's hierarchy (the mount as root, its own delegated
    /// cgroup otherwise), and the directory the groups go under.
    Cgroup { top: PathBuf, base: PathBuf },
    /// No cgroup: why (shown when `cgroup` was asked for).
    None(String),
}

fn base() -> &'static Base {
    static BASE: OnceLock<Base> = OnceLock::new();
    BASE.get_or_init(|| {
        let wanted = std::env::var(VAR).unwrap_or_default();
        match wanted.as_str() {
            "subreaper" => Base::None(format!("{VAR}=subreaper")),
            _ => match find_base() {
                Ok((top, base)) => Base::Cgroup { top, base },
                Err(why) => Base::None(why),
            },
        }
    })
}

/// The top of this supervisor's cgroup hierarchy, or why it has no cgroups (for
/// [`super::limits::check`] and [`apply_limits`]).
pub fn top() -> std::result::Result<PathBuf, String> {
    match base() {
        Base::Cgroup { top, .. } => Ok(top.clone()),
        Base::None(why) => Err(why.clone()),
    }
}

/// Whether `cgroup` mode was asked for, so that its absence is an error.
fn required() -> bool {
    std::env::var(VAR).is_ok_and(|v| v == "cgroup")
}

/// Finds the directory the groups go under (see the module docs), or says why none.
fn find_base() -> std::result::Result<(PathBuf, PathBuf), String> {
    let mountinfo = std::fs::read_to_string("/proc/self/mountinfo")
        .map_err(|e| format!("read /proc/self/mountinfo: {e}"))?;
    let mount = cgroup2_mount(&mountinfo).ok_or("no cgroup2 file system is mounted")?;
    let own = std::fs::read_to_string("/proc/self/cgroup")
        .map_err(|e| format!("read /proc/self/cgroup: {e}"))?;
    let own = own
        .lines()
        .find_map(|l| l.strip_prefix("0::"))
        .ok_or("/proc/self/cgroup has no cgroup2 entry")?;
    let own = match own.trim_start_matches('/') {
        "" => mount.clone(),
        path => mount.join(path),
    };
    let root = nix::unistd::geteuid().is_root();
    // A group systemd delegated to our unit first, even as root: building groups
    // elsewhere in systemd's tree would take the service out of its unit.
    let under = if process::cgroup_delegated(&own) {
        own
    } else if root {
        mount.clone()
    } else if delegated(&own) {
        own
    } else {
        return Err(format!(
            "not root, and {} is not delegated to this user",
            own.display()
        ));
    };
    let base = under.join("daemonic");
    match std::fs::create_dir(&base) {
        Ok(()) => Ok((under, base)),
        Err(e) if e.kind() == std::io::ErrorKind::AlreadyExists => Ok((under, base)),
        Err(e) => Err(format!("create {}: {e}", base.display())),
    }
}

/// The mount point of the cgroup2 hierarchy that the paths of `/proc/PID/cgroup` are
/// relative to ([`cgroup2_mount`] of this process's mounts), read once.
pub(crate) fn hierarchy() -> Option<&'static Path> {
    static MOUNT: std::sync::OnceLock<Option<PathBuf>> = std::sync::OnceLock::new();
    MOUNT
        .get_or_init(|| {
            let info = std::fs::read_to_string("/proc/self/mountinfo").ok()?;
            cgroup2_mount(&info)
        })
        .as_deref()
}

/// The mount point of the cgroup2 file system in `/proc/self/mountinfo`: the first that
/// shows the root of this process's cgroup namespace (root field `/`), to which the paths
/// of `/proc/self/cgroup` are relative; else the first. A container may also see the
/// hierarchy mounted from above its namespace's root (root `/../..`), where those paths
/// would name other groups.
fn cgroup2_mount(mountinfo: &str) -> Option<PathBuf> {
    let mounts: Vec<(&str, &str)> = mountinfo
        .lines()
        .filter_map(|line| {
            let (left, right) = line.split_once(" - ")?;
            let mut fields = left.split(' ').skip(3);
            let (root, mount) = (fields.next()?, fields.next()?);
            (right.split(' ').next()? == "cgroup2").then_some((root, mount))
        })
        .collect();
    let best = mounts
        .iter()
        .find(|(root, _)| *root == "/")
        .or(mounts.first());
    best.map(|(_, mount)| PathBuf::from(mount))
}

/// A group delegated to this user: the directory and its `cgroup.procs` are ours.
fn delegated(dir: &Path) -> bool {
    use std::os::unix::fs::MetadataExt;
    let me = nix::unistd::geteuid().as_raw();
    [dir.to_path_buf(), dir.join("cgroup.procs")]
        .iter()
        .all(|p| std::fs::metadata(p).is_ok_and(|m| m.uid() == me))
}

/// What `status` says of a service's containment and tree (the `ServiceInfo` fields
/// `containment` and `tree_*`; the others default): its group's, or without one the
/// processes of `tree` (see `Unit::tree`), their memory and CPU summed from `/proc`
/// (the CPU of those still running, and of the children they have waited for).
pub fn describe(
    cgroup: Option<&Cgroup>,
    subreaper: bool,
    tree: &[i32],
) -> crate::control::ServiceInfo {
    if let Some(cg) = cgroup {
        return describe_dir(cg.dir());
    }
    let usages: Vec<crate::usage::Usage> = tree
        .iter()
        .filter_map(|p| crate::usage::of(daemonic::Pid::from_raw(*p)))
        .collect();
    crate::control::ServiceInfo {
        containment: Some(
            if subreaper {
                "subreaper"
            } else {
                "process group and tree mark"
            }
            .into(),
        ),
        tree_processes: Some(usages.len() as u64),
        tree_memory_bytes: Some(usages.iter().map(|u| u.rss_bytes).sum()),
        tree_cpu_ms: Some(usages.iter().map(|u| u.cpu_ms).sum()),
        ..Default::default()
    }
}

/// [`describe`] for the group at `dir` (as a status file names it).
pub fn describe_dir(dir: &Path) -> crate::control::ServiceInfo {
    let pids: Vec<i32> = std::fs::read_to_string(dir.join("cgroup.procs"))
        .map(|t| t.lines().filter_map(|l| l.trim().parse().ok()).collect())
        .unwrap_or_default();
    let usages: Vec<crate::usage::Usage> = pids
        .iter()
        .filter_map(|p| crate::usage::of(daemonic::Pid::from_raw(*p)))
        .collect();
    let memory = std::fs::read_to_string(dir.join("memory.current"))
        .ok()
        .and_then(|t| t.trim().parse().ok())
        .unwrap_or_else(|| usages.iter().map(|u| u.rss_bytes).sum());
    // `usage_usec` counts every process that ever ran in the group, gone ones too.
    let cpu = std::fs::read_to_string(dir.join("cpu.stat"))
        .ok()
        .and_then(|t| {
            t.lines()
                .find_map(|l| l.strip_prefix("usage_usec "))
                .and_then(|n| n.trim().parse::<u64>().ok())
        })
        .map(|us| us / 1000);
    crate::control::ServiceInfo {
        containment: Some(format!("cgroup {}", dir.display())),
        tree_processes: Some(pids.len() as u64),
        tree_memory_bytes: Some(memory),
        tree_cpu_ms: cpu,
        ..Default::default()
    }
}

/// The memory of a service's whole tree, as `status` shows it: `memory.current` of its
/// group (or the sum of its processes' resident memory where that file is missing);
/// without a group, the resident memory of the processes of `tree` (see `Unit::tree`).
pub fn tree_memory(cgroup: Option<&Cgroup>, tree: &[i32]) -> u64 {
    describe(cgroup, false, tree).tree_memory_bytes.unwrap_or(0)
}

/// Subreaper containment (no cgroup, one service): SIGKILLs every descendant of this
/// supervisor but those of `spare` (the sentinel) — the supervisor is a child subreaper, so
/// a `setsid`'d or double-forked orphan of the service is its child, whatever its
/// environment. Each is opened as a pidfd before its parentage is read again, so a reused
/// pid is never signalled. Returns the handles of those killed, readable once each has
/// died: the caller waits for them in its poll set. The orphans among them are the
/// caller's to reap then (`process::reap_orphans`, once the main process is reaped: a
/// claimed child ahead of them in the kernel's list holds them back).
pub fn kill_descendants(spare: &[i32]) -> Vec<daemonic::process::PidFd> {
    use daemonic::process::PidFd;
    let me = std::process::id() as i32;
    let mut killed: Vec<PidFd> = Vec::new();
    // Descendants that fork while being killed are found by the next scan.
    for _ in 0..64 {
        let tree = descendants(me, spare);
        let mut found = 0;
        for pid in tree {
            if killed.iter().any(|k| k.pid().as_raw() == pid) {
                continue;
            }
            let Ok(h) = PidFd::open(daemonic::Pid::from_raw(pid)) else {
                continue;
            };
            if descendants(me, spare).contains(&pid) && h.signal(daemonic::Signal::SIGKILL).is_ok()
            {
                killed.push(h);
                found += 1;
            }
        }
        if found == 0 {
            break;
        }
    }
    killed
}

/// The live (not zombie) descendants of `root`, but `spare` and theirs: walked down the
/// kernel's lists of children ([`children_tree`]), or found in a scan of every process in
/// `/proc` where the kernel keeps no such lists.
pub(crate) fn descendants(root: i32, spare: &[i32]) -> Vec<i32> {
    children_tree(root, spare)
        .unwrap_or_else(|| super::proc_table::ProcTable::parents().descendants(root, spare))
}

/// [`descendants`] through `/proc/PID/task/TID/children` (Linux's CONFIG_PROC_CHILDREN, on
/// in the common distributions' kernels): a few reads per process of the tree, where the
/// scan of `/proc` reads every process on the machine — 44 % of a subreaper's time per
/// restart in a crash loop (`perf record`), with nothing left to kill. Each process found
/// is checked to be alive and the child of the one it was listed under (read again from
/// its `stat`), so a pid reused meanwhile is not taken for a descendant. `None` where the
/// kernel has no such lists.
fn children_tree(root: i32, spare: &[i32]) -> Option<Vec<i32>> {
    let mut out: Vec<i32> = Vec::new();
    let mut queue = vec![root];
    while let Some(pid) = queue.pop() {
        let children = match children_of(pid) {
            Some(c) => c,
            None if pid == root => return None,
            // Gone meanwhile: so are its lists.
            None => Vec::new(),
        };
        for child in children {
            if child == root || spare.contains(&child) || out.contains(&child) {
                continue;
            }
            if super::proc_table::live_parent(child) != Some(pid) {
                continue;
            }
            out.push(child);
            queue.push(child);
        }
    }
    Some(out)
}

/// The children of every thread of process `pid`; `None` if no thread's list can be read
/// (no such process, or no such files in this kernel).
fn children_of(pid: i32) -> Option<Vec<i32>> {
    let tasks = std::fs::read_dir(format!("/proc/{pid}/task")).ok()?;
    let mut read_any = false;
    let mut out = Vec::new();
    for task in tasks.flatten() {
        if let Ok(text) = std::fs::read_to_string(task.path().join("children")) {
            read_any = true;
            out.extend(
                text.split_ascii_whitespace()
                    .filter_map(|n| n.parse::<i32>().ok()),
            );
        }
    }
    read_any.then_some(out)
}

/// Whether `cgroup.events`, open as `events`, says `populated 1`; reads it from the start.
fn populated(events: &mut std::fs::File) -> std::io::Result<bool> {
    use std::io::{Read as _, Seek as _};
    events.rewind()?;
    let mut text = String::new();
    events.read_to_string(&mut text)?;
    Ok(text.lines().any(|l| l == "populated 1"))
}

/// The state directory as one path component (see the module docs).
pub fn escape(dir: &Path) -> String {
    let s = dir.to_string_lossy();
    let s = s.trim_matches('/');
    if s.is_empty() {
        return "-".into();
    }
    s.replace('-', "\\x2d").replace('/', "-")
}

/// A group being emptied after `cgroup.kill`, watched in the poll loop: its
/// `cgroup.events`, which the kernel marks (`POLLPRI`) on each change.
#[derive(Debug)]
pub struct Emptying {
    events: std::fs::File,
    path: PathBuf,
}

impl Emptying {
    /// For the poll set: ready when `cgroup.events` changed since it was last read.
    pub fn poll_fd(&self) -> PollFd<'_> {
        PollFd::new(self.events.as_fd(), PollFlags::POLLPRI)
    }

    /// Whether the group is empty now (`populated 0`). Read through the polled
    /// descriptor, which clears its mark (another descriptor would leave it set, and
    /// `poll` returning at once).
    pub fn is_empty(&mut self) -> Result<bool> {
        let populated =
            populated(&mut self.events).with_context(|| format!("read {}", self.path.display()))?;
        Ok(!populated)
    }

    /// The group's directory.
    pub fn dir(&self) -> &Path {
        self.path.parent().unwrap_or(&self.path)
    }
}

/// The group of one service.
#[derive(Debug)]
pub struct Cgroup {
    /// Where the supervisor's hierarchy begins (controllers are enabled from here down).
    top: PathBuf,
    dir: PathBuf,
    /// The group must be made anew before the next child is born in it: it is the first
    /// start of this supervisor (an earlier one may have killed in it), or `cgroup.kill`
    /// was written since it was made (see [`Cgroup::prepare`]).
    stale: std::cell::Cell<bool>,
    /// A digest of the limits last written into the group as it is now (0: none yet; a
    /// digest, not the limits, to keep a unit small: `units::a_member_stays_small`).
    applied: std::cell::Cell<u64>,
}

/// The digest of `limits` for [`Cgroup::prepare`], never 0.
fn digest(limits: &Limits) -> u64 {
    use std::hash::{Hash as _, Hasher as _};
    let mut h = std::hash::DefaultHasher::new();
    limits.hash(&mut h);
    h.finish().max(1)
}

impl Cgroup {
    /// The group of the service `name` whose state is kept in `state_dir`; `Ok(None)` when
    /// no groups are made here (the supervisor is a subreaper then), an error when
    /// `DAEMONIC_CONTAINMENT=cgroup` asked for one.
    pub fn for_service(state_dir: &Path, name: &str) -> Result<Option<Cgroup>> {
        match base() {
            Base::Cgroup { top, base } => Ok(Some(Cgroup {
                top: top.clone(),
                dir: base.join(escape(state_dir)).join(name),
                stale: std::cell::Cell::new(true),
                applied: std::cell::Cell::new(0),
            })),
            Base::None(why) if required() => bail!("{VAR}=cgroup: {why}"),
            Base::None(_) => Ok(None),
        }
    }

    pub fn dir(&self) -> &Path {
        &self.dir
    }

    /// Creates the group (and its parent) if need be, writes its `limits`
    /// ([`apply_limits`]); opens its directory, for the child to be born in
    /// (`daemonic::launch`).
    pub fn prepare(&self, limits: &Limits) -> Result<OwnedFd> {
        // A group that `cgroup.kill` has emptied is made anew (it is empty by now: an exit
        // is reported, and a start made, only once it is). Linux kills a child cloned into
        // such a group (CLONE_INTO_CGROUP compares the kill counts of the spawner's group
        // and the target's: seen on 6.18); a new group has none. A group nobody killed in
        // — a child that exited alone, the usual restart — is kept: its `rmdir` and
        // `mkdir` were a tenth of the supervisor's time per restart. A group that cannot
        // be removed (still populated) is used as it is.
        if self.stale.replace(false) {
            let _ = std::fs::remove_dir(&self.dir);
            self.applied.set(0);
        }
        // A kept group that has these limits already is only opened (if it is still
        // there: a group removed from outside is made again).
        let wanted = digest(limits);
        if self.applied.get() == wanted
            && let Ok(f) = std::fs::File::open(&self.dir)
        {
            return Ok(f.into());
        }
        std::fs::create_dir_all(&self.dir)
            .with_context(|| format!("create cgroup {}", self.dir.display()))?;
        apply_limits(limits, &self.top, &self.dir)?;
        self.applied.set(wanted);
        let f = std::fs::File::open(&self.dir)
            .with_context(|| format!("open {}", self.dir.display()))?;
        Ok(f.into())
    }

    /// How many times the OOM killer has killed in the group (`oom_kill` in
    /// `memory.events`, which counts the groups below too); `None` without the memory
    /// controller.
    pub fn oom_kills(&self) -> Option<u64> {
        let text = std::fs::read_to_string(self.dir.join("memory.events")).ok()?;
        text.lines()
            .find_map(|l| l.strip_prefix("oom_kill "))
            .and_then(|n| n.trim().parse().ok())
    }

    /// The pids in the group (none if it does not exist).
    pub fn pids(&self) -> Vec<i32> {
        std::fs::read_to_string(self.dir.join("cgroup.procs"))
            .map(|t| t.lines().filter_map(|l| l.trim().parse().ok()).collect())
            .unwrap_or_default()
    }

    /// SIGKILLs every process in the group (`cgroup.kill`); nothing to do if the group
    /// does not exist.
    pub fn kill(&self) -> Result<()> {
        let path = self.dir.join("cgroup.kill");
        match std::fs::OpenOptions::new().write(true).open(&path) {
            Ok(mut f) => {
                self.stale.set(true);
                f.write_all(b"1")
                    .with_context(|| format!("write 1 to {}", path.display()))
            }
            Err(e) if e.kind() == std::io::ErrorKind::NotFound => Ok(()),
            Err(e) => Err(e).with_context(|| format!("open {}", path.display())),
        }
    }

    /// SIGKILLs every process in the group and, if any is left, watches it empty in the
    /// poll loop: `None` when it is empty already (or does not exist). An empty group is
    /// not killed in: nothing can enter it but a child of ours, and a kill would make it
    /// stale ([`Cgroup::prepare`]).
    pub fn start_emptying(&self) -> Result<Option<Emptying>> {
        let path = self.dir.join("cgroup.events");
        // Opened before the kill and read after it: a change after that read marks this
        // descriptor, so the last process leaving is never missed.
        let mut events = match std::fs::File::open(&path) {
            Ok(f) => f,
            Err(e) if e.kind() == std::io::ErrorKind::NotFound => return Ok(None),
            Err(e) => return Err(e).with_context(|| format!("open {}", path.display())),
        };
        let read = |events: &mut std::fs::File| {
            populated(events).with_context(|| format!("read {}", path.display()))
        };
        if !read(&mut events)? {
            return Ok(None);
        }
        self.kill()?;
        if !read(&mut events)? {
            return Ok(None);
        }
        Ok(Some(Emptying { events, path }))
    }

    /// Removes the (empty) group, and its parent if no other service of the state
    /// directory has a group there; best effort.
    pub fn remove(&self) {
        if std::fs::remove_dir(&self.dir).is_ok()
            && let Some(parent) = self.dir.parent()
        {
            let _ = std::fs::remove_dir(parent);
        }
    }
}

/// The files of the limits, each as it is when not limited.
const UNLIMITED: [(&str, &str); 4] = [
    ("memory.max", "max"),
    ("memory.high", "max"),
    ("cpu.max", "max"),
    ("pids.max", "max"),
];

/// Enables the controllers of `limits` on every level from `top` down to `dir`'s parent,
/// then writes the limits into `dir` (which exists).
pub fn apply_limits(limits: &Limits, top: &Path, dir: &Path) -> Result<()> {
    let files = limits.files();
    // The group stays from one start to the next (and through a change of the service by
    // `up`): a limit no longer asked for goes back to none, where its file is there.
    for (file, none) in UNLIMITED {
        let path = dir.join(file);
        if !files.iter().any(|f| f.2 == file) && path.exists() {
            std::fs::write(&path, none)
                .with_context(|| format!("write {none:?} to {}", path.display()))?;
        }
    }
    if files.is_empty() {
        return Ok(());
    }
    let mut controllers: Vec<&str> = files.iter().map(|f| f.1).collect();
    controllers.dedup();
    let enable: String = controllers
        .iter()
        .map(|c| format!("+{c}"))
        .collect::<Vec<_>>()
        .join(" ");
    let parent = dir.parent().unwrap_or(dir);
    let below = parent.strip_prefix(top).unwrap_or(Path::new(""));
    let mut level = top.to_path_buf();
    let mut levels = vec![level.clone()];
    for part in below.components() {
        level.push(part);
        levels.push(level.clone());
    }
    for l in levels {
        let path = l.join("cgroup.subtree_control");
        std::fs::write(&path, &enable)
            .with_context(|| format!("write {enable:?} to {}", path.display()))?;
    }
    for (_, _, file, value) in files {
        let path = dir.join(file);
        std::fs::write(&path, &value)
            .with_context(|| format!("write {value:?} to {}", path.display()))?;
    }
    Ok(())
}

#[cfg(test)]
mod tests {
    use super::*;

    /// The lists of children find what the scan of `/proc` finds: a shell's two
    /// background children and a grandchild below one of them, but not what is spared.
    #[test]
    fn the_children_lists_find_the_tree_the_proc_scan_finds() {
        let mut sh = std::process::Command::new("sh")
            .args(["-c", "sleep 30 & sh -c 'sleep 30 & wait' & wait"])
            .spawn()
            .unwrap();
        let root = sh.id() as i32;
        let scanned = || {
            let mut t = super::super::proc_table::ProcTable::parents().descendants(root, &[]);
            t.sort();
            t
        };
        let mut tree = Vec::new();
        for _ in 0..200 {
            tree = scanned();
            if tree.len() == 3 {
                break;
            }
            std::thread::sleep(std::time::Duration::from_millis(10));
        }
        let mut walked = children_tree(root, &[]).expect("this kernel lists children");
        walked.sort();
        let spared = tree.iter().copied().find(|&p| {
            super::super::proc_table::live_parent(p) == Some(root)
                && tree
                    .iter()
                    .any(|&q| super::super::proc_table::live_parent(q) == Some(p))
        });
        let without = spared.map(|p| children_tree(root, &[p]).unwrap());
        // Through pidfds opened while they surely are the shell's descendants.
        let handles: Vec<_> = (tree.iter())
            .filter_map(|&p| daemonic::process::PidFd::open(daemonic::Pid::from_raw(p)).ok())
            .collect();
        for h in &handles {
            let _ = h.signal(daemonic::Signal::SIGKILL);
        }
        let _ = sh.kill();
        let _ = sh.wait();
        assert_eq!(tree.len(), 3, "{tree:?}");
        assert_eq!(walked, tree);
        // Sparing the inner shell spares its child too.
        assert_eq!(without.map(|w| w.len()), Some(1));
    }

    #[test]
    fn the_state_dir_is_one_component() {
        assert_eq!(escape(Path::new("/run/daemonic")), "run-daemonic");
        assert_eq!(
            escape(Path::new("/tmp/daemonic-test.1/state")),
            "tmp-daemonic\\x2dtest.1-state"
        );
        assert_eq!(escape(Path::new("/")), "-");
    }

    #[test]
    fn finds_the_cgroup2_mount() {
        let info = "25 30 0:22 / /sys/fs/cgroup/cpu rw - cgroup cgroup rw,cpu\n\
                    41 31 0:38 / /sys/fs/cgroup/unified rw,relatime - cgroup2 cgroup2 rw\n";
        assert_eq!(
            cgroup2_mount(info),
            Some(PathBuf::from("/sys/fs/cgroup/unified"))
        );
        assert_eq!(
            cgroup2_mount("25 30 0:22 / /x rw - ext4 /dev/sda rw\n"),
            None
        );
        // In a systemd container (the sandbox of tests/systemd_units.rs): the namespace's
        // own view wins over the host's hierarchy seen from above.
        let info = "139 129 0:38 /../.. /sys/fs/cgroup/unified rw - cgroup2 cgroup2 rw\n\
                    140 129 0:38 / /sys/fs/cgroup rw,nosuid - cgroup2 cgroup2 rw\n";
        assert_eq!(cgroup2_mount(info), Some(PathBuf::from("/sys/fs/cgroup")));
    }
}
