//! Uploads staged until they are published: their participants' records are
//! written as they arrive (so memory holds only their numbers), each staged
//! batch with a marker listing its numbers. Publishing writes the `accepted`
//! facts and removes the markers in one commit; a marker still there when
//! the store opens belongs to an upload never published, whose records are
//! then removed.
//!
//! A marker's key is the upload id then the batch's number (both
//! big-endian); its value is the campaign's number then each participant's
//! number (big-endian `u32`s).

use domain::MessageNo;
use fjall::{Database, PersistMode};

use super::{Keyspaces, io};
use crate::{Result, StoreError, UploadId, codec};

/// An upload staged in memory: which messages it holds and where their
/// markers are.
#[derive(Debug, Default)]
pub(super) struct Staged {
    pub campaign: u32,
    pub participants: Vec<u32>,
    pub markers: Vec<[u8; 12]>,
}

impl Staged {
    pub fn new(campaign: u32) -> Self {
        Self {
            campaign,
            ..Self::default()
        }
    }

    /// The key of this upload's next marker.
    pub fn next_marker(&self, upload: UploadId) -> [u8; 12] {
        let mut key = [0; 12];
        key[..8].copy_from_slice(&upload.0.to_be_bytes());
        let batch = u32::try_from(self.markers.len()).unwrap_or(u32::MAX);
        key[8..].copy_from_slice(&batch.to_be_bytes());
        key
    }

    /// The upload's messages.
    pub fn messages(&self) -> impl Iterator<Item = MessageNo> + '_ {
        self.participants.iter().map(|&participant| MessageNo {
            campaign: self.campaign,
            participant,
        })
    }
}

/// A marker's value: `campaign` then `participants`.
pub(super) fn encode_marker(campaign: u32, participants: &[u32]) -> Vec<u8> {
    let mut value = Vec::with_capacity(4 + 4 * participants.len());
    value.extend_from_slice(&campaign.to_be_bytes());
    for n in participants {
        value.extend_from_slice(&n.to_be_bytes());
    }
    value
}

fn decode_marker(value: &[u8]) -> Result<impl Iterator<Item = MessageNo> + '_> {
    if value.len() < 4 || !value.len().is_multiple_of(4) {
        return Err(StoreError::Corrupt {
            what: "staged upload",
            detail: format!("{} bytes, not 4 per number", value.len()),
        });
    }
    let mut numbers = value
        .chunks_exact(4)
        .map(|b| u32::from_be_bytes([b[0], b[1], b[2], b[3]]));
    let campaign = numbers.next().unwrap_or_default();
    Ok(numbers.map(move |participant| MessageNo {
        campaign,
        participant,
    }))
}

/// Removes every upload staged and never published (the daemon stopped or
/// died before its request was answered), before the index is rebuilt.
pub(super) fn drop_unpublished(db: &Database, ks: &Keyspaces) -> Result<()> {
    let mut batch = db.batch().durability(None);
    let mut dropped = 0usize;
    for kv in ks.stages.iter() {
        let (key, value) = kv.into_inner().map_err(io)?;
        for msg in decode_marker(&value)? {
            batch.remove(&ks.participants, codec::message_key(msg));
            dropped += 1;
        }
        batch.remove(&ks.stages, key);
    }
    if batch.is_empty() {
        return Ok(());
    }
    tracing::info!(
        participants = dropped,
        "dropped the participants of uploads that were never answered"
    );
    batch
        .commit()
        .and_then(|()| db.persist(PersistMode::SyncData))
        .map_err(io)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn a_marker_reads_back_its_messages() {
        let value = encode_marker(7, &[3, 9, 4_000_000_000]);
        let msgs: Vec<MessageNo> = decode_marker(&value).expect("marker").collect();
        let numbers: Vec<(u32, u32)> = msgs.iter().map(|m| (m.campaign, m.participant)).collect();
        assert_eq!(numbers, vec![(7, 3), (7, 9), (7, 4_000_000_000)]);
        assert!(
            decode_marker(&[1, 2, 3]).is_err(),
            "a torn marker is corrupt"
        );
    }
}
