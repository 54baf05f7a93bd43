//! A tree mark: a value the kernel keeps for a process and everything it starts, so that
//! a supervisor without cgroups can still find every process of a service — also one that
//! was re-parented to init, `setsid`'d, and cleared its environment — after the supervisor
//! itself is gone.
//!
//! The mark is the *hard* limit of `RLIMIT_RTTIME` (the CPU time a real-time task may use
//! without blocking), set between fork and exec ([`TreeMark::apply`]) to `2^62` plus 48
//! bits of an FNV-1a hash of the service's identity. Resource limits are inherited through
//! `fork` and `exec` (setuid programs included) and are what an environment-clearing,
//! double-forking daemon keeps: a process can only *lower* a hard limit, and only root can
//! raise it again. `2^62` µs is 146,000 years, so the limit never acts. `/proc/PID/limits`
//! is readable by every user, so [`TreeMark::kill`] finds marked processes of any user.
//!
//! Rules, and why:
//! - The mark of a service is a function of its identity (state directory and name), so a
//!   new supervisor finds what a killed one (and its sentinel) left without any record.
//! - A limit someone else set is never overwritten: [`TreeMark::apply`] marks only a child
//!   whose hard limit is unlimited, so a daemonic supervised by another marked supervisor
//!   leaves the outer mark in place (the outer one then finds the inner's processes too).
//! - A process is killed only through a pidfd opened *before* its limits were read, so a
//!   reused pid is never signalled.
//!
//! Hostile marks: a user can set this limit only on processes it may already signal
//! (its own, with `prlimit`), so a forged mark makes a supervisor kill nothing its user
//! could not kill. A process that lowers the limit itself leaves the tree — deliberately;
//! only a cgroup holds against that.
//!
//! ```
//! use std::process::Command;
//! use daemonic::tree_mark::TreeMark;
//!
//! # fn main() -> Result<(), Box<dyn std::error::Error>> {
//! let mark = TreeMark::of(format!("doctest {}", std::process::id()).as_bytes());
//! let mut cmd = Command::new("sh");
//! // A descendant that clears its environment is still marked.
//! cmd.args(["-c", "env -i sleep 30 & exec sleep 30"]);
//! mark.apply(&mut cmd);
//! let mut child = cmd.spawn()?;
//! // Until the shell has started its background child (and exec'd itself).
//! let deadline = std::time::Instant::now() + std::time::Duration::from_secs(10);
//! while mark.processes().len() < 2 && std::time::Instant::now() < deadline {
//!     std::thread::sleep(std::time::Duration::from_millis(5));
//! }
//! let killed = mark.kill(&[]);
//! assert_eq!(killed.len(), 2, "the shell (now sleep) and its env -i child");
//! child.wait()?;
//! # Ok(())
//! # }
//! ```

use std::process::Command;
use std::time::Duration;

use nix::sys::resource::{RLIM_INFINITY, Resource, getrlimit, setrlimit};
use nix::sys::signal::Signal;
use nix::unistd::Pid;

use crate::process::PidFd;

/// The most scans [`TreeMark::kill`] makes: each kills what it finds, and processes that
/// fork while being killed are found by the next.
const MAX_SCANS: usize = 64;

/// A service's mark (see the [module docs](self)).
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
pub struct TreeMark(u64);

impl TreeMark {
    /// The mark of the service that `identity` names (a state directory and a name, say).
    pub fn of(identity: &[u8]) -> TreeMark {
        // FNV-1a, 64 bits: stable across releases, unlike std's hasher.
        let mut h: u64 = 0xcbf2_9ce4_8422_2325;
        for b in identity {
            h ^= u64::from(*b);
            h = h.wrapping_mul(0x0000_0100_0000_01b3);
        }
        TreeMark((1 << 62) | (h & 0xffff_ffff_ffff))
    }

    /// The mark from its value (as [`value`](Self::value) gave it), or `None` for a value
    /// no [`TreeMark::of`] makes.
    pub fn from_value(value: u64) -> Option<TreeMark> {
        (value >> 48 == 1 << 14).then_some(TreeMark(value))
    }

    /// The hard `RLIMIT_RTTIME` that carries this mark.
    pub fn value(&self) -> u64 {
        self.0
    }

