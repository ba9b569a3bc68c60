//! `POST /v1/campaigns/{id}/preview`: one participant's message as the
//! campaign would send it (links untracked), or why it could not be sent.

#![allow(clippy::unwrap_used)]

use serde_json::{Value, json};
use sluice_e2e::Daemon;

fn preview(daemon: &Daemon, id: &str, participant: &Value) -> (u16, Value) {
    let r = daemon.post(
        &format!("/v1/campaigns/{id}/preview"),
        "application/json",
        participant.to_string().as_bytes(),
    );
    (r.status, r.json())
}

#[test]
fn an_email_preview_is_personalised_with_its_links_untracked() {
    let dir = tempfile::tempdir().unwrap();
    let daemon = Daemon::start(dir.path(), "");
    daemon.declare(
        "news",
        &json!({"channel": "email", "name": "news", "content": {"email": {
            "from": "Shop <news@shop.example>",
            "subject": "Hello {{name}}",
            "text": "Hi {{name}}, see https://shop.example/p/{{sku}} ({{untracked:https://shop.example/legal}})",
            "html": "<p>Hi {{name}}, <a href=\"https://shop.example/p/{{sku}}\">see</a></p>"
        }}}),
    );
    let ann = json!({"customer": "c1", "address": "ann@example.org",
        "fields": {"name": "Ann & Bob", "sku": "X 1"}});
    let (status, shown) = preview(&daemon, "news", &ann);
    assert_eq!(status, 200, "{shown}");
    assert_eq!(shown["channel"], "email");
    assert_eq!(shown["from"], "Shop <news@shop.example>");
    assert_eq!(shown["to"], "ann@example.org");
    assert_eq!(shown["subject"], "Hello Ann & Bob");
    let text = shown["text"].as_str().unwrap();
    assert!(
        text.starts_with("Hi Ann & Bob, see https://shop.example/p/X"),
        "{text}"
    );
    assert!(
        text.ends_with("(https://shop.example/legal)"),
        "the marker is gone: {text}"
    );
    let html = shown["html"].as_str().unwrap();
    assert!(
        html.contains("Hi Ann &amp; Bob"),
        "escaped for HTML: {html}"
    );
    assert!(
        !html.contains("/c/") && !text.contains("/c/"),
        "nothing tracked: {shown}"
    );
    assert_eq!(shown.get("parts"), None);

    let (status, refused) = preview(
        &daemon,
        "news",
        &json!({"customer": "c2", "address": "bob@example.org", "fields": {"name": "Bob"}}),
    );
    assert_eq!(status, 422, "{refused}");
    assert!(
        refused.to_string().contains("sku"),
        "names the missing field: {refused}"
    );
    let (status, refused) = preview(
        &daemon,
        "news",
        &json!({"customer": "c3", "address": "not an address", "fields": {"name": "C", "sku": "1"}}),
    );
    assert_eq!(status, 422, "{refused}");
    let (status, _) = preview(&daemon, "nobody", &ann);
    assert_eq!(status, 404);
    assert_eq!(
        daemon.get("/v1/campaigns/news").json()["participants"],
        0,
        "a preview adds no participant"
    );
}

