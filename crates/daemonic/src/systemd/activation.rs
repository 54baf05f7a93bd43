//! Socket activation, receiving side: the listening sockets (and fd-store descriptors)
//! that systemd — or the daemonic supervisor — opened for this process, by name.
//!
//! ## The protocol
//!
//! The manager passes descriptors 3, 4, … `3+LISTEN_FDS-1` across `exec`, and says in
//! the environment
//!
//! - `LISTEN_FDS=n` — how many;
//! - `LISTEN_PID=pid` — for which process. Children inherit the environment but must not
//!   take their parent's sockets, so a `LISTEN_PID` that is not ours (or none) means
//!   "not for us": [`Activation::from_env`] then returns an empty set, not an error;
//! - `LISTEN_FDNAMES=a:b:…` — optional, one name per descriptor (`FileDescriptorName=` of
//!   the `.socket` unit, or the `FDNAME=` a descriptor was stored under). Without it every
//!   descriptor is named `unknown`; with a different number of names than descriptors the
//!   environment is inconsistent and that *is* an error.
//!
//! ## What `from_env` does
//!
//! It takes the descriptors once per process (a second call is an error: two owners of
//! one descriptor would close it twice), checks each is open, sets close-on-exec on it (a
//! program we later spawn must not inherit our listeners by accident), and can remove the
//! three variables from the environment ([`UnsetEnv::Yes`]) so that children do not see
//! them either. Removing variables is only sound before the program starts threads (it is
//! refused with [`ErrorKind::Threaded`] once more than one runs); if it
//! already has some, pass [`UnsetEnv::No`] and strip the variables from each child's
//! environment with `Command::env_remove` instead.
//!
//! ```no_run
//! use daemonic::systemd::activation::{Activation, UnsetEnv};
//!
//! # fn main() -> daemonic::Result<()> {
//! let mut sockets = Activation::from_env(UnsetEnv::Yes)?;
//! // FileDescriptorName=http in the .socket unit; bind ourselves when not activated.
//! let http = match sockets.tcp_listener("http")? {
//!     Some(listener) => listener,
//!     None => std::net::TcpListener::bind("127.0.0.1:8080").map_err(|e| daemonic::Error::io("bind 127.0.0.1:8080", e))?,
//! };
//! # drop(http);
//! # Ok(())
//! # }
//! ```

use std::net::{TcpListener, UdpSocket};
use std::os::fd::{AsFd, AsRawFd, BorrowedFd, OwnedFd};
use std::os::unix::net::UnixListener;
use std::sync::atomic::{AtomicBool, Ordering};

use nix::sys::socket::{
    AddressFamily, SockType, SockaddrLike, SockaddrStorage, getsockname, getsockopt, sockopt,
};
use nix::unistd::Pid;

use crate::{Error, ErrorKind, Result};

/// The first descriptor passed (`SD_LISTEN_FDS_START`).
pub const LISTEN_FDS_START: i32 = 3;

/// The variables of the protocol, for `Command::env_remove`.
pub const VARIABLES: [&str; 3] = ["LISTEN_FDS", "LISTEN_PID", "LISTEN_FDNAMES"];

/// Whether [`Activation::from_env`] removes the `LISTEN_*` variables from the environment.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum UnsetEnv {
    /// Remove them (only before the program starts threads: refused with
    /// [`ErrorKind::Threaded`] otherwise).
    Yes,
    /// Leave the environment alone.
    No,
}

/// One passed descriptor and its name.
#[derive(Debug)]
pub struct ListenFd {
    name: String,
    fd: OwnedFd,
}

impl ListenFd {
    /// Its name from `LISTEN_FDNAMES` (`unknown` if none was given).
    pub fn name(&self) -> &str {
        &self.name
    }

    /// The descriptor itself (for kinds not covered below: a FIFO, a stored memfd, …).
    pub fn into_fd(self) -> OwnedFd {
        self.fd
    }

    /// As a listening TCP socket; an error if it is anything else.
    pub fn into_tcp_listener(self) -> Result<TcpListener> {
        self.expect(
            &[AddressFamily::Inet, AddressFamily::Inet6],
            SockType::Stream,
            true,
            "a listening TCP socket",
        )?;
        Ok(TcpListener::from(self.fd))
    }

