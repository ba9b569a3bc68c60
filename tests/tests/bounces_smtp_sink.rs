//! Bounces end to end against Postfix's own test programs: campaigns sent
//! to a relay that is Postfix's `smtp-sink` refusing every recipient with
//! `550 5.1.1` (hard: one attempt, a hard bounce, the address suppressed
//! for later campaigns) or `452 4.2.2` (soft: retried, then failed, never
//! suppressed); and DSNs in Postfix's format about mail an accepting
//! `smtp-sink` took, handed to the bounce listener by Postfix's
//! `smtp-source` (hard: suppressed; soft: resent until the attempts run out,
//! then a final soft bounce).
//!
//! Each test has its own daemon with one relay, so which sink answers is
//! never in doubt. The sinks' logs say what they were sent. Postfix missing
//! fails these tests, with the command that installs it.

#![allow(clippy::unwrap_used)]

use std::time::{Duration, Instant};

use serde_json::Value;
use sluice_e2e::smtp_sink::{Rcpt, SmtpSink, smtp_source};
use sluice_e2e::{Daemon, must_reach_end};

/// What the hard-refusing sink answers to every RCPT TO.
const USER_UNKNOWN: &str =
    "550 5.1.1 Recipient address rejected: User unknown in local recipient table";
/// What the soft-refusing sink answers to every RCPT TO.
const MAILBOX_FULL: &str = "452 4.2.2 Mailbox full";

fn config(sink: &SmtpSink, max_attempts: u32) -> String {
    format!(
        "[email]\nbounce_domain = \"bounces.test\"\nretry_base_secs = 1\nretry_max_secs = 1\nmax_attempts = {max_attempts}\n\n{}",
        sink.relay_config()
    )
}

fn events_of(daemon: &Daemon, campaign: &str, customer: &str) -> Vec<Value> {
    daemon
        .all_events()
        .into_iter()
        .filter(|e| e["campaign"] == campaign && e["customer"] == customer)
        .collect()
}

fn types(events: &[Value]) -> Vec<&str> {
    events.iter().map(|e| e["type"].as_str().unwrap()).collect()
}

/// The line of `/metrics` for this many bounces of `kind` and `reason`.
fn bounces_metric(kind: &str, reason: &str, n: usize) -> String {
    format!("sluice_bounces_total{{kind=\"{kind}\",reason=\"{reason}\"}} {n}\n")
}

/// Waits until `done` holds, or panics with `what` after 30 s.
fn eventually(what: &str, done: impl Fn() -> bool) {
    let start = Instant::now();
    while !done() {
        assert!(start.elapsed() < Duration::from_secs(30), "{what}");
        std::thread::sleep(Duration::from_millis(50));
    }
}

