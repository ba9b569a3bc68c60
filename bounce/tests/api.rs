//! The API as the gateway uses it: reports sluice will receive, built by
//! hand, with the token of the original message in the places it can be.

use bounce::{Format, Kind, Phase, Reason, classify, classify_reply};

fn dsn(action: &str, status: &str, diagnostic: &str) -> Vec<u8> {
    format!(
        "Return-Path: <>\r\n\
From: MAILER-DAEMON@mx.example.org (Mail Delivery System)\r\n\
To: b+tok-42.abc@bounce.example.net\r\n\
Subject: Undelivered Mail Returned to Sender\r\n\
MIME-Version: 1.0\r\n\
Content-Type: multipart/report; report-type=delivery-status; boundary=\"BB\"\r\n\
\r\n\
--BB\r\n\
Content-Type: text/plain\r\n\
\r\n\
I'm sorry to have to inform you that your message could not be delivered.\r\n\
\r\n\
--BB\r\n\
Content-Type: message/delivery-status\r\n\
\r\n\
Reporting-MTA: dns; mx.example.org\r\n\
\r\n\
Final-Recipient: rfc822; kim@example.jp\r\n\
Original-Recipient: rfc822;kim@example.jp\r\n\
Action: {action}\r\n\
Status: {status}\r\n\
Remote-MTA: dns; mx.example.jp\r\n\
Diagnostic-Code: smtp; {diagnostic}\r\n\
\r\n\
--BB\r\n\
Content-Type: message/rfc822\r\n\
\r\n\
Return-Path: <b+tok-42.abc@bounce.example.net>\r\n\
From: Shop <news@shop.example.net>\r\n\
To: kim@example.jp\r\n\
Message-ID: <m-1@shop.example.net>\r\n\
X-Sluice-Token: tok-42.abc\r\n\
Subject: Offer\r\n\
\r\n\
Hello\r\n\
--BB--\r\n"
    )
    .into_bytes()
}

#[test]
fn hard_dsn_with_token() {
    let b = classify(&dsn(
        "failed",
        "5.1.1",
        "550 5.1.1 <kim@example.jp>: Recipient address rejected: User unknown",
    ))
    .expect("classify");
    assert!(b.is_bounce);
    assert_eq!(b.format, Format::Dsn);
    assert_eq!(b.token.as_deref(), Some("tok-42.abc"));
    assert_eq!(
        b.original_message_id.as_deref(),
        Some("m-1@shop.example.net")
    );
    assert_eq!(
        b.original_return_path.as_deref(),
        Some("b+tok-42.abc@bounce.example.net")
    );
    let r = &b.recipients[0];
    assert_eq!(b.recipients.len(), 1);
    assert_eq!(r.address, "kim@example.jp");
    assert_eq!((r.kind, r.reason), (Kind::Hard, Reason::UserUnknown));
    assert_eq!(r.status.map(|s| s.to_string()).as_deref(), Some("5.1.1"));
    assert_eq!(r.reply_code, Some(550));
    assert_eq!(r.action.as_deref(), Some("failed"));
    assert_eq!(r.remote_mta.as_deref(), Some("mx.example.jp"));
}

#[test]
fn soft_dsn_mailbox_full() {
    let b = classify(&dsn("failed", "4.2.2", "452 4.2.2 Mailbox full")).expect("classify");
    let r = &b.recipients[0];
    assert_eq!((r.kind, r.reason), (Kind::Soft, Reason::MailboxFull));
}

#[test]
fn delayed_dsn_is_soft() {
    let b = classify(&dsn(
        "delayed",
        "4.4.1",
        "connect to mx.example.jp[192.0.2.1]:25: Connection refused",
    ))
    .expect("classify");
    let r = &b.recipients[0];
    assert_eq!(r.kind, Kind::Soft);
    assert_eq!(r.action.as_deref(), Some("delayed"));
}

#[test]
fn delivery_report_is_other() {
    let b = classify(&dsn("delivered", "2.0.0", "250 2.0.0 OK")).expect("classify");
    let r = &b.recipients[0];
    assert_eq!((r.kind, r.reason), (Kind::Other, Reason::Delivered));
}

#[test]
fn token_from_verp_address_alone() {
    let raw = b"From: MAILER-DAEMON@mx.example.org\r\n\
To: b+t-9@bounce.example.net\r\n\
Subject: failure notice\r\n\r\n\
<kim@example.jp>:\r\nRemote host said: 552 5.2.2 <kim@example.jp>... Mailbox Full\r\n";
    let b = classify(raw).expect("classify");
    assert_eq!(b.format, Format::Text);
    assert_eq!(b.token.as_deref(), Some("t-9"));
    assert_eq!(b.recipients[0].reason, Reason::MailboxFull);
    assert_eq!(b.recipients[0].reply_code, Some(552));
}

#[test]
fn vacation_auto_reply() {
    let raw = b"From: Kim <kim@example.jp>\r\n\
To: b+t-9@bounce.example.net\r\n\
Auto-Submitted: auto-replied\r\n\
Subject: Out of Office: Offer\r\n\r\n\
I am away until Monday.\r\n";
    let b = classify(raw).expect("classify");
    assert!(b.is_bounce);
    assert_eq!(b.format, Format::AutoReply);
    let r = &b.recipients[0];
    assert_eq!(r.address, "kim@example.jp");
    assert_eq!((r.kind, r.reason), (Kind::Other, Reason::Vacation));
}

