//! The only module allowed to use `unsafe`: thin wrappers over system calls that `nix` does
//! not cover, or covers with an `unsafe` signature. Every block says why it is sound.
//!
//! Each function does one call and reports the errno as an `io::Error`; callers add the
//! context (which file, which pid) when they turn it into a [`crate::Error`].
//!
//! Two parts have files of their own, re-exported here: `listen` (the `execve` of a
//! socket-activated child, prepared before the fork) and `caps` (the capability calls).

use std::io;
use std::os::fd::{AsRawFd, BorrowedFd, FromRawFd, OwnedFd, RawFd};

use nix::sys::signal::{self, SigHandler, SigSet, SigmaskHow, Signal};
use nix::unistd::{ForkResult, Pid};

mod caps;
mod listen;
mod spawn;

pub(crate) use caps::{cap_ambient_raise, capbset_drop, capset};
pub(crate) use listen::{ListenExec, pre_exec_listen};
pub(crate) use spawn::{
    Mode, clone_child, raw_setgid, raw_setgroups, raw_setresgid, raw_setresuid, raw_setuid,
};

fn check(ret: libc::c_long) -> io::Result<libc::c_long> {
    if ret < 0 {
        Err(io::Error::last_os_error())
    } else {
        Ok(ret)
    }
}

/// `pidfd_open(2)`: a file descriptor that refers to the process `pid` *itself*, not to
/// whatever process later gets the same number. Readable once the process has exited.
pub(crate) fn pidfd_open(pid: Pid) -> io::Result<OwnedFd> {
    // SAFETY: pidfd_open takes a pid and flags by value and touches no memory of ours.
    let fd = check(unsafe { libc::syscall(libc::SYS_pidfd_open, pid.as_raw(), 0) })?;
    // SAFETY: on success the kernel returned a new descriptor that nobody else owns
    // (pidfds are always close-on-exec).
    Ok(unsafe { OwnedFd::from_raw_fd(fd as RawFd) })
}

/// `pidfd_send_signal(2)`: signal exactly the process a pidfd refers to; fails with ESRCH
/// if it has exited, instead of hitting a process that reused its pid.
pub(crate) fn pidfd_send_signal(pidfd: BorrowedFd<'_>, sig: Signal) -> io::Result<()> {
    // SAFETY: the fd is borrowed and open for the duration of the call; a null siginfo
    // pointer is documented as "like kill(2)".
    check(unsafe {
        libc::syscall(
            libc::SYS_pidfd_send_signal,
            pidfd.as_raw_fd(),
            sig as libc::c_int,
            std::ptr::null::<libc::siginfo_t>(),
            0,
        )
    })?;
    Ok(())
}

/// Closes every descriptor above 2 except those in `keep` (sorted ascending), with
/// `close_range(2)`. Async-signal-safe: no allocation, usable in a `pre_exec` hook.
///
/// Used only where no live Rust object owns a closed descriptor: in a freshly detached,
/// single-threaded daemon, or between fork and exec.
pub(crate) fn close_all_but(keep: &[RawFd]) -> io::Result<()> {
    let mut first: u32 = 3;
    for &fd in keep.iter().filter(|&&fd| fd > 2) {
        let fd = fd as u32;
        if fd > first {
            close_range(first, fd - 1)?;
        }
        first = first.max(fd + 1);
    }
    close_range(first, u32::MAX)
}

fn close_range(first: u32, last: u32) -> io::Result<()> {
    // SAFETY: close_range only closes descriptors; `close_all_but` documents that no live
    // Rust object owns a descriptor in the range.
    check(unsafe { libc::syscall(libc::SYS_close_range, first, last, 0) })?;
    Ok(())
}

