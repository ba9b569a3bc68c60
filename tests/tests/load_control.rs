//! Load control end to end: a channel limited to R msgs/s delivers at R
//! (and a running campaign's progress shows that pace and an ETA), an
//! exclusion day sends nothing, a second campaign to the same customers is
//! suppressed by the quota (also after a restart), a full cap stays full
//! after a crash, blacklisted customers get nothing, and bad limits get
//! every problem listed.

#![allow(clippy::unwrap_used)]

use std::time::Duration;

use serde_json::json;
use sluice_e2e::{DAY, Daemon, HOUR, SmtpPeer, clear_of_boundary, must_reach_end, relay_config};

fn set_limits(daemon: &Daemon, limits: serde_json::Value) {
    let r = daemon.put_json("/v1/channels/email/limits", &limits);
    assert_eq!(r.status, 200, "{}", r.text());
}

fn finished(v: &serde_json::Value) -> bool {
    v["state"] == "finished"
}

fn facts(daemon: &Daemon, campaign: &str, kind: &str) -> Vec<serde_json::Value> {
    daemon
        .all_events()
        .into_iter()
        .filter(|e| e["campaign"] == campaign && e["type"] == kind)
        .collect()
}

#[test]
fn a_rate_limited_channel_sends_at_its_rate() {
    let end = must_reach_end();
    let dir = tempfile::tempdir().unwrap();
    let peer = SmtpPeer::start(&end, dir.path());
    let daemon = Daemon::start(dir.path(), &relay_config(&peer));
    set_limits(
        &daemon,
        json!({"rate_per_sec": 20, "burst": 2, "tz": "UTC"}),
    );
    daemon.email_campaign("rate", None, 101);
    daemon.start_campaign("rate");
    daemon.wait_for_campaign("rate", Duration::from_secs(60), finished);
    let mut at: Vec<jiff::Timestamp> = facts(&daemon, "rate", "submitted")
        .iter()
        .map(|e| e["at"].as_str().unwrap().parse().unwrap())
        .collect();
    at.sort();
    assert_eq!(at.len(), 101);
    // Burst 2 lets the first two go together; after that one every 50 ms.
    let span = (at[100] - at[1]).total(jiff::Unit::Millisecond).unwrap() / 1000.0;
    let rate = 99.0 / span;
    eprintln!("rate over the run: {rate:.2} msgs/s (limit 20)");
    assert!((rate - 20.0).abs() <= 0.4, "rate {rate:.2} is not 20 ±2%");
    assert_eq!(peer.received().len(), 101);
    end.reached();
}

#[test]
fn a_running_campaign_shows_its_pace_and_when_it_will_be_done() {
    let end = must_reach_end();
    let dir = tempfile::tempdir().unwrap();
    let peer = SmtpPeer::start(&end, dir.path());
    let daemon = Daemon::start(dir.path(), &relay_config(&peer));
    set_limits(
        &daemon,
        json!({"rate_per_sec": 20, "burst": 1, "tz": "UTC"}),
    );
    daemon.email_campaign("paced", None, 160);
    let declared = daemon.get("/v1/campaigns/paced").json();
    assert_eq!(
        declared["progress"],
        json!({"done": 0, "pending": 160}),
        "no pace before it runs"
    );
    daemon.start_campaign("paced");
    std::thread::sleep(Duration::from_secs(1));
    let first = daemon.get("/v1/campaigns/paced").json();
    std::thread::sleep(Duration::from_secs(3));
    let asked_at = jiff::Timestamp::now();
    let later = daemon.get("/v1/campaigns/paced").json();
    let progress = &later["progress"];
    let pending = progress["pending"].as_u64().unwrap();
    assert!(pending > 0 && pending < 160, "{later}");
    assert_eq!(progress["done"].as_u64().unwrap() + pending, 160, "{later}");
    let rate = progress["rate_per_sec"].as_f64().unwrap();
    // Sent at 20/s; the pace is measured over a few seconds of it.
    assert!(
        (10.0..=30.0).contains(&rate),
        "pace {rate} for 20/s: {first} then {later}"
    );
    let eta: jiff::Timestamp = progress["eta"].as_str().unwrap().parse().unwrap();
    let left = (eta - asked_at).total(jiff::Unit::Second).unwrap();
    let expected = pending as f64 / 20.0;
    assert!(
        (expected * 0.5..=expected * 2.0 + 1.0).contains(&left),
        "ETA in {left:.1} s for {pending} at 20/s ({expected:.1} s)"
    );
    let done = daemon.wait_for_campaign("paced", Duration::from_secs(60), finished);
    assert_eq!(
        done["progress"],
        json!({"done": 160, "pending": 0}),
        "no ETA once finished"
    );
    end.reached();
}

