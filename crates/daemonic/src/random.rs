//! Unguessable tokens (socket names, re-exec markers) from the kernel's random source.

use std::io::Read;

use crate::{Error, Result};

/// 128 random bits as 32 lowercase hex digits.
pub(crate) fn token() -> Result<String> {
    let mut bytes = [0u8; 16];
    std::fs::File::open("/dev/urandom")
        .and_then(|mut f| f.read_exact(&mut bytes))
        .map_err(|e| Error::io("read /dev/urandom", e))?;
    Ok(bytes.iter().map(|b| format!("{b:02x}")).collect())
}
