//! E-mail campaigns end to end: the real daemon against a real SMTP server
//! (Python aiosmtpd), asserting on what the server received and on the facts
//! the CRM reads back.

#![allow(clippy::unwrap_used)]

use std::time::Duration;

use serde_json::json;
use sluice_e2e::{Daemon, SmtpPeer, must_reach_end};

fn relay_config(peer: &SmtpPeer) -> String {
    format!(
        "[email]\nbounce_domain = \"bounces.test\"\nretry_base_secs = 1\nretry_max_secs = 1\nmax_attempts = 3\n\n\
         [[email.relays]]\nhost = \"127.0.0.1\"\nport = {}\ntls = \"starttls\"\nconnections = 4\n",
        peer.port
    )
}

fn declare(daemon: &Daemon, id: &str) {
    daemon.declare(
        id,
        &json!({
            "channel": "email",
            "name": "Unlimited plan",
            "expected_participants": 4,
            "content": { "email": {
                "from": "Telco Offers <offers@telco.test>",
                "subject": "{{name}}, go unlimited",
                "text": "Hello {{name}}, you used {{gb}} GB.",
                "html": "<p>Hello {{name}}, you used <b>{{gb}}</b> GB.</p>"
            }}
        }),
    );
}

fn finished(v: &serde_json::Value) -> bool {
    v["state"] == "finished"
}

#[test]
fn personalised_mail_reaches_the_relay_and_every_fact_comes_back() {
    let end = must_reach_end();
    let dir = tempfile::tempdir().unwrap();
    let peer = SmtpPeer::start(&end, dir.path());
    let daemon = Daemon::start(dir.path(), &relay_config(&peer));
    declare(&daemon, "stage1");

    let upload = [
        json!({"customer": "c1", "address": "ann@example.org", "fields": {"name": "Ann & <Bob>", "gb": 21}}),
        json!({"customer": "c2", "address": "carl@example.org", "segment": "gold", "fields": {"name": "Carl", "gb": 35.5}}),
        json!({"customer": "c3", "address": "not-an-address", "fields": {"name": "X", "gb": 1}}),
        json!({"customer": "c4", "address": "dora@example.org", "fields": {"name": "Dora"}}),
        json!({"customer": "c1", "address": "ann@example.org", "fields": {"name": "Ann & <Bob>", "gb": 21}}),
    ];
    let answer = daemon.upload("stage1", &upload);
    assert_eq!(answer["accepted"], 2);
    assert_eq!(answer["duplicates"], 1);
    let rejected = answer["rejected"].as_array().unwrap();
    assert_eq!(rejected.len(), 2);
    assert_eq!(rejected[0]["line"], 3);
    assert!(
        rejected[0]["error"]
            .as_str()
            .unwrap()
            .contains("not-an-address")
    );
    assert_eq!(rejected[1]["line"], 4);
    assert!(rejected[1]["error"].as_str().unwrap().contains("`gb`"));

    daemon.start_campaign("stage1");
    let state = daemon.wait_for_campaign("stage1", Duration::from_secs(60), finished);
    assert_eq!(state["counts"]["submitted"], 2, "{state}");

    let mut received = peer.received();
    received.sort_by(|a, b| a.rcpt_tos.cmp(&b.rcpt_tos));
    assert_eq!(received.len(), 2);
    let ann = &received[0];
    assert_eq!(ann.rcpt_tos, vec!["ann@example.org"]);
    assert!(
        ann.mail_from.starts_with("b+") && ann.mail_from.ends_with("@bounces.test"),
        "{}",
        ann.mail_from
    );
    assert_ne!(
        ann.mail_from, received[1].mail_from,
        "each message has its own Return-Path token"
    );
    assert!(
        ann.data.contains("Subject: Ann & <Bob>, go unlimited\r\n"),
        "{}",
        ann.data
    );
    assert!(
        ann.data
            .contains("From: \"Telco Offers\" <offers@telco.test>\r\n"),
        "{}",
        ann.data
    );
    assert!(
        ann.data.contains("To: <ann@example.org>\r\n"),
        "{}",
        ann.data
    );
    assert!(
        ann.data
            .contains(&format!("Message-ID: <{}>", ann.mail_from)),
        "{}",
        ann.data
    );
    assert!(
        ann.data.contains("Hello Ann & <Bob>, you used 21 GB."),
        "{}",
        ann.data
    );
    assert!(
        ann.data
            .contains("<p>Hello Ann &amp; &lt;Bob&gt;, you used <b>21</b> GB.</p>"),
        "{}",
        ann.data
    );
    let carl = &received[1];
    assert_eq!(carl.rcpt_tos, vec!["carl@example.org"]);
    assert!(
        carl.data.contains("Subject: Carl, go unlimited\r\n"),
        "{}",
        carl.data
    );
    assert!(carl.data.contains("you used 35.5 GB."), "{}", carl.data);

    let events = daemon.all_events();
    let kinds: Vec<(String, String)> = events
        .iter()
        .map(|e| {
            (
                e["customer"].as_str().unwrap().to_owned(),
                e["type"].as_str().unwrap().to_owned(),
            )
        })
        .collect();
    for customer in ["c1", "c2"] {
        assert!(
            kinds.contains(&(customer.into(), "accepted".into())),
            "{kinds:?}"
        );
        assert!(
            kinds.contains(&(customer.into(), "submitted".into())),
            "{kinds:?}"
        );
    }
    assert_eq!(events.len(), 4, "{events:#?}");
    let cursors: Vec<u64> = events
        .iter()
        .map(|e| e["cursor"].as_u64().unwrap())
        .collect();
    assert!(
        cursors.windows(2).all(|w| w[0] < w[1]),
        "cursors only grow: {cursors:?}"
    );
    assert!(events.iter().all(|e| e["campaign"] == "stage1"));

    let audience = daemon.get("/v1/campaigns/stage1/participants?outcome=delivered");
    assert_eq!(audience.status, 200);
    let mut rows: Vec<serde_json::Value> = audience
        .text()
        .lines()
        .map(|l| serde_json::from_str(l).unwrap())
        .collect();
    rows.sort_by_key(|r| r["customer"].as_str().unwrap().to_owned());
    assert_eq!(rows.len(), 2);
    assert_eq!(rows[0]["customer"], "c1");
    assert_eq!(rows[0]["address"], "ann@example.org");
    assert_eq!(rows[0]["outcome"], "delivered");
    assert!(
        daemon
            .get("/v1/campaigns/stage1/participants?outcome=failed")
            .text()
            .is_empty()
    );

    let later = daemon.get("/v1/events?after=4");
    assert_eq!(later.json()["events"].as_array().unwrap().len(), 0);
    end.reached();
}

