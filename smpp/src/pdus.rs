//! The byte stream from an SMSC split into PDUs by their `command_length`,
//! each then decoded on its own: one that cannot be decoded is a PDU to
//! answer and skip, not the end of the stream (rusmpp's codec, given the
//! stream, stops at its first error), and no decoding reads past its PDU.
//!
//! A `deliver_sm` whose optional part cannot be decoded (a
//! `receipted_message_id` without its NUL, as some SMSCs send it) is read
//! again without it: a receipt's text usually says what its TLVs did.

use bytes::{BufMut, BytesMut};
use rusmpp::{Command, CommandId, tokio_codec::CommandCodec};
use tokio_util::codec::Decoder;

/// Largest PDU we accept from an SMSC: a deliver_sm is mostly under 1 KiB,
/// but its `message_payload` may hold up to 64 KiB.
pub const MAX_COMMAND_LENGTH: usize = 1 << 17;
const HEADER: usize = 16;

/// A PDU whose header could be read but not the rest.
#[derive(Debug)]
pub struct Undecodable {
    pub id: u32,
    pub sequence: u32,
    pub error: String,
}

pub struct Pdus;

impl Decoder for Pdus {
    /// A PDU, or one whose header could be read but not the rest.
    type Item = Result<Command, Undecodable>;
    type Error = std::io::Error;

    fn decode(&mut self, src: &mut BytesMut) -> Result<Option<Self::Item>, Self::Error> {
        let Some(header) = src.get(..HEADER) else {
            return Ok(None);
        };
        let (length, id, sequence) = (word(header, 0) as usize, word(header, 4), word(header, 12));
        if !(HEADER..=MAX_COMMAND_LENGTH).contains(&length) {
            return Err(std::io::Error::new(
                std::io::ErrorKind::InvalidData,
                format!("command_length {length} is not {HEADER}..={MAX_COMMAND_LENGTH}"),
            ));
        }
        if src.len() < length {
            src.reserve(length - src.len());
            return Ok(None);
        }
        let mut pdu = src.split_to(length);
        // Decoding consumes the PDU: a deliver_sm is kept to be read again
        // without its TLVs should they not decode.
        let deliver_sm = (CommandId::from(id) == CommandId::DeliverSm).then(|| pdu.clone());
        Ok(Some(decode_one(&mut pdu).or_else(|error| {
            deliver_sm
                .and_then(|whole| without_tlvs(&whole))
                .and_then(|mut bare| decode_one(&mut bare).ok())
                .inspect(|_| tracing::warn!(sequence, %error, "deliver_sm's optional part cannot be decoded; read without it"))
                .ok_or(Undecodable {
                    id,
                    sequence,
                    error,
                })
        })))
    }
}

/// The big-endian word at `at`.
fn word(bytes: &[u8], at: usize) -> u32 {
    u32::from_be_bytes([bytes[at], bytes[at + 1], bytes[at + 2], bytes[at + 3]])
}

/// One whole PDU decoded (its length checked by the caller).
fn decode_one(pdu: &mut BytesMut) -> Result<Command, String> {
    match CommandCodec::new().without_max_length().decode(pdu) {
        Ok(Some(command)) => Ok(command),
        Ok(None) => Err("shorter than its command_length".into()),
        Err(e) => Err(e.to_string()),
    }
}

/// A deliver_sm cut after its mandatory part (SMPP 3.4 §4.6.1: up to and
/// with `short_message`), its command_length set to match; `None` if even
/// that part does not fit in it, or if its `short_message` is empty (its
/// text is then in a TLV: read without them it would say nothing, and a
/// STOP would pass for an empty text).
fn without_tlvs(pdu: &[u8]) -> Option<BytesMut> {
    let mut at = HEADER;
    let c_string = |at: usize| Some(at + pdu.get(at..)?.iter().position(|&b| b == 0)? + 1);
    at = c_string(at)? + 2; // service_type, source_addr_ton and _npi
    at = c_string(at)? + 2; // source_addr, dest_addr_ton and _npi
    at = c_string(at)? + 3; // destination_addr, esm_class, protocol_id, priority_flag
    at = c_string(at)?; // schedule_delivery_time
    at = c_string(at)? + 4; // validity_period, registered_delivery .. sm_default_msg_id
    let sm_length = usize::from(*pdu.get(at)?);
    if sm_length == 0 {
        return None;
    }
    let end = at + 1 + sm_length;
    let mandatory = pdu.get(..end)?;
    let mut bare = BytesMut::with_capacity(end);
    bare.put_u32(u32::try_from(end).ok()?);
    bare.extend_from_slice(&mandatory[4..]);
    Some(bare)
}

