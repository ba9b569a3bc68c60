//! Bounces end to end: refusals at send time and DSNs returned later to the
//! bounce listener become the right facts; hard bounces suppress the address
//! for later campaigns; soft ones are resent; forged tokens match nothing.

#![allow(clippy::unwrap_used)]

use std::{path::Path, time::Duration};

use sluice_e2e::{
    Daemon, MustReachEnd, SmtpPeer, must_reach_end,
    peers::{peers_dir, python},
};

fn config(peer: &SmtpPeer) -> String {
    format!(
        "[email]\nbounce_domain = \"bounces.test\"\nretry_base_secs = 1\nretry_max_secs = 1\nmax_attempts = 2\n\n\
         [[email.relays]]\nhost = \"127.0.0.1\"\nport = {}\n",
        peer.port
    )
}

/// An RFC 3464 report for `recipient` with `status`, as a remote MTA writes it.
fn dsn(recipient: &str, status: &str, diagnostic: &str) -> String {
    format!(
        "From: MAILER-DAEMON@mx.remote.example\r\nTo: whoever@bounces.test\r\nSubject: Undelivered Mail Returned to Sender\r\n\
         MIME-Version: 1.0\r\nContent-Type: multipart/report; report-type=delivery-status; boundary=\"B\"\r\n\r\n\
         --B\r\nContent-Type: text/plain\r\n\r\nYour message could not be delivered.\r\n\r\n\
         --B\r\nContent-Type: message/delivery-status\r\n\r\nReporting-MTA: dns; mx.remote.example\r\n\r\n\
         Final-Recipient: rfc822; {recipient}\r\nAction: failed\r\nStatus: {status}\r\nDiagnostic-Code: smtp; {diagnostic}\r\n\r\n\
         --B--\r\n"
    )
}

/// Hands `message` to the daemon's bounce listener for `rcpt` with
/// `send_mail.py`, as a remote MTA would; returns the reply code.
fn deliver(end: &MustReachEnd, dir: &Path, daemon: &Daemon, rcpt: &str, message: &str) -> String {
    let file = dir.join(format!("dsn-{}.eml", rcpt.len() + message.len()));
    std::fs::write(&file, message).unwrap();
    let port = daemon.bounce.rsplit(':').next().unwrap();
    let out = python(end)
        .arg(peers_dir().join("send_mail.py"))
        .args(["--port", port, "--rcpt", rcpt, "--file"])
        .arg(&file)
        .output()
        .unwrap();
    assert!(
        out.status.success(),
        "{}",
        String::from_utf8_lossy(&out.stderr)
    );
    String::from_utf8_lossy(&out.stdout).trim().to_owned()
}

fn events_of(daemon: &Daemon, campaign: &str, customer: &str) -> Vec<serde_json::Value> {
    daemon
        .all_events()
        .into_iter()
        .filter(|e| e["campaign"] == campaign && e["customer"] == customer)
        .collect()
}

