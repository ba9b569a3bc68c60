//! Bounce classification (placeholder until filled).
