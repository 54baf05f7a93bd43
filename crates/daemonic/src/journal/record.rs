//! The on-disk framing of the log: the log file header and the record frame.
//!
//! Everything here is pure byte layout — no I/O — so the rules the recovery scanner relies
//! on are in one place and unit-tested on their own. All integers are little-endian.
//!
//! ```text
//! log file header (32 bytes)
//!   0  magic      8  b"dmncwal\0"
//!   8  version    4  FORMAT_VERSION (1)
//!  12  flags      4  0 (reserved; a reader rejects unknown bits)
//!  16  start_seq  8  sequence number of the first record in this file
//!  24  crc        4  CRC-32 of bytes 0..24
//!  28  reserved   4  0 (checked: a reader rejects other values)
//!
//! record frame (16-byte header + payload)
//!   0  len        4  payload length in bytes
//!   4  crc        4  CRC-32 of payload ++ len ++ seq (the 12 header bytes other than crc)
//!   8  seq        8  the record's sequence number (one more than the previous record's)
//!  16  payload  len  the event, as encoded by `State::encode_event`
//! ```
//!
//! The checksum is CRC-32 (IEEE 802.3 polynomial, as in zlib and gzip), computed by
//! `crc32fast`. It covers the length and the sequence number, so a flipped bit anywhere in a
//! frame — header or payload — is detected.

use crc32fast::Hasher;

/// The version of the on-disk format written by this build, in log and snapshot headers.
pub const FORMAT_VERSION: u32 = 1;
/// Magic bytes that open every log file.
pub(crate) const LOG_MAGIC: [u8; 8] = *b"dmncwal\0";
/// Length of the log file header.
pub(crate) const LOG_HEADER_LEN: usize = 32;
/// Length of a record frame's header (before the payload).
pub(crate) const FRAME_HEADER_LEN: usize = 16;
/// The largest payload a frame may carry. A larger length field is treated as damage, which
/// keeps a flipped high bit in `len` from sending recovery to read gigabytes.
pub const MAX_RECORD_LEN: u32 = 64 << 20;

/// A frame header as read from disk, not yet checked against its payload.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub(crate) struct FrameHeader {
    pub len: u32,
    pub crc: u32,
    pub seq: u64,
}

impl FrameHeader {
    /// Reads the 16 header bytes at the start of `bytes`.
    pub fn parse(bytes: &[u8; FRAME_HEADER_LEN]) -> FrameHeader {
        FrameHeader {
            len: u32::from_le_bytes(bytes[0..4].try_into().expect("4 bytes")),
            crc: u32::from_le_bytes(bytes[4..8].try_into().expect("4 bytes")),
            seq: u64::from_le_bytes(bytes[8..16].try_into().expect("8 bytes")),
        }
    }

    /// Whether `payload` (exactly `len` bytes) matches this header's checksum.
    pub fn matches(&self, payload: &[u8]) -> bool {
        payload.len() == self.len as usize
            && frame_crc(payload_hasher(payload), self.len, self.seq) == self.crc
    }
}

/// Starts a frame checksum over the payload. Split from [`frame_crc`] so an appender can
/// checksum its payload before it takes the journal lock and learns its sequence number.
pub(crate) fn payload_hasher(payload: &[u8]) -> Hasher {
    let mut h = Hasher::new();
    h.update(payload);
    h
}

/// Finishes a frame checksum: the payload hash extended by the length and sequence number.
pub(crate) fn frame_crc(mut payload_hash: Hasher, len: u32, seq: u64) -> u32 {
    payload_hash.update(&len.to_le_bytes());
    payload_hash.update(&seq.to_le_bytes());
    payload_hash.finalize()
}

/// Fills in the header of a frame whose payload already follows 16 placeholder bytes in
/// `frame`. `payload_hash` is [`payload_hasher`] over `frame[16..]`.
pub(crate) fn seal_frame(frame: &mut [u8], payload_hash: Hasher, seq: u64) {
    let len = u32::try_from(frame.len() - FRAME_HEADER_LEN).expect("payload length checked");
    let crc = frame_crc(payload_hash, len, seq);
    frame[0..4].copy_from_slice(&len.to_le_bytes());
    frame[4..8].copy_from_slice(&crc.to_le_bytes());
    frame[8..16].copy_from_slice(&seq.to_le_bytes());
}

