//! Memory that a long-running process touched only while it started, given back.
//!
//! A supervisor or a daemon parses its flags and config, opens its files and starts its
//! children once, then sits in a poll loop for days. The code of that start-up stays
//! mapped (and counted in its resident and private memory: nobody else maps a lone
//! executable), and the allocator keeps the heap pages it freed. [`release_startup_pages`]
//! gives them back once the start-up is over:
//!
//! - the executable's **code pages** leave this process's page tables (`MADV_DONTNEED` on
//!   its read-only executable mappings), and so do the pages of its read-only data
//!   mappings that hold no page of the process's own (`Anonymous: 0` in `smaps`, which
//!   leaves out the relocated data the loader wrote before making it read-only). They are
//!   clean copies of the file: the kernel keeps them in the page cache while it has room,
//!   and whatever runs or reads them again faults them back in (from the page cache, or
//!   from the file). Never writable data, relocations or the heap, so nothing is lost.
//! - the heap's **free pages** go back to the kernel (glibc's `malloc_trim(0)`; nothing
//!   elsewhere).
//! - the main thread's **stack pages below the frames live now** (with a 16 KiB margin),
//!   which the start-up's deepest calls dirtied once: memory below the stack pointer
//!   holds nothing live, and a page touched again is a fresh zero page. Called on another
//!   thread, the stack is left alone.
//!
//! Cost: the first run of any code path after the call takes a few page faults. Call it
//! once, when the process goes idle after starting (daemonic's supervisor does so the
//! first time its poll loop would sleep a second or more), not in a hot loop.

use crate::{Error, Result, sys};

/// Makes every thread of the process allocate from the main heap (glibc: `M_ARENA_MAX`
/// = 1); returns whether the allocator has such a setting. Call it first in `main`, before
/// any thread starts.
///
/// glibc gives each thread that allocates an arena of its own, a mapping whose first
/// pages stay resident after the thread goes quiet or ends (16 KiB of a 132 KiB arena,
/// and 64 MiB of address space, for daemonic's log archiver thread). A process whose
/// threads rarely allocate at once — a supervisor with a log thread — loses nothing to
/// lock contention by sharing one heap.
///
/// It also keeps every block of 128 KiB or more in a mapping of its own, unmapped when
/// freed (glibc's default, until the first such block is freed: then it raises that
/// threshold to the block's size, and the next block that big comes from the heap, whose
/// free pages it keeps). So a large buffer used for a while — daemonic's 1 MiB read
/// buffer of hot log pipes — goes back to the kernel when it is dropped.
pub fn use_one_heap() -> bool {
    sys::one_heap()
}

/// What [`release_startup_pages`] gave back.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Released {
    /// Bytes of the executable's code mappings whose pages were dropped from this
    /// process (address space advised, not all of it was resident).
    pub code_bytes: usize,
    /// Whether the allocator was asked to return its free pages (glibc only).
    pub heap_trimmed: bool,
    /// Bytes of the main thread's stack below the live frames whose pages were dropped
    /// (0 when called on another thread).
    pub stack_bytes: usize,
}

/// Drops the executable's code pages and the unused part of the main thread's stack from
/// this process and returns the heap's free pages to the kernel (see the
/// [module docs](self)). Safe to call at any time, from any thread.
pub fn release_startup_pages() -> Result<Released> {
    // One reading of the mappings for both (`/proc/self/smaps` is tens of KiB), freed
    // before the heap is trimmed, last.
    let dropped = std::fs::read_to_string("/proc/self/smaps").and_then(|smaps| {
        Ok((
            sys::drop_executable_code_pages(&smaps)?,
            sys::drop_unused_stack(&smaps)?,
        ))
    });
    let heap_trimmed = sys::trim_heap();
    let (code_bytes, stack_bytes) = dropped.map_err(|e| {
        Error::io(
            "drop the start-up's code and stack pages (/proc/self/smaps)",
            e,
        )
    })?;
    Ok(Released {
        code_bytes,
        heap_trimmed,
        stack_bytes,
    })
}
