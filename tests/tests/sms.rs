//! SMS campaigns end to end: the real daemon against the project's fake SMSC
//! (real SMPP 3.4 over loopback) and against the npm `smpp` server.
//!
//! Every test waits on what the peer or the daemon reports (polling with a
//! deadline), never on a fixed sleep, and asserts exact outcomes: the octets
//! the SMSC received, the facts in the feed, the metrics.

#![allow(clippy::unwrap_used)] // a failed unwrap is a failed test

use std::{
    collections::{BTreeMap, BTreeSet},
    time::{Duration, Instant},
};

use serde_json::{Value, json};
use sluice_e2e::{
    Daemon,
    npm_smsc::NpmSmsc,
    smsc::{
        BindMode, DeliverKind, FakeSmsc, FinalState, Garbage, MessageIds, ReceiptFormat,
        ReceivedSm, SmscBehaviour, status,
    },
};

/// Longest wait for anything in these tests.
const T: Duration = Duration::from_secs(20);

/// The account the daemon binds with.
const SYSTEM_ID: &str = "sluice";
const PASSWORD: &str = "secret";

/// A fake SMSC that lets the daemon's account in.
fn our_smsc() -> SmscBehaviour {
    SmscBehaviour::default().account(SYSTEM_ID, PASSWORD)
}

fn smsc_config(port: u16, extra: &str) -> String {
    format!(
        "[[sms.smsc]]\nhost = \"127.0.0.1\"\nport = {port}\nsystem_id = \"{SYSTEM_ID}\"\npassword_env = \"SMSC_PASSWORD\"\nreconnect_min_ms = 50\nreconnect_max_secs = 1\nthrottle_pause_ms = 50\n{extra}"
    )
}

/// Starts the daemon with `[sms]` settings `sms` and `[[sms.smsc]]` settings
/// `extra` (our account), without waiting for the bind.
fn start_unready(dir: &std::path::Path, port: u16, sms: &str, extra: &str) -> Daemon {
    Daemon::start_with_env(
        dir,
        &format!("[sms]\n{sms}\n{}", smsc_config(port, extra)),
        &[("SMSC_PASSWORD", PASSWORD)],
    )
}

/// Starts the daemon and waits until its bind is up (`/readyz` 200), so that
/// no message of a campaign started next meets an unbound SMSC.
fn start(dir: &std::path::Path, smsc: &FakeSmsc, extra: &str) -> Daemon {
    start_with(dir, smsc, "", extra)
}

fn start_with(dir: &std::path::Path, smsc: &FakeSmsc, sms: &str, extra: &str) -> Daemon {
    let daemon = start_unready(dir, smsc.port(), sms, extra);
    wait_ready(&daemon);
    daemon
}

fn wait_ready(daemon: &Daemon) {
    wait_until("/readyz 200", || daemon.get("/readyz").status == 200);
}

/// Polls `done` every 50 ms until it holds, or panics after [`T`].
fn wait_until(what: &str, mut done: impl FnMut() -> bool) {
    let start = Instant::now();
    while !done() {
        assert!(start.elapsed() < T, "no {what} within {T:?}");
        std::thread::sleep(Duration::from_millis(50));
    }
}

fn number(i: usize) -> String {
    format!("+49151000000{i:02}")
}

fn numbers(n: usize) -> Vec<String> {
    (0..n).map(number).collect()
}

fn declare(daemon: &Daemon, id: &str, text: &str, participants: usize) {
    let decl = json!({"channel": "sms", "name": id, "expected_participants": participants,
        "content": {"sms": {"from": "Sluice", "text": text}}});
    daemon.declare(id, &decl);
}

/// A campaign to customers `c0..` at `numbers`, each with field `name` = `N{i}`.
fn sms_campaign(daemon: &Daemon, id: &str, text: &str, numbers: &[String]) {
    declare(daemon, id, text, numbers.len());
    let lines: Vec<Value> = numbers
        .iter()
        .enumerate()
        .map(|(i, n)| json!({"customer": format!("c{i}"), "address": n, "fields": {"name": format!("N{i}")}}))
        .collect();
    let r = daemon.upload(id, &lines);
    assert_eq!(r["accepted"], numbers.len(), "{r}");
    daemon.start_campaign(id);
}

fn facts(daemon: &Daemon, kind: &str) -> Vec<Value> {
    daemon
        .all_events()
        .into_iter()
        .filter(|e| e["type"] == kind)
        .collect()
}

fn wait_facts(daemon: &Daemon, kind: &str, count: usize) -> Vec<Value> {
    let start = Instant::now();
    loop {
        let f = facts(daemon, kind);
        if f.len() >= count {
            return f;
        }
        assert!(
            start.elapsed() < T,
            "{} `{kind}` facts of {count}: {:?}",
            f.len(),
            daemon.all_events()
        );
        std::thread::sleep(Duration::from_millis(50));
    }
}

/// The customers of `facts`, sorted, duplicates kept.
fn customers(facts: &[Value]) -> Vec<String> {
    let mut c: Vec<String> = facts
        .iter()
        .map(|f| f["customer"].as_str().unwrap().to_owned())
        .collect();
    c.sort();
    c
}

fn customer_ids(n: usize) -> Vec<String> {
    let mut c: Vec<String> = (0..n).map(|i| format!("c{i}")).collect();
    c.sort();
    c
}

/// The sum of a metric's samples whose labels contain `labels`.
fn metric(daemon: &Daemon, name: &str, labels: &str) -> f64 {
    daemon
        .get("/metrics")
        .text()
        .lines()
        .filter(|l| !l.starts_with('#'))
        .filter_map(|l| {
            let (key, value) = l.rsplit_once(' ')?;
            let (n, rest) = key.split_once('{').unwrap_or((key, ""));
            (n == name && rest.contains(labels))
                .then(|| value.parse::<f64>().ok())
                .flatten()
        })
        .sum()
}

