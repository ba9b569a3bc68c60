//! Load planning: weigh declared campaigns against the channel's bandwidth,
//! exclusion days and caps, hour by hour, and show each campaign's schedule,
//! the channel's total load, and the campaigns that cannot finish in time.
//!
//! The plan works on UTC hours from the hour of `from` over `horizon_hours`;
//! the first hour counts only its seconds from `from` on. An hour's
//! capacity is the bandwidth over its non-excluded seconds, lowered to what
//! the load caps overlapping it still allow (a cap period that touches an
//! hour is charged for everything allocated in that hour, which is
//! conservative). A campaign may use, in an hour, at most the bandwidth over
//! the seconds of that hour in which its own window is open (in its own time
//! zone), after its start and before its end.
//!
//! Hours are filled in order. Within an hour campaigns are served by
//! priority (9 first), then earliest deadline (EDF), then earliest start,
//! then id. A campaign with `after` waits until that campaign's last message
//! is planned. Nothing is ever allocated above capacity. Campaigns whose
//! participants are not all planned by their end (or by the horizon) are
//! flagged `feasible: false` with the `shortfall`.

use std::cmp::Reverse;
use std::collections::{BTreeMap, HashMap};

use jiff::{SignedDuration, Timestamp};
use serde::{Deserialize, Serialize};

use crate::calendar;
use crate::error::{Error, Problem, Result};
use crate::exclusion::ExclusionDays;
use crate::limits::Limits;
use crate::window::{Window, WindowSpec};

/// Longest horizon: 400 days of hours.
pub const MAX_HORIZON_HOURS: u32 = 400 * 24;

/// A campaign as declared for planning.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct PlannedCampaign {
    /// Campaign id.
    pub id: String,
    /// Expected number of participants (messages to send).
    pub participants: u64,
    /// Send-window template.
    pub window: WindowSpec,
    /// 0 (lowest) ..= 9 (highest).
    #[serde(default)]
    pub priority: u8,
    /// First instant it may send.
    pub start: Timestamp,
    /// Instant by which it must have finished (exclusive).
    pub end: Timestamp,
    /// Id of a campaign that must have been planned completely before this
    /// one starts (a later stage of a multi-stage program).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub after: Option<String>,
}

/// What to plan.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct PlanRequest {
    /// The channel's limits (quotas and blacklist do not enter the plan).
    pub limits: Limits,
    /// Declared campaigns.
    pub campaigns: Vec<PlannedCampaign>,
    /// Start of the horizon (rounded down to the hour).
    pub from: Timestamp,
    /// Length of the horizon in hours (1 ..= [`MAX_HORIZON_HOURS`]).
    pub horizon_hours: u32,
}

/// One hour of the channel's load.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct PlanHour {
    /// Start of the hour (UTC).
    pub hour: Timestamp,
    /// Messages the channel may carry in this hour.
    pub capacity: u64,
    /// Messages planned per campaign (campaigns with none are omitted).
    pub allocated: BTreeMap<String, u64>,
}

/// One campaign's outcome.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct CampaignPlan {
    /// Messages planned within the horizon.
    pub planned: u64,
    /// End of the hour in which its last message is planned, if all are.
    pub finish: Option<Timestamp>,
    /// Whether every participant is planned by the campaign's end. A
    /// campaign that ends after the horizon is judged at the horizon's end,
    /// so plan over a horizon that covers the campaigns' ends.
    pub feasible: bool,
    /// Participants left unplanned.
    pub shortfall: u64,
    /// Its declared priority (0..=9), and its place in the order each hour
    /// serves campaigns in (1 first: priority, then deadline, start, id).
    /// (Default 0 in plans stored before they were given.)
    #[serde(default)]
    pub priority: u8,
    #[serde(default)]
    pub rank: u32,
}

/// The plan (API shape of `GET /v1/channels/{channel}/plan`).
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct Plan {
    /// The channel's load, hour by hour.
    pub hours: Vec<PlanHour>,
    /// Per-campaign outcome by id.
    pub campaigns: BTreeMap<String, CampaignPlan>,
}

type Iv = (Timestamp, Timestamp);

