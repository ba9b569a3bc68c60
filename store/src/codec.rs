//! Keys and records as the embedded engine writes them. Message keys are
//! big-endian (campaign, participant) so a campaign's messages are written and
//! read sequentially; fact keys are big-endian cursors.
//!
//! A record is the domain type it stores, versioned by its first byte:
//! version 2 is a version byte then MessagePack (structs as arrays, so field
//! names are not repeated in every record). The first release wrote JSON with
//! no version byte, whose first byte is `{` or `[`; such records are still
//! read, so a data directory it wrote opens and keeps working. Any other
//! first byte is an unknown version: a clear error, never a guess.

use std::collections::BTreeMap;

use domain::{
    CampaignRecord, Fact, FactDetail, FactKind, MessageNo, MessageState, Participant,
    fields_from_json, parse_rfc3339,
};
use serde::{Deserialize, Serialize, de::DeserializeOwned};

use super::{Result, StoreError};

/// The version byte of the records this release writes.
const VERSION: u8 = 2;

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

/// A domain type the engine stores, with how the first release wrote it.
pub trait Record: Serialize + DeserializeOwned {
    /// What it is, for errors (`campaign`, `participant`, ...).
    const WHAT: &'static str;

    /// The record from the first release's JSON.
    fn from_json(bytes: &[u8]) -> serde_json::Result<Self>;
}

pub fn encode<T: Record>(value: &T) -> Vec<u8> {
    versioned(value)
}

/// A run of facts, encoded as `Vec<Fact>` is, from a slice of a longer run.
pub fn encode_facts(run: &[Fact]) -> Vec<u8> {
    versioned(run)
}

fn versioned<T: Serialize + ?Sized>(value: &T) -> Vec<u8> {
    // Room for a message's state or a short record: grown from one byte,
    // the buffer was copied four times for each.
    let mut out = Vec::with_capacity(32);
    out.push(VERSION);
    // Our own plain types into a Vec cannot fail to encode.
    let _ = rmp_serde::encode::write(&mut out, value);
    out
}

pub fn decode<T: Record>(bytes: &[u8]) -> Result<T> {
    match bytes.first() {
        Some(&VERSION) => {
            rmp_serde::from_slice(&bytes[1..]).map_err(|e| corrupt(T::WHAT, &e.to_string()))
        }
        Some(b'{' | b'[') => T::from_json(bytes).map_err(|e| corrupt(T::WHAT, &e.to_string())),
        Some(other) => Err(corrupt(
            T::WHAT,
            &format!(
                "unknown record version {other} (this release reads 2 and the first release's JSON)"
            ),
        )),
        None => Err(corrupt(T::WHAT, "empty record")),
    }
}

impl Record for CampaignRecord {
    const WHAT: &'static str = "campaign";

    /// The first release's JSON has the same fields and names.
    fn from_json(bytes: &[u8]) -> serde_json::Result<Self> {
        serde_json::from_slice(bytes)
    }
}

impl Record for MessageState {
    const WHAT: &'static str = "status";

    /// The first release's JSON has the same fields and names (`s`, `a`, `d`, `t`).
    fn from_json(bytes: &[u8]) -> serde_json::Result<Self> {
        serde_json::from_slice(bytes)
    }
}

impl Record for Participant {
    const WHAT: &'static str = "participant";

    fn from_json(bytes: &[u8]) -> serde_json::Result<Self> {
        #[derive(Deserialize)]
        struct Json {
            customer: String,
            address: String,
            #[serde(default)]
            segment: Option<String>,
            #[serde(default)]
            fields: BTreeMap<String, serde_json::Value>,
        }
        let p: Json = serde_json::from_slice(bytes)?;
        Ok(Self {
            customer: p.customer,
            address: p.address,
            segment: p.segment,
            fields: fields_from_json(p.fields),
        })
    }
}

/// A run of facts with consecutive cursors.
impl Record for Vec<Fact> {
    const WHAT: &'static str = "facts";

    /// The first release wrote the feed's own JSON: instants as RFC 3339,
    /// the type by name and the detail's fields flattened into the fact.
    fn from_json(bytes: &[u8]) -> serde_json::Result<Self> {
        #[derive(Deserialize)]
        struct Json {
            cursor: u64,
            at: String,
            campaign: String,
            customer: String,
            #[serde(rename = "type")]
            kind: String,
            #[serde(flatten)]
            detail: JsonDetail,
        }
        #[derive(Deserialize)]
        struct JsonDetail {
            attempt: Option<u32>,
            attempts: Option<u32>,
            bounce: Option<String>,
            bounce_reason: Option<String>,
            diagnostic: Option<String>,
            error: Option<String>,
            reason: Option<String>,
            reply: Option<String>,
            replycode: Option<u16>,
            retry_at: Option<String>,
            stat: Option<String>,
            status: Option<String>,
            text: Option<String>,
            url: Option<String>,
            why: Option<String>,
        }
        let invalid = |what: String| <serde_json::Error as serde::de::Error>::custom(what);
        let run: Vec<Json> = serde_json::from_slice(bytes)?;
        run.into_iter()
            .map(|f| {
                let d = f.detail;
                let at = parse_rfc3339(&f.at).ok_or_else(|| invalid(format!("at: {}", f.at)))?;
                let retry_at = match d.retry_at {
                    Some(text) => Some(
                        parse_rfc3339(&text).ok_or_else(|| invalid(format!("retry_at: {text}")))?,
                    ),
                    None => None,
                };
                Ok(Fact {
                    cursor: f.cursor,
                    at,
                    campaign: f.campaign,
                    customer: f.customer,
                    kind: FactKind::parse(&f.kind)
                        .ok_or_else(|| invalid(format!("type: {}", f.kind)))?,
                    detail: FactDetail {
                        attempt: d.attempt,
                        attempts: d.attempts,
                        bounce: d.bounce,
                        bounce_reason: d.bounce_reason,
                        diagnostic: d.diagnostic,
                        error: d.error,
                        reason: d.reason,
                        reply: d.reply,
                        replycode: d.replycode,
                        retry_at,
                        stat: d.stat,
                        status: d.status,
                        text: d.text,
                        url: d.url,
                        why: d.why,
                        // The first release had no fallback.
                        to: None,
                    },
                })
            })
            .collect()
    }
}

pub(crate) fn corrupt(what: &'static str, detail: &str) -> StoreError {
    StoreError::Corrupt {
        what,
        detail: detail.to_owned(),
    }
}

#[cfg(test)]
mod tests;
