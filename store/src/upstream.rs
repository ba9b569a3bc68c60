//! How both engines link an SMSC's message ids to our messages.
//!
//! Key `smsc (u16 BE) · id` → value `message (u64 BE) · part · parts`, where
//! the id is normalised (lower case, no leading zeros). SMSCs differ in how
//! they write the same id in `submit_sm_resp` and in the receipt (hex in one,
//! decimal in the other), so a receipt's id is also looked up in the other
//! base, as far as its [`IdReadings`] allow.
//! A concatenated message also has a progress key `FF FF · message` holding
//! how many parts still wait for a receipt (0 once a part failed).

use domain::{IdReadings, MessageNo, ReceiptIn, ReceiptMatch, Upstream};

/// Where one upstream id leads.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Link {
    pub msg: MessageNo,
    pub part: u8,
    pub parts: u8,
}

pub fn id_key(smsc: u16, id: &str) -> Vec<u8> {
    let id = normalised(id);
    let mut key = Vec::with_capacity(2 + id.len());
    key.extend_from_slice(&smsc.to_be_bytes());
    key.extend(id.bytes().map(|b| b.to_ascii_lowercase()));
    key
}

/// The keys a receipt's id may have been stored under, the id as given
/// first (the other readings are only worked out if it is not found).
pub fn lookup_keys(r: &ReceiptIn) -> impl Iterator<Item = Vec<u8>> + '_ {
    let others = move || {
        let id = normalised(&r.id).to_ascii_lowercase();
        let mut readings = Vec::new();
        let decimal = !id.is_empty() && id.bytes().all(|b| b.is_ascii_digit());
        if decimal && let Ok(n) = id.parse::<u128>() {
            readings.push(format!("{n:x}"));
        }
        if let Ok(n) = u128::from_str_radix(&id, 16) {
            readings.push(n.to_string());
        }
        readings.retain(|reading| *reading != id);
        match r.readings {
            IdReadings::AsGiven => readings.clear(),
            IdReadings::Unmistakable => {
                readings.retain(|reading| has_hex_letter(&id) || has_hex_letter(reading));
            }
            IdReadings::Any => {}
        }
        readings.dedup();
        readings
            .into_iter()
            .map(move |reading| id_key(r.smsc, &reading))
    };
    std::iter::once(id_key(r.smsc, &r.id)).chain(std::iter::once_with(others).flatten())
}

/// What it says of `r` that its message was found under `key` (one of
/// [`lookup_keys`]): whether the SMSC wrote the id in another base.
pub fn matched(r: &ReceiptIn, key: &[u8]) -> ReceiptMatch {
    if key == id_key(r.smsc, &r.id) {
        ReceiptMatch::Matched
    } else {
        ReceiptMatch::MatchedInOtherBase
    }
}

fn has_hex_letter(id: &str) -> bool {
    id.bytes().any(|b| matches!(b, b'a'..=b'f'))
}

/// Each part's id key with its link, for a message the SMSC took as `up`.
pub fn links(msg: MessageNo, up: &Upstream) -> impl Iterator<Item = (Vec<u8>, Vec<u8>)> + '_ {
    let parts = u8::try_from(up.ids.len()).unwrap_or(u8::MAX);
    up.ids.iter().enumerate().map(move |(part, id)| {
        let link = Link {
            msg,
            part: u8::try_from(part).unwrap_or(u8::MAX),
            parts,
        };
        (id_key(up.smsc, id), encode_link(link))
    })
}

pub fn progress_key(msg: MessageNo) -> Vec<u8> {
    let mut key = vec![0xFF, 0xFF];
    key.extend_from_slice(&msg.as_u64().to_be_bytes());
    key
}

pub fn encode_link(link: Link) -> Vec<u8> {
    let mut value = Vec::with_capacity(10);
    value.extend_from_slice(&link.msg.as_u64().to_be_bytes());
    value.extend_from_slice(&[link.part, link.parts]);
    value
}

pub fn decode_link(value: &[u8]) -> Option<Link> {
    let msg: [u8; 8] = value.get(..8)?.try_into().ok()?;
    Some(Link {
        msg: MessageNo::from_u64(u64::from_be_bytes(msg)),
        part: *value.get(8)?,
        parts: *value.get(9)?,
    })
}

