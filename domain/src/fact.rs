//! Facts: what happened to a message, in the order it happened, for the CRM.

use serde::{Deserialize, Serialize};

use crate::{Engagement, MessageNo, Millis};

/// What a fact says happened (its `type` in the feed).
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize)]
pub enum FactKind {
    Accepted,
    Submitted,
    Delivered,
    Failed,
    RetryScheduled,
    Bounced,
    Suppressed,
    Engaged(Engagement),
    /// The participant went to the campaign's fallback (`to` names it).
    Fallback,
}

impl FactKind {
    pub const ALL: [FactKind; 13] = [
        FactKind::Accepted,
        FactKind::Submitted,
        FactKind::Delivered,
        FactKind::Failed,
        FactKind::RetryScheduled,
        FactKind::Bounced,
        FactKind::Suppressed,
        FactKind::Engaged(Engagement::Clicked),
        FactKind::Engaged(Engagement::Opened),
        FactKind::Engaged(Engagement::Unsubscribed),
        FactKind::Engaged(Engagement::OptedOut),
        FactKind::Engaged(Engagement::Complained),
        FactKind::Fallback,
    ];

    pub fn as_str(self) -> &'static str {
        match self {
            Self::Accepted => "accepted",
            Self::Submitted => "submitted",
            Self::Delivered => "delivered",
            Self::Failed => "failed",
            Self::RetryScheduled => "retry_scheduled",
            Self::Bounced => "bounced",
            Self::Suppressed => "suppressed",
            Self::Engaged(e) => e.as_str(),
            Self::Fallback => "fallback",
        }
    }

    /// The kind a feed `type` names.
    pub fn parse(name: &str) -> Option<Self> {
        Self::ALL.into_iter().find(|k| k.as_str() == name)
    }
}

/// What a fact adds to its kind: every field the pipeline records, each
/// present only where it applies.
#[derive(Debug, Clone, Default, PartialEq, Eq, Serialize, Deserialize)]
pub struct FactDetail {
    /// The attempt a retry follows (1 after the first send).
    pub attempt: Option<u32>,
    /// Attempts made when the pipeline gave up.
    pub attempts: Option<u32>,
    /// `hard` or `soft`.
    pub bounce: Option<String>,
    /// The bounce rules' reason for a refusal that is retried or given up.
    pub bounce_reason: Option<String>,
    /// What the remote server said, as it said it.
    pub diagnostic: Option<String>,
    /// An SMSC's error code in a delivery receipt.
    pub error: Option<String>,
    pub reason: Option<String>,
    /// The upstream's answer to a send.
    pub reply: Option<String>,
    /// The SMTP reply code.
    pub replycode: Option<u16>,
    pub retry_at: Option<Millis>,
    /// A delivery receipt's `stat:` word.
    pub stat: Option<String>,
    /// The RFC 3463 enhanced status code.
    pub status: Option<String>,
    /// A handset's text (an opt-out).
    pub text: Option<String>,
    /// The URL a click went to.
    pub url: Option<String>,
    /// Why a message was suppressed.
    pub why: Option<String>,
    /// The campaign a participant fell back to.
    #[serde(default)]
    pub to: Option<String>,
}

/// One fact, as the ledger keeps it.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct Fact {
    /// Position in the feed, from 1, without gaps.
    pub cursor: u64,
    pub at: Millis,
    pub campaign: String,
    pub customer: String,
    pub kind: FactKind,
    pub detail: FactDetail,
}

/// Why an address is never sent to again on a channel. Stored and shown as
/// [`SuppressReason::as_str`]; an operator's blacklist entry is `Blacklisted`.
#[derive(Debug, Clone, Copy, PartialEq, Eq, PartialOrd, Ord, Hash)]
pub enum SuppressReason {
    HardBounce,
    Unsubscribed,
    OptedOut,
    Complained,
    Blacklisted,
}

impl SuppressReason {
    pub const ALL: [SuppressReason; 5] = [
        Self::HardBounce,
        Self::Unsubscribed,
        Self::OptedOut,
        Self::Complained,
        Self::Blacklisted,
    ];

    pub fn as_str(self) -> &'static str {
        match self {
            Self::HardBounce => "hard_bounce",
            Self::Unsubscribed => "unsubscribed",
            Self::OptedOut => "opted_out",
            Self::Complained => "complained",
            Self::Blacklisted => "blacklisted",
        }
    }

    /// The reason a stored entry names; anything else was put there by an
    /// operator.
    pub fn parse(stored: &str) -> Self {
        Self::ALL
            .into_iter()
            .find(|r| r.as_str() == stored)
            .unwrap_or(Self::Blacklisted)
    }
}

/// A participant of a campaign's audience for one outcome.
#[derive(Debug, Clone, PartialEq)]
pub struct AudienceMember {
    /// Its message, to read the participant's fields by.
    pub msg: MessageNo,
    pub customer: String,
    pub address: String,
    /// When its message reached its current status (none while never sent).
    pub at: Option<Millis>,
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn every_fact_kind_is_named_once_and_parses_back() {
        let mut names: Vec<&str> = FactKind::ALL.iter().map(|k| k.as_str()).collect();
        for kind in FactKind::ALL {
            assert_eq!(FactKind::parse(kind.as_str()), Some(kind));
        }
        names.sort_unstable();
        names.dedup();
        assert_eq!(names.len(), FactKind::ALL.len());
        assert_eq!(FactKind::parse("teleported"), None);
    }
}
