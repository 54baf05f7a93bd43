//! Creating a child process without `fork`'s copy of the address space: the kernel half of
//! [`crate::launch`].
//!
//! On x86-64 the child is made with `CLONE_VM | CLONE_VFORK` (what `vfork(2)` and glibc's
//! `posix_spawn` do): it runs on a stack of its own in the parent's memory, the calling
//! thread waits until the child has called `execve` or exited, and no page table is
//! copied. With `CLONE_INTO_CGROUP` (`clone3`, Linux 5.7) it is born in its cgroup; with
//! `CLONE_PIDFD` the kernel hands back its pidfd. Where `clone3` is refused (`ENOSYS` under
//! a container runtime's seccomp filter, `EINVAL` before 5.7, or an error of the group
//! itself) the older `clone` makes the same child outside the group, and the caller's
//! child body enters it by writing `cgroup.procs`.
//!
//! Elsewhere (other architectures: not compiled or tested here, see docs/platforms.md)
//! the same calls are made without `CLONE_VM | CLONE_VFORK`: a `fork`-like copy that
//! returns from the system call in both processes.
//!
//! What the child body may do is stricter than in a `pre_exec` hook, because it shares
//! the parent's memory while the parent's *other* threads keep running: only system
//! calls on data prepared before the clone, no allocation or lock, nothing dropped or
//! moved out, and no C library call that consults its thread list — `setuid`, `setgid`
//! and `setgroups` in glibc, in a process with threads, take the thread-list lock and
//! mark and signal every thread in the list (the parent's, here) before the call, so the
//! child uses their raw system calls ([`raw_setresuid`] and the others below).
//! The parent blocks every signal around the clone, so no handler of the parent runs in
//! the child before the body has reset them.

use std::io;
use std::os::fd::{FromRawFd, OwnedFd, RawFd};

use super::{CLONE_INTO_CGROUP, CloneArgs, check};

/// A child made by [`clone_child`].
pub(crate) struct Cloned {
    pub(crate) pid: i32,
    pub(crate) pidfd: OwnedFd,
}

/// Which way [`clone_child`] makes the child: sharing the parent's memory until `execve`
/// (x86-64), or a copy of it. A test runs both on x86-64.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub(crate) enum Mode {
    Shared,
    Copied,
}

impl Mode {
    pub(crate) const DEFAULT: Mode = if cfg!(target_arch = "x86_64") {
        Mode::Shared
    } else {
        Mode::Copied
    };

    /// Whether a child made in this mode writes the parent's memory: [`Mode::Shared`] on
    /// x86-64 (elsewhere [`clone_child`] makes a copy whatever the mode).
    pub(crate) fn shares_memory(self) -> bool {
        self == Mode::Shared && cfg!(target_arch = "x86_64")
    }
}

/// The size of the child's stack in [`Mode::Shared`], with one guard page below it. The
/// child body makes system calls through `nix` and formats nothing; glibc's `posix_spawn`
/// gives its child 32 KiB plus the size of the arguments.
const STACK: usize = 256 * 1024;

/// The guard page below the stack.
const GUARD: usize = 4096;

/// Makes a child that runs `body` and exits with what it returns, unless `body` ends in
/// `execve`; with `cgroup`, a child born in that cgroup v2 directory if `clone3` can do
/// it. `body` is told whether it was (`false`: it must enter the group itself). In
/// [`Mode::Shared`] this returns once the child has called `execve` or exited; in
/// [`Mode::Copied`] at once, and the caller waits on its own report pipe (see
/// `crate::launch`).
///
/// # Safety
///
/// `body` runs in the child; it must keep to the rules of the [module docs](self): system
/// calls only, on data prepared before, no allocation, no lock, no drop, never unwind. In
/// [`Mode::Shared`] everything it writes is written in the parent's memory.
pub(crate) unsafe fn clone_child(
    mode: Mode,
    cgroup: Option<RawFd>,
    body: &mut dyn FnMut(bool) -> i32,
) -> io::Result<Cloned> {
    // Every signal blocked in this thread while the child may run a handler of ours; the
    // body resets dispositions and mask before `execve`.
    let mut old = std::mem::MaybeUninit::<libc::sigset_t>::uninit();
    let mut all = std::mem::MaybeUninit::<libc::sigset_t>::uninit();
    // SAFETY: both sets are written by sigfillset / pthread_sigmask before they are read.
    unsafe {
        libc::sigfillset(all.as_mut_ptr());
        libc::pthread_sigmask(libc::SIG_SETMASK, all.as_ptr(), old.as_mut_ptr());
    }
    // SAFETY: the caller keeps `body` to the module's rules (this function's contract).
    let made = unsafe { clone_masked(mode, cgroup, body) };
    // SAFETY: `old` was filled by the call above.
    unsafe { libc::pthread_sigmask(libc::SIG_SETMASK, old.as_ptr(), std::ptr::null_mut()) };
    made
}