#[test]
fn returned_dsns_become_facts_and_hard_bounces_are_suppressed() {
    let end = must_reach_end();
    let dir = tempfile::tempdir().unwrap();
    let peer = SmtpPeer::start(&end, dir.path());
    let daemon = Daemon::start(dir.path(), &config(&peer));
    daemon.run_email_campaign(
        "s1",
        &[
            ("hard", "hard@example.org"),
            ("soft", "soft@example.org"),
            ("sync", "reject-sync@example.org"),
        ],
    );
    let received = peer.received();
    assert_eq!(received.len(), 2);
    let return_path = |rcpt: &str| {
        received
            .iter()
            .find(|m| m.rcpt_tos[0] == rcpt)
            .unwrap()
            .mail_from
            .clone()
    };

    // A hard DSN for `hard`, sent to its VERP address by a remote MTA.
    let reply = deliver(
        &end,
        dir.path(),
        &daemon,
        &return_path("hard@example.org"),
        &dsn(
            "hard@example.org",
            "5.1.1",
            "550 5.1.1 <hard@example.org>: Recipient address rejected: User unknown",
        ),
    );
    assert_eq!(reply, "250");
    let hard = events_of(&daemon, "s1", "hard");
    let bounced = hard
        .iter()
        .find(|e| e["type"] == "bounced")
        .expect("bounced fact");
    assert_eq!(bounced["bounce"], "hard");
    assert_eq!(bounced["reason"], "userunknown");
    assert_eq!(bounced["status"], "5.1.1");

    // A soft DSN for `soft`: resent, and the peer gets a second copy.
    let reply = deliver(
        &end,
        dir.path(),
        &daemon,
        &return_path("soft@example.org"),
        &dsn(
            "soft@example.org",
            "4.2.2",
            "452 4.2.2 <soft@example.org>: Mailbox full",
        ),
    );
    assert_eq!(reply, "250");
    let start = std::time::Instant::now();
    while peer
        .received()
        .iter()
        .filter(|m| m.rcpt_tos[0] == "soft@example.org")
        .count()
        < 2
    {
        assert!(
            start.elapsed() < Duration::from_secs(30),
            "a soft bounce is resent: {:?} {}",
            events_of(&daemon, "s1", "soft"),
            daemon.get("/v1/campaigns/s1").text()
        );
        std::thread::sleep(Duration::from_millis(100));
    }
    let soft = events_of(&daemon, "s1", "soft");
    let bounced = soft
        .iter()
        .find(|e| e["type"] == "bounced")
        .expect("bounced fact");
    assert_eq!(bounced["bounce"], "soft");
    assert_eq!(bounced["reason"], "mailboxfull");
    assert!(bounced["retry_at"].is_string());

    // Relaying through the bounce listener is refused; forged tokens match nothing.
    assert_eq!(
        deliver(
            &end,
            dir.path(),
            &daemon,
            "someone@elsewhere.example",
            "Subject: x\r\n\r\nx\r\n"
        ),
        "550"
    );
    let forged = return_path("hard@example.org").replacen("b+a", "b+b", 1);
    assert_eq!(
        deliver(
            &end,
            dir.path(),
            &daemon,
            &forged,
            &dsn("hard@example.org", "5.1.1", "550 user unknown")
        ),
        "250"
    );
    assert_eq!(
        events_of(&daemon, "s1", "hard")
            .iter()
            .filter(|e| e["type"] == "bounced")
            .count(),
        1
    );
    let metrics = daemon.get("/metrics").text();
    assert!(
        metrics.contains("sluice_bounces_unmatched_total 1"),
        "{metrics}"
    );
    assert!(
        metrics.contains("sluice_bounces_total{kind=\"hard\",reason=\"userunknown\"} 2"),
        "{metrics}"
    );

    // The hard-bounced addresses (returned and at RCPT) are never sent again.
    daemon.run_email_campaign(
        "s2",
        &[
            ("hard", "hard@example.org"),
            ("sync", "reject-sync@example.org"),
            ("new", "new@example.org"),
        ],
    );
    for customer in ["hard", "sync"] {
        let facts = events_of(&daemon, "s2", customer);
        let suppressed = facts
            .iter()
            .find(|e| e["type"] == "suppressed")
            .expect("suppressed");
        assert_eq!(suppressed["why"], "hard_bounce");
    }
    let to_hard = peer
        .received()
        .iter()
        .filter(|m| m.rcpt_tos[0] == "hard@example.org")
        .count();
    assert_eq!(to_hard, 1, "only the first campaign's message");
    let audience = daemon
        .get("/v1/campaigns/s1/participants?outcome=bounced_hard")
        .text();
    assert!(
        audience.contains("\"hard\"") && audience.contains("\"sync\""),
        "{audience}"
    );
    end.reached();
}

#[test]
fn an_imported_bounce_is_matched_like_one_received() {
    let end = must_reach_end();
    let dir = tempfile::tempdir().unwrap();
    let peer = SmtpPeer::start(&end, dir.path());
    let daemon = Daemon::start(dir.path(), &config(&peer));
    daemon.run_email_campaign("imp", &[("a", "a@example.org")]);
    let return_path = peer.received()[0].mail_from.clone();
    let report = dsn("a@example.org", "5.1.1", "550 5.1.1 user unknown");
    let r = daemon.post("/v1/bounces", "message/rfc822", report.as_bytes());
    assert_eq!(r.status, 200, "{}", r.text());
    assert_eq!(
        r.json()["unmatched"],
        1,
        "no token anywhere: kept, not matched"
    );
    // A mailbox copy keeps the envelope recipient in Delivered-To.
    let copy = format!("Return-Path: <>\r\nDelivered-To: {return_path}\r\n{report}");
    let r = daemon.post("/v1/bounces", "message/rfc822", copy.as_bytes());
    assert_eq!(r.json()["matched"], 1, "{}", r.text());
    let facts = events_of(&daemon, "imp", "a");
    assert!(
        facts
            .iter()
            .any(|e| e["type"] == "bounced" && e["bounce"] == "hard"),
        "{facts:?}"
    );
    let empty = daemon.post("/v1/bounces", "message/rfc822", b"");
    assert_eq!(empty.status, 400);
    end.reached();
}

