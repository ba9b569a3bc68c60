//! Load caps: at most `max` messages on given local dates and/or weekdays,
//! within an hour range (all day by default). Each cap counts per *period
//! instance*: one instance per matching local day (e.g. "Saturday
//! 2026-11-28, 18:00-22:00").

use std::collections::{BTreeSet, HashMap};

use jiff::Timestamp;
use jiff::civil::{Date, Weekday};
use jiff::tz::TimeZone;
use serde::{Deserialize, Serialize};

use crate::calendar::{self, HourRange, WeekdaySet};
use crate::error::{Problem, Result};

/// A load cap as the administrator writes it.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct CapSpec {
    /// Local dates (`2026-12-24`) and/or weekdays (`sat`); absent means
    /// every day.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub days: Option<Vec<String>>,
    /// `HH:MM-HH:MM`; absent means all day.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub hours: Option<String>,
    /// Most messages per period instance.
    pub max: i64,
}

/// A compiled cap.
#[derive(Debug, Clone, PartialEq, Eq)]
pub(crate) struct Cap {
    all_days: bool,
    weekdays: WeekdaySet,
    dates: BTreeSet<Date>,
    pub(crate) hours: HourRange,
    pub(crate) max: u64,
}

impl Cap {
    /// Compiles a spec, pushing problems (named under `prefix`).
    pub(crate) fn compile(
        spec: &CapSpec,
        prefix: &str,
        problems: &mut Vec<Problem>,
    ) -> Option<Cap> {
        let before = problems.len();
        let mut weekdays = WeekdaySet::default();
        let mut dates = BTreeSet::new();
        if let Some(days) = &spec.days {
            if days.is_empty() {
                problems.push(Problem::new(
                    format!("{prefix}.days"),
                    "is empty: the cap would never apply (omit it for every day)",
                ));
            }
            for (i, d) in days.iter().enumerate() {
                if let Some(w) = calendar::weekday(d) {
                    weekdays.insert(w);
                } else if let Some(date) = calendar::date(d) {
                    dates.insert(date);
                } else {
                    problems.push(Problem::new(
                        format!("{prefix}.days[{i}]"),
                        format!("{d:?} is neither a weekday (mon..sun) nor a date YYYY-MM-DD"),
                    ));
                }
            }
        }
        let hours = match &spec.hours {
            None => HourRange::ALL_DAY,
            Some(h) => match HourRange::parse(h) {
                Ok(r) => r,
                Err(e) => {
                    problems.push(Problem::new(format!("{prefix}.hours"), e));
                    HourRange::ALL_DAY
                }
            },
        };
        if spec.max < 0 {
            problems.push(Problem::new(
                format!("{prefix}.max"),
                "must not be negative",
            ));
        }
        (problems.len() == before).then(|| Cap {
            all_days: spec.days.is_none(),
            weekdays,
            dates,
            hours,
            max: spec.max.unsigned_abs(),
        })
    }

    /// Whether the cap applies on local date `day`.
    pub(crate) fn applies_on(&self, day: Date) -> bool {
        self.all_days || self.weekdays.contains(day.weekday()) || self.dates.contains(&day)
    }

    /// A day on which both caps apply, described, if any.
    fn shared_day(&self, other: &Cap) -> Option<String> {
        if self.all_days && other.all_days {
            return Some("every day".into());
        }
        if self.all_days || other.all_days {
            let specific = if self.all_days { other } else { self };
            return describe_first(specific);
        }
        for w in ALL_WEEKDAYS {
            if self.weekdays.contains(w) && other.weekdays.contains(w) {
                return Some(format!("{w:?}s"));
            }
        }
        self.dates
            .iter()
            .find(|d| other.applies_on(**d))
            .or_else(|| other.dates.iter().find(|d| self.applies_on(**d)))
            .map(|d| d.to_string())
    }
}

const ALL_WEEKDAYS: [Weekday; 7] = [
    Weekday::Monday,
    Weekday::Tuesday,
    Weekday::Wednesday,
    Weekday::Thursday,
    Weekday::Friday,
    Weekday::Saturday,
    Weekday::Sunday,
];