/// Waits until every submit the fake accepted has had its receipt sent and
/// acknowledged: from then on, the facts the receipts make are in the feed.
fn wait_receipts_settled(smsc: &FakeSmsc) {
    smsc.wait_until("every receipt acknowledged", T, |o| {
        let accepted = o.received.iter().filter(|r| r.message_id.is_some()).count();
        let receipts: Vec<_> = o.receipts().collect();
        receipts.len() == accepted && receipts.iter().all(|d| d.response.is_some())
    });
}

/// How many submits to each destination the fake accepted (gave an id).
fn accepted_per_destination(received: &[ReceivedSm]) -> BTreeMap<String, usize> {
    let mut m = BTreeMap::new();
    for r in received.iter().filter(|r| r.message_id.is_some()) {
        *m.entry(r.destination_addr.clone()).or_insert(0) += 1;
    }
    m
}

/// `number(i)` as the SMSC sees it (no `+`).
fn wire(number: &str) -> String {
    number.trim_start_matches('+').to_owned()
}

#[test]
fn every_message_reaches_the_smsc_and_every_receipt_becomes_a_fact() {
    let dir = tempfile::tempdir().unwrap();
    let smsc = FakeSmsc::start(our_smsc().final_state("4915100000001", FinalState::Undeliverable));
    let daemon = start(dir.path(), &smsc, "");
    sms_campaign(
        &daemon,
        "s1",
        "Hello {{name}}, your offer is ready.",
        &numbers(3),
    );
    let received = smsc.wait_for(3, T);
    let mut bodies: Vec<(String, Vec<u8>)> = received
        .iter()
        .map(|r| (r.destination_addr.clone(), r.short_message.clone()))
        .collect();
    bodies.sort();
    assert_eq!(bodies[0].1, b"Hello N0, your offer is ready.");
    assert_eq!(bodies[1].0, "4915100000001");
    assert!(
        received
            .iter()
            .all(|r| r.data_coding == 0 && r.dest_ton == 1 && r.registered_delivery == 1)
    );
    let delivered = wait_facts(&daemon, "delivered", 2);
    let failed = wait_facts(&daemon, "failed", 1);
    assert_eq!(delivered.len(), 2);
    assert_eq!(failed[0]["customer"], "c1");
    assert!(
        failed[0]["reason"]
            .as_str()
            .unwrap_or_default()
            .contains("UNDELIV"),
        "{failed:?}"
    );
}

/// Runs a 6-message campaign against a fake throttling as `behaviour` says;
/// every message must be delivered, none failed or retried, and every
/// throttle answer counted.
fn throttled_campaign(behaviour: SmscBehaviour) {
    let dir = tempfile::tempdir().unwrap();
    let smsc = FakeSmsc::start(behaviour.account(SYSTEM_ID, PASSWORD));
    let daemon = start(dir.path(), &smsc, "");
    sms_campaign(&daemon, "t", "Hi {{name}}", &numbers(6));
    let delivered = wait_facts(&daemon, "delivered", 6);
    wait_receipts_settled(&smsc);
    assert_eq!(customers(&delivered), customer_ids(6));
    assert_eq!(customers(&facts(&daemon, "delivered")), customer_ids(6));
    assert_eq!(facts(&daemon, "failed"), Vec::<Value>::new());
    assert_eq!(
        facts(&daemon, "retry_scheduled"),
        Vec::<Value>::new(),
        "a throttle pauses the bind; it is no failed attempt"
    );
    let o = smsc.observed();
    assert!(o.throttled > 0, "the fake throttled nothing");
    // Each throttled submit was sent again: one accepted per message.
    assert_eq!(o.received.len() as u64, 6 + o.throttled);
    assert!(
        accepted_per_destination(&o.received)
            .values()
            .all(|&n| n == 1)
    );
    assert_eq!(
        metric(&daemon, "sluice_smpp_throttled_total", ""),
        o.throttled as f64
    );
}

#[test]
fn throttled_submits_pause_the_bind_and_every_message_is_delivered() {
    throttled_campaign(SmscBehaviour::default().throttle_next(4, status::THROTTLED));
}

#[test]
fn a_full_queue_on_every_third_submit_slows_the_bind_and_fails_nothing() {
    throttled_campaign(SmscBehaviour::default().throttle_every(3, status::MSGQFUL));
}

#[test]
fn a_connection_dropped_mid_window_comes_back_and_each_message_is_delivered_once() {
    let dir = tempfile::tempdir().unwrap();
    // Submits 1 and 2 get no answer; the 3rd closes the connection.
    let smsc = FakeSmsc::start(our_smsc().drop_after(3, 3));
    let window = 4;
    let daemon = start(
        dir.path(),
        &smsc,
        &format!("window = {window}\nresponse_timeout_secs = 2\n"),
    );
    sms_campaign(&daemon, "d", "Hi {{name}}", &numbers(6));
    let delivered = wait_facts(&daemon, "delivered", 6);
    wait_receipts_settled(&smsc);
    assert_eq!(customers(&delivered), customer_ids(6));
    assert_eq!(customers(&facts(&daemon, "delivered")), customer_ids(6));
    assert_eq!(facts(&daemon, "failed"), Vec::<Value>::new());
    let o = smsc.observed();
    assert!(
        o.connections >= 2,
        "no reconnect: {} connection(s)",
        o.connections
    );
    assert!(o.bound() >= 2);
    let first: Vec<_> = o.received.iter().filter(|r| r.connection == 1).collect();
    assert!(first.len() >= 3, "{first:?}");
    assert!(first.iter().all(|r| r.status.is_none()), "{first:?}");
    // Each message caught in the drop was scheduled again, not failed.
    let retried: BTreeSet<String> = facts(&daemon, "retry_scheduled")
        .iter()
        .map(|f| f["customer"].as_str().unwrap().to_owned())
        .collect();
    for r in &first {
        let i: usize = r.destination_addr[r.destination_addr.len() - 2..]
            .parse()
            .unwrap();
        assert!(retried.contains(&format!("c{i}")), "{retried:?} {r:?}");
    }
    // What the drop left unanswered went again: at most a window's worth of
    // duplicates at the SMSC, and each message accepted exactly once.
    assert!(
        o.received.len() <= 6 + window,
        "{} submits for 6 messages",
        o.received.len()
    );
    let accepted = accepted_per_destination(&o.received);
    assert_eq!(accepted.len(), 6, "{accepted:?}");
    assert!(accepted.values().all(|&n| n == 1), "{accepted:?}");
}

