//! Back-off between attempts.

use std::time::Duration;

use rand::Rng;

/// Exponential back-off with jitter for transient failures.
#[derive(Debug, Clone, Copy)]
pub struct RetryPolicy {
    pub max_attempts: u32,
    pub base: Duration,
    pub max: Duration,
}

impl RetryPolicy {
    /// Delay before attempt `attempts + 1`, given `attempts` made so far (≥ 1):
    /// base·2^(attempts−1), capped, with ±20% jitter so retries spread out.
    pub fn delay(&self, attempts: u32) -> Duration {
        let exp = self
            .base
            .saturating_mul(2u32.saturating_pow(attempts.saturating_sub(1).min(30)));
        let capped = exp.min(self.max);
        capped.mul_f64(rand::rng().random_range(0.8..1.2))
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn backoff_doubles_and_is_capped() {
        let p = RetryPolicy {
            max_attempts: 5,
            base: Duration::from_secs(10),
            max: Duration::from_secs(60),
        };
        for (attempts, nominal) in [(1, 10.0), (2, 20.0), (3, 40.0), (4, 60.0), (20, 60.0)] {
            let d = p.delay(attempts).as_secs_f64();
            assert!(
                d >= nominal * 0.8 && d <= nominal * 1.2,
                "attempt {attempts}: {d}"
            );
        }
    }
}
