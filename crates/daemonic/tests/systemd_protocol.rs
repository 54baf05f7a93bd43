//! The notify protocol and socket activation between real processes, without systemd:
//! our client to our listener for every message kind, systemd's own `systemd-notify` to
//! our listener, malformed datagrams, and sockets handed to a child by name.

use daemonic_test_support as support;

use std::io::Read;
use std::os::fd::AsFd;
use std::os::unix::net::{UnixDatagram, UnixListener, UnixStream};
use std::process::{Command, Stdio};
use std::time::Duration;

use daemonic::systemd::handoff::{self, ListenFds};
use daemonic::systemd::listen::{Datagram, Message, NotifyListener};
use daemonic::systemd::notify::{Notifier, State};
use daemonic::{ErrorKind, Pid};
use support::{TempDir, example, wait_for};

/// A child killed and reaped when the test ends, also when it fails.
struct KillOnDrop(std::process::Child);

impl Drop for KillOnDrop {
    fn drop(&mut self) {
        let _ = self.0.kill();
        let _ = self.0.wait();
    }
}

fn inode(fd: impl AsFd) -> u64 {
    nix::sys::stat::fstat(fd.as_fd()).unwrap().st_ino
}

/// Receives one datagram, waiting up to 10 s.
fn recv(listener: &NotifyListener) -> Datagram {
    wait_for(
        "a notify datagram",
        Duration::from_secs(10),
        || match listener.recv() {
            Ok(d) => Some(d),
            Err(e) if e.os_error() == Some(libc::EAGAIN) => None,
            Err(e) => panic!("recv: {e}"),
        },
    )
}

#[test]
fn every_message_kind_reaches_our_listener_at_a_path_and_an_abstract_address() {
    let dir = TempDir::new("notify");
    let at_path = NotifyListener::bind(dir.path().join("notify.sock")).unwrap();
    let abstract_ = NotifyListener::bind_private().unwrap();
    assert!(abstract_.env_value().starts_with('@'));
    for listener in [&at_path, &abstract_] {
        listener.set_nonblocking(true).unwrap();
        let n = Notifier::new(listener.env_value()).unwrap();
        n.notify(&[
            State::Ready,
            State::Reloading,
            State::Stopping,
            State::Status("two\nlines"),
            State::Errno(98),
            State::MainPid(Pid::from_raw(4242)),
            State::Watchdog,
            State::WatchdogTrigger,
            State::WatchdogInterval(Duration::from_secs(3)),
            State::ExtendTimeout(Duration::from_millis(1500)),
        ])
        .unwrap();
        let d = recv(listener);
        assert_eq!(
            d.sender.unwrap().pid,
            Pid::this(),
            "credentials name the sender"
        );
        let m = &d.messages;
        assert_eq!(m[0], Message::Ready);
        assert_eq!(m[1], Message::Reloading);
        assert!(
            matches!(m[2], Message::MonotonicUsec(t) if t > 0),
            "RELOADING=1 carries MONOTONIC_USEC: {m:?}"
        );
        assert_eq!(
            m[3..],
            [
                Message::Stopping,
                Message::Status("two lines".into()),
                Message::Errno(98),
                Message::MainPid(Pid::from_raw(4242)),
                Message::Watchdog,
                Message::WatchdogTrigger,
                Message::WatchdogUsec(3_000_000),
                Message::ExtendTimeoutUsec(1_500_000),
            ]
        );
        assert!(d.fds.is_empty());
    }
}

#[test]
fn fd_store_passes_the_same_socket_with_its_name() {
    let dir = TempDir::new("fdstore");
    let listener = NotifyListener::bind_private().unwrap();
    listener.set_nonblocking(true).unwrap();
    let sock = UnixListener::bind(dir.path().join("web.sock")).unwrap();
    let n = Notifier::new(listener.env_value()).unwrap();
    assert_eq!(
        n.store_fds("bad name", &[sock.as_fd()]).unwrap_err().kind(),
        ErrorKind::InvalidInput
    );
    n.store_fds("web", &[sock.as_fd()]).unwrap();
    let d = recv(&listener);
    assert_eq!(
        d.messages,
        [Message::FdStore, Message::FdName("web".into())]
    );
    assert_eq!(d.fds.len(), 1);
    assert_eq!(
        inode(&d.fds[0]),
        inode(&sock),
        "the stored descriptor is our socket"
    );
    n.remove_stored_fds("web").unwrap();
    assert_eq!(
        recv(&listener).messages,
        [Message::FdStoreRemove, Message::FdName("web".into())]
    );
}

