//! Making the paths a service needs visible inside its sandbox, and nothing more.
//!
//! The sandbox hides whole trees: `PrivateTmp=yes` gives the service an empty `/tmp` and
//! `/var/tmp`, `ProtectHome=yes` an inaccessible `/home`, `/root` and `/run/user`. A
//! project that lives there (a checkout in `/root`, a test in `/tmp`) then fails before
//! its program runs: `203/EXEC`, `200/CHDIR`, "Permission denied". The rules, for each
//! path the service needs — the program, the `daemonic` binary when the unit runs
//! `daemonic run`, the working directory, the env files (read), the log files'
//! directories and `unit-writable` (write):
//!
//! * A path no setting hides needs nothing (writes: `ReadWritePaths=`, as before).
//! * A hidden path is bind-mounted back at its own place, read-only unless the service
//!   writes there: `BindReadOnlyPaths=` / `BindPaths=`. The rest of the hidden tree stays
//!   hidden (the private `/tmp` stays private; `/root/.ssh` stays out of sight).
//! * Under a home directory the hiding becomes `ProtectHome=tmpfs` (empty, read-only
//!   directories in place of the homes, which bind mounts can be placed into; `yes`
//!   leaves nothing to mount onto). `systemd-analyze security` rates both alike.
//! * A *program* under a home directory is bound with its installation: the first
//!   directory below the home (`/root/.pyenv` for `/root/.pyenv/shims/python3`, a
//!   pyenv shim that execs `/root/.pyenv/versions/…`; the same for nvm, cargo, a
//!   virtualenv, the project itself). A program elsewhere is bound alone (and its
//!   symlink target too).
//! * Optional paths (an env file written `-FILE`, a log directory daemonic may still
//!   create) are bound with a leading `-`: a missing one is skipped, not a failed start.
//!
//! The service's user must still be allowed to read what is bound: with `DynamicUser=`
//! that is what "others" may read. A `0700` project directory would fail at start with
//! `Permission denied`; [`Needs::unreadable`] says so first (`unit` warns, `install`
//! refuses): `chmod o+rx` it, or give the service a `user`.

use std::path::{Component, Path, PathBuf};

/// The trees a sandbox setting hides.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Hider {
    /// `PrivateTmp=yes`: `/tmp`, `/var/tmp`.
    PrivateTmp,
    /// `ProtectHome=yes|tmpfs`: `/home`, `/root`, `/run/user`.
    ProtectHome,
}

/// Which setting hides `path` (absolute, normalized), if any.
pub fn hidden_by(path: &Path) -> Option<Hider> {
    let under = |root: &str| path.starts_with(root);
    if under("/tmp") || under("/var/tmp") {
        Some(Hider::PrivateTmp)
    } else if under("/home") || under("/root") || under("/run/user") {
        Some(Hider::ProtectHome)
    } else {
        None
    }
}

/// The paths a service needs, collected before the unit's sandbox lines are written.
#[derive(Debug, Default)]
pub struct Needs {
    /// (path, optional): read and execute only.
    read: Vec<(PathBuf, bool)>,
    /// (path, optional): written too.
    write: Vec<(PathBuf, bool)>,
}

impl Needs {
    /// A program the service executes (the command's first word, or `daemonic`).
    pub fn program(&mut self, program: &Path) {
        if !program.is_absolute() {
            return;
        }
        let mut add = |p: &Path| {
            let p = installation(p);
            self.read.push((p, false));
        };
        add(program);
        if let Ok(real) = std::fs::canonicalize(program)
            && real != program
        {
            add(&real);
        }
    }

    pub fn read(&mut self, path: &Path, optional: bool) {
        if path.is_absolute() {
            self.read.push((normal(path), optional));
        }
    }

    pub fn write(&mut self, path: &Path, optional: bool) {
        if path.is_absolute() {
            self.write.push((normal(path), optional));
        }
    }

    /// Whether a path under a home directory is needed (then `ProtectHome=tmpfs`).
    pub fn under_home(&self) -> bool {
        self.read
            .iter()
            .chain(&self.write)
            .any(|(p, _)| hidden_by(p) == Some(Hider::ProtectHome))
    }

    /// The bind mounts for what `hides` hides: (read-only, read-write) entries, each
    /// with its `-` when optional, in order, without repeats or paths inside another.
    pub fn binds(&self, hides: &[Hider]) -> (Vec<String>, Vec<String>) {
        let hidden = |p: &Path| hidden_by(p).is_some_and(|h| hides.contains(&h));
        let write: Vec<&(PathBuf, bool)> = self.write.iter().filter(|(p, _)| hidden(p)).collect();
        let covered = |p: &Path, list: &[&(PathBuf, bool)]| {
            list.iter().any(|(q, _)| p != q && p.starts_with(q))
        };
        let mut rw = Vec::new();
        for (p, optional) in &write {
            if !covered(p, &write) {
                push_unique(&mut rw, p, *optional);
            }
        }
        let read: Vec<&(PathBuf, bool)> = self.read.iter().filter(|(p, _)| hidden(p)).collect();
        let mut ro = Vec::new();
        for (p, optional) in &read {
            // Inside a writable bind (or a wider read-only one) it is visible already.
            if !covered(p, &read) && !write.iter().any(|(q, _)| p.starts_with(q)) {
                push_unique(&mut ro, p, *optional);
            }
        }
        (ro, rw)
    }