    /// As a listening unix stream socket; an error if it is anything else.
    pub fn into_unix_listener(self) -> Result<UnixListener> {
        self.expect(
            &[AddressFamily::Unix],
            SockType::Stream,
            true,
            "a listening unix stream socket",
        )?;
        Ok(UnixListener::from(self.fd))
    }

    /// As a UDP socket; an error if it is anything else.
    pub fn into_udp_socket(self) -> Result<UdpSocket> {
        self.expect(
            &[AddressFamily::Inet, AddressFamily::Inet6],
            SockType::Datagram,
            false,
            "a UDP socket",
        )?;
        Ok(UdpSocket::from(self.fd))
    }

    fn expect(
        &self,
        families: &[AddressFamily],
        ty: SockType,
        listening: bool,
        what: &str,
    ) -> Result<()> {
        let fd = self.fd.as_raw_fd();
        let ctx = |call: &str| format!("{call} on passed descriptor {fd} ({:?})", self.name);
        let actual_ty = getsockopt(&self.fd, sockopt::SockType)
            .map_err(|e| Error::sys(ctx("getsockopt SO_TYPE"), e))?;
        let addr: SockaddrStorage =
            getsockname(fd).map_err(|e| Error::sys(ctx("getsockname"), e))?;
        let family = addr.family();
        let accepting = listening
            && getsockopt(&self.fd, sockopt::AcceptConn)
                .map_err(|e| Error::sys(ctx("getsockopt SO_ACCEPTCONN"), e))?;
        let ok = actual_ty == ty
            && family.is_some_and(|f| families.contains(&f))
            && accepting == listening;
        if ok {
            return Ok(());
        }
        Err(Error::new(
            ErrorKind::InvalidInput,
            format!(
                "passed descriptor {fd} ({:?}) is not {what}: it is a {actual_ty:?} socket of family {family:?}{}",
                self.name,
                if listening && !accepting {
                    ", not listening"
                } else {
                    ""
                }
            ),
        ))
    }
}

impl AsFd for ListenFd {
    fn as_fd(&self) -> BorrowedFd<'_> {
        self.fd.as_fd()
    }
}

/// The descriptors passed to this process, in order (descriptor 3 first).
#[derive(Debug, Default)]
pub struct Activation {
    fds: Vec<ListenFd>,
}

static TAKEN: AtomicBool = AtomicBool::new(false);

impl Activation {
    /// Takes the descriptors passed to this process (see the [module docs](self)). Empty
    /// when there are none for us.
    pub fn from_env(unset: UnsetEnv) -> Result<Activation> {
        let var = |k| std::env::var(k).ok();
        let names = names_from(
            var("LISTEN_PID").as_deref(),
            var("LISTEN_FDS").as_deref(),
            var("LISTEN_FDNAMES").as_deref(),
            Pid::this(),
        );
        if unset == UnsetEnv::Yes {
            refuse_unset_with_threads()?;
            for k in VARIABLES {
                // Checked above: one thread, so this removes (only we could start another).
                crate::sys::remove_env_if_single_threaded(k)
                    .map_err(|e| Error::io("read /proc/self/task", e))?;
            }
        }
        let Some(names) = names? else {
            return Ok(Activation::default());
        };
        if TAKEN.swap(true, Ordering::SeqCst) {
            return Err(Error::new(
                ErrorKind::InvalidInput,
                "LISTEN_FDS: the passed descriptors were already taken",
            ));
        }
        let mut fds = Vec::with_capacity(names.len());
        for (i, name) in names.into_iter().enumerate() {
            let n = LISTEN_FDS_START + i as i32;
            let fd = crate::sys::adopt_listen_fd(n)
                .map_err(|e| Error::io(format!("LISTEN_FDS: take descriptor {n} ({name:?})"), e))?;
            fds.push(ListenFd { name, fd });
        }
        Ok(Activation { fds })
    }

    /// True if nothing was passed.
    pub fn is_empty(&self) -> bool {
        self.fds.is_empty()
    }

    /// How many descriptors are left.
    pub fn len(&self) -> usize {
        self.fds.len()
    }