fn describe_first(c: &Cap) -> Option<String> {
    ALL_WEEKDAYS
        .into_iter()
        .find(|w| c.weekdays.contains(*w))
        .map(|w| format!("{w:?}s"))
        .or_else(|| c.dates.first().map(|d| d.to_string()))
}

/// Pairs of caps that contradict each other: on a day where both apply,
/// one cap's hours lie within the other's yet it allows more, so it can
/// never be reached (this includes the same scope with two different maxima).
/// Partially overlapping caps are fine: both are enforced.
pub(crate) fn contradictions(caps: &[(usize, Cap)]) -> Vec<Problem> {
    let mut out = Vec::new();
    for (x, (i, a)) in caps.iter().enumerate() {
        for (j, b) in caps.iter().skip(x + 1) {
            let Some(day) = a.shared_day(b) else { continue };
            let (outer, inner, oi, ii) = if a.hours.contains_range(b.hours) {
                (a, b, i, j)
            } else if b.hours.contains_range(a.hours) {
                (b, a, j, i)
            } else {
                continue;
            };
            if a.hours == b.hours && a.max != b.max {
                out.push(Problem::new(
                    format!("caps[{j}]"),
                    format!(
                        "contradicts caps[{i}]: same hours {} on {day} with max {} vs {}",
                        a.hours, b.max, a.max
                    ),
                ));
            } else if a.hours == b.hours && a == b {
                out.push(Problem::new(
                    format!("caps[{j}]"),
                    format!("duplicates caps[{i}]"),
                ));
            } else if inner.max > outer.max {
                out.push(Problem::new(
                    format!("caps[{ii}]"),
                    format!(
                        "contradicts caps[{oi}]: on {day} it allows {} in {} but caps[{oi}] allows only {} in {}, so it can never be reached",
                        inner.max, inner.hours, outer.max, outer.hours
                    ),
                ));
            }
        }
    }
    out
}

/// Messages counted against cap number `cap` (its index in
/// [`Limits::caps`](crate::Limits::caps)) on local `day`: what a restart
/// must restore so that a cap's period is not counted from zero again.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize)]
pub struct CapCount {
    pub cap: usize,
    pub day: Date,
    pub count: u64,
}

/// A cap's period instance applying at an instant: what nodes that share
/// a cap count together (`Caps::active`).
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct ActiveCap {
    /// Its index in [`Limits::caps`](crate::Limits::caps).
    pub cap: usize,
    /// The local date of the instance.
    pub day: Date,
    pub max: u64,
    /// When the instance ends.
    pub ends: Timestamp,
}

/// One active period instance: cap index, local date, messages counted.
#[derive(Debug, Clone, Copy)]
struct Active {
    cap: usize,
    day: Date,
    count: u64,
    ends: Timestamp,
}

/// A channel's load caps and their counters.
#[derive(Debug, Clone)]
pub struct Caps {
    tz: TimeZone,
    caps: Vec<Cap>,
    counts: HashMap<(usize, Date), u64>,
    /// Active instances valid for instants in `[from, to)`.
    cache: Option<(Timestamp, Timestamp, Vec<Active>)>,
}

impl Caps {
    pub(crate) fn new(tz: TimeZone, caps: Vec<Cap>) -> Caps {
        Caps {
            tz,
            caps,
            counts: HashMap::new(),
            cache: None,
        }
    }

    /// `next` (caps compiled from new limits) with the counters of every
    /// cap whose definition and time zone did not change, so editing limits
    /// mid-period never resets a cap that is already partly used.
    pub(crate) fn carry_over(mut self, mut next: Caps) -> Caps {
        self.settle_cache();
        if self.tz == next.tz {
            for ((old, day), n) in self.counts {
                if let Some(new) = next.caps.iter().position(|c| Some(c) == self.caps.get(old)) {
                    next.counts.insert((new, day), n);
                }
            }
        }
        next
    }

    /// Writes the active instances' counts back and forgets them, so the
    /// next check looks them up again.
    fn settle_cache(&mut self) {
        if let Some((_, _, active)) = self.cache.take() {
            for a in active {
                self.counts.insert((a.cap, a.day), a.count);
            }
        }
    }

