//! The retry keys `[email]` and `[sms]` both have: `max_attempts` sends,
//! the first retry after `retry_base_secs`, doubling up to `retry_max_secs`.

use std::time::Duration;

use rules::RetryPolicy;

pub(super) fn policy(max_attempts: u32, base_secs: u64, max_secs: u64) -> RetryPolicy {
    RetryPolicy {
        max_attempts,
        base: Duration::from_secs(base_secs),
        max: Duration::from_secs(max_secs),
    }
}

/// The problems of `section`'s retry keys.
pub(super) fn problems(
    section: &str,
    max_attempts: u32,
    base_secs: u64,
    max_secs: u64,
) -> Vec<String> {
    let mut problems = Vec::new();
    if max_attempts == 0 {
        problems.push(format!("{section}.max_attempts: must be ≥ 1"));
    }
    if base_secs == 0 || max_secs < base_secs {
        problems.push(format!(
            "{section}.retry_base_secs must be > 0 and ≤ {section}.retry_max_secs"
        ));
    }
    problems
}
