//! Restart policy as pure functions: whether an exit is restarted, how long to wait
//! first, and when to give up. No clocks and no randomness of their own: the caller passes
//! `now` and a seeded [`Jitter`], so every decision is reproducible in a test.
//!
//! - [`Restart`] with the exit codes that count as success decides *whether*.
//! - [`Backoff`] decides *how long*: a run that lasted `reset_after` (default 1 s, runit's
//!   rule) was stable: it is restarted at once, and the sequence starts over (a stable run
//!   forgives the crashes before it). Shorter runs are a crash loop: `initial ×
//!   multiplier^step`, capped, optionally with full jitter (uniform in `[0, delay]`).
//! - [`Policy::start_retries`] bounds the restarts of a service that has never been ready:
//!   a program that cannot start at all ends its `start` (or `up`) with its error after a
//!   few attempts instead of being retried while the launcher waits. Once ready, only the
//!   backoff and the start limit apply.
//! - [`StartLimit`] decides *when to stop trying*: at most `burst` starts within `window`.
//!   The caller keeps only the start times a limit can still count ([`StartLimit::keep`]):
//!   none without a limit, at most `burst` with one, so a crash loop uses no more memory
//!   after a million restarts than after ten.

use std::collections::VecDeque;
use std::time::{Duration, Instant};

use daemonic::process::Exit;

pub use crate::service::restart::{Backoff, Policy, Restart, StartLimit};

/// Whether `exit` counts as success: an exit status among `success_codes` (a signal never
/// does).
pub fn is_success(success_codes: &[i32], exit: Exit) -> bool {
    matches!(exit, Exit::Code(c) if success_codes.contains(&c))
}

/// Whether `exit` is restarted under `restart`, given the codes that count as success.
pub fn restarts(restart: Restart, success_codes: &[i32], exit: Exit) -> bool {
    match (restart, exit) {
        (Restart::Never, _) => false,
        (Restart::Always, _) => true,
        (Restart::OnFailure, Exit::Code(c)) => !success_codes.contains(&c),
        (Restart::OnFailure, Exit::Signal(..)) => true,
    }
}

impl Backoff {
    /// The delay before restart number `step` (0 for the first after a stable run).
    pub fn delay(&self, step: u32, jitter: &mut Jitter) -> Duration {
        // Zero stays zero: `0 × multiplier^step` overflows to `0 × ∞ = NaN` past step
        // ~1000, which would otherwise read as "too long" and wait the cap.
        if self.initial.is_zero() {
            return Duration::ZERO;
        }
        let exp = i32::try_from(step).unwrap_or(i32::MAX);
        let secs = self.initial.as_secs_f64() * self.multiplier.powi(exp);
        let capped = if secs.is_finite() && secs < self.max.as_secs_f64() {
            Duration::from_secs_f64(secs)
        } else {
            self.max
        };
        if self.jitter {
            capped.mul_f64(jitter.unit())
        } else {
            capped
        }
    }

    /// The step after a run that lasted `uptime` and ended at `step`.
    pub fn next_step(&self, step: u32, uptime: Duration) -> u32 {
        if self.is_stable(uptime) { 0 } else { step }
    }

    /// Whether a run that lasted `uptime` was stable: it is restarted at once (no delay)
    /// and the backoff starts over, as runit does after a second of uptime. Shorter runs
    /// are a crash loop, whose delays grow.
    pub fn is_stable(&self, uptime: Duration) -> bool {
        uptime >= self.reset_after
    }
}

impl StartLimit {
    /// Whether a start at `at` stays within the limit, given earlier start times.
    pub fn allows(&self, starts: &VecDeque<Instant>, at: Instant) -> bool {
        let recent = starts
            .iter()
            .filter(|t| at.saturating_duration_since(**t) < self.window)
            .count();
        recent < self.burst as usize
    }

    /// Forgets the start times (oldest first) that can no longer count at `now`: those
    /// older than the window, and all but the newest `burst` (a start is refused once
    /// `burst` fall within the window, so older ones never matter). Without a limit,
    /// nothing is kept.
    pub fn keep(limit: Option<StartLimit>, starts: &mut VecDeque<Instant>, now: Instant) {
        let Some(limit) = limit else {
            starts.clear();
            return;
        };
        while starts.len() > limit.burst as usize
            || starts
                .front()
                .is_some_and(|t| now.saturating_duration_since(*t) >= limit.window)
        {
            starts.pop_front();
        }
    }
}

/// A small seedable random source for backoff jitter (SplitMix64): not for secrets, only
/// to keep restarts of many services from lining up.
#[derive(Debug, Clone)]
pub struct Jitter(u64);

impl Jitter {
    pub fn new(seed: u64) -> Jitter {
        Jitter(seed)
    }

