//! Frames: `magic (4) | version (1) | payload length (u32 BE) | payload`, and the one error
//! type for everything a peer can get wrong (framing here, payloads in [`super::message`]).
//!
//! [`FrameReader`] assembles a frame from reads of any size, so the same code serves the
//! non-blocking server (a few bytes now, the rest later) and the blocking client. It never
//! asks for more than the frame still needs, so bytes a peer sends after its frame are
//! left unread, and it checks the header as soon as the header is complete: an over-size
//! length is refused before a single payload byte is buffered.

use std::fmt;

/// The first four bytes of every frame.
pub const MAGIC: [u8; 4] = *b"dmnc";
/// The protocol version this build speaks.
pub const VERSION: u8 = 1;
/// Magic, version, length.
pub const HEADER_LEN: usize = 9;
/// The largest request payload: what a supervisor accepts from a client (a request is a
/// few short fields; a client that sends more is refused before it is buffered).
pub const MAX_PAYLOAD: usize = 64 * 1024;
/// The largest response payload: what a client accepts from its supervisor, whose
/// credentials it has checked. A `list` of 1,000 services is about 300 KiB; 64 KiB, the
/// request cap, stopped `up` and `list` past ~200 services.
pub const MAX_RESPONSE: usize = 16 * 1024 * 1024;

/// What was wrong with a frame or payload. Its `Display` is what the peer is told.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum WireError {
    /// The first four bytes are not [`MAGIC`].
    BadMagic([u8; 4]),
    /// A version this build does not speak.
    BadVersion(u8),
    /// A payload length over [`MAX_PAYLOAD`].
    TooLarge(u64),
    /// The peer closed the connection after `got` of the frame's `expected` bytes.
    Truncated { got: usize, expected: usize },
    /// The payload is not UTF-8; `at` is the offset of the first bad byte.
    NotUtf8 { at: usize },
    /// A payload line that is not `key=value` (1-based line number).
    BadLine { line: usize },
    /// A backslash followed by something other than `\` or `n` in `field`'s value.
    BadEscape { field: String },
    /// The payload does not start with `op=` (requests) or `response=` (responses).
    MissingKind { expected: &'static str },
    /// An `op=` value no request has.
    UnknownOp(String),
    /// A `response=` value no response has.
    UnknownResponse(String),
    /// A field the request (or service record) must have.
    MissingField(&'static str),
    /// A field given twice.
    DuplicateField(String),
    /// A field the request does not have (requests are strict; see the module docs).
    UnknownField(String),
    /// A field whose value is not of its type; `expected` says what it should be.
    BadField {
        field: &'static str,
        value: String,
        expected: &'static str,
    },
}

impl fmt::Display for WireError {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match self {
            WireError::BadMagic(m) => write!(
                f,
                "bad magic {:?} (expected {:?}): not a daemonic control frame",
                String::from_utf8_lossy(m),
                String::from_utf8_lossy(&MAGIC)
            ),
            WireError::BadVersion(v) => write!(
                f,
                "unsupported protocol version {v} (this daemonic speaks version {VERSION})"
            ),
            WireError::TooLarge(n) => {
                write!(f, "payload of {n} bytes is over the limit of {MAX_PAYLOAD}")
            }
            WireError::Truncated { got, expected } => write!(
                f,
                "truncated frame: connection closed after {got} of {expected} bytes"
            ),
            WireError::NotUtf8 { at } => {
                write!(f, "payload is not UTF-8 (bad byte at offset {at})")
            }
            WireError::BadLine { line } => write!(f, "payload line {line} is not key=value"),
            WireError::BadEscape { field } => write!(
                f,
                "field {field}: bad escape (only \\\\ and \\n are escapes)"
            ),
            WireError::MissingKind { expected } => {
                write!(f, "payload does not start with {expected}=")
            }
            WireError::UnknownOp(op) => write!(f, "unknown op {op:?}"),
            WireError::UnknownResponse(r) => write!(f, "unknown response {r:?}"),
            WireError::MissingField(k) => write!(f, "missing field {k}"),
            WireError::DuplicateField(k) => write!(f, "field {k} given twice"),
            WireError::UnknownField(k) => write!(f, "unknown field {k:?}"),
            WireError::BadField {
                field,
                value,
                expected,
            } => write!(f, "field {field}: {value:?} is not {expected}"),
        }
    }
}