unsafe fn clone_masked(
    mode: Mode,
    cgroup: Option<RawFd>,
    body: &mut dyn FnMut(bool) -> i32,
) -> io::Result<Cloned> {
    let stack = match mode {
        Mode::Shared => Some(Stack::new()?),
        Mode::Copied => None,
    };
    let mut pidfd: RawFd = -1;
    let shared = match mode {
        Mode::Shared => (libc::CLONE_VM | libc::CLONE_VFORK) as u64,
        Mode::Copied => 0,
    };
    if let Some(group) = cgroup {
        let args = CloneArgs {
            flags: shared | libc::CLONE_PIDFD as u64 | CLONE_INTO_CGROUP,
            pidfd: &mut pidfd as *mut RawFd as u64,
            child_tid: 0,
            parent_tid: 0,
            exit_signal: libc::SIGCHLD as u64,
            stack: stack.as_ref().map_or(0, |s| s.base() as u64),
            stack_size: stack.as_ref().map_or(0, |_| STACK as u64),
            tls: 0,
            set_tid: 0,
            set_tid_size: 0,
            cgroup: group as u64,
        };
        let ptr = &args as *const CloneArgs as usize;
        let size = std::mem::size_of::<CloneArgs>();
        let mut entry = Entry {
            body: &mut *body,
            in_cgroup: true,
        };
        // SAFETY: `args` (and `pidfd`, which it points to) outlive the call; the child
        // runs `body` on `stack` or in a copy, as `invoke` explains.
        let ret = unsafe { invoke(libc::SYS_clone3, [ptr, size, 0, 0, 0], &mut entry, mode) };
        if let Ok(pid) = ret {
            // SAFETY: CLONE_PIDFD put a new descriptor (close-on-exec) that nobody owns
            // into `pidfd`.
            let pidfd = unsafe { OwnedFd::from_raw_fd(pidfd) };
            return Ok(Cloned { pid, pidfd });
        }
        // Refused: the older call, outside the group (the body enters it).
    }
    let flags = shared as usize | libc::CLONE_PIDFD as usize | libc::SIGCHLD as usize;
    let top = stack.as_ref().map_or(0, |s| s.base() as usize + STACK);
    // clone(flags, stack, parent_tid (the pidfd with CLONE_PIDFD), child_tid, tls) on
    // x86-64; aarch64 swaps the last two, which are 0 here. (s390 swaps the first two: not
    // handled.)
    let args = [flags, top, &mut pidfd as *mut RawFd as usize, 0, 0];
    let mut entry = Entry {
        body,
        in_cgroup: false,
    };
    // SAFETY: as above; `pidfd` outlives the call.
    let pid = unsafe { invoke(libc::SYS_clone, args, &mut entry, mode) }?;
    // SAFETY: as above.
    let pidfd = unsafe { OwnedFd::from_raw_fd(pidfd) };
    Ok(Cloned { pid, pidfd })
}

/// The child's stack in [`Mode::Shared`]: `STACK` bytes above a `GUARD` page.
struct Stack {
    map: *mut libc::c_void,
}

impl Stack {
    fn new() -> io::Result<Stack> {
        // SAFETY: a new private anonymous mapping; no memory of ours is touched.
        let map = unsafe {
            libc::mmap(
                std::ptr::null_mut(),
                GUARD + STACK,
                libc::PROT_READ | libc::PROT_WRITE,
                libc::MAP_PRIVATE | libc::MAP_ANONYMOUS | libc::MAP_STACK,
                -1,
                0,
            )
        };
        if map == libc::MAP_FAILED {
            return Err(io::Error::last_os_error());
        }
        let stack = Stack { map };
        // SAFETY: the first page of the mapping made above becomes the guard.
        check(unsafe { libc::mprotect(map, GUARD, libc::PROT_NONE) } as libc::c_long)?;
        Ok(stack)
    }

