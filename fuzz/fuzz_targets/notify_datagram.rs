//! Fuzzes the notify datagram parser (`daemonic::systemd::listen::parse`), the code that
//! reads bytes any local process may send to a supervisor's notify socket.
//!
//! Beyond "never panics", it checks what the parser promises: oversized, non-UTF-8 and
//! NUL-containing input is rejected; accepted input yields exactly one message per
//! non-empty line, and the flag messages only come from their `KEY=1` lines.

#![no_main]

use daemonic::systemd::listen::{MAX_DATAGRAM, Message, parse};
use libfuzzer_sys::fuzz_target;

fuzz_target!(|data: &[u8]| {
    let result = parse(data);
    let Ok(messages) = result else { return };
    assert!(data.len() <= MAX_DATAGRAM, "accepted an oversized datagram");
    let text = std::str::from_utf8(data).expect("accepted non-UTF-8");
    assert!(!text.contains('\0'), "accepted a NUL byte");
    let lines: Vec<&str> = text.split('\n').filter(|l| !l.is_empty()).collect();
    assert_eq!(lines.len(), messages.len(), "one message per non-empty line");
    for (line, m) in lines.iter().zip(&messages) {
        match m {
            Message::Ready => assert_eq!(*line, "READY=1"),
            Message::Stopping => assert_eq!(*line, "STOPPING=1"),
            Message::Barrier => assert_eq!(*line, "BARRIER=1"),
            Message::Status(s) => assert_eq!(line.strip_prefix("STATUS="), Some(s.as_str())),
            Message::Other { key, value } => assert_eq!(*line, format!("{key}={value}")),
            _ => {}
        }
    }
});