/// Removes `cut` (sorted, disjoint) from `ivs` (sorted, disjoint).
fn subtract(ivs: &[Iv], cut: &[Iv]) -> Vec<Iv> {
    let mut out = Vec::with_capacity(ivs.len());
    for &(mut a, b) in ivs {
        for &(c, d) in cut {
            if d <= a || c >= b {
                continue;
            }
            if c > a {
                out.push((a, c));
            }
            a = a.max(d);
            if a >= b {
                break;
            }
        }
        if a < b {
            out.push((a, b));
        }
    }
    out
}

/// Seconds of `ivs` falling in each hour of the horizon.
fn per_hour(ivs: &[Iv], from: i64, hours: usize) -> Vec<u32> {
    let mut out = vec![0u32; hours];
    for &(a, b) in ivs {
        let (mut a, b) = (a.as_second() - from, b.as_second() - from);
        while a < b {
            let h = a.div_euclid(3600);
            let next = ((h + 1) * 3600).min(b);
            if let Some(slot) = usize::try_from(h).ok().and_then(|h| out.get_mut(h)) {
                *slot += (next - a) as u32;
            }
            a = next;
        }
    }
    out
}

fn messages(rate: f64, secs: u32) -> u64 {
    (rate * f64::from(secs)).floor() as u64
}

struct Camp<'a> {
    c: &'a PlannedCampaign,
    /// Open seconds per horizon hour.
    open: Vec<u32>,
    after: Option<usize>,
    remaining: u64,
    finish_hour: Option<usize>,
}

