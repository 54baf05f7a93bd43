//! `daemonic man [--dir DIR]`: the manual page, generated from the clap definition (the same
//! text as `--help`, in roff). Without `--dir`, `daemonic(1)` on stdout (`daemonic man |
//! man -l -`); with it, `daemonic.1` and one `daemonic-SUBCOMMAND.1` per subcommand written
//! into DIR (e.g. `/usr/local/share/man/man1`), each file replaced atomically.

use std::io::Write;
use std::path::{Path, PathBuf};

use anyhow::{Context, Result};

#[derive(clap::Args, Debug)]
pub struct Args {
    /// Write daemonic.1 and a daemonic-SUBCOMMAND.1 per subcommand into DIR (created if
    /// missing) instead of printing daemonic.1.
    #[arg(long, value_name = "DIR")]
    dir: Option<PathBuf>,
}

pub fn run(a: Args, cli: clap::Command) -> Result<u8> {
    let cli = cli.name("daemonic");
    let Some(dir) = a.dir else {
        let mut out = std::io::stdout().lock();
        clap_mangen::Man::new(cli)
            .render(&mut out)
            .context("write the manual page")?;
        return Ok(0);
    };
    std::fs::create_dir_all(&dir).with_context(|| format!("create {}", dir.display()))?;
    write_page(&dir, "daemonic", cli.clone())?;
    for sub in cli.get_subcommands().filter(|s| s.get_name() != "help") {
        let name = format!("daemonic-{}", sub.get_name());
        // The page's title and usage line name the full command (`daemonic start`).
        let sub = sub
            .clone()
            .name(name.clone())
            .bin_name(format!("daemonic {}", sub.get_name()));
        write_page(&dir, &name, sub)?;
    }
    Ok(0)
}

/// Renders `cmd`'s page into `DIR/NAME.1` through a temporary file and a rename, so that
/// `man` never reads half a page.
fn write_page(dir: &Path, name: &str, cmd: clap::Command) -> Result<()> {
    let mut page = Vec::new();
    clap_mangen::Man::new(cmd).render(&mut page)?;
    let path = dir.join(format!("{name}.1"));
    let tmp = dir.join(format!(".{name}.1.tmp"));
    let write = || -> std::io::Result<()> {
        // A leftover of an interrupted run is removed; `create_new` (O_EXCL) never follows
        // a symlink planted at the temporary name.
        match std::fs::remove_file(&tmp) {
            Err(e) if e.kind() != std::io::ErrorKind::NotFound => return Err(e),
            _ => {}
        }
        let mut f = std::fs::OpenOptions::new()
            .write(true)
            .create_new(true)
            .open(&tmp)?;
        f.write_all(&page)?;
        f.sync_all()?;
        std::fs::rename(&tmp, &path)
    };
    write().with_context(|| format!("write {}", path.display()))?;
    println!("{}", path.display());
    Ok(())
}