#[test]
fn nothing_is_sent_on_an_exclusion_day() {
    let end = must_reach_end();
    let dir = tempfile::tempdir().unwrap();
    let peer = SmtpPeer::start(&end, dir.path());
    let daemon = Daemon::start(dir.path(), &relay_config(&peer));
    // Today stays the exclusion day while the test looks.
    clear_of_boundary(DAY, Duration::from_secs(30));
    let today = jiff::Timestamp::now()
        .to_zoned(jiff::tz::TimeZone::UTC)
        .date()
        .to_string();
    set_limits(
        &daemon,
        json!({"rate_per_sec": 100, "tz": "UTC", "exclusion_days": [today]}),
    );
    daemon.email_campaign("x", None, 5);
    daemon.start_campaign("x");
    std::thread::sleep(Duration::from_millis(1500));
    assert!(peer.received().is_empty(), "sent on an exclusion day");
    let state = daemon.get("/v1/campaigns/x").json();
    assert_eq!(state["counts"]["pending"], 5, "{state}");
    let metrics = daemon.get("/metrics").text();
    assert!(
        metrics
            .contains("sluice_messages_deferred_total{channel=\"email\",reason=\"exclusion_day\"}"),
        "{metrics}"
    );
    end.reached();
}

#[test]
fn a_full_cap_stays_full_after_a_crash() {
    let end = must_reach_end();
    let dir = tempfile::tempdir().unwrap();
    let peer = SmtpPeer::start(&end, dir.path());
    let mut daemon = Daemon::start(dir.path(), &relay_config(&peer));
    // One day's cap: a new day would rightly send the other three.
    clear_of_boundary(DAY, Duration::from_secs(30));
    set_limits(
        &daemon,
        json!({"rate_per_sec": 1000, "tz": "UTC", "caps": [{"max": 3}]}),
    );
    daemon.email_campaign("capped", None, 6);
    daemon.start_campaign("capped");
    let deadline = std::time::Instant::now() + Duration::from_secs(30);
    while facts(&daemon, "capped", "submitted").len() < 3 {
        assert!(std::time::Instant::now() < deadline, "3 never went");
        std::thread::sleep(Duration::from_millis(50));
    }
    // Past a checkpoint of the counters (every second), then a crash.
    std::thread::sleep(Duration::from_millis(1500));
    daemon.kill9();
    daemon.restart();
    std::thread::sleep(Duration::from_secs(2));
    assert_eq!(
        peer.received().len(),
        3,
        "the cap was counted from zero again"
    );
    let state = daemon.get("/v1/campaigns/capped").json();
    assert_eq!(state["counts"]["pending"], 3, "{state}");
    end.reached();
}

#[test]
fn quotas_suppress_a_second_campaign_and_survive_a_restart() {
    let end = must_reach_end();
    let dir = tempfile::tempdir().unwrap();
    let peer = SmtpPeer::start(&end, dir.path());
    let mut daemon = Daemon::start(dir.path(), &relay_config(&peer));
    set_limits(
        &daemon,
        json!({"rate_per_sec": 1000, "tz": "UTC", "quotas": {"*": {"max": 1, "per": "P1D"}}}),
    );
    daemon.email_campaign("first", None, 5);
    daemon.start_campaign("first");
    daemon.wait_for_campaign("first", Duration::from_secs(30), finished);
    assert_eq!(peer.received().len(), 5);

    daemon.email_campaign("second", None, 5);
    daemon.start_campaign("second");
    let state = daemon.wait_for_campaign("second", Duration::from_secs(30), finished);
    assert_eq!(state["counts"]["suppressed"], 5, "{state}");
    assert!(
        facts(&daemon, "second", "suppressed")
            .iter()
            .all(|e| e["why"] == "quota_exceeded")
    );

    daemon.kill9();
    daemon.restart();
    daemon.email_campaign("third", None, 5);
    daemon.start_campaign("third");
    let state = daemon.wait_for_campaign("third", Duration::from_secs(30), finished);
    assert_eq!(
        state["counts"]["suppressed"], 5,
        "quota state survives a restart: {state}"
    );
    assert_eq!(peer.received().len(), 5, "nobody got a second message");
    let limits = daemon.get("/v1/channels/email/limits");
    assert_eq!(
        limits.json()["quotas"]["*"]["max"],
        1,
        "limits survive a restart"
    );
    end.reached();
}

#[test]
fn blacklisted_customers_and_addresses_receive_nothing() {
    let end = must_reach_end();
    let dir = tempfile::tempdir().unwrap();
    let peer = SmtpPeer::start(&end, dir.path());
    let daemon = Daemon::start(dir.path(), &relay_config(&peer));
    let r = sluice_e2e::request(
        "PUT",
        &daemon.api,
        "/v1/blacklist/email",
        &[("content-type", "application/json")],
        br#"["c1", "U2@example.org"]"#,
    );
    assert_eq!(r.json()["added"], 2, "{}", r.text());
    assert_eq!(
        daemon.get("/v1/blacklist/email/c1").json()["why"],
        "blacklisted"
    );
    daemon.email_campaign("b", None, 4);
    daemon.start_campaign("b");
    daemon.wait_for_campaign("b", Duration::from_secs(30), finished);
    let mut got: Vec<String> = peer
        .received()
        .iter()
        .map(|m| m.rcpt_tos[0].clone())
        .collect();
    got.sort();
    assert_eq!(got, vec!["u0@example.org", "u3@example.org"]);
    let suppressed = facts(&daemon, "b", "suppressed");
    assert_eq!(suppressed.len(), 2);
    assert!(suppressed.iter().all(|e| e["why"] == "blacklisted"));
    let removed = daemon.delete("/v1/blacklist/email/c1");
    assert_eq!(removed.status, 204);
    assert_eq!(daemon.get("/v1/blacklist/email/c1").status, 404);
    end.reached();
}

