//! The fd store: descriptors a program hands the supervisor to keep across its restarts
//! (systemd's `FDSTORE=1`, `FileDescriptorStoreMax=`).
//!
//! A notify datagram from the service's main process (the only sender whose datagrams are
//! read at all, see `supervisor::notify`) with `FDSTORE=1` and descriptors attached
//! (`SCM_RIGHTS`) stores them under its `FDNAME=` (`stored` without one); `FDSTOREREMOVE=1`
//! with `FDNAME=` closes every stored descriptor of that name. The next start gets them
//! back after the `--socket` sockets, in the order stored, named in `LISTEN_FDNAMES` —
//! what libsystemd's `sd_listen_fds_with_names` and the library's
//! [`Activation`](daemonic::systemd::activation::Activation) read.
//!
//! Bounded, like systemd: at most `--fd-store-max` descriptors (default 64; 0 turns the
//! store off). Descriptors beyond it, and those of a datagram without `FDSTORE=1`, are
//! closed at once; a descriptor already stored (the same file: device and inode, as
//! systemd compares them) is not stored twice. Nothing a service sends makes the store
//! grow past its bound. The store is closed when the unit's supervisor ends.

use std::os::fd::{AsFd, BorrowedFd, OwnedFd};

use daemonic::systemd::listen::Message;
use daemonic::systemd::notify::valid_fd_name;
use nix::sys::stat::fstat;

/// The default of `--fd-store-max`.
pub const DEFAULT_MAX: usize = 64;
/// systemd's name for a stored descriptor without `FDNAME=`.
const DEFAULT_NAME: &str = "stored";

#[derive(Debug)]
pub struct FdStore {
    max: usize,
    fds: Vec<(String, OwnedFd)>,
    /// The start (generation) whose refusals were last noted: one note per start.
    noted: Option<u64>,
}

/// What one datagram did to the store, for the supervisor's log.
#[derive(Debug, Default, PartialEq, Eq)]
pub struct Applied {
    pub stored: usize,
    pub removed: usize,
    /// Closed: over the bound, without FDSTORE=1, or under an invalid name.
    pub refused: usize,
    /// Already in the store.
    pub duplicates: usize,
}

impl FdStore {
    pub fn new(max: usize) -> FdStore {
        FdStore {
            max,
            fds: Vec::new(),
            noted: None,
        }
    }

    /// Applies one datagram's store messages to its descriptors (which are closed unless
    /// stored).
    pub fn apply(&mut self, messages: &[Message], fds: Vec<OwnedFd>) -> Applied {
        let mut applied = Applied::default();
        let store = messages.iter().any(|m| matches!(m, Message::FdStore));
        let remove = messages.iter().any(|m| matches!(m, Message::FdStoreRemove));
        let name = messages.iter().rev().find_map(|m| match m {
            Message::FdName(n) => Some(n.as_str()),
            _ => None,
        });
        if remove && let Some(n) = name {
            let before = self.fds.len();
            self.fds.retain(|(stored, _)| stored != n);
            applied.removed = before - self.fds.len();
        }
        let name = name.unwrap_or(DEFAULT_NAME);
        for fd in fds {
            if !store || !valid_fd_name(name) || self.fds.len() >= self.max {
                applied.refused += 1;
            } else if self.holds(&fd) {
                applied.duplicates += 1;
            } else {
                self.fds.push((name.to_string(), fd));
                applied.stored += 1;
            }
        }
        applied
    }

    fn holds(&self, fd: &OwnedFd) -> bool {
        let Ok(new) = fstat(fd) else { return false };
        self.fds.iter().any(|(_, old)| {
            fstat(old).is_ok_and(|o| (o.st_dev, o.st_ino) == (new.st_dev, new.st_ino))
        })
    }

    /// Whether refusals of start `generation` are to be noted: the first time only, so a
    /// program sending descriptors in a loop cannot flood the log.
    pub fn note_refusals_of(&mut self, generation: u64) -> bool {
        let first = self.noted != Some(generation);
        self.noted = Some(generation);
        first
    }

    /// The stored descriptors with their names, in the order stored.
    pub fn iter(&self) -> impl Iterator<Item = (&str, BorrowedFd<'_>)> {
        self.fds.iter().map(|(n, fd)| (n.as_str(), fd.as_fd()))
    }

    pub fn len(&self) -> usize {
        self.fds.len()
    }

    pub fn is_empty(&self) -> bool {
        self.fds.is_empty()
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    /// `n` distinct files (the read ends of `n` pipes; a pipe's two ends are one file).
    fn pipe_fds(n: usize) -> Vec<OwnedFd> {
        (0..n).map(|_| nix::unistd::pipe().unwrap().0).collect()
    }

    fn named(n: &str) -> Message {
        Message::FdName(n.into())
    }

    #[test]
    fn stores_under_the_name_and_removes_by_name() {
        let mut s = FdStore::new(8);
        let a = s.apply(&[Message::FdStore, named("db")], pipe_fds(2));
        assert_eq!(a.stored, 2);
        s.apply(&[Message::FdStore], pipe_fds(1));
        let names: Vec<&str> = s.iter().map(|(n, _)| n).collect();
        assert_eq!(names, ["db", "db", "stored"]);
        let a = s.apply(&[Message::FdStoreRemove, named("db")], Vec::new());
        assert_eq!(a.removed, 2);
        assert_eq!(s.len(), 1);
    }

    #[test]
    fn never_grows_past_its_bound_and_refuses_what_was_not_asked_to_be_stored() {
        let mut s = FdStore::new(3);
        let a = s.apply(&[Message::FdStore], pipe_fds(5));
        assert_eq!((a.stored, a.refused, s.len()), (3, 2, 3));
        let a = s.apply(&[Message::FdStore], pipe_fds(1));
        assert_eq!((a.stored, a.refused), (0, 1));
        let mut s = FdStore::new(3);
        let a = s.apply(&[named("x")], pipe_fds(2));
        assert_eq!((a.stored, a.refused, s.len()), (0, 2, 0));
        let a = s.apply(&[Message::FdStore, named("a:b")], pipe_fds(1));
        assert_eq!((a.stored, a.refused), (0, 1));
        assert!(
            FdStore::new(0)
                .apply(&[Message::FdStore], pipe_fds(1))
                .refused
                == 1
        );
    }

    #[test]
    fn the_same_file_is_stored_once() {
        let mut s = FdStore::new(8);
        let (r, w) = nix::unistd::pipe().unwrap();
        let dup = r.try_clone().unwrap();
        let a = s.apply(&[Message::FdStore], vec![r, w]);
        assert_eq!((a.stored, a.duplicates), (1, 1));
        let a = s.apply(&[Message::FdStore], vec![dup]);
        assert_eq!((a.stored, a.duplicates, s.len()), (0, 1, 1));
    }
}
