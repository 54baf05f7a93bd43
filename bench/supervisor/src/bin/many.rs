//! `many N -- CMD ARGS…`: one daemonic supervisor running N services in one event loop,
//! each `--restart always --backoff 0ms --grace 10ms -- CMD ARGS…`, until SIGTERM.
//!
//! There is no config file yet; this drives `daemonic_cli::supervisor::supervise` as a
//! library, the way `daemonic run` does for one service (no pid file, no status files, no
//! control socket).
//! The memory benchmark runs it at N=1 and N=100 to get the cost of one more service.

use anyhow::{Context, Result, bail};
use clap::Parser;
use daemonic_cli::service::{Service, ServiceArgs};
use daemonic_cli::supervisor::{Entry, supervise};

#[derive(Parser)]
struct Wrap {
    #[command(flatten)]
    service: ServiceArgs,
}

fn main() -> Result<()> {
    let mut args = std::env::args().skip(1);
    let n: usize = args
        .next()
        .context("usage: many N -- CMD ARGS…")?
        .parse()
        .context("N: a number")?;
    let rest: Vec<String> = args.collect();
    let command = match rest.first().map(String::as_str) {
        Some("--") => &rest[1..],
        _ => &rest[..],
    };
    if n == 0 || command.is_empty() {
        bail!("usage: many N -- CMD ARGS… (N ≥ 1)");
    }
    let flags = [
        "many",
        "--restart",
        "always",
        "--backoff",
        "0ms",
        "--grace",
        "10ms",
        "--",
    ];
    let mut entries = Vec::with_capacity(n);
    for i in 0..n {
        let argv = flags
            .iter()
            .map(|s| s.to_string())
            .chain(command.iter().cloned());
        let w = Wrap::parse_from(argv);
        entries.push(Entry {
            // No captured log: the output is inherited, as with `daemonic run` without --log-file.
            service: Service::from_args(format!("bench-{i}"), w.service, None)?,
            status_file: None,
        });
    }
    let outer = daemonic::Daemon::new().foreground(true).start()?;
    // No control socket (`daemonic run --name` serves one; `many` has no name).
    supervise(entries, &outer, None, None)?;
    outer.finish()?;
    Ok(())
}
