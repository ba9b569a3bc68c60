//! Load planning: the plan never allocates above capacity and flags the
//! campaign that cannot finish, and the administrator's page draws it, as
//! headless Chromium (Debian `chromium`) renders it.

#![allow(clippy::unwrap_used)]

use serde_json::json;
use sluice_e2e::{Daemon, must_reach_end, peers::chromium};

fn declare(daemon: &Daemon, id: &str, participants: u64, priority: u8, start: &str, end: &str) {
    let decl = json!({"channel": "email", "name": id, "expected_participants": participants, "priority": priority,
        "window": {"start": start, "end": end, "tz": "Europe/Berlin", "hours": ["00:00-24:00"]}});
    daemon.declare(id, &decl);
}

#[test]
fn the_plan_respects_capacity_and_the_page_draws_it() {
    let end = must_reach_end();
    let dir = tempfile::tempdir().unwrap();
    let daemon = Daemon::start(dir.path(), "");
    let r = daemon.put_json(
        "/v1/channels/email/limits",
        &json!({"rate_per_sec": 1, "tz": "UTC"}),
    );
    assert_eq!(r.status, 200, "{}", r.text());
    let hour = |h: i64| {
        let now = jiff::Timestamp::now();
        let top = jiff::Timestamp::from_second(now.as_second() - now.as_second() % 3600).unwrap();
        (top + jiff::SignedDuration::from_hours(h)).to_string()
    };
    declare(&daemon, "urgent", 5_000, 9, &hour(1), &hour(4));
    declare(&daemon, "bulk", 20_000, 0, &hour(1), &hour(4));

    let plan = daemon.post("/v1/channels/email/plan", "application/json", b"");
    assert_eq!(plan.status, 200, "{}", plan.text());
    let plan = plan.json();
    for h in plan["hours"].as_array().unwrap() {
        let used: u64 = h["allocated"]
            .as_object()
            .unwrap()
            .values()
            .map(|v| v.as_u64().unwrap())
            .sum();
        assert!(
            used <= h["capacity"].as_u64().unwrap(),
            "above capacity: {h}"
        );
    }
    assert_eq!(plan["campaigns"]["urgent"]["feasible"], true);
    assert_eq!(plan["campaigns"]["urgent"]["planned"], 5_000);
    assert_eq!(plan["campaigns"]["bulk"]["feasible"], false);
    let shortfall = plan["campaigns"]["bulk"]["shortfall"].as_u64().unwrap();
    assert_eq!(
        shortfall + plan["campaigns"]["bulk"]["planned"].as_u64().unwrap(),
        20_000
    );
    assert_eq!(
        daemon.get("/v1/channels/email/plan").json(),
        plan,
        "the plan is stored"
    );
    let unknown = daemon.post(
        "/v1/channels/email/plan",
        "application/json",
        br#"{"campaigns": ["ghost"]}"#,
    );
    assert_eq!(unknown.status, 422, "{}", unknown.text());

    let profile = dir.path().join("chromium");
    let out = chromium(&end)
        .args([
            "--headless",
            "--no-sandbox",
            "--disable-gpu",
            "--disable-quic",
            "--no-first-run",
            "--disable-background-networking",
            "--disable-component-update",
            "--disable-sync",
            "--virtual-time-budget=5000",
            "--dump-dom",
        ])
        .arg(format!("--user-data-dir={}", profile.display()))
        .arg(format!("http://{}/admin/plan/email", daemon.api))
        .output()
        .unwrap();
    let dom = String::from_utf8_lossy(&out.stdout);
    assert!(dom.contains("2 campaigns, 1 cannot finish"), "{dom}");
    assert!(
        dom.contains("data-role=\"capacity\""),
        "the capacity line is drawn: {dom}"
    );
    for id in ["urgent", "bulk"] {
        assert!(
            dom.contains("<rect") && dom.contains(&format!("data-campaign=\"{id}\"")),
            "{id} drawn: {dom}"
        );
    }
    assert!(
        dom.contains("class=\"infeasible\" data-campaign=\"bulk\"")
            || dom.contains("data-campaign=\"bulk\" class=\"infeasible\""),
        "the infeasible campaign is marked: {dom}"
    );
    end.reached();
}