/// Takes ownership of a descriptor inherited across `exec` by number, after checking that
/// it is open. Sets close-on-exec on it again.
pub(crate) fn adopt_inherited_fd(fd: RawFd) -> io::Result<OwnedFd> {
    // SAFETY: F_GETFD reads the flags of a descriptor number; no memory is touched.
    check(unsafe { libc::fcntl(fd, libc::F_GETFD) } as libc::c_long)?;
    // SAFETY: as above, F_SETFD only sets flags.
    check(unsafe { libc::fcntl(fd, libc::F_SETFD, libc::FD_CLOEXEC) } as libc::c_long)?;
    // SAFETY: the descriptor is open and was handed over to this process by its re-exec
    // launcher (the hand-over memfd, found by its name, or the pid file the hand-over
    // names); the hand-over is read once and its memfd closed then, so nothing else in
    // the process claims either.
    Ok(unsafe { OwnedFd::from_raw_fd(fd) })
}

/// The inherited memfd named `name` (`/memfd:NAME` in `/proc/self/fd`), if this process
/// has one open, taken over with [`adopt_inherited_fd`]. `None` too when `/proc/self/fd`
/// cannot be read (re-exec mode, the only user, needs `/proc/self/exe` anyway).
pub(crate) fn take_inherited_memfd(name: &str) -> Option<OwnedFd> {
    let want = std::path::PathBuf::from(format!("/memfd:{name} (deleted)"));
    let fd = std::fs::read_dir("/proc/self/fd")
        .ok()?
        .filter_map(|e| e.ok())
        .find_map(|e| {
            let fd: RawFd = e.file_name().to_str()?.parse().ok()?;
            (std::fs::read_link(e.path()).ok()? == want).then_some(fd)
        })?;
    adopt_inherited_fd(fd).ok()
}

/// The parent's side of [`fork`].
pub(crate) enum Forked {
    /// We are the parent; this is the child's pid.
    Parent(Pid),
    /// We are the child.
    Child,
}

/// `fork(2)`, for a process that runs a single thread.
///
/// Checks that precondition itself and fails, naming the thread count, otherwise (callers
/// refuse earlier with a clearer `ErrorKind::Threaded`). With one thread the child is an
/// exact copy with no lock held by a vanished thread, and may run any code, not only
/// async-signal-safe calls.
pub(crate) fn fork_single_threaded() -> io::Result<Forked> {
    refuse_threads("fork")?;
    // SAFETY: this process runs one thread (checked just above; only this thread could
    // start another), which is the condition under which everything is safe to call in
    // the child.
    match unsafe { nix::unistd::fork() } {
        Ok(ForkResult::Parent { child }) => Ok(Forked::Parent(child)),
        Ok(ForkResult::Child) => Ok(Forked::Child),
        Err(e) => Err(e.into()),
    }
}

/// `waitid(P_ALL, WEXITED | WNOHANG | WNOWAIT)`: the pid of a child that has exited and is
/// not reaped yet, leaving it unreaped; `None` if no child has exited (`ECHILD`, no child
/// at all, counts as none). Only the pid is read, so a child killed by a signal nix has no
/// name for (a real-time one) is reported like any other.
pub(crate) fn peek_exited_child() -> io::Result<Option<Pid>> {
    let flags = libc::WEXITED | libc::WNOHANG | libc::WNOWAIT | libc::__WALL;
    waitid(libc::P_ALL, 0, flags)
}

/// `waitid(P_PID, pid, WEXITED | WNOHANG)`: reaps the child `pid` if it has exited; true if
/// it was reaped. Its status is not read.
pub(crate) fn reap_exited_child(pid: Pid) -> io::Result<bool> {
    let flags = libc::WEXITED | libc::WNOHANG | libc::__WALL;
    Ok(waitid(libc::P_PID, pid.as_raw() as libc::id_t, flags)?.is_some())
}