#[test]
fn barrier_returns_once_the_listener_has_processed_and_closed_the_pipe() {
    let listener = NotifyListener::bind_private().unwrap();
    let n = Notifier::new(listener.env_value()).unwrap();
    // Nobody reads: the pipe stays open in the queued datagram, so the barrier times out.
    let e = n.barrier(Duration::from_millis(200)).unwrap_err();
    assert_eq!(e.kind(), ErrorKind::TimedOut, "{e}");
    let stale = listener.recv().unwrap();
    assert_eq!(stale.messages, [Message::Barrier]);
    drop(stale);
    // A listener that processes datagrams (and drops their descriptors) releases it.
    std::thread::scope(|s| {
        let reader = s.spawn(|| {
            let d = listener.recv().unwrap();
            assert_eq!(d.messages, [Message::Barrier]);
            assert_eq!(d.fds.len(), 1, "BARRIER=1 carries the pipe");
        });
        n.barrier(Duration::from_secs(10)).unwrap();
        reader.join().unwrap();
    });
}

#[test]
fn systemd_notify_cli_reaches_our_listener() {
    if Command::new("systemd-notify")
        .arg("--help")
        .stdout(Stdio::null())
        .status()
        .is_err()
    {
        eprintln!("skipped: systemd-notify not installed");
        return;
    }
    let listener = NotifyListener::bind_private().unwrap();
    listener.set_nonblocking(true).unwrap();
    let child = Command::new("systemd-notify")
        .args(["--ready", "--status=from systemd-notify"])
        .env("NOTIFY_SOCKET", listener.env_value())
        .spawn()
        .unwrap();
    let child_pid = Pid::from_raw(child.id() as i32);
    let mut child = KillOnDrop(child);
    let d = recv(&listener);
    assert_eq!(
        d.messages,
        [
            Message::Ready,
            Message::Status("from systemd-notify".into())
        ]
    );
    // systemd-notify speaks for its parent (our test process): with privileges it sends
    // SCM_CREDENTIALS naming the parent, without them the kernel reports its own pid.
    let sender = d.sender.unwrap().pid;
    if nix::unistd::Uid::effective().is_root() {
        assert_eq!(
            sender,
            Pid::this(),
            "as root, credentials name systemd-notify's parent"
        );
    } else {
        assert!(
            sender == Pid::this() || sender == child_pid,
            "sender {sender}"
        );
    }
    // systemd 252's systemd-notify then waits on BARRIER=1 until we process it.
    let barrier = recv(&listener);
    assert_eq!(barrier.messages, [Message::Barrier]);
    drop(barrier);
    let status = wait_for("systemd-notify to exit", Duration::from_secs(10), || {
        child.0.try_wait().unwrap()
    });
    assert!(status.success(), "systemd-notify: {status}");
}

