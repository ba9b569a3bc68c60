//! The npm `smpp` SMSC peer works: a raw SMPP 3.4 client binds, submits and
//! gets a delivery receipt, and the peer's log shows the exact octets.

#![allow(clippy::unwrap_used)]

use std::time::Duration;

use sluice_e2e::{
    must_reach_end,
    npm_smsc::{NpmReceipts, NpmSmsc},
    smsc::{RawEsme, receipt_tlvs, status},
};

const T: Duration = Duration::from_secs(10);

#[tokio::test]
async fn binds_submits_and_sends_a_receipt() {
    let end = must_reach_end();
    let smsc = NpmSmsc::start(&end);
    let mut esme = RawEsme::connect(smsc.addr()).await;
    assert_eq!(esme.bind_transceiver("sluice", "pw").await, status::OK);
    let (st, id) = esme.submit("Telco", "4917012345", b"Hi \x00\xff").await;
    assert_eq!((st, id.as_str()), (status::OK, "1"));
    let receipt = esme.next_deliver(T).await;
    assert_eq!(u8::from(receipt.esm_class), 0x04);
    assert_eq!(receipt.source_addr.to_string(), "4917012345");
    assert_eq!(receipt.destination_addr.to_string(), "Telco");
    assert_eq!(receipt_tlvs(&receipt), (Some("1".into()), Some(2)));
    let text = String::from_utf8(receipt.short_message().to_vec()).unwrap();
    assert!(
        text.starts_with("id:1 sub:001 dlvrd:001 submit date:"),
        "{text}"
    );
    assert!(text.contains(" stat:DELIVRD err:000"), "{text}");

    let submits = smsc.wait_for_submits(1, T);
    assert_eq!(submits[0].short_message, b"Hi \x00\xff");
    assert_eq!(submits[0].destination_addr, "4917012345");
    assert_eq!(
        (submits[0].data_coding, submits[0].registered_delivery),
        (0, 1)
    );
    assert_eq!(smsc.wait_for_deliver_sm_resps(1, T), [(1, 0)]);
    assert_eq!(smsc.binds()[0]["interface_version"], 0x34);
    end.reached();
}

#[tokio::test]
async fn checks_the_password_and_sends_text_only_receipts() {
    let end = must_reach_end();
    let smsc = NpmSmsc::start_with(&end, NpmReceipts::Text, Some("secret"));
    let mut wrong = RawEsme::connect(smsc.addr()).await;
    assert_eq!(
        wrong.bind_transceiver("sluice", "nope").await,
        status::INVPASWD
    );
    let mut esme = RawEsme::connect(smsc.addr()).await;
    assert_eq!(esme.bind_transceiver("sluice", "secret").await, status::OK);
    let (_, id) = esme.submit("Telco", "4917012345", b"x").await;
    let receipt = esme.next_deliver(T).await;
    assert_eq!(receipt_tlvs(&receipt), (None, None));
    assert!(
        String::from_utf8_lossy(receipt.short_message()).starts_with(&format!("id:{id} ")),
        "{receipt:?}"
    );
    end.reached();
}
