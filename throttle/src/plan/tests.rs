//! Planner tests (unwrap is fine here: the workspace denies it outside tests).
#![allow(clippy::unwrap_used)]

use super::*;
use proptest::prelude::*;

fn ts(s: &str) -> Timestamp {
    s.parse().unwrap()
}

fn limits(json: &str) -> Limits {
    serde_json::from_str(json).unwrap()
}

fn campaign(
    id: &str,
    n: u64,
    hours: Option<&[&str]>,
    priority: u8,
    start: &str,
    end: &str,
) -> PlannedCampaign {
    PlannedCampaign {
        id: id.into(),
        participants: n,
        window: WindowSpec {
            tz: "UTC".into(),
            days: None,
            hours: hours.map(|h| h.iter().map(|s| s.to_string()).collect()),
        },
        priority,
        start: ts(start),
        end: ts(end),
        after: None,
    }
}

fn request(l: &str, campaigns: Vec<PlannedCampaign>, hours: u32) -> PlanRequest {
    PlanRequest {
        limits: limits(l),
        campaigns,
        from: ts("2026-11-23T00:00:00Z"),
        horizon_hours: hours,
    }
}

const ONE_PER_SEC: &str = r#"{"rate_per_sec": 1, "tz": "UTC"}"#;

#[test]
fn fills_hours_and_finishes() {
    let p = plan(&request(
        ONE_PER_SEC,
        vec![campaign(
            "a",
            5000,
            None,
            0,
            "2026-11-23T00:00:00Z",
            "2026-11-23T02:00:00Z",
        )],
        4,
    ))
    .unwrap();
    assert_eq!(p.hours.len(), 4);
    assert_eq!(p.hours[0].capacity, 3600);
    assert_eq!(p.hours[0].allocated["a"], 3600);
    assert_eq!(p.hours[1].allocated["a"], 1400);
    assert!(p.hours[2].allocated.is_empty());
    let a = &p.campaigns["a"];
    assert_eq!((a.planned, a.feasible, a.shortfall), (5000, true, 0));
    assert_eq!(a.finish, Some(ts("2026-11-23T02:00:00Z")));
}

#[test]
fn flags_infeasible_with_shortfall() {
    let p = plan(&request(
        ONE_PER_SEC,
        vec![campaign(
            "a",
            10_000,
            None,
            0,
            "2026-11-23T00:00:00Z",
            "2026-11-23T02:00:00Z",
        )],
        24,
    ))
    .unwrap();
    let a = &p.campaigns["a"];
    assert_eq!(
        (a.planned, a.feasible, a.shortfall, a.finish),
        (7200, false, 2800, None)
    );
}

#[test]
fn window_and_exclusion_days_shape_the_schedule() {
    let l = r#"{"rate_per_sec": 1, "tz": "UTC", "exclusion_days": ["2026-11-24"]}"#;
    let c = campaign(
        "a",
        100_000,
        Some(&["09:00-10:30"]),
        0,
        "2026-11-23T00:00:00Z",
        "2026-11-26T00:00:00Z",
    );
    let p = plan(&request(l, vec![c], 72)).unwrap();
    let got: Vec<(usize, u64)> = p
        .hours
        .iter()
        .enumerate()
        .filter_map(|(h, x)| x.allocated.get("a").map(|n| (h, *n)))
        .collect();
    // Monday 09:00 and 10:00 (half), Tuesday excluded, Wednesday again.
    assert_eq!(got, vec![(9, 3600), (10, 1800), (57, 3600), (58, 1800)]);
    assert!(p.hours[24..48].iter().all(|h| h.capacity == 0));
    assert_eq!(p.campaigns["a"].shortfall, 100_000 - 10_800);
}

#[test]
fn caps_limit_the_total_across_their_period() {
    let l = r#"{"rate_per_sec": 10, "tz": "UTC", "caps": [{"days": ["mon"], "hours": "18:00-22:00", "max": 1000}]}"#;
    let c = campaign(
        "a",
        1_000_000,
        None,
        0,
        "2026-11-23T00:00:00Z",
        "2026-11-24T00:00:00Z",
    );
    let p = plan(&request(l, vec![c], 24)).unwrap();
    let in_cap: u64 = p.hours[18..22]
        .iter()
        .map(|h| h.allocated.values().sum::<u64>())
        .sum();
    assert_eq!(in_cap, 1000);
    assert_eq!(p.hours[18].capacity, 1000);
    assert_eq!(p.hours[19].capacity, 0);
    assert_eq!(p.hours[22].capacity, 36_000);
}

