//! Reading one log generation: every good record in order, then the verdict on what follows.
//!
//! # The torn-tail rule
//!
//! The scanner reads frames in order. The first frame that is incomplete, declares a length
//! over [`MAX_RECORD_LEN`], fails its checksum, or carries a sequence number other than the
//! next one expected is the *bad frame*; nothing from it on is applied.
//!
//! It then searches **every byte offset** after the start of the bad frame for a *valid
//! frame*: complete, checksum matching, with a sequence number greater than the last good
//! one. (Searching every offset, not just where the bad frame's length points, matters: a
//! flipped bit in a length field would otherwise hide everything after it.)
//!
//! - No valid frame follows: the damage is a **torn tail** — a write that was in flight when
//!   the process or the machine died — so recovery cuts the file at the bad frame and
//!   reports the cut. A frame damaged *after* it was acknowledged (bit rot) with nothing
//!   written after it looks exactly the same; it is cut too, and the report is what keeps
//!   that loss from being silent.
//! - A valid frame follows: records exist beyond the damage, and they may have been
//!   acknowledged. That is **corruption before the tail**, and recovery refuses to guess
//!   (it fails with [`ErrorKind::Corrupt`] unless the caller asked for repair).
//!
//! A log file ends in zeros where space was preallocated: a frame header of zero bytes
//! with nothing but zeros after it is the clean end of the log, not damage. (No real frame
//! has a zero header: sequence numbers start at 1.)
//!
//! A CRC-32 accepts a random 16+n byte window with probability 2⁻³², and the window must
//! also have a plausible length and sequence number, so garbage is not mistaken for a
//! valid frame in practice.

use std::fs::File;
use std::io::{BufReader, Read, Seek, SeekFrom};
use std::path::Path;

use super::record::{
    FRAME_HEADER_LEN, FrameHeader, HeaderError, LOG_HEADER_LEN, MAX_RECORD_LEN, decode_log_header,
};
use crate::error::{Error, ErrorKind, Result};

/// What scanning one generation found.
#[derive(Debug)]
pub(crate) struct Scan {
    /// Byte offset just past the last good frame (0 if the header itself is bad).
    pub valid_len: u64,
    /// Sequence number of the last good record; `start_seq - 1` if there is none.
    pub last_seq: u64,
    /// The first damage, if any.
    pub damage: Option<Damage>,
}

/// The first bad spot in a generation.
#[derive(Debug)]
pub(crate) struct Damage {
    /// Where the bad frame (or the bad header, at 0) starts.
    pub offset: u64,
    /// The file's length: `file_len - offset` bytes are lost if the file is cut here.
    pub file_len: u64,
    /// What is wrong, for the report: "checksum mismatch", "incomplete record", …
    pub reason: String,
    /// The first valid frame after the damage, as `(offset, seq)`. Its presence is what
    /// makes this corruption rather than a torn tail.
    pub later: Option<(u64, u64)>,
}

impl Damage {
    /// Whether the file header (not a record) is what is damaged.
    pub fn in_header(&self) -> bool {
        self.offset == 0
    }
}

/// Reads the generation at `path`, which by its name starts at `start_seq`, and calls
/// `on_record(seq, payload)` for each good record in order.
pub(crate) fn scan_file(
    path: &Path,
    start_seq: u64,
    mut on_record: impl FnMut(u64, &[u8]) -> Result<()>,
) -> Result<Scan> {
    let file = File::open(path).map_err(|e| io_err("open", path, e))?;
    let file_len = file.metadata().map_err(|e| io_err("stat", path, e))?.len();
    let mut reader = BufReader::with_capacity(1 << 20, file);

    if let Some(reason) = header_problem(&mut reader, path, start_seq)? {
        let mut file = reader.into_inner();
        let later = find_valid_frame(&mut file, path, 1, file_len, start_seq)?;
        return Ok(Scan {
            valid_len: 0,
            last_seq: start_seq - 1,
            damage: Some(Damage {
                offset: 0,
                file_len,
                reason,
                later,
            }),
        });
    }

    let (offset, expected, reason) =
        scan_frames(&mut reader, path, start_seq, file_len, &mut on_record)?;
    let damage = match reason {
        None => None,
        Some(reason) => {
            let mut file = reader.into_inner();
            let later = find_valid_frame(&mut file, path, offset + 1, file_len, expected)?;
            Some(Damage {
                offset,
                file_len,
                reason,
                later,
            })
        }
    };
    Ok(Scan {
        valid_len: offset,
        last_seq: expected - 1,
        damage,
    })
}

