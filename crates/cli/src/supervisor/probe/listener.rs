//! Who listens on a port: a tcp or http probe that connects proves only that *something*
//! accepts there. If another program already holds the port, the probe answers at once
//! while the service's own `bind` fails a moment later ("Address already in use") — a false
//! "ready". So after a successful connect to a local address, the supervisor asks whether
//! the listening socket belongs to the service (see [`check`]).
//!
//! How: the kernel's socket tables (`/proc/net/tcp`, `/proc/net/tcp6`) list each listening
//! socket's local address and inode; a process holds the socket if one of its descriptors
//! (`/proc/PID/fd/N`) reads `socket:[INODE]`. A listener on the wildcard address (`0.0.0.0`,
//! `::`) accepts connections to any local address, so it counts for every address of its
//! port. Only the network namespace the supervisor runs in is seen — the one the probe
//! connects in.
//!
//! Limits: a remote address (not on this machine) cannot be checked and is trusted as
//! before; as a user other than root, another user's process shows as "a process of
//! another user" (its descriptors are not readable), which is still enough to refuse.

use std::collections::HashSet;
use std::net::{IpAddr, Ipv4Addr, Ipv6Addr, SocketAddr};

/// The inodes of the listening TCP sockets that accept connections to `addr`.
pub fn listening_inodes(addr: SocketAddr) -> Vec<u64> {
    let mut found = Vec::new();
    for table in ["/proc/net/tcp", "/proc/net/tcp6"] {
        let Ok(text) = std::fs::read_to_string(table) else {
            continue;
        };
        for line in text.lines().skip(1) {
            if let Some((local, inode)) = parse_listener(line)
                && local.port() == addr.port()
                && (local.ip() == addr.ip()
                    || local.ip().is_unspecified()
                    || same_v4(local.ip(), addr.ip()))
            {
                found.push(inode);
            }
        }
    }
    found
}

/// A v4-mapped v6 listener (`::ffff:127.0.0.1`) and the v4 address it stands for.
fn same_v4(a: IpAddr, b: IpAddr) -> bool {
    let v4 = |ip: IpAddr| match ip {
        IpAddr::V4(v4) => Some(v4),
        IpAddr::V6(v6) => v6.to_ipv4_mapped(),
    };
    v4(a).is_some() && v4(a) == v4(b)
}

/// One line of `/proc/net/tcp{,6}`: the local address and inode of a socket in state
/// LISTEN (`0A`), else `None`.
fn parse_listener(line: &str) -> Option<(SocketAddr, u64)> {
    let fields: Vec<&str> = line.split_whitespace().collect();
    // sl local_address rem_address st tx_queue:rx_queue tr:tm->when retrnsmt uid timeout inode
    if fields.get(3)? != &"0A" {
        return None;
    }
    let (ip, port) = fields.get(1)?.split_once(':')?;
    let port = u16::from_str_radix(port, 16).ok()?;
    let ip = match ip.len() {
        // Each 32-bit word is in the host's byte order (little-endian on x86).
        8 => IpAddr::V4(Ipv4Addr::from(
            u32::from_str_radix(ip, 16).ok()?.to_ne_bytes(),
        )),
        32 => {
            let mut bytes = [0u8; 16];
            for (i, chunk) in bytes.chunks_mut(4).enumerate() {
                let word = u32::from_str_radix(ip.get(i * 8..i * 8 + 8)?, 16).ok()?;
                chunk.copy_from_slice(&word.to_ne_bytes());
            }
            IpAddr::V6(Ipv6Addr::from(bytes))
        }
        _ => return None,
    };
    Some((SocketAddr::new(ip, port), fields.get(9)?.parse().ok()?))
}

/// The socket inodes `pid` holds a descriptor of (empty if its descriptors cannot be read).
fn socket_inodes(pid: i32) -> HashSet<u64> {
    let Ok(dir) = std::fs::read_dir(format!("/proc/{pid}/fd")) else {
        return HashSet::new();
    };
    dir.flatten()
        .filter_map(|e| std::fs::read_link(e.path()).ok())
        .filter_map(|target| {
            let t = target.to_str()?;
            t.strip_prefix("socket:[")?.strip_suffix(']')?.parse().ok()
        })
        .collect()
}

