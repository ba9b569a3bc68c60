//! A channel's limits as the administrator writes them (the body of
//! `PUT /v1/channels/{channel}/limits`), and their validation.

use std::collections::BTreeMap;

use serde::{Deserialize, Serialize};

use crate::calendar;
use crate::cap::{self, Cap, CapSpec};
use crate::error::{Error, ParseError, Problem, Result};
use crate::quota::{MAX_PERIOD_SECS, QuotaRule};

/// A channel's limits.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct Limits {
    /// Channel bandwidth, messages per second (may be fractional).
    pub rate_per_sec: f64,
    /// Most messages back to back (default 1: perfectly smooth).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub burst: Option<i64>,
    /// IANA time zone for exclusion days and caps, e.g. `Europe/Berlin`.
    pub tz: String,
    /// Local dates `YYYY-MM-DD` on which nothing is sent.
    #[serde(default)]
    pub exclusion_days: Vec<String>,
    /// Load caps.
    #[serde(default)]
    pub caps: Vec<CapSpec>,
    /// Per-segment quotas; `*` is the default segment.
    #[serde(default)]
    pub quotas: BTreeMap<String, QuotaSpec>,
}

/// "At most `max` messages per `per`" for one segment.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct QuotaSpec {
    /// N.
    pub max: i64,
    /// ISO 8601 duration in weeks, days, hours, minutes, seconds: `P7D`,
    /// `P1W`, `PT12H`, `P1DT6H`. Years and months are refused (their length
    /// varies).
    pub per: String,
}

impl Limits {
    /// Every problem with these limits, in field order.
    pub fn problems(&self) -> Vec<Problem> {
        let mut p = Vec::new();
        if !(self.rate_per_sec.is_finite() && self.rate_per_sec > 0.0) {
            p.push(Problem::new("rate_per_sec", "must be a positive number"));
        } else if self.rate_per_sec > 1e9 {
            p.push(Problem::new("rate_per_sec", "must be at most 1e9"));
        }
        if let Some(b) = self.burst
            && !(1..=i64::from(u32::MAX)).contains(&b)
        {
            p.push(Problem::new("burst", "must be at least 1"));
        }
        if let Err(e) = calendar::time_zone(&self.tz) {
            p.push(Problem::new("tz", e));
        }
        for (i, d) in self.exclusion_days.iter().enumerate() {
            if calendar::date(d).is_none() {
                p.push(Problem::new(
                    format!("exclusion_days[{i}]"),
                    format!("{d:?} is not a date YYYY-MM-DD"),
                ));
            }
        }
        let caps = self.compiled_caps(&mut p);
        p.extend(cap::contradictions(&caps));
        for (seg, q) in &self.quotas {
            let field = format!("quotas.{seg}");
            if seg.trim().is_empty() {
                p.push(Problem::new(
                    "quotas",
                    "segment name is empty (use \"*\" for the default)",
                ));
            }
            if q.max < 1 {
                p.push(Problem::new(
                    format!("{field}.max"),
                    "must be at least 1 (use the blacklist to stop all messages)",
                ));
            } else if q.max > i64::from(u32::MAX) {
                p.push(Problem::new(format!("{field}.max"), "is too large"));
            }
            match parse_period(&q.per) {
                Ok(0) => p.push(Problem::new(format!("{field}.per"), "is a zero period")),
                Ok(s) if s > MAX_PERIOD_SECS => p.push(Problem::new(
                    format!("{field}.per"),
                    "must be at most 366 days",
                )),
                Ok(_) => {}
                Err(e) => p.push(Problem::new(format!("{field}.per"), e)),
            }
        }
        p
    }

    /// `Ok` or [`Error::Invalid`] listing every problem.
    pub fn validate(&self) -> Result<()> {
        let p = self.problems();
        if p.is_empty() {
            Ok(())
        } else {
            Err(Error::Invalid(p))
        }
    }

    pub(crate) fn compiled_caps(&self, problems: &mut Vec<Problem>) -> Vec<(usize, Cap)> {
        self.caps
            .iter()
            .enumerate()
            .filter_map(|(i, c)| Cap::compile(c, &format!("caps[{i}]"), problems).map(|c| (i, c)))
            .collect()
    }

    /// The quota rules by segment, for [`QuotaBook`](crate::QuotaBook).
    pub fn quota_rules(&self) -> Result<Vec<(String, QuotaRule)>> {
        self.validate()?;
        let mut out = Vec::new();
        for (seg, q) in &self.quotas {
            let per = parse_period(&q.per)
                .map_err(|e| Error::Invalid(vec![Problem::new(format!("quotas.{seg}.per"), e)]))?;
            out.push((
                seg.clone(),
                QuotaRule::new(u32::try_from(q.max).unwrap_or(u32::MAX), per)?,
            ));
        }
        Ok(out)
    }
}

