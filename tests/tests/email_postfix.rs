//! E-mail to a real Postfix: a private instance of its `smtpd`, queue
//! manager and `discard` transport ([`PostfixSmtpd`]), which offers
//! PIPELINING and CHUNKING as a production Postfix does. sluice sends each
//! message as MAIL, RCPT and one `BDAT n LAST` in one write; Postfix takes
//! every accepted message once, and its refusals (`550 5.1.1` at RCPT,
//! `550 5.7.1` for the content at the message's end) are read as over
//! DATA. Postfix missing fails the test, naming its package.

#![allow(clippy::unwrap_used)]

use std::time::Duration;

use serde_json::{Value, json};
use sluice_e2e::{Daemon, must_reach_end, postfix_smtpd::PostfixSmtpd, wait_until};

const GOOD: usize = 40;

#[test]
fn a_campaign_goes_to_postfix_in_chunks_and_its_refusals_are_read() {
    let end = must_reach_end();
    let dir = tempfile::tempdir().unwrap();
    let postfix = PostfixSmtpd::start(&end);
    let daemon = Daemon::start(
        dir.path(),
        &format!(
            "[email]\nbounce_domain = \"bounces.test\"\nmax_attempts = 1\n\n\
             [[email.relays]]\nhost = \"127.0.0.1\"\nport = {}\ntls = \"none\"\nconnections = 4\n",
            postfix.port
        ),
    );
    daemon.declare(
        "chunks",
        &json!({"channel": "email", "name": "chunks", "content": {"email": {
            "from": "Telco Offers <offers@telco.test>", "subject": "Hello {{customer}}",
            "text": "Hello {{customer}},\n{{note}}\n.a line with a leading dot\n"}}}),
    );
    let mut rows: Vec<Value> = (0..GOOD)
        .map(|i| json!({"customer": format!("c{i}"), "address": format!("u{i}@example.org"), "fields": {"note": "thanks"}}))
        .collect();
    rows.push(
        json!({"customer": "gone", "address": "gone@example.org", "fields": {"note": "thanks"}}),
    );
    rows.push(
        json!({"customer": "spammy", "address": "s@example.org", "fields": {"note": "spam"}}),
    );
    let r = daemon.upload("chunks", &rows);
    assert_eq!(r["accepted"], rows.len(), "{r}");
    daemon.start_campaign("chunks");
    let state = daemon.wait_for_campaign("chunks", Duration::from_secs(60), |v| {
        v["state"] == "finished"
    });

    assert_eq!(state["counts"]["submitted"], GOOD, "{state}");
    // An unknown user is a hard bounce; refused content a soft one (the
    // bounce rules', as over DATA).
    assert_eq!(state["counts"]["bounced_hard"], 1, "{state}");
    assert_eq!(state["counts"]["bounced_soft"], 1, "{state}");
    let facts = daemon.all_events();
    let bounce_of = |customer: &str| -> Value {
        facts
            .iter()
            .find(|f| f["customer"] == customer && f["type"] == "bounced")
            .cloned()
            .unwrap_or_else(|| panic!("no bounce of {customer}: {facts:?}"))
    };
    let gone = bounce_of("gone");
    assert_eq!(gone["status"], "5.1.1", "{gone}");
    assert_eq!(gone["replycode"], 550, "{gone}");
    let spammy = bounce_of("spammy");
    assert_eq!(spammy["status"], "5.7.1", "{spammy}");
    assert_eq!(spammy["replycode"], 550, "{spammy}");

    // What Postfix delivered: each accepted message once, nothing else.
    let mut expected: Vec<String> = (0..GOOD).map(|i| format!("u{i}@example.org")).collect();
    expected.sort();
    wait_until("Postfix's queue emptied", Duration::from_secs(10), || {
        postfix.delivered().len() >= GOOD && postfix.queue_empty()
    });
    let mut delivered = postfix.delivered();
    delivered.sort();
    assert_eq!(delivered, expected);
    // Every message went in a chunk: each of sluice's sessions, ended as
    // it is killed, used BDAT and never DATA.
    drop(daemon);
    wait_until(
        "Postfix logged the sessions' ends",
        Duration::from_secs(10),
        || postfix.sessions_ended(),
    );
    let sessions = postfix.sessions();
    assert!(!sessions.is_empty(), "{}", postfix.log());
    assert!(
        sessions
            .iter()
            .all(|s| s.contains(" bdat=") && !s.contains(" data=")),
        "{sessions:?}\n{}",
        postfix.log()
    );
    end.reached();
}
