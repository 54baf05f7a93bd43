//! The codec without sockets: every message survives a round trip, and every way a peer
//! can get a frame wrong is refused with an error naming what was wrong.

use daemonic::Signal;

use super::wire::{self, FrameReader, HEADER_LEN, MAGIC, MAX_PAYLOAD, VERSION, WireError};
use super::{Request, Response, ServiceInfo};

mod server;

/// Decodes a whole frame the way both sides do: through a [`FrameReader`], one byte at a
/// time (the worst a non-blocking read can do).
fn unframe(bytes: &[u8]) -> Result<Vec<u8>, WireError> {
    let mut reader = FrameReader::new();
    let mut rest = bytes;
    while reader.wanted() > 0 {
        let Some((first, tail)) = rest.split_first() else {
            return Err(reader.truncated());
        };
        reader.feed(std::slice::from_ref(first))?;
        rest = tail;
    }
    Ok(reader.payload().unwrap().to_vec())
}

fn request_round_trip(r: Request) {
    let payload = unframe(&r.to_frame()).unwrap();
    assert_eq!(Request::decode(&payload), Ok(r));
}

fn response_round_trip(r: Response) {
    let payload = unframe(&r.to_frame()).unwrap();
    assert_eq!(Response::decode(&payload), Ok(r));
}

/// A frame around an arbitrary payload text.
fn framed(payload: &str) -> Vec<u8> {
    wire::frame(payload.as_bytes()).unwrap()
}

fn decode_request(payload: &str) -> Result<Request, WireError> {
    Request::decode(&unframe(&framed(payload)).unwrap())
}

pub(super) fn full_service() -> ServiceInfo {
    ServiceInfo {
        name: "web".into(),
        state: "backoff".into(),
        pid: Some(4242),
        supervisor_pid: 4241,
        since_unix: 1_700_000_000,
        restarts: 3,
        last_exit: Some("killed by SIGKILL".into()),
        next_delay_ms: Some(400),
        delays_ms: vec![50, 100, 200],
        status: "line one\nback\\slash = equals".into(),
        cpu_ms: Some(1234),
        rss_bytes: Some(12_900_000),
        log_file: Some("/var/log/web.log".into()),
        group: Some("shop".into()),
        health: Some("unhealthy: readiness failed 3 times in a row: HTTP 503".into()),
        ready: true,
        containment: Some("cgroup /sys/fs/cgroup/daemonic/run-daemonic/web".into()),
        tree_processes: Some(4),
        tree_memory_bytes: Some(40_000_000),
        tree_cpu_ms: Some(2500),
        log_lines_dropped: Some(2345),
        log_error: Some("write /var/log/web.log: No space left on device (os error 28)".into()),
        sockets: vec![
            ("web".into(), "tcp:127.0.0.1:8080".into()),
            ("api".into(), "unix:/run/app/a b.sock".into()),
        ],
        fd_store: Some(2),
    }
}

#[test]
fn every_request_survives_a_round_trip() {
    request_round_trip(Request::Status { name: None });
    request_round_trip(Request::Status {
        name: Some("web".into()),
    });
    request_round_trip(Request::List);
    request_round_trip(Request::Stop {
        name: "a.b-c_d".into(),
    });
    request_round_trip(Request::Restart { name: "web".into() });
    request_round_trip(Request::Reload {
        name: "web".into(),
        wait: false,
    });
    request_round_trip(Request::Reload {
        name: "web".into(),
        wait: true,
    });
    request_round_trip(Request::Reopen { name: "web".into() });
    request_round_trip(Request::Signal {
        name: "web".into(),
        signal: Signal::SIGUSR1,
    });
    // The codec carries any text; names are checked where they are used.
    request_round_trip(Request::Stop {
        name: "odd\nname=\\n".into(),
    });
}

#[test]
fn every_response_survives_a_round_trip() {
    response_round_trip(Response::Services(vec![]));
    response_round_trip(Response::Services(vec![full_service()]));
    let minimal = ServiceInfo {
        name: "api".into(),
        state: "starting".into(),
        supervisor_pid: 7,
        ..ServiceInfo::default()
    };
    response_round_trip(Response::Services(vec![full_service(), minimal]));
    response_round_trip(Response::Done("restarting web".into()));
    response_round_trip(Response::Error(
        "no service named \"x\"\nsecond line".into(),
    ));
}

