//! What goes on the wire (GSM 03.38, UCS-2, parts), what the API refuses,
//! binds refused or retried, opt-outs, pair mode, another SMSC, outages,
//! shutdown and restart.

use super::*;

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
    wait_until("4 held receipts", T, || smsc.held_receipts() == 4);
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
    let readyz = daemon.get("/readyz");
    assert_eq!(readyz.status, 503);
    let address = format!("127.0.0.1:{}", smsc.port());
    let reasons = readyz.json()["reasons"].clone();
    assert!(
        reasons[0]
            .as_str()
            .is_some_and(|r| r.starts_with(&format!("SMSC {address}: ")) && r.contains("BINDFAIL")),
        "/readyz names the SMSC, its address and the refusal: {reasons}"
    );
    assert!(
        daemon.log().contains(&format!("SMSC {address}")),
        "{}",
        daemon.log()
    );
    assert_eq!(daemon.get("/healthz").status, 200);
    assert_eq!(metric(&daemon, "sluice_smpp_bind_up", ""), 0.0);
    let binds = smsc.binds();
    assert!(
        binds.iter().all(|b| b.status == status::BINDFAIL),
        "{binds:?}"
    );
    assert!(binds.iter().all(|b| b.mode == BindMode::Transceiver));
    assert_eq!(smsc.received(), Vec::new());
    let connector = |daemon: &Daemon| daemon.get("/v1/channels").json()["channels"][1].clone();
    let failing = connector(&daemon);
    assert_eq!(failing["channel"], "sms", "{failing}");
    let smsc_health = &failing["connectors"][0];
    assert_eq!(smsc_health["kind"], "smsc", "{failing}");
    assert_eq!(smsc_health["name"], address, "{failing}");
    assert_eq!(smsc_health["address"], address, "{failing}");
    assert_eq!(smsc_health["state"], "failing", "{failing}");
    assert_eq!(
        (&smsc_health["binds_up"], &smsc_health["binds"]),
        (&json!(0), &json!(1))
    );
    let refusal = smsc_health["last_error"]
        .as_str()
        .unwrap_or_default()
        .to_owned();
    assert!(refusal.contains("BINDFAIL"), "{failing}");

    smsc.configure(|b| b.refuse_binds = false);
    wait_ready(&daemon);
    wait_until("sluice_smpp_bind_up 1", T, || {
        metric(&daemon, "sluice_smpp_bind_up", "") == 1.0
    });
    let up = connector(&daemon);
    let smsc_health = &up["connectors"][0];
    assert_eq!(smsc_health["state"], "up", "{up}");
    assert_eq!(smsc_health["binds_up"], 1, "{up}");
    assert_eq!(
        smsc_health["last_error"],
        refusal.as_str(),
        "the last error stays: {up}"
    );
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

/// An SMSC that writes handsets' numbers in national form (TON 2, with
/// or without the trunk 0): with `sms.country_code` the STOP finds the
/// participant uploaded as `+49...`.
#[test]
fn stop_from_a_national_number_opts_out_its_international_form() {
    let dir = tempfile::tempdir().unwrap();
    let smsc = FakeSmsc::start(our_smsc());
    let daemon = start_with(dir.path(), &smsc, "country_code = \"49\"", "");
    let to = numbers(3);
    sms_campaign(&daemon, "n1", "Hi {{name}}", &to);
    wait_facts(&daemon, "delivered", 3);
    wait_receipts_settled(&smsc);
    // +4915100000001 as a German SMSC writes it.
    smsc.send_mo_numbered(2, "015100000001", "Sluice", "STOP");
    smsc.send_mo_numbered(2, "15100000002", "Sluice", "STOP");
    let opted = wait_facts(&daemon, "opted_out", 2);
    assert_eq!(customers(&opted), ["c1", "c2"]);
    for n in [&to[1], &to[2]] {
        let r = daemon.get(&format!("/v1/blacklist/sms/{}", n.replace('+', "%2B")));
        assert_eq!(r.json()["why"], "opted_out", "{n}: {}", r.text());
    }
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
    let end = must_reach_end();
    let smsc = NpmSmsc::start(&end);
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
    end.reached();
}