impl std::error::Error for WireError {}

/// `payload` with its header in front; fails if it is over [`MAX_PAYLOAD`].
pub fn frame(payload: &[u8]) -> Result<Vec<u8>, WireError> {
    frame_within(payload, MAX_PAYLOAD)
}

/// `payload` with its header in front; fails if it is over `max`.
pub fn frame_within(payload: &[u8], max: usize) -> Result<Vec<u8>, WireError> {
    if payload.len() > max {
        return Err(WireError::TooLarge(payload.len() as u64));
    }
    let mut out = Vec::with_capacity(HEADER_LEN + payload.len());
    out.extend_from_slice(&MAGIC);
    out.push(VERSION);
    out.extend_from_slice(&(payload.len() as u32).to_be_bytes());
    out.extend_from_slice(payload);
    Ok(out)
}

/// Checks a complete header of a frame of at most [`MAX_PAYLOAD`]; returns the payload
/// length it announces.
pub fn parse_header(header: &[u8; HEADER_LEN]) -> Result<usize, WireError> {
    parse_header_within(header, MAX_PAYLOAD)
}

/// [`parse_header`] with a cap of `max`.
fn parse_header_within(header: &[u8; HEADER_LEN], max: usize) -> Result<usize, WireError> {
    let magic: [u8; 4] = header[..4].try_into().expect("4 bytes");
    if magic != MAGIC {
        return Err(WireError::BadMagic(magic));
    }
    if header[4] != VERSION {
        return Err(WireError::BadVersion(header[4]));
    }
    let len = u32::from_be_bytes(header[5..].try_into().expect("4 bytes"));
    if len as usize > max {
        return Err(WireError::TooLarge(u64::from(len)));
    }
    Ok(len as usize)
}

/// Assembles one frame from reads of any size.
#[derive(Debug)]
pub struct FrameReader {
    buf: Vec<u8>,
    /// The payload length, once the header has been read and checked.
    payload_len: Option<usize>,
    /// The largest payload accepted.
    max: usize,
}

impl Default for FrameReader {
    fn default() -> FrameReader {
        FrameReader::new()
    }
}

impl FrameReader {
    /// A reader of requests: payloads of at most [`MAX_PAYLOAD`].
    pub fn new() -> FrameReader {
        FrameReader::within(MAX_PAYLOAD)
    }

    /// A reader of payloads of at most `max` bytes ([`MAX_RESPONSE`] for a response).
    pub fn within(max: usize) -> FrameReader {
        FrameReader {
            buf: Vec::new(),
            payload_len: None,
            max,
        }
    }

    /// How many more bytes the frame needs (0 once it is complete). Read at most this
    /// many, so nothing after the frame is consumed.
    pub fn wanted(&self) -> usize {
        match self.payload_len {
            None => HEADER_LEN - self.buf.len(),
            Some(len) => HEADER_LEN + len - self.buf.len(),
        }
    }

    /// Adds bytes just read (at most [`wanted`](Self::wanted) of them); checks the header
    /// as soon as it is complete.
    pub fn feed(&mut self, bytes: &[u8]) -> Result<(), WireError> {
        debug_assert!(bytes.len() <= self.wanted(), "read past the frame");
        self.buf.extend_from_slice(bytes);
        if self.payload_len.is_none() && self.buf.len() >= HEADER_LEN {
            let header: &[u8; HEADER_LEN] = self.buf[..HEADER_LEN].try_into().expect("9 bytes");
            let len = parse_header_within(header, self.max)?;
            self.buf.reserve_exact(len);
            self.payload_len = Some(len);
        }
        Ok(())
    }

    /// The payload, once the whole frame is in.
    pub fn payload(&self) -> Option<&[u8]> {
        (self.payload_len.is_some() && self.wanted() == 0).then(|| &self.buf[HEADER_LEN..])
    }

    /// The error for a peer that closed the connection now, before the frame was complete.
    pub fn truncated(&self) -> WireError {
        WireError::Truncated {
            got: self.buf.len(),
            expected: self.buf.len() + self.wanted(),
        }
    }

    /// True before the first byte arrived.
    pub fn is_empty(&self) -> bool {
        self.buf.is_empty()
    }
}