fn waitid(idtype: libc::idtype_t, id: libc::id_t, flags: libc::c_int) -> io::Result<Option<Pid>> {
    // SAFETY: siginfo_t is plain data for which all-zero bytes are a valid value; with
    // WNOHANG the kernel leaves si_pid at 0 when no child has exited (as POSIX asks callers
    // to check), which is why it is zeroed first.
    let mut info: libc::siginfo_t = unsafe { std::mem::zeroed() };
    loop {
        // SAFETY: `info` is a valid, writable siginfo_t that outlives the call.
        let ret = unsafe { libc::waitid(idtype, id, &mut info, flags) };
        if ret == 0 {
            break;
        }
        match io::Error::last_os_error() {
            e if e.raw_os_error() == Some(libc::EINTR) => continue,
            e if e.raw_os_error() == Some(libc::ECHILD) => return Ok(None),
            e => return Err(e),
        }
    }
    // SAFETY: after a successful waitid for WEXITED the kernel filled in the SIGCHLD
    // fields of the union (or left si_pid zero), which is what si_pid reads.
    let pid = unsafe { info.si_pid() };
    Ok((pid != 0).then(|| Pid::from_raw(pid)))
}

/// Sets `sig` to "ignore". No handler code is installed, so there is nothing to be unsound.
pub(crate) fn ignore_signal(sig: Signal) -> io::Result<()> {
    // SAFETY: SIG_IGN runs no code in this process; the previous handler is not returned
    // to anyone who could call it.
    unsafe { nix::sys::signal::signal(sig, nix::sys::signal::SigHandler::SigIgn) }?;
    Ok(())
}

/// `_exit(2)`: leave at once without running atexit handlers or flushing stdio buffers
/// that the parent will flush too. Used by the intermediate process of a double fork.
pub(crate) fn exit_immediately(code: i32) -> ! {
    // SAFETY: _exit is async-signal-safe and takes only an integer.
    unsafe { libc::_exit(code) }
}

/// Resets every catchable signal to its default action and unblocks all signals, so the
/// daemon does not inherit a `nohup`-style ignored SIGHUP or a blocked mask.
///
/// SIGPIPE is set to "ignore" rather than default, because that is the state the Rust
/// runtime establishes for every Rust program before `main` (writes to a closed pipe return
/// `EPIPE` instead of killing the process).
///
/// Pass `ignore_sigpipe = false` before an `exec`, where the new program's runtime decides.
/// Async-signal-safe (`sigaction` and `sigprocmask` only).
pub(crate) fn reset_signals(ignore_sigpipe: bool) -> io::Result<()> {
    for sig in Signal::iterator() {
        if matches!(sig, Signal::SIGKILL | Signal::SIGSTOP) {
            continue;
        }
        let handler = if ignore_sigpipe && sig == Signal::SIGPIPE {
            SigHandler::SigIgn
        } else {
            SigHandler::SigDfl
        };
        // SAFETY: installing SIG_DFL / SIG_IGN runs no code of ours in signal context.
        unsafe { signal::signal(sig, handler) }?;
    }
    signal::sigprocmask(SigmaskHow::SIG_SETMASK, Some(&SigSet::empty()), None)?;
    Ok(())
}

/// Sets every real-time signal (32 to 64) to its default action, with the raw system call:
/// glibc's `sigaction` refuses 32 and 33, which it uses itself. For a child just before
/// `exec` only, where a handler would be reset anyway and what counts is that none stays
/// *ignored* (a supervisor started with one ignored would pass it on; systemd resets them
/// all for its services). Async-signal-safe: `rt_sigaction` only.
pub(crate) fn reset_realtime_signals_before_exec() {
    /// The kernel's `struct sigaction` on Linux: handler, flags, restorer, mask.
    #[repr(C)]
    struct KernelSigaction {
        handler: usize,
        flags: libc::c_ulong,
        restorer: usize,
        mask: u64,
    }
    let default = KernelSigaction {
        handler: libc::SIG_DFL,
        flags: 0,
        restorer: 0,
        mask: 0,
    };
    for sig in 32..=64 {
        // SAFETY: `default` is a valid kernel sigaction for the call, of the size of the
        // kernel's signal mask (8 bytes); the old action is not asked for.
        unsafe {
            libc::syscall(
                libc::SYS_rt_sigaction,
                sig,
                &default as *const KernelSigaction,
                std::ptr::null_mut::<KernelSigaction>(),
                8usize,
            )
        };
    }
}

