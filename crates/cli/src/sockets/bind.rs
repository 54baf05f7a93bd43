//! Opening the sockets of `--socket`: once per supervisor, before any child runs.
//!
//! Every descriptor is created close-on-exec (a child gets its copies through
//! [`daemonic::systemd::handoff`], nothing else inherits them). TCP sockets get
//! `SO_REUSEADDR` (a restarted supervisor can bind again while old connections sit in
//! `TIME_WAIT`), `SO_REUSEPORT` only when asked.
//!
//! ## Unix socket paths are hostile input as root
//!
//! The socket's directory is opened once, component by component, through
//! [`LogDir::open_for`]: a symlink on the way is followed only if root (or we) made it,
//! and as root every ancestor must be root's and not writable by others (unless sticky),
//! the directory itself root's and writable by root only. Everything after that is done
//! relative to the directory's descriptor (`bind` through `/proc/self/fd/N/NAME`,
//! `fstatat`/`unlinkat`/`fchownat` without following a symlink), so nobody but root can
//! add, replace or redirect the name between the check and the use. An existing name is
//! replaced only if it is a socket nobody listens on (a stale one from an earlier run);
//! anything else — a file, a symlink, a live server's socket — is an error. The mode and
//! owner are set before `listen`, so no client connects through a wrong mode. The file is
//! removed when the supervisor ends, if it is still the one it bound.
//!
//! Under a service manager (systemd's `.socket` units of a unit that runs `daemonic run`,
//! see `units::systemd::sockets`), a socket the manager passed under the `--socket`'s
//! name is used instead of binding: the manager holds the address.

use std::ffi::OsString;
use std::net::SocketAddr;
use std::os::fd::{AsFd, AsRawFd, BorrowedFd, OwnedFd};
use std::path::Path;
use std::sync::{Arc, Mutex, OnceLock, Weak};

use anyhow::{Context as _, Result, anyhow};
use daemonic::logging::{Contents, LogDir};
use daemonic::systemd::activation::{Activation, UnsetEnv};
use nix::errno::Errno;
use nix::fcntl::AtFlags;
use nix::sys::socket::{
    AddressFamily, Backlog, SockFlag, SockType, SockaddrStorage, UnixAddr, bind, connect,
    getsockname, listen, setsockopt, socket, sockopt,
};
use nix::sys::stat::{FchmodatFlags, Mode, SFlag, fchmodat, fstatat};
use nix::unistd::{Gid, Group, Uid, UnlinkatFlags, User, fchownat, unlinkat};

use super::spec::{Address, SocketSpec};

/// One socket, bound and listening, held by the supervisor.
#[derive(Debug)]
pub struct Bound {
    pub spec: SocketSpec,
    fd: OwnedFd,
    /// For a unix socket: its directory, its name there and the inode it bound.
    file: Option<(LogDir, OsString, u64)>,
}

impl Bound {
    pub fn name(&self) -> &str {
        &self.spec.name
    }

    /// Where it listens, as the kernel says (a port 0 resolved): `tcp:127.0.0.1:8080`,
    /// `tcp:[::]:80`, `unix:/run/app/api.sock`.
    pub fn local(&self) -> String {
        match &self.spec.address {
            Address::Unix(p) => format!("unix:{}", p.display()),
            _ => {
                let kind = self.spec.kind();
                match getsockname::<SockaddrStorage>(self.fd.as_raw_fd()) {
                    Ok(a) => match (a.as_sockaddr_in(), a.as_sockaddr_in6()) {
                        (Some(v4), _) => format!("{kind}:{}", SocketAddr::from(*v4)),
                        (_, Some(v6)) => format!("{kind}:{}", SocketAddr::from(*v6)),
                        _ => format!("{kind}:?"),
                    },
                    Err(_) => format!("{kind}:?"),
                }
            }
        }
    }
}

impl AsFd for Bound {
    fn as_fd(&self) -> BorrowedFd<'_> {
        self.fd.as_fd()
    }
}

impl Drop for Bound {
    fn drop(&mut self) {
        if let Some((dir, name, ino)) = &self.file
            && fstatat(dir, name.as_os_str(), AtFlags::AT_SYMLINK_NOFOLLOW)
                .is_ok_and(|st| st.st_ino == *ino)
        {
            let _ = unlinkat(dir, name.as_os_str(), UnlinkatFlags::NoRemoveDir);
        }
    }
}

/// Binds every socket of a service; the first failure is the error, naming its flag.
///
/// A socket this supervisor already holds for the same spec (a changed service of a
/// config file replacing the running one, a service started again after `down` while its
/// old unit is still around, the replicas of one service) is shared, not bound again:
/// connections keep queueing through the change. It closes when the last unit holding
/// it is gone.
pub fn bind_all(specs: &[SocketSpec]) -> Result<Vec<Arc<Bound>>> {
    static HELD: Mutex<Vec<Weak<Bound>>> = Mutex::new(Vec::new());
    let mut held = HELD
        .lock()
        .map_err(|_| anyhow!("supervisor bug: the held sockets' lock is poisoned"))?;
    held.retain(|w| w.strong_count() > 0);
    let mut out = Vec::new();
    for s in specs {
        let same = held.iter().filter_map(Weak::upgrade).find(|b| b.spec == *s);
        let bound = match same {
            Some(b) => b,
            None => {
                let b = Arc::new(open(s).with_context(|| format!("--socket {}", s.text))?);
                held.push(Arc::downgrade(&b));
                b
            }
        };
        out.push(bound);
    }
    Ok(out)
}

