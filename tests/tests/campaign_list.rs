//! `GET /v1/campaigns`: every campaign, newest first, filtered by state and
//! channel, a page at a time.

#![allow(clippy::unwrap_used)]

use serde_json::{Value, json};
use sluice_e2e::Daemon;

fn ids(page: &Value) -> Vec<&str> {
    page["campaigns"]
        .as_array()
        .unwrap()
        .iter()
        .map(|c| c["id"].as_str().unwrap())
        .collect()
}

fn list(daemon: &Daemon, query: &str) -> Value {
    let r = daemon.get(&format!("/v1/campaigns{query}"));
    assert_eq!(r.status, 200, "{}", r.text());
    r.json()
}

#[test]
fn campaigns_are_listed_newest_first_by_state_and_channel_a_page_at_a_time() {
    let dir = tempfile::tempdir().unwrap();
    let daemon = Daemon::start(dir.path(), "");
    for (id, channel) in [
        ("m1", "email"),
        ("s1", "sms"),
        ("m2", "email"),
        ("s2", "sms"),
        ("m3", "email"),
    ] {
        daemon.declare(id, &json!({"channel": channel, "name": id}));
    }
    let cancel = daemon.post("/v1/campaigns/m2/cancel", "application/json", b"");
    assert_eq!(cancel.status, 200, "{}", cancel.text());

    let all = list(&daemon, "");
    assert_eq!(ids(&all), ["m3", "s2", "m2", "s1", "m1"]);
    assert!(all.get("next").is_none(), "{all}");
    assert_eq!(all["campaigns"][2]["state"], "cancelled");
    assert_eq!(all["campaigns"][0]["participants"], 0);
    assert_eq!(ids(&list(&daemon, "?channel=sms")), ["s2", "s1"]);
    assert_eq!(ids(&list(&daemon, "?state=cancelled")), ["m2"]);
    assert_eq!(
        ids(&list(&daemon, "?state=declared&channel=email")),
        ["m3", "m1"]
    );

    // Pages of two: each names where the next starts, the last none.
    let mut seen = Vec::new();
    let mut query = "?limit=2".to_owned();
    loop {
        let page = list(&daemon, &query);
        seen.extend(ids(&page).into_iter().map(str::to_owned));
        match page.get("next") {
            Some(next) => query = format!("?limit=2&before={next}"),
            None => break,
        }
    }
    assert_eq!(seen, ["m3", "s2", "m2", "s1", "m1"]);

    let bad = daemon.get("/v1/campaigns?state=asleep");
    assert_eq!(bad.status, 400, "{}", bad.text());
    assert_eq!(bad.json()["field"], "state");
}
