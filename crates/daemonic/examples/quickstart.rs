use std::io::Write;
use std::net::TcpListener;

use daemonic::{Daemon, Error, Event, Signals};

fn main() -> daemonic::Result<()> {
    let addr = std::env::args().nth(1).unwrap_or("127.0.0.1:7878".into());
    // Returns in the daemon; the command typed waits until `ready()`, or fails with why.
    let daemon = Daemon::new().pid_file("quickstart.pid").start()?;
    // Until `ready()` the daemon's stderr is the waiting terminal's: this error, returned
    // from `main`, is printed there (`Error: bind 127.0.0.1:7878: Address already in use
    // (os error 98)`), and the command exits 1.
    let listener = TcpListener::bind(&addr).map_err(|e| Error::io(format!("bind {addr}"), e))?;
    let mut signals = Signals::new()?;
    daemon.ready()?; // now the command returns 0 (or systemd knows we serve)
    std::thread::spawn(move || {
        for mut conn in listener.incoming().flatten() {
            let _ = conn.write_all(b"hello\n");
        }
    });
    while !signals.wait().contains(&Event::Shutdown) {} // SIGTERM or Ctrl-C
    Ok(()) // dropping `daemon` removes the pid file
}