fn io_err(op: &str, path: &Path, e: std::io::Error) -> Error {
    Error::io(format!("{op} {}", path.display()), e)
}

/// What is wrong with the file header, if anything (`None`: it is whole and names
/// `start_seq`). A format version this build does not know is an error, not damage.
fn header_problem(
    reader: &mut BufReader<File>,
    path: &Path,
    start_seq: u64,
) -> Result<Option<String>> {
    let mut header = [0u8; LOG_HEADER_LEN];
    let n = read_full(reader, &mut header).map_err(|e| io_err("read", path, e))?;
    Ok(match decode_log_header(&header[..n]) {
        Ok(start) if start == start_seq => None,
        Ok(start) => Some(format!("header says the file starts at seq {start}")),
        Err(HeaderError::Version(v)) => {
            return Err(Error::new(
                ErrorKind::InvalidInput,
                format!("recover {}: {}", path.display(), HeaderError::Version(v)),
            ));
        }
        Err(e) => Some(e.to_string()),
    })
}

/// Reads the frames after the header in order, calling `on_record` for each good one, up
/// to the clean end or the bad frame: (the offset just past the last good frame, the
/// sequence number expected next, what is wrong with the bad frame if there is one).
fn scan_frames(
    reader: &mut BufReader<File>,
    path: &Path,
    start_seq: u64,
    file_len: u64,
    on_record: &mut impl FnMut(u64, &[u8]) -> Result<()>,
) -> Result<(u64, u64, Option<String>)> {
    let io_err = |op: &str, e| io_err(op, path, e);
    let mut offset = LOG_HEADER_LEN as u64;
    let mut expected = start_seq;
    let mut frame_header = [0u8; FRAME_HEADER_LEN];
    let mut payload = Vec::new();
    let reason = loop {
        let n = read_full(reader, &mut frame_header).map_err(|e| io_err("read", e))?;
        if n == 0 {
            break None;
        }
        // Preallocated space (see `wal`): zeros from here to the end are not a record.
        // Zeros followed by anything else fall through and are judged as damage below.
        if frame_header[..n] == [0; FRAME_HEADER_LEN][..n] {
            let mut rest = reader.get_ref().try_clone().map_err(|e| io_err("dup", e))?;
            rest.seek(SeekFrom::Start(offset + n as u64))
                .map_err(|e| io_err("seek", e))?;
            if only_zeros(&mut rest).map_err(|e| io_err("read", e))? {
                break None;
            }
        }
        if n < FRAME_HEADER_LEN {
            break Some(format!(
                "incomplete frame header ({n} of {FRAME_HEADER_LEN} bytes)"
            ));
        }
        let h = FrameHeader::parse(&frame_header);
        if h.len > MAX_RECORD_LEN {
            break Some(format!("record length {} exceeds {MAX_RECORD_LEN}", h.len));
        }
        let end = offset + (FRAME_HEADER_LEN as u64) + u64::from(h.len);
        if end > file_len {
            break Some(format!(
                "incomplete record ({} of {} bytes)",
                file_len - offset,
                end - offset
            ));
        }
        payload.resize(h.len as usize, 0);
        reader
            .read_exact(&mut payload)
            .map_err(|e| io_err("read", e))?;
        if !h.matches(&payload) {
            break Some("checksum mismatch".to_string());
        }
        if h.seq != expected {
            break Some(format!(
                "sequence number {} where {expected} was expected",
                h.seq
            ));
        }
        on_record(h.seq, &payload)?;
        offset = end;
        expected += 1;
    };
    Ok((offset, expected, reason))
}