#[test]
fn bad_limits_get_every_problem() {
    let dir = tempfile::tempdir().unwrap();
    let daemon = Daemon::start(dir.path(), "");
    let bad = json!({"rate_per_sec": 0, "tz": "Mars/Olympus", "caps": [{"hours": "18:00-09:00", "max": 10}],
        "quotas": {"*": {"max": 1, "per": "P0D"}}});
    let r = daemon.put_json("/v1/channels/email/limits", &bad);
    assert_eq!(r.status, 422, "{}", r.text());
    let problems = r.json()["problems"].as_array().unwrap().len();
    assert!(problems >= 4, "{}", r.text());
    assert_eq!(
        daemon
            .put_json(
                "/v1/channels/email/limits",
                &json!({"rate_per_sec": 1, "tz": "UTC", "colour": 1})
            )
            .status,
        422
    );
    assert_eq!(
        daemon
            .put_json("/v1/channels/fax/limits", &json!({}))
            .status,
        404
    );
    // An array of the fields in order is no object: refused, not read
    // positionally (nor the caps or quotas in it).
    for body in [
        json!([50, null, "UTC"]),
        json!({"rate_per_sec": 1, "tz": "UTC", "caps": [["09:00-17:00", 10]]}),
    ] {
        let r = daemon.put_json("/v1/channels/email/limits", &body);
        assert_eq!(r.status, 422, "{body}: {}", r.text());
        assert!(r.text().contains("expected a JSON object"), "{}", r.text());
    }
}

/// Declares an e-mail campaign with a priority and uploads `n` customers.
fn prioritised_campaign(daemon: &Daemon, id: &str, priority: u8, n: usize) {
    let decl = json!({"channel": "email", "name": id, "priority": priority, "expected_participants": n,
        "content": {"email": {"from": "o@telco.test", "subject": "Hi", "text": "Offer for {{customer}}"}}});
    daemon.declare(id, &decl);
    let rows: Vec<_> = (0..n)
        .map(|i| json!({"customer": format!("{id}{i}"), "address": format!("{id}{i}@example.org")}))
        .collect();
    let r = daemon.upload(id, &rows);
    assert_eq!(r["accepted"], n, "{r}");
}

#[test]
fn the_dispatcher_follows_the_stored_plan() {
    let end = must_reach_end();
    let dir = tempfile::tempdir().unwrap();
    let peer = SmtpPeer::start(&end, dir.path());
    let daemon = Daemon::start(dir.path(), &relay_config(&peer));
    // Five messages a day: the plan gives today's five to the urgent
    // campaign, all in this hour; clear of the hour's end (which is clear
    // of the day's), or they would wait for the plan's end.
    clear_of_boundary(HOUR, Duration::from_secs(60));
    set_limits(
        &daemon,
        json!({"rate_per_sec": 10, "tz": "UTC", "caps": [{"hours": "00:00-24:00", "max": 5}]}),
    );
    prioritised_campaign(&daemon, "urgent", 9, 5);
    prioritised_campaign(&daemon, "later", 0, 3);
    let r = daemon.post("/v1/channels/email/plan", "application/json", b"{}");
    assert_eq!(r.status, 200, "{}", r.text());
    let plan = r.json();
    let today: u64 = plan["hours"]
        .as_array()
        .unwrap()
        .iter()
        .take_while(|h| {
            h["hour"].as_str().unwrap()[..10] == plan["hours"][0]["hour"].as_str().unwrap()[..10]
        })
        .map(|h| h["allocated"]["later"].as_u64().unwrap_or(0))
        .sum();
    assert_eq!(
        today, 0,
        "the plan leaves nothing for `later` today: {plan}"
    );

    // The cap alone would let `later` send today; the plan holds it back.
    daemon.start_campaign("later");
    std::thread::sleep(Duration::from_secs(2));
    assert_eq!(peer.received().len(), 0, "`later` sent against the plan");
    let deferred = daemon
        .get("/metrics")
        .text()
        .lines()
        .find(|l| {
            l.starts_with("sluice_messages_deferred_total")
                && l.contains("reason=\"plan\"")
                && l.contains("channel=\"email\"")
        })
        .and_then(|l| l.rsplit(' ').next()?.parse::<f64>().ok())
        .unwrap_or(0.0);
    assert!(deferred >= 3.0, "deferred by the plan: {deferred}");

    // The campaign the plan gives today's hours to goes out.
    daemon.start_campaign("urgent");
    daemon.wait_for_campaign("urgent", Duration::from_secs(30), finished);
    assert_eq!(facts(&daemon, "urgent", "submitted").len(), 5);
    assert_eq!(facts(&daemon, "later", "submitted").len(), 0);
    end.reached();
}