#[test]
fn feedback_report() {
    let raw = b"From: fbl@isp.example\r\n\
To: abuse@shop.example.net\r\n\
Subject: Abuse report\r\n\
MIME-Version: 1.0\r\n\
Content-Type: multipart/report; report-type=feedback-report; boundary=\"F\"\r\n\r\n\
--F\r\nContent-Type: text/plain\r\n\r\nA complaint.\r\n\
--F\r\nContent-Type: message/feedback-report\r\n\r\n\
Feedback-Type: abuse\r\nVersion: 1\r\nOriginal-Rcpt-To: kim@example.jp\r\n\r\n\
--F\r\nContent-Type: message/rfc822\r\n\r\n\
Return-Path: <b+tok-7@bounce.example.net>\r\nMessage-ID: <m-7@shop.example.net>\r\nTo: kim@example.jp\r\n\r\nHi\r\n\
--F--\r\n";
    let b = classify(raw).expect("classify");
    assert_eq!(b.format, Format::Arf);
    assert_eq!(b.token.as_deref(), Some("tok-7"));
    let r = &b.recipients[0];
    assert_eq!(r.address, "kim@example.jp");
    assert_eq!((r.kind, r.reason), (Kind::Other, Reason::Feedback));
    assert_eq!(r.diagnostic.as_deref(), Some("abuse"));
}

#[test]
fn ordinary_mail_is_not_a_bounce() {
    let raw = b"From: Kim <kim@example.jp>\r\nTo: shop@example.net\r\nSubject: Question\r\n\r\nHow much is it?\r\n";
    let b = classify(raw).expect("classify");
    assert!(!b.is_bounce);
    assert_eq!(b.format, Format::None);
    assert!(b.recipients.is_empty());
}

#[test]
fn synchronous_replies() {
    let cases = [
        (
            550,
            "5.1.1",
            "5.1.1 <kim@example.jp>: Recipient address rejected: User unknown",
            Kind::Hard,
            Reason::UserUnknown,
        ),
        (
            452,
            "4.2.2",
            "4.2.2 Mailbox full",
            Kind::Soft,
            Reason::MailboxFull,
        ),
        (
            550,
            "5.1.2",
            "5.1.2 Host unknown",
            Kind::Hard,
            Reason::HostUnknown,
        ),
        (
            554,
            "5.7.1",
            "5.7.1 Message rejected as spam",
            Kind::Soft,
            Reason::SpamDetected,
        ),
        (
            421,
            "4.7.0",
            "4.7.0 Too many connections from your IP",
            Kind::Soft,
            Reason::TooManyConn,
        ),
        (
            550,
            "5.7.26",
            "5.7.26 Unauthenticated email is not accepted due to domain's DMARC policy",
            Kind::Soft,
            Reason::AuthFailure,
        ),
        (
            552,
            "5.3.4",
            "5.3.4 Message size exceeds fixed limit",
            Kind::Soft,
            Reason::MesgTooBig,
        ),
        (
            556,
            "5.1.10",
            "5.1.10 Recipient address has null MX",
            Kind::Hard,
            Reason::NotAccept,
        ),
    ];
    for (code, status, text, kind, reason) in cases {
        let v = classify_reply(code, status.parse().ok(), text, Some(Phase::RcptTo));
        assert_eq!((v.kind, v.reason), (kind, reason), "{code} {text}");
    }
}

#[test]
fn serialises_for_ndjson() {
    let b = classify(&dsn("failed", "5.1.1", "550 5.1.1 user unknown")).expect("classify");
    let json = serde_json::to_value(&b).expect("json");
    let r = &json["recipients"][0];
    assert_eq!(r["kind"], "hard");
    assert_eq!(r["reason"], "userunknown");
    assert_eq!(r["status"], "5.1.1");
    assert_eq!(r["replycode"], 550);
    assert_eq!(json["format"], "dsn");
}

/// A free-text failure whose copy of the original is not marked, and
/// reads like a delay (a parcel notice), failed all the same: its 550
/// says so.
#[test]
fn a_free_text_failure_quoting_a_delay_is_a_failure() {
    let raw = b"Return-Path: <>\r\n\
From: MAILER-DAEMON@mx.example.org\r\n\
To: b+tok-42.abc@bounce.example.net\r\n\
Subject: Mail delivery failed\r\n\
\r\n\
This message was created automatically by mail delivery software.\r\n\
A message that you sent could not be delivered to one or more of its\r\n\
recipients. This is a permanent error. The following address(es) failed:\r\n\
\r\n\
  kim@example.jp\r\n\
    SMTP error from remote mail server after RCPT TO:<kim@example.jp>:\r\n\
    550 5.1.1 User unknown\r\n\
\r\n\
Your parcel has not yet been delivered: delivery attempts will continue.\r\n";
    let bounce = classify(raw).expect("classified");
    assert_eq!(bounce.format, Format::Text);
    let r = &bounce.recipients[0];
    assert_eq!((r.kind, r.action.as_deref()), (Kind::Hard, Some("failed")));
}