#[test]
fn the_payload_is_readable_key_value_lines() {
    let r = Request::Signal {
        name: "web".into(),
        signal: Signal::SIGHUP,
    };
    assert_eq!(r.encode(), "op=signal\nname=web\nsignal=SIGHUP\n");
    let frame = r.to_frame();
    assert_eq!(&frame[..4], b"dmnc");
    assert_eq!(frame[4], 1);
    assert_eq!(&frame[5..9], &(frame.len() as u32 - 9).to_be_bytes());
}

#[test]
fn a_wrong_magic_is_refused() {
    let mut f = Request::List.to_frame();
    f[..4].copy_from_slice(b"HTTP");
    assert_eq!(unframe(&f), Err(WireError::BadMagic(*b"HTTP")));
    assert!(
        WireError::BadMagic(*b"HTTP")
            .to_string()
            .contains("bad magic")
    );
}

#[test]
fn a_wrong_version_is_refused_naming_both_versions() {
    let mut f = Request::List.to_frame();
    f[4] = 2;
    assert_eq!(unframe(&f), Err(WireError::BadVersion(2)));
    let text = WireError::BadVersion(2).to_string();
    assert!(
        text.contains("version 2") && text.contains("version 1"),
        "{text}"
    );
}

#[test]
fn an_over_size_length_is_refused_before_any_payload_is_read() {
    let mut header = Vec::from(MAGIC);
    header.push(VERSION);
    header.extend_from_slice(&(MAX_PAYLOAD as u32 + 1).to_be_bytes());
    // Only the header: the reader must refuse without waiting for the payload.
    let mut reader = FrameReader::new();
    assert_eq!(
        reader.feed(&header),
        Err(WireError::TooLarge(MAX_PAYLOAD as u64 + 1))
    );
    assert_eq!(
        wire::frame(&vec![b'x'; MAX_PAYLOAD + 1]),
        Err(WireError::TooLarge(MAX_PAYLOAD as u64 + 1))
    );
    assert!(
        wire::frame(&vec![b'x'; MAX_PAYLOAD]).is_ok(),
        "the cap itself is allowed"
    );
}

#[test]
fn a_truncated_frame_says_how_much_arrived() {
    let f = Request::Restart { name: "web".into() }.to_frame();
    let got = f.len() - 3;
    assert_eq!(
        unframe(&f[..got]),
        Err(WireError::Truncated {
            got,
            expected: f.len()
        })
    );
    assert_eq!(
        unframe(&f[..4]),
        Err(WireError::Truncated {
            got: 4,
            expected: HEADER_LEN
        })
    );
}

#[test]
fn a_payload_that_is_not_utf8_is_refused() {
    let payload = b"op=stop\nname=w\xffb\n";
    assert_eq!(Request::decode(payload), Err(WireError::NotUtf8 { at: 14 }));
}

#[test]
fn an_unknown_op_is_refused() {
    assert_eq!(
        decode_request("op=format-disk\n"),
        Err(WireError::UnknownOp("format-disk".into()))
    );
}

#[test]
fn a_missing_field_is_refused() {
    assert_eq!(
        decode_request("op=stop\n"),
        Err(WireError::MissingField("name"))
    );
    assert_eq!(
        decode_request("op=signal\nname=web\n"),
        Err(WireError::MissingField("signal"))
    );
    assert_eq!(
        decode_request("name=web\nop=stop\n"),
        Err(WireError::MissingKind { expected: "op" })
    );
    assert_eq!(
        decode_request(""),
        Err(WireError::MissingKind { expected: "op" })
    );
}

#[test]
fn a_bad_signal_is_refused() {
    assert_eq!(
        decode_request("op=signal\nname=web\nsignal=SIGNOPE\n"),
        Err(WireError::BadField {
            field: "signal",
            value: "SIGNOPE".into(),
            expected: "a signal name such as SIGHUP"
        })
    );
}

#[test]
fn requests_are_strict_about_extra_repeated_and_garbled_fields() {
    assert_eq!(
        decode_request("op=stop\nname=web\nforce=yes\n"),
        Err(WireError::UnknownField("force".into()))
    );
    assert_eq!(
        decode_request("op=list\nname=web\n"),
        Err(WireError::UnknownField("name".into()))
    );
    assert_eq!(
        decode_request("op=stop\nname=web\nname=db\n"),
        Err(WireError::DuplicateField("name".into()))
    );
    assert_eq!(
        decode_request("op=stop\nname web\n"),
        Err(WireError::BadLine { line: 2 })
    );
    assert_eq!(
        decode_request("op=stop\n\nname=web\n"),
        Err(WireError::BadLine { line: 2 })
    );
    assert_eq!(
        decode_request("op=stop\nname=a\\tb\n"),
        Err(WireError::BadEscape {
            field: "name".into()
        })
    );
}

