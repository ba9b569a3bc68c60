//! Tests (unwrap is fine here: the workspace denies it outside tests).
#![allow(clippy::unwrap_used)]

use super::*;
use crate::window::WindowSpec;
use jiff::SignedDuration;

fn ts(s: &str) -> Timestamp {
    s.parse().unwrap()
}

fn limits(json: &str) -> Limits {
    serde_json::from_str(json).unwrap()
}

fn setup(json: &str, now: &str) -> (Admission, QuotaBook) {
    let l = limits(json);
    let a = Admission::new(&l).unwrap();
    let q = QuotaBook::new(l.quota_rules().unwrap(), ts(now));
    (a, q)
}

fn office_hours(start: Option<&str>, end: Option<&str>) -> Window {
    let spec = WindowSpec {
        tz: "Europe/Berlin".into(),
        days: Some(vec![
            "mon".into(),
            "tue".into(),
            "wed".into(),
            "thu".into(),
            "fri".into(),
        ]),
        hours: Some(vec!["09:00-18:00".into()]),
    };
    Window::new(&spec, start.map(ts), end.map(ts)).unwrap()
}

fn req(customer: &str) -> Request<'static> {
    Request {
        customer: CustomerKey::of(customer),
        segment: None,
    }
}

const BASE: &str =
    r#"{"rate_per_sec": 10, "tz": "Europe/Berlin", "quotas": {"*": {"max": 1, "per": "P1D"}}}"#;

#[test]
fn go_records_and_quota_suppresses_second_message() {
    let (mut a, mut q) = setup(BASE, "2026-11-23T09:00:00Z");
    let mut w = office_hours(None, None);
    let now = ts("2026-11-23T09:00:00Z"); // Monday 10:00 in Berlin
    assert_eq!(
        a.admit(now, &mut w, &req("c1"), &mut q).unwrap(),
        Decision::Go
    );
    let later = ts("2026-11-23T10:00:00Z");
    match a.admit(later, &mut w, &req("c1"), &mut q).unwrap() {
        Decision::Suppress(Suppression::QuotaExceeded { free_at }) => {
            assert!(
                free_at >= ts("2026-11-24T09:00:00Z") && free_at <= ts("2026-11-24T09:00:32Z"),
                "{free_at}"
            );
        }
        other => panic!("{other:?}"),
    }
    // Another customer goes.
    assert_eq!(
        a.admit(later, &mut w, &req("c2"), &mut q).unwrap(),
        Decision::Go
    );
    // Quota state exported and imported into a fresh book still suppresses.
    let state = q.export(CustomerKey::of("c1")).unwrap().to_bytes();
    let mut q2 = QuotaBook::new(limits(BASE).quota_rules().unwrap(), later);
    q2.import(
        CustomerKey::of("c1"),
        &crate::QuotaState::from_bytes(&state).unwrap(),
    );
    let mut a2 = Admission::new(&limits(BASE)).unwrap();
    assert!(matches!(
        a2.admit(later, &mut w, &req("c1"), &mut q2).unwrap(),
        Decision::Suppress(Suppression::QuotaExceeded { .. })
    ));
}

#[test]
fn outside_window_defers_to_the_opening() {
    let (mut a, mut q) = setup(BASE, "2026-11-23T09:00:00Z");
    let mut w = office_hours(None, None);
    // Friday 2026-11-27 19:00 Berlin: next opening Monday 09:00 Berlin.
    let d = a
        .admit(ts("2026-11-27T18:00:00Z"), &mut w, &req("c1"), &mut q)
        .unwrap();
    assert_eq!(
        d,
        Decision::Defer {
            reason: Deferral::OutsideWindow,
            retry_at: ts("2026-11-30T08:00:00Z")
        }
    );
}

#[test]
fn exclusion_day_defers_past_it_and_into_the_window() {
    let json = r#"{"rate_per_sec": 10, "tz": "Europe/Berlin", "exclusion_days": ["2026-11-30", "2026-12-01"]}"#;
    let (mut a, mut q) = setup(json, "2026-11-30T09:00:00Z");
    let mut w = office_hours(None, None);
    let d = a
        .admit(ts("2026-11-30T09:00:00Z"), &mut w, &req("c1"), &mut q)
        .unwrap();
    // Excluded Monday and Tuesday; the window opens Wednesday 09:00 Berlin.
    assert_eq!(
        d,
        Decision::Defer {
            reason: Deferral::ExclusionDay,
            retry_at: ts("2026-12-02T08:00:00Z")
        }
    );
}

