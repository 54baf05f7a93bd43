//! The `execve` of a socket-activated child, prepared before the fork: descriptors moved
//! to 3, 4, … and `LISTEN_PID` / `WATCHDOG_PID` set to the child's own pid, in the child,
//! with async-signal-safe calls only.

use std::io;
use std::os::fd::{AsRawFd, OwnedFd, RawFd};

use super::{check, exit_immediately};

/// An `execve` prepared before the fork for a child that receives descriptors by socket
/// activation, or variables that must name its own pid: in the child, the descriptors are
/// moved to 3, 4, … with close-on-exec cleared, and each of `pid_vars` (`LISTEN_PID`,
/// `WATCHDOG_PID`) is set to the child's own pid, which exists only after the fork. Every
/// allocation happens in [`ListenExec::new`]; [`ListenExec::exec`] only calls `fcntl`,
/// `dup2`, `getpid`, `execve` and `_exit`, all async-signal-safe.
pub(crate) struct ListenExec {
    /// The program's path, or the paths to try in turn (a chrooted child's `PATH`).
    programs: Vec<std::ffi::CString>,
    _argv: Vec<std::ffi::CString>,
    _env: Vec<std::ffi::CString>,
    argv_ptrs: Vec<*const libc::c_char>,
    envp: Vec<*const libc::c_char>,
    /// Index in `envp` of the first `KEY=<pid>` entry, written in the child.
    pid_slot: usize,
    /// One `KEY=<pid>\0` buffer per pid variable, each holding its key already.
    pid_vars: Vec<([u8; 48], usize)>,
    fds: Vec<OwnedFd>,
    scratch: Vec<RawFd>,
}

// SAFETY: the raw pointers point into the heap buffers of `_argv` and `_env`, which the
// struct owns and never changes after `new`; they are only dereferenced by `execve` in the
// forked child. Sharing or sending the struct across threads shares nothing else.
unsafe impl Send for ListenExec {}
// SAFETY: as above; `&ListenExec` gives no way to write through the pointers.
unsafe impl Sync for ListenExec {}

/// The exit status of a child whose `execve` failed after its descriptors were moved
/// (the shell's "command not found / cannot execute").
pub(crate) const LISTEN_EXEC_FAILED: i32 = 127;

impl ListenExec {
    pub(crate) fn new(
        programs: Vec<std::ffi::CString>,
        argv: Vec<std::ffi::CString>,
        env: Vec<std::ffi::CString>,
        pid_vars: &[&str],
        fds: Vec<OwnedFd>,
    ) -> ListenExec {
        let mut argv_ptrs: Vec<_> = argv.iter().map(|a| a.as_ptr()).collect();
        argv_ptrs.push(std::ptr::null());
        let mut envp: Vec<_> = env.iter().map(|e| e.as_ptr()).collect();
        let pid_slot = envp.len();
        let pid_vars: Vec<_> = pid_vars
            .iter()
            .map(|key| {
                // Keys are the protocol's own names, never input: a longer one is a bug.
                assert!(key.len() <= 32, "pid variable {key:?}: name too long");
                let mut buf = [0u8; 48];
                buf[..key.len()].copy_from_slice(key.as_bytes());
                buf[key.len()] = b'=';
                envp.push(std::ptr::null()); // KEY=<pid>, filled in the child
                (buf, key.len() + 1)
            })
            .collect();
        envp.push(std::ptr::null());
        let scratch = vec![-1; fds.len()];
        ListenExec {
            programs,
            _argv: argv,
            _env: env,
            argv_ptrs,
            envp,
            pid_slot,
            pid_vars,
            fds,
            scratch,
        }
    }

    /// In the forked child: moves the descriptors into place, sets the pid variables and
    /// `execve`s. Returns only if moving a descriptor failed before anything was changed
    /// irreversibly; once descriptors 3… have been replaced, a failure `_exit`s with
    /// [`LISTEN_EXEC_FAILED`], because std's own exec-error pipe may have been among them.
    pub(crate) fn exec(&mut self) -> io::Result<()> {
        match self.place_fds() {
            Ok(()) => {}
            Err((false, e)) => return Err(e),
            Err((true, _)) => exit_immediately(LISTEN_EXEC_FAILED),
        }
        self.execve();
        exit_immediately(LISTEN_EXEC_FAILED)
    }

