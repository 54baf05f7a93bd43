//! UTC calendar arithmetic, written out so that logging needs no time crate.
//!
//! Everything here is UTC: log timestamps (`2025-03-09T14:07:02.123456Z`), rotated-file names
//! (`20250309-140702`) and the hourly/daily rotation boundaries. UTC never repeats an hour
//! (no DST), so names sort by time and a boundary happens exactly once.

use std::time::{Duration, SystemTime, UNIX_EPOCH};

/// A broken-down UTC time.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub(crate) struct Utc {
    pub year: i64,
    pub month: u32,
    pub day: u32,
    pub hour: u32,
    pub minute: u32,
    pub second: u32,
    pub micros: u32,
}

/// Seconds (and micros) since the epoch; times before 1970 clamp to the epoch.
fn epoch_parts(t: SystemTime) -> (i64, u32) {
    let d = t.duration_since(UNIX_EPOCH).unwrap_or(Duration::ZERO);
    (d.as_secs() as i64, d.subsec_micros())
}

impl Utc {
    /// Breaks `t` down into calendar fields.
    pub fn from_system_time(t: SystemTime) -> Utc {
        let (secs, micros) = epoch_parts(t);
        let days = secs.div_euclid(86_400);
        let rem = secs.rem_euclid(86_400) as u32;
        let (year, month, day) = civil_from_days(days);
        Utc {
            year,
            month,
            day,
            hour: rem / 3600,
            minute: rem % 3600 / 60,
            second: rem % 60,
            micros,
        }
    }

    /// `2025-03-09T14:07:02.123456Z` (RFC 3339, microseconds).
    pub fn write_rfc3339(&self, out: &mut String) {
        use std::fmt::Write;
        let _ = write!(
            out,
            "{:04}-{:02}-{:02}T{:02}:{:02}:{:02}.{:06}Z",
            self.year, self.month, self.day, self.hour, self.minute, self.second, self.micros
        );
    }

    /// `20250309-140702`, the stamp in rotated-file names.
    pub fn compact(&self) -> String {
        format!(
            "{:04}{:02}{:02}-{:02}{:02}{:02}",
            self.year, self.month, self.day, self.hour, self.minute, self.second
        )
    }
}

/// Days since 1970-01-01 to (year, month, day), proleptic Gregorian.
///
/// Howard Hinnant's `civil_from_days`: shift the year to start in March so the leap day is
/// the last day of the year, then split into 400-year eras of 146097 days.
fn civil_from_days(z: i64) -> (i64, u32, u32) {
    let z = z + 719_468;
    let era = z.div_euclid(146_097);
    let doe = z.rem_euclid(146_097); // [0, 146096]
    let yoe = (doe - doe / 1460 + doe / 36_524 - doe / 146_096) / 365; // [0, 399]
    let y = yoe + era * 400;
    let doy = doe - (365 * yoe + yoe / 4 - yoe / 100); // [0, 365]
    let mp = (5 * doy + 2) / 153; // [0, 11], March-based
    let d = (doy - (153 * mp + 2) / 5 + 1) as u32;
    let m = if mp < 10 { mp + 3 } else { mp - 9 } as u32;
    (if m <= 2 { y + 1 } else { y }, m, d)
}

/// The first instant strictly after `t` that is a multiple of `period` since the epoch.
///
/// With `period` one hour or one day this is the next UTC hour or midnight.
pub(crate) fn next_boundary(t: SystemTime, period: Duration) -> SystemTime {
    let p = period.as_secs().max(1) as i64;
    let (secs, _) = epoch_parts(t);
    let next = (secs.div_euclid(p) + 1) * p;
    UNIX_EPOCH + Duration::from_secs(next as u64)
}

/// The start of the period containing `t`.
pub(crate) fn period_start(t: SystemTime, period: Duration) -> SystemTime {
    let p = period.as_secs().max(1) as i64;
    let (secs, _) = epoch_parts(t);
    UNIX_EPOCH + Duration::from_secs((secs.div_euclid(p) * p) as u64)
}

#[cfg(test)]
mod tests {
    use super::*;

    fn at(secs: u64) -> SystemTime {
        UNIX_EPOCH + Duration::from_secs(secs)
    }

    #[test]
    fn epoch_and_known_dates_break_down_correctly() {
        let mut s = String::new();
        Utc::from_system_time(at(0)).write_rfc3339(&mut s);
        assert_eq!(s, "1970-01-01T00:00:00.000000Z");
        // 2000-02-29 12:34:56 UTC (a leap day in a century leap year).
        let u = Utc::from_system_time(at(951_827_696));
        assert_eq!((u.year, u.month, u.day), (2000, 2, 29));
        assert_eq!((u.hour, u.minute, u.second), (12, 34, 56));
        // 2024-12-31 23:59:59 UTC, and one second later.
        assert_eq!(
            Utc::from_system_time(at(1_735_689_599)).compact(),
            "20241231-235959"
        );
        assert_eq!(
            Utc::from_system_time(at(1_735_689_600)).compact(),
            "20250101-000000"
        );
    }

    #[test]
    fn every_day_for_four_centuries_is_consecutive() {
        // Walk day by day from 1970 to 2370 and check the calendar never skips or repeats.
        let (mut y, mut m, mut d) = civil_from_days(0);
        for z in 1..146_097 {
            let (ny, nm, nd) = civil_from_days(z);
            let leap = (y % 4 == 0 && y % 100 != 0) || y % 400 == 0;
            let len = [
                31,
                if leap { 29 } else { 28 },
                31,
                30,
                31,
                30,
                31,
                31,
                30,
                31,
                30,
                31,
            ];
            let expected = if d < len[m as usize - 1] {
                (y, m, d + 1)
            } else if m < 12 {
                (y, m + 1, 1)
            } else {
                (y + 1, 1, 1)
            };
            assert_eq!((ny, nm, nd), expected, "day {z}");
            (y, m, d) = (ny, nm, nd);
        }
    }

    #[test]
    fn boundaries_are_the_next_hour_and_midnight() {
        let hour = Duration::from_secs(3600);
        let day = Duration::from_secs(86_400);
        let t = at(1_735_689_599); // 23:59:59
        assert_eq!(next_boundary(t, hour), at(1_735_689_600));
        assert_eq!(next_boundary(t, day), at(1_735_689_600));
        // Exactly on a boundary: the next one is a full period later.
        assert_eq!(next_boundary(at(1_735_689_600), hour), at(1_735_693_200));
        assert_eq!(period_start(at(1_735_693_199), hour), at(1_735_689_600));
    }
}
