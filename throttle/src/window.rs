//! Send windows: the weekdays and local hours in which a campaign may send,
//! in the campaign's own time zone, bounded by the campaign's start and end.
//!
//! Membership is decided on the local wall clock, so it is DST-correct by
//! construction: `09:00-12:00` is three hours on most days, and a range that
//! falls into a spring-forward gap is empty that day.

use jiff::civil::Date;
use jiff::tz::TimeZone;
use jiff::{SignedDuration, Timestamp};
use serde::{Deserialize, Serialize};

use crate::calendar::{self, HourRange, WeekdaySet};
use crate::error::{Error, Problem, Result};

/// A campaign's send-window template as the CRM declares it.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct WindowSpec {
    /// IANA time zone the hours are read in, e.g. `Europe/Berlin`.
    pub tz: String,
    /// Weekdays (`mon`..`sun`); absent means every day.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub days: Option<Vec<String>>,
    /// Hour ranges `HH:MM-HH:MM`; absent means all day.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub hours: Option<Vec<String>>,
}

impl WindowSpec {
    /// Every problem with this spec; `prefix` names it (e.g. `window`).
    pub fn problems(&self, prefix: &str) -> Vec<Problem> {
        let mut out = Vec::new();
        if let Err(e) = calendar::time_zone(&self.tz) {
            out.push(Problem::new(format!("{prefix}.tz"), e));
        }
        if let Some(days) = &self.days {
            if days.is_empty() {
                out.push(Problem::new(
                    format!("{prefix}.days"),
                    "is empty: the window would never open (omit it for every day)",
                ));
            }
            for (i, d) in days.iter().enumerate() {
                if calendar::weekday(d).is_none() {
                    out.push(Problem::new(
                        format!("{prefix}.days[{i}]"),
                        format!("{d:?} is not a weekday (mon..sun)"),
                    ));
                }
            }
        }
        if let Some(hours) = &self.hours {
            if hours.is_empty() {
                out.push(Problem::new(
                    format!("{prefix}.hours"),
                    "is empty: the window would never open (omit it for all day)",
                ));
            }
            for (i, h) in hours.iter().enumerate() {
                if let Err(e) = HourRange::parse(h) {
                    out.push(Problem::new(format!("{prefix}.hours[{i}]"), e));
                }
            }
        }
        out
    }

    /// `Ok` or every problem at once.
    pub fn validate(&self) -> Result<()> {
        let p = self.problems("window");
        if p.is_empty() {
            Ok(())
        } else {
            Err(Error::Invalid(p))
        }
    }
}

/// Whether a window is open at an instant, and until / from when.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Opening {
    /// Open now; closes at `until` (or later: `until` may be a look-ahead
    /// horizon rather than a real closing).
    Open {
        /// Re-ask at or after this instant.
        until: Timestamp,
    },
    /// Closed now; opens next at `opens`, or never again (`None`: the
    /// campaign has ended or the template never matches).
    Closed {
        /// Next opening, if any.
        opens: Option<Timestamp>,
    },
}

/// How far ahead [`Window::at`] looks for the next opening.
const LOOKAHEAD_DAYS: i64 = 8;
const MAX_SEARCH_DAYS: i64 = 400;

/// A compiled send window plus the campaign's start and end.
#[derive(Debug, Clone)]
pub struct Window {
    tz: TimeZone,
    days: WeekdaySet,
    hours: Vec<HourRange>,
    start: Option<Timestamp>,
    end: Option<Timestamp>,
    /// `(from, to, answer)`: the answer holds for instants in `[from, to)`.
    cache: Option<(Timestamp, Timestamp, Opening)>,
}

impl Window {
    /// Compiles a validated spec; `start`/`end` bound the campaign
    /// (`[start, end)`), `None` meaning unbounded.
    pub fn new(
        spec: &WindowSpec,
        start: Option<Timestamp>,
        end: Option<Timestamp>,
    ) -> Result<Window> {
        let mut problems = spec.problems("window");
        if let (Some(s), Some(e)) = (start, end)
            && e <= s
        {
            problems.push(Problem::new("end", "must be after start"));
        }
        if !problems.is_empty() {
            return Err(Error::Invalid(problems));
        }
        let tz = calendar::time_zone(&spec.tz)
            .map_err(|e| Error::Invalid(vec![Problem::new("window.tz", e)]))?;
        let days = match &spec.days {
            None => WeekdaySet::ALL,
            Some(list) => {
                let mut set = WeekdaySet::default();
                for d in list.iter().filter_map(|d| calendar::weekday(d)) {
                    set.insert(d);
                }
                set
            }
        };
        let hours = match &spec.hours {
            None => vec![HourRange::ALL_DAY],
            Some(list) => list
                .iter()
                .filter_map(|h| HourRange::parse(h).ok())
                .collect(),
        };
        Ok(Window {
            tz,
            days,
            hours,
            start,
            end,
            cache: None,
        })
    }