#[test]
fn submits_unanswered_past_the_response_timeout_are_retried_and_delivered() {
    let dir = tempfile::tempdir().unwrap();
    let smsc = FakeSmsc::start(our_smsc().stall(2, Duration::from_secs(2)));
    let daemon = start_with(
        dir.path(),
        &smsc,
        "max_attempts = 8",
        "response_timeout_secs = 1\n",
    );
    sms_campaign(&daemon, "st", "Hi {{name}}", &numbers(5));
    let delivered = wait_facts(&daemon, "delivered", 5);
    wait_receipts_settled(&smsc);
    assert_eq!(customers(&delivered), customer_ids(5));
    assert_eq!(customers(&facts(&daemon, "delivered")), customer_ids(5));
    assert_eq!(facts(&daemon, "failed"), Vec::<Value>::new());
    let o = smsc.observed();
    let unanswered = o.received.iter().filter(|r| r.status.is_none()).count();
    assert!(unanswered >= 1, "the fake stalled nothing");
    let retries = facts(&daemon, "retry_scheduled");
    assert!(retries.len() >= unanswered, "{retries:?}");
    assert!(
        retries
            .iter()
            .all(|f| f["reason"].as_str().unwrap().contains("timed out")),
        "{retries:?}"
    );
    let accepted = accepted_per_destination(&o.received);
    assert_eq!(accepted.len(), 5, "{accepted:?}");
    assert!(accepted.values().all(|&n| n == 1), "{accepted:?}");
}

#[test]
fn garbage_from_the_smsc_drops_the_session_which_comes_back_and_delivers_all() {
    let dir = tempfile::tempdir().unwrap();
    // Receipts are held until the new session is up: the fake, unlike a real
    // SMSC, does not resend a deliver_sm a dead connection never answered.
    let smsc = FakeSmsc::start(
        our_smsc()
            .hold_receipts()
            .garbage_after(2, Garbage::CommandLength7),
    );
    let daemon = start_with(dir.path(), &smsc, "receipt_wait_secs = 1", "");
    sms_campaign(&daemon, "g", "Hi {{name}}", &numbers(5));
    wait_facts(&daemon, "submitted", 5);
    smsc.wait_for_binds(2, T);
    // The dead connection is gone at the fake too: receipts go to the new one.
    wait_until("one bound connection", || smsc.bound_now() == 1);
    assert_eq!(daemon.get("/healthz").status, 200);
    wait_ready(&daemon);
    smsc.release_receipts();
    let delivered = wait_facts(&daemon, "delivered", 5);
    wait_receipts_settled(&smsc);
    assert_eq!(customers(&delivered), customer_ids(5));
    assert_eq!(customers(&facts(&daemon, "delivered")), customer_ids(5));
    assert_eq!(customers(&facts(&daemon, "submitted")), customer_ids(5));
    assert_eq!(facts(&daemon, "failed"), Vec::<Value>::new());
    let o = smsc.observed();
    assert_eq!(o.garbage_sent, 1);
    assert!(
        o.connections >= 2,
        "no reconnect: {} connection(s)",
        o.connections
    );
    assert_eq!(daemon.get("/healthz").status, 200);
    // Answers lost with the connection may have made duplicates at the
    // SMSC; their receipts match nothing and are kept as unmatched.
    let duplicates = o.received.iter().filter(|r| r.message_id.is_some()).count() - 5;
    assert_eq!(
        metric(
            &daemon,
            "sluice_smpp_receipts_total",
            "result=\"unmatched\""
        ),
        duplicates as f64
    );
}

#[test]
fn an_unknown_command_from_the_smsc_is_nacked_and_the_session_carries_on() {
    let dir = tempfile::tempdir().unwrap();
    // A well-formed header with command id 0x00000999 after the 2nd answer.
    let smsc = FakeSmsc::start(our_smsc().garbage_after(2, Garbage::BogusCommandId));
    let daemon = start(dir.path(), &smsc, "");
    sms_campaign(&daemon, "u", "Hi {{name}}", &numbers(4));
    let delivered = wait_facts(&daemon, "delivered", 4);
    wait_receipts_settled(&smsc);
    assert_eq!(customers(&delivered), customer_ids(4));
    assert_eq!(facts(&daemon, "failed"), Vec::<Value>::new());
    let o = smsc.wait_until("a generic_nack", T, |o| !o.generic_nacks.is_empty());
    assert_eq!(o.garbage_sent, 1);
    // SMPP 3.4 §4.3: an unknown command_id is answered generic_nack
    // ESME_RINVCMDID; the session stays up.
    assert_eq!(o.generic_nacks, [status::INVCMDID]);
    assert_eq!(o.connections, 1);
    assert_eq!(daemon.get("/healthz").status, 200);
}

#[test]
fn a_receipt_ahead_of_its_submit_sm_resp_is_still_matched() {
    let dir = tempfile::tempdir().unwrap();
    let smsc = FakeSmsc::start(our_smsc().receipt_before_resp());
    let daemon = start(dir.path(), &smsc, "name = \"main-smsc\"");
    sms_campaign(&daemon, "rb", "Hi {{name}}", &numbers(3));
    let delivered = wait_facts(&daemon, "delivered", 3);
    wait_receipts_settled(&smsc);
    assert_eq!(customers(&delivered), customer_ids(3));
    let o = smsc.observed();
    // Each receipt went out on the submitting connection before the response.
    assert_eq!(o.receipts().count(), 3);
    assert!(o.receipts().all(|d| d.response == Some(status::OK)));
    // Metrics name the SMSC as configured (`sms.smsc[].name`).
    let matched = "smsc=\"main-smsc\",bind=\"0\",result=\"matched\"";
    assert_eq!(metric(&daemon, "sluice_smpp_receipts_total", matched), 3.0);
    let unmatched = "result=\"unmatched\"";
    assert_eq!(
        metric(&daemon, "sluice_smpp_receipts_total", unmatched),
        0.0
    );
}

