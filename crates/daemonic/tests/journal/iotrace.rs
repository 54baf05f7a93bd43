//! Runs the `journal-appender` fixture under the `iotrace.c` `LD_PRELOAD` shim and parses
//! what the journal's real file backend did: every write with its bytes, every fsync,
//! fdatasync, directory fsync, rename, unlink, truncate and fallocate, in the order they
//! completed, interleaved with the fixture's acknowledgements.
//!
//! The shim is compiled here with the system C compiler (`cc`), once per test run; a test
//! that needs it skips with a printed reason when there is none.

use std::path::{Path, PathBuf};
use std::process::Command;
use std::sync::OnceLock;

use crate::support::TempDir;

/// One completed call (or acknowledgement), file names relative to the journal directory.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Op {
    Create(String),
    Write {
        file: String,
        off: u64,
        data: Vec<u8>,
    },
    Truncate(String, u64),
    Fallocate {
        file: String,
        off: u64,
        len: u64,
    },
    /// fsync or fdatasync of a file: its data (and size) are durable.
    Sync(String),
    /// fsync of the directory: its names are durable.
    DirSync,
    Rename(String, String),
    Unlink(String),
    /// A line the fixture printed (`ack 0 N`, `synced N`, `snapshot SEQ`, `err …`).
    Said(String),
}

/// The compiled shim, or `None` (with the reason printed once) if it cannot be built.
pub fn shim() -> Option<&'static Path> {
    static SHIM: OnceLock<Option<PathBuf>> = OnceLock::new();
    SHIM.get_or_init(|| {
        let src = Path::new(env!("CARGO_MANIFEST_DIR")).join("tests/journal/iotrace.c");
        // Built under cargo's scratch directory for tests (not /tmp: nothing to clean up),
        // under a temporary name and renamed, so concurrent test runs never see half a file.
        let tmp = Path::new(env!("CARGO_TARGET_TMPDIR"));
        let out = tmp.join("iotrace.so");
        let partial = tmp.join(format!("iotrace.so.{}", std::process::id()));
        let built = Command::new("cc")
            .args(["-shared", "-fPIC", "-O1", "-Wall", "-Werror", "-o"])
            .arg(&partial)
            .arg(&src)
            .arg("-ldl")
            .status();
        match built {
            Ok(s) if s.success() && std::fs::rename(&partial, &out).is_ok() => Some(out),
            other => {
                eprintln!("iotrace shim not built ({other:?}): is a C compiler installed?");
                None
            }
        }
    })
    .as_deref()
}

/// A fixture run's trace.
pub struct Run {
    pub ops: Vec<Op>,
    pub status: std::process::ExitStatus,
}

/// Runs `journal-appender script DIR MODE COUNT SNAPSHOT_EVERY` under the shim, with an
/// optional `IOTRACE_FAULT`. `dir` must be canonical (the shim compares real paths).
pub fn run_script(dir: &Path, mode: &str, count: u64, every: u64, fault: Option<&str>) -> Run {
    let shim = shim().expect("shim");
    let trace = dir.with_extension("trace");
    let _ = std::fs::remove_file(&trace);
    let mut cmd = Command::new(crate::support::appender());
    cmd.args(["script", dir.to_str().unwrap(), mode])
        .arg(count.to_string())
        .arg(every.to_string())
        .env("LD_PRELOAD", shim)
        .env("IOTRACE_OUT", &trace)
        .env("IOTRACE_DIR", dir)
        .stdout(std::process::Stdio::null());
    if let Some(f) = fault {
        cmd.env("IOTRACE_FAULT", f);
    }
    let status = cmd.status().expect("run journal-appender under iotrace");
    let text = std::fs::read_to_string(&trace).expect("read the trace");
    let _ = std::fs::remove_file(&trace);
    Run {
        ops: parse(&text, dir),
        status,
    }
}

/// A canonical journal directory inside `tmp` (not created: the fixture creates it).
pub fn journal_dir(tmp: &TempDir, name: &str) -> PathBuf {
    std::fs::canonicalize(tmp.path()).unwrap().join(name)
}

fn parse(text: &str, dir: &Path) -> Vec<Op> {
    let prefix = format!("{}/", dir.display());
    let name = |p: &str| p.strip_prefix(&prefix).unwrap_or(p).to_string();
    let num = |s: &str| s.parse::<u64>().expect("number in trace");
    text.lines()
        .map(|line| {
            let (tag, rest) = line.split_at(1);
            let f: Vec<&str> = rest.trim_start().split(' ').collect();
            match tag {
                "C" => Op::Create(name(f[0])),
                "W" => Op::Write {
                    file: name(f[0]),
                    off: num(f[1]),
                    data: unhex(f[3]),
                },
                "T" => Op::Truncate(name(f[0]), num(f[1])),
                "F" => Op::Fallocate {
                    file: name(f[0]),
                    off: num(f[1]),
                    len: num(f[2]),
                },
                "S" => Op::Sync(name(f[0])),
                "D" => Op::DirSync,
                "R" => Op::Rename(name(f[0]), name(f[1])),
                "U" => Op::Unlink(name(f[0])),
                "A" => Op::Said(rest.trim().to_string()),
                _ => panic!("unknown trace line {line:?}"),
            }
        })
        .collect()
}

fn unhex(s: &str) -> Vec<u8> {
    (0..s.len() / 2)
        .map(|i| u8::from_str_radix(&s[2 * i..2 * i + 2], 16).expect("hex"))
        .collect()
}
