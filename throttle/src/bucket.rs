//! Channel bandwidth: a GCRA (generic cell rate algorithm) bucket.
//!
//! GCRA keeps one number, the theoretical arrival time (TAT) of the next
//! message. A message may go at `now` when `now >= TAT - tolerance`, where
//! `tolerance = interval * (burst - 1)`; going pushes TAT to
//! `max(TAT, now) + interval`. Over any span of length `d` this admits at
//! most `burst + d / interval` messages, evenly spaced once the burst is
//! spent. With `burst = 1` the flow is perfectly smooth.
//!
//! A clock that moves backwards only makes `now` smaller, so it delays the
//! next message; it never releases extra ones, and nothing panics (all
//! arithmetic saturates).

use jiff::Timestamp;

use crate::error::{Error, Problem, Result};

/// A channel's bandwidth limiter.
#[derive(Debug, Clone)]
pub struct Bucket {
    interval_ns: i64,
    tolerance_ns: i64,
    tat_ns: i64,
}

impl Bucket {
    /// `rate_per_sec` messages per second (may be fractional, e.g. 0.5),
    /// at most `burst` (≥ 1) back to back.
    pub fn new(rate_per_sec: f64, burst: u32) -> Result<Bucket> {
        let mut problems = Vec::new();
        if !(rate_per_sec.is_finite() && rate_per_sec > 0.0) {
            problems.push(Problem::new("rate_per_sec", "must be a positive number"));
        } else if rate_per_sec > 1e9 {
            problems.push(Problem::new("rate_per_sec", "must be at most 1e9"));
        }
        if burst == 0 {
            problems.push(Problem::new("burst", "must be at least 1"));
        }
        if !problems.is_empty() {
            return Err(Error::Invalid(problems));
        }
        // Round the interval up: never faster than the configured rate.
        let interval_ns = (1e9 / rate_per_sec).ceil().max(1.0) as i64;
        Ok(Bucket {
            interval_ns,
            tolerance_ns: interval_ns.saturating_mul(i64::from(burst) - 1),
            tat_ns: i64::MIN,
        })
    }

    /// This bucket with `earlier`'s schedule carried over, for a rate change
    /// that must not release a burst: the next message is due no sooner
    /// than the old bucket would have allowed.
    pub fn continuing(mut self, earlier: &Bucket) -> Bucket {
        self.tat_ns = earlier.tat_ns;
        self
    }

    /// Nanoseconds between two messages at the steady rate.
    pub fn interval_ns(&self) -> i64 {
        self.interval_ns
    }

    /// `Ok(())` if a message may go at `now`, otherwise `Err(t)`, the
    /// earliest instant at which one may. Does not record anything.
    #[inline]
    pub fn check(&self, now: Timestamp) -> Result<(), Timestamp> {
        let now_ns = nanos(now);
        let allowed_at = self.tat_ns.saturating_sub(self.tolerance_ns);
        if now_ns >= allowed_at {
            Ok(())
        } else {
            Err(from_nanos(allowed_at))
        }
    }

    /// Records a message sent at `now` (call after a successful
    /// [`check`](Self::check)).
    #[inline]
    pub fn record(&mut self, now: Timestamp) {
        self.tat_ns = self.tat_ns.max(nanos(now)).saturating_add(self.interval_ns);
    }

    /// [`check`](Self::check) and, if allowed, [`record`](Self::record).
    pub fn try_acquire(&mut self, now: Timestamp) -> Result<(), Timestamp> {
        self.check(now)?;
        self.record(now);
        Ok(())
    }
}

/// Nanoseconds since the Unix epoch, saturating (jiff's range fits in i64
/// nanoseconds only up to 2262, which is far beyond any schedule).
#[inline]
pub(crate) fn nanos(t: Timestamp) -> i64 {
    i64::try_from(t.as_nanosecond()).unwrap_or(if t.as_second() < 0 {
        i64::MIN
    } else {
        i64::MAX
    })
}

pub(crate) fn from_nanos(ns: i64) -> Timestamp {
    Timestamp::from_nanosecond(i128::from(ns)).unwrap_or(if ns < 0 {
        Timestamp::MIN
    } else {
        Timestamp::MAX
    })
}