fn open(spec: &SocketSpec) -> Result<Bound> {
    if let Some(fd) = inherited(&spec.name)? {
        return Ok(Bound {
            spec: spec.clone(),
            fd,
            file: None,
        });
    }
    let (fd, file) = match &spec.address {
        Address::Tcp(addr) => (inet(spec, *addr, SockType::Stream)?, None),
        Address::Udp(addr) => (inet(spec, *addr, SockType::Datagram)?, None),
        Address::Unix(path) => {
            let (fd, file) = unix(spec, path)?;
            (fd, Some(file))
        }
    };
    Ok(Bound {
        spec: spec.clone(),
        fd,
        file,
    })
}

/// The socket named `name` that the supervisor's own manager passed it (systemd's
/// `.socket` unit of a unit that runs `daemonic run`), taken once: the manager owns its
/// address, so it is used as it is, not bound again.
fn inherited(name: &str) -> Result<Option<OwnedFd>> {
    static FROM_MANAGER: OnceLock<Mutex<Option<Activation>>> = OnceLock::new();
    let passed = FROM_MANAGER.get_or_init(|| {
        // The variables stay: every child's environment is built without them.
        Mutex::new(match Activation::from_env(UnsetEnv::No) {
            Ok(a) => Some(a),
            Err(e) => {
                eprintln!("daemonic: sockets passed by the service manager ignored: {e}");
                None
            }
        })
    });
    let mut passed = passed
        .lock()
        .map_err(|_| anyhow!("supervisor bug: the inherited sockets' lock is poisoned"))?;
    Ok(passed
        .as_mut()
        .and_then(|a| a.take(name))
        .map(|fd| fd.into_fd()))
}

fn inet(spec: &SocketSpec, addr: SocketAddr, kind: SockType) -> Result<OwnedFd> {
    let family = |a: &SocketAddr| match a {
        SocketAddr::V4(_) => AddressFamily::Inet,
        SocketAddr::V6(_) => AddressFamily::Inet6,
    };
    let fd = match socket(family(&addr), kind, SockFlag::SOCK_CLOEXEC, None) {
        // No IPv6 in this kernel: every address is every IPv4 address.
        Err(Errno::EAFNOSUPPORT) if spec.any_host => {
            let v4 = SocketAddr::from(([0, 0, 0, 0], addr.port()));
            return inet_on(spec, v4, kind, socket_or(v4, kind)?);
        }
        r => r.map_err(|e| anyhow!("socket: {}", e.desc()))?,
    };
    inet_on(spec, addr, kind, fd)
}

fn socket_or(addr: SocketAddr, kind: SockType) -> Result<OwnedFd> {
    let family = if addr.is_ipv4() {
        AddressFamily::Inet
    } else {
        AddressFamily::Inet6
    };
    socket(family, kind, SockFlag::SOCK_CLOEXEC, None).map_err(|e| anyhow!("socket: {}", e.desc()))
}

fn inet_on(spec: &SocketSpec, addr: SocketAddr, kind: SockType, fd: OwnedFd) -> Result<OwnedFd> {
    let set =
        |what: &str, r: nix::Result<()>| r.map_err(|e| anyhow!("setsockopt {what}: {}", e.desc()));
    set("SO_REUSEADDR", setsockopt(&fd, sockopt::ReuseAddr, &true))?;
    if spec.reuseport {
        set("SO_REUSEPORT", setsockopt(&fd, sockopt::ReusePort, &true))?;
    }
    if addr.is_ipv6() {
        set(
            "IPV6_V6ONLY",
            setsockopt(&fd, sockopt::Ipv6V6Only, &spec.ipv6_only),
        )?;
    }
    if let Err(e) = bind(fd.as_raw_fd(), &SockaddrStorage::from(addr)) {
        let held = match e {
            Errno::EADDRINUSE => super::holder::describe(addr.port(), kind == SockType::Stream),
            Errno::EACCES if addr.port() < 1024 => {
                " (a port below 1024 needs root or CAP_NET_BIND_SERVICE in the supervisor)".into()
            }
            _ => String::new(),
        };
        return Err(anyhow!("bind {addr}: {}{held}", e.desc()));
    }
    if kind == SockType::Stream {
        listen_on(&fd, spec.backlog)?;
    }
    Ok(fd)
}

fn listen_on(fd: &OwnedFd, backlog: u32) -> Result<()> {
    let backlog = Backlog::new(backlog.min(i32::MAX as u32) as i32)
        .map_err(|e| anyhow!("backlog {backlog}: {}", e.desc()))?;
    listen(fd, backlog).map_err(|e| anyhow!("listen: {}", e.desc()))
}

