//! Counting the rewrites of a file (a status file) from outside, with inotify.

/// The renames onto one file of a directory from now on, counted with inotify
/// (`IN_MOVED_TO`): each rewrite of a status file is one (a temporary file renamed over it).
/// `IN_CREATE` is watched too: inotify merges an event into the one queued before it when
/// both are the same, and the temporary file's creation comes between two renames.
pub struct Renames {
    fd: std::os::fd::OwnedFd,
}

impl Renames {
    pub fn watch(dir: &std::path::Path) -> Renames {
        use std::os::fd::FromRawFd;
        use std::os::unix::ffi::OsStrExt;
        let path = std::ffi::CString::new(dir.as_os_str().as_bytes()).unwrap();
        // SAFETY: plain system calls on a new descriptor and a NUL-terminated path.
        unsafe {
            let fd = libc::inotify_init1(libc::IN_NONBLOCK | libc::IN_CLOEXEC);
            assert!(
                fd >= 0,
                "inotify_init1: {}",
                std::io::Error::last_os_error()
            );
            let fd = std::os::fd::OwnedFd::from_raw_fd(fd);
            let wd = libc::inotify_add_watch(
                std::os::fd::AsRawFd::as_raw_fd(&fd),
                path.as_ptr(),
                libc::IN_MOVED_TO | libc::IN_CREATE,
            );
            assert!(
                wd >= 0,
                "inotify_add_watch: {}",
                std::io::Error::last_os_error()
            );
            Renames { fd }
        }
    }

    /// How many renames onto `name` were seen (all queued events are read).
    pub fn onto(&self, name: &str) -> usize {
        let mut file = std::fs::File::from(self.fd.try_clone().unwrap());
        let mut events = Vec::new();
        let mut buf = [0u8; 64 * 1024];
        loop {
            match std::io::Read::read(&mut file, &mut buf) {
                Ok(n) => events.extend_from_slice(&buf[..n]),
                Err(e) if e.kind() == std::io::ErrorKind::WouldBlock => break,
                Err(e) => panic!("read inotify: {e}"),
            }
        }
        // struct inotify_event: wd, mask, cookie, len (4 bytes each), then `len` bytes of
        // NUL-padded name.
        let (mut at, mut count) = (0, 0);
        while at + 16 <= events.len() {
            let mask = u32::from_ne_bytes(events[at + 4..at + 8].try_into().unwrap());
            assert_eq!(mask & libc::IN_Q_OVERFLOW, 0, "inotify queue overflowed");
            let len = u32::from_ne_bytes(events[at + 12..at + 16].try_into().unwrap()) as usize;
            let raw = &events[at + 16..at + 16 + len];
            let end = raw.iter().position(|&b| b == 0).unwrap_or(len);
            count += usize::from(mask & libc::IN_MOVED_TO != 0 && &raw[..end] == name.as_bytes());
            at += 16 + len;
        }
        count
    }
}