/// Parses an ISO 8601 duration restricted to fixed-length units
/// (`PnW`, `PnD`, `PTnH`, `PTnM`, `PTnS` and combinations) into seconds.
pub fn parse_period(s: &str) -> Result<i64, ParseError> {
    let bad = || ParseError::NotAPeriod(s.to_owned());
    let rest = s.trim().strip_prefix('P').ok_or_else(bad)?;
    if rest.is_empty() {
        return Err(bad());
    }
    let mut total: i64 = 0;
    let mut in_time = false;
    let mut num = String::new();
    let mut any = false;
    let mut time_any = false;
    for c in rest.chars() {
        match c {
            '0'..='9' => num.push(c),
            'T' if !in_time && num.is_empty() => in_time = true,
            _ => {
                let unit = match (in_time, c) {
                    (false, 'W') => 7 * 86_400,
                    (false, 'D') => 86_400,
                    (true, 'H') => 3600,
                    (true, 'M') => 60,
                    (true, 'S') => 1,
                    (false, 'Y' | 'M') => return Err(ParseError::NoFixedLength(s.to_owned())),
                    _ => return Err(bad()),
                };
                let n: i64 = num.parse().map_err(|_| bad())?;
                total = n
                    .checked_mul(unit)
                    .and_then(|v| total.checked_add(v))
                    .ok_or_else(|| ParseError::TooLong(s.to_owned()))?;
                num.clear();
                any = true;
                time_any |= in_time;
            }
        }
    }
    if !num.is_empty() || !any || (in_time && !time_any) {
        return Err(bad());
    }
    Ok(total)
}

#[cfg(test)]
#[allow(clippy::unwrap_used)] // tests may unwrap
mod tests {
    use super::*;

    fn limits(json: &str) -> Limits {
        serde_json::from_str(json).unwrap()
    }

    #[test]
    fn periods() {
        assert_eq!(parse_period("P7D"), Ok(604_800));
        assert_eq!(parse_period("P1W"), Ok(604_800));
        assert_eq!(parse_period("PT12H"), Ok(43_200));
        assert_eq!(parse_period("P1DT6H30M"), Ok(109_800));
        assert_eq!(parse_period("P0D"), Ok(0));
        for bad in [
            "7D", "P", "PT", "P1Y", "P1M", "P7", "PD", "P1H", "P-1D", "P1DT",
        ] {
            assert!(parse_period(bad).is_err(), "{bad}");
        }
    }

    #[test]
    fn valid_limits_parse_and_compile() {
        let l = limits(
            r#"{"rate_per_sec": 50, "tz": "Europe/Berlin", "exclusion_days": ["2026-12-31"],
                "caps": [{"days": ["sat", "2026-12-24"], "hours": "18:00-22:00", "max": 1000}],
                "quotas": {"*": {"max": 3, "per": "P7D"}, "gold": {"max": 1, "per": "P1D"}}}"#,
        );
        assert_eq!(l.problems(), vec![]);
        let rules = l.quota_rules().unwrap();
        assert_eq!(rules.len(), 2);
        assert!(
            serde_json::from_str::<Limits>(r#"{"rate_per_sec": 1, "tz": "UTC", "extra": 1}"#)
                .is_err()
        );
    }

    #[test]
    fn validation_lists_every_problem() {
        let l = limits(
            r#"{"rate_per_sec": -5, "burst": 0, "tz": "Europe/Berln",
                "exclusion_days": ["2026-02-30", "tomorrow"],
                "caps": [{"days": ["sat"], "hours": "18:00-22:00", "max": 1000},
                         {"days": ["sat"], "hours": "18:00-22:00", "max": 500},
                         {"hours": "25:00-26:00", "max": 10}],
                "quotas": {"*": {"max": 0, "per": "P0D"}, "gold": {"max": 2, "per": "P1Y"}}}"#,
        );
        let fields: Vec<String> = l.problems().into_iter().map(|p| p.field).collect();
        assert_eq!(
            fields,
            [
                "rate_per_sec",
                "burst",
                "tz",
                "exclusion_days[0]",
                "exclusion_days[1]",
                "caps[2].hours",
                "caps[1]",
                "quotas.*.max",
                "quotas.*.per",
                "quotas.gold.per",
            ]
        );
        let l = limits(
            r#"{"rate_per_sec": 5, "tz": "UTC",
                "caps": [{"days": ["sat"], "hours": "18:00-22:00", "max": 1000},
                         {"days": ["sat"], "hours": "18:00-22:00", "max": 500}]}"#,
        );
        let p = l.problems();
        assert_eq!(p.len(), 1);
        assert_eq!(p[0].field, "caps[1]");
        assert!(
            p[0].message.contains("contradicts caps[0]"),
            "{}",
            p[0].message
        );
        match l.validate() {
            Err(Error::Invalid(list)) => assert_eq!(list, p),
            other => panic!("{other:?}"),
        }
    }
}
