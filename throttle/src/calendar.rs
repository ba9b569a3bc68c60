//! Local-calendar vocabulary shared by windows, exclusion days, caps and the
//! planner: time zones, weekday sets, `HH:MM-HH:MM` hour ranges, and the
//! conversion of a local wall-clock time to an instant (DST-correct).

use jiff::Timestamp;
use jiff::civil::{Date, DateTime, Weekday};
use jiff::tz::TimeZone;

use crate::ParseError;

/// Looks up an IANA time zone by name. The system database is tried first,
/// then the copy bundled into the binary, so this works on hosts without
/// `/usr/share/zoneinfo`.
pub fn time_zone(name: &str) -> Result<TimeZone, ParseError> {
    if name.is_empty() {
        return Err(ParseError::EmptyTimeZone);
    }
    jiff::tz::db()
        .get(name)
        .or_else(|_| jiff::tz::TimeZoneDatabase::bundled().get(name))
        .map_err(|_| ParseError::UnknownTimeZone(name.to_owned()))
}

/// A set of weekdays, one bit per day (Monday = bit 0).
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, Default)]
pub struct WeekdaySet(u8);

impl WeekdaySet {
    /// Every day of the week.
    pub const ALL: WeekdaySet = WeekdaySet(0x7f);

    /// Adds a day.
    pub fn insert(&mut self, day: Weekday) {
        self.0 |= 1 << day.to_monday_zero_offset();
    }

    /// Whether `day` is in the set.
    pub fn contains(self, day: Weekday) -> bool {
        self.0 & (1 << day.to_monday_zero_offset()) != 0
    }

    /// Whether the set is empty.
    pub fn is_empty(self) -> bool {
        self.0 == 0
    }

    /// Whether the two sets share a day.
    pub fn intersects(self, other: WeekdaySet) -> bool {
        self.0 & other.0 != 0
    }
}

/// Parses `mon`, `monday`, `Mon`... into a weekday.
pub fn weekday(s: &str) -> Option<Weekday> {
    let lower = s.trim().to_ascii_lowercase();
    let day = match lower.get(..3)? {
        "mon" => Weekday::Monday,
        "tue" => Weekday::Tuesday,
        "wed" => Weekday::Wednesday,
        "thu" => Weekday::Thursday,
        "fri" => Weekday::Friday,
        "sat" => Weekday::Saturday,
        "sun" => Weekday::Sunday,
        _ => return None,
    };
    let full = [
        "monday",
        "tuesday",
        "wednesday",
        "thursday",
        "friday",
        "saturday",
        "sunday",
    ][day.to_monday_zero_offset() as usize];
    (lower.len() == 3 || lower == full).then_some(day)
}

/// Parses a local date `YYYY-MM-DD`.
pub fn date(s: &str) -> Option<Date> {
    let s = s.trim();
    if s.len() != 10 {
        return None;
    }
    s.parse::<Date>().ok()
}

/// A range of local wall-clock time within one day, `[start, end)` in
/// minutes after midnight; `end` may be 1440 (`24:00`). Overnight ranges are
/// written as two ranges (`22:00-24:00` and `00:00-06:00`).
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
pub struct HourRange {
    start: u16,
    end: u16,
}

impl HourRange {
    /// The whole day, `00:00-24:00`.
    pub const ALL_DAY: HourRange = HourRange {
        start: 0,
        end: 1440,
    };

    /// Parses `HH:MM-HH:MM`.
    pub fn parse(s: &str) -> Result<HourRange, ParseError> {
        let (a, b) = s
            .split_once('-')
            .ok_or_else(|| ParseError::NotARange(s.to_owned()))?;
        let start = minute_of_day(a).ok_or_else(|| ParseError::BadStart(a.to_owned()))?;
        let end = minute_of_day(b).ok_or_else(|| ParseError::BadEnd(b.to_owned()))?;
        if start >= 1440 {
            return Err(ParseError::StartsAtMidnight(s.to_owned()));
        }
        if end <= start {
            return Err(ParseError::EndsBeforeStart(s.to_owned()));
        }
        Ok(HourRange { start, end })
    }

    /// Start, minutes after local midnight.
    pub fn start(self) -> u16 {
        self.start
    }

    /// End (exclusive), minutes after local midnight, at most 1440.
    pub fn end(self) -> u16 {
        self.end
    }

    /// Whether a minute of the day falls in the range.
    pub fn contains(self, minute: u16) -> bool {
        self.start <= minute && minute < self.end
    }

    /// Whether the two ranges share at least one minute.
    pub fn overlaps(self, other: HourRange) -> bool {
        self.start < other.end && other.start < self.end
    }