#[test]
fn a_550_5_1_1_at_rcpt_is_a_hard_bounce_and_the_address_is_suppressed() {
    let end = must_reach_end();
    let dir = tempfile::tempdir().unwrap();
    let sink = SmtpSink::start(&end, dir.path(), Rcpt::Refuse(USER_UNKNOWN));
    let daemon = Daemon::start(dir.path(), &config(&sink, 3));
    let people = [("kim", "kim@example.org"), ("lee", "lee@example.org")];

    let state = daemon.run_email_campaign("h1", &people);
    assert_eq!(state["counts"]["bounced_hard"], 2, "{state}");
    for (customer, address) in people {
        let facts = events_of(&daemon, "h1", customer);
        assert_eq!(types(&facts), ["accepted", "bounced"], "{facts:?}");
        let bounced = &facts[1];
        assert_eq!(bounced["bounce"], "hard", "{bounced}");
        assert_eq!(bounced["reason"], "userunknown", "{bounced}");
        assert_eq!(bounced["status"], "5.1.1", "{bounced}");
        assert_eq!(bounced["replycode"], 550, "{bounced}");
        assert_eq!(bounced["diagnostic"], USER_UNKNOWN, "{bounced}");
        assert_eq!(sink.rcpt_count(address), 1, "refused once, never retried");
    }
    // What smtp-sink was sent: one transaction per message, from its own
    // VERP return path, abandoned at the refused RCPT (no DATA).
    let sent = sink.transactions();
    assert_eq!(sent.len(), 2, "{sent:?}");
    for t in &sent {
        assert!(
            t.mail_from.starts_with("b+") && t.mail_from.ends_with("@bounces.test"),
            "{t:?}"
        );
        assert_eq!(t.rcpt_tos.len(), 1, "{t:?}");
        assert!(!t.data, "{t:?}");
    }
    assert_ne!(sent[0].mail_from, sent[1].mail_from);
    let metrics = daemon.get("/metrics").text();
    assert!(
        metrics.contains(&bounces_metric("hard", "userunknown", 2)),
        "{metrics}"
    );
    let audience = daemon
        .get("/v1/campaigns/h1/participants?outcome=bounced_hard")
        .text();
    assert!(
        audience.contains("\"kim\"") && audience.contains("\"lee\""),
        "{audience}"
    );

    // A later campaign never sends to them again.
    let state = daemon.run_email_campaign(
        "h2",
        &[
            ("kim", "kim@example.org"),
            ("lee", "lee@example.org"),
            ("new", "new@example.org"),
        ],
    );
    assert_eq!(state["counts"]["suppressed"], 2, "{state}");
    assert_eq!(state["counts"]["bounced_hard"], 1, "{state}");
    for (customer, address) in people {
        let facts = events_of(&daemon, "h2", customer);
        assert_eq!(types(&facts), ["accepted", "suppressed"], "{facts:?}");
        assert_eq!(facts[1]["why"], "hard_bounce", "{facts:?}");
        assert_eq!(sink.rcpt_count(address), 1, "only the first campaign's");
    }
    assert_eq!(sink.rcpt_count("new@example.org"), 1);
    assert_eq!(sink.transactions().len(), 3);
    end.reached();
}

#[test]
fn a_452_4_2_2_at_rcpt_is_retried_then_fails_and_is_not_suppressed() {
    let end = must_reach_end();
    let dir = tempfile::tempdir().unwrap();
    let sink = SmtpSink::start(&end, dir.path(), Rcpt::Refuse(MAILBOX_FULL));
    let daemon = Daemon::start(dir.path(), &config(&sink, 3));

    let state = daemon.run_email_campaign("s1", &[("kim", "kim@example.org")]);
    assert_eq!(state["counts"]["failed"], 1, "{state}");
    let facts = events_of(&daemon, "s1", "kim");
    assert_eq!(
        types(&facts),
        ["accepted", "retry_scheduled", "retry_scheduled", "failed"],
        "max_attempts = 3: {facts:?}"
    );
    for (n, retry) in facts[1..3].iter().enumerate() {
        assert_eq!(retry["reason"], MAILBOX_FULL, "{retry}");
        assert_eq!(retry["attempt"], n + 1, "{retry}");
        assert!(retry["retry_at"].is_string(), "{retry}");
    }
    let failed = &facts[3];
    assert_eq!(
        failed["reason"],
        format!("gave up after 3 attempts: {MAILBOX_FULL}"),
        "{failed}"
    );
    assert_eq!(failed["attempts"], 3, "{failed}");
    // Each attempt reached smtp-sink, and none got past RCPT.
    assert_eq!(sink.rcpt_count("kim@example.org"), 3);
    let sent = sink.transactions();
    assert_eq!(sent.len(), 3, "{sent:?}");
    assert!(sent.iter().all(|t| !t.data), "{sent:?}");
    assert!(
        sent.iter().all(|t| t.mail_from == sent[0].mail_from),
        "one message, one return path: {sent:?}"
    );
    let audience = daemon
        .get("/v1/campaigns/s1/participants?outcome=failed")
        .text();
    assert!(audience.contains("\"kim\""), "{audience}");

    // A temporary refusal does not suppress the address.
    let state = daemon.run_email_campaign("s2", &[("kim", "kim@example.org")]);
    assert_eq!(state["counts"]["failed"], 1, "{state}");
    assert!(
        !types(&events_of(&daemon, "s2", "kim")).contains(&"suppressed"),
        "not suppressed"
    );
    assert_eq!(sink.rcpt_count("kim@example.org"), 6);
    end.reached();
}