#[cfg(test)]
mod tests {
    use rusmpp::Pdu;

    use super::*;
    use crate::testing::pdu;

    /// The mandatory part of a deliver_sm receipt whose text is `text`.
    fn receipt_body(text: &[u8]) -> Vec<u8> {
        let mut body = b"\0\x01\x01491\0\x01\x01123\0\x04\0\0\0\0\0\0\0\0".to_vec();
        body.push(u8::try_from(text.len()).expect("short"));
        body.extend(text);
        body
    }

    fn decoded(bytes: &[u8]) -> Vec<Result<Command, Undecodable>> {
        let mut buffer = BytesMut::from(bytes);
        let mut out = Vec::new();
        while let Ok(Some(next)) = Pdus.decode(&mut buffer) {
            out.push(next);
        }
        out
    }

    /// A deliver_sm whose receipted_message_id lacks its NUL is read
    /// without its TLVs (its text still says whose receipt it is), and the
    /// PDU after it is read in step.
    #[test]
    fn a_deliver_sm_with_a_broken_tlv_is_read_without_its_tlvs() {
        let mut body = receipt_body(b"id:77 stat:DELIVRD err:000");
        body.extend([0x00, 0x1E, 0x00, 0x02]);
        body.extend(b"77");
        let stream = [pdu(0x0000_0005, 0, 9, &body), pdu(0x0000_0015, 0, 10, b"")].concat();
        let read = decoded(&stream);
        assert_eq!(read.len(), 2, "{read:?}");
        let Ok(command) = &read[0] else {
            panic!("{read:?}");
        };
        let Some(Pdu::DeliverSm(sm)) = command.pdu() else {
            panic!("{command:?}");
        };
        assert_eq!(sm.short_message().as_ref(), b"id:77 stat:DELIVRD err:000");
        assert!(sm.tlvs().is_empty());
        assert!(matches!(&read[1], Ok(c) if c.sequence_number() == 10));
    }

    /// A deliver_sm whose text is in a TLV (an empty short_message) is not
    /// read without its TLVs: it would say nothing, a STOP an empty text.
    #[test]
    fn a_deliver_sm_whose_text_is_in_a_tlv_is_not_read_without_them() {
        let mut body = receipt_body(b"");
        body.extend([0x04, 0x24, 0x00, 0x04]);
        body.extend(b"STOP");
        body.extend([0x00, 0x1E, 0x00, 0x02]);
        body.extend(b"77");
        let read = decoded(&pdu(0x0000_0005, 0, 13, &body));
        assert!(
            matches!(read.as_slice(), [Err(Undecodable { sequence: 13, .. })]),
            "{read:?}"
        );
    }

    /// PDUs up to `MAX_COMMAND_LENGTH` are taken: a message_payload of 60
    /// KiB (SMPP allows 64) is read whole.
    #[test]
    fn a_deliver_sm_with_a_large_payload_is_read() {
        let mut body = receipt_body(b"");
        let payload = vec![b'a'; 60 << 10];
        body.extend([0x04, 0x24]);
        body.extend(u16::try_from(payload.len()).expect("fits").to_be_bytes());
        body.extend(&payload);
        let read = decoded(&pdu(0x0000_0005, 0, 11, &body));
        let [Ok(command)] = read.as_slice() else {
            panic!("{read:?}");
        };
        let Some(Pdu::DeliverSm(sm)) = command.pdu() else {
            panic!("{command:?}");
        };
        assert_eq!(sm.tlvs().len(), 1, "the payload read with it");
    }

    /// What cannot be read even without its TLVs is undecodable, named by
    /// its header.
    #[test]
    fn a_pdu_that_cannot_be_read_at_all_is_undecodable() {
        let read = decoded(&pdu(0x8000_0004, 0, 12, b"abc"));
        assert!(
            matches!(
                read.as_slice(),
                [Err(Undecodable {
                    id: 0x8000_0004,
                    sequence: 12,
                    ..
                })]
            ),
            "{read:?}"
        );
    }

    proptest::proptest! {
        /// Any bytes split into PDUs by their command_length: each PDU is
        /// a command or undecodable, never a panic, never past its end.
        #[test]
        fn any_bytes_split_into_pdus_without_panicking(
            bytes in proptest::collection::vec(proptest::prelude::any::<u8>(), 0..512),
        ) {
            decoded(&bytes);
        }
    }
}