#[test]
fn temporary_failures_are_retried_and_permanent_ones_fail() {
    let end = must_reach_end();
    let dir = tempfile::tempdir().unwrap();
    let peer = SmtpPeer::start(&end, dir.path());
    let daemon = Daemon::start(dir.path(), &relay_config(&peer));
    declare(&daemon, "retry");
    let body = [
        json!({"customer": "soon", "address": "tempfail-2-soon@example.org", "fields": {"name": "S", "gb": 1}}),
        json!({"customer": "never", "address": "full-never@example.org", "fields": {"name": "N", "gb": 1}}),
        json!({"customer": "gone", "address": "reject-gone@example.org", "fields": {"name": "G", "gb": 1}}),
    ];
    assert_eq!(daemon.upload("retry", &body)["accepted"], 3);
    daemon.start_campaign("retry");
    let state = daemon.wait_for_campaign("retry", Duration::from_secs(60), finished);
    assert_eq!(state["counts"]["submitted"], 1, "{state}");
    assert_eq!(state["counts"]["failed"], 1, "{state}");
    assert_eq!(state["counts"]["bounced_hard"], 1, "{state}");

    let received = peer.received();
    assert_eq!(received.len(), 1);
    assert_eq!(received[0].rcpt_tos, vec!["tempfail-2-soon@example.org"]);

    let events = daemon.all_events();
    let of = |customer: &str| -> Vec<serde_json::Value> {
        events
            .iter()
            .filter(|e| e["customer"] == customer)
            .cloned()
            .collect()
    };
    let soon: Vec<_> = of("soon")
        .iter()
        .map(|e| e["type"].as_str().unwrap().to_owned())
        .collect();
    assert_eq!(
        soon,
        vec![
            "accepted",
            "retry_scheduled",
            "retry_scheduled",
            "submitted"
        ]
    );
    assert!(
        of("soon")[1]["reason"]
            .as_str()
            .unwrap()
            .starts_with("451 4.3.0")
    );

    let never: Vec<_> = of("never")
        .iter()
        .map(|e| e["type"].as_str().unwrap().to_owned())
        .collect();
    assert_eq!(
        never,
        vec!["accepted", "retry_scheduled", "retry_scheduled", "failed"],
        "max_attempts = 3"
    );
    assert!(
        of("never")[3]["reason"]
            .as_str()
            .unwrap()
            .contains("452 4.2.2")
    );
    // A 4xx goes through the bounce rules too: its facts say why.
    for fact in &of("never")[1..] {
        assert_eq!(fact["status"], "4.2.2", "{fact}");
        assert_eq!(fact["replycode"], 452, "{fact}");
        assert_eq!(fact["bounce_reason"], "mailboxfull", "{fact}");
    }

    let gone = of("gone");
    assert_eq!(gone.len(), 2);
    assert_eq!(
        gone[1]["type"], "bounced",
        "a 550 5.1.1 at RCPT is a hard bounce"
    );
    assert_eq!(gone[1]["bounce"], "hard");
    assert_eq!(gone[1]["reason"], "userunknown");
    assert_eq!(gone[1]["status"], "5.1.1");
    assert_eq!(gone[1]["replycode"], 550);

    let failed = daemon
        .get("/v1/campaigns/retry/participants?outcome=failed")
        .text();
    assert_eq!(failed.lines().count(), 1, "{failed}");
    let hard = daemon
        .get("/v1/campaigns/retry/participants?outcome=bounced_hard")
        .text();
    assert!(hard.contains("\"customer\":\"gone\""), "{hard}");
    end.reached();
}

