//! `daemonic check [-f FILE]`: validate a config file without running anything.
//!
//! Every error is reported at once, each at its `file:line:column` with a hint where one
//! helps (see [`crate::config`]); exit status 1 if there is any. A valid file prints its
//! services in start order.

use std::path::PathBuf;

use anyhow::Result;

use crate::config::{self, Report};

#[derive(clap::Args, Debug)]
pub struct Args {
    /// The config file.
    #[arg(short = 'f', long = "file", default_value = config::DEFAULT_FILE, value_name = "FILE")]
    file: PathBuf,
}

pub fn run(a: Args) -> Result<u8> {
    match config::load(&a.file) {
        Ok(c) => {
            let n = c.services.len();
            println!(
                "{}: ok, {n} service{} (project {}); start order: {}",
                a.file.display(),
                if n == 1 { "" } else { "s" },
                c.project,
                c.start_order().join(" → ")
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