#[cfg(test)]
#[allow(clippy::unwrap_used)] // tests may unwrap
mod tests {
    use super::*;
    use proptest::prelude::*;

    fn at(ns: i64) -> Timestamp {
        from_nanos(1_800_000_000_000_000_000 + ns)
    }

    #[test]
    fn smooth_at_rate() {
        let mut b = Bucket::new(10.0, 1).unwrap();
        assert!(b.try_acquire(at(0)).is_ok());
        assert_eq!(b.try_acquire(at(1)), Err(at(100_000_000)));
        assert!(b.try_acquire(at(100_000_000)).is_ok());
    }

    #[test]
    fn burst_then_rate() {
        let mut b = Bucket::new(1.0, 3).unwrap();
        for _ in 0..3 {
            assert!(b.try_acquire(at(0)).is_ok());
        }
        assert!(b.try_acquire(at(0)).is_err());
        assert!(b.try_acquire(at(1_000_000_000)).is_ok());
        assert!(b.try_acquire(at(1_000_000_000)).is_err());
    }

    #[test]
    fn clock_backwards_never_bursts() {
        let mut b = Bucket::new(1.0, 1).unwrap();
        assert!(b.try_acquire(at(10_000_000_000)).is_ok());
        // The clock jumps back an hour: nothing goes until TAT is reached.
        assert!(
            b.try_acquire(at(10_000_000_000 - 3_600_000_000_000))
                .is_err()
        );
        assert!(b.try_acquire(at(10_500_000_000)).is_err());
        assert!(b.try_acquire(at(11_000_000_000)).is_ok());
        // Extreme instants do not panic.
        assert!(b.try_acquire(Timestamp::MIN).is_err());
        assert!(b.try_acquire(Timestamp::MAX).is_ok());
        // Past year 2262 the nanosecond clock saturates; still no panic.
        let _ = b.try_acquire(Timestamp::MAX);
    }

    #[test]
    fn rejects_bad_rates() {
        for r in [0.0, -1.0, f64::NAN, f64::INFINITY] {
            assert!(Bucket::new(r, 1).is_err());
        }
        assert!(Bucket::new(1.0, 0).is_err());
    }

    proptest! {
        /// Over every span [t_i, t_j] of admitted messages, at most
        /// burst + (t_j - t_i) / interval were admitted, whatever the
        /// (possibly non-monotonic) clock did.
        #[test]
        fn never_above_rate(
            rate in 0.5f64..2000.0,
            burst in 1u32..5,
            steps in proptest::collection::vec(-50_000_000i64..200_000_000, 1..300),
        ) {
            let mut b = Bucket::new(rate, burst).unwrap();
            let mut t = 0i64;
            let mut admitted = Vec::new();
            for s in steps {
                t += s;
                if b.try_acquire(at(t)).is_ok() {
                    admitted.push(t);
                }
            }
            let interval = b.interval_ns() as i128;
            for i in 0..admitted.len() {
                for j in i..admitted.len() {
                    let span = (admitted[j] - admitted[i]).max(0) as i128;
                    let count = (j - i + 1) as i128;
                    prop_assert!(count <= burst as i128 + span / interval,
                        "{count} admitted in {span} ns at interval {interval}");
                }
            }
        }

        /// A sender that asks again at the instant it is told delivers the
        /// configured rate: no more, and (within a message) no less.
        #[test]
        fn delivers_the_rate(rate in 0.5f64..5000.0, burst in 1u32..4) {
            let mut b = Bucket::new(rate, burst).unwrap();
            let end = at(20_000_000_000);
            let mut t = at(0);
            let mut n = 0u64;
            while t < end {
                match b.try_acquire(t) {
                    Ok(()) => n += 1,
                    Err(next) => t = next,
                }
            }
            let expected = 20.0 * rate + f64::from(burst) - 1.0;
            prop_assert!((n as f64) <= expected + 1.0, "{n} vs {expected}");
            prop_assert!((n as f64) >= expected * 0.999 - 1.0, "{n} vs {expected}");
        }
    }
}