/// Whether `addr` is this machine's: a loopback address, or one of its interfaces' (a
/// listener for it is in the tables above).
fn is_local(addr: SocketAddr) -> bool {
    addr.ip().is_loopback() || !listening_inodes(addr).is_empty()
}

/// `root` and its live descendants now (see `containment::descendants`).
pub fn tree(root: daemonic::Pid) -> Vec<i32> {
    let mut tree = crate::supervisor::containment::descendants(root.as_raw(), &[]);
    tree.push(root.as_raw());
    tree
}

/// The processes that hold one of `inodes`, with their command names, for the message.
fn holders(inodes: &[u64]) -> Vec<(i32, String)> {
    let Ok(proc) = std::fs::read_dir("/proc") else {
        return Vec::new();
    };
    let mut found: Vec<(i32, String)> = proc
        .flatten()
        .filter_map(|e| e.file_name().to_str()?.parse::<i32>().ok())
        .filter(|&pid| socket_inodes(pid).iter().any(|i| inodes.contains(i)))
        .map(|pid| {
            let comm = std::fs::read_to_string(format!("/proc/{pid}/comm")).unwrap_or_default();
            (pid, comm.trim().to_string())
        })
        .collect();
    found.sort();
    found
}

/// After a probe connected to `addr`: `Ok` if the listener belongs to one of `service`'s
/// processes (or `addr` is not on this machine, or no listener is seen — e.g. it closed
/// since), else why not, naming the holder:
/// `127.0.0.1:8000 answers, but the listener is not this service's: it is held by pid
/// 4242 (python3)`.
pub fn check(addr: SocketAddr, service: &[i32]) -> Result<(), String> {
    if !is_local(addr) {
        return Ok(());
    }
    let inodes = listening_inodes(addr);
    if inodes.is_empty() {
        return Ok(());
    }
    if service
        .iter()
        .any(|&pid| socket_inodes(pid).iter().any(|i| inodes.contains(i)))
    {
        return Ok(());
    }
    let held = holders(&inodes);
    let by = if held.is_empty() {
        "a process whose descriptors cannot be read (another user's)".to_string()
    } else {
        held.iter()
            .map(|(pid, comm)| format!("pid {pid} ({comm})"))
            .collect::<Vec<_>>()
            .join(", ")
    };
    Err(format!(
        "{addr} answers, but the listener is not this service's: it is held by {by}"
    ))
}

#[cfg(test)]
mod tests {
    use super::*;
    use std::net::TcpListener;

    #[test]
    fn a_line_of_the_table_reads_back_as_its_address() {
        // 127.0.0.1:8080 listening, inode 12345 (as the x86 kernel writes it).
        let line = "   0: 0100007F:1F90 00000000:0000 0A 00000000:00000000 00:00000000 00000000     0        0 12345 1 0000000000000000 100 0 0 10 0";
        let (addr, inode) = parse_listener(line).unwrap();
        assert_eq!(addr, "127.0.0.1:8080".parse().unwrap());
        assert_eq!(inode, 12345);
        // Not LISTEN (01 = ESTABLISHED):
        assert_eq!(parse_listener(&line.replace(" 0A ", " 01 ")), None);
    }

    #[test]
    fn our_own_listener_is_ours_and_another_processes_is_named() {
        let listener = TcpListener::bind("127.0.0.1:0").unwrap();
        let addr = listener.local_addr().unwrap();
        let me = std::process::id() as i32;
        assert_eq!(check(addr, &[me]), Ok(()));
        // As if the service were some other process (pid 1 holds no such socket):
        let why = check(addr, &[1]).unwrap_err();
        assert!(why.contains(&format!("pid {me} (")), "{why}");
        assert!(
            why.starts_with(&format!(
                "{addr} answers, but the listener is not this service's"
            )),
            "{why}"
        );
    }

    #[test]
    fn a_wildcard_listener_counts_for_the_loopback_address() {
        let listener = TcpListener::bind("0.0.0.0:0").unwrap();
        let port = listener.local_addr().unwrap().port();
        let addr: SocketAddr = format!("127.0.0.1:{port}").parse().unwrap();
        assert!(!listening_inodes(addr).is_empty());
        assert!(check(addr, &[1]).is_err());
    }
}