/// Removes a variable from this process's environment, if the process runs one thread;
/// returns whether it did.
///
/// With more threads it is left alone: another thread may read the environment through
/// libc (`getenv` in a C library, DNS resolution, time zones), which `remove_var` would
/// race. The check is sound: only this thread could start another in between.
pub(crate) fn remove_env_if_single_threaded(key: &str) -> io::Result<bool> {
    if thread_count()? > 1 {
        return Ok(false);
    }
    // SAFETY: this process runs one thread (checked above), so no other thread can read
    // the environment while it changes.
    unsafe { std::env::remove_var(key) };
    Ok(true)
}

/// Clears `FD_CLOEXEC` on a descriptor, so it survives the next `exec`. Async-signal-safe:
/// meant for a `pre_exec` hook, on a descriptor opened before the fork.
pub(crate) fn clear_cloexec(fd: RawFd) -> io::Result<()> {
    // SAFETY: fcntl with F_SETFD only changes the flags of a descriptor number; no memory.
    check(unsafe { libc::fcntl(fd, libc::F_SETFD, 0) } as libc::c_long)?;
    Ok(())
}

/// Whether `FD_CLOEXEC` is set on a descriptor.
pub(crate) fn is_cloexec(fd: RawFd) -> io::Result<bool> {
    // SAFETY: F_GETFD reads the flags of a descriptor number; no memory is touched.
    let flags = check(unsafe { libc::fcntl(fd, libc::F_GETFD) } as libc::c_long)?;
    Ok(flags & libc::FD_CLOEXEC as libc::c_long != 0)
}

/// Sets `FD_CLOEXEC` on a descriptor.
pub(crate) fn set_cloexec(fd: RawFd) -> io::Result<()> {
    // SAFETY: fcntl with F_SETFD only changes the flags of a descriptor number; no memory.
    check(unsafe { libc::fcntl(fd, libc::F_SETFD, libc::FD_CLOEXEC) } as libc::c_long)?;
    Ok(())
}

/// Runs `hook` in the child between `fork` and `exec` of `cmd`.
///
/// # Safety
///
/// The hook must call only async-signal-safe functions on data prepared before the fork
/// (no allocation, no lock): the parent may run other threads whose locks are frozen in
/// the child. The caller's `// SAFETY:` comment lists the calls its hook makes.
pub(crate) unsafe fn pre_exec<F>(cmd: &mut std::process::Command, hook: F)
where
    F: FnMut() -> io::Result<()> + Send + Sync + 'static,
{
    use std::os::unix::process::CommandExt;
    // SAFETY: the caller guarantees the hook is async-signal-safe (this function's
    // contract), which is what `CommandExt::pre_exec` requires.
    unsafe {
        cmd.pre_exec(hook);
    }
}

/// In a `pre_exec` hook: fork once more and let the intermediate process write the new
/// child's pid to `pid_pipe` and `_exit(0)`; the grandchild returns and goes on to `exec`.
///
/// Async-signal-safe: `fork`, `write` and `_exit` only.
///
/// # Safety
///
/// Only in a `pre_exec` hook (a freshly forked, single-threaded child about to `exec`):
/// elsewhere the raw `fork` would copy a process whose other threads hold locks, and the
/// grandchild would go on running arbitrary code.
pub(crate) unsafe fn fork_in_pre_exec(pid_pipe: RawFd) -> io::Result<()> {
    // SAFETY: the caller runs us in a pre_exec hook (this function's contract): a
    // single-threaded freshly forked child, where a raw `fork` is async-signal-safe; we
    // call only `write` and `_exit` in the parent branch.
    let pid = unsafe { libc::fork() };
    match pid {
        -1 => Err(io::Error::last_os_error()),
        0 => Ok(()),
        child => {
            let bytes = child.to_ne_bytes();
            // SAFETY: `bytes` lives on this stack frame for the duration of the call.
            let n = unsafe { libc::write(pid_pipe, bytes.as_ptr().cast(), bytes.len()) };
            exit_immediately(if n == bytes.len() as isize { 0 } else { 1 })
        }
    }
}