    /// No caps at all.
    pub fn none() -> Caps {
        Caps::new(TimeZone::UTC, Vec::new())
    }

    /// `None` if every cap applying at `now` has room; otherwise the
    /// instant at which all the full ones' periods have ended.
    #[inline]
    pub fn check(&mut self, now: Timestamp) -> Result<Option<Timestamp>> {
        if self.caps.is_empty() {
            return Ok(None);
        }
        self.refresh(now)?;
        let mut blocked: Option<Timestamp> = None;
        if let Some((_, _, active)) = &self.cache {
            for a in active {
                if a.count >= self.caps[a.cap].max {
                    blocked = Some(blocked.map_or(a.ends, |b| b.max(a.ends)));
                }
            }
        }
        Ok(blocked)
    }

    /// The caps' instances applying at `now` (for counting elsewhere, as
    /// nodes sharing a store do; this set's own counters are not used).
    pub fn active(&mut self, now: Timestamp) -> Result<Vec<ActiveCap>> {
        if self.caps.is_empty() {
            return Ok(Vec::new());
        }
        self.refresh(now)?;
        let Some((_, _, active)) = &self.cache else {
            return Ok(Vec::new());
        };
        Ok(active
            .iter()
            .map(|a| ActiveCap {
                cap: a.cap,
                day: a.day,
                max: self.caps[a.cap].max,
                ends: a.ends,
            })
            .collect())
    }

    /// Counts one message sent at `now` against every cap applying then.
    #[inline]
    pub fn record(&mut self, now: Timestamp) -> Result<()> {
        self.recount(now, |n| n.saturating_add(1))
    }

    /// Takes back one message counted at `at` from every cap applying then
    /// (a send counted that did not go after all).
    pub fn unrecord(&mut self, at: Timestamp) -> Result<()> {
        self.recount(at, |n| n.saturating_sub(1))
    }

    /// Changes the count of every cap applying at `at` by `change`.
    #[inline]
    fn recount(&mut self, at: Timestamp, change: impl Fn(u64) -> u64) -> Result<()> {
        if self.caps.is_empty() {
            return Ok(());
        }
        self.refresh(at)?;
        if let Some((_, _, active)) = &mut self.cache {
            for a in active {
                a.count = change(a.count);
            }
        }
        Ok(())
    }

    /// Every counter of the last two days, for persisting.
    pub(crate) fn counters(&self) -> Vec<CapCount> {
        let mut all = self.counts.clone();
        if let Some((_, _, active)) = &self.cache {
            for a in active {
                all.insert((a.cap, a.day), a.count);
            }
        }
        let mut counters: Vec<CapCount> = all
            .into_iter()
            .map(|((cap, day), count)| CapCount { cap, day, count })
            .collect();
        counters.sort_by_key(|c| (c.day, c.cap));
        counters
    }

    /// Raises a counter to a persisted count (a restart never lowers one).
    pub(crate) fn restore(&mut self, counter: CapCount) {
        self.settle_cache();
        let n = self.counts.entry((counter.cap, counter.day)).or_default();
        *n = (*n).max(counter.count);
    }

    /// Messages counted so far in cap `index`'s instance on local `day`.
    pub fn count(&self, index: usize, day: Date) -> u64 {
        if let Some((_, _, active)) = &self.cache
            && let Some(a) = active.iter().find(|a| a.cap == index && a.day == day)
        {
            return a.count;
        }
        self.counts.get(&(index, day)).copied().unwrap_or(0)
    }

