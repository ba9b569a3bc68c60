//! The fake SMSC itself, driven by a raw SMPP client over the same codec.

#![allow(clippy::unwrap_used)]

use std::time::Duration;

use rusmpp::{Command, CommandId, CommandStatus, Pdu, pdus::SubmitSm};
use sluice_e2e::smsc::{
    FakeSmsc, FinalState, Garbage, MessageIds, RawEsme, ReceiptFormat, SmscBehaviour, receipt_tlvs,
    status,
};

const T: Duration = Duration::from_secs(5);

#[tokio::test]
async fn binds_submits_and_sends_a_receipt_with_tlvs_and_text() {
    let smsc = FakeSmsc::start(
        SmscBehaviour::default()
            .account("sluice", "secret")
            .final_state("491700000002", FinalState::Undeliverable),
    );
    let mut wrong = RawEsme::connect(smsc.addr()).await;
    assert_eq!(
        wrong.bind_transceiver("sluice", "nope").await,
        status::INVPASWD
    );
    let mut unknown = RawEsme::connect(smsc.addr()).await;
    assert_eq!(
        unknown.bind_transceiver("other", "secret").await,
        status::BINDFAIL
    );

    let mut esme = RawEsme::connect(smsc.addr()).await;
    assert_eq!(esme.bind_transceiver("sluice", "secret").await, status::OK);
    let (st, id) = esme
        .submit("Telco", "491700000001", b"Hello \x00bytes")
        .await;
    assert_eq!((st, id.as_str()), (status::OK, "2684354561"));
    let receipt = esme.next_deliver(T).await;
    assert_eq!(u8::from(receipt.esm_class), 0x04);
    assert_eq!(receipt.source_addr.to_string(), "491700000001");
    assert_eq!(receipt.destination_addr.to_string(), "Telco");
    assert_eq!(receipt_tlvs(&receipt), (Some(id.clone()), Some(2)));
    let text = String::from_utf8(receipt.short_message().to_vec()).unwrap();
    assert!(
        text.starts_with(&format!("id:{id} sub:001 dlvrd:001 submit date:")),
        "{text}"
    );
    assert!(
        text.ends_with(" stat:DELIVRD err:000 text:Hello .bytes"),
        "{text}"
    );

    let (_, id2) = esme.submit("Telco", "491700000002", b"x").await;
    let receipt = esme.next_deliver(T).await;
    assert_eq!(receipt_tlvs(&receipt), (Some(id2), Some(5)));
    assert!(
        String::from_utf8_lossy(receipt.short_message()).contains("stat:UNDELIV"),
        "{receipt:?}"
    );

    let received = smsc.wait_for(2, T);
    assert_eq!(received[0].short_message, b"Hello \x00bytes");
    assert_eq!(received[0].source_addr, "Telco");
    assert_eq!((received[0].source_ton, received[0].dest_ton), (5, 1));
    assert_eq!(received[0].registered_delivery, 1);
    assert_eq!(received[0].system_id, "sluice");
    assert_eq!(received[0].message_id.as_deref(), Some(id.as_str()));
    let acked = smsc.wait_for_receipt_acks(2, T);
    assert!(acked.iter().all(|d| d.response == Some(0)), "{acked:?}");
    let o = smsc.observed();
    assert_eq!((o.connections, o.binds.len(), o.bound()), (3, 3, 1));
    assert_eq!(o.binds[2].interface_version, 0x34);
}

#[tokio::test]
async fn throttles_refuses_per_destination_and_writes_hex_ids() {
    let smsc = FakeSmsc::start(
        SmscBehaviour::default()
            .message_ids(MessageIds::UpperHex)
            .throttle_next(2, status::THROTTLED)
            .submit_error("000", status::INVDSTADR),
    );
    let mut esme = RawEsme::connect(smsc.addr()).await;
    esme.bind_transceiver("any", "any").await;
    assert_eq!(esme.submit("a", "1", b"m").await.0, status::THROTTLED);
    assert_eq!(esme.submit("a", "1", b"m").await.0, status::THROTTLED);
    assert_eq!(esme.submit("a", "000", b"m").await.0, status::INVDSTADR);
    assert_eq!(
        esme.submit("a", "1", b"m").await,
        (status::OK, "A0000001".to_string())
    );
    smsc.configure(|b| {
        b.throttle_every = Some(2);
        b.throttle_status = Some(status::MSGQFUL);
        b.message_ids = MessageIds::LowerHex;
    });
    assert_eq!(esme.submit("a", "1", b"m").await.0, status::OK);
    assert_eq!(esme.submit("a", "1", b"m").await.0, status::MSGQFUL);
    assert_eq!(esme.submit("a", "1", b"m").await.1, "a0000003");
    assert_eq!(smsc.throttled(), 3);
    let statuses: Vec<_> = smsc.received().iter().map(|r| r.status).collect();
    assert_eq!(
        statuses,
        [0x58, 0x58, 0x0B, 0, 0, 0x14, 0].map(Some).to_vec()
    );
}

