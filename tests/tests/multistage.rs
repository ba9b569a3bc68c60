//! Multi-stage programs end to end: an e-mail campaign whose undelivered
//! and address-less customers fall back to an SMS campaign, through a real
//! SMTP server (aiosmtpd, refusing some recipients with 550 5.1.1) and a
//! real SMSC (the npm `smpp` server), across a `kill -9`; and the next
//! stage built server-side from the first stage's audience.

#![allow(clippy::unwrap_used)]

use std::{collections::BTreeMap, time::Duration};

use serde_json::{Value, json};
use sluice_e2e::{Daemon, SmtpPeer, must_reach_end, npm_smsc::NpmSmsc, relay_config, wait_until};

const T: Duration = Duration::from_secs(60);

/// Customer `c{i}`'s number.
fn phone(i: usize) -> String {
    format!("+49151000{i:05}")
}

/// The daemon's configuration for `relay` and `smsc`.
fn relay_and_smsc(relay: &SmtpPeer, smsc: &NpmSmsc) -> String {
    format!(
        "{}\n[[sms.smsc]]\nhost = \"127.0.0.1\"\nport = {}\nsystem_id = \"sluice\"\n",
        relay_config(relay),
        smsc.port
    )
}

/// The count of one outcome on `GET /v1/campaigns/{id}`.
fn count(daemon: &Daemon, id: &str, outcome: &str) -> u64 {
    daemon.get(&format!("/v1/campaigns/{id}")).json()["counts"][outcome]
        .as_u64()
        .unwrap_or(0)
}

#[test]
fn refused_and_address_less_customers_get_one_sms_each_across_a_kill_9() {
    let end = must_reach_end();
    let dir = tempfile::tempdir().unwrap();
    let relay = SmtpPeer::start(&end, dir.path());
    let smsc = NpmSmsc::start(&end);
    let config = relay_and_smsc(&relay, &smsc);
    let mut daemon = Daemon::start(dir.path(), &config);
    // Slow enough that the kill lands in the middle of the e-mails.
    let limits = daemon.put_json(
        "/v1/channels/email/limits",
        &json!({"rate_per_sec": 20, "burst": 1, "tz": "UTC"}),
    );
    assert_eq!(limits.status, 200, "{}", limits.text());
    daemon.declare(
        "stage1-sms",
        &json!({"channel": "sms", "name": "short offer", "content": {"sms": {"from": "Telco", "text": "Hi {{name}}, go unlimited"}}}),
    );
    daemon.declare(
        "stage1-email",
        &json!({"channel": "email", "name": "rich offer",
                "content": {"email": {"from": "offers@telco.example", "subject": "Hi {{name}}", "text": "Go unlimited, {{name}}"}},
                "fallback": {"campaign": "stage1-sms", "on": ["bounced_hard", "failed", "no_address"], "address_field": "phone"}}),
    );
    // c0..c29 reachable, c30..c35 refused (550 5.1.1), c36..c39 without e-mail.
    let rows: Vec<Value> = (0..40)
        .map(|i| {
            let address = match i {
                0..30 => format!("c{i}@example.org"),
                30..36 => format!("reject-c{i}@example.org"),
                _ => String::new(),
            };
            json!({"customer": format!("c{i}"), "address": address, "fields": {"name": format!("N{i}"), "phone": phone(i)}})
        })
        .collect();
    let mut no_fallback_field = rows[0].clone();
    no_fallback_field["customer"] = json!("c99");
    no_fallback_field["address"] = json!("");
    no_fallback_field["fields"] = json!({"name": "nobody"});
    let mut upload = rows.clone();
    upload.push(no_fallback_field);
    let answer = daemon.upload("stage1-email", &upload);
    assert_eq!(answer["accepted"], 40, "{answer}");
    assert_eq!(answer["rejected"][0]["line"], 41, "{answer}");
    assert_eq!(
        answer["rejected"][0]["error"],
        "no address, and no fallback address: field `phone` is missing or empty"
    );
    assert_eq!(
        count(&daemon, "stage1-sms", "pending"),
        4,
        "the address-less wait in the SMS campaign"
    );

    daemon.start_campaign("stage1-email");
    wait_until("some e-mails sent", T, || relay.received().len() >= 10);
    daemon.kill9();
    daemon.restart();
    daemon.wait_for_campaign("stage1-email", T, |v| v["state"] == "finished");
    assert!(
        smsc.submits().is_empty(),
        "the SMS campaign is not started yet"
    );

    daemon.start_campaign("stage1-sms");
    let expected: Vec<String> = (30..40)
        .map(|i| phone(i).trim_start_matches('+').to_owned())
        .collect();
    smsc.wait_for_submits(expected.len(), T);
    daemon.wait_for_campaign("stage1-sms", T, |v| v["state"] == "finished");
    std::thread::sleep(Duration::from_millis(500));
    let mut per_number: BTreeMap<String, usize> = BTreeMap::new();
    for s in smsc.submits() {
        *per_number.entry(s.destination_addr).or_default() += 1;
    }
    assert_eq!(
        per_number,
        expected.iter().map(|n| (n.clone(), 1)).collect(),
        "exactly the refused and the address-less, each once"
    );
    assert_eq!(count(&daemon, "stage1-email", "fallback"), 10);
    assert_eq!(count(&daemon, "stage1-email", "bounced_hard"), 6);
    let fallback_facts: Vec<Value> = daemon
        .all_events()
        .into_iter()
        .filter(|e| e["type"] == "fallback")
        .collect();
    assert_eq!(fallback_facts.len(), 10, "{fallback_facts:?}");
    assert!(
        fallback_facts
            .iter()
            .all(|f| f["campaign"] == "stage1-email" && f["to"] == "stage1-sms")
    );

    // The next stage, server-side: everyone the e-mail reached gets an SMS too.
    daemon.declare(
        "stage2-sms",
        &json!({"channel": "sms", "name": "thanks", "content": {"sms": {"from": "Telco", "text": "Thanks {{name}}"}}}),
    );
    let from = daemon.post(
        "/v1/campaigns/stage2-sms/participants/from",
        "application/json",
        json!({"campaign": "stage1-email", "outcome": "delivered", "address_field": "phone"})
            .to_string()
            .as_bytes(),
    );
    assert_eq!(from.status, 200, "{}", from.text());
    assert_eq!(from.json()["accepted"], 30, "{}", from.text());
    let again = daemon.post(
        "/v1/campaigns/stage2-sms/participants/from",
        "application/json",
        br#"{"campaign": "stage1-email", "outcome": "delivered", "address_field": "phone"}"#,
    );
    assert_eq!(again.json()["duplicates"], 30, "idempotent per customer");

    // A finished campaign takes no more participants: it would send again.
    let late = daemon.post(
        "/v1/campaigns/stage1-email/participants",
        "application/x-ndjson",
        br#"{"customer":"late","address":"late@example.org"}"#,
    );
    assert_eq!(late.status, 409, "{}", late.text());
    assert!(
        late.json()["detail"]
            .as_str()
            .unwrap()
            .starts_with("campaign `stage1-email` is finished: it takes no more participants"),
        "{}",
        late.text()
    );
    end.reached();
}

