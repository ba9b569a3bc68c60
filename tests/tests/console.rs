//! The web console in a real headless browser: Debian's Chromium, driven by
//! `playwright-core` (`tests/peers/console/check.mjs`), against the real
//! daemon with tokens set. Every view loads with no console error, no page
//! error and no failed request, and shows the figures the API gives; the
//! plan chart has its scale, time ticks in the channel's zone, a legend,
//! tooltips and visible bars at a day and at 90 days; an API error shows
//! in the page, and a page without a token asks for one.

#![allow(clippy::unwrap_used)]

use std::time::{Duration, Instant};

use serde_json::{Value, json};
use sluice_e2e::{Daemon, Response, SmtpPeer, must_reach_end, peers, request};

const ADMIN: &str = "console-admin-token";

fn call(daemon: &Daemon, method: &str, path: &str, body: Option<&Value>) -> Response {
    let auth = format!("Bearer {ADMIN}");
    let body = body.map(Value::to_string).unwrap_or_default();
    request(
        method,
        &daemon.api,
        path,
        &[
            ("authorization", &auth),
            ("content-type", "application/json"),
        ],
        body.as_bytes(),
    )
}

fn ok(daemon: &Daemon, method: &str, path: &str, body: Option<&Value>) -> Value {
    let r = call(daemon, method, path, body);
    assert!(r.status < 300, "{method} {path}: {} {}", r.status, r.text());
    if r.text().is_empty() {
        Value::Null
    } else {
        r.json()
    }
}

/// The start of the hour `h` hours from now, RFC 3339.
fn hour(h: i64) -> String {
    let now = jiff::Timestamp::now();
    let top = jiff::Timestamp::from_second(now.as_second() - now.as_second() % 3600).unwrap();
    (top + jiff::SignedDuration::from_hours(h)).to_string()
}

fn declare(daemon: &Daemon, id: &str, participants: &[&str], expected: u64) {
    let decl = json!({"channel": "email", "name": id, "expected_participants": expected,
        "window": {"start": hour(1), "end": hour(30), "tz": "Europe/Berlin", "hours": ["00:00-24:00"]},
        "content": {"email": {"from": "o@telco.test", "subject": "Hi", "text": "Offer for {{customer}}"}}});
    ok(daemon, "PUT", &format!("/v1/campaigns/{id}"), Some(&decl));
    if !participants.is_empty() {
        let rows: Vec<Value> = participants
            .iter()
            .map(|c| json!({"customer": c, "address": format!("{c}@example.org")}))
            .collect();
        let path = format!("/v1/campaigns/{id}/participants");
        ok(daemon, "POST", &path, Some(&json!(rows)));
    }
}

/// The cells of `rows` (the check's output) keyed by their row key.
fn cells(rows: &Value) -> Vec<(&str, Vec<&str>)> {
    rows.as_array()
        .unwrap()
        .iter()
        .map(|r| {
            let cells = r["cells"].as_array().unwrap();
            (
                r["key"].as_str().unwrap_or_default(),
                cells.iter().map(|c| c.as_str().unwrap()).collect(),
            )
        })
        .collect()
}