#[tokio::test]
async fn text_only_receipt_before_the_response_and_held_receipts() {
    let smsc = FakeSmsc::start(
        SmscBehaviour::default()
            .receipts(ReceiptFormat::TextOnly)
            .receipt_before_resp(),
    );
    let mut esme = RawEsme::connect(smsc.addr()).await;
    esme.bind_transceiver("a", "b").await;
    let seq = esme
        .request(
            SubmitSm::builder()
                .source_addr("s".parse().unwrap())
                .destination_addr("d".parse().unwrap())
                .registered_delivery(1.into())
                .build(),
        )
        .await;
    let first = esme.next(T).await.unwrap();
    let second = esme.next(T).await.unwrap();
    assert_eq!(
        (first.id(), second.id()),
        (CommandId::DeliverSm, CommandId::SubmitSmResp)
    );
    assert_eq!(second.sequence_number(), seq);
    let Some(Pdu::DeliverSm(receipt)) = first.pdu() else {
        unreachable!()
    };
    assert_eq!(receipt_tlvs(receipt), (None, None));

    smsc.configure(|b| {
        b.receipt_before_resp = false;
        b.hold_receipts = true;
    });
    esme.submit("s", "d", b"held").await;
    assert_eq!(smsc.held_receipts(), 1);
    assert_eq!(smsc.receipts_sent().len(), 1);
    smsc.release_receipts();
    let receipt = esme.next_deliver(T).await;
    assert!(String::from_utf8_lossy(receipt.short_message()).ends_with("text:held"));
}

#[tokio::test]
async fn receipts_go_to_a_receiver_of_the_same_system_id() {
    let smsc = FakeSmsc::start(SmscBehaviour::default());
    let mut tx = RawEsme::connect(smsc.addr()).await;
    let seq = tx
        .request(
            rusmpp::pdus::BindTransmitter::builder()
                .system_id("acct".parse().unwrap())
                .build(),
        )
        .await;
    assert_eq!(tx.response(seq, T).await.status(), CommandStatus::EsmeRok);
    tx.submit("s", "d", b"m").await;
    let mut rx = RawEsme::connect(smsc.addr()).await;
    let seq = rx
        .request(
            rusmpp::pdus::BindReceiver::builder()
                .system_id("acct".parse().unwrap())
                .build(),
        )
        .await;
    assert_eq!(rx.response(seq, T).await.status(), CommandStatus::EsmeRok);
    let receipt = rx.next_deliver(T).await;
    assert_eq!(u8::from(receipt.esm_class), 0x04);
    assert_eq!(smsc.receipts_sent()[0].connection, 2);
}

#[tokio::test]
async fn mobile_originated_messages_in_gsm_and_ucs2() {
    let smsc = FakeSmsc::start(SmscBehaviour::default());
    let mut esme = RawEsme::connect(smsc.addr()).await;
    esme.bind_transceiver("a", "b").await;
    smsc.send_mo("491701", "12345", "STOP please");
    let mo = esme.next_deliver(T).await;
    assert_eq!((u8::from(mo.esm_class), u8::from(mo.data_coding)), (0, 0));
    assert_eq!(mo.short_message().as_ref(), b"STOP please");
    smsc.send_mo("491701", "12345", "Grüße");
    let mo = esme.next_deliver(T).await;
    assert_eq!(u8::from(mo.data_coding), 8);
    assert_eq!(
        mo.short_message().as_ref(),
        b"\x00G\x00r\x00\xfc\x00\xdf\x00e"
    );
    assert_eq!(
        smsc.wait_until("2 MO acks", T, |o| o
            .mos()
            .filter(|d| d.response == Some(0))
            .count()
            == 2)
            .mos()
            .count(),
        2
    );
}