#[test]
fn a_relay_refusing_our_sender_suppresses_no_recipient() {
    let end = must_reach_end();
    let dir = tempfile::tempdir().unwrap();
    let peer = SmtpPeer::start(&end, dir.path());
    // The peer refuses this return-path domain at MAIL FROM with
    // `553 5.1.2 <...>: domain not found`, words that at RCPT would mean the
    // recipient's domain is gone.
    let config = relay_config(&peer).replace("bounces.test", "unroutable.bounces.test");
    let daemon = Daemon::start(dir.path(), &config);
    declare(&daemon, "sender");
    daemon.upload(
        "sender",
        &[json!({"customer": "c1", "address": "c1@example.org", "fields": {"name": "C", "gb": 1}})],
    );
    daemon.start_campaign("sender");
    let state = daemon.wait_for_campaign("sender", Duration::from_secs(60), finished);
    assert_eq!(state["counts"]["bounced_soft"], 1, "{state}");

    let events = daemon.all_events();
    let refusals: Vec<_> = events
        .iter()
        .filter(|e| e["type"] == "retry_scheduled" || e["type"] == "bounced")
        .collect();
    assert_eq!(refusals.len(), 3, "max_attempts = 3: {events:?}");
    for fact in &refusals {
        assert_eq!(fact["replycode"], 553, "{fact}");
        assert_eq!(fact["status"], "5.1.2", "{fact}");
    }
    assert_eq!(refusals[0]["bounce_reason"], "rejected", "{events:?}");
    assert_eq!(refusals[2]["bounce"], "soft", "{events:?}");
    assert_eq!(refusals[2]["reason"], "rejected", "{events:?}");
    assert!(
        !events.iter().any(|e| e["type"] == "suppressed"),
        "our sender's problem is not the recipient's: {events:?}"
    );
    assert!(peer.received().is_empty());
    end.reached();
}

/// A relay that is down leaves the messages unsent, not failed: however
/// often they are tried while it is down, the attempt budget (two here) is
/// not spent, and once it is up they go.
#[test]
fn a_relay_that_is_down_gets_the_messages_once_it_is_up() {
    let end = must_reach_end();
    let dir = tempfile::tempdir().unwrap();
    // Find a free port, then leave it closed while the campaign starts.
    let port = sluice_e2e::free_port();
    let config = format!(
        "[email]\nretry_base_secs = 1\nretry_max_secs = 1\nmax_attempts = 2\n\n[[email.relays]]\nhost = \"127.0.0.1\"\nport = {port}\n"
    );
    let daemon = Daemon::start(dir.path(), &config);
    declare(&daemon, "down");
    daemon.upload(
        "down",
        &[json!({"customer": "a", "address": "a@example.org", "fields": {"name": "A", "gb": 2}})],
    );
    daemon.start_campaign("down");
    let handed_back =
        "sluice_messages_deferred_total{channel=\"email\",reason=\"upstream_unavailable\"}";
    let start = std::time::Instant::now();
    while deferred(&daemon, handed_back) < 3.0 {
        assert!(
            start.elapsed() < Duration::from_secs(30),
            "not handed back three times while the relay is down"
        );
        std::thread::sleep(Duration::from_millis(100));
    }
    let events = daemon.all_events();
    assert!(
        !events
            .iter()
            .any(|e| e["type"] == "retry_scheduled" || e["type"] == "failed"),
        "an attempt spent on a relay that is down: {events:?}"
    );
    let peer = SmtpPeer::start_on(&end, dir.path(), port);
    daemon.wait_for_campaign("down", Duration::from_secs(60), finished);
    let received = peer.received();
    assert_eq!(received.len(), 1);
    assert_eq!(received[0].rcpt_tos, vec!["a@example.org"]);
    end.reached();
}