#[test]
fn the_console_shows_what_the_api_says_in_a_real_browser() {
    let end = must_reach_end();
    let dir = tempfile::tempdir().unwrap();
    let relay = SmtpPeer::start(&end, dir.path());
    let daemon = Daemon::start_with_env(
        dir.path(),
        &format!(
            "[[email.relays]]\nname = \"main\"\nhost = \"127.0.0.1\"\nport = {}\n",
            relay.port
        ),
        &[("SLUICE_API_TOKENS", &format!("admin:{ADMIN}"))],
    );
    let limits = json!({"rate_per_sec": 2, "tz": "Europe/Berlin"});
    ok(&daemon, "PUT", "/v1/channels/email/limits", Some(&limits));

    // A campaign sent, one planned, one cancelled.
    let sent = json!({"channel": "email", "name": "sent",
        "content": {"email": {"from": "o@telco.test", "subject": "Hi", "text": "Offer"}}});
    ok(&daemon, "PUT", "/v1/campaigns/sent", Some(&sent));
    let rows = json!([{"customer": "ann", "address": "ann@example.org"},
        {"customer": "bob", "address": "bob@example.org"}]);
    ok(
        &daemon,
        "POST",
        "/v1/campaigns/sent/participants",
        Some(&rows),
    );
    ok(&daemon, "POST", "/v1/campaigns/sent/start", None);
    let started = Instant::now();
    while ok(&daemon, "GET", "/v1/campaigns/sent", None)["state"] != "finished" {
        assert!(started.elapsed() < Duration::from_secs(60), "not sent");
        std::thread::sleep(Duration::from_millis(100));
    }
    declare(&daemon, "planned", &[], 20_000);
    declare(&daemon, "stopped", &["cat"], 1);
    ok(&daemon, "POST", "/v1/campaigns/stopped/cancel", None);
    let entries = json!(["kim@example.org", "kimberly@example.org", "zoe@example.org"]);
    ok(&daemon, "PUT", "/v1/blacklist/email", Some(&entries));
    ok(&daemon, "POST", "/v1/channels/email/plan", None);
    let refused = call(&daemon, "POST", "/v1/campaigns/stopped/start", None);
    assert_eq!(refused.status, 409, "{}", refused.text());
    let refusal = refused.json()["detail"].as_str().unwrap().to_owned();

    let base = format!("http://{}", daemon.api);
    let out = peers::node_with_playwright(&end)
        .args([&base, ADMIN, "sent", "stopped", "kim"])
        .output()
        .unwrap();
    assert!(
        out.status.success(),
        "{}",
        String::from_utf8_lossy(&out.stderr)
    );
    let seen: Value = serde_json::from_slice(&out.stdout)
        .unwrap_or_else(|e| panic!("{e}: {}", String::from_utf8_lossy(&out.stdout)));

    // No error anywhere, but the refusals the last two views provoke.
    for (phase, problems) in seen["problems"].as_object().unwrap() {
        let expected = match phase.as_str() {
            "bad action" => "409",
            "no token" => "401",
            _ => panic!("{phase}: {problems}"),
        };
        for p in problems.as_array().unwrap() {
            let p = p.as_str().unwrap();
            assert!(
                p.starts_with("console: Failed to load resource") && p.contains(expected),
                "{phase}: {p}"
            );
        }
    }
    assert!(
        seen["url_after_token"]
            .as_str()
            .unwrap()
            .ends_with("/console#/campaigns"),
        "the token leaves the address bar: {}",
        seen["url_after_token"]
    );

    // The campaigns, as listed by the API, newest first, with their figures.
    let listed = ok(&daemon, "GET", "/v1/campaigns?limit=100", None);
    let shown = cells(&seen["campaigns"]);
    let api_rows: Vec<(&str, Vec<String>)> = listed["campaigns"]
        .as_array()
        .unwrap()
        .iter()
        .map(|c| {
            let p = &c["progress"];
            (
                c["id"].as_str().unwrap(),
                vec![
                    c["channel"].as_str().unwrap().to_owned(),
                    c["state"].as_str().unwrap().to_owned(),
                    c["participants"].to_string(),
                    p["done"].to_string(),
                    p["pending"].to_string(),
                ],
            )
        })
        .collect();
    assert_eq!(shown.len(), api_rows.len(), "{shown:?}");
    for ((key, cells), (id, figures)) in shown.iter().zip(&api_rows) {
        assert_eq!(key, id);
        assert_eq!(cells[0], *id);
        assert_eq!(&cells[1..6], figures.as_slice(), "{id}");
    }

    // One campaign's counts per outcome.
    let view = ok(&daemon, "GET", "/v1/campaigns/sent", None);
    let counts = cells(&seen["counts"]);
    let api_counts = view["counts"].as_object().unwrap();
    assert_eq!(counts.len(), api_counts.len());
    for (outcome, cells) in &counts {
        assert_eq!(cells[1], api_counts[*outcome].to_string(), "{outcome}");
    }
    assert!(
        cells(&seen["campaign"]).contains(&("state", vec!["state", "finished"])),
        "{}",
        seen["campaign"]
    );

    // Connector health as the API gives it, and the current rate.
    let channels = ok(&daemon, "GET", "/v1/channels", None);
    let relay_state = channels["channels"]
        .as_array()
        .unwrap()
        .iter()
        .find(|c| c["channel"] == "email")
        .unwrap()["connectors"][0]["state"]
        .as_str()
        .unwrap()
        .to_owned();
    let main = cells(&seen["connectors"])
        .into_iter()
        .find(|(key, _)| *key == "email/main")
        .unwrap_or_else(|| panic!("{}", seen["connectors"]));
    assert_eq!(main.1[3], relay_state);
    assert!(
        seen["rates"]
            .as_array()
            .unwrap()
            .iter()
            .any(|r| r["channel"] == "email"
                && r["text"].as_str().unwrap().starts_with("current rate")),
        "{}",
        seen["rates"]
    );

    // The plan chart at a day and at 90 days.
    for (days, unit) in [("1", "messages/hour"), ("90", "messages/day")] {
        let plan = &seen[format!("plan_{days}")];
        let ticks: Vec<f64> = plan["y_ticks"]
            .as_array()
            .unwrap()
            .iter()
            .map(|t| t.as_str().unwrap().replace(',', "").parse().unwrap())
            .collect();
        assert!(
            ticks.len() >= 2 && ticks.windows(2).all(|w| w[0] < w[1]),
            "a scale: {plan}"
        );
        assert_eq!(plan["y_unit"], unit, "{plan}");
        assert!(
            plan["x_ticks"].as_array().unwrap().len() >= 2,
            "time ticks: {plan}"
        );
        assert_eq!(plan["time_zone"], "times in Europe/Berlin");
        assert!(
            plan["legend"]
                .as_array()
                .unwrap()
                .iter()
                .any(|l| l.as_str().unwrap().starts_with("planned: ")),
            "{plan}"
        );
        assert_eq!(plan["capacity"], true);
        let bars = plan["bars"].as_array().unwrap();
        assert!(!bars.is_empty(), "bars at {days} days: {plan}");
        for bar in bars {
            assert!(
                bar["width"].as_f64().unwrap() >= 1.0 && bar["height"].as_f64().unwrap() >= 1.0,
                "visible: {bar}"
            );
            let title = bar["title"].as_str().unwrap();
            assert!(
                title.starts_with("planned: ") && title.ends_with("(Europe/Berlin)"),
                "{title}"
            );
        }
    }

    // Blacklist search: what the API finds.
    let found = ok(&daemon, "GET", "/v1/blacklist/email?q=kim", None);
    let api_entries: Vec<&str> = found["entries"]
        .as_array()
        .unwrap()
        .iter()
        .map(|e| e["entry"].as_str().unwrap())
        .collect();
    let shown: Vec<&str> = cells(&seen["blacklist"]).iter().map(|r| r.0).collect();
    assert_eq!(shown, api_entries);
    assert_eq!(shown.len(), 2);

    // Errors show in the page.
    let error = seen["error_shown"].as_str().unwrap();
    assert!(error.starts_with("409 "), "{error}");
    assert!(error.contains(&refusal), "{error} / {refusal}");
    let without = &seen["without_token"];
    assert!(
        without["error"].as_str().unwrap().starts_with("401 "),
        "{without}"
    );
    assert_eq!(without["login_shown"], true);
    end.reached();
}