#[test]
fn cap_reached_defers_to_period_end() {
    let json = r#"{"rate_per_sec": 100, "tz": "Europe/Berlin", "caps": [{"days": ["mon"], "hours": "10:00-12:00", "max": 2}]}"#;
    let (mut a, mut q) = setup(json, "2026-11-23T09:00:00Z");
    let mut w = office_hours(None, None);
    let now = ts("2026-11-23T09:30:00Z");
    assert_eq!(
        a.admit(now, &mut w, &req("c1"), &mut q).unwrap(),
        Decision::Go
    );
    assert_eq!(
        a.admit(ts("2026-11-23T09:31:00Z"), &mut w, &req("c2"), &mut q)
            .unwrap(),
        Decision::Go
    );
    let d = a
        .admit(ts("2026-11-23T09:32:00Z"), &mut w, &req("c3"), &mut q)
        .unwrap();
    assert_eq!(
        d,
        Decision::Defer {
            reason: Deferral::CapReached,
            retry_at: ts("2026-11-23T11:00:00Z")
        }
    );
    assert_eq!(
        a.admit(ts("2026-11-23T11:00:00Z"), &mut w, &req("c3"), &mut q)
            .unwrap(),
        Decision::Go
    );
}

/// A send taken back from a cap frees its place, in the period it was
/// counted in only.
#[test]
fn a_send_taken_back_frees_its_place_in_the_cap() {
    let json = r#"{"rate_per_sec": 100, "tz": "UTC", "caps": [{"hours": "10:00-11:00", "max": 1}, {"hours": "11:00-12:00", "max": 1}]}"#;
    let (mut a, mut q) = setup(json, "2026-11-23T09:00:00Z");
    let mut w = office_hours(None, None);
    let (ten, eleven) = (ts("2026-11-23T10:30:00Z"), ts("2026-11-23T11:30:00Z"));
    let later = |t: Timestamp, s| t + SignedDuration::from_secs(s);
    assert_eq!(
        a.admit(ten, &mut w, &req("c1"), &mut q).unwrap(),
        Decision::Go
    );
    assert_ne!(
        a.admit(later(ten, 1), &mut w, &req("c2"), &mut q).unwrap(),
        Decision::Go
    );
    a.unrecord_caps(ten).unwrap();
    assert_eq!(
        a.admit(later(ten, 2), &mut w, &req("c2"), &mut q).unwrap(),
        Decision::Go,
        "its place is free"
    );
    assert_eq!(
        a.admit(eleven, &mut w, &req("c3"), &mut q).unwrap(),
        Decision::Go
    );
    a.unrecord_caps(ten).unwrap();
    let counts: Vec<u64> = a.cap_counts().iter().map(|c| c.count).collect();
    assert_eq!(counts, [0, 1], "the other period keeps its count");
}

#[test]
fn bandwidth_defers_to_next_slot() {
    let (mut a, mut q) = setup(
        r#"{"rate_per_sec": 2, "tz": "UTC"}"#,
        "2026-11-23T09:00:00Z",
    );
    let mut w = Window::always();
    let now = ts("2026-11-23T09:00:00Z");
    assert_eq!(
        a.admit(now, &mut w, &req("c1"), &mut q).unwrap(),
        Decision::Go
    );
    let d = a.admit(now, &mut w, &req("c2"), &mut q).unwrap();
    assert_eq!(
        d,
        Decision::Defer {
            reason: Deferral::RateLimited,
            retry_at: ts("2026-11-23T09:00:00.5Z")
        }
    );
}