    /// The names of the descriptors left, in order (a name may repeat).
    pub fn names(&self) -> impl Iterator<Item = &str> {
        self.fds.iter().map(ListenFd::name)
    }

    /// Removes and returns the first descriptor named `name`.
    pub fn take(&mut self, name: &str) -> Option<ListenFd> {
        let i = self.fds.iter().position(|f| f.name == name)?;
        Some(self.fds.remove(i))
    }

    /// Removes and returns every descriptor named `name` (a `.socket` unit with several
    /// `Listen…=` lines passes them all under its one name).
    pub fn take_all(&mut self, name: &str) -> Vec<ListenFd> {
        let (taken, kept) = std::mem::take(&mut self.fds)
            .into_iter()
            .partition(|f| f.name == name);
        self.fds = kept;
        taken
    }

    /// The first descriptor named `name` as a TCP listener; `Ok(None)` if there is none.
    pub fn tcp_listener(&mut self, name: &str) -> Result<Option<TcpListener>> {
        self.take(name).map(ListenFd::into_tcp_listener).transpose()
    }

    /// The first descriptor named `name` as a unix stream listener; `Ok(None)` if none.
    pub fn unix_listener(&mut self, name: &str) -> Result<Option<UnixListener>> {
        self.take(name)
            .map(ListenFd::into_unix_listener)
            .transpose()
    }

    /// The first descriptor named `name` as a UDP socket; `Ok(None)` if there is none.
    pub fn udp_socket(&mut self, name: &str) -> Result<Option<UdpSocket>> {
        self.take(name).map(ListenFd::into_udp_socket).transpose()
    }

    /// All descriptors left, in order.
    pub fn into_vec(self) -> Vec<ListenFd> {
        self.fds
    }
}

/// The names of the descriptors passed to process `me`, from the values of `LISTEN_PID`,
/// `LISTEN_FDS` and `LISTEN_FDNAMES`; `None` when nothing is passed to `me`.
///
/// ```
/// use daemonic::systemd::activation::names_from;
/// use daemonic::Pid;
///
/// let me = Pid::from_raw(42);
/// assert_eq!(names_from(Some("42"), Some("2"), Some("http:admin"), me).unwrap(),
///            Some(vec!["http".to_string(), "admin".to_string()]));
/// assert_eq!(names_from(Some("42"), Some("1"), None, me).unwrap(), Some(vec!["unknown".to_string()]));
/// assert_eq!(names_from(Some("7"), Some("1"), None, me).unwrap(), None); // our parent's
/// assert_eq!(names_from(None, Some("1"), None, me).unwrap(), None);
/// assert!(names_from(Some("42"), Some("2"), Some("http"), me).is_err()); // 2 fds, 1 name
/// ```
pub fn names_from(
    listen_pid: Option<&str>,
    listen_fds: Option<&str>,
    listen_fdnames: Option<&str>,
    me: Pid,
) -> Result<Option<Vec<String>>> {
    let invalid = |why: String| Err(Error::new(ErrorKind::InvalidInput, why));
    let Some(pid) = listen_pid.filter(|v| !v.is_empty()) else {
        return Ok(None);
    };
    match pid.parse::<i32>() {
        Ok(p) if p == me.as_raw() => {}
        Ok(p) if p > 0 => return Ok(None),
        _ => return invalid(format!("LISTEN_PID={pid:?}: not a pid")),
    }
    let Some(count) = listen_fds.filter(|v| !v.is_empty()) else {
        return Ok(None);
    };
    let count = match count.parse::<usize>() {
        // Far more than any manager passes, and it keeps the descriptor numbers in range.
        Ok(n) if n <= 65536 => n,
        _ => return invalid(format!("LISTEN_FDS={count:?}: not a descriptor count")),
    };
    if count == 0 {
        return Ok(None);
    }
    let names: Vec<String> = match listen_fdnames {
        None => vec!["unknown".to_string(); count],
        Some(s) => s.split(':').map(str::to_string).collect(),
    };
    if names.len() != count {
        return invalid(format!(
            "LISTEN_FDNAMES={:?} names {} descriptors but LISTEN_FDS={count}",
            listen_fdnames.unwrap_or(""),
            names.len()
        ));
    }
    Ok(Some(names))
}

