//! Delivery and receipts under the faults a real SMSC shows: throttling,
//! full queues, dropped connections, timeouts, garbage, odd receipts.

use super::*;

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
    // Every submit the drop left unanswered is counted as a possible
    // duplicate: those the SMSC read on the first connection, and any
    // still on the way when it closed, at most a window.
    let unconfirmed = metric(
        &daemon,
        "sluice_messages_unconfirmed_total",
        "channel=\"sms\"",
    );
    assert!(
        (first.len() as f64..=window as f64).contains(&unconfirmed),
        "{unconfirmed} unconfirmed, {} read on the first connection",
        first.len()
    );
}

/// A concatenated text whose session drops after its first part was taken
/// goes on from there: the rest is sent on the next session under the same
/// reference (so the handset puts the text together), the first part is
/// not sent again, and every part's receipt counts towards its delivery.
#[test]
fn a_text_cut_by_a_dropped_session_goes_on_from_the_part_not_taken() {
    let dir = tempfile::tempdir().unwrap();
    // The 2nd submit closes the connection unanswered.
    let smsc = FakeSmsc::start(our_smsc().drop_after(2, 1));
    let daemon = start(dir.path(), &smsc, "");
    let long = format!("{} {{{{name}}}}", "x".repeat(400));
    sms_campaign(&daemon, "cut", &long, &numbers(1));
    // Every part's receipt in (the first part's may have been answered on
    // the session that dropped, so its acknowledgement is not waited for).
    let delivered = wait_facts(&daemon, "delivered", 1);
    assert_eq!(customers(&delivered), customer_ids(1));
    let o = smsc.observed();
    assert!(o.connections >= 2, "no reconnect: {}", o.connections);
    // (reference, part) of each submit, and of those the SMSC took.
    let udh = |r: &ReceivedSm| {
        let m = &r.short_message;
        assert_eq!(
            m[..4],
            [0x05, 0x00, 0x03, m[3]],
            "a concatenation UDH: {r:?}"
        );
        assert_eq!(m[4], 3, "3 parts");
        (m[3], m[5])
    };
    let sent: Vec<(u8, u8)> = o.received.iter().map(udh).collect();
    let reference = sent[0].0;
    assert!(
        sent.iter().all(|&(r, _)| r == reference),
        "one reference for the whole text: {sent:?}"
    );
    let mut taken: Vec<u8> = (o.received.iter())
        .filter(|r| r.message_id.is_some())
        .map(|r| udh(r).1)
        .collect();
    taken.sort_unstable();
    assert_eq!(taken, [1, 2, 3], "each part taken once: {sent:?}");
    assert_eq!(
        sent.iter().filter(|&&(_, part)| part == 1).count(),
        1,
        "the first part, taken before the drop, is not sent again: {sent:?}"
    );
    let retried = facts(&daemon, "retry_scheduled");
    assert_eq!(retried.len(), 1, "{retried:?}");
    let reason = retried[0]["reason"].as_str().unwrap_or_default();
    assert!(
        reason.contains("after 1 of the 3 parts were sent"),
        "{reason}"
    );
    assert_eq!(facts(&daemon, "failed"), Vec::<Value>::new());
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
    wait_until("one bound connection", T, || smsc.bound_now() == 1);
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

/// Hex ids 10000001..10000009 read the same as decimal numbers: their
/// decimal receipts wait until a receipt with a letter in one of its
/// readings (1000000A, written 268435466) shows that the SMSC mixes bases;
/// from then on every receipt of that SMSC is read in both.
#[test]
fn receipts_in_another_base_wait_until_the_smsc_is_seen_mixing_bases() {
    let dir = tempfile::tempdir().unwrap();
    let smsc = FakeSmsc::start(
        our_smsc()
            .message_ids(MessageIds::UpperHex)
            .first_id(0x1000_0001)
            .receipt_text_ids(MessageIds::Decimal)
            .receipts(ReceiptFormat::TextOnly),
    );
    let daemon = start(dir.path(), &smsc, "");
    sms_campaign(&daemon, "mb", "Hi {{name}}", &numbers(12));
    let delivered = wait_facts(&daemon, "delivered", 12);
    wait_receipts_settled(&smsc);
    assert_eq!(customers(&delivered), customer_ids(12));
    let text_ids: Vec<String> = smsc
        .receipts_sent()
        .into_iter()
        .filter_map(|d| match d.kind {
            DeliverKind::Receipt { text_id, .. } => Some(text_id),
            _ => None,
        })
        .collect();
    assert!(text_ids.contains(&"268435457".to_owned()), "{text_ids:?}");
    let matched = "result=\"matched\"";
    assert_eq!(metric(&daemon, "sluice_smpp_receipts_total", matched), 12.0);
    assert!(
        daemon.log().contains("writes receipt ids in another base"),
        "the daemon says what it learnt"
    );
}

#[test]
fn held_receipts_give_delivered_facts_only_once_released() {
    let dir = tempfile::tempdir().unwrap();
    let smsc = FakeSmsc::start(our_smsc().hold_receipts());
    let daemon = start(dir.path(), &smsc, "");
    sms_campaign(&daemon, "h", "Hi {{name}}", &numbers(3));
    wait_facts(&daemon, "submitted", 3);
    wait_until("3 held receipts", T, || smsc.held_receipts() == 3);
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

/// A receipt for an id no message has (another system's send on the same
/// account) is answered (parked meanwhile), counted and kept, after
/// waiting `sms.receipt_wait_secs` for its id; the operator reads it back.
#[test]
fn a_stray_receipt_is_kept_and_listed_for_the_operator() {
    let dir = tempfile::tempdir().unwrap();
    let smsc = FakeSmsc::start(our_smsc());
    let mut daemon = start_with(dir.path(), &smsc, "receipt_wait_secs = 3", "");
    smsc.send_stray_receipt("ffff0001");
    let acks = smsc.wait_for_receipt_acks(1, T);
    assert_eq!(acks[0].response, Some(status::OK));
    wait_until("the receipt counted unmatched", T, || {
        metric(
            &daemon,
            "sluice_smpp_receipts_total",
            "result=\"unmatched\"",
        ) == 1.0
    });

    let page = daemon.get("/v1/receipts/unmatched").json();
    assert_eq!(
        (page["kept"].as_u64(), page["capacity"].as_u64()),
        (Some(1), Some(10_000))
    );
    let receipt = &page["items"][0]["receipt"];
    assert_eq!(page["items"][0]["n"], 0);
    assert_eq!(receipt["id"], "ffff0001");
    assert_eq!(receipt["smsc"], 0);
    assert_eq!(receipt["stat"], "DELIVRD");
    assert!(
        receipt["kept_at"]
            .as_str()
            .is_some_and(|t| t.ends_with('Z')),
        "{receipt}"
    );
    assert_eq!(
        daemon.get("/v1/bounces/unmatched").json()["items"],
        json!([])
    );

    // A page at a time, newest first.
    smsc.send_stray_receipt("ffff0002");
    wait_until("the second kept", T, || {
        metric(
            &daemon,
            "sluice_smpp_receipts_total",
            "result=\"unmatched\"",
        ) == 2.0
    });
    let ids = |path: &str| -> Vec<Value> {
        let page = daemon.get(path).json();
        let items = page["items"].as_array().cloned().unwrap_or_default();
        items.iter().map(|i| i["receipt"]["id"].clone()).collect()
    };
    assert_eq!(ids("/v1/receipts/unmatched?limit=1"), [json!("ffff0002")]);
    assert_eq!(ids("/v1/receipts/unmatched?before=1"), [json!("ffff0001")]);
    assert_eq!(ids("/v1/receipts/unmatched?before=0"), Vec::<Value>::new());

    // Kept, they are parked no more.
    daemon.kill9();
    daemon.restart();
    wait_until("the parked receipts of the second start", T, || {
        daemon.log().matches("parked receipts taken up").count() == 2
    });
    let log = daemon.log();
    let last = log
        .lines()
        .rfind(|l| l.contains("parked receipts taken up"));
    assert!(last.is_some_and(|l| l.contains("receipts=0")), "{last:?}");
    assert_eq!(daemon.get("/v1/receipts/unmatched").json()["kept"], 2);
}

/// A receipt can come before its message's id is recorded anywhere
/// (another node sent it, or its write is slow). It is answered without
/// waiting out `sms.receipt_wait_secs`, as the SMSC's window stalls
/// meanwhile and its own timeout is often shorter: it is parked durably and
/// matched once the id is recorded, even after a kill -9, and no longer
/// parked then.
#[test]
fn a_receipt_ahead_of_its_id_is_answered_parked_and_matched_when_the_id_comes() {
    let dir = tempfile::tempdir().unwrap();
    // The fake's own receipt is held back: the early one is the only one.
    let smsc = FakeSmsc::start(our_smsc().hold_receipts().first_id(7));
    // `sms.receipt_wait_secs` is its default, 60 s: answered before it is
    // over, the receipt was parked.
    let mut daemon = start(dir.path(), &smsc, "");
    smsc.send_stray_receipt(&MessageIds::Decimal.format(7));
    let acks = smsc.wait_for_receipt_acks(1, T);
    assert_eq!(acks[0].response, Some(status::OK));

    daemon.kill9();
    daemon.restart();
    wait_ready(&daemon);
    sms_campaign(&daemon, "early", "Hi {{name}}", &numbers(1));
    let delivered = wait_facts(&daemon, "delivered", 1);
    assert_eq!(customers(&delivered), customer_ids(1));
    assert_eq!(smsc.received().len(), 1);
    let receipts = |result: &str| {
        metric(
            &daemon,
            "sluice_smpp_receipts_total",
            &format!("result=\"{result}\""),
        )
    };
    assert_eq!((receipts("matched"), receipts("unmatched")), (1.0, 0.0));

    // Settled, it is parked no more: the next start takes up nothing.
    daemon.kill9();
    daemon.restart();
    let taken_up = |log: &str| -> Vec<String> {
        (log.lines())
            .filter(|l| l.contains("parked receipts taken up"))
            .map(str::to_owned)
            .collect()
    };
    wait_until("the third start's parked receipts", T, || {
        taken_up(&daemon.log()).len() == 3
    });
    let starts = taken_up(&daemon.log());
    assert!(starts[1].contains("receipts=1"), "{starts:?}");
    assert!(starts[2].contains("receipts=0"), "{starts:?}");
}