/// `clone3`'s flag (a 64-bit one, which libc's `c_int` constant cannot hold).
const CLONE_INTO_CGROUP: u64 = 0x2_0000_0000;

/// `struct clone_args` of `clone3(2)`, up to `cgroup` (`CLONE_ARGS_SIZE_VER2`).
#[repr(C)]
struct CloneArgs {
    flags: u64,
    pidfd: u64,
    child_tid: u64,
    parent_tid: u64,
    exit_signal: u64,
    stack: u64,
    stack_size: u64,
    tls: u64,
    set_tid: u64,
    set_tid_size: u64,
    cgroup: u64,
}

/// In a `pre_exec` hook: `clone3(CLONE_PARENT | CLONE_INTO_CGROUP)`, a copy of this child
/// that starts in the cgroup v2 directory `cgroup` and is a child of *our parent* (the
/// spawner). Returns `Ok(None)` in the copy, which goes on to `exec`, and `Ok(Some(pid))`
/// in this process, which must report the copy's pid and `_exit`. Entering a group at
/// clone takes the kernel's cgroup lock for reading only, where a write of `cgroup.procs`
/// takes it for writing and may wait for an RCU grace period (6–26 ms measured here after
/// an idle second, 0.8 ms for the clone). An error (`ENOSYS` before Linux 5.7, …) leaves
/// nothing changed.
///
/// # Safety
///
/// Only in a `pre_exec` hook (a freshly forked, single-threaded child about to `exec`),
/// as for [`fork_in_pre_exec`]; the copy must make only async-signal-safe calls until
/// `exec` (it does not run the C library's fork handlers, and its cached thread id is
/// the parent's: nothing before `exec` may rely on it).
pub(crate) unsafe fn clone_into_cgroup_in_pre_exec(cgroup: RawFd) -> io::Result<Option<i32>> {
    let args = CloneArgs {
        flags: (libc::CLONE_PARENT as u64) | CLONE_INTO_CGROUP,
        pidfd: 0,
        child_tid: 0,
        parent_tid: 0,
        // Must be 0 with CLONE_PARENT: the copy inherits this process's exit signal
        // (SIGCHLD, as std forked it).
        exit_signal: 0,
        stack: 0,
        stack_size: 0,
        tls: 0,
        set_tid: 0,
        set_tid_size: 0,
        cgroup: cgroup as u64,
    };
    // SAFETY: `args` is a valid clone_args of the size passed, alive for the call; without
    // CLONE_VM the copy gets its own copy of this address space, like fork, and the
    // caller's contract keeps it to async-signal-safe calls until exec.
    let pid = unsafe {
        libc::syscall(
            libc::SYS_clone3,
            &args as *const CloneArgs,
            std::mem::size_of::<CloneArgs>(),
        )
    };
    match pid {
        -1 => Err(io::Error::last_os_error()),
        0 => Ok(None),
        child => Ok(Some(child as i32)),
    }
}

/// Takes ownership of a descriptor the kernel just installed for us (`SCM_RIGHTS`).
pub(crate) fn own_received_fd(fd: RawFd) -> OwnedFd {
    // SAFETY: descriptors received with SCM_RIGHTS are new entries in our table that no
    // other object refers to; owning them makes sure they are closed unless kept.
    unsafe { OwnedFd::from_raw_fd(fd) }
}

/// `dup2(2)` onto one of the standard descriptors 0–2, which std's stdin/stdout/stderr use
/// by number and never close: replacing them is how a daemon redirects its streams.
pub(crate) fn dup_onto(fd: RawFd, target: RawFd) -> io::Result<()> {
    debug_assert!((0..=2).contains(&target));
    // SAFETY: dup2 atomically replaces `target`; descriptors 0–2 are owned by no Rust
    // object (std refers to them by number), so nothing is closed under an owner.
    check(unsafe { libc::dup2(fd, target) } as libc::c_long)?;
    Ok(())
}

