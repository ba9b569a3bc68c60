//! Exclusion days: local dates (in the channel's time zone) on which nothing
//! is sent at all.

use std::collections::BTreeSet;

use jiff::Timestamp;
use jiff::civil::Date;
use jiff::tz::TimeZone;

use crate::calendar;
use crate::error::Result;

/// A channel's exclusion days.
#[derive(Debug, Clone)]
pub struct ExclusionDays {
    tz: TimeZone,
    days: BTreeSet<Date>,
    /// `(from, to, excluded_until)`, valid for instants in `[from, to)`.
    cache: Option<(Timestamp, Timestamp, Option<Timestamp>)>,
}

impl ExclusionDays {
    /// Exclusion days read in `tz`.
    pub fn new(tz: TimeZone, days: impl IntoIterator<Item = Date>) -> ExclusionDays {
        ExclusionDays {
            tz,
            days: days.into_iter().collect(),
            cache: None,
        }
    }

    /// Whether the local date `day` is excluded.
    pub fn contains(&self, day: Date) -> bool {
        self.days.contains(&day)
    }

    /// `None` if sending is allowed at `now`; otherwise `Some(t)`, the start
    /// of the next local day that is not excluded. Cached per local day.
    #[inline]
    pub fn check(&mut self, now: Timestamp) -> Result<Option<Timestamp>> {
        if let Some((from, to, answer)) = self.cache
            && from <= now
            && now < to
        {
            return Ok(answer);
        }
        let (answer, to) = self.at(now)?;
        self.cache = Some((now, to, answer));
        Ok(answer)
    }

    /// Uncached [`check`](Self::check).
    pub fn peek(&self, now: Timestamp) -> Result<Option<Timestamp>> {
        Ok(self.at(now)?.0)
    }

    /// Uncached [`check`](Self::check), plus the instant the answer stops
    /// holding.
    fn at(&self, now: Timestamp) -> Result<(Option<Timestamp>, Timestamp)> {
        let mut day = calendar::local(&self.tz, now).date();
        if !self.days.contains(&day) {
            return Ok((None, calendar::next_midnight(&self.tz, day)?));
        }
        while self.days.contains(&day) {
            day = day.tomorrow()?;
        }
        let t = calendar::local_instant(&self.tz, day, 0)?;
        Ok((Some(t), t))
    }

    /// Excluded parts of `[from, to)`, as instants (for the planner).
    pub fn intervals(&self, from: Timestamp, to: Timestamp) -> Result<Vec<(Timestamp, Timestamp)>> {
        let mut out: Vec<(Timestamp, Timestamp)> = Vec::new();
        if from >= to {
            return Ok(out);
        }
        let first = calendar::local(&self.tz, from).date().yesterday()?;
        let last = calendar::local(&self.tz, to).date().tomorrow()?;
        for &d in self.days.range(first..=last) {
            let a = calendar::local_instant(&self.tz, d, 0)?.max(from);
            let b = calendar::next_midnight(&self.tz, d)?.min(to);
            if a < b {
                match out.last_mut() {
                    Some(l) if a <= l.1 => l.1 = l.1.max(b),
                    _ => out.push((a, b)),
                }
            }
        }
        Ok(out)
    }
}

#[cfg(test)]
#[allow(clippy::unwrap_used)] // tests may unwrap
mod tests {
    use super::*;

    fn ts(s: &str) -> Timestamp {
        s.parse().unwrap()
    }

    #[test]
    fn local_dates_in_channel_tz() {
        let tz = calendar::time_zone("Europe/Berlin").unwrap();
        let d = |s: &str| calendar::date(s).unwrap();
        let mut x = ExclusionDays::new(tz, [d("2026-12-24"), d("2026-12-25"), d("2026-12-31")]);
        // 23:30 UTC on the 23rd is already the 24th in Berlin.
        assert_eq!(
            x.check(ts("2026-12-23T23:30:00Z")).unwrap(),
            Some(ts("2026-12-25T23:00:00Z"))
        );
        assert_eq!(x.check(ts("2026-12-23T22:59:59Z")).unwrap(), None);
        assert_eq!(x.check(ts("2026-12-26T00:00:00Z")).unwrap(), None);
        assert_eq!(
            x.check(ts("2026-12-31T12:00:00Z")).unwrap(),
            Some(ts("2026-12-31T23:00:00Z"))
        );
        let iv = x
            .intervals(ts("2026-12-20T00:00:00Z"), ts("2027-01-10T00:00:00Z"))
            .unwrap();
        assert_eq!(
            iv,
            vec![
                (ts("2026-12-23T23:00:00Z"), ts("2026-12-25T23:00:00Z")),
                (ts("2026-12-30T23:00:00Z"), ts("2026-12-31T23:00:00Z"))
            ]
        );
    }
}