#[test]
fn text_only_receipts_with_decimal_ids_match_hex_submit_ids() {
    let dir = tempfile::tempdir().unwrap();
    let smsc = FakeSmsc::start(
        our_smsc()
            .message_ids(MessageIds::UpperHex)
            .receipt_text_ids(MessageIds::Decimal)
            .receipts(ReceiptFormat::TextOnly),
    );
    let daemon = start(dir.path(), &smsc, "");
    sms_campaign(&daemon, "rt", "Hi {{name}}", &numbers(3));
    let delivered = wait_facts(&daemon, "delivered", 3);
    wait_receipts_settled(&smsc);
    assert_eq!(customers(&delivered), customer_ids(3));
    for d in smsc.receipts_sent() {
        let DeliverKind::Receipt {
            message_id,
            text_id,
            with_tlvs,
            ..
        } = &d.kind
        else {
            unreachable!()
        };
        assert!(!with_tlvs);
        assert_eq!(
            u64::from_str_radix(message_id, 16).unwrap(),
            text_id.parse::<u64>().unwrap()
        );
        assert!(
            d.text().starts_with(&format!("id:{text_id} ")),
            "{}",
            d.text()
        );
    }
    let submitted = facts(&daemon, "submitted");
    assert!(
        submitted
            .iter()
            .all(|f| f["reply"].as_str().unwrap().contains("message_id=A")),
        "{submitted:?}"
    );
    let matched = "result=\"matched\"";
    assert_eq!(metric(&daemon, "sluice_smpp_receipts_total", matched), 3.0);
}

#[test]
fn held_receipts_give_delivered_facts_only_once_released() {
    let dir = tempfile::tempdir().unwrap();
    let smsc = FakeSmsc::start(our_smsc().hold_receipts());
    let daemon = start(dir.path(), &smsc, "");
    sms_campaign(&daemon, "h", "Hi {{name}}", &numbers(3));
    wait_facts(&daemon, "submitted", 3);
    wait_until("3 held receipts", || smsc.held_receipts() == 3);
    assert_eq!(smsc.receipts_sent(), Vec::new());
    assert_eq!(facts(&daemon, "delivered"), Vec::<Value>::new());
    smsc.release_receipts();
    let delivered = wait_facts(&daemon, "delivered", 3);
    wait_receipts_settled(&smsc);
    assert_eq!(customers(&delivered), customer_ids(3));
    assert_eq!(customers(&facts(&daemon, "delivered")), customer_ids(3));
}

#[test]
fn undeliverable_rejected_and_expired_receipts_fail_with_the_receipt_state() {
    for format in [ReceiptFormat::TlvAndText, ReceiptFormat::TextOnly] {
        let dir = tempfile::tempdir().unwrap();
        let smsc = FakeSmsc::start(
            our_smsc()
                .receipts(format)
                .final_state(&wire(&number(1)), FinalState::Undeliverable)
                .final_state(&wire(&number(2)), FinalState::Rejected)
                .final_state(&wire(&number(3)), FinalState::Expired),
        );
        let daemon = start(dir.path(), &smsc, "");
        sms_campaign(&daemon, "f", "Hi {{name}}", &numbers(4));
        wait_facts(&daemon, "failed", 3);
        wait_receipts_settled(&smsc);
        let delivered = facts(&daemon, "delivered");
        assert_eq!(customers(&delivered), ["c0"], "{format:?}");
        let failed: BTreeMap<String, String> = facts(&daemon, "failed")
            .iter()
            .map(|f| {
                (
                    f["customer"].as_str().unwrap().to_owned(),
                    f["reason"].as_str().unwrap().to_owned(),
                )
            })
            .collect();
        let expected: BTreeMap<String, String> = [
            ("c1", "UNDELIV (err 001)"),
            ("c2", "REJECTD (err 001)"),
            ("c3", "EXPIRED (err 001)"),
        ]
        .map(|(c, r)| (c.to_owned(), r.to_owned()))
        .into();
        assert_eq!(failed, expected, "{format:?}");
        assert_eq!(facts(&daemon, "failed").len(), 3, "{format:?}");
    }
}

/// The text of a GSM short_message whose every octet is a printable ASCII
/// character with the same code in GSM 03.38 (letters, digits, space, `.`).
fn ascii_septets(octets: &[u8]) -> String {
    assert!(
        octets
            .iter()
            .all(|b| b.is_ascii_alphanumeric() || matches!(b, b' ' | b'.')),
        "{octets:02X?}"
    );
    String::from_utf8(octets.to_vec()).unwrap()
}

