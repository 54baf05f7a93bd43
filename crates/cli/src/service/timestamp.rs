//! The per-line time prefix of captured output (`--log-timestamps`): `2025-03-09T14:07:02.123456Z ` (RFC 3339,
//! UTC, microseconds, then a space), formatted into a fixed array without allocating.

use std::time::{SystemTime, UNIX_EPOCH};

/// Length of a prefix, the trailing space included.
pub const LEN: usize = 28;

/// The prefix for `t` (times before 1970 show as the epoch).
pub fn prefix(t: SystemTime) -> [u8; LEN] {
    let d = t.duration_since(UNIX_EPOCH).unwrap_or_default();
    let secs = d.as_secs();
    let (year, month, day) = civil_from_days((secs / 86_400) as i64);
    let rem = secs % 86_400;
    let mut out = *b"0000-00-00T00:00:00.000000Z ";
    put(&mut out[0..4], year.clamp(0, 9999) as u64);
    put(&mut out[5..7], u64::from(month));
    put(&mut out[8..10], u64::from(day));
    put(&mut out[11..13], rem / 3600);
    put(&mut out[14..16], rem % 3600 / 60);
    put(&mut out[17..19], rem % 60);
    put(&mut out[20..26], u64::from(d.subsec_micros()));
    out
}

/// The prefix `line` starts with, if it starts with a well-formed one.
pub fn parse(line: &[u8]) -> Option<[u8; LEN]> {
    let head: [u8; LEN] = line.get(..LEN)?.try_into().ok()?;
    let digits = [0..4, 5..7, 8..10, 11..13, 14..16, 17..19, 20..26];
    let shape = head[4] == b'-'
        && head[7] == b'-'
        && head[10] == b'T'
        && head[13] == b':'
        && head[16] == b':'
        && head[19] == b'.'
        && head[26] == b'Z'
        && head[27] == b' ';
    let numeric = digits
        .into_iter()
        .all(|r| head[r].iter().all(u8::is_ascii_digit));
    (shape && numeric).then_some(head)
}

/// Writes `v` in decimal, zero-padded to the slice's width.
fn put(dst: &mut [u8], mut v: u64) {
    for b in dst.iter_mut().rev() {
        *b = b'0' + (v % 10) as u8;
        v /= 10;
    }
}

/// Days since 1970-01-01 to (year, month, day), proleptic Gregorian (Howard Hinnant's
/// `civil_from_days`).
fn civil_from_days(z: i64) -> (i64, u32, u32) {
    let z = z + 719_468;
    let era = z.div_euclid(146_097);
    let doe = z.rem_euclid(146_097);
    let yoe = (doe - doe / 1460 + doe / 36_524 - doe / 146_096) / 365;
    let doy = doe - (365 * yoe + yoe / 4 - yoe / 100);
    let mp = (5 * doy + 2) / 153;
    let day = (doy - (153 * mp + 2) / 5 + 1) as u32;
    let month = if mp < 10 { mp + 3 } else { mp - 9 } as u32;
    let year = yoe + era * 400 + i64::from(month <= 2);
    (year, month, day)
}

#[cfg(test)]
mod tests {
    use super::*;
    use std::time::Duration;

    fn at(secs: u64, micros: u32) -> String {
        let t = UNIX_EPOCH + Duration::new(secs, micros * 1000);
        String::from_utf8(prefix(t).to_vec()).unwrap()
    }

    #[test]
    fn rfc3339_utc_with_microseconds_and_a_space() {
        assert_eq!(at(0, 0), "1970-01-01T00:00:00.000000Z ");
        assert_eq!(at(1_741_529_222, 123_456), "2025-03-09T14:07:02.123456Z ");
        // A leap day and the last microsecond of a year.
        assert_eq!(at(951_782_400, 7), "2000-02-29T00:00:00.000007Z ");
        assert_eq!(at(1_798_761_599, 999_999), "2026-12-31T23:59:59.999999Z ");
    }
}
