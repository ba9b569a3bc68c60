//! Instants as the domain counts them.

/// Milliseconds since the Unix epoch, UTC.
pub type Millis = u64;

pub fn now_ms() -> Millis {
    u64::try_from(jiff::Timestamp::now().as_millisecond()).unwrap_or(0)
}

/// `ms` as an RFC 3339 instant in UTC (`2026-12-04T10:00:00.123Z`;
/// trailing zeros of the fraction left out, as docs/api.md says).
pub fn rfc3339(ms: Millis) -> String {
    i64::try_from(ms)
        .ok()
        .and_then(|ms| jiff::Timestamp::from_millisecond(ms).ok())
        .map(|t| t.to_string())
        .unwrap_or_default()
}

/// The instant an RFC 3339 text names, to the millisecond.
pub fn parse_rfc3339(text: &str) -> Option<Millis> {
    let t: jiff::Timestamp = text.parse().ok()?;
    u64::try_from(t.as_millisecond()).ok()
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn instants_round_trip_through_rfc3339() {
        for ms in [0, 1_000, 1_764_842_400_123] {
            assert_eq!(parse_rfc3339(&rfc3339(ms)), Some(ms), "{ms}");
        }
        assert_eq!(parse_rfc3339("yesterday"), None);
    }
}