#[test]
fn texts_go_out_byte_exact_in_gsm_with_extensions_in_parts_and_in_ucs2() {
    let dir = tempfile::tempdir().unwrap();
    let smsc = FakeSmsc::start(our_smsc().hold_receipts());
    let daemon = start(dir.path(), &smsc, "");
    let long: String = "Sluice sends long texts in parts. "
        .repeat(6)
        .chars()
        .take(200)
        .collect();
    assert_eq!(long.len(), 200);
    let ucs2 = "Привет, мир 👋";
    declare(&daemon, "enc", "{{body}}", 3);
    let r = daemon.upload(
        "enc",
        &[
            json!({"customer": "gsm", "address": number(0), "fields": {"body": "€ [x]"}}),
            json!({"customer": "long", "address": number(1), "fields": {"body": long}}),
            json!({"customer": "ucs2", "address": number(2), "fields": {"body": ucs2}}),
        ],
    );
    assert_eq!(r["accepted"], 3, "{r}");
    daemon.start_campaign("enc");
    let received = smsc.wait_for(4, T);
    wait_facts(&daemon, "submitted", 3);
    assert_eq!(smsc.received().len(), 4);
    let to = |i: usize| -> Vec<&ReceivedSm> {
        received
            .iter()
            .filter(|r| r.destination_addr == wire(&number(i)))
            .collect()
    };

    // GSM 03.38, unpacked: € and [ ] are ESC + septet.
    let gsm = to(0);
    assert_eq!(gsm.len(), 1);
    assert_eq!((gsm[0].data_coding, gsm[0].esm_class), (0, 0));
    assert_eq!(
        gsm[0].short_message,
        [0x1B, 0x65, 0x20, 0x1B, 0x3C, 0x78, 0x1B, 0x3E]
    );
    assert_eq!(gsm[0].message_payload, None);

    // 200 septets: two parts of 153 + 47 behind `05 00 03 REF 02 SEQ`.
    let mut parts = to(1);
    assert_eq!(parts.len(), 2);
    parts.sort_by_key(|p| p.short_message[5]);
    let reference = parts[0].short_message[3];
    let mut text = String::new();
    for (i, p) in parts.iter().enumerate() {
        assert_eq!(p.data_coding, 0);
        assert_eq!(p.esm_class & 0x40, 0x40, "UDHI");
        assert_eq!(
            p.short_message[..6],
            [0x05, 0x00, 0x03, reference, 0x02, i as u8 + 1]
        );
        text.push_str(&ascii_septets(&p.short_message[6..]));
    }
    assert_eq!(parts[0].short_message.len(), 6 + 153);
    assert_eq!(text, long);

    // Anything outside GSM 03.38: UCS-2 as UTF-16BE (the emoji a surrogate pair).
    let u = to(2);
    assert_eq!(u.len(), 1);
    assert_eq!((u[0].data_coding, u[0].esm_class), (8, 0));
    let utf16: Vec<u8> = ucs2.encode_utf16().flat_map(u16::to_be_bytes).collect();
    assert_eq!(u[0].short_message, utf16);

    // One delivered fact per message, the long one's only once both parts'
    // receipts are in.
    let submitted = facts(&daemon, "submitted");
    let long_reply = submitted.iter().find(|f| f["customer"] == "long").unwrap()["reply"]
        .as_str()
        .unwrap()
        .to_owned();
    let ids: Vec<&str> = parts
        .iter()
        .map(|p| p.message_id.as_deref().unwrap())
        .collect();
    assert!(
        long_reply.ends_with(&format!("message_id={},{}", ids[0], ids[1])),
        "{long_reply}"
    );
    wait_until("4 held receipts", || smsc.held_receipts() == 4);
    let singles: Vec<&str> = [to(0)[0], to(2)[0]]
        .iter()
        .map(|r| r.message_id.as_deref().unwrap())
        .collect();
    assert_eq!(
        smsc.release_receipts_of(&[singles[0], singles[1], ids[0]]),
        3
    );
    smsc.wait_for_receipt_acks(3, T);
    assert_eq!(
        customers(&wait_facts(&daemon, "delivered", 2)),
        ["gsm", "ucs2"]
    );
    assert_eq!(
        customers(&facts(&daemon, "delivered")),
        ["gsm", "ucs2"],
        "delivered before its second part's receipt"
    );
    smsc.release_receipts();
    smsc.wait_for_receipt_acks(4, T);
    wait_facts(&daemon, "delivered", 3);
    assert_eq!(
        customers(&facts(&daemon, "delivered")),
        ["gsm", "long", "ucs2"]
    );
    let matched = "result=\"matched\"";
    assert_eq!(metric(&daemon, "sluice_smpp_receipts_total", matched), 4.0);
}

#[test]
fn a_destination_the_smsc_refuses_permanently_fails_alone_with_the_status_name() {
    let dir = tempfile::tempdir().unwrap();
    let smsc = FakeSmsc::start(our_smsc().submit_error(&wire(&number(1)), status::INVDSTADR));
    let daemon = start(dir.path(), &smsc, "");
    sms_campaign(&daemon, "p", "Hi {{name}}", &numbers(3));
    let failed = wait_facts(&daemon, "failed", 1);
    let delivered = wait_facts(&daemon, "delivered", 2);
    wait_receipts_settled(&smsc);
    assert_eq!(customers(&delivered), ["c0", "c2"]);
    assert_eq!(failed.len(), 1);
    assert_eq!(failed[0]["customer"], "c1");
    assert_eq!(failed[0]["reason"], "ESME_RINVDSTADR (0x0000000B)");
    assert_eq!(facts(&daemon, "retry_scheduled"), Vec::<Value>::new());
    let to_refused: Vec<_> = smsc
        .received()
        .into_iter()
        .filter(|r| r.destination_addr == wire(&number(1)))
        .collect();
    assert_eq!(to_refused.len(), 1, "a permanent refusal is not retried");
    assert_eq!(to_refused[0].status, Some(status::INVDSTADR));
    assert_eq!(facts(&daemon, "failed").len(), 1);
}

#[test]
fn refused_binds_keep_readyz_503_and_are_retried_until_the_smsc_lets_them_in() {
    let dir = tempfile::tempdir().unwrap();
    let smsc = FakeSmsc::start(our_smsc().refuse_binds());
    let daemon = start_unready(dir.path(), smsc.port(), "", "");
    // A campaign started meanwhile waits for the SMSC; nothing fails.
    sms_campaign(&daemon, "rb", "Hi {{name}}", &numbers(2));
    smsc.wait_until("3 refused binds", T, |o| o.binds.len() >= 3);
    assert_eq!(daemon.get("/readyz").status, 503);
    assert_eq!(daemon.get("/healthz").status, 200);
    assert_eq!(metric(&daemon, "sluice_smpp_bind_up", ""), 0.0);
    let binds = smsc.binds();
    assert!(
        binds.iter().all(|b| b.status == status::BINDFAIL),
        "{binds:?}"
    );
    assert!(binds.iter().all(|b| b.mode == BindMode::Transceiver));
    assert_eq!(smsc.received(), Vec::new());

    smsc.configure(|b| b.refuse_binds = false);
    wait_ready(&daemon);
    wait_until("sluice_smpp_bind_up 1", || {
        metric(&daemon, "sluice_smpp_bind_up", "") == 1.0
    });
    let delivered = wait_facts(&daemon, "delivered", 2);
    assert_eq!(customers(&delivered), customer_ids(2));
    assert_eq!(facts(&daemon, "failed"), Vec::<Value>::new());
    let retries = facts(&daemon, "retry_scheduled");
    assert!(
        retries.iter().all(|f| f["reason"] == "no SMSC bound"),
        "{retries:?}"
    );
    assert_eq!(smsc.received().len(), 2);
}