    /// In a child that reports its own failures (`crate::launch`): [`exec`](Self::exec),
    /// returning the error of the step that failed instead of exiting.
    pub(crate) fn run(&mut self) -> io::Error {
        if let Err((_, e)) = self.place_fds() {
            return e;
        }
        self.execve()
    }

    /// Moves the descriptors to 3, 4, …; on failure, whether descriptors 3… were changed.
    fn place_fds(&mut self) -> Result<(), (bool, io::Error)> {
        let n = self.fds.len() as RawFd;
        // First copy every descriptor above the target range, so that moving one into
        // place cannot overwrite another that is still to be moved.
        for (i, fd) in self.fds.iter().enumerate() {
            // SAFETY: F_DUPFD_CLOEXEC creates a new descriptor number; no memory touched.
            let dup = unsafe { libc::fcntl(fd.as_raw_fd(), libc::F_DUPFD_CLOEXEC, 3 + n) };
            self.scratch[i] = check(dup as libc::c_long).map_err(|e| (false, e))? as RawFd;
        }
        for (i, &tmp) in self.scratch.iter().enumerate() {
            // SAFETY: dup2 replaces descriptor 3+i in this forked child, which is about to
            // exec: no Rust object of the child outlives the exec to be surprised by it.
            // The copy at 3+i has close-on-exec cleared (dup2 never sets it).
            if unsafe { libc::dup2(tmp, 3 + i as RawFd) } < 0 {
                return Err((true, io::Error::last_os_error()));
            }
        }
        Ok(())
    }

    /// Sets the pid variables to this process's pid and calls `execve`; returns its error.
    fn execve(&mut self) -> io::Error {
        // "KEY=<pid>\0" for each pid variable, formatted without allocating.
        let mut digits = [0u8; 12];
        let mut len = 0;
        // SAFETY: getpid has no preconditions.
        let mut pid = unsafe { libc::getpid() } as u32;
        loop {
            digits[len] = b'0' + (pid % 10) as u8;
            len += 1;
            pid /= 10;
            if pid == 0 {
                break;
            }
        }
        for (i, (buf, key_len)) in self.pid_vars.iter_mut().enumerate() {
            for j in 0..len {
                buf[*key_len + j] = digits[len - 1 - j];
            }
            buf[*key_len + len] = 0;
            self.envp[self.pid_slot + i] = buf.as_ptr().cast();
        }
        // As `execvp`: a path that is not there (or not a directory on the way) is passed
        // over, one that may not be run too but is remembered, anything else is the error.
        let mut denied = false;
        let mut last = io::Error::from_raw_os_error(libc::ENOENT);
        for program in &self.programs {
            // SAFETY: program, argv and envp are NUL-terminated strings in buffers owned
            // by `self`, and both pointer arrays end with a null pointer.
            unsafe {
                libc::execve(
                    program.as_ptr(),
                    self.argv_ptrs.as_ptr(),
                    self.envp.as_ptr(),
                )
            };
            last = io::Error::last_os_error();
            match last.raw_os_error() {
                Some(libc::ENOENT | libc::ENOTDIR) => {}
                Some(libc::EACCES) => denied = true,
                _ => return last,
            }
        }
        if denied {
            io::Error::from_raw_os_error(libc::EACCES)
        } else {
            last
        }
    }
}

/// Registers `exec` as the *last* `pre_exec` hook of `cmd`: it replaces std's own `exec`
/// (which then never runs), so hooks registered after it would not run either.
pub(crate) fn pre_exec_listen(cmd: &mut std::process::Command, mut exec: ListenExec) {
    use std::os::unix::process::CommandExt;
    // SAFETY: `ListenExec::exec` calls only async-signal-safe functions (fcntl, dup2,
    // getpid, execve, _exit) on data prepared before the fork.
    unsafe {
        cmd.pre_exec(move || exec.exec());
    }
}