/// Takes ownership of a descriptor passed by a service manager (`LISTEN_FDS`), after
/// checking that it is open, and sets close-on-exec on it.
pub(crate) fn adopt_listen_fd(fd: RawFd) -> io::Result<OwnedFd> {
    // SAFETY: F_GETFD / F_SETFD read and set the flags of a descriptor number; no memory.
    check(unsafe { libc::fcntl(fd, libc::F_GETFD) } as libc::c_long)?;
    // SAFETY: as above.
    check(unsafe { libc::fcntl(fd, libc::F_SETFD, libc::FD_CLOEXEC) } as libc::c_long)?;
    // SAFETY: the descriptor is open and was handed to this process by its manager;
    // `Activation::from_env` claims the LISTEN_FDS range once per process (an atomic flag),
    // so no other owner of the same number exists in safe code.
    Ok(unsafe { OwnedFd::from_raw_fd(fd) })
}

/// Installs a handler that ends the process at once with status `128 + sig` when `sig`
/// arrives while both `armed` and `seen` are set (the forced exit on a second shutdown
/// signal; `seen` is set by a handler registered after this one, so the first delivery
/// only records). Async-signal-safe: two atomic loads and `_exit`.
pub(crate) fn register_exit_if(
    sig: Signal,
    armed: std::sync::Arc<std::sync::atomic::AtomicBool>,
    seen: std::sync::Arc<std::sync::atomic::AtomicBool>,
) -> io::Result<signal_hook::SigId> {
    use std::sync::atomic::Ordering;
    let code = 128 + sig as i32;
    // SAFETY: the handler only loads two atomics (owned by the closure, so alive as long
    // as the handler) and calls `_exit`; it allocates nothing and takes no lock, so it is
    // async-signal-safe as `register` requires.
    unsafe {
        signal_hook::low_level::register(sig as i32, move || {
            if armed.load(Ordering::SeqCst) && seen.load(Ordering::SeqCst) {
                signal_hook::low_level::exit(code);
            }
        })
    }
}

/// Drops this process's page-table entries for the executable's code and read-only data
/// (`MADV_DONTNEED` on each mapping of `/proc/self/exe` that is private, not writable, and
/// holds no page of its own: `r-xp` code, and `r--p` data with `Anonymous: 0`, which
/// leaves out the relocated data that the loader wrote and then made read-only); returns
/// the bytes of address space advised. The pages stay in the page cache; the next access
/// to one faults it back in from there (or from the file, with the usual read-ahead: not
/// `MADV_RANDOM`, which would map one page per fault instead of the 64 KiB around it but,
/// once the page cache has dropped the file, read the code back one page at a time).
/// Mappings are found in `smaps` (the text of `/proc/self/smaps`) by the device and inode
/// of `/proc/self/exe`, so a binary replaced or deleted on disk is still matched.
pub(crate) fn drop_executable_code_pages(smaps: &str) -> io::Result<usize> {
    use std::os::unix::fs::MetadataExt;
    let exe = std::fs::metadata("/proc/self/exe")?;
    let (major, minor) = (libc::major(exe.dev()), libc::minor(exe.dev()));
    let mut advised = 0;
    for (header, fields) in smaps_entries(smaps) {
        // start-end perms offset dev inode path
        let mut f = header.split_ascii_whitespace();
        let (Some(range), Some(perms), Some(_), Some(dev), Some(inode)) =
            (f.next(), f.next(), f.next(), f.next(), f.next())
        else {
            continue;
        };
        let same_file = inode.parse::<u64>() == Ok(exe.ino())
            && dev.split_once(':').is_some_and(|(a, b)| {
                u32::from_str_radix(a, 16) == Ok(major) && u32::from_str_radix(b, 16) == Ok(minor)
            });
        let own_pages = fields
            .iter()
            .find_map(|l| l.strip_prefix("Anonymous:"))
            .is_none_or(|kb| kb.trim() != "0 kB");
        if !same_file || !(perms == "r-xp" || (perms == "r--p" && !own_pages)) {
            continue;
        }
        let Some((start, end)) = range.split_once('-') else {
            continue;
        };
        let (Ok(start), Ok(end)) = (
            usize::from_str_radix(start, 16),
            usize::from_str_radix(end, 16),
        ) else {
            continue;
        };
        let addr = start as *mut libc::c_void;
        // SAFETY: [start, end) is a private mapping of the executable that is not
        // writable and holds no anonymous page (code: no copy-on-write copies, as it was
        // never writable — only a debugger's breakpoints could be, and they would be
        // dropped; data: `Anonymous: 0` above, and a read-only mapping gets no new one),
        // so dropping its page-table entries loses nothing: every page reads back
        // identical from the file. The code running here faults its own pages back in.
        let ret = unsafe { libc::madvise(addr, end - start, libc::MADV_DONTNEED) };
        if ret != 0 {
            return Err(io::Error::last_os_error());
        }
        advised += end - start;
    }
    Ok(advised)
}