#[test]
fn an_sms_preview_says_its_encoding_and_parts_per_participant() {
    let dir = tempfile::tempdir().unwrap();
    let daemon = Daemon::start(dir.path(), "");
    daemon.declare(
        "promo",
        &json!({"channel": "sms", "name": "promo", "content": {"sms": {
            "from": "Shop",
            "text": "Hi {{name}}, 20% off today: https://shop.example/sale",
            "track_links": true
        }}}),
    );
    let (status, ann) = preview(
        &daemon,
        "promo",
        &json!({"customer": "c1", "address": "+4915100000001", "fields": {"name": "Ann"}}),
    );
    assert_eq!(status, 200, "{ann}");
    assert_eq!(
        (&ann["channel"], &ann["from"], &ann["to"]),
        (&json!("sms"), &json!("Shop"), &json!("+4915100000001"))
    );
    assert_eq!(
        ann["text"],
        "Hi Ann, 20% off today: https://shop.example/sale"
    );
    assert_eq!(
        (&ann["encoding"], &ann["parts"]),
        (&json!("gsm7"), &json!(1))
    );
    let long_name = "Zoë".repeat(30);
    let (status, zoe) = preview(
        &daemon,
        "promo",
        &json!({"customer": "c2", "address": "+4915100000002", "fields": {"name": long_name}}),
    );
    assert_eq!(status, 200, "{zoe}");
    assert_eq!(zoe["encoding"], "ucs2", "ë is not in GSM 03.38: {zoe}");
    assert_eq!(zoe["parts"], 3, "{zoe}");
    let (status, refused) = preview(
        &daemon,
        "promo",
        &json!({"customer": "c3", "address": "0151 000", "fields": {"name": "X"}}),
    );
    assert_eq!(status, 422, "{refused}");
}

#[test]
fn a_test_send_reaches_the_relay_and_leaves_the_campaign_untouched() {
    let end = sluice_e2e::must_reach_end();
    let dir = tempfile::tempdir().unwrap();
    let peer = sluice_e2e::SmtpPeer::start(&end, dir.path());
    let daemon = Daemon::start(dir.path(), &sluice_e2e::relay_config(&peer));
    daemon.declare(
        "news",
        &json!({"channel": "email", "name": "news", "content": {"email": {
            "from": "news@shop.example", "subject": "Hello {{name}}",
            "text": "Hi {{name}}: https://shop.example/sale"}}}),
    );
    let r = daemon.post(
        "/v1/campaigns/news/test",
        "application/json",
        json!({"customer": "qa", "address": "qa@example.org", "fields": {"name": "QA"}})
            .to_string()
            .as_bytes(),
    );
    assert_eq!(r.status, 200, "{}", r.text());
    let answer = r.json();
    assert_eq!(
        (&answer["outcome"], &answer["to"]),
        (&json!("accepted"), &json!("qa@example.org")),
        "{answer}"
    );
    assert!(
        answer["reply"].as_str().unwrap().starts_with("250"),
        "{answer}"
    );
    let received = peer.received();
    assert_eq!(received.len(), 1);
    assert_eq!(received[0].rcpt_tos, ["qa@example.org"]);
    assert!(
        received[0].mail_from.starts_with("test-send@"),
        "{}",
        received[0].mail_from
    );
    assert!(
        received[0].data.contains("Subject: Hello QA"),
        "{}",
        received[0].data
    );
    assert!(
        received[0].data.contains("https://shop.example/sale"),
        "links untracked: {}",
        received[0].data
    );
    let campaign = daemon.get("/v1/campaigns/news").json();
    assert_eq!(
        (&campaign["participants"], &campaign["state"]),
        (&json!(0), &json!("declared"))
    );
    assert_eq!(
        daemon.all_events(),
        Vec::<Value>::new(),
        "a test send writes no fact"
    );
    let (status, refused) = {
        let r = daemon.post(
            "/v1/campaigns/news/test",
            "application/json",
            br#"{"customer":"x","address":"x@example.org"}"#,
        );
        (r.status, r.json())
    };
    assert_eq!(status, 422, "a missing field: {refused}");
    let blocked = daemon.put_json("/v1/blacklist/email", &json!(["QA@example.org"]));
    assert_eq!(blocked.status, 200, "{}", blocked.text());
    let r = daemon.post(
        "/v1/campaigns/news/test",
        "application/json",
        json!({"customer": "qa", "address": "qa@example.org", "fields": {"name": "QA"}})
            .to_string()
            .as_bytes(),
    );
    assert_eq!(
        r.status,
        409,
        "a blacklisted address gets no test: {}",
        r.text()
    );
    assert_eq!(peer.received().len(), 1);
    end.reached();
}
