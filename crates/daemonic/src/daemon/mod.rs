//! [`Daemon`]: the builder a program uses to become a daemon (`myserver -d`).
//!
//! ## Anatomy of [`Daemon::start`]
//!
//! 1. **Decide.** Under systemd (`NOTIFY_SOCKET` or `INVOCATION_ID` set) or with
//!    [`Daemon::foreground`], nothing forks: the pid file is locked and written, and
//!    [`Running::ready`] talks to whatever manager set `NOTIFY_SOCKET`.
//! 2. **Lock** the pid file, before any fork, so `already running (pid N)` reaches the
//!    user's terminal.
//! 3. **Listen**: the launcher (the process the user started) binds a private notify
//!    socket — readiness is the notify protocol here too.
//! 4. **Detach**: fork, `setsid`, fork again (so the daemon is not a session leader and can
//!    never acquire a controlling terminal). In re-exec mode the program instead starts
//!    itself again (see below). The launcher marks itself a child subreaper, so the
//!    daemon's exit status reaches it even though the daemon is a grandchild.
//! 5. **Set up** the daemon: `chdir`, `umask`, signals reset, stdin from `/dev/null`,
//!    stdout/stderr to `/dev/null` or to files (append mode), every inherited descriptor
//!    closed except the kept ones, its pid written to the pid file.
//! 6. **Wait**: the launcher waits for `READY=1` from the daemon's pid, the daemon's exit,
//!    or the timeout, then exits: 0 when ready, otherwise non-zero after printing the
//!    daemon's own message (its last `STATUS=`, `ERRNO=`, its exit status or signal). A
//!    daemon that is not ready in time is killed (its whole process group) and reaped.
//!    Meanwhile it shows what the daemon writes to stderr ([`Daemon::forward_stderr`]): an
//!    error returned from `main` before `ready()` is printed where the command was typed.
//!
//! 7. **Drop privileges** ([`Daemon::privileges`]), last: see below.
//!
//! `start` returns only in the daemon (or in the foreground process); the launcher never
//! returns from it.
//!
//! ## Privileges and the pid file
//!
//! With [`Daemon::privileges`], the user, groups and capabilities are looked up in the
//! launcher, before anything else (an unknown user is reported in the terminal), and the
//! switch happens in the daemon after its set-up, as its last step before `start`
//! returns — or, in re-exec mode, between fork and exec, so the program starts again
//! already switched. Everything the set-up creates is therefore created **as root**:
//!
//! - the pid file is created, locked and written by root (mode `0o644`, owned by root);
//!   the daemon keeps its locked descriptor and writes its pid through it. The daemon
//!   cannot rewrite the file to name another process (the classic pid-file attack by a
//!   compromised daemon on a root `kill $(cat …)`). At exit, if the unprivileged daemon
//!   may not remove it (the directory belongs to root), it empties it instead; an empty
//!   or stale file never counts as running, because liveness is the lock;
//! - `stdout`/`stderr` files ([`Output::File`]) are opened by root, owned by root, and
//!   written through the inherited descriptors;
//! - files the program creates after `start` (its own logs, sockets) belong to the user.
//!
//! The pid file's directory must be searchable by the user (re-exec mode checks the
//! hand-over by path), and, as for every pid file taken as root, not writable by anyone
//! else (see [`PidFile`]).
//!
//! ## Threads and re-exec mode
//!
//! `fork` in a process with several threads copies only the calling thread, with every
//! lock the others held frozen forever; so `start` refuses ([`ErrorKind::Threaded`]) when
//! it finds more than one thread. [`Daemon::reexec`] serves programs that already run
//! threads (an async runtime, a logger thread): the launcher spawns `/proc/self/exe` with
//! the same arguments and a hand-over (a memfd, not an environment variable); `start` in
//! the new process finds it, closes it, adopts the locked pid file and the notify address
//! handed over, and continues as the daemon. Everything the program did before `start`
//! runs again in the new process, so call `start` early.
//!
//! The hand-over changes nothing another thread may read: the new process usually runs
//! threads again by the time it calls `start`, and removing an environment variable would
//! race their reads of the environment through libc (`getenv` in C code, DNS resolution,
//! time zones). Closing a descriptor does not, and the daemon's children inherit neither.
//!
//! ## Launcher exit codes
//!
//! | code    | meaning                                                      |
//! |---------|--------------------------------------------------------------|
//! | 0       | the daemon said `READY=1`                                    |
//! | N       | the daemon exited with status N (N ≠ 0) before it was ready  |
//! | 1       | the daemon exited with status 0 before it was ready          |
//! | 128+S   | the daemon was killed by signal S before it was ready        |
//! | 124     | not ready within the timeout; the daemon was killed          |
//! | 70      | daemonic itself failed after forking ([`crate::EXIT_INTERNAL`]) |