#[test]
fn responses_ignore_unknown_fields_but_not_ill_typed_ones() {
    let payload = "response=services\nname=web\nstate=ready\nhealth=ok\nsupervisor_pid=1\n\
                   since_unix=5\nrestarts=0\nstatus=\n";
    let Ok(Response::Services(list)) = Response::decode(payload.as_bytes()) else {
        panic!("not decoded");
    };
    assert_eq!(list[0].name, "web");
    assert_eq!(list[0].delays_ms, Vec::<u64>::new());

    let bad = payload.replace("supervisor_pid=1", "supervisor_pid=one");
    assert_eq!(
        Response::decode(bad.as_bytes()),
        Err(WireError::BadField {
            field: "supervisor_pid",
            value: "one".into(),
            expected: "a pid"
        })
    );
    let missing = payload.replace("state=ready\n", "");
    assert_eq!(
        Response::decode(missing.as_bytes()),
        Err(WireError::MissingField("state"))
    );
    let repeated = payload.replace("restarts=0\n", "restarts=0\nrestarts=1\n");
    assert_eq!(
        Response::decode(repeated.as_bytes()),
        Err(WireError::DuplicateField("restarts".into()))
    );
    assert_eq!(
        Response::decode(b"response=maybe\n"),
        Err(WireError::UnknownResponse("maybe".into()))
    );
    assert_eq!(
        Response::decode(b"response=services\nstate=ready\n"),
        Err(WireError::MissingField("name"))
    );
}

#[test]
fn a_response_over_the_cap_becomes_an_error_saying_so() {
    // Some 17 MiB: over the response cap (16 MiB).
    let many = vec![full_service(); 40_000];
    let frame = Response::Services(many).to_frame();
    let payload = unframe(&frame).unwrap();
    match Response::decode(&payload).unwrap() {
        Response::Error(text) => assert!(text.starts_with("response too large: "), "{text}"),
        other => panic!("{other:?}"),
    }
}

#[test]
fn a_socket_path_too_long_for_sun_path_is_refused_with_its_length() {
    let long = std::path::PathBuf::from(format!("/tmp/{}.sock", "x".repeat(120)));
    let err = super::check_socket_path("bind", &long)
        .unwrap_err()
        .to_string();
    assert!(err.contains("socket path too long (130 bytes"), "{err}");
    assert!(super::ControlServer::bind(&long).is_err());
    assert!(super::check_socket_path("bind", std::path::Path::new("/run/x.sock")).is_ok());
}

#[test]
fn a_response_larger_than_a_request_may_be_travels_whole() {
    // `list` of a file of hundreds of services: over the request cap.
    let services: Vec<ServiceInfo> = (0..1000)
        .map(|i| ServiceInfo {
            name: format!("service-number-{i}"),
            state: "ready".into(),
            status: "serving a rather long status line for this test".into(),
            ..ServiceInfo::default()
        })
        .collect();
    let response = Response::Services(services.clone());
    let frame = response.to_frame();
    assert!(frame.len() > MAX_PAYLOAD, "{}", frame.len());
    let mut reader = FrameReader::within(wire::MAX_RESPONSE);
    reader.feed(&frame[..HEADER_LEN]).unwrap();
    reader.feed(&frame[HEADER_LEN..]).unwrap();
    let decoded = Response::decode(reader.payload().unwrap()).unwrap();
    assert_eq!(decoded, response);
    // A supervisor still refuses a request of that size before buffering it.
    let mut request_reader = FrameReader::new();
    assert!(matches!(
        request_reader.feed(&frame[..HEADER_LEN]),
        Err(WireError::TooLarge(_))
    ));
}

#[test]
fn up_carries_rerun_only_when_given_so_old_clients_and_supervisors_still_agree() {
    request_round_trip(Request::Up {
        names: vec!["web".into()],
        rerun: vec!["migrate".into(), "seed".into()],
    });
    // An older client's request: no `rerun` field.
    assert_eq!(
        decode_request("op=up\nnames=web\n"),
        Ok(Request::Up {
            names: vec!["web".into()],
            rerun: Vec::new(),
        })
    );
    // Without reruns the request is what an older supervisor expects.
    let plain = Request::Up {
        names: Vec::new(),
        rerun: Vec::new(),
    };
    assert_eq!(plain.encode(), "op=up\nnames=\n");
}