/// The mappings of `/proc/PID/smaps` text: each header line and the field lines after it.
fn smaps_entries(smaps: &str) -> Vec<(&str, Vec<&str>)> {
    let mut entries: Vec<(&str, Vec<&str>)> = Vec::new();
    for line in smaps.lines() {
        let first = line.split_ascii_whitespace().next().unwrap_or("");
        if first.contains('-') && !first.ends_with(':') {
            entries.push((line, Vec::new()));
        } else if let Some((_, fields)) = entries.last_mut() {
            fields.push(line);
        }
    }
    entries
}

/// Drops the pages of the main thread's stack below the frames live now, less a margin:
/// a start-up's deep calls (argument parsing, a config file) dirtied them once and
/// nothing reads them again. Memory below the stack pointer holds nothing live (the
/// x86-64 ABI's 128-byte red zone, and the frames of the `madvise` call itself, are
/// inside the margin); a page touched again later is a fresh zero page, as it was before
/// the start-up. Returns the bytes advised: 0 on any thread but the main one (whose
/// stack is the `[stack]` of `smaps`, the text of `/proc/self/smaps`).
#[inline(never)]
pub(crate) fn drop_unused_stack(smaps: &str) -> io::Result<usize> {
    /// What stays below the frame of this function: far more than the calls below it.
    const MARGIN: usize = 16 * 1024;
    if nix::unistd::gettid() != nix::unistd::getpid() {
        return Ok(0);
    }
    let here = 0u8;
    let sp = std::hint::black_box(&here) as *const u8 as usize;
    let page = nix::unistd::sysconf(nix::unistd::SysconfVar::PAGE_SIZE)
        .ok()
        .flatten()
        .map_or(4096, |p| p as usize);
    let stack = smaps_entries(smaps)
        .into_iter()
        .map(|(header, _)| header)
        .filter(|l| l.ends_with("[stack]"))
        .find_map(|line| {
            let (start, end) = line.split_ascii_whitespace().next()?.split_once('-')?;
            let (start, end) = (
                usize::from_str_radix(start, 16).ok()?,
                usize::from_str_radix(end, 16).ok()?,
            );
            (start <= sp && sp < end).then_some(start)
        });
    let Some(start) = stack else {
        return Ok(0);
    };
    let below = (sp & !(page - 1)).saturating_sub(MARGIN);
    if below <= start {
        return Ok(0);
    }
    // SAFETY: [start, below) is the part of this thread's own stack mapping at least
    // MARGIN bytes below the frame running now (and below every frame of the calls still
    // to come in this function, which are far smaller): the stack grows down, so no live
    // frame and no red zone is there, and nothing holds a reference into it. Dropping
    // the pages of a private anonymous mapping makes them read as zeros next time, which
    // is what an untouched stack page reads as.
    let ret = unsafe {
        libc::madvise(
            start as *mut libc::c_void,
            below - start,
            libc::MADV_DONTNEED,
        )
    };
    if ret != 0 {
        return Err(io::Error::last_os_error());
    }
    Ok(below - start)
}