mod detach;
mod launcher;
mod reexec;
mod relay;
mod setup;

use std::os::fd::{AsRawFd, OwnedFd, RawFd};
use std::path::PathBuf;
use std::sync::Mutex;
use std::time::Duration;

use nix::sys::stat::Mode;

use crate::pidfile::PidFile;
use crate::privileges::{Prepared, Privileges};
use crate::systemd::notify::{Notifier, State};
use crate::{Error, ErrorKind, Result};

/// How long the launcher waits for `READY=1` unless told otherwise.
pub const DEFAULT_READY_TIMEOUT: Duration = Duration::from_secs(30);

/// Where a detached daemon's stdout or stderr goes.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Output {
    /// `/dev/null` (the default).
    Null,
    /// A file, opened for appending (created with `mode` if missing).
    File {
        /// The file.
        path: PathBuf,
        /// Permission bits for a new file (before the umask).
        mode: u32,
    },
}

impl Output {
    /// Append to `path`, creating it with mode `0o640`.
    pub fn file(path: impl Into<PathBuf>) -> Output {
        Output::File {
            path: path.into(),
            mode: 0o640,
        }
    }
}

/// How [`Daemon::start`] runs the program.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
enum Mode_ {
    /// Fork unless under systemd.
    Auto,
    /// Never fork.
    Foreground,
    /// Start the program again instead of forking.
    Reexec,
}

/// A builder for becoming a daemon. See the [module docs](self) for what `start` does.
///
/// ```no_run
/// use daemonic::{Daemon, Error, Event, Signals};
///
/// fn main() -> daemonic::Result<()> {
///     let foreground = !std::env::args().any(|a| a == "-d");
///     let daemon = Daemon::new()
///         .pid_file("/tmp/myserver.pid")
///         .foreground(foreground)
///         .start()?; // the launcher exits inside; the daemon continues here
///     // An error returned before `ready()` is printed in the launcher's terminal.
///     let listener = std::net::TcpListener::bind("127.0.0.1:7878")
///         .map_err(|e| Error::io("bind 127.0.0.1:7878", e))?;
///     let mut signals = Signals::new()?;
///     daemon.ready()?; // now the launcher returns 0
///     # drop(listener);
///     loop {
///         if signals.wait().contains(&Event::Shutdown) {
///             return Ok(()); // dropping `daemon` removes the pid file
///         }
///     }
/// }
/// ```
#[derive(Debug, Clone)]
pub struct Daemon {
    pid_file: Option<PathBuf>,
    pid_file_mode: u32,
    working_dir: PathBuf,
    umask: u32,
    stdout: Output,
    stderr: Output,
    keep_fds: Vec<RawFd>,
    ready_timeout: Duration,
    mode: Mode_,
    name: String,
    privileges: Option<Privileges>,
    /// What the launcher shows of the daemon's `STATUS=` lines while it waits.
    shown: launcher::Shown,
    /// The daemon's stderr goes to the launcher until it is ready.
    forward_stderr: bool,
}

impl Default for Daemon {
    fn default() -> Self {
        Self::new()
    }
}

impl Daemon {
    /// Defaults: no pid file, working directory `/`, umask `0o027`, stdout and stderr to
    /// `/dev/null`, no descriptors kept, a [`DEFAULT_READY_TIMEOUT`] of 30 s, fork unless
    /// under systemd.
    pub fn new() -> Daemon {
        let name = std::env::args_os()
            .next()
            .and_then(|a| {
                PathBuf::from(a)
                    .file_name()
                    .map(|n| n.to_string_lossy().into_owned())
            })
            .unwrap_or_else(|| "daemon".to_string());
        Daemon {
            pid_file: None,
            pid_file_mode: 0o644,
            working_dir: PathBuf::from("/"),
            umask: 0o027,
            stdout: Output::Null,
            stderr: Output::Null,
            keep_fds: Vec::new(),
            ready_timeout: DEFAULT_READY_TIMEOUT,
            mode: Mode_::Auto,
            name,
            privileges: None,
            shown: launcher::Shown::default(),
            forward_stderr: true,
        }
    }

