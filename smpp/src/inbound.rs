//! What a `deliver_sm` (or a `data_sm`) from an SMSC says: a delivery
//! receipt for one of our submits, or a message from a handset
//! (mobile-originated).

use rusmpp::{
    pdus::{DataSm, DeliverSm},
    tlvs::{Tlv, TlvValue},
    values::MessageState,
};

use super::text;

/// esm_class message-type bits (SMPP 3.4 §5.2.12).
const MESSAGE_TYPE: u8 = 0x3C;
const DELIVERY_RECEIPT: u8 = 0x04;
const INTERMEDIATE_NOTIFICATION: u8 = 0x20;
const UDHI: u8 = 0x40;

#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Inbound {
    Receipt(Receipt),
    /// A text from a handset: `from` as the SMSC wrote it, with its type
    /// of number (1 international, 2 national, 0 unknown).
    Mobile {
        from: String,
        ton: u8,
        text: String,
    },
    /// A receipt we cannot read (no id): acknowledged and counted.
    Unreadable(String),
}

#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Receipt {
    /// The SMSC's message id, as it wrote it.
    pub id: String,
    pub state: State,
    /// The receipt's `stat:` word or state name, e.g. `UNDELIV`.
    pub stat: String,
    /// The `err:` field or network error code, when given.
    pub error: Option<String>,
}

#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum State {
    Delivered,
    Failed,
    /// En route, accepted, unknown: not final.
    Intermediate,
}

/// What a `deliver_sm` says.
pub fn parse(sm: &DeliverSm) -> Inbound {
    read(&Message {
        esm_class: u8::from(sm.esm_class),
        data_coding: u8::from(sm.data_coding),
        short_message: sm.short_message().as_ref(),
        tlvs: sm.tlvs(),
        source_addr: sm.source_addr.as_str(),
        source_ton: u8::from(sm.source_addr_ton),
    })
}

/// What a `data_sm` from the SMSC says: SMPP 3.4 §4.7 lets an SMSC send
/// receipts and handsets' texts so, the text in `message_payload`.
pub fn parse_data_sm(sm: &DataSm) -> Inbound {
    read(&Message {
        esm_class: u8::from(sm.esm_class),
        data_coding: u8::from(sm.data_coding),
        short_message: &[],
        tlvs: sm.tlvs(),
        source_addr: sm.source_addr.as_str(),
        source_ton: u8::from(sm.source_addr_ton),
    })
}

/// The fields of a `deliver_sm` or a `data_sm` that say what it is.
struct Message<'a> {
    esm_class: u8,
    data_coding: u8,
    short_message: &'a [u8],
    tlvs: &'a [Tlv],
    source_addr: &'a str,
    source_ton: u8,
}

fn read(sm: &Message<'_>) -> Inbound {
    let (esm, data_coding) = (sm.esm_class, sm.data_coding);
    // A text too long for `short_message` comes in the `message_payload`
    // TLV instead, `short_message` left empty (SMPP 3.4 §5.3.2.32).
    let payload = || {
        sm.tlvs.iter().find_map(|tlv| match tlv.value() {
            Some(TlvValue::MessagePayload(p)) => Some(p.value.as_ref()),
            _ => None,
        })
    };
    let body = match sm.short_message {
        [] => payload().unwrap_or_default(),
        body => body,
    };
    // Decoded only when needed: a receipt whose TLVs tell all (most do)
    // never reads its text.
    let text = || {
        text::decode(body, data_coding, esm & UDHI != 0)
            .unwrap_or_else(|_| String::from_utf8_lossy(body).into_owned())
    };
    if !matches!(
        esm & MESSAGE_TYPE,
        DELIVERY_RECEIPT | INTERMEDIATE_NOTIFICATION
    ) {
        return Inbound::Mobile {
            from: sm.source_addr.to_owned(),
            ton: sm.source_ton,
            text: text(),
        };
    }
    let mut id = None;
    let mut tlv_state = None;
    let mut network_error = None;
    for tlv in sm.tlvs {
        match tlv.value() {
            Some(TlvValue::ReceiptedMessageId(v)) => id = Some(v.as_str().to_owned()),
            Some(TlvValue::MessageState(s)) => tlv_state = Some(*s),
            // As the text's `err:` writes it: three digits, 000 for none.
            Some(TlvValue::NetworkErrorCode(e)) => {
                network_error = Some(format!("{:03}", e.error_code))
            }
            _ => {}
        }
    }
    // The text is read only when the TLVs do not tell all: most receipts
    // say DELIVERED with both TLVs, and the text adds nothing then.
    let tlvs_tell_all = id.is_some() && tlv_state == Some(MessageState::Delivered);
    let read = (!tlvs_tell_all).then(text);
    let classic = read.as_deref().and_then(parse_receipt_text);
    let Some(id) = id.or_else(|| classic.as_ref().map(|c| c.id.clone())) else {
        return Inbound::Unreadable(read.unwrap_or_default());
    };
    let (state, stat) = match (tlv_state, &classic) {
        (Some(s), _) => (state_of(s), stat_word(s)),
        (None, Some(c)) => (stat_state(&c.stat), c.stat.clone()),
        (None, None) => (State::Intermediate, String::new()),
    };
    let error = classic
        .and_then(|c| c.error)
        .or(network_error)
        .filter(|e| !e.trim_start_matches('0').is_empty());
    Inbound::Receipt(Receipt {
        id,
        state,
        stat,
        error,
    })
}