#[test]
fn a_finished_fallback_campaign_runs_again_for_later_fallbacks() {
    let end = must_reach_end();
    let dir = tempfile::tempdir().unwrap();
    let relay = SmtpPeer::start(&end, dir.path());
    let smsc = NpmSmsc::start(&end);
    let config = relay_and_smsc(&relay, &smsc);
    let daemon = Daemon::start(dir.path(), &config);
    daemon.declare(
        "sms",
        &json!({"channel": "sms", "name": "s", "content": {"sms": {"from": "Telco", "text": "Hi"}}}),
    );
    daemon.declare(
        "mail",
        &json!({"channel": "email", "name": "m",
                "content": {"email": {"from": "offers@telco.example", "subject": "Hi", "text": "Hi"}},
                "fallback": {"campaign": "sms"}}),
    );
    let rows: Vec<Value> = (0..4)
        .map(|i| {
            let address = if i < 2 {
                String::new()
            } else {
                format!("reject-c{i}@example.org")
            };
            json!({"customer": format!("c{i}"), "address": address, "fields": {"phone": phone(i)}})
        })
        .collect();
    assert_eq!(daemon.upload("mail", &rows)["accepted"], 4);
    daemon.start_campaign("sms");
    smsc.wait_for_submits(2, T);
    daemon.wait_for_campaign("sms", T, |v| v["state"] == "finished");

    daemon.start_campaign("mail");
    smsc.wait_for_submits(4, T);
    daemon.wait_for_campaign("sms", T, |v| {
        v["state"] == "finished" && v["participants"] == 4
    });
    let mut numbers: Vec<String> = smsc
        .submits()
        .into_iter()
        .map(|s| s.destination_addr)
        .collect();
    numbers.sort();
    let expected: Vec<String> = (0..4)
        .map(|i| phone(i).trim_start_matches('+').to_owned())
        .collect();
    assert_eq!(numbers, expected);
    end.reached();
}

#[test]
fn a_fallback_to_what_is_not_an_sms_campaign_is_refused_naming_the_field() {
    let dir = tempfile::tempdir().unwrap();
    let daemon = Daemon::start(dir.path(), "");
    let declare = |id: &str, fallback: Value| {
        daemon.put_json(
            &format!("/v1/campaigns/{id}"),
            &json!({"channel": "email", "name": "x", "fallback": fallback}),
        )
    };
    let missing = declare("a", json!({"campaign": "nowhere"}));
    assert_eq!(missing.status, 422, "{}", missing.text());
    assert_eq!(
        missing.json()["problems"],
        json!(["fallback.campaign: no campaign `nowhere` (declare it first)"])
    );
    assert_eq!(declare("b", json!({"campaign": "c"})).status, 422);
    let bad_trigger = declare("b", json!({"campaign": "a", "on": ["clicked"]}));
    assert_eq!(bad_trigger.status, 422, "{}", bad_trigger.text());
}
