//! A channel's stored load plan as the dispatcher follows it: within the
//! plan's hours a campaign sends at most its allocation of each hour, and
//! what is left waits for the campaign's next allocated hour. Campaigns the
//! plan does not name, and every campaign after the plan's last hour, are
//! held back by the channel's limits only.
//!
//! The per-hour counts live in memory and are persisted by the policy's
//! checkpoint ([`Schedule::sent_from`], [`Schedule::restore`]): after a
//! crash an hour may carry what was sent since the last checkpoint again.

use std::collections::{BTreeMap, HashMap};

use serde::{Deserialize, Serialize};
use throttle::plan::Plan;

use domain::Millis;

#[derive(Debug, Default)]
pub struct Schedule {
    /// Campaign id → hour start (ms) → messages allocated in that hour.
    hours: HashMap<String, BTreeMap<Millis, Hour>>,
    /// End of the plan's last hour.
    end: Millis,
}

/// Messages of `campaign` sent in the plan hour starting at `hour`.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct SentInHour {
    pub campaign: String,
    pub hour: Millis,
    pub sent: u64,
}

/// A campaign's hour in the plan: what it may send, what this node sent,
/// and when its next allocated hour starts (or the plan ends).
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct PlannedHour {
    pub start: Millis,
    pub allocated: u64,
    pub sent: u64,
    pub next: Millis,
}

pub const HOUR_MS: Millis = 3_600_000;

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
        // A campaign the plan had messages for but gave no hour is held
        // to that: nothing until the plan ends.
        for (campaign, planned) in &plan.campaigns {
            if planned.shortfall > 0 {
                hours.entry(campaign.clone()).or_default();
            }
        }
        Self { hours, end }
    }

    /// `None` if `campaign` may send at `now`, else when to ask again.
    pub fn check(&self, campaign: &str, now: Millis) -> Option<Millis> {
        let hour = self.hour_of(campaign, now)?;
        (hour.sent >= hour.allocated).then_some(hour.next)
    }

    /// The plan's hour of `campaign` holding `now`, if the plan holds the
    /// campaign then.
    pub fn hour_of(&self, campaign: &str, now: Millis) -> Option<PlannedHour> {
        let hours = self.hours.get(campaign)?;
        if now >= self.end {
            return None;
        }
        let start = now - now % HOUR_MS;
        let this = hours.get(&start).copied().unwrap_or_default();
        let next = hours
            .range(start + 1..)
            .find(|(_, h)| h.allocated > 0)
            .map_or(self.end, |(&start, _)| start);
        Some(PlannedHour {
            start,
            allocated: this.allocated,
            sent: this.sent,
            next,
        })
    }

    /// What was sent in the hours that hold `now` and later, to persist.
    pub fn sent_from(&self, now: Millis) -> Vec<SentInHour> {
        let start = now - now % HOUR_MS;
        let mut sent: Vec<SentInHour> = self
            .hours
            .iter()
            .flat_map(|(campaign, hours)| {
                hours
                    .range(start..)
                    .filter(|(_, h)| h.sent > 0)
                    .map(|(&hour, h)| SentInHour {
                        campaign: campaign.clone(),
                        hour,
                        sent: h.sent,
                    })
            })
            .collect();
        sent.sort_by(|a, b| (a.hour, &a.campaign).cmp(&(b.hour, &b.campaign)));
        sent
    }

    /// Raises an hour's count to what was persisted or counted under an
    /// earlier plan; hours and campaigns this plan does not have are left.
    pub fn restore(&mut self, counted: &SentInHour) {
        if let Some(hour) = self
            .hours
            .get_mut(&counted.campaign)
            .and_then(|hours| hours.get_mut(&counted.hour))
        {
            hour.sent = hour.sent.max(counted.sent);
        }
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

    /// Takes back a send of `campaign` counted at `at` that did not go.
    pub fn uncount(&mut self, campaign: &str, at: Millis) {
        if let Some(hour) = self
            .hours
            .get_mut(campaign)
            .and_then(|hours| hours.get_mut(&(at - at % HOUR_MS)))
        {
            hour.sent = hour.sent.saturating_sub(1);
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

    #[test]
    fn a_send_taken_back_frees_its_place_in_its_hour() {
        let h = |i: u64| 1_000 * HOUR_MS + i * HOUR_MS;
        let mut s = Schedule::new(&plan(&[(h(0), &[("a", 1)]), (h(1), &[("a", 1)])]));
        s.count("a", h(0) + 10);
        s.count("a", h(1) + 10);
        assert_eq!(s.check("a", h(0) + 20), Some(h(1)));
        s.uncount("a", h(0) + 10);
        assert_eq!(s.check("a", h(0) + 20), None, "its hour has room again");
        assert_eq!(
            s.check("a", h(1) + 20),
            Some(h(2)),
            "the other hour does not"
        );
        s.uncount("z", h(0));
    }

    #[test]
    fn a_campaign_the_plan_gave_no_hour_waits_for_its_end() {
        let h = |i: u64| 1_000 * HOUR_MS + i * HOUR_MS;
        let mut planned = plan(&[(h(0), &[("a", 2)]), (h(1), &[("a", 1)])]);
        for (id, shortfall) in [("pushed out", 50), ("empty", 0)] {
            planned.campaigns.insert(
                id.into(),
                serde_json::from_value(serde_json::json!({"planned": 0, "finish": null,
                    "feasible": shortfall == 0, "shortfall": shortfall}))
                .expect("a campaign's plan"),
            );
        }
        let s = Schedule::new(&planned);
        assert_eq!(
            s.check("pushed out", h(0) + 10),
            Some(h(2)),
            "held to the plan's end"
        );
        assert_eq!(s.check("pushed out", h(2)), None, "then only the limits");
        assert_eq!(
            s.check("empty", h(0) + 10),
            None,
            "nothing of it was planned"
        );
    }

    #[test]
    fn restored_counts_hold_an_hour_that_was_used_up() {
        let h = |i: u64| 1_000 * HOUR_MS + i * HOUR_MS;
        let planned = plan(&[(h(0), &[("a", 2), ("b", 9)]), (h(1), &[("a", 1)])]);
        let mut before = Schedule::new(&planned);
        let now = h(0) + 10;
        before.count("a", now);
        before.count("a", now);
        let sent = before.sent_from(now);
        assert_eq!(
            sent,
            [SentInHour {
                campaign: "a".into(),
                hour: h(0),
                sent: 2
            }]
        );
        assert!(before.sent_from(h(1)).is_empty(), "past hours are not kept");
        let mut after = Schedule::new(&planned);
        assert_eq!(after.check("a", now), None);
        for s in &sent {
            after.restore(s);
        }
        assert_eq!(after.check("a", now), Some(h(1)));
        after.restore(&SentInHour {
            campaign: "gone".into(),
            hour: h(0),
            sent: 5,
        });
        assert_eq!(after.check("b", now), None, "other campaigns unaffected");
    }
}