    /// Lock this pid file (created with mode `0o644`) for the daemon's life. A relative
    /// path is taken from the directory `start` is called in (before the daemon changes
    /// to its [`working_dir`](Self::working_dir)), and the file is removed from there at a
    /// clean exit.
    pub fn pid_file(mut self, path: impl Into<PathBuf>) -> Self {
        self.pid_file = Some(path.into());
        self
    }

    /// Permission bits for a new pid file (default `0o644`, so anyone may read the pid).
    pub fn pid_file_mode(mut self, mode: u32) -> Self {
        self.pid_file_mode = mode & 0o777;
        self
    }

    /// The daemon's working directory (default `/`, so it pins no mount point).
    pub fn working_dir(mut self, dir: impl Into<PathBuf>) -> Self {
        self.working_dir = dir.into();
        self
    }

    /// The daemon's umask (default `0o027`).
    pub fn umask(mut self, mask: u32) -> Self {
        self.umask = mask & 0o777;
        self
    }

    /// Where the daemon's stdout goes (default `/dev/null`).
    pub fn stdout(mut self, out: Output) -> Self {
        self.stdout = out;
        self
    }

    /// Where the daemon's stderr goes (default `/dev/null`).
    pub fn stderr(mut self, out: Output) -> Self {
        self.stderr = out;
        self
    }

    /// Until the daemon is ready, show its stderr in the launcher's — the terminal the
    /// command was typed in (on by default). So an error returned from `main` before
    /// [`Running::ready`] (`Error: bind 127.0.0.1:7878: Address already in use (os error
    /// 98)`), a panic, or any `eprintln!` of a failing start is seen where the user waits.
    /// Control characters are shown as escapes.
    ///
    /// With stderr to `/dev/null` (the default), stderr is a pipe to the launcher until
    /// `ready()` puts `/dev/null` in place; processes the daemon starts before `ready()`
    /// inherit the pipe as their stderr: give them their own, or start them after
    /// `ready()` (a write to the pipe after the launcher has exited fails with `EPIPE`).
    /// With stderr to a regular file ([`stderr`](Self::stderr)), the file gets every line
    /// itself, and a start that fails shows the lines it appended (the last 8 KiB at most).
    /// Off: nothing of stderr is shown. Not used in the foreground or under systemd
    /// (nothing forks, stderr is where it was).
    pub fn forward_stderr(mut self, on: bool) -> Self {
        self.forward_stderr = on;
        self
    }

    /// Keep this inherited descriptor open in the daemon (all others above 2 are closed).
    pub fn keep_fd(mut self, fd: RawFd) -> Self {
        self.keep_fds.push(fd);
        self
    }

    /// How long the launcher waits for readiness before it kills the daemon (default 30 s).
    pub fn ready_timeout(mut self, timeout: Duration) -> Self {
        self.ready_timeout = timeout;
        self
    }

    /// Stay in the foreground (`true`): no fork, same pid file and same `ready()`.
    pub fn foreground(mut self, foreground: bool) -> Self {
        if foreground {
            self.mode = Mode_::Foreground;
        } else if self.mode == Mode_::Foreground {
            self.mode = Mode_::Auto;
        }
        self
    }

    /// Detach by starting the program again instead of forking: for programs that already
    /// run threads. See the [module docs](self#threads-and-re-exec-mode).
    pub fn reexec(mut self, reexec: bool) -> Self {
        if reexec {
            self.mode = Mode_::Reexec;
        } else if self.mode == Mode_::Reexec {
            self.mode = Mode_::Auto;
        }
        self
    }

    /// Show the daemon's progress while the launcher waits: each `STATUS=` line it sends
    /// before it is ready (`"loading 3 of 10 tables"`) is printed on the launcher's stderr
    /// as `NAME: TEXT` once the next one arrives (the last one before a failure is part of
    /// the failure message instead). Off by default.
    pub fn progress(mut self, on: bool) -> Self {
        self.shown.progress = on;
        self
    }