/// Final states (SMPP 3.4 5.2.28, 5.0's `SKIPPED`) settle the message.
/// `ACCEPTED` is final there too, but SMSCs send it as an acknowledgement
/// before the final receipt (Kannel reads it as buffered, as we do).
fn state_of(state: MessageState) -> State {
    match state {
        MessageState::Delivered => State::Delivered,
        MessageState::Expired
        | MessageState::Deleted
        | MessageState::Undeliverable
        | MessageState::Rejected
        | MessageState::Unknown
        | MessageState::Skipped => State::Failed,
        _ => State::Intermediate,
    }
}

/// The `stat:` word of the classic receipt text for a `message_state`
/// (SMPP 3.4 Appendix B, plus the two states SMPP 5.0 added), so that a
/// receipt reads the same whether the SMSC sent TLVs or text only.
fn stat_word(state: MessageState) -> String {
    match state {
        MessageState::Scheduled => "SCHEDULED",
        MessageState::Enroute => "ENROUTE",
        MessageState::Delivered => "DELIVRD",
        MessageState::Expired => "EXPIRED",
        MessageState::Deleted => "DELETED",
        MessageState::Undeliverable => "UNDELIV",
        MessageState::Accepted => "ACCEPTD",
        MessageState::Unknown => "UNKNOWN",
        MessageState::Rejected => "REJECTD",
        MessageState::Skipped => "SKIPPED",
        MessageState::Other(n) => return format!("STATE {n}"),
    }
    .to_owned()
}

/// The classic receipt words (SMPP 3.4 Appendix B).
fn stat_state(stat: &str) -> State {
    match stat.to_ascii_uppercase().as_str() {
        "DELIVRD" | "DELIVERED" => State::Delivered,
        "UNDELIV" | "REJECTD" | "EXPIRED" | "DELETED" | "UNDELIVERABLE" | "REJECTED"
        | "UNKNOWN" | "SKIPPED" => State::Failed,
        _ => State::Intermediate,
    }
}

struct Classic {
    id: String,
    stat: String,
    error: Option<String>,
}

/// `id:IIII sub:SSS dlvrd:DDD submit date:… done date:… stat:DDDDDDD err:E text:…`
/// Fields are found by name, in any order and case; `text:` ends the scan
/// since it may hold anything.
fn parse_receipt_text(text: &str) -> Option<Classic> {
    let head = match text.to_ascii_lowercase().find("text:") {
        Some(i) => &text[..i],
        None => text,
    };
    let lower = head.to_ascii_lowercase();
    let field = |name: &str| {
        let start = find_field(&lower, name)? + name.len();
        let value = head[start..].split_whitespace().next().unwrap_or_default();
        Some(value.to_owned())
    };
    Some(Classic {
        id: field("id:").filter(|v| !v.is_empty())?,
        stat: field("stat:").unwrap_or_default(),
        error: field("err:"),
    })
}

/// Where `name` starts as a whole field (not inside `submit date:` etc.).
fn find_field(lower: &str, name: &str) -> Option<usize> {
    lower.match_indices(name).map(|(i, _)| i).find(|&i| {
        i == 0
            || lower
                .as_bytes()
                .get(i - 1)
                .is_some_and(u8::is_ascii_whitespace)
    })
}

