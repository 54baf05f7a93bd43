//! Durations as people write them: `500ms`, `30s`, `2m`, `1h`, `1d`, a plain number of
//! seconds, or several of these added up as systemd writes them: `1m30s`, `1h 30min`,
//! `2.5s`. Units: `us`, `ms`, `s`/`sec`, `m`/`min`, `h`, `d`.

use std::time::Duration;

/// Parses a duration; the error names the value and the accepted forms.
pub fn parse(text: &str) -> Result<Duration, String> {
    let bad = || format!("invalid duration {text:?} (expected e.g. 500ms, 30s, 2m, 1h, 1m30s)");
    let mut rest = text.trim();
    if rest.is_empty() {
        return Err(bad());
    }
    let mut secs = 0.0;
    while !rest.is_empty() {
        let digits = rest
            .find(|c: char| !(c.is_ascii_digit() || c == '.'))
            .unwrap_or(rest.len());
        let (number, after) = rest.split_at(digits);
        let value: f64 = number.parse().map_err(|_| bad())?;
        let after = after.trim_start();
        let letters = after
            .find(|c: char| !c.is_ascii_alphabetic())
            .unwrap_or(after.len());
        let (unit, after) = after.split_at(letters);
        let scale = match unit {
            // A bare number is seconds, but only alone: `1m30` is a typo, not 1m30s.
            "" if secs == 0.0 && after.trim().is_empty() => 1.0,
            "us" => 1e-6,
            "ms" => 0.001,
            "s" | "sec" => 1.0,
            "m" | "min" => 60.0,
            "h" => 3600.0,
            "d" => 86_400.0,
            _ => return Err(bad()),
        };
        secs += value * scale;
        rest = after.trim_start();
    }
    if !secs.is_finite() || secs > 1e9 {
        return Err(bad());
    }
    Ok(Duration::from_secs_f64(secs))
}

/// A duration that must be more than zero (an interval or a timeout of 0 would make the
/// supervisor's loop spin, or fire at once); the error names the value.
pub fn parse_positive(text: &str) -> Result<Duration, String> {
    match parse(text)? {
        d if d.is_zero() => Err(format!(
            "invalid duration {text:?} (expected more than 0, e.g. 500ms, 10s)"
        )),
        d => Ok(d),
    }
}

/// The shortest `--probe-interval`: a readiness probe runs at most 100 times a second
/// (each exec probe is a process; a 0 interval cost half a core).
pub const MIN_PROBE_INTERVAL: Duration = Duration::from_millis(10);

/// A `--probe-interval`: at least [`MIN_PROBE_INTERVAL`].
pub fn parse_probe_interval(text: &str) -> Result<Duration, String> {
    match parse(text)? {
        d if d < MIN_PROBE_INTERVAL => Err(format!(
            "invalid probe interval {text:?} (expected at least {}ms)",
            MIN_PROBE_INTERVAL.as_millis()
        )),
        d => Ok(d),
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn forms() {
        assert_eq!(parse("500ms").unwrap(), Duration::from_millis(500));
        assert_eq!(parse("30s").unwrap(), Duration::from_secs(30));
        assert_eq!(parse("2m").unwrap(), Duration::from_secs(120));
        assert_eq!(parse("1.5").unwrap(), Duration::from_millis(1500));
        assert_eq!(parse("1d").unwrap(), Duration::from_secs(86_400));
        assert_eq!(parse("250us").unwrap(), Duration::from_micros(250));
        assert!(parse("10 parsecs").unwrap_err().contains("\"10 parsecs\""));
        assert!(parse("").is_err());
        assert!(parse("s").is_err());
    }

    #[test]
    fn compound_forms_add_up() {
        assert_eq!(parse("1m30s").unwrap(), Duration::from_secs(90));
        assert_eq!(parse("1h 30min").unwrap(), Duration::from_secs(5400));
        assert_eq!(parse("2s500ms").unwrap(), Duration::from_millis(2500));
        assert_eq!(parse(" 1m 1s ").unwrap(), Duration::from_secs(61));
        // A trailing bare number is a typo, not seconds.
        assert!(parse("1m30").is_err());
        assert!(parse("1m30x").is_err());
        assert!(parse("1e9h").is_err());
    }

    #[test]
    fn zero_intervals_are_refused_by_name() {
        assert!(parse_positive("0s").unwrap_err().contains("\"0s\""));
        assert_eq!(parse_positive("1ms").unwrap(), Duration::from_millis(1));
        assert!(parse_probe_interval("0ms").unwrap_err().contains("\"0ms\""));
        assert!(parse_probe_interval("9ms").is_err());
        assert_eq!(parse_probe_interval("10ms").unwrap(), MIN_PROBE_INTERVAL);
    }
}