    /// On `READY=1`, print the daemon's last `STATUS=` line on the launcher's stdout
    /// (`"web: ready (pid 4242)"`), so a successful start says so in one line. Off by
    /// default (the launcher exits 0 silently).
    pub fn announce_ready(mut self, on: bool) -> Self {
        self.shown.announce_ready = on;
        self
    }

    /// The name the launcher uses in its messages (default: the program's file name).
    pub fn name(mut self, name: impl Into<String>) -> Self {
        self.name = name.into();
        self
    }

    /// Switch the daemon to this user, groups and capabilities after it has detached (see
    /// [Privileges and the pid file](self#privileges-and-the-pid-file)); lookups happen
    /// in `start` before the fork. Not with a chroot in re-exec mode (the program is
    /// started again by `/proc/self/exe`, which the chroot hides).
    pub fn privileges(mut self, privileges: Privileges) -> Self {
        self.privileges = (!privileges.is_empty()).then_some(privileges);
        self
    }

    /// Becomes the daemon. Returns in the daemon (or the foreground process); the launcher
    /// exits inside with the status in the [table](self#launcher-exit-codes).
    ///
    /// Errors reach the caller only while still in the user's terminal: the pid file is
    /// held ([`ErrorKind::AlreadyRunning`]), the process runs threads
    /// ([`ErrorKind::Threaded`]), or a system call failed before the fork.
    pub fn start(mut self) -> Result<Running> {
        if let Some(handover) = reexec::take_handover()? {
            return reexec::become_daemon(&self, handover);
        }
        // Before the daemon's `chdir`: a relative pid file is where the command was typed,
        // and removed from there at exit.
        if let Some(p) = self.pid_file.take() {
            let absolute = std::path::absolute(&p)
                .map_err(|e| Error::io(format!("resolve {}", p.display()), e))?;
            self.pid_file = Some(absolute);
        }
        let privileges = self.prepare_privileges()?;
        if self.mode == Mode_::Foreground || crate::systemd::under_systemd() {
            let running = self.start_foreground()?;
            if let Some(p) = privileges {
                p.apply()?;
            }
            return Ok(running);
        }
        if self.mode == Mode_::Reexec {
            return reexec::launch(&self, privileges);
        }
        detach::fork_daemon(&self, privileges)
    }

    fn prepare_privileges(&self) -> Result<Option<Prepared>> {
        let Some(p) = &self.privileges else {
            return Ok(None);
        };
        if self.mode == Mode_::Reexec && p.chroot_dir().is_some() {
            return Err(Error::new(
                ErrorKind::InvalidInput,
                "a chroot in re-exec mode: the program is started again from /proc/self/exe, \
                 which the chroot hides; detach by fork, or chroot after start",
            ));
        }
        p.prepare().map(Some)
    }

    fn start_foreground(&self) -> Result<Running> {
        let pid_file = self
            .pid_file
            .as_deref()
            .map(|p| PidFile::lock_unwritten(p, self.pid_file_mode))
            .transpose()?;
        if let Some(p) = &pid_file {
            p.write_pid(nix::unistd::Pid::this())?;
        }
        Ok(Running::new(pid_file, Notifier::from_env()?, false))
    }

    fn umask_mode(&self) -> Mode {
        Mode::from_bits_truncate(self.umask as libc::mode_t)
    }
}

/// The running daemon: holds the pid file and the channel to whoever waits for readiness.
///
/// Dropping it (at a clean exit) removes the pid file.
#[derive(Debug)]
pub struct Running {
    pid_file: Option<PidFile>,
    /// Who waits for readiness. A detached daemon's launcher exits once it has read
    /// `READY=1`, so the socket is closed then: the daemon keeps no descriptor it did not
    /// ask for.
    notifier: Mutex<Option<Notifier>>,
    detached: bool,
    /// The configured stderr while descriptor 2 is the pipe to the launcher
    /// ([`Daemon::forward_stderr`]); `ready()` puts it in place.
    stderr_later: Mutex<Option<OwnedFd>>,
}