    #[inline]
    fn refresh(&mut self, now: Timestamp) -> Result<()> {
        if let Some((from, to, _)) = &self.cache
            && *from <= now
            && now < *to
        {
            return Ok(());
        }
        // Write the counters back before switching instances.
        self.settle_cache();
        let dt = calendar::local(&self.tz, now);
        let day = dt.date();
        let minute = calendar::minute(dt);
        let mut to = calendar::next_midnight(&self.tz, day)?;
        let mut active = Vec::new();
        for (i, cap) in self.caps.iter().enumerate() {
            if !cap.applies_on(day) {
                continue;
            }
            let end = boundary(&self.tz, day, cap.hours.end(), now)?;
            if cap.hours.contains(minute) {
                let ends = end.unwrap_or(to);
                active.push(Active {
                    cap: i,
                    day,
                    count: self.counts.get(&(i, day)).copied().unwrap_or(0),
                    ends,
                });
                to = to.min(ends);
            } else if let Some(start) = boundary(&self.tz, day, cap.hours.start(), now)? {
                to = to.min(start);
            }
        }
        // Forget instances more than two days old.
        if let Ok(old) = day.checked_sub(jiff::Span::new().days(2)) {
            self.counts.retain(|(_, d), _| *d >= old);
        }
        self.cache = Some((now, to, active));
        Ok(())
    }
}

/// The instant local `minute` of `day` occurs after `now`, trying the
/// second occurrence of a repeated (DST fold) time; `None` if not after now.
fn boundary(tz: &TimeZone, day: Date, minute: u16, now: Timestamp) -> Result<Option<Timestamp>> {
    let first = calendar::local_instant(tz, day, minute)?;
    if first > now {
        return Ok(Some(first));
    }
    if minute >= 1440 {
        return Ok(None);
    }
    let dt = day.at((minute / 60) as i8, (minute % 60) as i8, 0, 0);
    let later = tz.to_ambiguous_timestamp(dt).later()?;
    Ok((later > now).then_some(later))
}

#[cfg(test)]
#[allow(clippy::unwrap_used)] // tests may unwrap
mod tests {
    use super::*;

    fn ts(s: &str) -> Timestamp {
        s.parse().unwrap()
    }

    fn cap(days: Option<&[&str]>, hours: Option<&str>, max: i64) -> CapSpec {
        CapSpec {
            days: days.map(|d| d.iter().map(|s| s.to_string()).collect()),
            hours: hours.map(str::to_string),
            max,
        }
    }

    fn compile(specs: &[CapSpec]) -> (Vec<(usize, Cap)>, Vec<Problem>) {
        let mut problems = Vec::new();
        let caps = specs
            .iter()
            .enumerate()
            .filter_map(|(i, s)| {
                Cap::compile(s, &format!("caps[{i}]"), &mut problems).map(|c| (i, c))
            })
            .collect();
        (caps, problems)
    }

    #[test]
    fn counts_per_period_instance() {
        let (caps, p) = compile(&[cap(Some(&["sat", "2026-12-24"]), Some("18:00-22:00"), 2)]);
        assert!(p.is_empty());
        let mut c = Caps::new(TimeZone::UTC, caps.into_iter().map(|(_, c)| c).collect());
        // Saturday 2026-11-28.
        assert_eq!(c.check(ts("2026-11-28T17:59:00Z")).unwrap(), None);
        c.record(ts("2026-11-28T17:59:00Z")).unwrap(); // outside: not counted
        for _ in 0..2 {
            assert_eq!(c.check(ts("2026-11-28T18:30:00Z")).unwrap(), None);
            c.record(ts("2026-11-28T18:30:00Z")).unwrap();
        }
        assert_eq!(
            c.check(ts("2026-11-28T19:00:00Z")).unwrap(),
            Some(ts("2026-11-28T22:00:00Z"))
        );
        assert_eq!(c.check(ts("2026-11-28T22:00:00Z")).unwrap(), None);
        // The next Saturday is a new instance.
        assert_eq!(c.check(ts("2026-12-05T18:00:00Z")).unwrap(), None);
        // Thursday 2026-12-24 by date.
        c.record(ts("2026-12-24T20:00:00Z")).unwrap();
        c.record(ts("2026-12-24T20:00:00Z")).unwrap();
        assert!(c.check(ts("2026-12-24T21:00:00Z")).unwrap().is_some());
        assert_eq!(c.count(0, calendar::date("2026-12-24").unwrap()), 2);
        // The clock going back within the instance finds it still full.
        assert!(c.check(ts("2026-12-24T18:00:00Z")).unwrap().is_some());
    }

