//! Memory that a long-running process touched only while it started, given back.
//!
//! A supervisor or a daemon parses its flags and config, opens its files and starts its
//! children once, then sits in a poll loop for days. The code of that start-up stays
//! mapped (and counted in its resident and private memory: nobody else maps a lone
//! executable), and the allocator keeps the heap pages it freed. [`release_startup_pages`]
//! gives both back once the start-up is over:
//!
//! - the executable's **code pages** leave this process's page tables (`MADV_DONTNEED` on
//!   its read-only executable mappings). They are clean copies of the file: the kernel
//!   keeps them in the page cache while it has room, and any code that runs again faults
//!   its pages back in (from the page cache, or from the file). Only code — never data,
//!   relocations or the heap — is dropped, so nothing is lost.
//! - the heap's **free pages** go back to the kernel (glibc's `malloc_trim(0)`; nothing
//!   elsewhere).
//!
//! Cost: the first run of any code path after the call takes a few page faults. Call it
//! once, when the process goes idle after starting (daemonic's supervisor does so the
//! first time its poll loop would sleep a second or more), not in a hot loop.

use crate::{Error, Result, sys};

/// What [`release_startup_pages`] gave back.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Released {
    /// Bytes of the executable's code mappings whose pages were dropped from this
    /// process (address space advised, not all of it was resident).
    pub code_bytes: usize,
    /// Whether the allocator was asked to return its free pages (glibc only).
    pub heap_trimmed: bool,
}

/// Drops the executable's code pages from this process and returns the heap's free pages
/// to the kernel (see the [module docs](self)). Safe to call at any time, from any thread.
pub fn release_startup_pages() -> Result<Released> {
    let heap_trimmed = sys::trim_heap();
    let code_bytes = sys::drop_executable_code_pages()
        .map_err(|e| Error::io("drop the executable's code pages (/proc/self/maps)", e))?;
    Ok(Released {
        code_bytes,
        heap_trimmed,
    })
}