/// A delivery status notification as Postfix writes it when a remote
/// server refused `recipient` at RCPT TO with `reply` (`code status text`),
/// sent back to `return_path` with the original message's `headers`.
fn postfix_dsn(recipient: &str, return_path: &str, reply: &str, headers: &str) -> String {
    let status = reply.split_whitespace().nth(1).unwrap();
    format!(
        "From: MAILER-DAEMON@mx.remote.example (Mail Delivery System)\n\
         Subject: Undelivered Mail Returned to Sender\n\
         To: {return_path}\n\
         Auto-Submitted: auto-replied\n\
         MIME-Version: 1.0\n\
         Content-Type: multipart/report; report-type=delivery-status;\n\
         \tboundary=\"4A1B2C3D.1700000000/mx.remote.example\"\n\
         Message-Id: <20240101000000.4A1B2C3D@mx.remote.example>\n\
         \n\
         This is a MIME-encapsulated message.\n\
         \n\
         --4A1B2C3D.1700000000/mx.remote.example\n\
         Content-Description: Notification\n\
         Content-Type: text/plain; charset=us-ascii\n\
         \n\
         This is the mail system at host mx.remote.example.\n\
         \n\
         I'm sorry to have to inform you that your message could not\n\
         be delivered to one or more recipients. It's attached below.\n\
         \n\
         <{recipient}>: host mx.example.org[192.0.2.25] said: {reply}\n\
         \x20   (in reply to RCPT TO command)\n\
         \n\
         --4A1B2C3D.1700000000/mx.remote.example\n\
         Content-Description: Delivery report\n\
         Content-Type: message/delivery-status\n\
         \n\
         Reporting-MTA: dns; mx.remote.example\n\
         X-Postfix-Queue-ID: 4A1B2C3D\n\
         X-Postfix-Sender: rfc822; {return_path}\n\
         \n\
         Final-Recipient: rfc822; {recipient}\n\
         Original-Recipient: rfc822;{recipient}\n\
         Action: failed\n\
         Status: {status}\n\
         Remote-MTA: dns; mx.example.org\n\
         Diagnostic-Code: smtp; {reply}\n\
         \n\
         --4A1B2C3D.1700000000/mx.remote.example\n\
         Content-Description: Undelivered Message Headers\n\
         Content-Type: text/rfc822-headers\n\
         \n\
         {headers}\n\
         --4A1B2C3D.1700000000/mx.remote.example--\n"
    )
}

