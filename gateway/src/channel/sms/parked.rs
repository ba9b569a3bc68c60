//! Receipts whose message id is not known yet, parked durably so that their
//! deliver_sm can be answered before the id is.
//!
//! An SMSC holds each deliver_sm in its window until it is answered and
//! resends it (or drops the session) after its own timeout, often well under
//! a minute; a few receipts left unanswered for `sms.receipt_wait_secs` would
//! stall every receipt behind them. So a receipt still unknown [`AFTER`] its
//! arrival is written under a meta key `early-receipt:SMSC:ID:AT:N`, answered
//! once that is durable, and matched again every [`RETRY_EVERY`] until its
//! wait is over; its key goes once it is settled. A restarted node takes up
//! the receipts it parked (by its `store.node` name) and, on a store nodes
//! share, those another node left [`ABANDONED_AFTER`] their wait: a live
//! node settles its own. At most [`MAX`] are parked by a node: beyond, a
//! receipt waits unanswered, which holds the SMSC back.

use std::time::Duration;

use serde::{Deserialize, Serialize};

use crate::metrics::BindLabels;
use domain::{FactDetail, IdReadings, Millis, ReceiptIn};

/// Meta keys of parked receipts start with this.
pub const PREFIX: &str = "early-receipt:";
/// Receipts a node keeps parked at most.
pub const MAX: usize = 10_000;
/// How long a receipt waits unanswered for its id before it is parked:
/// time for its own submit_sm_resp, which it may overtake, to be recorded.
pub const AFTER: Duration = Duration::from_secs(1);
/// How often a parked receipt is matched again.
pub const RETRY_EVERY: Duration = Duration::from_secs(1);
/// How long after its wait a parked receipt of another node is taken up
/// by a node that starts: that node is gone, or would have settled it.
pub const ABANDONED_AFTER: Duration = Duration::from_secs(60);
/// What a parked receipt's key holds once a node has claimed it to give it
/// up on (several nodes may have taken it up).
pub const CLAIMED: &[u8] = b"claimed";

/// A parked receipt as it is stored (JSON).
#[derive(Debug, Serialize, Deserialize)]
struct Stored {
    /// The node that parked it.
    node: String,
    smsc: u16,
    /// The labels its bind counts receipts under.
    smsc_name: String,
    bind: String,
    id: String,
    delivered: Option<bool>,
    at: Millis,
    /// Until when its id is waited for.
    until: Millis,
    stat: Option<String>,
    error: Option<String>,
    reason: Option<String>,
}

/// A parked receipt read back.
pub struct Parked {
    pub node: String,
    pub receipt: ReceiptIn,
    pub labels: BindLabels,
    pub until: Millis,
}

/// The key of a receipt parked as this node's `n`th.
pub fn key(receipt: &ReceiptIn, n: u64) -> String {
    format!("{PREFIX}{}:{}:{}:{n}", receipt.smsc, receipt.id, receipt.at)
}

/// A receipt `node` parks, waiting for its id `until`.
pub fn encode(node: &str, receipt: &ReceiptIn, labels: &BindLabels, until: Millis) -> Vec<u8> {
    let d = &receipt.detail;
    let stored = Stored {
        node: node.to_owned(),
        smsc: receipt.smsc,
        smsc_name: labels.smsc.clone(),
        bind: labels.bind.clone(),
        id: receipt.id.clone(),
        delivered: receipt.delivered,
        at: receipt.at,
        until,
        stat: d.stat.clone(),
        error: d.error.clone(),
        reason: d.reason.clone(),
    };
    serde_json::to_vec(&stored).expect("a parked receipt is plain JSON")
}

pub fn decode(value: &[u8]) -> serde_json::Result<Parked> {
    let s: Stored = serde_json::from_slice(value)?;
    let detail = FactDetail {
        stat: s.stat,
        error: s.error,
        reason: s.reason,
        ..FactDetail::default()
    };
    Ok(Parked {
        node: s.node,
        receipt: ReceiptIn {
            smsc: s.smsc,
            id: s.id,
            // The intake reads it anew at each try.
            readings: IdReadings::Unmistakable,
            delivered: s.delivered,
            at: s.at,
            detail,
        },
        labels: BindLabels {
            smsc: s.smsc_name,
            bind: s.bind,
        },
        until: s.until,
    })
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn a_parked_receipt_reads_back_as_it_came() {
        let receipt = ReceiptIn {
            smsc: 2,
            id: "4F2A".into(),
            readings: IdReadings::Unmistakable,
            delivered: Some(false),
            at: 1_700,
            detail: FactDetail {
                stat: Some("UNDELIV".into()),
                error: Some("001".into()),
                reason: Some("UNDELIV (err 001)".into()),
                ..FactDetail::default()
            },
        };
        let labels = BindLabels {
            smsc: "main".into(),
            bind: "1".into(),
        };
        let parked = decode(&encode("n1", &receipt, &labels, 61_700)).expect("reads back");
        assert_eq!(parked.node, "n1");
        assert_eq!(parked.receipt, receipt);
        assert_eq!(parked.labels, labels);
        assert_eq!(parked.until, 61_700);
        assert_eq!(key(&receipt, 7), "early-receipt:2:4F2A:1700:7");
        assert!(decode(b"{}").is_err());
    }
}
