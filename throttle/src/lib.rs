//! Channel load policy (placeholder until filled).
