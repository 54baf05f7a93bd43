//! The one-call setup and its destinations: text/JSON files through `tracing`, journald's
//! native protocol and syslog against datagram sockets bound in a temp dir.
//!
//! (The journalctl read-back needs a real systemd and arrives with the systemd harness.)

use std::fs;
use std::io::{IoSliceMut, Read};
use std::os::fd::AsRawFd;
use std::os::unix::net::UnixDatagram;
use std::time::Duration;

use daemonic::ErrorKind;
use daemonic::logging::{Facility, Format, JournaldWriter, Logging, RotatingWriter, SyslogFormat};
use nix::sys::socket::{ControlMessageOwned, MsgFlags, UnixAddr, recvmsg};

use super::support::TempDir;

/// Parses a native-protocol entry into (name, value) pairs, checking the framing.
fn parse_entry(mut data: &[u8]) -> Vec<(String, Vec<u8>)> {
    let mut fields = Vec::new();
    while !data.is_empty() {
        let nl = data
            .iter()
            .position(|&b| b == b'\n')
            .expect("field ends with a newline");
        let head = &data[..nl];
        if let Some(eq) = head.iter().position(|&b| b == b'=') {
            fields.push((
                String::from_utf8(head[..eq].to_vec()).unwrap(),
                head[eq + 1..].to_vec(),
            ));
            data = &data[nl + 1..];
        } else {
            let name = String::from_utf8(head.to_vec()).unwrap();
            let len = u64::from_le_bytes(data[nl + 1..nl + 9].try_into().unwrap()) as usize;
            let start = nl + 9;
            fields.push((name, data[start..start + len].to_vec()));
            assert_eq!(
                data[start + len],
                b'\n',
                "binary field not newline-terminated"
            );
            data = &data[start + len + 1..];
        }
    }
    fields
}

fn get<'a>(fields: &'a [(String, Vec<u8>)], name: &str) -> &'a [u8] {
    &fields
        .iter()
        .find(|(n, _)| n == name)
        .unwrap_or_else(|| panic!("no {name} in {fields:?}"))
        .1
}

fn bind(dir: &TempDir, name: &str) -> UnixDatagram {
    let sock = UnixDatagram::bind(dir.path().join(name)).unwrap();
    sock.set_read_timeout(Some(Duration::from_secs(10)))
        .unwrap();
    sock
}

#[test]
fn journald_datagram_carries_plain_and_binary_safe_fields() {
    let dir = TempDir::new("journald");
    let server = bind(&dir, "journal.socket");
    let w = JournaldWriter::connect_to(dir.path().join("journal.socket")).unwrap();
    w.send(&[
        ("MESSAGE", b"first line\nsecond line".as_slice()),
        ("PRIORITY", b"6"),
        ("request.id", b"42"),
    ])
    .unwrap();
    let mut buf = vec![0u8; 65536];
    let n = server.recv(&mut buf).unwrap();
    let fields = parse_entry(&buf[..n]);
    assert_eq!(get(&fields, "MESSAGE"), b"first line\nsecond line");
    assert_eq!(get(&fields, "PRIORITY"), b"6");
    assert_eq!(get(&fields, "REQUEST_ID"), b"42");
    assert!(
        buf[..n].starts_with(b"MESSAGE\n"),
        "multi-line value must use the length form"
    );
}

#[test]
fn journald_entry_too_large_for_a_datagram_goes_through_a_sealed_memfd() {
    let dir = TempDir::new("memfd");
    let server = bind(&dir, "journal.socket");
    let w = JournaldWriter::connect_to(dir.path().join("journal.socket")).unwrap();
    let big: Vec<u8> = (0..(1 << 20)).map(|i| b"abcdefgh\n"[i % 9]).collect();
    w.send(&[("MESSAGE", big.as_slice())]).unwrap();

    let mut payload = [0u8; 16];
    let mut iov = [IoSliceMut::new(&mut payload)];
    let mut cmsg = nix::cmsg_space!([std::os::fd::RawFd; 1]);
    let msg = recvmsg::<UnixAddr>(
        server.as_raw_fd(),
        &mut iov,
        Some(&mut cmsg),
        MsgFlags::MSG_CMSG_CLOEXEC,
    )
    .unwrap();
    assert_eq!(
        msg.bytes, 0,
        "the entry travels in the fd, not the datagram"
    );
    let fd = msg
        .cmsgs()
        .unwrap()
        .find_map(|c| match c {
            ControlMessageOwned::ScmRights(fds) => fds.first().copied(),
            _ => None,
        })
        .expect("an SCM_RIGHTS fd");
    // Read it through /proc rather than adopting the raw fd (no unsafe in tests).
    let proc_path = format!("/proc/self/fd/{fd}");
    let mut entry = Vec::new();
    fs::File::open(&proc_path)
        .unwrap()
        .read_to_end(&mut entry)
        .unwrap();
    let seals = nix::fcntl::fcntl(
        fs::File::open(&proc_path).unwrap(),
        nix::fcntl::FcntlArg::F_GET_SEALS,
    )
    .unwrap();
    nix::unistd::close(fd).unwrap();
    assert_eq!(
        seals & libc::F_SEAL_WRITE,
        libc::F_SEAL_WRITE,
        "memfd must be sealed"
    );
    let fields = parse_entry(&entry);
    assert_eq!(get(&fields, "MESSAGE"), big.as_slice());
}

