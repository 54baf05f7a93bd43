//! `daemonic completions SHELL`: a completion script for bash, zsh, fish, elvish or
//! PowerShell on stdout, generated from the same clap definition that parses the command
//! line, so it knows every subcommand and flag of this build.
//!
//! Install (the README's install step does this):
//! `daemonic completions bash > ~/.local/share/bash-completion/completions/daemonic`,
//! `daemonic completions zsh > "${fpath[1]}/_daemonic"`,
//! `daemonic completions fish > ~/.config/fish/completions/daemonic.fish`.

use anyhow::Result;
use clap_complete::Shell;

#[derive(clap::Args, Debug)]
pub struct Args {
    /// The shell to write a completion script for.
    #[arg(value_enum, value_name = "SHELL")]
    shell: Shell,
}

pub fn run(a: Args, mut cli: clap::Command) -> Result<u8> {
    let mut out = std::io::stdout().lock();
    clap_complete::generate(a.shell, &mut cli, "daemonic", &mut out);
    Ok(0)
}