#[test]
fn a_wrong_password_is_retried_until_the_smsc_accepts_it() {
    let dir = tempfile::tempdir().unwrap();
    let smsc = FakeSmsc::start(SmscBehaviour::default().account(SYSTEM_ID, "other"));
    let daemon = start_unready(dir.path(), smsc.port(), "", "");
    smsc.wait_until("3 refused binds", T, |o| o.binds.len() >= 3);
    assert_eq!(daemon.get("/readyz").status, 503);
    assert_eq!(daemon.get("/healthz").status, 200);
    let binds = smsc.binds();
    assert!(
        binds
            .iter()
            .all(|b| b.status == status::INVPASWD && b.password == PASSWORD),
        "{binds:?}"
    );
    smsc.configure(|b| b.accounts = vec![(SYSTEM_ID.into(), PASSWORD.into())]);
    wait_ready(&daemon);
    sms_campaign(&daemon, "pw", "Hi {{name}}", &numbers(2));
    let delivered = wait_facts(&daemon, "delivered", 2);
    assert_eq!(customers(&delivered), customer_ids(2));
}

#[test]
fn stop_from_a_handset_opts_the_number_out_of_later_campaigns() {
    let dir = tempfile::tempdir().unwrap();
    let smsc = FakeSmsc::start(our_smsc());
    let daemon = start(dir.path(), &smsc, "");
    let to = numbers(3);
    sms_campaign(&daemon, "o1", "Hi {{name}}", &to);
    wait_facts(&daemon, "delivered", 3);
    wait_receipts_settled(&smsc);

    // A text that is not a STOP word changes nothing.
    smsc.send_mo(&wire(&to[0]), "Sluice", "Stop sending me this?");
    smsc.wait_until("the MO answered", T, |o| {
        o.mos().count() == 1 && o.mos().all(|d| d.response == Some(status::OK))
    });
    assert_eq!(facts(&daemon, "opted_out"), Vec::<Value>::new());
    let path = |n: &str| format!("/v1/blacklist/sms/{}", n.replace('+', "%2B"));
    assert_eq!(daemon.get(&path(&to[0])).status, 404);

    smsc.send_mo(&wire(&to[1]), "Sluice", " stop ");
    let opted = wait_facts(&daemon, "opted_out", 1);
    assert_eq!(opted.len(), 1);
    assert_eq!(opted[0]["customer"], "c1");
    assert_eq!(opted[0]["campaign"], "o1");
    assert!(
        smsc.mo_sent()
            .iter()
            .all(|d| d.response == Some(status::OK))
    );
    let r = daemon.get(&path(&to[1]));
    assert_eq!(r.status, 200, "{}", r.text());
    assert_eq!(r.json()["why"], "opted_out");
    assert_eq!(daemon.get(&path(&to[0])).status, 404);

    let before = smsc.received().len();
    sms_campaign(&daemon, "o2", "Again {{name}}", &to);
    let suppressed = wait_facts(&daemon, "suppressed", 1);
    let delivered = wait_facts(&daemon, "delivered", 5);
    wait_receipts_settled(&smsc);
    assert_eq!(suppressed.len(), 1);
    assert_eq!(
        (&suppressed[0]["customer"], &suppressed[0]["campaign"]),
        (&json!("c1"), &json!("o2"))
    );
    assert_eq!(suppressed[0]["why"], "opted_out");
    let second: Vec<_> = delivered.iter().filter(|f| f["campaign"] == "o2").collect();
    assert_eq!(
        customers(&second.into_iter().cloned().collect::<Vec<_>>()),
        ["c0", "c2"]
    );
    let resent: BTreeSet<String> = smsc.received()[before..]
        .iter()
        .map(|r| r.destination_addr.clone())
        .collect();
    assert_eq!(resent, BTreeSet::from([wire(&to[0]), wire(&to[2])]));
    assert_eq!(facts(&daemon, "opted_out").len(), 1);
}

#[test]
fn invalid_numbers_and_too_long_texts_are_refused_at_the_api() {
    let dir = tempfile::tempdir().unwrap();
    let smsc = FakeSmsc::start(our_smsc());
    let daemon = start_with(dir.path(), &smsc, "max_parts = 2", "");

    // 307 septets without any field: 3 parts of 153.
    let decl = json!({"channel": "sms", "name": "long", "expected_participants": 1,
        "content": {"sms": {"from": "Sluice", "text": format!("{{{{name}}}}{}", "x".repeat(307))}}});
    let r = daemon.put_json("/v1/campaigns/long", &decl);
    assert_eq!(r.status, 422, "{}", r.text());
    assert_eq!(
        r.json()["problems"],
        json!(["content.sms.text: text needs 3 parts in GSM 7-bit, at most 2 allowed"])
    );

    // 300 septets without the field: 2 parts; the field decides.
    declare(
        &daemon,
        "up",
        &format!("{{{{name}}}}{}", "y".repeat(300)),
        5,
    );
    let r = daemon.upload(
        "up",
        &[
            json!({"customer": "ok", "address": "+4915100000001", "fields": {"name": "Ann"}}),
            json!({"customer": "plus", "address": "4915100000002", "fields": {"name": "Ann"}}),
            json!({"customer": "letters", "address": "+49151abc0003", "fields": {"name": "Ann"}}),
            json!({"customer": "longname", "address": "+4915100000004", "fields": {"name": "A".repeat(7)}}),
            json!({"customer": "cyrillic", "address": "+4915100000005", "fields": {"name": "Дима"}}),
        ],
    );
    assert_eq!(r["accepted"], 1, "{r}");
    assert_eq!(
        r["rejected"],
        json!([
            {"line": 2, "error": "address `4915100000002` is not an E.164 number"},
            {"line": 3, "error": "address `+49151abc0003` is not an E.164 number"},
            {"line": 4, "error": "text needs 3 parts in GSM 7-bit, at most 2 allowed"},
            {"line": 5, "error": "text needs 5 parts in UCS-2, at most 2 allowed"},
        ])
    );
    daemon.start_campaign("up");
    let delivered = wait_facts(&daemon, "delivered", 1);
    assert_eq!(customers(&delivered), ["ok"]);
    let received = smsc.received();
    assert_eq!(received.len(), 2, "one message in two parts");
    assert!(
        received
            .iter()
            .all(|r| r.destination_addr == "4915100000001")
    );
}