    /// A value in `[0, 1]`.
    pub fn unit(&mut self) -> f64 {
        self.0 = self.0.wrapping_add(0x9e37_79b9_7f4a_7c15);
        let mut z = self.0;
        z = (z ^ (z >> 30)).wrapping_mul(0xbf58_476d_1ce4_e5b9);
        z = (z ^ (z >> 27)).wrapping_mul(0x94d0_49bb_1331_11eb);
        z ^= z >> 31;
        (z >> 11) as f64 / (1u64 << 53) as f64
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use daemonic::Signal;

    fn ms(n: u64) -> Duration {
        Duration::from_millis(n)
    }

    fn backoff(jitter: bool) -> Backoff {
        Backoff {
            initial: ms(50),
            multiplier: 2.0,
            max: ms(400),
            jitter,
            reset_after: ms(1000),
        }
    }

    #[test]
    fn restart_decisions() {
        let three = Exit::Code(3);
        let killed = Exit::Signal(Signal::SIGSEGV, true);
        assert!(!restarts(Restart::Never, &[0], three));
        assert!(restarts(Restart::Always, &[0], Exit::Code(0)));
        assert!(restarts(Restart::OnFailure, &[0], three));
        assert!(!restarts(Restart::OnFailure, &[0, 3], three));
        assert!(!restarts(Restart::OnFailure, &[0], Exit::Code(0)));
        assert!(restarts(Restart::OnFailure, &[0], killed));
    }

    #[test]
    fn backoff_grows_by_the_multiplier_up_to_the_cap() {
        let b = backoff(false);
        let mut j = Jitter::new(1);
        let delays: Vec<_> = (0..6).map(|s| b.delay(s, &mut j)).collect();
        assert_eq!(delays, [50, 100, 200, 400, 400, 400].map(ms));
        assert_eq!(b.delay(u32::MAX, &mut j), ms(400), "no overflow");
        let flat = Backoff {
            multiplier: 1.0,
            ..b
        };
        assert_eq!(flat.delay(9, &mut j), ms(50));
    }

    #[test]
    fn full_jitter_stays_within_the_delay_and_is_reproducible() {
        let b = backoff(true);
        let run = |seed| {
            let mut j = Jitter::new(seed);
            (0..20).map(|s| b.delay(s, &mut j)).collect::<Vec<_>>()
        };
        let a = run(7);
        assert_eq!(a, run(7), "same seed, same delays");
        assert_ne!(a, run(8));
        for (s, d) in a.iter().enumerate() {
            assert!(*d <= backoff(false).delay(s as u32, &mut Jitter::new(0)));
        }
    }

    #[test]
    fn zero_backoff_stays_zero_at_every_step() {
        let zero = Backoff {
            initial: Duration::ZERO,
            max: Duration::from_secs(60),
            ..backoff(false)
        };
        let mut j = Jitter::new(1);
        for step in [0, 1, 1024, 1025, 2000, u32::MAX] {
            assert_eq!(zero.delay(step, &mut j), Duration::ZERO, "step {step}");
        }
    }

    #[test]
    fn only_the_start_times_a_limit_can_count_are_kept() {
        let t0 = Instant::now();
        let mut starts = VecDeque::new();
        for s in 0..20_000u64 {
            starts.push_back(t0 + ms(s));
            StartLimit::keep(None, &mut starts, t0 + ms(s));
            assert!(starts.is_empty());
        }
        let limit = StartLimit::parse("5/1h").unwrap();
        for s in 0..20_000u64 {
            starts.push_back(t0 + ms(s));
            StartLimit::keep(Some(limit), &mut starts, t0 + ms(s));
            assert!(starts.len() <= 5);
        }
        StartLimit::keep(Some(limit), &mut starts, t0 + Duration::from_secs(7200));
        assert!(starts.is_empty(), "all aged out");
    }

    #[test]
    fn a_stable_run_resets_the_step() {
        let b = backoff(false);
        assert_eq!(b.next_step(4, ms(999)), 4);
        assert_eq!(b.next_step(4, ms(1000)), 0);
    }

    #[test]
    fn start_limit_counts_starts_within_the_window() {
        let limit = StartLimit::parse("3/10s").unwrap();
        let t0 = Instant::now();
        let mut starts = VecDeque::new();
        for s in [0, 1, 2] {
            assert!(limit.allows(&starts, t0 + Duration::from_secs(s)));
            starts.push_back(t0 + Duration::from_secs(s));
        }
        assert!(!limit.allows(&starts, t0 + Duration::from_secs(3)));
        assert!(
            limit.allows(&starts, t0 + Duration::from_secs(10)),
            "first aged out"
        );
        assert_eq!(limit.to_string(), "3 starts within 10s");
        for bad in ["3", "0/10s", "x/10s", "3/", "3/0s"] {
            assert!(StartLimit::parse(bad).unwrap_err().contains(bad), "{bad}");
        }
    }
}