#[test]
fn priority_then_earliest_deadline() {
    let cs = vec![
        campaign(
            "low",
            3600,
            None,
            1,
            "2026-11-23T00:00:00Z",
            "2026-11-23T01:00:00Z",
        ),
        campaign(
            "high",
            3600,
            None,
            9,
            "2026-11-23T00:00:00Z",
            "2026-11-23T05:00:00Z",
        ),
        campaign(
            "late",
            3600,
            None,
            1,
            "2026-11-23T00:00:00Z",
            "2026-11-23T03:00:00Z",
        ),
    ];
    let p = plan(&request(ONE_PER_SEC, cs, 5)).unwrap();
    assert_eq!(p.hours[0].allocated.get("high"), Some(&3600));
    assert_eq!(p.hours[1].allocated.get("late"), Some(&3600));
    assert!(!p.campaigns["low"].feasible);
    assert_eq!(p.campaigns["low"].shortfall, 3600);
    assert!(p.campaigns["late"].feasible);
    let served: Vec<(&str, u8, u32)> = ["high", "low", "late"]
        .map(|id| (id, p.campaigns[id].priority, p.campaigns[id].rank))
        .to_vec();
    assert_eq!(
        served,
        [("high", 9, 1), ("low", 1, 2), ("late", 1, 3)],
        "the plan says whom it serves first and why"
    );
}

#[test]
fn after_waits_for_the_earlier_stage() {
    let mut b = campaign(
        "b",
        100,
        None,
        9,
        "2026-11-23T00:00:00Z",
        "2026-11-24T00:00:00Z",
    );
    b.after = Some("a".into());
    let cs = vec![
        campaign(
            "a",
            5000,
            None,
            0,
            "2026-11-23T00:00:00Z",
            "2026-11-24T00:00:00Z",
        ),
        b,
    ];
    let p = plan(&request(ONE_PER_SEC, cs, 24)).unwrap();
    assert!(!p.hours[0].allocated.contains_key("b"));
    assert!(!p.hours[1].allocated.contains_key("b"));
    assert_eq!(p.hours[2].allocated.get("b"), Some(&100));
}

#[test]
fn bad_references_and_inputs_are_errors() {
    let mut b = campaign(
        "b",
        1,
        None,
        0,
        "2026-11-23T00:00:00Z",
        "2026-11-24T00:00:00Z",
    );
    b.after = Some("nope".into());
    assert!(
        matches!(plan(&request(ONE_PER_SEC, vec![b.clone()], 24)), Err(Error::UnknownCampaign(id)) if id == "nope")
    );
    let a = campaign(
        "a",
        1,
        None,
        0,
        "2026-11-23T00:00:00Z",
        "2026-11-24T00:00:00Z",
    );
    assert!(matches!(
        plan(&request(ONE_PER_SEC, vec![a.clone(), a.clone()], 24)),
        Err(Error::DuplicateCampaign(_))
    ));
    let mut x = a.clone();
    x.after = Some("y".into());
    let mut y = campaign(
        "y",
        1,
        None,
        0,
        "2026-11-23T00:00:00Z",
        "2026-11-24T00:00:00Z",
    );
    y.after = Some("a".into());
    let mut a2 = a.clone();
    a2.after = Some("x".into());
    a2.id = "a".into();
    let cyc = vec![
        PlannedCampaign {
            id: "x".into(),
            ..x
        },
        y,
        a2,
    ];
    assert!(matches!(
        plan(&request(ONE_PER_SEC, cyc, 24)),
        Err(Error::DependencyCycle(_))
    ));
    let mut bad = a.clone();
    bad.priority = 12;
    bad.window.tz = "Nowhere".into();
    match plan(&request(
        r#"{"rate_per_sec": 0, "tz": "UTC"}"#,
        vec![bad],
        24,
    )) {
        Err(Error::Invalid(p)) => {
            let f: Vec<_> = p.iter().map(|p| p.field.as_str()).collect();
            assert_eq!(
                f,
                [
                    "rate_per_sec",
                    "campaigns[0].window.tz",
                    "campaigns[0].priority"
                ]
            );
        }
        other => panic!("{other:?}"),
    }
    assert!(matches!(
        plan(&request(ONE_PER_SEC, vec![a], 0)),
        Err(Error::Horizon(_))
    ));
}