    /// Why "others" (a `DynamicUser=` uid) cannot reach a needed read path: each
    /// directory on its way needs `o+x`, the path itself `o+r` (a directory `o+rx`).
    /// The trees the sandbox replaces (`/tmp`, a home's parents) are not on the way.
    pub fn unreadable(&self) -> Vec<String> {
        let mut why = Vec::new();
        for (path, _) in &self.read {
            let Ok(meta) = std::fs::metadata(path) else {
                continue;
            };
            use std::os::unix::fs::PermissionsExt;
            let need = if meta.is_dir() { 0o005 } else { 0o004 };
            let mut blocked = (meta.permissions().mode() & need != need).then(|| path.clone());
            for dir in path.ancestors().skip(1) {
                if replaced(dir) || blocked.is_some() {
                    continue;
                }
                let enter =
                    std::fs::metadata(dir).is_ok_and(|m| m.permissions().mode() & 0o001 != 0);
                if !enter {
                    blocked = Some(dir.to_path_buf());
                }
            }
            if let Some(at) = blocked {
                why.push(format!(
                    "{} is not readable by the service's dynamic user: {} is closed to others (chmod o+rx it, or give the service a `user`)",
                    path.display(),
                    at.display()
                ));
            }
        }
        why.dedup();
        why
    }

    /// The writable paths no setting in `hides` hides (for `ReadWritePaths=`).
    pub fn visible_writes(&self, hides: &[Hider]) -> Vec<(PathBuf, bool)> {
        self.write
            .iter()
            .filter(|(p, _)| !hidden_by(p).is_some_and(|h| hides.contains(&h)))
            .cloned()
            .collect()
    }
}

/// `/`, and the directories the sandbox puts in place of the host's (`/tmp`, `/var/tmp`,
/// `/home`, `/home/USER`, `/root`, `/run/user/UID` and their parents).
fn replaced(dir: &Path) -> bool {
    let n = dir.components().count();
    dir == Path::new("/")
        || ((dir.starts_with("/tmp") || dir.starts_with("/root")) && n <= 2)
        || (dir.starts_with("/var/tmp") && n <= 3)
        || (dir.starts_with("/home") && n <= 3)
        || (dir.starts_with("/run/user") && n <= 4)
        || dir == Path::new("/run")
        || dir == Path::new("/var")
}

fn push_unique(list: &mut Vec<String>, path: &Path, optional: bool) {
    let entry = format!(
        "{}{}",
        if optional { "-" } else { "" },
        super::unit_file::list_path(&path.display().to_string())
    );
    if !list.contains(&entry) {
        list.push(entry);
    }
}

/// `path` without `.` and `..` components (lexically; it may not exist yet).
fn normal(path: &Path) -> PathBuf {
    let mut out = PathBuf::new();
    for c in path.components() {
        match c {
            Component::ParentDir => {
                out.pop();
            }
            Component::CurDir => {}
            c => out.push(c),
        }
    }
    out
}

/// What to bind for a program at `path`: under a home directory its installation (the
/// first directory below the home), elsewhere the file itself.
fn installation(path: &Path) -> PathBuf {
    let path = normal(path);
    let parts: Vec<Component> = path.components().collect();
    // [/, root, X, …] or [/, home, USER, X, …] or [/, run, user, UID, X, …]
    let home_len = if path.starts_with("/root") {
        2
    } else if path.starts_with("/home") {
        3
    } else if path.starts_with("/run/user") {
        4
    } else {
        return path;
    };
    if parts.len() > home_len + 1 {
        parts[..=home_len].iter().collect()
    } else {
        path
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn programs_under_a_home_bring_their_installation() {
        assert_eq!(
            installation(Path::new("/root/.pyenv/shims/python3")),
            Path::new("/root/.pyenv")
        );
        assert_eq!(
            installation(Path::new("/home/ann/.nvm/versions/node/bin/node")),
            Path::new("/home/ann/.nvm")
        );
        assert_eq!(
            installation(Path::new("/root/run.sh")),
            Path::new("/root/run.sh")
        );
        assert_eq!(
            installation(Path::new("/tmp/p/bin/x")),
            Path::new("/tmp/p/bin/x")
        );
    }

    #[test]
    fn only_hidden_paths_are_bound_and_nothing_twice() {
        let mut n = Needs::default();
        n.read(Path::new("/tmp/p"), false);
        n.read(Path::new("/tmp/p/./.env"), true);
        n.program(Path::new("/usr/bin/true"));
        n.write(Path::new("/root/p/logs"), true);
        n.read(Path::new("/root/p/logs/x"), false);
        n.read(Path::new("/root/p"), false);
        let both = [Hider::PrivateTmp, Hider::ProtectHome];
        assert_eq!(
            n.binds(&both),
            (
                vec!["/tmp/p".to_string(), "/root/p".to_string()],
                vec!["-/root/p/logs".to_string()]
            )
        );
        assert!(n.under_home());
        // Without PrivateTmp= the /tmp paths need no bind.
        assert_eq!(
            n.binds(&[Hider::ProtectHome]).0,
            vec!["/root/p".to_string()]
        );
    }
}
