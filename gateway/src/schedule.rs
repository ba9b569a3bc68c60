//! A channel's stored load plan as the dispatcher follows it: within the
//! plan's hours a campaign sends at most its allocation of each hour, and
//! what is left waits for the campaign's next allocated hour. Campaigns the
//! plan does not name, and every campaign after the plan's last hour, are
//! held back by the channel's limits only.
//!
//! The per-hour counts live in memory: after a restart an hour may carry up
//! to its allocation again, still within the channel's bandwidth and caps.

use std::collections::{BTreeMap, HashMap};

use throttle::plan::Plan;

use crate::domain::Millis;

const HOUR_MS: Millis = 3_600_000;

#[derive(Debug, Default)]
pub struct Schedule {
    /// Campaign id → hour start (ms) → messages allocated in that hour.
    hours: HashMap<String, BTreeMap<Millis, Hour>>,
    /// End of the plan's last hour.
    end: Millis,
}

#[derive(Debug, Default, Clone, Copy)]
struct Hour {
    allocated: u64,
    sent: u64,
}

impl Schedule {
    pub fn new(plan: &Plan) -> Self {
        let mut hours: HashMap<String, BTreeMap<Millis, Hour>> = HashMap::new();
        let mut end = 0;
        for hour in &plan.hours {
            let start = u64::try_from(hour.hour.as_millisecond()).unwrap_or(0);
            end = end.max(start + HOUR_MS);
            for (campaign, &allocated) in &hour.allocated {
                hours
                    .entry(campaign.clone())
                    .or_default()
                    .insert(start, Hour { allocated, sent: 0 });
            }
        }
        Self { hours, end }
    }

    /// `None` if `campaign` may send at `now`, else when to ask again.
    pub fn check(&self, campaign: &str, now: Millis) -> Option<Millis> {
        let hours = self.hours.get(campaign)?;
        if now >= self.end {
            return None;
        }
        let start = now - now % HOUR_MS;
        let this = hours.get(&start).copied().unwrap_or_default();
        if this.sent < this.allocated {
            return None;
        }
        let next = hours
            .range(start + 1..)
            .find(|(_, h)| h.allocated > 0)
            .map(|(&start, _)| start);
        Some(next.unwrap_or(self.end))
    }

    /// Counts a send of `campaign` at `now` against its hour.
    pub fn count(&mut self, campaign: &str, now: Millis) {
        if now >= self.end {
            return;
        }
        if let Some(hours) = self.hours.get_mut(campaign) {
            hours.entry(now - now % HOUR_MS).or_default().sent += 1;
        }
    }
}

#[cfg(test)]
mod tests {
    use throttle::{jiff::Timestamp, plan::PlanHour};

    use super::*;

    fn plan(hours: &[(Millis, &[(&str, u64)])]) -> Plan {
        Plan {
            hours: hours
                .iter()
                .map(|(start, allocated)| PlanHour {
                    hour: Timestamp::from_millisecond(*start as i64).expect("instant"),
                    capacity: 100,
                    allocated: allocated.iter().map(|(c, n)| (c.to_string(), *n)).collect(),
                })
                .collect(),
            campaigns: BTreeMap::new(),
        }
    }

    #[test]
    fn a_campaign_sends_its_hourly_allocation_then_waits_for_its_next_hour() {
        let h = |i: u64| 1_000 * HOUR_MS + i * HOUR_MS;
        let mut s = Schedule::new(&plan(&[
            (h(0), &[("a", 2)]),
            (h(1), &[("b", 5)]),
            (h(2), &[("a", 1)]),
        ]));
        let now = h(0) + 10;
        for _ in 0..2 {
            assert_eq!(s.check("a", now), None);
            s.count("a", now);
        }
        assert_eq!(s.check("a", now), Some(h(2)), "the rest waits for hour 2");
        assert_eq!(
            s.check("a", h(1) + 5),
            Some(h(2)),
            "nothing planned in hour 1"
        );
        assert_eq!(s.check("a", h(2)), None);
        s.count("a", h(2));
        assert_eq!(
            s.check("a", h(2) + 1),
            Some(h(3)),
            "the last planned hour holds too"
        );
        assert_eq!(s.check("a", h(3)), None, "after the plan, only the limits");
        assert_eq!(s.check("z", now), None, "a campaign the plan does not name");
    }
}