#[test]
fn an_smsc_outage_longer_than_the_attempt_budget_loses_no_message() {
    let dir = tempfile::tempdir().unwrap();
    let smsc = FakeSmsc::start(our_smsc().refuse_binds());
    // Two attempts allowed; the outage lasts until every message has been
    // handed back unsent more often than that.
    let daemon = start_unready(dir.path(), smsc.port(), "max_attempts = 2", "");
    sms_campaign(&daemon, "ob", "Hi {{name}}", &numbers(2));
    wait_until("messages handed back unsent 4 times", T, || {
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
    // longer than the 2 s lease.
    let smsc = FakeSmsc::start(our_smsc().throttle_next(7, status::THROTTLED));
    let daemon = Daemon::start_with_env(
        dir.path(),
        &format!(
            "[dispatch]\nlease_secs = 2\n\n{}",
            smsc_config(smsc.port(), "response_timeout_secs = 1")
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
    let end = must_reach_end();
    let dir = tempfile::tempdir().unwrap();
    let smsc = FakeSmsc::start(our_smsc());
    let tls = sluice_e2e::tls_proxy::TlsProxy::start(&end, dir.path(), smsc.port());
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
    end.reached();
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
    let port = sluice_e2e::free_port();
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

/// An operator stops the SMSC: it unbinds, `/v1/channels` and `/readyz`
/// say so, a campaign started meanwhile waits without failing anyone, and
/// once started again it binds and sends everything.
#[test]
fn a_stopped_smsc_unbinds_and_holds_messages_until_it_is_started() {
    let dir = tempfile::tempdir().unwrap();
    let smsc = FakeSmsc::start(our_smsc());
    let daemon = start(dir.path(), &smsc, "");
    let address = format!("127.0.0.1:{}", smsc.port());
    let stopped = daemon.post(
        &format!("/v1/channels/sms/connectors/{address}/stop"),
        "application/json",
        b"",
    );
    assert_eq!(stopped.status, 200, "{}", stopped.text());
    assert_eq!(stopped.json()["state"], "stopped");
    wait_until("the SMSC sees no bound session", T, || {
        smsc.bound_now() == 0
    });
    wait_until("/readyz 503", T, || daemon.get("/readyz").status == 503);
    let readyz = daemon.get("/readyz");
    assert_eq!(
        readyz.json()["reasons"],
        json!([format!("SMSC {address}: stopped by an operator")])
    );
    sms_campaign(&daemon, "held", "Hi {{name}}", &numbers(3));
    std::thread::sleep(Duration::from_secs(1));
    assert_eq!(smsc.received(), Vec::new(), "nothing sent while stopped");
    assert_eq!(facts(&daemon, "failed"), Vec::<Value>::new());
    let health = daemon.get("/v1/channels").json()["channels"][1]["connectors"][0].clone();
    assert_eq!(
        (&health["state"], &health["binds_up"]),
        (&json!("stopped"), &json!(0))
    );

    let started = daemon.post(
        &format!("/v1/channels/sms/connectors/{address}/start"),
        "application/json",
        b"",
    );
    assert_eq!(started.status, 200, "{}", started.text());
    wait_ready(&daemon);
    let delivered = wait_facts(&daemon, "delivered", 3);
    assert_eq!(customers(&delivered), customer_ids(3));
    assert_eq!(facts(&daemon, "failed"), Vec::<Value>::new());
    let unknown = daemon.post(
        "/v1/channels/sms/connectors/nobody/stop",
        "application/json",
        b"",
    );
    assert_eq!(unknown.status, 404, "{}", unknown.text());
}

#[test]
fn a_test_send_submits_one_text_and_stores_nothing() {
    let dir = tempfile::tempdir().unwrap();
    let smsc = FakeSmsc::start(our_smsc());
    let daemon = start(dir.path(), &smsc, "");
    declare(&daemon, "t", "Hi {{name}}", 1);
    let r = daemon.post(
        "/v1/campaigns/t/test",
        "application/json",
        json!({"customer": "qa", "address": number(1), "fields": {"name": "QA"}})
            .to_string()
            .as_bytes(),
    );
    assert_eq!(r.status, 200, "{}", r.text());
    assert_eq!(r.json()["outcome"], "accepted", "{}", r.text());
    let received = smsc.received();
    assert_eq!(received.len(), 1);
    assert_eq!(received[0].body(), b"Hi QA");
    assert_eq!(received[0].destination_addr, wire(&number(1)));
    assert_eq!(daemon.get("/v1/campaigns/t").json()["participants"], 0);
    assert_eq!(daemon.all_events(), Vec::<Value>::new());
}

/// Stopping an SMSC while concatenated texts are under way (slowed by
/// throttling between their parts) lets each finish: no handset gets half a
/// message, nothing is sent again, nothing fails.
#[test]
fn stopping_an_smsc_never_cuts_a_concatenated_text() {
    let dir = tempfile::tempdir().unwrap();
    let smsc = FakeSmsc::start(our_smsc().throttle_every(2, status::THROTTLED));
    let daemon = start(dir.path(), &smsc, "");
    let address = format!("127.0.0.1:{}", smsc.port());
    let long = format!("{} {{{{name}}}}", "x".repeat(400));
    sms_campaign(&daemon, "long", &long, &numbers(40));
    wait_until("some parts accepted", T, || {
        accepted_per_destination(&smsc.received())
            .values()
            .sum::<usize>()
            >= 6
    });
    let stopped = daemon.post(
        &format!("/v1/channels/sms/connectors/{address}/stop"),
        "application/json",
        b"",
    );
    assert_eq!(stopped.status, 200, "{}", stopped.text());
    wait_until("the SMSC sees no bound session", T, || {
        smsc.bound_now() == 0
    });
    let at_stop = accepted_per_destination(&smsc.received());
    assert!(
        at_stop.values().all(|&parts| parts == 3),
        "every message whole at the stop: {at_stop:?}"
    );
    let started = daemon.post(
        &format!("/v1/channels/sms/connectors/{address}/start"),
        "application/json",
        b"",
    );
    assert_eq!(started.status, 200, "{}", started.text());
    // Receipts due while unbound are the fake's to keep or lose: what is
    // checked here is the submits.
    wait_facts(&daemon, "submitted", 40);
    let sent = accepted_per_destination(&smsc.received());
    assert_eq!(sent.len(), 40);
    assert!(
        sent.values().all(|&parts| parts == 3),
        "each sent once, whole: {sent:?}"
    );
    assert_eq!(facts(&daemon, "failed"), Vec::<Value>::new());
    let cut: Vec<Value> = facts(&daemon, "retry_scheduled")
        .into_iter()
        .filter(|f| {
            f["reason"]
                .as_str()
                .unwrap_or_default()
                .contains("parts were sent")
        })
        .collect();
    assert_eq!(cut, Vec::<Value>::new(), "no message cut by the stop");
}

#[test]
fn a_number_blacklisted_while_its_claimed_text_waits_is_not_texted() {
    let dir = tempfile::tempdir().unwrap();
    // Nothing is answered for the first 2 s: with a window of 1 the rest of
    // the campaign, claimed meanwhile and its suppressions looked up, waits
    // for room while the number is blacklisted.
    let smsc = FakeSmsc::start(our_smsc().stall(0, Duration::from_secs(2)));
    let daemon = start_with(
        dir.path(),
        &smsc,
        "retry_base_secs = 1\nmax_attempts = 8",
        "window = 1\nresponse_timeout_secs = 1\n",
    );
    let to = numbers(8);
    sms_campaign(&daemon, "w", "Hi {{name}}", &to);
    smsc.wait_until("the first submit", T, |o| !o.received.is_empty());
    let r = daemon.put_json("/v1/blacklist/sms", &json!([to[7]]));
    assert!((200..300).contains(&r.status), "{}", r.text());

    let suppressed = wait_facts(&daemon, "suppressed", 1);
    let delivered = wait_facts(&daemon, "delivered", 7);
    wait_receipts_settled(&smsc);
    assert_eq!(customers(&suppressed), ["c7"]);
    assert_eq!(suppressed[0]["why"], "blacklisted");
    assert_eq!(customers(&delivered), customer_ids(7));
    let texted = accepted_per_destination(&smsc.received());
    assert!(!texted.contains_key(&wire(&to[7])), "{texted:?}");
    assert!(
        smsc.received()
            .iter()
            .all(|r| r.destination_addr != wire(&to[7])),
        "the blacklisted number was submitted"
    );
}
