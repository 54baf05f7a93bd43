//! Who holds a port, for the "Address already in use" error: the listening socket's inode
//! from `/proc/net/{tcp,tcp6,udp,udp6}`, then the first process with a descriptor on it
//! (`/proc/PID/fd`, readable for our own processes, all of them as root). Best effort, on
//! an error path only: when it cannot tell, the error says nothing more.

use std::fs;

/// ` (held by pid 4242, nginx)`, or empty when that cannot be found out.
pub fn describe(port: u16, tcp: bool) -> String {
    let tables: &[&str] = if tcp {
        &["/proc/net/tcp", "/proc/net/tcp6"]
    } else {
        &["/proc/net/udp", "/proc/net/udp6"]
    };
    let inodes: Vec<u64> = tables
        .iter()
        .filter_map(|t| fs::read_to_string(t).ok())
        .flat_map(|text| listeners(&text, port, tcp))
        .collect();
    match inodes.iter().find_map(|i| process_with(*i)) {
        Some((pid, comm)) => format!(" (held by pid {pid}, {comm})"),
        None => String::new(),
    }
}

/// The inodes of the sockets bound to `port` in one `/proc/net` table (TCP: listening
/// ones, state `0A`).
fn listeners(table: &str, port: u16, tcp: bool) -> Vec<u64> {
    table
        .lines()
        .skip(1)
        .filter_map(|line| {
            let f: Vec<&str> = line.split_whitespace().collect();
            let local_port = f.get(1)?.rsplit_once(':')?.1;
            let bound = u16::from_str_radix(local_port, 16).ok()? == port;
            let listening = !tcp || *f.get(3)? == "0A";
            let inode = f.get(9)?.parse::<u64>().ok()?;
            (bound && listening && inode != 0).then_some(inode)
        })
        .collect()
}

fn process_with(inode: u64) -> Option<(u32, String)> {
    let want = format!("socket:[{inode}]");
    for entry in fs::read_dir("/proc").ok()?.flatten() {
        let Some(pid) = entry
            .file_name()
            .to_str()
            .and_then(|p| p.parse::<u32>().ok())
        else {
            continue;
        };
        let Ok(fds) = fs::read_dir(entry.path().join("fd")) else {
            continue;
        };
        let holds = fds
            .flatten()
            .any(|fd| fs::read_link(fd.path()).is_ok_and(|l| l.as_os_str() == want.as_str()));
        if holds {
            let comm = fs::read_to_string(entry.path().join("comm")).unwrap_or_default();
            return Some((pid, comm.trim().to_string()));
        }
    }
    None
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn a_listener_of_ours_is_found_with_our_pid() {
        let l = std::net::TcpListener::bind("127.0.0.1:0").unwrap();
        let port = l.local_addr().unwrap().port();
        let said = describe(port, true);
        assert!(
            said.contains(&format!("held by pid {}", std::process::id())),
            "{said:?}"
        );
        drop(l);
        assert_eq!(describe(port, true), "");
    }
}