/// [`UnsetEnv::Yes`] in a process that already runs threads: refused
/// ([`ErrorKind::Threaded`]) before anything is taken, because removing a variable races
/// any thread that reads the environment through libc.
fn refuse_unset_with_threads() -> Result<()> {
    let n = crate::sys::thread_count().map_err(|e| Error::io("read /proc/self/task", e))?;
    if n > 1 {
        return Err(Error::new(
            ErrorKind::Threaded,
            format!(
                "LISTEN_FDS: cannot unset the LISTEN_* variables: this process already runs \
                 {n} threads (removing a variable races their reads of the environment); \
                 call Activation::from_env before starting threads, or pass UnsetEnv::No \
                 and strip the variables from each child with Command::env_remove"
            ),
        ));
    }
    Ok(())
}

#[cfg(test)]
mod tests {
    use super::*;

    fn passed(name: &str, fd: impl Into<OwnedFd>) -> ListenFd {
        ListenFd {
            name: name.to_string(),
            fd: fd.into(),
        }
    }

    /// Regression: `UnsetEnv::Yes` removed the variables even while other threads ran,
    /// which races their reads of the environment through libc.
    #[test]
    fn unsetting_the_variables_is_refused_while_threads_run() {
        let (stop, parked) = std::sync::mpsc::channel::<()>();
        let other = std::thread::spawn(move || parked.recv());
        let err = Activation::from_env(UnsetEnv::Yes).unwrap_err();
        assert_eq!(err.kind(), ErrorKind::Threaded);
        assert!(err.to_string().contains("UnsetEnv::No"), "{err}");
        assert!(Activation::from_env(UnsetEnv::No).is_ok());
        drop(stop);
        let _ = other.join();
    }

    #[test]
    fn conversions_check_family_type_and_listening() {
        let tcp = || passed("http", TcpListener::bind("127.0.0.1:0").unwrap());
        let udp = || passed("dns", UdpSocket::bind("127.0.0.1:0").unwrap());
        assert!(tcp().into_tcp_listener().is_ok());
        assert!(udp().into_udp_socket().is_ok());
        let e = udp().into_tcp_listener().unwrap_err();
        assert_eq!(e.kind(), ErrorKind::InvalidInput);
        assert!(
            e.to_string()
                .contains("(\"dns\") is not a listening TCP socket"),
            "{e}"
        );
        assert!(tcp().into_udp_socket().is_err());
        assert!(tcp().into_unix_listener().is_err());
        let (a, _b) = std::os::unix::net::UnixStream::pair().unwrap();
        let e = passed("conn", a).into_unix_listener().unwrap_err();
        assert!(e.to_string().contains("not listening"), "{e}");
        let file = std::fs::File::open("/dev/null").unwrap();
        let e = passed("null", file).into_tcp_listener().unwrap_err();
        assert!(
            e.to_string()
                .contains("getsockopt SO_TYPE on passed descriptor"),
            "{e}"
        );
    }

    #[test]
    fn take_by_name_keeps_order_and_repeats() {
        let mut a = Activation {
            fds: ["web", "admin", "web"]
                .iter()
                .map(|n| passed(n, std::fs::File::open("/dev/null").unwrap()))
                .collect(),
        };
        assert_eq!(a.names().collect::<Vec<_>>(), ["web", "admin", "web"]);
        assert_eq!(a.take_all("web").len(), 2);
        assert!(a.take("web").is_none());
        assert_eq!(
            a.take("admin").map(|f| f.name().to_string()).as_deref(),
            Some("admin")
        );
        assert!(a.is_empty());
    }

    #[test]
    fn bad_environment_is_an_error_naming_the_variable() {
        let me = Pid::from_raw(42);
        let e = names_from(Some("x"), Some("1"), None, me).unwrap_err();
        assert!(e.to_string().starts_with("LISTEN_PID=\"x\""), "{e}");
        let e = names_from(Some("42"), Some("-1"), None, me).unwrap_err();
        assert!(e.to_string().starts_with("LISTEN_FDS=\"-1\""), "{e}");
        assert_eq!(names_from(Some("42"), Some("0"), None, me).unwrap(), None);
    }
}