    /// Marks `cmd`'s child between fork and exec, unless its hard `RLIMIT_RTTIME` is
    /// already limited (someone else's mark, or a limit of its own: left alone); a soft
    /// limit it had stays. A failure leaves the child unmarked rather than failing its
    /// start.
    pub fn apply(&self, cmd: &mut Command) {
        let mark = *self;
        // SAFETY: the hook calls getrlimit and setrlimit, async-signal-safe system calls,
        // on a value copied before the fork; it allocates nothing.
        #[allow(unsafe_code)]
        unsafe {
            crate::sys::pre_exec(cmd, move || {
                mark.mark_this_process();
                Ok(())
            })
        };
    }

    /// Marks the calling process as [`apply`](Self::apply) marks a child: `getrlimit` and
    /// `setrlimit` only, for a child between clone and exec.
    pub(crate) fn mark_this_process(&self) {
        if let Ok((soft, RLIM_INFINITY)) = getrlimit(Resource::RLIMIT_RTTIME) {
            let _ = setrlimit(Resource::RLIMIT_RTTIME, soft.min(self.0), self.0);
        }
    }

    /// The tree mark process `pid` carries now, if any.
    pub fn carried(pid: Pid) -> Option<TreeMark> {
        hard_rttime(pid).and_then(TreeMark::from_value)
    }

    /// Whether process `pid` carries this mark now.
    pub fn carried_by(&self, pid: Pid) -> bool {
        hard_rttime(pid) == Some(self.0)
    }

    /// The live processes that carry this mark (zombies not counted), in `/proc` order.
    pub fn processes(&self) -> Vec<Pid> {
        let Ok(dir) = std::fs::read_dir("/proc") else {
            return Vec::new();
        };
        dir.flatten()
            .filter_map(|e| e.file_name().to_str()?.parse::<i32>().ok())
            .map(Pid::from_raw)
            .filter(|&pid| self.carried_by(pid) && !zombie(pid))
            .collect()
    }

    /// SIGKILLs every process that carries this mark but this one and `spare`, scanning
    /// again until a scan finds none new. Returns the handles of those killed, readable
    /// once each has died (they are not this process's children, unless it is their
    /// subreaper: then the caller reaps them).
    pub fn kill(&self, spare: &[Pid]) -> Vec<PidFd> {
        kill_where(spare, |pid| self.carried_by(pid))
    }
}

/// SIGKILLs every process but this one and `spare` for which `matches` holds, scanning
/// `/proc` again until a scan finds none new (at most [`MAX_SCANS`] times). Each is
/// opened as a pidfd *before* `matches` looks at it, so a reused pid is never signalled.
pub(crate) fn kill_where(spare: &[Pid], matches: impl Fn(Pid) -> bool) -> Vec<PidFd> {
    let me = Pid::this();
    let mut signalled: Vec<PidFd> = Vec::new();
    for _ in 0..MAX_SCANS {
        let mut found = 0;
        let Ok(dir) = std::fs::read_dir("/proc") else {
            break;
        };
        for entry in dir.flatten() {
            let Some(pid) = entry
                .file_name()
                .to_str()
                .and_then(|s| s.parse::<i32>().ok())
                .map(Pid::from_raw)
            else {
                continue;
            };
            if pid == me || spare.contains(&pid) {
                continue;
            }
            // A process still dying when the next scan comes (its files are readable
            // until it has exited) is the one already signalled, not a new one.
            let dying = |h: &PidFd| h.pid() == pid && !h.wait_exit(Duration::ZERO).unwrap_or(true);
            if signalled.iter().any(dying) {
                continue;
            }
            let Ok(handle) = PidFd::open(pid) else {
                continue;
            };
            // A zombie has died already (its files still read as they were).
            if !zombie(pid) && matches(pid) && handle.signal(Signal::SIGKILL).is_ok() {
                signalled.push(handle);
                found += 1;
            }
        }
        if found == 0 {
            break;
        }
    }
    signalled
}

/// Whether `pid` is a zombie (or gone).
fn zombie(pid: Pid) -> bool {
    let Ok(stat) = std::fs::read_to_string(format!("/proc/{pid}/stat")) else {
        return true;
    };
    // "pid (comm) S …": the state follows the last parenthesis.
    stat.rfind(')')
        .and_then(|i| stat.get(i + 2..i + 3))
        .is_none_or(|state| state == "Z" || state == "X")
}