#[test]
fn plan_serialises_in_api_shape() {
    let p = plan(&request(
        ONE_PER_SEC,
        vec![campaign(
            "a",
            10,
            None,
            0,
            "2026-11-23T00:00:00Z",
            "2026-11-23T02:00:00Z",
        )],
        2,
    ))
    .unwrap();
    let v = serde_json::to_value(&p).unwrap();
    assert_eq!(v["hours"][0]["hour"], "2026-11-23T00:00:00Z");
    assert_eq!(v["hours"][0]["capacity"], 3600);
    assert_eq!(v["hours"][0]["allocated"]["a"], 10);
    assert_eq!(v["campaigns"]["a"]["planned"], 10);
    assert_eq!(v["campaigns"]["a"]["feasible"], true);
    assert_eq!(v["campaigns"]["a"]["shortfall"], 0);
    assert_eq!(v["campaigns"]["a"]["finish"], "2026-11-23T01:00:00Z");
}

proptest! {
    /// Never above capacity, never outside a campaign's own window or
    /// bounds, and planned + shortfall = participants.
    #[test]
    fn never_above_capacity(
        rate in 0.1f64..5.0,
        specs in proptest::collection::vec((0u64..40_000, 0u8..10, 0i64..60, 1i64..60, 0u16..20, 1u16..5), 1..12),
        cap_max in 0i64..20_000,
    ) {
        let l = format!(r#"{{"rate_per_sec": {rate}, "tz": "Europe/Berlin", "exclusion_days": ["2026-11-25"],
            "caps": [{{"days": ["thu"], "hours": "08:00-20:00", "max": {cap_max}}}]}}"#);
        let base = ts("2026-11-23T00:00:00Z");
        let cs: Vec<PlannedCampaign> = specs.iter().enumerate().map(|(i, &(n, prio, s, len, h0, dh))| {
            let h1 = (h0 + dh).min(24);
            PlannedCampaign {
                id: format!("c{i}"),
                participants: n,
                window: WindowSpec { tz: "America/New_York".into(), days: None, hours: Some(vec![format!("{h0:02}:00-{h1:02}:00")]) },
                priority: prio,
                start: base + SignedDuration::from_hours(s),
                end: base + SignedDuration::from_hours(s + len * 2),
                after: None,
            }
        }).collect();
        let req = PlanRequest { limits: limits(&l), campaigns: cs.clone(), from: base, horizon_hours: 24 * 7 };
        let p = plan(&req).unwrap();
        for h in &p.hours {
            let sum: u64 = h.allocated.values().sum();
            prop_assert!(sum <= h.capacity);
            for (id, n) in &h.allocated {
                let c = cs.iter().find(|c| &c.id == id).unwrap();
                prop_assert!(*n > 0);
                prop_assert!(h.hour + SignedDuration::from_hours(1) > c.start && h.hour < c.end);
            }
        }
        for c in &cs {
            let r = &p.campaigns[&c.id];
            prop_assert_eq!(r.planned + r.shortfall, c.participants);
            prop_assert_eq!(r.feasible, r.shortfall == 0);
            let total: u64 = p.hours.iter().filter_map(|h| h.allocated.get(&c.id)).sum();
            prop_assert_eq!(total, r.planned);
        }
        // Thursday 08:00-20:00 Berlin is 07:00-19:00 UTC; the cap holds.
        let thu: u64 = p.hours[72 + 7..72 + 19].iter().map(|h| h.allocated.values().sum::<u64>()).sum();
        prop_assert!(thu <= cap_max as u64);
        // The exclusion day (Wednesday in Berlin) carries nothing.
        prop_assert!(p.hours[47..71].iter().all(|h| h.capacity == 0));
    }
}

/// The hour the plan starts in has only its remaining seconds: a campaign
/// planned at 10:30 is not shown sending a full hour's worth by 11:00.
#[test]
fn the_current_hour_counts_from_now() {
    let mut req = request(
        ONE_PER_SEC,
        vec![campaign(
            "a",
            5000,
            None,
            0,
            "2026-11-23T00:00:00Z",
            "2026-11-23T02:00:00Z",
        )],
        3,
    );
    req.from = ts("2026-11-23T00:30:00Z");
    let p = plan(&req).unwrap();
    assert_eq!(p.hours[0].capacity, 1800);
    assert_eq!(p.hours[0].allocated["a"], 1800);
    assert_eq!(p.hours[1].allocated["a"], 3200);
    let a = &p.campaigns["a"];
    assert_eq!((a.planned, a.feasible), (5000, true));

    req.campaigns[0].participants = 6000;
    let a = &plan(&req).unwrap().campaigns["a"];
    assert_eq!(
        (a.planned, a.feasible, a.shortfall),
        (5400, false, 600),
        "a full first hour would have shown it feasible"
    );
}