#[test]
fn pair_mode_submits_on_the_transmitter_and_takes_receipts_on_the_receiver() {
    let dir = tempfile::tempdir().unwrap();
    let smsc = FakeSmsc::start(our_smsc());
    let daemon = start(dir.path(), &smsc, "bind_mode = \"pair\"\n");
    smsc.wait_for_binds(2, T);
    sms_campaign(&daemon, "pair", "Hi {{name}}", &numbers(3));
    let delivered = wait_facts(&daemon, "delivered", 3);
    wait_receipts_settled(&smsc);
    assert_eq!(customers(&delivered), customer_ids(3));
    let o = smsc.observed();
    let mut modes: Vec<_> = o
        .binds
        .iter()
        .map(|b| (format!("{:?}", b.mode), b.status))
        .collect();
    modes.sort();
    assert_eq!(
        modes,
        [
            ("Receiver".to_owned(), status::OK),
            ("Transmitter".to_owned(), status::OK)
        ]
    );
    let connection_of = |mode| o.binds.iter().find(|b| b.mode == mode).unwrap().connection;
    let (tx, rx) = (
        connection_of(BindMode::Transmitter),
        connection_of(BindMode::Receiver),
    );
    assert_ne!(tx, rx);
    assert!(o.received.iter().all(|r| r.connection == tx));
    assert_eq!(o.receipts().count(), 3);
    assert!(
        o.receipts()
            .all(|d| d.connection == rx && d.response == Some(status::OK))
    );
}

#[test]
fn the_npm_smpp_server_takes_a_campaign_and_its_receipts_become_facts() {
    let Some(smsc) = NpmSmsc::start() else {
        return;
    };
    let dir = tempfile::tempdir().unwrap();
    let daemon = start_unready(dir.path(), smsc.port, "", "");
    wait_ready(&daemon);
    sms_campaign(&daemon, "npm", "Hello {{name}}, 1€", &numbers(2));
    let delivered = wait_facts(&daemon, "delivered", 2);
    assert_eq!(customers(&delivered), customer_ids(2));
    let mut submits = smsc.wait_for_submits(2, T);
    submits.sort_by(|a, b| a.destination_addr.cmp(&b.destination_addr));
    for (i, s) in submits.iter().enumerate() {
        assert_eq!(s.destination_addr, wire(&number(i)));
        assert_eq!(s.source_addr, "Sluice");
        assert_eq!(
            (s.data_coding, s.esm_class, s.registered_delivery),
            (0, 0, 1)
        );
        let mut expected = format!("Hello N{i}, 1").into_bytes();
        expected.extend([0x1B, 0x65]);
        assert_eq!(s.short_message, expected);
        assert_eq!(s.message_payload, None);
    }
    let submitted = facts(&daemon, "submitted");
    for f in &submitted {
        let i: usize = f["customer"].as_str().unwrap()[1..].parse().unwrap();
        let id = &submits[i].message_id;
        assert_eq!(
            f["reply"],
            format!("submit_sm_resp ESME_ROK message_id={id}")
        );
    }
    let resps = smsc.wait_for_deliver_sm_resps(2, T);
    assert!(resps.iter().all(|&(_, st)| st == status::OK), "{resps:?}");
    assert_eq!(smsc.receipts().len(), 2);
}

#[test]
fn an_smsc_outage_longer_than_the_attempt_budget_loses_no_message() {
    let dir = tempfile::tempdir().unwrap();
    let smsc = FakeSmsc::start(our_smsc().refuse_binds());
    // Two attempts allowed; the outage lasts until every message has been
    // handed back unsent more often than that.
    let daemon = start_unready(dir.path(), smsc.port(), "max_attempts = 2", "");
    sms_campaign(&daemon, "ob", "Hi {{name}}", &numbers(2));
    wait_until("messages handed back unsent 4 times", || {
        metric(
            &daemon,
            "sluice_messages_deferred_total",
            "upstream_unavailable",
        ) >= 4.0
    });
    assert_eq!(facts(&daemon, "retry_scheduled"), Vec::<Value>::new());
    assert_eq!(smsc.received(), Vec::new());
    smsc.configure(|b| b.refuse_binds = false);
    wait_ready(&daemon);
    let delivered = wait_facts(&daemon, "delivered", 2);
    assert_eq!(customers(&delivered), customer_ids(2));
    assert_eq!(
        facts(&daemon, "failed"),
        Vec::<Value>::new(),
        "messages never submitted were failed"
    );
}

#[test]
fn a_message_throttled_longer_than_its_lease_is_sent_once() {
    let dir = tempfile::tempdir().unwrap();
    // Seven throttles in a row pause the bind 50+100+...+3200 ms: 6.35 s,
    // longer than the 1 s lease.
    let smsc = FakeSmsc::start(our_smsc().throttle_next(7, status::THROTTLED));
    let daemon = Daemon::start_with_env(
        dir.path(),
        &format!(
            "[dispatch]\nlease_secs = 1\n\n{}",
            smsc_config(smsc.port(), "")
        ),
        &[("SMSC_PASSWORD", PASSWORD)],
    );
    wait_ready(&daemon);
    sms_campaign(&daemon, "l", "Hi {{name}}", &numbers(1));
    wait_facts(&daemon, "delivered", 1);
    wait_receipts_settled(&smsc);
    let accepted = accepted_per_destination(&smsc.received());
    assert_eq!(
        accepted,
        BTreeMap::from([(wire(&number(0)), 1)]),
        "one message, sent to the handset more than once"
    );
    assert_eq!(customers(&facts(&daemon, "submitted")), ["c0"]);
    assert_eq!(customers(&facts(&daemon, "delivered")), ["c0"]);
}