/// Makes every thread allocate from the one main heap (glibc's `M_ARENA_MAX` = 1) instead
/// of an arena of its own per thread, and blocks of `LARGE` bytes or more always in
/// mappings of their own (`M_MMAP_THRESHOLD` fixed at its default, which glibc otherwise
/// raises to the size of each such block freed); false where there are no such settings.
pub(crate) fn one_heap() -> bool {
    #[cfg(all(target_os = "linux", target_env = "gnu"))]
    {
        const LARGE: libc::c_int = 128 * 1024;
        // SAFETY: mallopt has no preconditions; it takes the allocator's own lock.
        unsafe {
            libc::mallopt(libc::M_ARENA_MAX, 1) == 1
                && libc::mallopt(libc::M_MMAP_THRESHOLD, LARGE) == 1
        }
    }
    #[cfg(not(all(target_os = "linux", target_env = "gnu")))]
    {
        false
    }
}

/// Returns the allocator's free heap memory to the kernel (glibc's `malloc_trim(0)`: the
/// top of the heap and whole free pages inside it); false where there is no such call.
pub(crate) fn trim_heap() -> bool {
    #[cfg(all(target_os = "linux", target_env = "gnu"))]
    {
        // SAFETY: malloc_trim has no preconditions; it takes the allocator's own locks.
        unsafe { libc::malloc_trim(0) };
        true
    }
    #[cfg(not(all(target_os = "linux", target_env = "gnu")))]
    {
        false
    }
}

/// The number of threads this process runs, from `/proc/self/task`.
pub(crate) fn thread_count() -> io::Result<usize> {
    Ok(std::fs::read_dir("/proc/self/task")?.count())
}

/// Fails (`io::ErrorKind::Other`, naming `what` and the count) unless this process runs
/// exactly one thread: the precondition of [`fork_single_threaded`].
fn refuse_threads(what: &str) -> io::Result<()> {
    match thread_count()? {
        1 => Ok(()),
        n => Err(io::Error::other(format!(
            "{what}: refused: this process runs {n} threads"
        ))),
    }
}

/// `getxattr(2)` of an extended attribute of `path` (following symlinks), up to 256 bytes:
/// its value, or the errno (`ENODATA` when it is not set).
pub(crate) fn getxattr(path: &std::path::Path, name: &str) -> io::Result<Vec<u8>> {
    use std::os::unix::ffi::OsStrExt as _;
    let path = std::ffi::CString::new(path.as_os_str().as_bytes())?;
    let name = std::ffi::CString::new(name)?;
    let mut value = vec![0u8; 256];
    // SAFETY: both names are NUL-terminated strings that outlive the call; the kernel
    // writes at most `value.len()` bytes into `value`.
    #[allow(unsafe_code)]
    let n = unsafe {
        libc::getxattr(
            path.as_ptr(),
            name.as_ptr(),
            value.as_mut_ptr().cast(),
            value.len(),
        )
    };
    value.truncate(usize::try_from(check(n as libc::c_long)?).unwrap_or(0));
    Ok(value)
}

#[cfg(test)]
mod tests {
    use super::*;

    /// Regression: `fork_single_threaded` trusted its callers to have counted the threads.
    #[test]
    fn fork_single_threaded_refuses_a_threaded_process() {
        let (stop, parked) = std::sync::mpsc::channel::<()>();
        let other = std::thread::spawn(move || parked.recv());
        let forked = fork_single_threaded();
        drop(stop);
        let _ = other.join();
        match forked {
            Err(e) => assert!(e.to_string().contains("threads"), "{e}"),
            Ok(Forked::Child) => exit_immediately(0),
            Ok(Forked::Parent(child)) => {
                let _ = nix::sys::wait::waitpid(child, None);
                panic!("forked a threaded process");
            }
        }
    }
}