/// A bounce that carries a genuine token but names another recipient (our
/// mail forwarded on, and the forward refused) says nothing about ours: it
/// is kept as unmatched and suppresses nobody.
#[test]
fn a_genuine_token_on_someone_elses_bounce_suppresses_nobody() {
    let end = must_reach_end();
    let dir = tempfile::tempdir().unwrap();
    let peer = SmtpPeer::start(&end, dir.path());
    let daemon = Daemon::start(dir.path(), &config(&peer));
    daemon.run_email_campaign("f1", &[("ann", "ann@example.org")]);
    let return_path = peer.received()[0].mail_from.clone();
    let reply = deliver(
        &end,
        dir.path(),
        &daemon,
        &return_path,
        &dsn(
            "ann.forwarded@elsewhere.example",
            "5.1.1",
            "550 5.1.1 <ann.forwarded@elsewhere.example>: User unknown",
        ),
    );
    assert_eq!(reply, "250");
    let metrics = daemon.get("/metrics").text();
    assert!(
        metrics.contains("sluice_bounces_unmatched_total 1"),
        "{metrics}"
    );
    assert!(
        !events_of(&daemon, "f1", "ann")
            .iter()
            .any(|e| e["type"] == "bounced"),
        "no bounce recorded for ann"
    );
    let blocked = daemon.get("/v1/blacklist/email/ann@example.org");
    assert_eq!(
        blocked.status,
        404,
        "ann is not suppressed: {}",
        blocked.text()
    );
    // The operator finds it kept as it came.
    let page = daemon.get("/v1/bounces/unmatched").json();
    assert_eq!(
        (page["kept"].as_u64(), page["capacity"].as_u64()),
        (Some(1), Some(1_000))
    );
    let kept = page["items"][0]["message"].as_str().unwrap_or_default();
    assert!(kept.starts_with("X-Sluice-Kept-At: "), "{kept}");
    assert!(kept.contains("ann.forwarded@elsewhere.example"), "{kept}");
    end.reached();
}

/// A client idle on the bounce listener does not hold up a shutdown: it is
/// told 421 and the daemon exits at once. Before, sessions waited for their
/// client for ever.
#[test]
fn an_idle_bounce_session_is_told_421_at_shutdown() {
    use std::io::{BufRead, BufReader};

    let dir = tempfile::tempdir().unwrap();
    let mut daemon = Daemon::start(dir.path(), "");
    let stream = std::net::TcpStream::connect(&daemon.bounce).unwrap();
    let mut client = BufReader::new(stream);
    let mut greeting = String::new();
    client.read_line(&mut greeting).unwrap();
    assert!(greeting.starts_with("220 "), "{greeting}");
    let asked = std::time::Instant::now();
    assert!(daemon.terminate(), "clean exit");
    assert!(
        asked.elapsed() < std::time::Duration::from_secs(10),
        "shutdown waited {:?}",
        asked.elapsed()
    );
    let mut last = String::new();
    client.read_line(&mut last).unwrap();
    assert!(last.starts_with("421 "), "{last}");
}