/// The value of the metric line starting `series` (0 when absent).
fn deferred(daemon: &Daemon, series: &str) -> f64 {
    let metrics = daemon.get("/metrics").text();
    (metrics.lines())
        .find_map(|l| l.strip_prefix(series))
        .and_then(|v| v.trim().parse().ok())
        .unwrap_or(0.0)
}

#[test]
fn bad_requests_get_clear_answers() {
    let end = must_reach_end();
    let dir = tempfile::tempdir().unwrap();
    let peer = SmtpPeer::start(&end, dir.path());
    let daemon = Daemon::start_with_env(
        dir.path(),
        &relay_config(&peer),
        &[("SLUICE_API_TOKENS", "crm:crm-secret,admin:admin-secret")],
    );
    let anonymous = daemon.get("/v1/campaigns/x");
    assert_eq!(anonymous.status, 401, "{}", anonymous.text());
    let wrong = sluice_e2e::request(
        "GET",
        &daemon.api,
        "/v1/campaigns/x",
        &[("authorization", "Bearer nope")],
        b"",
    );
    assert_eq!(wrong.status, 401);
    let auth = [
        ("authorization", "Bearer crm-secret"),
        ("content-type", "application/json"),
    ];
    let crm = |method: &str, path: &str, body: &[u8]| {
        sluice_e2e::request(method, &daemon.api, path, &auth, body)
    };
    let missing = crm("GET", "/v1/campaigns/x", b"");
    assert_eq!(missing.status, 404);
    let decl = json!({"channel": "email", "name": "n", "content": {"email": {"from": "a@b.test", "subject": "s", "text": "t"}}});
    let put = crm("PUT", "/v1/campaigns/empty", decl.to_string().as_bytes());
    assert_eq!(put.status, 200, "{}", put.text());
    let start = crm("POST", "/v1/campaigns/empty/start", b"");
    assert_eq!(start.status, 409, "no participants: {}", start.text());
    assert!(
        start.json()["error"]
            .as_str()
            .unwrap()
            .contains("no participants")
    );
    let nocontent = json!({"channel": "email", "name": "n"});
    crm(
        "PUT",
        "/v1/campaigns/bare",
        nocontent.to_string().as_bytes(),
    );
    let upload = json!([{"customer": "a", "address": "a@example.org"}]);
    crm(
        "POST",
        "/v1/campaigns/bare/participants",
        upload.to_string().as_bytes(),
    );
    let start = crm("POST", "/v1/campaigns/bare/start", b"");
    assert_eq!(start.status, 409, "no content: {}", start.text());
    let unknown = crm(
        "POST",
        "/v1/campaigns/nope/participants",
        upload.to_string().as_bytes(),
    );
    assert_eq!(unknown.status, 404);
    // Without a participant to add, the campaign is checked all the same:
    // unknown is 404, closed is 409, as with one.
    let declared = json!({"channel": "email", "name": "shut"});
    let put = crm("PUT", "/v1/campaigns/shut", declared.to_string().as_bytes());
    assert_eq!(put.status, 200, "{}", put.text());
    let cancel = crm("POST", "/v1/campaigns/shut/cancel", b"");
    assert_eq!(cancel.status, 200, "{}", cancel.text());
    let empty_audience = json!({"campaign": "bare", "outcome": "clicked"});
    for (id, status) in [("nope", 404), ("shut", 409)] {
        for body in ["[]", r#"[{"x": 1}]"#] {
            let r = crm(
                "POST",
                &format!("/v1/campaigns/{id}/participants"),
                body.as_bytes(),
            );
            assert_eq!(r.status, status, "{id} {body}: {}", r.text());
        }
        let r = crm(
            "POST",
            &format!("/v1/campaigns/{id}/participants/from"),
            empty_audience.to_string().as_bytes(),
        );
        assert_eq!(
            r.status,
            status,
            "{id} from an empty audience: {}",
            r.text()
        );
    }
    let bad_decl =
        json!({"channel": "email", "name": "n", "window": {"start": "tomorrow"}, "priority": 99});
    let r = crm("PUT", "/v1/campaigns/bad", bad_decl.to_string().as_bytes());
    assert_eq!(r.status, 422);
    assert_eq!(
        r.json()["problems"].as_array().unwrap().len(),
        2,
        "{}",
        r.text()
    );
    // Every problem, those of length with the others.
    let long_decl = json!({"channel": "email", "name": "n".repeat(201), "priority": 12});
    let r = crm(
        "PUT",
        "/v1/campaigns/long",
        long_decl.to_string().as_bytes(),
    );
    assert_eq!(r.status, 422);
    let problems = r.json()["problems"].clone();
    assert_eq!(
        problems,
        json!([
            "name: 201 characters, at most 200",
            "priority: must be 0..=9"
        ]),
        "{}",
        r.text()
    );
    // A campaign's channel cannot change: a 409 whatever else is wrong.
    let other_channel = json!({"channel": "sms", "name": "n",
        "content": {"email": {"from": "o@telco.test", "subject": "s", "text": "t"}}});
    let r = crm(
        "PUT",
        "/v1/campaigns/bare",
        other_channel.to_string().as_bytes(),
    );
    assert_eq!(r.status, 409, "{}", r.text());
    assert_eq!(daemon.get("/healthz").status, 200);
    assert_eq!(daemon.get("/readyz").status, 200);
    let metrics = daemon.get("/metrics").text();
    assert!(
        metrics.contains("sluice_participants_accepted_total"),
        "{metrics}"
    );
    end.reached();
}