#[test]
fn campaign_start_and_end() {
    let (mut a, mut q) = setup(BASE, "2026-11-23T09:00:00Z");
    let mut w = office_hours(Some("2026-11-24T12:00:00Z"), Some("2026-11-25T12:00:00Z"));
    let d = a
        .admit(ts("2026-11-23T09:00:00Z"), &mut w, &req("c1"), &mut q)
        .unwrap();
    assert_eq!(
        d,
        Decision::Defer {
            reason: Deferral::NotStarted,
            retry_at: ts("2026-11-24T12:00:00Z")
        }
    );
    let d = a
        .admit(ts("2026-11-25T12:00:00Z"), &mut w, &req("c1"), &mut q)
        .unwrap();
    assert_eq!(d, Decision::Suppress(Suppression::CampaignEnded));
    // Window closes for the day and the campaign ends before it reopens.
    let d = a
        .admit(ts("2026-11-24T18:00:00Z"), &mut w, &req("c1"), &mut q)
        .unwrap();
    assert_eq!(
        d,
        Decision::Defer {
            reason: Deferral::OutsideWindow,
            retry_at: ts("2026-11-25T08:00:00Z")
        }
    );
    let mut short = office_hours(Some("2026-11-24T12:00:00Z"), Some("2026-11-24T20:00:00Z"));
    let d = a
        .admit(ts("2026-11-24T18:00:00Z"), &mut short, &req("c1"), &mut q)
        .unwrap();
    assert_eq!(d, Decision::Suppress(Suppression::CampaignEnded));
    assert_eq!(Deferral::CapReached.as_str(), "cap_reached");
    assert_eq!(Suppression::CampaignEnded.as_str(), "campaign_ended");
}

#[test]
fn invalid_limits_are_refused() {
    let l = limits(r#"{"rate_per_sec": 0, "tz": "Nowhere"}"#);
    match Admission::new(&l) {
        Err(crate::Error::Invalid(p)) => assert_eq!(p.len(), 2),
        other => panic!("{other:?}"),
    }
}

#[test]
fn batch_matches_one_by_one() {
    let json = r#"{"rate_per_sec": 1000, "burst": 50, "tz": "Europe/Berlin",
        "caps": [{"hours": "09:00-18:00", "max": 150}],
        "quotas": {"*": {"max": 2, "per": "P1D"}, "gold": {"max": 1, "per": "P1D"}}}"#;
    let (mut a1, mut q1) = setup(json, "2026-11-23T09:00:00Z");
    let (mut a2, mut q2) = setup(json, "2026-11-23T09:00:00Z");
    let mut w1 = office_hours(None, None);
    let mut w2 = office_hours(None, None);
    let names: Vec<String> = (0..400).map(|i| format!("c{}", i % 90)).collect();
    let reqs: Vec<Request<'_>> = names
        .iter()
        .enumerate()
        .map(|(i, n)| Request {
            customer: CustomerKey::of(n),
            segment: (i % 3 == 0).then_some("gold"),
        })
        .collect();
    let mut batched = Vec::new();
    let mut single = Vec::new();
    for (k, chunk) in reqs.chunks(70).enumerate() {
        let now = ts("2026-11-23T09:00:00Z") + jiff::SignedDuration::from_millis(10 * k as i64);
        a2.admit_batch(now, &mut w2, chunk, &mut q2, &mut batched)
            .unwrap();
        for r in chunk {
            single.push(a1.admit(now, &mut w1, r, &mut q1).unwrap());
        }
    }
    assert_eq!(batched, single);
    // Every kind of answer occurred, so the comparison covered them.
    assert!(single.contains(&Decision::Go));
    assert!(
        single
            .iter()
            .any(|d| matches!(d, Decision::Suppress(Suppression::QuotaExceeded { .. })))
    );
    assert!(single.iter().any(|d| matches!(
        d,
        Decision::Defer {
            reason: Deferral::RateLimited,
            ..
        }
    )));
}