impl Running {
    pub(crate) fn new(
        pid_file: Option<PidFile>,
        notifier: Option<Notifier>,
        detached: bool,
    ) -> Running {
        Running {
            pid_file,
            notifier: Mutex::new(notifier),
            detached,
            stderr_later: Mutex::new(None),
        }
    }

    /// Descriptor 2 is the pipe to the launcher; `stderr` goes there at `ready()`.
    pub(crate) fn with_stderr_later(self, stderr: Option<OwnedFd>) -> Running {
        *self.stderr_later.lock().unwrap_or_else(|p| p.into_inner()) = stderr;
        self
    }

    /// Tells the launcher, systemd or the supervisor that the daemon is ready.
    /// `Ok(false)` when nobody is listening (foreground, no manager).
    ///
    /// With a forwarded stderr ([`Daemon::forward_stderr`]), the configured stderr takes
    /// descriptor 2 first, so nothing written after `ready()` goes to the launcher, which
    /// exits once it has read `READY=1` (and printed what came before).
    pub fn ready(&self) -> Result<bool> {
        let sent = self.notify(&[State::Ready])?;
        if self.detached {
            self.notifier
                .lock()
                .unwrap_or_else(|p| p.into_inner())
                .take();
        }
        Ok(sent)
    }

    /// Sends one line of status text (`STATUS=`).
    pub fn status(&self, text: &str) -> Result<bool> {
        self.notify(&[State::Status(text)])
    }

    /// Reports a startup failure: the launcher prints `message` (and `errno`, if given) and
    /// exits non-zero once this process exits — the way to say why without printing
    /// (`daemon.fail(&format!("bind {addr}: {e}"), e.raw_os_error())`, then exit). An
    /// error returned from `main` before `ready()` reaches the launcher anyway, on the
    /// forwarded stderr ([`Daemon::forward_stderr`]).
    pub fn fail(&self, message: &str, errno: Option<i32>) -> Result<bool> {
        match errno {
            Some(n) => self.notify(&[State::Status(message), State::Errno(n)]),
            None => self.notify(&[State::Status(message)]),
        }
    }

    /// Sends any states to whoever waits (see [`State`]). With [`State::Ready`] among
    /// them, a forwarded stderr is put back first, as [`ready`](Self::ready) does.
    pub fn notify(&self, states: &[State<'_>]) -> Result<bool> {
        if states.iter().any(|s| matches!(s, State::Ready)) {
            self.restore_stderr()?;
        }
        match &*self.notifier.lock().unwrap_or_else(|p| p.into_inner()) {
            Some(n) => n.notify(states).map(|()| true),
            None => Ok(false),
        }
    }

    /// Puts the configured stderr on descriptor 2 if it is still the pipe to the launcher
    /// (which exits at `READY=1`).
    fn restore_stderr(&self) -> Result<()> {
        let later = self
            .stderr_later
            .lock()
            .unwrap_or_else(|p| p.into_inner())
            .take();
        match later {
            Some(fd) => crate::sys::dup_onto(fd.as_raw_fd(), 2)
                .map_err(|e| Error::io("dup2 onto descriptor 2", e)),
            None => Ok(()),
        }
    }

    /// True if this process was detached (forked or re-executed), false in the foreground.
    pub fn detached(&self) -> bool {
        self.detached
    }

    /// The locked pid file, if one was configured.
    pub fn pid_file(&self) -> Option<&PidFile> {
        self.pid_file.as_ref()
    }

    /// Removes the pid file now, reporting errors (dropping `Running` does it silently).
    pub fn finish(mut self) -> Result<()> {
        match self.pid_file.take() {
            Some(p) => p.release(),
            None => Ok(()),
        }
    }
}

/// The number of threads this process runs, from `/proc/self/task`.
pub(crate) fn thread_count() -> Result<usize> {
    crate::sys::thread_count().map_err(|e| Error::io("read /proc/self/task", e))
}

/// Refuses to fork a process that runs more than one thread.
fn refuse_threads() -> Result<()> {
    let n = thread_count()?;
    if n > 1 {
        return Err(Error::new(
            ErrorKind::Threaded,
            format!(
                "cannot detach by fork: this process already runs {n} threads (forking would \
                 copy only one of them, with any lock the others hold frozen); call \
                 Daemon::start before starting threads or an async runtime, or use \
                 Daemon::reexec(true)"
            ),
        ));
    }
    Ok(())
}