#[cfg(test)]
mod tests {
    use std::str::FromStr;

    use rusmpp::{
        tlvs::MessageDeliveryRequestTlvValue,
        types::{COctetString, OctetString},
        values::{EsmClass, Ton},
    };

    use super::*;

    fn deliver(esm: u8, text: &str) -> DeliverSm {
        DeliverSm::builder()
            .source_addr_ton(Ton::International)
            .source_addr(COctetString::from_str("491701234567").expect("addr"))
            .esm_class(EsmClass::from(esm))
            .short_message(OctetString::from_str(text).expect("text"))
            .build()
    }

    #[test]
    fn classic_receipt_text_is_read_by_field_name() {
        let sm = deliver(
            0x04,
            "id:0A1B2C sub:001 dlvrd:000 submit date:2611231200 done date:2611231201 stat:UNDELIV err:034 text:hello id:zz",
        );
        assert_eq!(
            parse(&sm),
            Inbound::Receipt(Receipt {
                id: "0A1B2C".into(),
                state: State::Failed,
                stat: "UNDELIV".into(),
                error: Some("034".into()),
            })
        );
    }

    #[test]
    fn tlvs_win_over_the_text() {
        let mut sm = deliver(0x04, "id:999 stat:UNDELIV err:000");
        sm.push_tlv(MessageDeliveryRequestTlvValue::ReceiptedMessageId(
            COctetString::from_str("abc").expect("id"),
        ));
        sm.push_tlv(MessageDeliveryRequestTlvValue::MessageState(
            MessageState::Delivered,
        ));
        let Inbound::Receipt(r) = parse(&sm) else {
            panic!("not a receipt")
        };
        assert_eq!((r.id.as_str(), r.state), ("abc", State::Delivered));
        assert_eq!(r.error, None, "err:000 is no error");
    }

    #[test]
    fn a_network_error_code_tlv_reads_as_the_texts_err() {
        use rusmpp::values::{ErrorCodeNetworkType, NetworkErrorCode};
        for (code, error) in [(0, None), (34, Some("034"))] {
            let mut sm = deliver(0x04, "");
            sm.push_tlv(MessageDeliveryRequestTlvValue::ReceiptedMessageId(
                COctetString::from_str("7").expect("id"),
            ));
            sm.push_tlv(MessageDeliveryRequestTlvValue::MessageState(
                MessageState::Undeliverable,
            ));
            sm.push_tlv(MessageDeliveryRequestTlvValue::NetworkErrorCode(
                NetworkErrorCode::new(ErrorCodeNetworkType::Gsm, code),
            ));
            let Inbound::Receipt(r) = parse(&sm) else {
                panic!("not a receipt")
            };
            assert_eq!(r.error.as_deref(), error, "code {code}");
        }
    }

    #[test]
    fn a_final_tlv_state_settles_and_an_acknowledgement_does_not() {
        for (state, expected) in [
            (MessageState::Unknown, State::Failed),
            (MessageState::Skipped, State::Failed),
            (MessageState::Accepted, State::Intermediate),
            (MessageState::Enroute, State::Intermediate),
        ] {
            let mut sm = deliver(0x04, "id:7 stat:ENROUTE");
            sm.push_tlv(MessageDeliveryRequestTlvValue::ReceiptedMessageId(
                COctetString::from_str("7").expect("id"),
            ));
            sm.push_tlv(MessageDeliveryRequestTlvValue::MessageState(state));
            let Inbound::Receipt(r) = parse(&sm) else {
                panic!("not a receipt")
            };
            assert_eq!(r.state, expected, "{state:?}");
        }
    }