#[tokio::test]
async fn drops_the_connection_mid_window() {
    let smsc = FakeSmsc::start(SmscBehaviour::default().drop_after(3, 2));
    let mut esme = RawEsme::connect(smsc.addr()).await;
    esme.bind_transceiver("a", "b").await;
    let sm = || {
        SubmitSm::builder()
            .source_addr("s".parse().unwrap())
            .destination_addr("d".parse().unwrap())
            .build()
    };
    let seqs = [
        esme.request(sm()).await,
        esme.request(sm()).await,
        esme.request(sm()).await,
    ];
    assert_eq!(
        esme.response(seqs[0], T).await.status(),
        CommandStatus::EsmeRok
    );
    assert!(esme.next(T).await.is_none(), "the connection is closed");
    let statuses: Vec<_> = smsc.wait_for(3, T).iter().map(|r| r.status).collect();
    assert_eq!(statuses, [Some(0), None, None]);
    // One-shot: a new connection works.
    let mut again = RawEsme::connect(smsc.addr()).await;
    again.bind_transceiver("a", "b").await;
    assert_eq!(again.submit("s", "d", b"m").await.0, status::OK);
}

#[tokio::test]
async fn garbage_after_a_submit_and_generic_nack_for_unknown_commands() {
    let smsc = FakeSmsc::start(SmscBehaviour::default().garbage_after(1, Garbage::BogusCommandId));
    let mut esme = RawEsme::connect(smsc.addr()).await;
    esme.bind_transceiver("a", "b").await;
    assert_eq!(esme.submit("s", "d", b"m").await.0, status::OK);
    let bogus = esme.next(T).await.unwrap();
    assert_eq!(bogus.id(), CommandId::Other(0x999));
    esme.send(Command::new(
        CommandStatus::EsmeRinvcmdid,
        bogus.sequence_number(),
        Pdu::GenericNack,
    ))
    .await;
    let seq = esme.request(Pdu::EnquireLink).await;
    assert_eq!(esme.response(seq, T).await.id(), CommandId::EnquireLinkResp);
    let seq = esme.request(rusmpp::pdus::QuerySm::default()).await;
    let nack = esme.response(seq, T).await;
    assert_eq!(
        (nack.id(), u32::from(nack.status())),
        (CommandId::GenericNack, status::INVCMDID)
    );
    let o = smsc.observed();
    assert_eq!(
        (o.garbage_sent, o.generic_nacks.clone(), o.unknown_commands),
        (1, vec![3], 1)
    );
}

#[tokio::test]
async fn a_stall_leaves_submits_unanswered_but_answers_enquire_link() {
    let smsc = FakeSmsc::start(SmscBehaviour::default().stall(1, Duration::from_secs(3600)));
    let mut esme = RawEsme::connect(smsc.addr()).await;
    esme.bind_transceiver("a", "b").await;
    assert_eq!(esme.submit("s", "d", b"1").await.0, status::OK);
    esme.next_deliver(T).await;
    let sm = SubmitSm::builder()
        .source_addr("s".parse().unwrap())
        .destination_addr("d".parse().unwrap())
        .build();
    esme.request(sm).await;
    // The fake answers in order: the enquire_link_resp comes first, so the
    // submit before it was left unanswered.
    let seq = esme.request(Pdu::EnquireLink).await;
    let next = esme.next(T).await.unwrap();
    assert_eq!(
        (next.id(), next.sequence_number()),
        (CommandId::EnquireLinkResp, seq)
    );
    assert_eq!(smsc.received()[1].status, None);

    smsc.unbind_all();
    let unbind = esme.next(T).await.unwrap();
    assert_eq!(unbind.id(), CommandId::Unbind);
    esme.send(Command::new(
        CommandStatus::EsmeRok,
        unbind.sequence_number(),
        Pdu::UnbindResp,
    ))
    .await;
    assert!(esme.next(T).await.is_none(), "closed after unbind_resp");
}
