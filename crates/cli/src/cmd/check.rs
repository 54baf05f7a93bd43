//! `daemonic check [-f FILE]`: validate a config file without running anything.
//!
//! Every error is reported at once, each at its `file:line:column` with a hint where one
//! helps (see [`crate::config`]); exit status 1 if there is any. A valid file prints its
//! services in start order.

use std::path::PathBuf;

use anyhow::Result;

use crate::config::{self, Report};

/// Services beyond this many are not all listed in the start order.
const SHOWN_IN_FULL: usize = 30;

#[derive(clap::Args, Debug)]
pub struct Args {
    /// The config file.
    #[arg(short = 'f', long = "file", default_value = config::DEFAULT_FILE, value_name = "FILE")]
    file: PathBuf,
}

pub fn run(a: Args) -> Result<u8> {
    match config::load(&a.file) {
        Ok(c) => {
            if !limits_hold(&a.file, &c) {
                return Ok(1);
            }
            let n = c.services.len();
            let order = c.start_order();
            // A long order is shown by its ends (`up` shows every service anyway).
            let shown = if order.len() > SHOWN_IN_FULL {
                format!(
                    "{} → … ({} more) … → {}",
                    order[..5].join(" → "),
                    order.len() - 10,
                    order[order.len() - 5..].join(" → ")
                )
            } else {
                order.join(" → ")
            };
            println!(
                "{}: ok, {n} service{} (project {}); start order: {shown}",
                a.file.display(),
                if n == 1 { "" } else { "s" },
                c.project,
            );
            Ok(0)
        }
        Err(e) => match e.downcast_ref::<Report>() {
            Some(report) => {
                eprintln!("{report}");
                Ok(1)
            }
            None => Err(e),
        },
    }
}

/// Whether every service's limits (`memory-max`, …) can be enforced here; prints why not
/// for each that cannot. (Not part of loading the file: `daemonic unit` writes them for
/// systemd, whatever this machine has.)
fn limits_hold(file: &std::path::Path, c: &config::Config) -> bool {
    let mut ok = true;
    for def in &c.services {
        let limits = def.args.limits.limits();
        if let Err(e) = crate::supervisor::limits::check(&limits) {
            eprintln!("{}: service `{}`: {e:#}", file.display(), def.name);
            ok = false;
        }
    }
    ok
}
