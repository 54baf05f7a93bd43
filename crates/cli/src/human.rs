//! Numbers as `status` and `list` print them for people: `5s`, `3m`, `0.25s`, `12.3M`.

/// A duration in whole seconds: seconds up to 2 minutes, then minutes up to 2 hours,
/// hours up to 2 days, then days (always rounded down, so `119s` and not `2m`).
pub fn duration(secs: u64) -> String {
    match secs {
        s if s < 120 => format!("{s}s"),
        s if s < 7200 => format!("{}m", s / 60),
        s if s < 172_800 => format!("{}h", s / 3600),
        s => format!("{}d", s / 86400),
    }
}

/// A duration as the supervisor's notes, probe failures, `status` and progress write it,
/// in the units `--backoff` and `--timeout` accept: microseconds below a millisecond
/// (`250us`), milliseconds below a second (`250ms`), seconds with up to three decimals
/// below two minutes (`1s`, `1.5s`), then as [`duration`] (`3m`, `2h`).
pub fn span(d: std::time::Duration) -> String {
    if !d.is_zero() && d < std::time::Duration::from_millis(1) {
        return format!("{}us", d.as_micros());
    }
    match d.as_millis() {
        ms if ms < 1000 => format!("{ms}ms"),
        ms if ms < 120_000 => {
            let text = format!("{}.{:03}", ms / 1000, ms % 1000);
            format!("{}s", text.trim_end_matches('0').trim_end_matches('.'))
        }
        _ => duration(d.as_secs()),
    }
}

/// CPU time as seconds with two decimals.
pub fn cpu(ms: u64) -> String {
    format!("{}.{:02}s", ms / 1000, ms % 1000 / 10)
}

/// A size in bytes with binary units and one decimal: `512B`, `4.0K`, `12.3M`, `1.5G`.
pub fn bytes(n: u64) -> String {
    const UNITS: [&str; 5] = ["K", "M", "G", "T", "P"];
    if n < 1024 {
        return format!("{n}B");
    }
    let mut value = n as f64 / 1024.0;
    let mut unit = 0;
    while value >= 1024.0 && unit + 1 < UNITS.len() {
        value /= 1024.0;
        unit += 1;
    }
    format!("{value:.1}{}", UNITS[unit])
}

/// What a service said (`STATUS=`, a health verdict), with control characters shown as
/// escapes: the one function every human view uses (see
/// [`daemonic::systemd::listen::printable`]).
pub use daemonic::systemd::listen::printable;

/// Seconds since the Unix epoch, now.
pub fn now_unix() -> u64 {
    std::time::SystemTime::now()
        .duration_since(std::time::UNIX_EPOCH)
        .map_or(0, |d| d.as_secs())
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn durations_switch_units_at_twice_the_unit() {
        assert_eq!(duration(0), "0s");
        assert_eq!(duration(119), "119s");
        assert_eq!(duration(120), "2m");
        assert_eq!(duration(7199), "119m");
        assert_eq!(duration(7200), "2h");
        assert_eq!(duration(172_800), "2d");
    }

    #[test]
    fn spans_read_back_as_the_durations_they_show() {
        let ms = std::time::Duration::from_millis;
        for (d, text) in [
            (ms(0), "0ms"),
            (ms(20), "20ms"),
            (ms(999), "999ms"),
            (ms(1000), "1s"),
            (ms(1500), "1.5s"),
            (ms(2250), "2.25s"),
            (ms(60_001), "60.001s"),
            (std::time::Duration::from_micros(250), "250us"),
        ] {
            assert_eq!(span(d), text);
            assert_eq!(crate::duration::parse(text), Ok(d), "{text}");
        }
        assert_eq!(span(ms(150_000)), "2m");
    }

    #[test]
    fn cpu_is_seconds_with_two_decimals() {
        assert_eq!(cpu(0), "0.00s");
        assert_eq!(cpu(1234), "1.23s");
        assert_eq!(cpu(60_009), "60.00s");
    }

    #[test]
    fn bytes_use_binary_units() {
        assert_eq!(bytes(512), "512B");
        assert_eq!(bytes(4096), "4.0K");
        assert_eq!(bytes(12_900_000), "12.3M");
        assert_eq!(bytes(3 << 30), "3.0G");
    }
}