    /// A window that is always open (no template, no bounds).
    pub fn always() -> Window {
        Window {
            tz: TimeZone::UTC,
            days: WeekdaySet::ALL,
            hours: vec![HourRange::ALL_DAY],
            start: None,
            end: None,
            cache: None,
        }
    }

    /// The campaign's start, if bounded.
    pub fn start(&self) -> Option<Timestamp> {
        self.start
    }

    /// The campaign's end (exclusive), if bounded.
    pub fn end(&self) -> Option<Timestamp> {
        self.end
    }

    /// Whether the campaign has ended at `now`.
    #[inline]
    pub fn ended(&self, now: Timestamp) -> bool {
        self.end.is_some_and(|e| now >= e)
    }

    /// Is the window open at `now`? Cached: repeated calls while the answer
    /// cannot change cost a comparison.
    #[inline]
    pub fn check(&mut self, now: Timestamp) -> Result<Opening> {
        if let Some((from, to, answer)) = self.cache
            && from <= now
            && now < to
        {
            return Ok(answer);
        }
        let answer = self.at(now)?;
        let to = match answer {
            Opening::Open { until } => until,
            Opening::Closed { opens: Some(t) } => t,
            Opening::Closed { opens: None } => Timestamp::MAX,
        };
        self.cache = Some((now, to, answer));
        Ok(answer)
    }

    /// Is the window open at `now` (uncached)?
    pub fn at(&self, now: Timestamp) -> Result<Opening> {
        if self.ended(now) {
            return Ok(Opening::Closed { opens: None });
        }
        let mut from = now;
        let mut searched = 0;
        while searched < MAX_SEARCH_DAYS {
            let to = from.saturating_add(SignedDuration::from_hours(24 * LOOKAHEAD_DAYS))?;
            let iv = self.intervals(from, to)?;
            if let Some(&(a, b)) = iv.first() {
                return Ok(if a <= now {
                    Opening::Open { until: b }
                } else {
                    Opening::Closed { opens: Some(a) }
                });
            }
            if self.end.is_some_and(|e| to >= e) {
                break;
            }
            from = to;
            searched += LOOKAHEAD_DAYS;
        }
        Ok(Opening::Closed { opens: None })
    }

    /// The window's open intervals intersected with `[from, to)` and with
    /// the campaign's `[start, end)`, sorted and merged.
    pub fn intervals(&self, from: Timestamp, to: Timestamp) -> Result<Vec<(Timestamp, Timestamp)>> {
        let from = self.start.map_or(from, |s| from.max(s));
        let to = self.end.map_or(to, |e| to.min(e));
        let mut out: Vec<(Timestamp, Timestamp)> = Vec::new();
        if from >= to {
            return Ok(out);
        }
        let first: Date = calendar::local(&self.tz, from).date().yesterday()?;
        let last: Date = calendar::local(&self.tz, to).date().tomorrow()?;
        let mut day = first;
        while day <= last {
            if self.days.contains(day.weekday()) {
                for r in &self.hours {
                    if let Some((a, b)) = r.on(&self.tz, day)? {
                        let (a, b) = (a.max(from), b.min(to));
                        if a < b {
                            out.push((a, b));
                        }
                    }
                }
            }
            day = day.tomorrow()?;
        }
        out.sort();
        let mut merged: Vec<(Timestamp, Timestamp)> = Vec::with_capacity(out.len());
        for (a, b) in out {
            match merged.last_mut() {
                Some(last) if a <= last.1 => last.1 = last.1.max(b),
                _ => merged.push((a, b)),
            }
        }
        Ok(merged)
    }
}

#[cfg(test)]
#[allow(clippy::unwrap_used)] // tests may unwrap
mod tests {
    use super::*;

    fn ts(s: &str) -> Timestamp {
        s.parse().unwrap()
    }

    fn spec(tz: &str, days: Option<&[&str]>, hours: &[&str]) -> WindowSpec {
        WindowSpec {
            tz: tz.into(),
            days: days.map(|d| d.iter().map(|s| s.to_string()).collect()),
            hours: Some(hours.iter().map(|s| s.to_string()).collect()),
        }
    }

    #[test]
    fn weekday_hours_in_local_time() {
        let w = Window::new(
            &spec(
                "Europe/Berlin",
                Some(&["mon", "tue", "wed", "thu", "fri"]),
                &["09:00-12:00"],
            ),
            None,
            None,
        )
        .unwrap();
        // Monday 2026-11-23 10:00 CET = 09:00 UTC.
        assert_eq!(
            w.at(ts("2026-11-23T09:00:00Z")).unwrap(),
            Opening::Open {
                until: ts("2026-11-23T11:00:00Z")
            }
        );
        // 12:00 local is closed; next opening Tuesday 09:00 local.
        assert_eq!(
            w.at(ts("2026-11-23T11:00:00Z")).unwrap(),
            Opening::Closed {
                opens: Some(ts("2026-11-24T08:00:00Z"))
            }
        );
        // Friday evening: next opening is Monday.
        assert_eq!(
            w.at(ts("2026-11-27T18:00:00Z")).unwrap(),
            Opening::Closed {
                opens: Some(ts("2026-11-30T08:00:00Z"))
            }
        );
    }

