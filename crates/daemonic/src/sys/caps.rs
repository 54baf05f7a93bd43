//! Capability system calls: `capset(2)` and the `prctl` options for the ambient and the
//! bounding sets. Each is one system call on stack data, async-signal-safe.

use std::io;

use super::check;

/// `capset(2)` on the calling thread: effective, permitted and inheritable sets, each a
/// 64-bit mask of capability numbers. Async-signal-safe (one system call, stack data only).
///
/// Capabilities are per thread: callers use it only in a single-threaded process or
/// between fork and exec (see `privileges`).
pub(crate) fn capset(effective: u64, permitted: u64, inheritable: u64) -> io::Result<()> {
    /// `struct __user_cap_header_struct` of `linux/capability.h`.
    #[repr(C)]
    struct Header {
        version: u32,
        pid: libc::c_int,
    }
    /// `struct __user_cap_data_struct`; version 3 takes two of them (bits 0–31, 32–63).
    #[repr(C)]
    #[derive(Clone, Copy)]
    struct Data {
        effective: u32,
        permitted: u32,
        inheritable: u32,
    }
    const LINUX_CAPABILITY_VERSION_3: u32 = 0x2008_0522;
    let mut header = Header {
        version: LINUX_CAPABILITY_VERSION_3,
        pid: 0,
    };
    let half = |shift: u32| Data {
        effective: (effective >> shift) as u32,
        permitted: (permitted >> shift) as u32,
        inheritable: (inheritable >> shift) as u32,
    };
    let data = [half(0), half(32)];
    // SAFETY: both pointers refer to live, properly laid out `repr(C)` values on this stack
    // frame, and version 3 tells the kernel to read exactly two `Data` entries; pid 0 means
    // the calling thread. The kernel may write the preferred version into the header,
    // which is why it is passed mutably.
    check(unsafe { libc::syscall(libc::SYS_capset, &mut header as *mut Header, data.as_ptr()) })?;
    Ok(())
}

/// `prctl(PR_CAP_AMBIENT, PR_CAP_AMBIENT_RAISE, cap)`: keep `cap` across `execve` of a
/// program without file capabilities. It must be in the permitted and inheritable sets.
/// Async-signal-safe.
pub(crate) fn cap_ambient_raise(cap: u8) -> io::Result<()> {
    // SAFETY: this prctl option takes integers only and touches no memory of ours.
    check(unsafe {
        libc::prctl(
            libc::PR_CAP_AMBIENT,
            libc::PR_CAP_AMBIENT_RAISE,
            libc::c_ulong::from(cap),
            0 as libc::c_ulong,
            0 as libc::c_ulong,
        )
    } as libc::c_long)?;
    Ok(())
}

/// `prctl(PR_CAPBSET_DROP, cap)`: remove `cap` from the bounding set, so that no program
/// run later (not even a set-user-ID-root one) can gain it. Needs `CAP_SETPCAP`.
/// Async-signal-safe.
pub(crate) fn capbset_drop(cap: u8) -> io::Result<()> {
    // SAFETY: this prctl option takes integers only and touches no memory of ours.
    check(unsafe {
        libc::prctl(
            libc::PR_CAPBSET_DROP,
            libc::c_ulong::from(cap),
            0 as libc::c_ulong,
            0 as libc::c_ulong,
            0 as libc::c_ulong,
        )
    } as libc::c_long)?;
    Ok(())
}