#[test]
fn set_limits_keeps_cap_counts_and_bandwidth_schedule() {
    let json = r#"{"rate_per_sec": 1, "tz": "Europe/Berlin", "caps": [{"hours": "09:00-18:00", "max": 2}]}"#;
    let (mut a, mut q) = setup(json, "2026-11-23T09:00:00Z");
    let mut w = office_hours(None, None);
    assert_eq!(
        a.admit(ts("2026-11-23T09:00:00Z"), &mut w, &req("c1"), &mut q)
            .unwrap(),
        Decision::Go
    );
    // A faster rate and a new exclusion day; the cap is unchanged.
    let edited = r#"{"rate_per_sec": 1000, "tz": "Europe/Berlin", "exclusion_days": ["2026-12-24"], "caps": [{"hours": "09:00-18:00", "max": 2}]}"#;
    a.set_limits(&limits(edited)).unwrap();
    // The old schedule still holds for the message already due.
    let d = a
        .admit(ts("2026-11-23T09:00:00.5Z"), &mut w, &req("c2"), &mut q)
        .unwrap();
    assert_eq!(
        d,
        Decision::Defer {
            reason: Deferral::RateLimited,
            retry_at: ts("2026-11-23T09:00:01Z")
        }
    );
    assert_eq!(
        a.admit(ts("2026-11-23T09:00:01Z"), &mut w, &req("c2"), &mut q)
            .unwrap(),
        Decision::Go
    );
    // The cap had one message before the edit: one more makes two, full.
    // Its period ends at 18:00 Berlin, when the window closes too, so the
    // dispatcher is told to come back when the window reopens on Tuesday.
    let d = a
        .admit(ts("2026-11-23T09:00:02Z"), &mut w, &req("c3"), &mut q)
        .unwrap();
    assert_eq!(
        d,
        Decision::Defer {
            reason: Deferral::CapReached,
            retry_at: ts("2026-11-24T08:00:00Z")
        }
    );
    // A changed cap starts counting afresh.
    a.set_limits(&limits(r#"{"rate_per_sec": 1000, "tz": "Europe/Berlin", "caps": [{"hours": "09:00-18:00", "max": 3}]}"#)).unwrap();
    assert_eq!(
        a.admit(ts("2026-11-23T09:00:03Z"), &mut w, &req("c3"), &mut q)
            .unwrap(),
        Decision::Go
    );
    assert!(
        a.set_limits(&limits(r#"{"rate_per_sec": 0, "tz": "UTC"}"#))
            .is_err()
    );
}

proptest::proptest! {
    /// Whatever the clock does (including stepping back across days and
    /// DST changes), admission never panics, never exceeds the bandwidth
    /// (burst + span / interval) and never exceeds a customer's quota.
    #[test]
    fn random_clock_never_panics_or_bursts(
        steps in proptest::collection::vec((-7_200_000i64..86_400_000, 0u8..6), 1..400),
    ) {
        let json = r#"{"rate_per_sec": 0.5, "burst": 2, "tz": "Europe/Berlin", "exclusion_days": ["2026-10-26"],
            "caps": [{"days": ["sun"], "hours": "01:00-04:00", "max": 5}],
            "quotas": {"*": {"max": 2, "per": "PT6H"}}}"#;
        let (mut a, mut q) = setup(json, "2026-10-24T00:00:00Z");
        let mut w = office_hours(None, None);
        let mut always = Window::always();
        let mut t = ts("2026-10-24T00:00:00Z");
        let mut sends: Vec<Timestamp> = Vec::new();
        let mut per_customer: std::collections::HashMap<u8, Vec<Timestamp>> = Default::default();
        for (ms, who) in steps {
            t += jiff::SignedDuration::from_millis(ms);
            let win = if who % 2 == 0 { &mut w } else { &mut always };
            let d = a.admit(t, win, &req(&format!("c{who}")), &mut q).unwrap();
            if d == Decision::Go {
                sends.push(t);
                per_customer.entry(who).or_default().push(t);
            }
            if let Decision::Defer { retry_at, .. } = d {
                proptest::prop_assert!(retry_at > t);
            }
        }
        for (i, x) in sends.iter().enumerate() {
            for (j, y) in sends.iter().enumerate().skip(i) {
                let span = y.duration_since(*x).as_nanos().max(0);
                proptest::prop_assert!((j - i + 1) as i128 <= 2 + span / 2_000_000_000);
            }
        }
        for times in per_customer.values() {
            for x in times {
                let n = times.iter().filter(|y| *y >= x && y.duration_since(*x).as_secs() < 6 * 3600).count();
                proptest::prop_assert!(n <= 2);
            }
        }
    }
}