#[test]
fn bad_datagrams_are_rejected_and_their_descriptors_closed() {
    let listener = NotifyListener::bind_private().unwrap();
    listener.set_nonblocking(true).unwrap();
    let n = Notifier::new(listener.env_value()).unwrap();
    let raw = UnixDatagram::unbound().unwrap();
    let send_raw = |bytes: &[u8]| {
        use std::os::linux::net::SocketAddrExt;
        let name = listener.env_value().strip_prefix('@').unwrap();
        let to = std::os::unix::net::SocketAddr::from_abstract_name(name).unwrap();
        raw.send_to_addr(bytes, &to).unwrap();
    };
    for bad in [
        &[b'X'; 5000][..],
        b"STATUS=\xff\xfe",
        b"READY",
        b"READY=1\0",
        b"MAINPID=-3",
    ] {
        send_raw(bad);
        let e = listener.recv().unwrap_err();
        assert_eq!(e.kind(), ErrorKind::Protocol, "{e}");
        assert!(
            e.to_string().contains(&format!("from pid {}", Pid::this())),
            "{e}"
        );
    }
    // A malformed datagram carrying a pipe: the listener must close its copy.
    let (mut read, write) = std::io::pipe().unwrap();
    n.notify_with_fds(&[State::Status("bad\u{0}")], &[write.as_fd()])
        .unwrap();
    drop(write);
    assert_eq!(listener.recv().unwrap_err().kind(), ErrorKind::Protocol);
    let mut buf = Vec::new();
    assert_eq!(
        read.read_to_end(&mut buf).unwrap(),
        0,
        "EOF: the rejected descriptor was closed"
    );
    // And the listener still works.
    n.notify(&[State::Ready]).unwrap();
    assert_eq!(recv(&listener).messages, [Message::Ready]);
}

#[test]
fn handoff_passes_a_socket_by_name_with_the_childs_own_listen_pid() {
    let dir = TempDir::new("handoff");
    let path = dir.path().join("web.sock");
    let sock = UnixListener::bind(&path).unwrap();
    let notify = NotifyListener::bind_private().unwrap();
    notify.set_nonblocking(true).unwrap();
    let mut fds = ListenFds::new();
    fds.push("web", &sock).unwrap();
    let mut cmd = Command::new(example("notify-demo"));
    cmd.args(["serve", "web"])
        .env("NOTIFY_SOCKET", notify.env_value())
        .env("LISTEN_PID", "1");
    let spawned = handoff::spawn(&mut cmd, &fds).unwrap();
    let pid = spawned.pidfd.pid();
    let _child = KillOnDrop(spawned.child);
    let ready = recv(&notify);
    assert_eq!(ready.sender.unwrap().pid, pid);
    assert!(
        ready.messages.contains(&Message::Ready),
        "{:?}",
        ready.messages
    );
    let mut line = String::new();
    UnixStream::connect(&path)
        .unwrap()
        .read_to_string(&mut line)
        .unwrap();
    assert_eq!(
        line,
        format!("web pid {pid} inode {} origin passed\n", inode(&sock))
    );
}

#[test]
fn listen_fds_for_another_pid_are_not_for_us() {
    let dir = TempDir::new("notforus");
    let path = dir.path().join("own.sock");
    let notify = NotifyListener::bind_private().unwrap();
    notify.set_nonblocking(true).unwrap();
    // LISTEN_PID names our test process, not the child: the child must ignore descriptor
    // 3 and bind its own socket.
    let child = Command::new(example("notify-demo"))
        .args(["serve".as_ref(), "web".as_ref(), path.as_os_str()])
        .env("NOTIFY_SOCKET", notify.env_value())
        .env("LISTEN_PID", std::process::id().to_string())
        .env("LISTEN_FDS", "1")
        .env("LISTEN_FDNAMES", "web")
        .spawn()
        .unwrap();
    let _child = KillOnDrop(child);
    let store = recv(&notify);
    assert_eq!(
        store.messages,
        [Message::FdStore, Message::FdName("web".into())]
    );
    assert!(recv(&notify).messages.contains(&Message::Ready));
    let mut line = String::new();
    UnixStream::connect(&path)
        .unwrap()
        .read_to_string(&mut line)
        .unwrap();
    assert!(line.ends_with("origin bound\n"), "{line}");
}

#[test]
fn handoff_reports_a_missing_program_before_forking() {
    let mut fds = ListenFds::new();
    fds.push("x", std::io::stdin()).unwrap();
    let e = handoff::spawn(&mut Command::new("daemonic-no-such-program"), &fds).unwrap_err();
    assert_eq!(
        e.io_error().map(|e| e.kind()),
        Some(std::io::ErrorKind::NotFound),
        "{e}"
    );
    assert!(e.to_string().contains("daemonic-no-such-program"), "{e}");
}