/// Reads until `buf` is full or the end of input; returns how many bytes were read.
fn read_full(r: &mut impl Read, buf: &mut [u8]) -> std::io::Result<usize> {
    let mut filled = 0;
    while filled < buf.len() {
        match r.read(&mut buf[filled..]) {
            Ok(0) => break,
            Ok(n) => filled += n,
            Err(e) if e.kind() == std::io::ErrorKind::Interrupted => {}
            Err(e) => return Err(e),
        }
    }
    Ok(filled)
}

/// Whether everything left in `r` is zero bytes.
fn only_zeros(r: &mut impl Read) -> std::io::Result<bool> {
    const CHUNK: usize = 1 << 16;
    let zeros = vec![0u8; CHUNK];
    let mut buf = vec![0u8; CHUNK];
    loop {
        let n = read_full(r, &mut buf)?;
        // Slice equality is a memcmp: fast even in an unoptimized build.
        if buf[..n] != zeros[..n] {
            return Ok(false);
        }
        if n < buf.len() {
            return Ok(true);
        }
    }
}

/// Searches every offset in `from..file_len` for a valid frame with `seq >= min_seq`.
///
/// This runs only when damage was found, so it reads the rest of the file into memory
/// rather than streaming: simple, and the cost is paid on the error path alone.
fn find_valid_frame(
    file: &mut File,
    path: &Path,
    from: u64,
    file_len: u64,
    min_seq: u64,
) -> Result<Option<(u64, u64)>> {
    if from >= file_len {
        return Ok(None);
    }
    let mut rest = Vec::new();
    file.seek(SeekFrom::Start(from))
        .and_then(|_| file.read_to_end(&mut rest))
        .map_err(|e| Error::io(format!("read {}", path.display()), e))?;
    // No valid frame can carry a seq further ahead than the number of frames that fit.
    let max_seq = min_seq.saturating_add(rest.len() as u64 / FRAME_HEADER_LEN as u64);
    let end = rest.len().saturating_sub(FRAME_HEADER_LEN - 1);
    let mut next = 0;
    while next < end {
        let q = next;
        next += 1;
        // A frame's seq (bytes 8..16) is at least `min_seq`; when that is not 0, no frame
        // starts where those bytes are zeros, so a run of zeros (preallocated space after
        // a torn tail: megabytes) is skipped up to 15 bytes before its end.
        if min_seq > 0 {
            let nonzero = first_nonzero(&rest, q + 8);
            if nonzero >= q + FRAME_HEADER_LEN {
                next = nonzero + 1 - FRAME_HEADER_LEN;
                continue;
            }
        }
        let h = FrameHeader::parse(rest[q..q + FRAME_HEADER_LEN].try_into().expect("16 bytes"));
        let body = q + FRAME_HEADER_LEN;
        if h.len > MAX_RECORD_LEN || h.seq < min_seq || h.seq > max_seq {
            continue;
        }
        if let Some(payload) = rest.get(body..body + h.len as usize)
            && h.matches(payload)
        {
            return Ok(Some((from + q as u64, h.seq)));
        }
    }
    Ok(None)
}

/// The index of the first non-zero byte of `bytes` at or after `from` (`bytes.len()` if none).
fn first_nonzero(bytes: &[u8], from: usize) -> usize {
    const CHUNK: usize = 4096;
    let zeros = [0u8; CHUNK];
    let mut i = from.min(bytes.len());
    // Whole zero chunks by memcmp (fast even unoptimized), then byte by byte.
    while i + CHUNK <= bytes.len() && bytes[i..i + CHUNK] == zeros {
        i += CHUNK;
    }
    bytes[i..]
        .iter()
        .position(|&b| b != 0)
        .map_or(bytes.len(), |p| i + p)
}