#[test]
fn tracing_events_reach_journald_with_priority_identifier_and_fields() {
    let dir = TempDir::new("journald-layer");
    let server = bind(&dir, "journal.socket");
    let (dispatch, _guard) = Logging::new("web")
        .context("env", "prod")
        .journald_socket(dir.path().join("journal.socket"))
        .build()
        .unwrap();
    tracing::dispatcher::with_default(&dispatch, || {
        let span = tracing::info_span!("request", id = 7);
        let _e = span.enter();
        tracing::warn!(status = 503u64, "upstream\nslow");
    });
    let mut buf = vec![0u8; 65536];
    let n = server.recv(&mut buf).unwrap();
    let fields = parse_entry(&buf[..n]);
    assert_eq!(get(&fields, "MESSAGE"), b"upstream\nslow");
    assert_eq!(get(&fields, "PRIORITY"), b"4");
    assert_eq!(get(&fields, "SYSLOG_IDENTIFIER"), b"web");
    assert_eq!(get(&fields, "SERVICE"), b"web");
    assert_eq!(get(&fields, "ENV"), b"prod");
    assert_eq!(get(&fields, "ID"), b"7");
    assert_eq!(get(&fields, "STATUS"), b"503");
    assert!(get(&fields, "CODE_FILE").ends_with(b"destinations.rs"));
}

#[test]
fn syslog_messages_follow_rfc3164_and_rfc5424() {
    let dir = TempDir::new("syslog");
    let server = bind(&dir, "log");
    let pid = std::process::id();
    for (format, expect_prefix) in [
        (SyslogFormat::Rfc3164, format!("<28>web[{pid}]: ")),
        (SyslogFormat::Rfc5424, "<28>1 ".to_owned()),
    ] {
        let (dispatch, _guard) = Logging::new("web")
            .syslog_socket(dir.path().join("log"), format, Facility::Daemon)
            .build()
            .unwrap();
        tracing::dispatcher::with_default(&dispatch, || tracing::warn!(code = 7, "disk low"));
        let mut buf = vec![0u8; 4096];
        let n = server.recv(&mut buf).unwrap();
        let msg = String::from_utf8(buf[..n].to_vec()).unwrap();
        assert!(msg.starts_with(&expect_prefix), "{msg}");
        assert!(msg.ends_with(": disk low code=7 service=web"), "{msg}");
        if format == SyslogFormat::Rfc5424 {
            // <PRI>1 TIMESTAMP HOST APP PID - - MSG
            let parts: Vec<&str> = msg.splitn(8, ' ').collect();
            assert!(parts[1].ends_with('Z') && parts[1].len() == 27, "{msg}");
            assert_eq!(
                (parts[3], parts[4], parts[5], parts[6]),
                ("web", &*pid.to_string(), "-", "-")
            );
        }
    }
}

#[test]
fn json_and_text_lines_carry_context_spans_and_fields() {
    let dir = TempDir::new("format");
    for (format, name) in [(Format::Json, "json.log"), (Format::Text, "text.log")] {
        let file = RotatingWriter::builder(dir.path().join(name))
            .open()
            .unwrap();
        let (dispatch, guard) = Logging::new("web")
            .format(format)
            .level("debug,noisy=warn")
            .level_env("DAEMONIC_TEST_UNSET_LEVEL_VAR")
            .context("env", "prod")
            .file(file)
            .build()
            .unwrap();
        tracing::dispatcher::with_default(&dispatch, || {
            let span = tracing::info_span!("conn", peer = "10.0.0.1:5000");
            let _e = span.enter();
            tracing::debug!(target: "web::http", bytes = 512u64, ok = true, "served \"/\"");
            tracing::info!(target: "noisy", "filtered out");
            tracing::trace!(target: "web::http", "filtered out");
        });
        guard.flush().unwrap();
        let text = fs::read_to_string(dir.path().join(name)).unwrap();
        assert_eq!(text.lines().count(), 1, "{text}");
        let l = text.lines().next().unwrap();
        match format {
            Format::Json => {
                assert!(l.starts_with("{\"timestamp\":\""), "{l}");
                assert!(
                    l.contains(
                        "\"level\":\"DEBUG\",\"target\":\"web::http\",\"message\":\"served \\\"/\\\"\",\
                         \"service\":\"web\",\"env\":\"prod\",\"bytes\":512,\"ok\":true,\
                         \"spans\":[{\"name\":\"conn\",\"peer\":\"10.0.0.1:5000\"}]}"
                    ),
                    "{l}"
                );
            }
            _ => assert!(
                l.ends_with(
                    " DEBUG conn{peer=10.0.0.1:5000}: web::http: served \"/\" bytes=512 ok=true service=web env=prod"
                ),
                "{l}"
            ),
        }
    }
}

#[test]
fn an_invalid_level_is_rejected_naming_its_source() {
    let err = Logging::new("web")
        .level("web=loudest")
        .build()
        .unwrap_err();
    assert_eq!(err.kind(), ErrorKind::InvalidInput);
    assert!(
        err.to_string()
            .contains("\"web=loudest\" from the configured level"),
        "{err}"
    );
}

#[test]
fn a_missing_journald_socket_is_an_error_naming_the_path() {
    let dir = TempDir::new("nojournal");
    let missing = dir.path().join("journal.socket");
    let err = Logging::new("web")
        .journald_socket(&missing)
        .build()
        .unwrap_err();
    assert_eq!(err.os_error(), Some(libc::ENOENT));
    assert!(
        err.to_string()
            .starts_with(&format!("connect {}", missing.display())),
        "{err}"
    );
}
