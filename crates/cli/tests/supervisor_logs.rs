//! Log capture through a real supervisor: a hundred megabytes rotated without a lost,
//! torn or reordered line, and `daemonic logs` showing a service's output beside the
//! supervisor's timestamped notes. Real supervisors, the `chatter` fixture.

use daemonic_test_support as support;

mod env;

use env::{Env, fixture};
use support::*;

/// Checks a chatter line (see tests/fixtures/chatter.rs); returns its number and stream.
fn chatter_line(line: &str, len: usize) -> (u64, &str) {
    assert_eq!(line.len(), len - 1, "torn line: {line:?}");
    let n: u64 = line[..10].parse().unwrap_or_else(|_| panic!("{line:?}"));
    let fill = b'a' + (n % 26) as u8;
    assert!(
        line.as_bytes()[15..].iter().all(|b| *b == fill),
        "spliced line {n}: {line:?}"
    );
    (n, &line[11..14])
}

#[test]
fn a_hundred_megabytes_captured_while_rotating_lose_no_line() {
    let env = Env::new("capture-100m");
    let log = env.dir.join("logs").join("c.log");
    let total: u64 = 100_000_000;
    let len = 100;
    let mut cmd = env.cmd();
    cmd.args([
        "run",
        "--name",
        "c",
        "--log-file",
        log.to_str().unwrap(),
        "--log-max-size",
        "1M",
        "--log-keep",
        "1000",
        "--",
        &fixture("chatter"),
        "--bytes",
        &total.to_string(),
        "--line-len",
        &len.to_string(),
        "--stderr-every",
        "7",
    ]);
    let (mut child, guard) = spawn_guarded(&mut cmd);
    assert!(guard.exited_within(std::time::Duration::from_secs(120)));
    assert!(child.wait().unwrap().success());
    let mut files = daemonic::logging::rotated_files(&log).unwrap();
    files.push(log.clone());
    assert!(files.len() > 90, "rotated {} times", files.len() - 1);
    let lines_total = total.div_ceil(len as u64);
    let mut seen = vec![false; lines_total as usize];
    let (mut last_out, mut last_err) = (None, None);
    let mut notes = Vec::new();
    for f in &files {
        let size = std::fs::metadata(f).unwrap().len();
        assert!(size <= 1 << 20, "{} is {size} bytes", f.display());
        let text = std::fs::read_to_string(f).unwrap();
        for line in text.lines() {
            if let Some(note) = note_of(line) {
                notes.push(note.to_string());
                continue;
            }
            let (n, stream) = chatter_line(line, len);
            let last = if stream == "out" {
                &mut last_out
            } else {
                assert_eq!(stream, "err");
                assert_eq!(n % 7, 6, "line {n} on stderr");
                &mut last_err
            };
            assert!(*last < Some(n), "line {n} after {last:?} on {stream}");
            *last = Some(n);
            assert!(
                !std::mem::replace(&mut seen[n as usize], true),
                "line {n} twice"
            );
        }
    }
    let missing = seen.iter().filter(|s| !**s).count();
    assert_eq!(missing, 0, "{missing} lines lost");
    // The start mark, then the exit.
    assert_eq!(notes.len(), 2, "{notes:?}");
    assert!(
        notes[0].starts_with("daemonic: c: started (pid "),
        "{notes:?}"
    );
    assert_eq!(
        notes[1],
        "daemonic: c: chatter exited with status 0; not restarted (--restart on-failure)"
    );
}

#[test]
fn logs_shows_a_started_services_output_and_the_supervisors_notes() {
    let env = Env::new("capture-logs");
    let out = env.daemonic(&[
        "start",
        "--name",
        "w",
        "--grace",
        "100ms",
        "--",
        &fixture("chatter"),
        "--lines",
        "50",
        "--line-len",
        "20",
        "--then-sleep",
    ]);
    assert!(out.status.success(), "{}", stderr(&out));
    let last = |n: &str| {
        let out = env.daemonic(&["logs", "w", "-n", n]);
        assert!(out.status.success(), "{}", stderr(&out));
        String::from_utf8(out.stdout).unwrap()
    };
    let text = wait_for("line 49 captured", SOON, || {
        let t = last("3");
        t.contains("0000000049 out").then_some(t)
    });
    assert_eq!(text.lines().count(), 3, "{text}");
    let json = String::from_utf8(env.daemonic(&["status", "w", "--json"]).stdout).unwrap();
    let file = env.dir.join("state").join("w.log");
    assert!(
        json.contains(&format!("\"log_file\":\"{}\"", file.display())),
        "{json}"
    );
    // The supervisor's own notes go into the log too, each with the time it was written
    // (the log has no --log-timestamps: the child's lines have none).
    assert!(env.daemonic(&["signal", "w", "KILL"]).status.success());
    let note = wait_for("the note about the exit", SOON, || {
        let text = last("200");
        let line = text.lines().find(|l| l.contains("w: chatter killed by"))?;
        Some(line.to_string())
    });
    assert!(
        note_of(&note).is_some_and(|n| n.starts_with("daemonic: w: chatter killed by")),
        "{note}"
    );
    let _ = env.daemonic(&["stop", "w"]);
}

/// The text of a supervisor's note in a captured log: after the time prefix every note
/// has (`2025-03-09T14:07:02.123456Z `, RFC 3339 in UTC), `daemonic: NAME: …`.
fn note_of(line: &str) -> Option<&str> {
    let (stamp, text) = (line.get(..28)?, line.get(28..)?);
    let b = stamp.as_bytes();
    let digits = [0..4, 5..7, 8..10, 11..13, 14..16, 17..19, 20..26];
    let shape = (b[4], b[7], b[10], b[13], b[16], b[19], b[26], b[27])
        == (b'-', b'-', b'T', b':', b':', b'.', b'Z', b' ');
    let numeric = digits
        .into_iter()
        .all(|r| b[r].iter().all(u8::is_ascii_digit));
    (shape && numeric && text.starts_with("daemonic: ")).then_some(text)
}
