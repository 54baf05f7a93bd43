//! Which cgroup a process is in, and whether that is a service's group or below it: how
//! the notify socket places a sender, and how a forking service's pid file is checked.

use std::path::{Path, PathBuf};

use daemonic::Pid;

/// `pid`'s cgroup (v2) as a path below the hierarchy's root (`/daemonic/tmp-s/web`).
pub fn cgroup_of(pid: Pid) -> Option<PathBuf> {
    let text = std::fs::read_to_string(format!("/proc/{pid}/cgroup")).ok()?;
    let path = text.lines().find_map(|l| l.strip_prefix("0::"))?;
    Some(PathBuf::from(path.trim()))
}

/// Whether the cgroup `of` (as [`cgroup_of`] says) is the group at directory `dir` or
/// below it.
pub fn in_cgroup(of: &Path, dir: &Path) -> bool {
    in_cgroup_at(super::containment::hierarchy(), of, dir)
}

/// [`in_cgroup`] with the hierarchy mounted at `mount`.
fn in_cgroup_at(mount: Option<&Path>, of: &Path, dir: &Path) -> bool {
    let Some(rel) = mount.and_then(|m| dir.strip_prefix(m).ok()) else {
        return false;
    };
    let Ok(below) = of.strip_prefix("/") else {
        return false;
    };
    !rel.as_os_str().is_empty() && below.starts_with(rel)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn a_cgroup_is_in_a_services_tree_at_or_below_its_group_only() {
        let mount = Some(Path::new("/sys/fs/cgroup"));
        let web = Path::new("/sys/fs/cgroup/daemonic/run-daemonic/web");
        let at = |of: &str| in_cgroup_at(mount, Path::new(of), web);
        assert!(at("/daemonic/run-daemonic/web"));
        assert!(at("/daemonic/run-daemonic/web/workers"));
        assert!(!at("/daemonic/run-daemonic/web2"));
        assert!(!at("/daemonic/run-daemonic"));
        assert!(!at("/user.slice/web"));
        assert!(!at("/"));
        // No hierarchy known, or a group elsewhere: nothing is placed by its cgroup.
        assert!(!in_cgroup_at(
            None,
            Path::new("/daemonic/run-daemonic/web"),
            web
        ));
        let elsewhere = Path::new("/elsewhere/web");
        assert!(!in_cgroup_at(mount, Path::new("/web"), elsewhere));
    }
}
