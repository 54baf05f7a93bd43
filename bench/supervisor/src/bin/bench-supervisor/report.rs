//! The raw samples (TSV) and the numbers of the summary.

use std::fs::File;
use std::io::Write;

use crate::Tool;

pub struct Raw(pub File);

impl Raw {
    #[allow(clippy::too_many_arguments)]
    pub fn row(
        &mut self,
        phase: &str,
        tool: Tool,
        n: usize,
        iter: usize,
        role: &str,
        pid: i32,
        metric: &str,
        value: impl std::fmt::Display,
    ) {
        let _ = writeln!(
            self.0,
            "{phase}\t{}\t{n}\t{iter}\t{role}\t{pid}\t{metric}\t{value}",
            tool.key()
        );
    }
}

pub fn pct(sorted: &[f64], p: f64) -> f64 {
    if sorted.is_empty() {
        return f64::NAN;
    }
    let rank = ((p / 100.0) * sorted.len() as f64).ceil() as usize;
    sorted[rank.clamp(1, sorted.len()) - 1]
}

pub fn median(v: &[f64]) -> f64 {
    let mut s = v.to_vec();
    s.sort_by(f64::total_cmp);
    if s.is_empty() {
        return f64::NAN;
    }
    let n = s.len();
    if n % 2 == 1 {
        s[n / 2]
    } else {
        (s[n / 2 - 1] + s[n / 2]) / 2.0
    }
}

/// A ratio with two decimals, or three significant digits below 0.1.
pub fn ratio(r: f64) -> String {
    if r.abs() < 0.1 {
        format!("{r:.3}×")
    } else {
        format!("{r:.2}×")
    }
}

pub fn kib(v: u64) -> String {
    format!("{v}")
}