#[test]
fn sigterm_unbinds_from_the_smsc_and_exits_cleanly() {
    let dir = tempfile::tempdir().unwrap();
    let smsc = FakeSmsc::start(our_smsc().hold_receipts());
    let mut daemon = start(dir.path(), &smsc, "");
    sms_campaign(&daemon, "t", "Hi {{name}}", &numbers(3));
    smsc.wait_for(3, T);
    let started = Instant::now();
    assert!(daemon.terminate(), "sluice did not exit 0 on SIGTERM");
    assert!(
        started.elapsed() < Duration::from_secs(10),
        "SIGTERM took {:?}",
        started.elapsed()
    );
    assert_eq!(smsc.observed().unbinds, 1, "the bind was not unbound");
}

#[test]
fn receipts_arriving_after_a_kill_9_and_restart_are_still_matched() {
    let dir = tempfile::tempdir().unwrap();
    let smsc = FakeSmsc::start(our_smsc().hold_receipts());
    let mut daemon = start(dir.path(), &smsc, "");
    sms_campaign(&daemon, "k", "Hi {{name}}", &numbers(5));
    smsc.wait_for(5, T);
    wait_facts(&daemon, "submitted", 5);
    daemon.kill9();
    daemon.restart();
    wait_ready(&daemon);
    // The SMSC sends the receipts to the new session: the message ids were
    // durable with the submitted facts, so every one finds its message.
    smsc.release_receipts();
    let delivered = wait_facts(&daemon, "delivered", 5);
    assert_eq!(customers(&delivered), customer_ids(5));
    assert_eq!(accepted_per_destination(&smsc.received()).len(), 5);
    assert!(
        smsc.received().len() == 5,
        "submitted messages were sent again after the restart"
    );
}

#[test]
fn an_smsc_over_tls_takes_the_campaign_and_sends_its_receipts_back() {
    let dir = tempfile::tempdir().unwrap();
    let smsc = FakeSmsc::start(our_smsc());
    let tls = sluice_e2e::tls_proxy::TlsProxy::start(dir.path(), smsc.port());
    let daemon = start_unready(dir.path(), tls.port, "", "tls = true\ntls_insecure = true");
    wait_ready(&daemon);
    sms_campaign(&daemon, "tls", "Hi {{name}} €", &numbers(3));
    let delivered = wait_facts(&daemon, "delivered", 3);
    assert_eq!(customers(&delivered), customer_ids(3));
    let received = smsc.received();
    assert_eq!(received.len(), 3);
    assert!(
        received
            .iter()
            .all(|r| r.short_message.ends_with(&[0x1B, 0x65]))
    );
}

/// The text of a GSM short_message made of URL characters: those with the
/// same code in GSM 03.38 as in ASCII, and `_` (0x11 in GSM).
fn gsm_url_text(octets: &[u8]) -> String {
    octets
        .iter()
        .map(|&b| match b {
            0x11 => '_',
            b if b.is_ascii_alphanumeric() || b" .,:/?=&-".contains(&b) => char::from(b),
            other => panic!("not a URL character in GSM: {other:#04X} in {octets:02X?}"),
        })
        .collect()
}

#[test]
fn links_of_an_sms_that_asks_for_tracking_become_short_tracked_links() {
    const OFFER: &str = "https://telco.example/o?p=1";
    let dir = tempfile::tempdir().unwrap();
    let smsc = FakeSmsc::start(our_smsc());
    let port = std::net::TcpListener::bind("127.0.0.1:0")
        .unwrap()
        .local_addr()
        .unwrap()
        .port();
    let base = format!("http://127.0.0.1:{port}");
    let daemon = Daemon::start_with_env(
        dir.path(),
        &format!("[sms]\n\n{}", smsc_config(smsc.port(), "")),
        &[
            ("SMSC_PASSWORD", PASSWORD),
            ("SLUICE_LISTEN__TRACKING", &format!("127.0.0.1:{port}")),
            ("SLUICE_TRACKING__BASE_URL", &base),
        ],
    );
    wait_ready(&daemon);
    let text = format!("Hi {{{{name}}}}, see {OFFER} now");
    for (id, track) in [("tracked", true), ("plain", false)] {
        let decl = json!({"channel": "sms", "name": id, "content": {"sms": {
            "from": "Sluice", "text": text, "track_links": track}}});
        daemon.declare(id, &decl);
    }
    let one = |n: usize| json!({"customer": format!("c{n}"), "address": number(n), "fields": {"name": "Ann"}});
    daemon.upload("tracked", &[one(0)]);
    daemon.upload("plain", &[one(1)]);
    daemon.start_campaign("tracked");
    daemon.start_campaign("plain");
    wait_facts(&daemon, "delivered", 2);

    let received = smsc.observed().received;
    let text_to = |n: usize| {
        let sm = received
            .iter()
            .find(|r| r.destination_addr == wire(&number(n)))
            .unwrap();
        assert_eq!(sm.data_coding, 0, "still GSM 7-bit");
        gsm_url_text(sm.body())
    };
    assert_eq!(text_to(1), format!("Hi Ann, see {OFFER} now"), "untracked");
    let tracked = text_to(0);
    let link = tracked
        .strip_prefix(&format!("Hi Ann, see {base}/c/"))
        .and_then(|rest| rest.strip_suffix(" now"))
        .unwrap_or_else(|| panic!("not a tracked link: {tracked}"));
    assert!(link.len() <= 32, "a short token: {link}");

    let tracking = format!("127.0.0.1:{port}");
    let click = sluice_e2e::request("GET", &tracking, &format!("/c/{link}"), &[], b"");
    assert_eq!(click.status, 302);
    assert_eq!(click.header("location"), Some(OFFER));
    let clicked = wait_facts(&daemon, "clicked", 1);
    assert_eq!(clicked[0]["customer"], "c0");
    assert_eq!(clicked[0]["campaign"], "tracked");
    assert_eq!(clicked[0]["url"], OFFER);
    let audience = daemon
        .get("/v1/campaigns/tracked/participants?outcome=clicked")
        .text();
    assert!(audience.contains("\"customer\":\"c0\""), "{audience}");
}
