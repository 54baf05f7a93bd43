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
}