    /// The lowest address of the stack proper, above the guard.
    fn base(&self) -> *mut u8 {
        // SAFETY: `GUARD` bytes into a mapping of `GUARD + STACK`.
        unsafe { self.map.cast::<u8>().add(GUARD) }
    }
}

impl Drop for Stack {
    fn drop(&mut self) {
        // SAFETY: the mapping made in `new`; the child that used it has exec'd or exited
        // (CLONE_VFORK returned), so nothing runs on it.
        unsafe { libc::munmap(self.map, GUARD + STACK) };
    }
}

/// What the child runs: the body given to [`clone_child`], told whether it was born in the
/// cgroup.
struct Entry<'a> {
    body: &'a mut dyn FnMut(bool) -> i32,
    in_cgroup: bool,
}

/// The child's entry in [`Mode::Shared`]: `arg` points at the [`Entry`].
extern "C" fn child_entry(arg: *mut libc::c_void) -> libc::c_int {
    // SAFETY: `arg` is the address of an `Entry` in `clone_masked`'s frame, alive while
    // the parent waits (CLONE_VFORK) for this child to exec or exit.
    let entry = unsafe { &mut *arg.cast::<Entry<'_>>() };
    (entry.body)(entry.in_cgroup)
}

/// Makes the system call `nr` with `args`, a clone: returns the child's pid in the
/// parent; the child runs `body` and exits with what it returns.
///
/// # Safety
///
/// `args` must make a valid `clone`/`clone3` call whose flags match `mode` (in
/// [`Mode::Shared`]: `CLONE_VM | CLONE_VFORK` with the stack of a live [`Stack`]).
#[cfg(target_arch = "x86_64")]
unsafe fn invoke(
    nr: libc::c_long,
    args: [usize; 5],
    entry: &mut Entry<'_>,
    mode: Mode,
) -> io::Result<i32> {
    if mode == Mode::Copied {
        // SAFETY: as `invoke_copied` requires (this function's contract).
        return unsafe { invoke_copied(nr, args, entry) };
    }
    let arg = entry as *mut Entry<'_> as *mut libc::c_void;
    let entry = child_entry as extern "C" fn(*mut libc::c_void) -> libc::c_int;
    let ret: libc::c_long;
    // SAFETY: the kernel starts the child with the registers of the parent except rax (0)
    // and rsp (the top of the new stack, 16-byte aligned as `call` requires). The child
    // never returns into Rust code of this frame: it calls `child_entry(arg)` (r12, r13
    // are preserved by `syscall`) and then `exit` with its result. The parent gets the
    // result in rax; `syscall` itself clobbers only rcx and r11.
    unsafe {
        std::arch::asm!(
            "syscall",
            "test rax, rax",
            "jnz 2f",
            "xor ebp, ebp",
            "mov rdi, r12",
            "call r13",
            "mov edi, eax",
            "mov eax, {exit}",
            "syscall",
            "ud2",
            "2:",
            exit = const libc::SYS_exit,
            inlateout("rax") nr => ret,
            in("rdi") args[0],
            in("rsi") args[1],
            in("rdx") args[2],
            in("r10") args[3],
            in("r8") args[4],
            in("r12") arg,
            in("r13") entry,
            lateout("rcx") _,
            lateout("r11") _,
        );
    }
    if ret < 0 {
        return Err(io::Error::from_raw_os_error(-ret as i32));
    }
    Ok(ret as i32)
}

#[cfg(not(target_arch = "x86_64"))]
unsafe fn invoke(
    nr: libc::c_long,
    args: [usize; 5],
    entry: &mut Entry<'_>,
    _mode: Mode,
) -> io::Result<i32> {
    // SAFETY: as `invoke_copied` requires; `Mode::DEFAULT` is `Copied` here.
    unsafe { invoke_copied(nr, args, entry) }
}

/// [`invoke`] without `CLONE_VM`: the call returns in both processes, as `fork` does.
///
/// # Safety
///
/// `args` must not ask for `CLONE_VM` (nor a stack).
unsafe fn invoke_copied(
    nr: libc::c_long,
    args: [usize; 5],
    entry: &mut Entry<'_>,
) -> io::Result<i32> {
    // SAFETY: without CLONE_VM the child has a copy of this address space and returns
    // here like a forked child; it runs `body` (system calls only, the caller's contract)
    // and exits without returning further.
    let ret = unsafe { libc::syscall(nr, args[0], args[1], args[2], args[3], args[4]) };
    match ret {
        -1 => Err(io::Error::last_os_error()),
        0 => {
            let code = (entry.body)(entry.in_cgroup);
            super::exit_immediately(code)
        }
        pid => Ok(pid as i32),
    }
}

/// `setresuid(2)` as a raw system call: for this thread only, without glibc's marking and
/// signalling of every thread in its list (which, in a child sharing the parent's memory,
/// are the parent's). In a single-threaded process the two are the same.
pub(crate) fn raw_setresuid(uid: u32) -> io::Result<()> {
    // SAFETY: the call takes ids by value.
    check(unsafe { libc::syscall(libc::SYS_setresuid, uid, uid, uid) })?;
    Ok(())
}

/// `setresgid(2)` as a raw system call (see [`raw_setresuid`]).
pub(crate) fn raw_setresgid(gid: u32) -> io::Result<()> {
    // SAFETY: the call takes ids by value.
    check(unsafe { libc::syscall(libc::SYS_setresgid, gid, gid, gid) })?;
    Ok(())
}

/// `setgroups(2)` as a raw system call (see [`raw_setresuid`]).
pub(crate) fn raw_setgroups(groups: &[nix::unistd::Gid]) -> io::Result<()> {
    // nix's `Gid` holds one `gid_t` and nothing else (nix's own setgroups relies on it).
    const _: () = assert!(size_of::<nix::unistd::Gid>() == size_of::<libc::gid_t>());
    let ptr = groups.as_ptr().cast::<libc::gid_t>();
    // SAFETY: the kernel reads `groups.len()` ids from the slice, alive for the call.
    check(unsafe { libc::syscall(libc::SYS_setgroups, groups.len(), ptr) })?;
    Ok(())
}

/// `setuid(2)` as a raw system call (see [`raw_setresuid`]).
pub(crate) fn raw_setuid(uid: u32) -> io::Result<()> {
    // SAFETY: the call takes the id by value.
    check(unsafe { libc::syscall(libc::SYS_setuid, uid) })?;
    Ok(())
}

/// `setgid(2)` as a raw system call (see [`raw_setresuid`]).
pub(crate) fn raw_setgid(gid: u32) -> io::Result<()> {
    // SAFETY: the call takes the id by value.
    check(unsafe { libc::syscall(libc::SYS_setgid, gid) })?;
    Ok(())
}

#[cfg(test)]
mod tests {
    use super::*;

    /// Clones a child in `mode` that sets `seen` (in its own memory, or ours) and exits
    /// with 7; returns how it exited and what `seen` reads here afterwards.
    fn run(mode: Mode) -> (i32, u32) {
        let mut seen = 0u32;
        let seen_at = &mut seen as *mut u32;
        let mut body = |in_cgroup: bool| {
            // SAFETY: `seen` outlives the child's run (vfork) or is copied (fork).
            unsafe { seen_at.write_volatile(if in_cgroup { 2 } else { 1 }) };
            7
        };
        // SAFETY: the body writes one integer and returns.
        let child = unsafe { clone_child(mode, None, &mut body) }.unwrap();
        let status = nix::sys::wait::waitpid(nix::unistd::Pid::from_raw(child.pid), None);
        let code = match status.unwrap() {
            nix::sys::wait::WaitStatus::Exited(_, code) => code,
            other => panic!("{other:?}"),
        };
        // SAFETY: the child has exited; nothing else writes `seen`.
        (code, unsafe { seen_at.read_volatile() })
    }

    #[test]
    fn a_shared_child_writes_the_parents_memory_and_a_copied_one_its_own() {
        if cfg!(target_arch = "x86_64") {
            assert_eq!(run(Mode::Shared), (7, 1));
        }
        assert_eq!(run(Mode::Copied), (7, 0));
    }
}