    /// Whether `other` lies entirely within `self`.
    pub fn contains_range(self, other: HourRange) -> bool {
        self.start <= other.start && other.end <= self.end
    }

    /// The range's instants on local date `day` in `tz`, or `None` when it
    /// is empty that day (e.g. `02:00-03:00` on a spring-forward day).
    pub fn on(
        self,
        tz: &TimeZone,
        day: Date,
    ) -> Result<Option<(Timestamp, Timestamp)>, jiff::Error> {
        let a = local_instant(tz, day, self.start)?;
        let b = local_instant(tz, day, self.end)?;
        Ok((a < b).then_some((a, b)))
    }
}

impl std::fmt::Display for HourRange {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        write!(
            f,
            "{:02}:{:02}-{:02}:{:02}",
            self.start / 60,
            self.start % 60,
            self.end / 60,
            self.end % 60
        )
    }
}

fn minute_of_day(s: &str) -> Option<u16> {
    let (h, m) = s.trim().split_once(':')?;
    if h.is_empty() || h.len() > 2 || m.len() != 2 {
        return None;
    }
    let h: u16 = h.parse().ok()?;
    let m: u16 = m.parse().ok()?;
    if m >= 60 || h > 24 || (h == 24 && m != 0) {
        return None;
    }
    Some(h * 60 + m)
}

/// The instant at which local wall-clock time `minute` (minutes after
/// midnight, 1440 meaning the next midnight) occurs on `day` in `tz`.
/// A time skipped by a DST gap maps to the instant the gap ends; a repeated
/// time maps to its first occurrence (RFC 5545 "compatible").
pub fn local_instant(tz: &TimeZone, day: Date, minute: u16) -> Result<Timestamp, jiff::Error> {
    let (day, minute) = if minute >= 1440 {
        (day.tomorrow()?, minute - 1440)
    } else {
        (day, minute)
    };
    let dt = day.at((minute / 60) as i8, (minute % 60) as i8, 0, 0);
    // A gap maps forward; for window edges we want the gap's end, which is
    // what `compatible` gives for gaps. Folds take the earlier instant.
    tz.to_ambiguous_timestamp(dt).compatible()
}

/// Local date and time of an instant.
pub fn local(tz: &TimeZone, ts: Timestamp) -> DateTime {
    tz.to_datetime(ts)
}

/// Minutes after local midnight of a local date-time.
pub fn minute(dt: DateTime) -> u16 {
    dt.hour() as u16 * 60 + dt.minute() as u16
}

/// Start of the local day after `day` in `tz`.
pub fn next_midnight(tz: &TimeZone, day: Date) -> Result<Timestamp, jiff::Error> {
    local_instant(tz, day, 1440)
}

#[cfg(test)]
#[allow(clippy::unwrap_used)] // tests may unwrap
mod tests {
    use super::*;

    #[test]
    fn hour_ranges_parse_and_reject() {
        let r = HourRange::parse("09:00-12:30").unwrap();
        assert_eq!((r.start(), r.end()), (540, 750));
        assert_eq!(HourRange::parse("00:00-24:00").unwrap(), HourRange::ALL_DAY);
        for bad in [
            "25:00-26:00",
            "12:00-09:00",
            "09:00",
            "9-10",
            "10:60-11:00",
            "24:00-24:00",
            "10:00-10:00",
        ] {
            assert!(HourRange::parse(bad).is_err(), "{bad}");
        }
    }

    #[test]
    fn weekdays_and_dates() {
        assert_eq!(weekday("Sat"), Some(Weekday::Saturday));
        assert_eq!(weekday("sunday"), Some(Weekday::Sunday));
        assert_eq!(weekday("satx"), None);
        assert!(date("2026-12-24").is_some());
        assert!(date("2026-02-30").is_none());
        assert!(time_zone("Europe/Berlin").is_ok());
        assert!(time_zone("Mars/Olympus").is_err());
    }

    #[test]
    fn bundled_database_has_zones() {
        assert!(
            jiff::tz::TimeZoneDatabase::bundled()
                .get("America/New_York")
                .is_ok()
        );
    }

    #[test]
    fn dst_gap_range_is_empty_and_fold_range_is_two_hours() {
        let tz = time_zone("Europe/Berlin").unwrap();
        let r = HourRange::parse("02:00-03:00").unwrap();
        // 2026-03-29: clocks jump 02:00 -> 03:00.
        assert_eq!(r.on(&tz, date("2026-03-29").unwrap()).unwrap(), None);
        // 2026-10-25: 02:00-03:00 happens twice.
        let (a, b) = r.on(&tz, date("2026-10-25").unwrap()).unwrap().unwrap();
        assert_eq!(b.as_second() - a.as_second(), 7200);
    }
}