/// A unix stream socket at `path`, through its checked directory (module docs).
fn unix(spec: &SocketSpec, path: &Path) -> Result<(OwnedFd, (LogDir, OsString, u64))> {
    let parent = path.parent().unwrap_or(Path::new("/"));
    let name = path
        .file_name()
        .context("a unix socket path names a file")?
        .to_os_string();
    let dir = LogDir::open_for(parent, true, Contents::Sockets)?;
    // `bind` takes a path: the directory's descriptor through /proc, never `path` again.
    let via = Path::new("/proc/self/fd")
        .join(dir.as_fd().as_raw_fd().to_string())
        .join(&name);
    let addr =
        UnixAddr::new(&via).map_err(|e| anyhow!("unix address {}: {}", via.display(), e.desc()))?;
    remove_stale(&dir, &name, &addr, path)?;
    let fd = socket(
        AddressFamily::Unix,
        SockType::Stream,
        SockFlag::SOCK_CLOEXEC,
        None,
    )
    .map_err(|e| anyhow!("socket: {}", e.desc()))?;
    bind(fd.as_raw_fd(), &addr).map_err(|e| anyhow!("bind {}: {}", path.display(), e.desc()))?;
    let st = fstatat(&dir, name.as_os_str(), AtFlags::AT_SYMLINK_NOFOLLOW)
        .map_err(|e| anyhow!("stat {}: {}", path.display(), e.desc()))?;
    let file = (dir, name, st.st_ino);
    let (dir, name) = (&file.0, file.1.as_os_str());
    // The directory is writable by root only (checked above), so the name is still ours.
    fchmodat(
        dir,
        name,
        Mode::from_bits_truncate(spec.mode),
        FchmodatFlags::FollowSymlink,
    )
    .map_err(|e| anyhow!("chmod {:04o} {}: {}", spec.mode, path.display(), e.desc()))?;
    if let Some(owner) = &spec.owner {
        let (uid, gid) = owner_ids(owner)?;
        fchownat(dir, name, uid, gid, AtFlags::AT_SYMLINK_NOFOLLOW)
            .map_err(|e| anyhow!("chown {owner} {}: {}", path.display(), e.desc()))?;
    }
    listen_on(&fd, spec.backlog)?;
    Ok((fd, file))
}

/// Removes a socket left at `name` by an earlier run, if nobody listens on it; refuses
/// anything that is not a socket, and a socket in use.
fn remove_stale(dir: &LogDir, name: &OsString, addr: &UnixAddr, path: &Path) -> Result<()> {
    let st = match fstatat(dir, name.as_os_str(), AtFlags::AT_SYMLINK_NOFOLLOW) {
        Err(Errno::ENOENT) => return Ok(()),
        Err(e) => return Err(anyhow!("stat {}: {}", path.display(), e.desc())),
        Ok(st) => st,
    };
    let kind = SFlag::from_bits_truncate(st.st_mode) & SFlag::S_IFMT;
    if kind != SFlag::S_IFSOCK {
        let what = match kind {
            SFlag::S_IFLNK => "a symlink",
            SFlag::S_IFDIR => "a directory",
            SFlag::S_IFREG => "a regular file",
            _ => "not a socket",
        };
        return Err(anyhow!(
            "{} exists and is {what}: refusing to replace it",
            path.display()
        ));
    }
    let probe = socket(
        AddressFamily::Unix,
        SockType::Stream,
        SockFlag::SOCK_CLOEXEC,
        None,
    )
    .map_err(|e| anyhow!("socket: {}", e.desc()))?;
    if connect(probe.as_raw_fd(), addr).is_ok() {
        return Err(anyhow!(
            "{} is in use: a running program listens on it",
            path.display()
        ));
    }
    unlinkat(dir, name.as_os_str(), UnlinkatFlags::NoRemoveDir)
        .map_err(|e| anyhow!("remove stale socket {}: {}", path.display(), e.desc()))
}

/// `USER[:GROUP]` (names or numbers) as ids; the user's primary group without GROUP.
fn owner_ids(owner: &str) -> Result<(Option<Uid>, Option<Gid>)> {
    let (user, group) = match owner.split_once(':') {
        Some((u, g)) => (u, Some(g)),
        None => (owner, None),
    };
    let found = match user.parse::<u32>() {
        Ok(n) => User::from_uid(Uid::from_raw(n)),
        Err(_) => User::from_name(user),
    }
    .map_err(|e| anyhow!("look up user {user:?}: {}", e.desc()))?;
    let (uid, primary) = match (found, user.parse::<u32>()) {
        (Some(u), _) => (u.uid, Some(u.gid)),
        (None, Ok(n)) => (Uid::from_raw(n), None),
        (None, Err(_)) => return Err(anyhow!("owner={owner}: unknown user {user:?}")),
    };
    let gid = match group {
        None => primary,
        Some(g) => Some(match g.parse::<u32>() {
            Ok(n) => Gid::from_raw(n),
            Err(_) => {
                Group::from_name(g)
                    .map_err(|e| anyhow!("look up group {g:?}: {}", e.desc()))?
                    .ok_or_else(|| anyhow!("owner={owner}: unknown group {g:?}"))?
                    .gid
            }
        }),
    };
    Ok((Some(uid), gid))
}