/// Appends a complete frame for `payload` to `out` (for tests; the append path
/// uses [`seal_frame`] to avoid a copy).
#[cfg(test)]
pub(crate) fn encode_frame(seq: u64, payload: &[u8], out: &mut Vec<u8>) {
    let start = out.len();
    out.extend_from_slice(&[0; FRAME_HEADER_LEN]);
    out.extend_from_slice(payload);
    seal_frame(&mut out[start..], payload_hasher(payload), seq);
}

/// The header of a log file whose first record will have sequence number `start_seq`.
pub(crate) fn encode_log_header(start_seq: u64) -> [u8; LOG_HEADER_LEN] {
    let mut h = [0u8; LOG_HEADER_LEN];
    h[0..8].copy_from_slice(&LOG_MAGIC);
    h[8..12].copy_from_slice(&FORMAT_VERSION.to_le_bytes());
    h[16..24].copy_from_slice(&start_seq.to_le_bytes());
    let crc = crc32fast::hash(&h[0..24]);
    h[24..28].copy_from_slice(&crc.to_le_bytes());
    h
}

/// Why a log file header could not be used.
#[derive(Debug, Clone, PartialEq, Eq)]
pub(crate) enum HeaderError {
    /// Fewer than 32 bytes: the file was being created when the process or machine died.
    Short(usize),
    /// Wrong magic or checksum: damage (or not a log file at all).
    Damaged(&'static str),
    /// A well-formed header from a newer (or unknown) version of the format.
    Version(u32),
}

impl std::fmt::Display for HeaderError {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        match self {
            HeaderError::Short(n) => write!(f, "header is {n} bytes, expected {LOG_HEADER_LEN}"),
            HeaderError::Damaged(why) => write!(f, "header {why}"),
            HeaderError::Version(v) => write!(
                f,
                "format version {v} is not supported (this build reads version {FORMAT_VERSION})"
            ),
        }
    }
}

/// Parses a log file header and returns its start sequence number.
pub(crate) fn decode_log_header(bytes: &[u8]) -> Result<u64, HeaderError> {
    if bytes.len() < LOG_HEADER_LEN {
        return Err(HeaderError::Short(bytes.len()));
    }
    if bytes[0..8] != LOG_MAGIC {
        return Err(HeaderError::Damaged("has the wrong magic bytes"));
    }
    let stored = u32::from_le_bytes(bytes[24..28].try_into().expect("4 bytes"));
    if crc32fast::hash(&bytes[0..24]) != stored {
        return Err(HeaderError::Damaged("checksum mismatch"));
    }
    if bytes[28..32] != [0; 4] {
        return Err(HeaderError::Damaged("has non-zero reserved bytes"));
    }
    let version = u32::from_le_bytes(bytes[8..12].try_into().expect("4 bytes"));
    let flags = u32::from_le_bytes(bytes[12..16].try_into().expect("4 bytes"));
    if version != FORMAT_VERSION || flags != 0 {
        return Err(HeaderError::Version(version));
    }
    Ok(u64::from_le_bytes(
        bytes[16..24].try_into().expect("8 bytes"),
    ))
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn frame_round_trips_and_every_bit_flip_is_detected() {
        let mut frame = Vec::new();
        encode_frame(7, b"hello", &mut frame);
        assert_eq!(frame.len(), FRAME_HEADER_LEN + 5);
        let header = FrameHeader::parse(frame[..16].try_into().unwrap());
        assert_eq!((header.len, header.seq), (5, 7));
        assert!(header.matches(&frame[16..]));
        for bit in 0..frame.len() * 8 {
            let mut bad = frame.clone();
            bad[bit / 8] ^= 1 << (bit % 8);
            let h = FrameHeader::parse(bad[..16].try_into().unwrap());
            let payload = &bad[16..];
            assert!(!h.matches(payload), "flip of bit {bit} went unnoticed");
        }
    }

    #[test]
    fn log_header_round_trips_and_rejects_damage() {
        let h = encode_log_header(42);
        assert_eq!(decode_log_header(&h), Ok(42));
        assert_eq!(decode_log_header(&h[..10]), Err(HeaderError::Short(10)));
        for byte in 0..LOG_HEADER_LEN {
            let mut bad = h;
            bad[byte] ^= 0x10;
            assert!(decode_log_header(&bad).is_err(), "flip in byte {byte}");
        }
    }

    #[test]
    fn newer_version_is_named_not_called_damage() {
        let mut h = encode_log_header(1);
        h[8..12].copy_from_slice(&2u32.to_le_bytes());
        let crc = crc32fast::hash(&h[0..24]);
        h[24..28].copy_from_slice(&crc.to_le_bytes());
        assert_eq!(decode_log_header(&h), Err(HeaderError::Version(2)));
    }
}