/// The campaign of the message an upstream entry (a link or a progress
/// key, with its value) is about: once that campaign is deleted, the entry
/// is of no use.
pub fn campaign_of(key: &[u8], value: &[u8]) -> Option<u32> {
    let msg = match key {
        [0xFF, 0xFF, msg @ ..] => MessageNo::from_u64(u64::from_be_bytes(msg.try_into().ok()?)),
        _ => decode_link(value)?.msg,
    };
    Some(msg.campaign)
}

/// `id` without surrounding blanks and leading zeros (`0` stays); keys hold
/// it lower case.
fn normalised(id: &str) -> &str {
    let id = id.trim();
    let trimmed = id.trim_start_matches('0');
    if trimmed.is_empty() && !id.is_empty() {
        "0"
    } else {
        trimmed
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn receipt(id: &str, readings: IdReadings) -> ReceiptIn {
        ReceiptIn {
            smsc: 3,
            id: id.into(),
            readings,
            delivered: Some(true),
            at: 0,
            detail: domain::FactDetail::default(),
        }
    }

    fn finds(id: &str, readings: IdReadings, stored: &str) -> bool {
        let r = receipt(id, readings);
        lookup_keys(&r).any(|k| k == id_key(3, stored))
    }

    #[test]
    fn ids_match_whatever_case_and_leading_zeros() {
        assert_eq!(id_key(1, "00AbC"), id_key(1, "abc"));
        assert_eq!(id_key(1, " 000 "), id_key(1, "0"));
        assert_ne!(id_key(1, "abc"), id_key(2, "abc"));
        assert!(finds("ABC", IdReadings::Unmistakable, "abc"));
        assert_eq!(
            matched(&receipt("00ABC", IdReadings::Any), &id_key(3, "abc")),
            ReceiptMatch::Matched
        );
    }

    #[test]
    fn a_decimal_receipt_id_finds_a_hex_submit_id_and_back() {
        // The SMSC answered submit_sm with hex, the receipt text says decimal.
        for readings in [IdReadings::Unmistakable, IdReadings::Any] {
            assert!(finds("6699", readings, "1A2B"));
            assert!(finds("1a2b", readings, "6699"));
        }
        assert_eq!(
            matched(&receipt("6699", IdReadings::Any), &id_key(3, "1a2b")),
            ReceiptMatch::MatchedInOtherBase
        );
    }

    #[test]
    fn an_id_of_digits_only_both_ways_is_read_in_one_base_until_the_smsc_mixes_them() {
        // "16" may be decimal for hex "10", or another message's id "16".
        assert!(!finds("16", IdReadings::Unmistakable, "10"));
        assert!(!finds("10", IdReadings::Unmistakable, "16"));
        assert!(finds("16", IdReadings::Any, "10"));
        assert!(finds("10", IdReadings::Any, "16"));
        assert!(finds("16", IdReadings::Unmistakable, "16"));
    }

    #[test]
    fn an_smsc_whose_receipts_match_as_given_gets_no_other_reading() {
        assert!(!finds("6699", IdReadings::AsGiven, "1A2B"));
        assert!(!finds("1a2b", IdReadings::AsGiven, "6699"));
        assert!(finds("1A2B", IdReadings::AsGiven, "1a2b"));
    }

    #[test]
    fn links_round_trip() {
        let link = Link {
            msg: MessageNo {
                campaign: 3,
                participant: 9,
            },
            part: 2,
            parts: 4,
        };
        assert_eq!(decode_link(&encode_link(link)), Some(link));
        assert_eq!(decode_link(&[1, 2]), None);
    }

    #[test]
    fn an_entry_names_its_campaign_by_its_link_or_its_progress_key() {
        let msg = MessageNo {
            campaign: 7,
            participant: 1,
        };
        let link = encode_link(Link {
            msg,
            part: 1,
            parts: 2,
        });
        assert_eq!(campaign_of(&id_key(0, "1a"), &link), Some(7));
        assert_eq!(campaign_of(&progress_key(msg), &[1]), Some(7));
        assert_eq!(campaign_of(&id_key(0, "1a"), &[1, 2]), None);
    }
}