/// DKIM-signed mail verifies with dkimpy, a verifier independent of the
/// signer, given the key record DNS would hold for
/// `s2026._domainkey.telco.test` (`gateway/testdata/dkim-test-key.dns.txt`,
/// the public half of the test key: `openssl rsa -in dkim-test-key.pem
/// -pubout -outform DER | base64`). Signatures are made on the blocking
/// pool, off the runtime.
#[test]
fn signed_mail_verifies_with_an_independent_dkim_verifier() {
    let end = must_reach_end();
    let dir = tempfile::tempdir().unwrap();
    let peer = SmtpPeer::start(&end, dir.path());
    let testdata = std::path::Path::new(env!("CARGO_MANIFEST_DIR")).join("../gateway/testdata");
    let config = format!(
        "{}\n[email.dkim]\ndomain = \"telco.test\"\nselector = \"s2026\"\nkey_file = \"{}\"\n",
        relay_config(&peer),
        testdata.join("dkim-test-key.pem").display()
    );
    let daemon = Daemon::start(dir.path(), &config);
    declare(&daemon, "signed");
    let upload: Vec<serde_json::Value> = (0..3)
        .map(|i| {
            json!({"customer": format!("c{i}"), "address": format!("p{i}@example.org"),
                   "fields": {"name": format!("P{i}"), "gb": i}})
        })
        .collect();
    assert_eq!(daemon.upload("signed", &upload)["accepted"], 3);
    daemon.start_campaign("signed");
    let state = daemon.wait_for_campaign("signed", Duration::from_secs(60), finished);
    assert_eq!(state["counts"]["submitted"], 3, "{state}");

    let received = peer.received();
    assert_eq!(received.len(), 3);
    let mut files = Vec::new();
    for (i, mail) in received.iter().enumerate() {
        assert!(
            mail.data.starts_with("DKIM-Signature: v=1; a=rsa-sha256;"),
            "{}",
            mail.data
        );
        let file = dir.path().join(format!("signed-{i}.eml"));
        std::fs::write(&file, &mail.data).unwrap();
        files.push(file);
    }
    let verify = |messages: &[std::path::PathBuf]| {
        sluice_e2e::peers::dkim_verify(&end)
            .arg(testdata.join("dkim-test-key.dns.txt"))
            .arg("s2026._domainkey.telco.test")
            .args(messages)
            .output()
            .unwrap()
    };
    let verified = verify(&files);
    let report = String::from_utf8_lossy(&verified.stdout);
    assert!(
        verified.status.success(),
        "{report}{}",
        String::from_utf8_lossy(&verified.stderr)
    );
    assert_eq!(report.matches(": pass").count(), 3, "{report}");
    // A signed header changed on the way must not verify.
    let tampered = dir.path().join("tampered.eml");
    std::fs::write(
        &tampered,
        received[0].data.replacen("Subject: P", "Subject: Q", 1),
    )
    .unwrap();
    assert!(
        !verify(&[tampered]).status.success(),
        "a changed subject must not verify"
    );
    end.reached();
}
