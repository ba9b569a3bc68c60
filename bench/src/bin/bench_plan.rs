//! The load planner: 1,000 campaigns over a 90-day horizon.
//!
//! `cargo run --release -p bench --bin bench_plan [campaigns] [days] [participants]`
//!
//! Without `participants` each campaign has 10,000 to 2 million; with it,
//! the campaigns share that many (from half to one and a half times an
//! even share each). The planner works on counts (the daemon passes each
//! campaign's pending count), so participants change what fits, not the
//! work per hour.

use std::time::Instant;

use anyhow::Context;
use bench::args::positional;
use throttle::jiff::{SignedDuration, Timestamp};
use throttle::plan::{PlanRequest, PlannedCampaign, plan};
use throttle::{CapSpec, Limits, WindowSpec};

struct Rng(u64);

impl Rng {
    fn below(&mut self, n: u64) -> u64 {
        self.0 ^= self.0 << 13;
        self.0 ^= self.0 >> 7;
        self.0 ^= self.0 << 17;
        self.0 % n
    }
}

fn main() -> anyhow::Result<()> {
    let n: u64 = positional(1, "campaigns", 1000)?;
    let days: i64 = positional(2, "days", 90)?;
    let total: Option<u64> = std::env::args()
        .nth(3)
        .map(|s| s.parse())
        .transpose()
        .context("argument 3 (participants)")?;
    let limits = Limits {
        rate_per_sec: 500.0,
        burst: None,
        tz: "Europe/Berlin".into(),
        exclusion_days: ["2026-12-24", "2026-12-25", "2026-12-31", "2027-01-01"]
            .map(String::from)
            .to_vec(),
        caps: vec![
            CapSpec {
                days: Some(vec!["sat".into()]),
                hours: Some("18:00-22:00".into()),
                max: 1_000_000,
            },
            CapSpec {
                days: Some(vec!["2026-12-23".into()]),
                hours: None,
                max: 5_000_000,
            },
        ],
        quotas: Default::default(),
    };
    let from: Timestamp = "2026-11-23T00:00:00Z".parse()?;
    let zones = ["Europe/Berlin", "America/New_York", "Asia/Kolkata", "UTC"];
    let templates: [(&[&str], &[&str]); 4] = [
        (
            &["mon", "tue", "wed", "thu", "fri"],
            &["09:00-12:00", "14:00-19:00"],
        ),
        (&["sat", "sun"], &["10:00-20:00"]),
        (&["mon", "wed", "fri"], &["08:00-22:00"]),
        (
            &["mon", "tue", "wed", "thu", "fri", "sat", "sun"],
            &["00:00-24:00"],
        ),
    ];
    let mut rng = Rng(0x2545_f491_4f6c_dd1d);
    let mut campaigns = Vec::new();
    for i in 0..n {
        let (d, h) = templates[rng.below(4) as usize];
        let start = from + SignedDuration::from_hours(rng.below((days * 24 * 2 / 3) as u64) as i64);
        let end = start + SignedDuration::from_hours(24 + rng.below(30 * 24) as i64);
        campaigns.push(PlannedCampaign {
            id: format!("campaign-{i:04}"),
            participants: match total {
                Some(total) => total / (2 * n) + rng.below((total / n).max(1)),
                None => 10_000 + rng.below(2_000_000),
            },
            window: WindowSpec {
                tz: zones[rng.below(4) as usize].into(),
                days: Some(d.iter().map(|s| s.to_string()).collect()),
                hours: Some(h.iter().map(|s| s.to_string()).collect()),
            },
            priority: rng.below(10) as u8,
            start,
            end,
            after: (i % 10 == 9).then(|| format!("campaign-{:04}", i - 1)),
        });
    }
    let req = PlanRequest {
        limits,
        campaigns,
        from,
        horizon_hours: (days * 24) as u32,
    };
    let mut times = Vec::new();
    let mut last = None;
    for _ in 0..5 {
        let started = Instant::now();
        let p = plan(&req)?;
        times.push(started.elapsed().as_secs_f64());
        last = Some(p);
    }
    times.sort_by(f64::total_cmp);
    let p = last.context("no run")?;
    let infeasible = p.campaigns.values().filter(|c| !c.feasible).count();
    let shortfall: u64 = p.campaigns.values().map(|c| c.shortfall).sum();
    let participants: u64 = req.campaigns.iter().map(|c| c.participants).sum();
    let allocated: u64 = p.hours.iter().flat_map(|h| h.allocated.values()).sum();
    let capacity: u64 = p.hours.iter().map(|h| h.capacity).sum();
    println!(
        "bench_plan: {n} campaigns, {participants} participants, {days} days ({} hours), 500 msg/s channel",
        p.hours.len()
    );
    println!(
        "  plan time: min {:.0} ms, median {:.0} ms, max {:.0} ms (target <= 1000 ms)",
        times[0] * 1e3,
        times[2] * 1e3,
        times[4] * 1e3
    );
    println!(
        "  allocated {allocated} of capacity {capacity}; {infeasible} campaigns infeasible, total shortfall {shortfall}"
    );
    Ok(())
}
