//! Several services' log lines as one view: `name | line`, in time order as far as the
//! logs tell it.
//!
//! # The order, and how precise it is
//!
//! A captured line carries a time only with `--log-timestamps` (`2025-03-09T14:07:02.123456Z `
//! before it, taken when the supervisor read it). So each line is given a *key*:
//!
//! * its own time prefix, when it has one;
//! * else the key of the line before it in the same log (a line without a time — a
//!   service without `--log-timestamps`, or a line of a file written before it was
//!   turned on — stays after the line it followed; the supervisor's notes, such as a
//!   run's `started (pid N)` marker, always carry a time);
//! * else (no timed line before it in what is shown) the caller's fallback: for the last
//!   lines of a log, the log file's modification time (the latest time any of its lines
//!   can have been written); while following, the time the follower read it.
//!
//! Lines are then sorted by key, stably: the lines of one log never change order, and
//! lines with equal keys keep the order of the services as given. With timestamps on
//! every service, the view is ordered to the microsecond of the supervisor's reads; a
//! service without them is placed by its file's modification time (a block) or, while
//! following, by the 100 ms look in which its lines appeared — no finer than that.
//!
//! A prefix is `name | ` with names padded to the longest, coloured on a terminal (see
//! [`Prefixes`]).

use std::io::{self, Write};
use std::time::SystemTime;

use crate::service::timestamp;

/// The key of a line: an RFC 3339 UTC time with microseconds, as the capture writes it
/// (fixed width, so byte order is time order).
pub type Key = [u8; timestamp::LEN];

/// The key for a moment (a file's mtime, the time a line was read).
pub fn key_of(t: SystemTime) -> Key {
    timestamp::prefix(t)
}

/// The time prefix a captured line starts with, if it has one.
fn stamp(line: &[u8]) -> Option<Key> {
    timestamp::parse(line)
}

/// One line to show: which service (an index into the caller's list), and the line
/// (its newline included).
pub struct Line<'a> {
    pub service: usize,
    pub key: Key,
    pub text: &'a [u8],
}

/// The lines of `text` (one service's complete lines, oldest first), keyed as the module
/// docs say, `fallback` standing in for a time before the first timed line.
pub fn keyed(service: usize, text: &[u8], fallback: Key) -> Vec<Line<'_>> {
    let mut key = fallback;
    text.split_inclusive(|&b| b == b'\n')
        .map(|line| {
            if let Some(k) = stamp(line) {
                key = k;
            }
            Line {
                service,
                key,
                text: line,
            }
        })
        .collect()
}

/// Sorts lines of several services into the view's order (see the module docs).
pub fn sort(lines: &mut [Line<'_>]) {
    // Stable: one log's lines keep their order, equal keys keep the services' order.
    lines.sort_by(|a, b| a.key.cmp(&b.key).then(a.service.cmp(&b.service)));
}

/// `name | ` before each line: names padded to the longest, each in a colour of its own
/// when the output is a terminal (and `NO_COLOR` is not set). A lone service's lines get
/// no prefix.
pub struct Prefixes {
    prefixes: Vec<Vec<u8>>,
}

/// Colours for names (ANSI SGR): no red, which reads as an error.
const PALETTE: [u8; 10] = [36, 33, 32, 35, 34, 96, 93, 92, 95, 94];

/// The colour of the service at `place` in its file (or in the list shown): by place, so
/// that the first ten services have ten different colours, and a service keeps its colour
/// from one run to the next while the file's order stays.
pub fn colour_of(place: usize) -> u8 {
    PALETTE[place % PALETTE.len()]
}

/// Whether to colour output to a terminal: `NO_COLOR` set to anything but the empty
/// string says no (<https://no-color.org>).
pub fn colour_wanted(is_terminal: bool) -> bool {
    is_terminal && std::env::var_os("NO_COLOR").is_none_or(|v| v.is_empty())
}

impl Prefixes {
    pub fn new<S: AsRef<str>>(names: &[S], colour: bool) -> Prefixes {
        let width = names
            .iter()
            .map(|n| n.as_ref().chars().count())
            .max()
            .unwrap_or(0);
        let prefixes = names
            .iter()
            .enumerate()
            .map(|(i, n)| {
                let padded = format!("{:width$}", n.as_ref());
                match colour {
                    true => format!("\x1b[{}m{padded}\x1b[0m | ", colour_of(i)),
                    false => format!("{padded} | "),
                }
                .into_bytes()
            })
            .collect();
        if names.len() == 1 {
            return Prefixes {
                prefixes: vec![Vec::new()],
            };
        }
        Prefixes { prefixes }
    }

    /// Writes `lines` in order, each after its service's prefix, in one write.
    pub fn write(&self, lines: &[Line<'_>], out: &mut impl Write) -> io::Result<()> {
        let mut buf = Vec::new();
        for l in lines {
            buf.extend_from_slice(&self.prefixes[l.service]);
            buf.extend_from_slice(l.text);
            if !l.text.ends_with(b"\n") {
                buf.push(b'\n');
            }
        }
        out.write_all(&buf)?;
        out.flush()
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    const T1: &str = "2025-03-09T14:07:02.000001Z ";
    const T2: &str = "2025-03-09T14:07:02.000002Z ";
    const T3: &str = "2025-03-09T14:07:03.000000Z ";

    fn view(logs: &[(&str, &str)], fallback: &str) -> String {
        let fallback: Key = fallback.as_bytes().try_into().unwrap();
        let mut lines: Vec<Line> = logs
            .iter()
            .enumerate()
            .flat_map(|(i, (_, text))| keyed(i, text.as_bytes(), fallback))
            .collect();
        sort(&mut lines);
        let names: Vec<&str> = logs.iter().map(|(n, _)| *n).collect();
        let mut out = Vec::new();
        Prefixes::new(&names, false)
            .write(&lines, &mut out)
            .unwrap();
        String::from_utf8(out).unwrap()
    }

    #[test]
    fn timed_lines_merge_by_time_and_untimed_ones_follow_their_predecessor() {
        let a = format!("{T1}a1\n{T3}a3\nafter a3\n");
        let b = format!("{T2}b2\n");
        assert_eq!(
            view(&[("a", &a), ("web", &b)], T1),
            format!("a   | {T1}a1\nweb | {T2}b2\na   | {T3}a3\na   | after a3\n")
        );
    }

    #[test]
    fn a_log_without_times_is_placed_at_its_fallback_as_a_block() {
        let a = format!("{T1}a1\n{T3}a3\n");
        assert_eq!(
            view(&[("a", &a), ("b", "x\ny\n")], T2),
            format!("a | {T1}a1\nb | x\nb | y\na | {T3}a3\n")
        );
    }

    #[test]
    fn only_a_well_formed_time_counts() {
        assert!(stamp(T1.as_bytes()).is_some());
        assert!(stamp(b"2025-03-09T14:07:02.00000xZ rest").is_none());
        assert!(stamp(b"short").is_none());
        assert!(stamp("2025-03-09T14:07:02.000001Z_".as_bytes()).is_none());
    }

    #[test]
    fn colours_are_stable_and_optional() {
        assert_ne!(colour_of(0), colour_of(1));
        let p = Prefixes::new(&["web", "db"], true);
        let mut out = Vec::new();
        let line = [Line {
            service: 1,
            key: [b'0'; timestamp::LEN],
            text: b"hi",
        }];
        p.write(&line, &mut out).unwrap();
        let want = format!("\x1b[{}mdb \x1b[0m | hi\n", colour_of(1));
        assert_eq!(String::from_utf8(out).unwrap(), want);
    }
}