    #[test]
    fn the_active_instances_name_their_cap_day_max_and_end() {
        let (caps, p) = compile(&[
            cap(None, None, 100),
            cap(Some(&["sat"]), Some("18:00-22:00"), 2),
        ]);
        assert!(p.is_empty());
        let mut c = Caps::new(TimeZone::UTC, caps.into_iter().map(|(_, c)| c).collect());
        let day: Date = "2026-11-28".parse().unwrap();
        let all_day = ActiveCap {
            cap: 0,
            day,
            max: 100,
            ends: ts("2026-11-29T00:00:00Z"),
        };
        assert_eq!(c.active(ts("2026-11-28T17:59:00Z")).unwrap(), vec![all_day]);
        let evening = ActiveCap {
            cap: 1,
            day,
            max: 2,
            ends: ts("2026-11-28T22:00:00Z"),
        };
        assert_eq!(
            c.active(ts("2026-11-28T18:30:00Z")).unwrap(),
            vec![all_day, evening]
        );
    }

    #[test]
    fn restored_counters_hold_a_cap_full_after_a_restart() {
        let specs = [cap(None, Some("08:00-20:00"), 3)];
        let new = || {
            Caps::new(
                TimeZone::UTC,
                compile(&specs).0.into_iter().map(|(_, c)| c).collect(),
            )
        };
        let mut before = new();
        let now = ts("2026-12-02T12:00:00Z");
        for _ in 0..3 {
            before.record(now).unwrap();
        }
        let counters = before.counters();
        assert_eq!(
            counters,
            [CapCount {
                cap: 0,
                day: calendar::date("2026-12-02").unwrap(),
                count: 3
            }]
        );
        let mut after = new();
        assert_eq!(after.check(now).unwrap(), None, "a fresh counter is empty");
        for c in counters {
            after.restore(c);
        }
        assert_eq!(after.check(now).unwrap(), Some(ts("2026-12-02T20:00:00Z")));
        // Restoring never lowers what was counted since.
        after.record(now).unwrap();
        after.restore(CapCount {
            cap: 0,
            day: calendar::date("2026-12-02").unwrap(),
            count: 1,
        });
        assert_eq!(after.count(0, calendar::date("2026-12-02").unwrap()), 4);
    }

    #[test]
    fn whole_day_cap_in_local_time() {
        let tz = calendar::time_zone("Europe/Berlin").unwrap();
        let (caps, _) = compile(&[cap(None, None, 1)]);
        let mut c = Caps::new(tz, caps.into_iter().map(|(_, c)| c).collect());
        c.record(ts("2026-11-23T23:30:00Z")).unwrap(); // 00:30 on the 24th in Berlin
        assert_eq!(
            c.check(ts("2026-11-24T12:00:00Z")).unwrap(),
            Some(ts("2026-11-24T23:00:00Z"))
        );
    }

    #[test]
    fn problems_and_contradictions() {
        let (_, p) = compile(&[cap(Some(&["funday"]), Some("22:00-18:00"), -1)]);
        let fields: Vec<_> = p.iter().map(|p| p.field.as_str()).collect();
        assert_eq!(fields, ["caps[0].days[0]", "caps[0].hours", "caps[0].max"]);

        let (caps, p) = compile(&[
            cap(Some(&["sat"]), Some("18:00-22:00"), 1000),
            cap(Some(&["2026-12-26"]), Some("19:00-20:00"), 5000), // a Saturday, inside, larger
            cap(Some(&["sat"]), Some("18:00-22:00"), 10),          // same scope, other max
            cap(Some(&["sun"]), Some("18:00-22:00"), 10),          // no shared day
            cap(Some(&["sat"]), Some("21:00-23:00"), 50),          // partial overlap: fine
        ]);
        assert!(p.is_empty());
        let c = contradictions(&caps);
        let fields: Vec<_> = c.iter().map(|p| p.field.as_str()).collect();
        assert_eq!(fields, ["caps[1]", "caps[2]", "caps[1]"], "{c:?}");
    }
}
