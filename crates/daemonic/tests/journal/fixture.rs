//! The state and events the journal tests (and the `journal-appender` example, which
//! includes this file) agree on: a list of byte strings, each one a checkable function of
//! `(stream, n)`, so a test can tell a recovered event from an invented one.

use daemonic::journal::{DecodeError, State};

/// Every event ever applied, in order.
#[derive(Debug, Default, Clone, PartialEq, Eq)]
pub struct Recorded {
    pub events: Vec<Vec<u8>>,
}

impl State for Recorded {
    type Event = Vec<u8>;

    fn apply(&mut self, event: Vec<u8>) {
        self.events.push(event);
    }
    fn encode_event(event: &Vec<u8>, out: &mut Vec<u8>) {
        out.extend_from_slice(event);
    }
    fn decode_event(bytes: &[u8]) -> Result<Vec<u8>, DecodeError> {
        Ok(bytes.to_vec())
    }
    fn encode(&self, out: &mut Vec<u8>) {
        out.extend_from_slice(&(self.events.len() as u32).to_le_bytes());
        for e in &self.events {
            out.extend_from_slice(&(e.len() as u32).to_le_bytes());
            out.extend_from_slice(e);
        }
    }
    fn decode(mut bytes: &[u8]) -> Result<Self, DecodeError> {
        let mut take = |n: usize| -> Result<&[u8], DecodeError> {
            if bytes.len() < n {
                return Err(DecodeError::new("snapshot ends early"));
            }
            let (head, rest) = bytes.split_at(n);
            bytes = rest;
            Ok(head)
        };
        let count = u32::from_le_bytes(take(4)?.try_into().unwrap());
        let mut events = Vec::with_capacity(count as usize);
        for _ in 0..count {
            let len = u32::from_le_bytes(take(4)?.try_into().unwrap());
            events.push(take(len as usize)?.to_vec());
        }
        Ok(Recorded { events })
    }
}

/// Event number `n` of writer `stream`: 9 to 56 bytes, determined by `(stream, n)`.
pub fn event(stream: u8, n: u64) -> Vec<u8> {
    let len = 9 + ((n * 13 + u64::from(stream) * 7) % 48) as usize;
    let mut e = Vec::with_capacity(len);
    e.push(stream);
    e.extend_from_slice(&n.to_le_bytes());
    for k in 9..len {
        e.push(((n * 31 + k as u64 * 17 + u64::from(stream)) % 251) as u8);
    }
    e
}

#[allow(dead_code)] // used by the tests, not by the fixture program
/// The `(stream, n)` of an event, or `None` if it is not one [`event`] makes.
pub fn parse(e: &[u8]) -> Option<(u8, u64)> {
    let stream = *e.first()?;
    let n = u64::from_le_bytes(e.get(1..9)?.try_into().ok()?);
    (event(stream, n) == e).then_some((stream, n))
}

/// How many events of `stream` a recovered state holds (they are always `0..count`).
#[allow(dead_code)]
pub fn count_of(state: &Recorded, stream: u8) -> u64 {
    state
        .events
        .iter()
        .filter(|e| e.first() == Some(&stream))
        .count() as u64
}