/// Only a verifying token that names a message sent to the bounced address,
/// and not settled yet, is acted upon. Forged tokens, tokens with a
/// character changed, cut short or lengthened, and the copies of a final
/// report delivered again (a replay, or an MTA retrying) are kept as
/// unmatched: no fact, no suppression, no resend. A copy of a soft report
/// while its resend is due changes nothing either: the resend is not out
/// yet, so the copy can only be about the send already counted.
#[test]
fn forged_mangled_and_replayed_bounces_change_nothing() {
    let end = must_reach_end();
    let dir = tempfile::tempdir().unwrap();
    let peer = SmtpPeer::start(&end, dir.path());
    // Resends wait long enough for the replays to find the message pending.
    let config = config(&peer).replace(
        "retry_base_secs = 1\nretry_max_secs = 1",
        "retry_base_secs = 600\nretry_max_secs = 600",
    );
    let daemon = Daemon::start(dir.path(), &config);
    daemon.run_email_campaign(
        "r1",
        &[("ann", "ann@example.org"), ("bob", "bob@example.org")],
    );
    let return_path = |rcpt: &str| {
        peer.received()
            .iter()
            .find(|m| m.rcpt_tos[0] == rcpt)
            .unwrap()
            .mail_from
            .clone()
    };
    let (ann, bob) = (
        return_path("ann@example.org"),
        return_path("bob@example.org"),
    );
    let ann_full = dsn("ann@example.org", "4.2.2", "452 4.2.2 mailbox full");
    let bob_unknown = dsn("bob@example.org", "5.1.1", "550 5.1.1 user unknown");
    let send = |rcpt: &str, report: &str| deliver(&end, dir.path(), &daemon, rcpt, report);

    // A final report acts once, its copies not at all.
    for _ in 0..3 {
        assert_eq!(send(&ann, &ann_full), "250");
        assert_eq!(send(&bob, &bob_unknown), "250");
    }
    // Forged and mangled tokens, for either address.
    let (local, domain) = bob.split_once('@').unwrap();
    let flipped = {
        let mut bytes = local.as_bytes().to_vec();
        let last = bytes.len() - 1;
        bytes[last] = if bytes[last] == b'a' { b'b' } else { b'a' };
        String::from_utf8(bytes).unwrap()
    };
    let bad = [
        format!("{flipped}@{domain}"),
        format!("{}@{domain}", &local[..local.len() - 3]),
        format!("{local}aa@{domain}"),
        format!("b+aaaaaaaaaaaaaaaaaaaaaaaaaa@{domain}"),
        format!("b+@{domain}"),
    ];
    for rcpt in &bad {
        assert_eq!(send(rcpt, &bob_unknown), "250", "{rcpt}");
        assert_eq!(
            send(rcpt, &dsn("ann@example.org", "5.1.1", "550 user unknown")),
            "250",
            "{rcpt}"
        );
    }

    let bounced = |customer: &str| {
        events_of(&daemon, "r1", customer)
            .into_iter()
            .filter(|e| e["type"] == "bounced")
            .collect::<Vec<_>>()
    };
    let ann_bounces = bounced("ann");
    assert_eq!(ann_bounces.len(), 1, "{ann_bounces:?}");
    assert_eq!(ann_bounces[0]["bounce"], "soft");
    assert_eq!(bounced("bob").len(), 1);
    assert_eq!(
        daemon.get("/v1/blacklist/email/ann@example.org").status,
        404,
        "a forged hard bounce never suppresses ann"
    );
    assert_eq!(
        daemon.get("/v1/blacklist/email/bob@example.org").json()["why"],
        "hard_bounce"
    );
    let metrics = daemon.get("/metrics").text();
    let unmatched = 2 + 2 + 2 * bad.len();
    assert!(
        metrics.contains(&format!("sluice_bounces_unmatched_total {unmatched}\n")),
        "{unmatched} unmatched: {metrics}"
    );
    assert!(
        metrics.contains("sluice_bounces_total{kind=\"hard\",reason=\"userunknown\"} 1\n"),
        "{metrics}"
    );
    assert_eq!(
        peer.received()
            .iter()
            .filter(|m| m.rcpt_tos[0] == "ann@example.org")
            .count(),
        1,
        "no resend yet, however often the report came"
    );
    end.reached();
}

/// A feedback report (RFC 5965) from a mailbox provider about `original`,
/// as it is sent to the sender's feedback address: the original's copy
/// has no Return-Path, only its own headers.
fn arf(feedback_type: &str, original: &str) -> String {
    format!(
        "From: fbl@mailbox.example\r\nTo: abuse@telco.test\r\nSubject: FW: Offer\r\n\
         MIME-Version: 1.0\r\nContent-Type: multipart/report; report-type=feedback-report; boundary=\"F\"\r\n\r\n\
         --F\r\nContent-Type: text/plain\r\n\r\nThis is an email abuse report.\r\n\r\n\
         --F\r\nContent-Type: message/feedback-report\r\n\r\nFeedback-Type: {feedback_type}\r\n\
         User-Agent: MailboxFBL/1.0\r\nVersion: 1\r\nOriginal-Rcpt-To: redacted@mailbox.example\r\n\r\n\
         --F\r\nContent-Type: message/rfc822\r\n\r\n{original}\r\n--F--\r\n"
    )
}