/// The hard `RLIMIT_RTTIME` of `pid`, from `/proc/PID/limits` (`None`: unlimited, or
/// unreadable).
fn hard_rttime(pid: Pid) -> Option<u64> {
    let text = std::fs::read_to_string(format!("/proc/{pid}/limits")).ok()?;
    let line = text
        .lines()
        .find_map(|l| l.strip_prefix("Max realtime timeout"))?;
    // "  <soft>  <hard>  us"
    line.split_whitespace().nth(1)?.parse().ok()
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn marks_differ_by_identity_and_read_back() {
        let a = TreeMark::of(b"/run/daemonic\0web");
        let b = TreeMark::of(b"/run/daemonic\0db");
        assert_ne!(a, b);
        assert_eq!(a, TreeMark::of(b"/run/daemonic\0web"));
        assert_eq!(TreeMark::from_value(a.value()), Some(a));
        assert_eq!(TreeMark::from_value(RLIM_INFINITY), None);
        assert_eq!(TreeMark::from_value(5), None);
    }

    #[test]
    fn kills_what_carries_it_through_setsid_and_a_cleared_environment() {
        let mark = TreeMark::of(format!("unit test {}", std::process::id()).as_bytes());
        let mut marked = Command::new("setsid");
        marked.args(["env", "-i", "sleep", "30"]);
        mark.apply(&mut marked);
        let mut marked = marked.spawn().unwrap();
        let mut other = Command::new("sleep").arg("30").spawn().unwrap();
        let pid = Pid::from_raw(marked.id() as i32);
        // The exec chain setsid → env → sleep keeps the limit.
        let deadline = std::time::Instant::now() + Duration::from_secs(5);
        while std::fs::read_to_string(format!("/proc/{pid}/comm")).unwrap() != "sleep\n" {
            assert!(std::time::Instant::now() < deadline, "sleep never ran");
            std::thread::sleep(Duration::from_millis(5));
        }
        assert!(mark.carried_by(pid));
        assert_eq!(TreeMark::carried(pid), Some(mark));
        assert_eq!(mark.processes(), [pid]);
        let other_pid = Pid::from_raw(other.id() as i32);
        assert!(!mark.carried_by(other_pid));
        assert_eq!(TreeMark::carried(other_pid), None);
        let killed = mark.kill(&[]);
        assert_eq!(killed.len(), 1);
        assert_eq!(killed[0].pid(), pid);
        use std::os::unix::process::ExitStatusExt;
        assert_eq!(marked.wait().unwrap().signal(), Some(libc::SIGKILL));
        assert!(
            other.try_wait().unwrap().is_none(),
            "the unmarked one was killed"
        );
        other.kill().unwrap();
        other.wait().unwrap();
    }

    #[test]
    fn a_soft_limit_stays() {
        let mark = TreeMark::of(b"soft");
        let mut cmd = Command::new("sleep");
        cmd.arg("30");
        // SAFETY: the hook calls setrlimit only, async-signal-safe, on constants.
        #[allow(unsafe_code)]
        unsafe {
            crate::sys::pre_exec(&mut cmd, || {
                Ok(setrlimit(Resource::RLIMIT_RTTIME, 5000, RLIM_INFINITY)?)
            })
        };
        mark.apply(&mut cmd);
        let mut child = cmd.spawn().unwrap();
        let pid = Pid::from_raw(child.id() as i32);
        let text = std::fs::read_to_string(format!("/proc/{pid}/limits")).unwrap();
        let line = text
            .lines()
            .find(|l| l.starts_with("Max realtime timeout"))
            .unwrap();
        let fields: Vec<&str> = line.split_whitespace().collect();
        assert_eq!(fields[3..5], ["5000", &mark.value().to_string()], "{line}");
        child.kill().unwrap();
        child.wait().unwrap();
    }

    #[test]
    fn an_existing_limit_is_left_alone() {
        let outer = TreeMark::of(b"outer");
        let inner = TreeMark::of(b"inner");
        let mut cmd = Command::new("sleep");
        cmd.arg("30");
        outer.apply(&mut cmd);
        inner.apply(&mut cmd);
        let mut child = cmd.spawn().unwrap();
        let pid = Pid::from_raw(child.id() as i32);
        let deadline = std::time::Instant::now() + Duration::from_secs(5);
        while hard_rttime(pid).is_none() {
            assert!(std::time::Instant::now() < deadline, "never marked");
            std::thread::sleep(Duration::from_millis(5));
        }
        assert!(outer.carried_by(pid) && !inner.carried_by(pid));
        child.kill().unwrap();
        child.wait().unwrap();
    }
}
