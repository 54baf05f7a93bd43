//! A small daemon that speaks every part of the systemd protocol daemonic implements; the
//! end-to-end tests run it under a real systemd (and under daemonic's own handoff).
//!
//! ```text
//! notify-demo ready DIR            Type=notify: READY=1 only once DIR/go exists;
//!                                  SIGHUP: RELOADING=1, then READY=1 once DIR/reload-N exists;
//!                                  pings the watchdog from its main loop, and stops
//!                                  (hangs) when DIR/hang appears (the file is consumed);
//!                                  SIGTERM: STOPPING=1, BARRIER=1, exit 0.
//! notify-demo serve NAME [PATH]    serves the unix stream listener passed as NAME
//!                                  (socket activation or the fd store); without one,
//!                                  binds PATH and hands it to the fd store as NAME.
//!                                  Each connection gets one line:
//!                                  "NAME pid P inode I origin passed|bound".
//! ```
//!
//! Progress goes to stderr (the journal under systemd) and to `STATUS=`.

use std::io::Write;
use std::os::fd::AsFd;
use std::os::unix::net::UnixListener;
use std::path::{Path, PathBuf};
use std::process::ExitCode;
use std::time::Duration;

use daemonic::systemd::activation::{Activation, UnsetEnv};
use daemonic::systemd::notify::{self, State};
use daemonic::systemd::watchdog::Watchdog;
use daemonic::{Event, Signals};
use nix::poll::{PollFd, PollFlags, PollTimeout, poll};

type Result<T> = std::result::Result<T, Box<dyn std::error::Error>>;

/// How long the main loop sleeps at most when nothing happens (it watches for files).
const TICK: Duration = Duration::from_millis(50);

fn main() -> ExitCode {
    let args: Vec<String> = std::env::args().skip(1).collect();
    let result = match args
        .iter()
        .map(String::as_str)
        .collect::<Vec<_>>()
        .as_slice()
    {
        ["ready", dir] => ready(Path::new(dir)),
        ["serve", name] => serve(name, None),
        ["serve", name, path] => serve(name, Some(PathBuf::from(path))),
        _ => Err("usage: notify-demo ready DIR | serve NAME [PATH]".into()),
    };
    match result {
        Ok(()) => ExitCode::SUCCESS,
        Err(e) => {
            eprintln!("notify-demo: {e}");
            let _ = notify::notify(&[State::Status(&e.to_string())]);
            ExitCode::FAILURE
        }
    }
}

fn say(states: &[State<'_>]) -> Result<()> {
    notify::notify(states)?;
    Ok(())
}

fn ready(dir: &Path) -> Result<()> {
    let mut signals = Signals::new()?;
    let mut watchdog = Watchdog::from_env()?;
    let go = dir.join("go");
    say(&[
        State::Status(&format!("waiting for {}", go.display())),
        State::MainPid(daemonic::Pid::this()),
    ])?;
    let (mut ready, mut reloads, mut pings) = (false, 0u32, 0u32);
    let mut reloading: Option<PathBuf> = None;
    loop {
        let timeout = watchdog.as_ref().map_or(TICK, |w| w.until_due().min(TICK));
        for event in signals.wait_timeout(timeout) {
            match event {
                Event::Shutdown => {
                    say(&[State::Stopping, State::Status("stopping")])?;
                    let acked = notify::barrier(Duration::from_secs(5))?;
                    eprintln!("notify-demo: stopping (barrier acknowledged: {acked})");
                    return Ok(());
                }
                Event::Reload if ready && reloading.is_none() => {
                    reloads += 1;
                    say(&[
                        State::Reloading,
                        State::Status(&format!("reloading {reloads}")),
                    ])?;
                    reloading = Some(dir.join(format!("reload-{reloads}")));
                }
                _ => {}
            }
        }
        if !ready && go.exists() {
            ready = true;
            say(&[
                State::Ready,
                State::Status(&format!(
                    "ready (reloads: {reloads}, watchdog pings: {pings})"
                )),
            ])?;
            let acked = notify::barrier(Duration::from_secs(5))?;
            eprintln!("notify-demo: ready (barrier acknowledged: {acked})");
        }
        if reloading.as_ref().is_some_and(|f| f.exists()) {
            reloading = None;
            say(&[
                State::Ready,
                State::Status(&format!(
                    "ready (reloads: {reloads}, watchdog pings: {pings})"
                )),
            ])?;
        }
        if std::fs::remove_file(dir.join("hang")).is_ok() {
            say(&[State::Status("main loop hung")])?;
            eprintln!("notify-demo: hanging: the main loop stops, and so do the watchdog pings");
            loop {
                std::thread::park();
            }
        }
        // The loop itself pings: if it hangs (above), the pings stop.
        let pinged = match &mut watchdog {
            Some(w) => w.kick()?,
            None => false,
        };
        if pinged {
            pings += 1;
            if ready && reloading.is_none() {
                say(&[State::Status(&format!(
                    "ready (reloads: {reloads}, watchdog pings: {pings})"
                ))])?;
            }
        }
    }
}

fn serve(name: &str, path: Option<PathBuf>) -> Result<()> {
    let mut signals = Signals::new()?;
    let mut passed = Activation::from_env(UnsetEnv::Yes)?;
    let (listener, origin) = match passed.unix_listener(name)? {
        Some(l) => (l, "passed"),
        None => {
            let path = path.ok_or_else(|| {
                format!("no descriptor named {name:?} passed, and no path to bind")
            })?;
            let _ = std::fs::remove_file(&path);
            let l =
                UnixListener::bind(&path).map_err(|e| format!("bind {}: {e}", path.display()))?;
            // Keep the socket (and its queue) with the manager across restarts.
            notify::store_fds(name, &[l.as_fd()])?;
            (l, "bound")
        }
    };
    let inode = nix::sys::stat::fstat(listener.as_fd())?.st_ino;
    let line = format!(
        "{name} pid {} inode {inode} origin {origin}\n",
        std::process::id()
    );
    say(&[State::Ready, State::Status(line.trim_end())])?;
    eprintln!("notify-demo: serving {}", line.trim_end());
    loop {
        let mut fds = [
            PollFd::new(listener.as_fd(), PollFlags::POLLIN),
            PollFd::new(signals.as_fd(), PollFlags::POLLIN),
        ];
        match poll(&mut fds, PollTimeout::NONE) {
            Ok(_) | Err(nix::errno::Errno::EINTR) => {}
            Err(e) => return Err(format!("poll: {e}").into()),
        }
        let incoming = fds[0]
            .revents()
            .is_some_and(|r| r.contains(PollFlags::POLLIN));
        if signals.pending().contains(&Event::Shutdown) {
            say(&[State::Stopping])?;
            return Ok(());
        }
        if incoming {
            let (mut conn, _) = listener.accept()?;
            let _ = conn.write_all(line.as_bytes());
        }
    }
}