#[test]
fn returned_dsns_suppress_hard_bounces_and_resend_soft_ones_until_they_fail() {
    let end = must_reach_end();
    let dir = tempfile::tempdir().unwrap();
    let sink = SmtpSink::start(&end, dir.path(), Rcpt::Accept);
    let daemon = Daemon::start(dir.path(), &config(&sink, 2));
    let state = daemon.run_email_campaign(
        "d1",
        &[("hard", "hard@example.org"), ("soft", "soft@example.org")],
    );
    assert_eq!(state["counts"]["submitted"], 2, "{state}");
    let received = |address: &str| {
        sink.messages()
            .into_iter()
            .filter(|m| m.rcpt_tos == [address])
            .collect::<Vec<_>>()
    };
    eventually("smtp-sink dumped both messages", || {
        sink.messages().len() == 2
    });
    for (customer, address) in [("hard", "hard@example.org"), ("soft", "soft@example.org")] {
        let got = received(address);
        assert_eq!(got.len(), 1, "{got:?}");
        assert!(got[0].mail_from.starts_with("b+"), "{got:?}");
        assert!(got[0].mail_from.ends_with("@bounces.test"), "{got:?}");
        assert!(got[0].content.contains("Subject: Offer\n"), "{got:?}");
        assert!(
            got[0].content.contains(&format!("Hello {customer}")),
            "{got:?}"
        );
    }
    // Returns a DSN about the last message `address` got, to the return
    // path that message was sent from.
    let return_dsn = |address: &str, reply: &str, n: usize| {
        let return_path = sink
            .transactions()
            .into_iter()
            .rfind(|t| t.completed && t.rcpt_tos == [address])
            .unwrap()
            .mail_from;
        let message = received(address)
            .into_iter()
            .rfind(|m| m.mail_from == return_path)
            .unwrap();
        let headers = message.content.split("\n\n").next().unwrap();
        let dsn = postfix_dsn(address, &return_path, reply, headers);
        let file = dir.path().join(format!("dsn-{n}.eml"));
        std::fs::write(&file, dsn).unwrap();
        smtp_source(&end, &daemon.bounce, &return_path, &file)
            .unwrap_or_else(|e| panic!("the bounce listener refused the DSN: {e}"));
    };

    // Hard: recorded with what the DSN says, and the address suppressed.
    return_dsn(
        "hard@example.org",
        "550 5.1.1 <hard@example.org>: Recipient address rejected: User unknown in local recipient table",
        1,
    );
    let facts = events_of(&daemon, "d1", "hard");
    assert_eq!(
        types(&facts),
        ["accepted", "submitted", "bounced"],
        "{facts:?}"
    );
    let bounced = &facts[2];
    assert_eq!(bounced["bounce"], "hard", "{bounced}");
    assert_eq!(bounced["reason"], "userunknown", "{bounced}");
    assert_eq!(bounced["status"], "5.1.1", "{bounced}");
    assert_eq!(bounced["replycode"], 550, "{bounced}");
    assert!(
        bounced["diagnostic"]
            .as_str()
            .unwrap()
            .contains("User unknown in local recipient table"),
        "{bounced}"
    );

    // Soft: resent (max_attempts = 2) ...
    return_dsn(
        "soft@example.org",
        "452 4.2.2 <soft@example.org>: Mailbox full",
        2,
    );
    let facts = events_of(&daemon, "d1", "soft");
    assert_eq!(
        types(&facts),
        ["accepted", "submitted", "bounced"],
        "{facts:?}"
    );
    let bounced = &facts[2];
    assert_eq!(bounced["bounce"], "soft", "{bounced}");
    assert_eq!(bounced["reason"], "mailboxfull", "{bounced}");
    assert_eq!(bounced["status"], "4.2.2", "{bounced}");
    assert_eq!(bounced["replycode"], 452, "{bounced}");
    assert!(bounced["retry_at"].is_string(), "{bounced}");
    eventually("the soft-bounced message is sent again", || {
        received("soft@example.org").len() == 2
    });
    let again = received("soft@example.org");
    assert!(again[1].content.contains("Hello soft"), "{again:?}");
    eventually("the resend is recorded", || {
        types(&events_of(&daemon, "d1", "soft")).len() == 4
    });

    // ... and when the resend bounces too, the attempts are spent: a final
    // soft bounce, no further resend.
    return_dsn(
        "soft@example.org",
        "452 4.2.2 <soft@example.org>: Mailbox full",
        3,
    );
    let facts = events_of(&daemon, "d1", "soft");
    assert_eq!(
        types(&facts),
        ["accepted", "submitted", "bounced", "submitted", "bounced"],
        "{facts:?}"
    );
    let last = &facts[4];
    assert_eq!(last["bounce"], "soft", "{last}");
    assert_eq!(last["reason"], "mailboxfull", "{last}");
    assert!(last.get("retry_at").is_none(), "{last}");
    let audience = daemon
        .get("/v1/campaigns/d1/participants?outcome=bounced_soft")
        .text();
    assert!(audience.contains("\"soft\""), "{audience}");
    let metrics = daemon.get("/metrics").text();
    assert!(
        metrics.contains(&bounces_metric("hard", "userunknown", 1)),
        "{metrics}"
    );
    // The first soft bounce was resent (a retry); only the final one counts.
    assert!(
        metrics.contains(&bounces_metric("soft", "mailboxfull", 1)),
        "{metrics}"
    );

    // A later campaign: the hard-bounced address is suppressed, the
    // soft-bounced one is mailed again.
    let state = daemon.run_email_campaign(
        "d2",
        &[("hard", "hard@example.org"), ("soft", "soft@example.org")],
    );
    assert_eq!(state["counts"]["suppressed"], 1, "{state}");
    assert_eq!(state["counts"]["submitted"], 1, "{state}");
    let facts = events_of(&daemon, "d2", "hard");
    assert_eq!(types(&facts), ["accepted", "suppressed"], "{facts:?}");
    assert_eq!(facts[1]["why"], "hard_bounce", "{facts:?}");
    assert_eq!(sink.rcpt_count("hard@example.org"), 1);
    assert_eq!(sink.rcpt_count("soft@example.org"), 3);
    end.reached();
}