/// A vacation reply to `return_path`, where RFC 3834 sends it.
fn out_of_office(return_path: &str) -> String {
    format!(
        "From: cid@example.org\r\nTo: {return_path}\r\nSubject: Out of office: Offer\r\n\
         Auto-Submitted: auto-replied\r\nPrecedence: bulk\r\n\r\n\
         I am away until Monday.\r\n"
    )
}

/// A spam complaint is the recipient taking back consent: it becomes a
/// `complained` fact and suppresses the address, matched by the
/// Message-ID of the original (the report redacts the recipient and has
/// no Return-Path). A `not-spam` report and an auto-reply record nothing
/// and are not unmatched bounces; a complaint about mail that is not ours
/// is kept as unmatched.
#[test]
fn a_spam_complaint_suppresses_the_address_and_an_auto_reply_changes_nothing() {
    let end = must_reach_end();
    let dir = tempfile::tempdir().unwrap();
    let peer = SmtpPeer::start(&end, dir.path());
    let daemon = Daemon::start(dir.path(), &config(&peer));
    daemon.run_email_campaign(
        "fb",
        &[
            ("ann", "ann@example.org"),
            ("bob", "bob@example.org"),
            ("cid", "cid@example.org"),
        ],
    );
    let received = peer.received();
    let sent_to = |rcpt: &str| received.iter().find(|m| m.rcpt_tos[0] == rcpt).unwrap();
    let original = |rcpt: &str| {
        sent_to(rcpt)
            .data
            .replace("\r\n", "\n")
            .replace('\n', "\r\n")
    };
    assert!(
        original("ann@example.org").contains(&format!(
            "Message-ID: <{}>",
            sent_to("ann@example.org").mail_from
        )),
        "the Message-ID is the Return-Path: {}",
        original("ann@example.org")
    );
    let feedback = "fbl@bounces.test";
    let send = |rcpt: &str, report: &str| deliver(&end, dir.path(), &daemon, rcpt, report);
    assert_eq!(
        send(feedback, &arf("abuse", &original("ann@example.org"))),
        "250"
    );
    assert_eq!(
        send(feedback, &arf("not-spam", &original("bob@example.org"))),
        "250"
    );
    let cid_path = sent_to("cid@example.org").mail_from.clone();
    assert_eq!(send(&cid_path, &out_of_office(&cid_path)), "250");
    let foreign = "From: o@telco.test\r\nTo: dan@example.org\r\nMessage-ID: <m1@elsewhere.example>\r\n\r\nHello";
    assert_eq!(send(feedback, &arf("abuse", foreign)), "250");

    let complained = daemon.wait_for_campaign("fb", Duration::from_secs(10), |v| {
        v["counts"]["complained"] == 1
    });
    assert_eq!(complained["counts"]["unsubscribed"], 0, "{complained}");
    let ann: Vec<_> = events_of(&daemon, "fb", "ann")
        .into_iter()
        .filter(|e| e["type"] == "complained")
        .collect();
    assert_eq!(ann.len(), 1, "{ann:?}");
    assert_eq!(ann[0]["reason"], "abuse");
    assert_eq!(
        daemon.get("/v1/blacklist/email/ann@example.org").json()["why"],
        "complained"
    );
    for (customer, address) in [("bob", "bob@example.org"), ("cid", "cid@example.org")] {
        let types: Vec<_> = events_of(&daemon, "fb", customer)
            .into_iter()
            .map(|e| e["type"].as_str().unwrap().to_owned())
            .collect();
        assert_eq!(types, ["accepted", "submitted"], "{customer}");
        assert_eq!(
            daemon.get(&format!("/v1/blacklist/email/{address}")).status,
            404
        );
    }
    let audience = daemon
        .get("/v1/campaigns/fb/participants?outcome=complained")
        .text();
    assert!(
        audience.contains("\"ann\"") && !audience.contains("\"bob\""),
        "{audience}"
    );
    let metrics = daemon.get("/metrics").text();
    assert!(
        metrics.contains("sluice_bounces_unmatched_total 1\n"),
        "only the complaint about mail not ours: {metrics}"
    );
    assert!(
        metrics.contains("sluice_engagements_total{kind=\"complained\"} 1\n"),
        "{metrics}"
    );
    end.reached();
}