    #[test]
    fn dst_spring_forward_and_fall_back_berlin() {
        let mut w =
            Window::new(&spec("Europe/Berlin", None, &["09:00-12:00"]), None, None).unwrap();
        // Saturday 2026-03-28, CET (UTC+1): opens 08:00Z.
        assert_eq!(
            w.check(ts("2026-03-28T07:00:00Z")).unwrap(),
            Opening::Closed {
                opens: Some(ts("2026-03-28T08:00:00Z"))
            }
        );
        // Sunday 2026-03-29, after the switch, CEST (UTC+2): opens 07:00Z.
        assert_eq!(
            w.check(ts("2026-03-28T12:00:00Z")).unwrap(),
            Opening::Closed {
                opens: Some(ts("2026-03-29T07:00:00Z"))
            }
        );
        assert_eq!(
            w.check(ts("2026-03-29T07:30:00Z")).unwrap(),
            Opening::Open {
                until: ts("2026-03-29T10:00:00Z")
            }
        );
        // Sunday 2026-10-25, back to CET: opens 08:00Z, closes 11:00Z.
        assert_eq!(
            w.check(ts("2026-10-25T07:30:00Z")).unwrap(),
            Opening::Closed {
                opens: Some(ts("2026-10-25T08:00:00Z"))
            }
        );
        assert_eq!(
            w.check(ts("2026-10-25T10:59:59Z")).unwrap(),
            Opening::Open {
                until: ts("2026-10-25T11:00:00Z")
            }
        );
    }

    #[test]
    fn ranges_inside_the_dst_change() {
        let w = Window::new(&spec("Europe/Berlin", None, &["02:00-03:00"]), None, None).unwrap();
        // Spring forward: 02:00-03:00 does not exist on 2026-03-29.
        let iv = w
            .intervals(ts("2026-03-28T12:00:00Z"), ts("2026-03-30T12:00:00Z"))
            .unwrap();
        assert_eq!(
            iv,
            vec![(ts("2026-03-30T00:00:00Z"), ts("2026-03-30T01:00:00Z"))]
        );
        // Fall back: it happens twice, two hours of wall-clock 02:xx.
        let iv = w
            .intervals(ts("2026-10-25T00:00:00Z"), ts("2026-10-25T12:00:00Z"))
            .unwrap();
        assert_eq!(
            iv,
            vec![(ts("2026-10-25T00:00:00Z"), ts("2026-10-25T02:00:00Z"))]
        );
    }

    #[test]
    fn across_midnight_and_merging() {
        let w = Window::new(
            &spec("UTC", None, &["22:00-24:00", "00:00-06:00"]),
            None,
            None,
        )
        .unwrap();
        assert_eq!(
            w.at(ts("2026-11-23T23:00:00Z")).unwrap(),
            Opening::Open {
                until: ts("2026-11-24T06:00:00Z")
            }
        );
        assert_eq!(
            w.at(ts("2026-11-24T06:00:00Z")).unwrap(),
            Opening::Closed {
                opens: Some(ts("2026-11-24T22:00:00Z"))
            }
        );
    }

    #[test]
    fn start_and_end_bound_the_window() {
        let mut w = Window::new(
            &spec("UTC", None, &["09:00-17:00"]),
            Some(ts("2026-11-24T12:00:00Z")),
            Some(ts("2026-11-25T10:00:00Z")),
        )
        .unwrap();
        assert_eq!(
            w.check(ts("2026-11-24T10:00:00Z")).unwrap(),
            Opening::Closed {
                opens: Some(ts("2026-11-24T12:00:00Z"))
            }
        );
        assert_eq!(
            w.check(ts("2026-11-25T09:30:00Z")).unwrap(),
            Opening::Open {
                until: ts("2026-11-25T10:00:00Z")
            }
        );
        assert_eq!(
            w.check(ts("2026-11-25T10:00:00Z")).unwrap(),
            Opening::Closed { opens: None }
        );
        assert!(w.ended(ts("2026-11-25T10:00:00Z")));
        // The clock moving back is answered correctly, not from the cache.
        assert_eq!(
            w.check(ts("2026-11-24T10:00:00Z")).unwrap(),
            Opening::Closed {
                opens: Some(ts("2026-11-24T12:00:00Z"))
            }
        );
    }

    #[test]
    fn validation_lists_every_problem() {
        let s = WindowSpec {
            tz: "Nowhere/City".into(),
            days: Some(vec!["mon".into(), "funday".into()]),
            hours: Some(vec!["12:00-09:00".into(), "25:00-26:00".into()]),
        };
        let p = s.problems("window");
        let fields: Vec<_> = p.iter().map(|p| p.field.as_str()).collect();
        assert_eq!(
            fields,
            [
                "window.tz",
                "window.days[1]",
                "window.hours[0]",
                "window.hours[1]"
            ]
        );
        assert!(Window::new(&s, None, None).is_err());
    }
}
