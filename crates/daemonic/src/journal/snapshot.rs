//! The snapshot file: its format, loading it, and replacing it atomically.
//!
//! ```text
//! snapshot (40-byte header + payload)
//!   0  magic      8  b"dmncsnp\0"
//!   8  version    4  FORMAT_VERSION (1)
//!  12  flags      4  0
//!  16  seq        8  sequence number of the last event the state includes (0: none)
//!  24  len        8  payload length in bytes
//!  32  crc        4  CRC-32 of bytes 0..32 followed by the payload
//!  36  reserved   4  0 (checked: a reader rejects other values)
//!  40  payload  len  the state, as encoded by `State::encode`
//! ```
//!
//! The file is only ever replaced whole: written to `snapshot.tmp`, fsynced, renamed over
//! `snapshot`, and the directory fsynced. So `snapshot` is always either the old complete
//! snapshot or the new complete one, and a damaged `snapshot` is real corruption (reported,
//! never skipped: the log records it covers may already be gone).

use std::fs::OpenOptions;
use std::io::Write;
use std::path::Path;

use super::fs::sync_dir;
use super::record::FORMAT_VERSION;
use super::{SnapshotStep, State};
use crate::error::{Error, ErrorKind, Result};

/// File name of the current snapshot.
pub(crate) const FILE: &str = "snapshot";
/// File name a new snapshot is written under before it is renamed into place.
pub(crate) const TEMP_FILE: &str = "snapshot.tmp";
const MAGIC: [u8; 8] = *b"dmncsnp\0";
const HEADER_LEN: usize = 40;

/// Encodes a snapshot file's full contents.
fn encode(seq: u64, payload: &[u8]) -> Vec<u8> {
    let mut bytes = Vec::with_capacity(HEADER_LEN + payload.len());
    bytes.extend_from_slice(&MAGIC);
    bytes.extend_from_slice(&FORMAT_VERSION.to_le_bytes());
    bytes.extend_from_slice(&0u32.to_le_bytes());
    bytes.extend_from_slice(&seq.to_le_bytes());
    bytes.extend_from_slice(&(payload.len() as u64).to_le_bytes());
    let mut h = crc32fast::Hasher::new();
    h.update(&bytes[0..32]);
    h.update(payload);
    bytes.extend_from_slice(&h.finalize().to_le_bytes());
    bytes.extend_from_slice(&0u32.to_le_bytes());
    bytes.extend_from_slice(payload);
    bytes
}

/// Checks a snapshot file's bytes; returns the covered seq and the payload.
fn decode(bytes: &[u8]) -> std::result::Result<(u64, &[u8]), String> {
    if bytes.len() < HEADER_LEN {
        return Err(format!("{} bytes is shorter than the header", bytes.len()));
    }
    if bytes[0..8] != MAGIC {
        return Err("wrong magic bytes".into());
    }
    let u32_at = |i: usize| u32::from_le_bytes(bytes[i..i + 4].try_into().expect("4 bytes"));
    let u64_at = |i: usize| u64::from_le_bytes(bytes[i..i + 8].try_into().expect("8 bytes"));
    let (seq, len, stored) = (u64_at(16), u64_at(24), u32_at(32));
    if len != (bytes.len() - HEADER_LEN) as u64 {
        return Err(format!(
            "header says {len} payload bytes, file has {}",
            bytes.len() - HEADER_LEN
        ));
    }
    let payload = &bytes[HEADER_LEN..];
    let mut h = crc32fast::Hasher::new();
    h.update(&bytes[0..32]);
    h.update(payload);
    if h.finalize() != stored {
        return Err("checksum mismatch".into());
    }
    if u32_at(36) != 0 {
        return Err("reserved header bytes are not zero".into());
    }
    if u32_at(8) != FORMAT_VERSION || u32_at(12) != 0 {
        return Err(format!(
            "format version {} is not supported (this build reads version {FORMAT_VERSION})",
            u32_at(8)
        ));
    }
    Ok((seq, payload))
}

/// Loads `dir/snapshot`: `None` if there is none yet, else the state and the seq it covers.
pub(crate) fn load<S: State>(dir: &Path) -> Result<Option<(S, u64)>> {
    let path = dir.join(FILE);
    let bytes = match std::fs::read(&path) {
        Ok(b) => b,
        Err(e) if e.kind() == std::io::ErrorKind::NotFound => return Ok(None),
        Err(e) => return Err(Error::io(format!("read {}", path.display()), e)),
    };
    let (seq, payload) = decode(&bytes).map_err(|why| {
        Error::new(
            ErrorKind::Corrupt,
            format!("recover {}: snapshot {why}", path.display()),
        )
    })?;
    let state = S::decode(payload).map_err(|e| {
        Error::new(
            ErrorKind::Corrupt,
            format!(
                "recover {}: checksum is good but State::decode failed: {e}",
                path.display()
            ),
        )
    })?;
    Ok(Some((state, seq)))
}

/// Replaces `dir/snapshot` with one holding `payload` at `seq`, atomically and durably.
/// `step` is told after each durable step (see [`SnapshotStep`]).
pub(crate) fn write(
    dir: &Path,
    seq: u64,
    payload: &[u8],
    step: &mut dyn FnMut(SnapshotStep),
) -> Result<()> {
    let temp = dir.join(TEMP_FILE);
    let path = dir.join(FILE);
    // truncate(true): a leftover temp file from a crashed snapshot is simply overwritten.
    let mut file = OpenOptions::new()
        .write(true)
        .create(true)
        .truncate(true)
        .open(&temp)
        .map_err(|e| Error::io(format!("create {}", temp.display()), e))?;
    file.write_all(&encode(seq, payload))
        .map_err(|e| Error::io(format!("write {}", temp.display()), e))?;
    file.sync_all()
        .map_err(|e| Error::io(format!("fsync {}", temp.display()), e))?;
    drop(file);
    step(SnapshotStep::TempWritten);
    std::fs::rename(&temp, &path).map_err(|e| {
        Error::io(
            format!("rename {} to {}", temp.display(), path.display()),
            e,
        )
    })?;
    step(SnapshotStep::Renamed);
    sync_dir(dir)?;
    step(SnapshotStep::DirSynced);
    Ok(())
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn round_trips_and_rejects_every_bit_flip() {
        let bytes = encode(9, b"state bytes");
        assert_eq!(decode(&bytes), Ok((9, &b"state bytes"[..])));
        for bit in 0..bytes.len() * 8 {
            let mut bad = bytes.clone();
            bad[bit / 8] ^= 1 << (bit % 8);
            assert!(decode(&bad).is_err(), "flip of bit {bit} went unnoticed");
        }
    }

    #[test]
    fn truncated_snapshot_is_rejected() {
        let bytes = encode(3, b"abc");
        for len in 0..bytes.len() {
            assert!(decode(&bytes[..len]).is_err(), "cut at {len}");
        }
    }
}