    #[test]
    fn a_tlv_state_reads_as_the_stat_word_of_the_text() {
        for (state, text_stat, stat) in [
            (MessageState::Undeliverable, "UNDELIV", "UNDELIV"),
            (MessageState::Rejected, "REJECTD", "REJECTD"),
            (MessageState::Expired, "EXPIRED", "EXPIRED"),
            (MessageState::Delivered, "DELIVRD", "DELIVRD"),
            (MessageState::Accepted, "ACCEPTD", "ACCEPTD"),
            (MessageState::Other(42), "UNDELIV", "STATE 42"),
        ] {
            let mut sm = deliver(0x04, &format!("id:7 stat:{text_stat} err:034"));
            sm.push_tlv(MessageDeliveryRequestTlvValue::ReceiptedMessageId(
                COctetString::from_str("7").expect("id"),
            ));
            sm.push_tlv(MessageDeliveryRequestTlvValue::MessageState(state));
            let Inbound::Receipt(r) = parse(&sm) else {
                panic!("not a receipt")
            };
            assert_eq!(r.stat, stat, "{state:?}");
        }
    }

    #[test]
    fn states_map_to_delivered_failed_or_nothing_yet() {
        for (stat, state) in [
            ("DELIVRD", State::Delivered),
            ("UNDELIV", State::Failed),
            ("REJECTD", State::Failed),
            ("EXPIRED", State::Failed),
            ("ENROUTE", State::Intermediate),
            ("ACCEPTD", State::Intermediate),
            ("UNKNOWN", State::Failed),
            ("SKIPPED", State::Failed),
        ] {
            let Inbound::Receipt(r) = parse(&deliver(0x04, &format!("id:1 stat:{stat}"))) else {
                panic!("not a receipt")
            };
            assert_eq!(r.state, state, "{stat}");
        }
    }

    #[test]
    fn a_receipt_without_an_id_is_unreadable() {
        assert!(matches!(
            parse(&deliver(0x04, "stat:DELIVRD")),
            Inbound::Unreadable(_)
        ));
    }

    proptest::proptest! {
        /// Whatever an SMSC puts in a deliver_sm, reading it never panics
        /// and a receipt always has an id.
        #[test]
        fn any_deliver_sm_reads_without_panicking(
            esm in proptest::prelude::any::<u8>(),
            coding in proptest::prelude::any::<u8>(),
            body in proptest::collection::vec(proptest::prelude::any::<u8>(), 0..255),
        ) {
            let sm = DeliverSm::builder()
                .esm_class(EsmClass::from(esm))
                .data_coding(rusmpp::values::DataCoding::from(coding))
                .short_message(OctetString::from_vec(body).expect("at most 255 octets"))
                .build();
            if let Inbound::Receipt(r) = parse(&sm) {
                proptest::prop_assert!(!r.id.is_empty());
            }
        }

        /// Bytes off the wire, garbage included, decode to a command or an
        /// error (the session answers and skips that PDU), never a panic.
        #[test]
        fn any_bytes_from_an_smsc_decode_without_panicking(
            bytes in proptest::collection::vec(proptest::prelude::any::<u8>(), 0..512),
        ) {
            use tokio_util::codec::Decoder;
            let mut codec = rusmpp::tokio_codec::CommandCodec::new();
            let mut buffer = bytes::BytesMut::from(&bytes[..]);
            while let Ok(Some(_)) = codec.decode(&mut buffer) {}
        }
    }

    /// A handset's text, or a receipt's, in the `message_payload` TLV with
    /// an empty `short_message` reads as if it were in `short_message`.
    #[test]
    fn a_text_in_the_message_payload_reads_as_the_short_message() {
        use rusmpp::{types::AnyOctetString, values::MessagePayload};
        let with_payload = |esm, text: &str| {
            let mut sm = deliver(esm, "");
            sm.push_tlv(MessageDeliveryRequestTlvValue::MessagePayload(
                MessagePayload::new(AnyOctetString::from_slice(text.as_bytes())),
            ));
            parse(&sm)
        };
        assert_eq!(with_payload(0x00, "STOP"), parse(&deliver(0x00, "STOP")));
        let receipt = "id:0A1B2C sub:001 dlvrd:001 submit date:2611231200 done date:2611231201 stat:DELIVRD err:000 text:";
        assert_eq!(with_payload(0x04, receipt), parse(&deliver(0x04, receipt)));
        assert!(matches!(with_payload(0x04, receipt), Inbound::Receipt(_)));
    }

    #[test]
    fn a_plain_deliver_sm_is_a_text_from_a_handset() {
        assert_eq!(
            parse(&deliver(0x00, "Stop")),
            Inbound::Mobile {
                from: "491701234567".into(),
                ton: 1,
                text: "Stop".into()
            }
        );
    }
}
