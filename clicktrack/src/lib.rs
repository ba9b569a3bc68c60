//! Click tracking (placeholder until filled).
