//! Keys and values as the embedded engine writes them. Message keys are
//! big-endian (campaign, participant) so a campaign's messages are written and
//! read sequentially; fact keys are big-endian cursors.

use serde::{Deserialize, Serialize};

use super::{Result, StoreError};
use crate::domain::{MessageNo, MessageState, Millis, Status};

pub fn message_key(msg: MessageNo) -> [u8; 8] {
    msg.as_u64().to_be_bytes()
}

pub fn parse_message_key(key: &[u8]) -> Result<MessageNo> {
    let bytes: [u8; 8] = key
        .try_into()
        .map_err(|_| corrupt("message key", "not 8 bytes"))?;
    Ok(MessageNo::from_u64(u64::from_be_bytes(bytes)))
}

pub fn cursor_key(cursor: u64) -> [u8; 8] {
    cursor.to_be_bytes()
}

/// A message's state, rewritten on every outcome.
#[derive(Debug, Clone, Copy, PartialEq, Serialize, Deserialize)]
pub struct StatusRecord {
    #[serde(rename = "s")]
    pub status: Status,
    #[serde(rename = "a")]
    pub attempts: u32,
    /// When a pending message is due.
    #[serde(rename = "d")]
    pub due: Millis,
    /// When the status was reached.
    #[serde(rename = "t")]
    pub at: Millis,
}

impl From<MessageState> for StatusRecord {
    fn from(s: MessageState) -> Self {
        Self {
            status: s.status,
            attempts: s.attempts,
            due: s.due,
            at: s.at,
        }
    }
}

pub fn encode<T: Serialize>(value: &T) -> Vec<u8> {
    // Serializing our own plain structs to JSON cannot fail.
    serde_json::to_vec(value).unwrap_or_default()
}

pub fn decode<'a, T: Deserialize<'a>>(what: &'static str, bytes: &'a [u8]) -> Result<T> {
    serde_json::from_slice(bytes).map_err(|e| corrupt(what, &e.to_string()))
}

fn corrupt(what: &'static str, detail: &str) -> StoreError {
    StoreError::Corrupt {
        what,
        detail: detail.to_owned(),
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn message_keys_sort_by_campaign_then_participant() {
        let a = message_key(MessageNo {
            campaign: 1,
            participant: 0xFFFF_FFFF,
        });
        let b = message_key(MessageNo {
            campaign: 2,
            participant: 0,
        });
        assert!(a < b);
        let m = MessageNo {
            campaign: 7,
            participant: 42,
        };
        assert_eq!(parse_message_key(&message_key(m)).expect("key"), m);
    }
}