/// Computes the plan.
pub fn plan(req: &PlanRequest) -> Result<Plan> {
    let mut problems = req.limits.problems();
    for (i, c) in req.campaigns.iter().enumerate() {
        problems.extend(c.window.problems(&format!("campaigns[{i}].window")));
        if c.priority > 9 {
            problems.push(Problem::new(
                format!("campaigns[{i}].priority"),
                "must be 0..9",
            ));
        }
        if c.end <= c.start {
            problems.push(Problem::new(
                format!("campaigns[{i}].end"),
                "must be after start",
            ));
        }
        if c.id.is_empty() {
            problems.push(Problem::new(format!("campaigns[{i}].id"), "is empty"));
        }
    }
    if !problems.is_empty() {
        return Err(Error::Invalid(problems));
    }
    if req.horizon_hours == 0 || req.horizon_hours > MAX_HORIZON_HOURS {
        return Err(Error::Horizon(format!(
            "horizon_hours must be 1..={MAX_HORIZON_HOURS}"
        )));
    }
    let index = campaign_index(&req.campaigns)?;
    let hours = req.horizon_hours as usize;
    let from_s = req.from.as_second().div_euclid(3600) * 3600;
    let from = Timestamp::from_second(from_s)?;
    let to = from.checked_add(SignedDuration::from_hours(i64::from(req.horizon_hours)))?;
    let rate = req.limits.rate_per_sec;
    let tz = calendar::time_zone(&req.limits.tz)
        .map_err(|e| Error::Invalid(vec![Problem::new("limits.tz", e)]))?;

    // Channel: seconds per hour not excluded.
    let exclusion = ExclusionDays::new(
        tz.clone(),
        req.limits
            .exclusion_days
            .iter()
            .filter_map(|d| calendar::date(d)),
    );
    let excluded = exclusion.intervals(from, to)?;
    // The current hour counts from `req.from`: its past seconds are gone.
    let channel_open = per_hour(&subtract(&[(req.from, to)], &excluded), from_s, hours);

    // Caps: period instances over the horizon and the hours they touch.
    let mut sink = Vec::new();
    let caps = req.limits.compiled_caps(&mut sink);
    let mut budget: Vec<u64> = Vec::new();
    let mut touching: Vec<Vec<u32>> = vec![Vec::new(); hours];
    let mut day = calendar::local(&tz, from).date().yesterday()?;
    let last = calendar::local(&tz, to).date().tomorrow()?;
    while day <= last && !caps.is_empty() {
        for (_, cap) in &caps {
            if !cap.applies_on(day) {
                continue;
            }
            let Some((a, b)) = cap.hours.on(&tz, day)? else {
                continue;
            };
            let (a, b) = (a.max(from), b.min(to));
            if a >= b {
                continue;
            }
            let id = budget.len() as u32;
            budget.push(cap.max);
            let h0 = (a.as_second() - from_s).div_euclid(3600) as usize;
            let h1 = ((b.as_second() - from_s + 3599).div_euclid(3600) as usize).min(hours);
            for t in touching.iter_mut().take(h1).skip(h0) {
                t.push(id);
            }
        }
        day = day.tomorrow()?;
    }

    // Campaigns: open seconds per hour (window ∩ [start, end) − exclusions).
    let mut camps: Vec<Camp<'_>> = Vec::with_capacity(req.campaigns.len());
    for c in &req.campaigns {
        let w = Window::new(&c.window, Some(c.start), Some(c.end))?;
        let ivs = subtract(
            &subtract(&w.intervals(from, to)?, &[(from, req.from)]),
            &excluded,
        );
        camps.push(Camp {
            c,
            open: per_hour(&ivs, from_s, hours),
            after: c
                .after
                .as_ref()
                .and_then(|a| index.get(a.as_str()).copied()),
            remaining: c.participants,
            finish_hour: None,
        });
    }
    let mut order: Vec<usize> = (0..camps.len()).collect();
    order.sort_by_key(|&i| {
        let c = camps[i].c;
        (Reverse(c.priority), c.end, c.start, c.id.as_str())
    });

    let mut out_hours = Vec::with_capacity(hours);
    for h in 0..hours {
        let bandwidth = messages(rate, channel_open[h]);
        let cap_left = touching[h]
            .iter()
            .map(|&id| budget[id as usize])
            .min()
            .unwrap_or(u64::MAX);
        let capacity = bandwidth.min(cap_left);
        let mut left = capacity;
        let mut allocated = BTreeMap::new();
        for &i in &order {
            if left == 0 {
                break;
            }
            let ready = match camps[i].after {
                None => true,
                Some(p) => camps[p].remaining == 0 && camps[p].finish_hour.is_some_and(|f| f < h),
            };
            let cp = &mut camps[i];
            if cp.remaining == 0 || cp.open[h] == 0 || !ready {
                continue;
            }
            let n = cp.remaining.min(messages(rate, cp.open[h])).min(left);
            if n == 0 {
                continue;
            }
            cp.remaining -= n;
            left -= n;
            if cp.remaining == 0 {
                cp.finish_hour = Some(h);
            }
            allocated.insert(cp.c.id.clone(), n);
        }
        let used = capacity - left;
        for &id in &touching[h] {
            budget[id as usize] -= used;
        }
        out_hours.push(PlanHour {
            hour: Timestamp::from_second(from_s + 3600 * h as i64)?,
            capacity,
            allocated,
        });
    }

    let mut campaigns = BTreeMap::new();
    let rank_of = |i: usize| {
        order
            .iter()
            .position(|&o| o == i)
            .map_or(0, |r| r as u32 + 1)
    };
    for (i, cp) in camps.iter().enumerate() {
        let finish = match cp.finish_hour {
            Some(h) => Some(Timestamp::from_second(from_s + 3600 * (h as i64 + 1))?.min(cp.c.end)),
            None if cp.c.participants == 0 => Some(cp.c.start),
            None => None,
        };
        campaigns.insert(
            cp.c.id.clone(),
            CampaignPlan {
                planned: cp.c.participants - cp.remaining,
                finish,
                feasible: cp.remaining == 0,
                shortfall: cp.remaining,
                priority: cp.c.priority,
                rank: rank_of(i),
            },
        );
    }
    Ok(Plan {
        hours: out_hours,
        campaigns,
    })
}

/// Ids to positions; refuses duplicates, unknown `after` references and
/// `after` cycles.
fn campaign_index(campaigns: &[PlannedCampaign]) -> Result<HashMap<&str, usize>> {
    let mut index = HashMap::with_capacity(campaigns.len());
    for (i, c) in campaigns.iter().enumerate() {
        if index.insert(c.id.as_str(), i).is_some() {
            return Err(Error::DuplicateCampaign(c.id.clone()));
        }
    }
    for c in campaigns {
        if let Some(a) = &c.after
            && !index.contains_key(a.as_str())
        {
            return Err(Error::UnknownCampaign(a.clone()));
        }
    }
    for c in campaigns {
        let mut seen = 0;
        let mut cur = c.after.as_deref();
        while let Some(a) = cur {
            if a == c.id || seen > campaigns.len() {
                return Err(Error::DependencyCycle(c.id.clone()));
            }
            seen += 1;
            cur = index.get(a).and_then(|&i| campaigns[i].after.as_deref());
        }
    }
    Ok(index)
}

#[cfg(test)]
mod tests;
