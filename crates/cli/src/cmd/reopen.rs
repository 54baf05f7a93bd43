//! `daemonic reopen NAME`: make a service's supervisor reopen its log files, for
//! logrotate's `create` mode (from `postrotate`; the recipe is in docs/logging.md).
//!
//! `signal NAME USR1` would go to the program, not to the supervisor that writes the log.
//! Prints what was reopened; exit status 1 with the reason otherwise (a service whose
//! output is not captured has nothing to reopen).

use anyhow::{Context, Result, bail};

use crate::control::{self, Request, Response};
use crate::state_dir::{StateDir, check_name};

#[derive(clap::Args, Debug)]
pub struct Args {
    /// The services whose log files to reopen.
    #[arg(required = true, value_name = "NAME")]
    names: Vec<String>,
    /// Print nothing on success.
    #[arg(short, long)]
    quiet: bool,
}

pub fn run(a: Args, dirs: &StateDir) -> Result<u8> {
    let mut failed = false;
    for name in &a.names {
        check_name(name)?;
        let request = Request::Reopen { name: name.clone() };
        let answer = control::call(&dirs.control_socket(name), &request, super::ANSWER_TIMEOUT)
            .with_context(|| name.clone());
        match answer {
            Ok(Response::Done(text)) if !a.quiet => println!("{text}"),
            Ok(Response::Done(_)) => {}
            Ok(Response::Error(why)) => {
                eprintln!("daemonic: {why}");
                failed = true;
            }
            Ok(Response::Services(_)) => bail!("{name}: unexpected answer to reopen"),
            Err(e) => {
                eprintln!("daemonic: {e:#}");
                failed = true;
            }
        }
    }
    Ok(u8::from(failed))
}
