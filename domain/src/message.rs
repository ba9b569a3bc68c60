//! Messages: one participant of one campaign, where it stands, and what an
//! upstream, a receipt or a recipient says about it.

use std::time::Duration;

use serde::{Deserialize, Serialize};

use crate::{FactDetail, Millis};

/// A message: one participant of one campaign. `campaign` is the store's
/// compact number for the campaign, `participant` the arrival order in it.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, PartialOrd, Ord)]
pub struct MessageNo {
    pub campaign: u32,
    pub participant: u32,
}

impl MessageNo {
    pub fn as_u64(self) -> u64 {
        (u64::from(self.campaign) << 32) | u64::from(self.participant)
    }

    pub fn from_u64(v: u64) -> Self {
        Self {
            campaign: (v >> 32) as u32,
            participant: v as u32,
        }
    }
}

/// Where a participant's message stands. One value per participant.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "snake_case")]
pub enum Status {
    Pending,
    Submitted,
    Delivered,
    Failed,
    BouncedHard,
    BouncedSoft,
    Suppressed,
    /// Never sent: the participant came without an address and went to the
    /// campaign's fallback.
    Fallback,
}

impl Status {
    /// In this order for good: the embedded store keeps a status as its
    /// place here (`store/src/embedded/states.rs`).
    pub const ALL: [Status; 8] = [
        Status::Pending,
        Status::Submitted,
        Status::Delivered,
        Status::Failed,
        Status::BouncedHard,
        Status::BouncedSoft,
        Status::Suppressed,
        Status::Fallback,
    ];

    pub fn as_str(self) -> &'static str {
        match self {
            Self::Pending => "pending",
            Self::Submitted => "submitted",
            Self::Delivered => "delivered",
            Self::Failed => "failed",
            Self::BouncedHard => "bounced_hard",
            Self::BouncedSoft => "bounced_soft",
            Self::Suppressed => "suppressed",
            Self::Fallback => "fallback",
        }
    }

    pub fn index(self) -> usize {
        self as usize
    }

    pub fn is_final(self) -> bool {
        !matches!(self, Self::Pending)
    }
}

/// Where one message stands: what the rules read before a fact and decide
/// after it.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize)]
pub struct MessageState {
    #[serde(rename = "s")]
    pub status: Status,
    /// Sends tried so far.
    #[serde(rename = "a")]
    pub attempts: u32,
    /// When a pending message is due.
    #[serde(rename = "d")]
    pub due: Millis,
    /// When the status was reached (0: never sent).
    #[serde(rename = "t")]
    pub at: Millis,
}

/// The SMTP command a refusal answered.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Phase {
    /// The greeting, HELO/EHLO or the connection itself.
    Connect,
    MailFrom,
    RcptTo,
    /// DATA or the end of the content.
    Data,
}

/// The upstream's answer to one message.
#[derive(Debug, Clone, PartialEq)]
pub enum Delivery {
    /// Accepted upstream; `reply` is what it said (e.g. `250 2.0.0 queued as X`),
    /// `upstream` the SMSC's ids for the parts (SMS only).
    Accepted {
        reply: String,
        upstream: Option<Upstream>,
    },
    /// Cannot be sent, ever (e.g. a template field the participant lacks,
    /// an SMSC's permanent error).
    Permanent { reply: String },
    /// An SMTP relay refused it, answering the command of `phase` with
    /// `code` (4xx or 5xx). The bounce rules read `reply` and `phase` ("user
    /// unknown" at MAIL FROM is about our sender, not the recipient): a hard
    /// bounce is final, a soft one or a 4xx is tried again while attempts
    /// are left.
    Refused {
        reply: String,
        code: u16,
        phase: Phase,
    },
    /// Try again later (connection lost, timeout, an SMSC's temporary error).
    Transient {
        reply: String,
        retry_after: Option<Duration>,
    },
    /// The whole message went out but its answer never came (the
    /// connection broke or timed out after an SMTP message's final dot, or
    /// with a submit_sm in flight): the upstream may have it. Sent again
    /// later like a transient failure, and counted, since it may arrive
    /// twice.
    Unconfirmed {
        reply: String,
        retry_after: Option<Duration>,
    },
    /// Never sent: no upstream could take it now (none bound, or throttled
    /// for longer than the lease allows). Not an attempt: it waits, no fact.
    Unsent {
        reply: String,
        retry_after: Duration,
    },
    /// The upstream asked us to slow down; not a failure of this message.
    Throttled { retry_after: Duration },
}

impl Delivery {
    /// Cannot be sent, ever, for `why` (a template field the participant
    /// lacks, content that does not parse).
    pub fn permanent(why: impl std::fmt::Display) -> Self {
        Self::Permanent {
            reply: why.to_string(),
        }
    }
}

/// What happened to a message, as the dispatcher reports it to the store.
#[derive(Debug, Clone, PartialEq)]
pub enum Outcome {
    /// The upstream accepted it (SMTP 250, submit_sm_resp OK).
    Submitted {
        detail: FactDetail,
        /// The SMSC's ids for the parts, to match delivery receipts by.
        upstream: Option<Upstream>,
    },
    /// A delivery receipt settled it: delivered to the handset, or not.
    Receipt { delivered: bool, detail: FactDetail },
    /// Permanently refused or out of retries.
    Failed { reason: String, detail: FactDetail },
    /// Try again at `due`; `detail` adds what is known (e.g. the bounce class).
    Retry {
        due: Millis,
        reason: String,
        detail: FactDetail,
    },
    /// A classified bounce: hard ends the message; soft either schedules a
    /// resend at `retry` or, out of attempts, ends it.
    Bounced {
        hard: bool,
        retry: Option<Millis>,
        detail: FactDetail,
        /// Returned after the message was handed over (a DSN), rather than
        /// refused while it was sent: it settles only a message still
        /// waiting for its outcome (`rules::applies`).
        returned: bool,
    },
    /// Not sent on purpose: a suppressed address or customer, or load
    /// control's verdict (quota exceeded, campaign ended).
    Suppressed { why: String },
}

/// The ids an SMSC gave the parts of one message, in part order.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Upstream {
    /// The SMSC's position in the configuration: ids are unique per SMSC only.
    pub smsc: u16,
    pub ids: Vec<String>,
}

/// A delivery receipt as the SMSC sent it, to be matched by upstream id.
#[derive(Debug, Clone, PartialEq)]
pub struct ReceiptIn {
    pub smsc: u16,
    pub id: String,
    /// Which readings of `id` may find its message.
    pub readings: IdReadings,
    /// `None` for an intermediate state (en route, accepted): nothing to record.
    pub delivered: Option<bool>,
    pub at: Millis,
    pub detail: FactDetail,
}

/// Which readings of a receipt's id may find its message. Some SMSCs
/// write an id in hex in submit_sm_resp and in decimal in the receipt (or
/// the other way round); most write it the same in both. For those,
/// reading "16" as hex "10" would settle another message, so the gateway
/// learns per SMSC which it is from the receipts that matched.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum IdReadings {
    /// The id as given only: the SMSC's receipts match that way.
    AsGiven,
    /// Not known yet: also the other base where the id or its other
    /// reading has a hex letter ("1a2b" and "6699" may well be one id
    /// written twice, "16" and "10" as likely two).
    Unmistakable,
    /// Every reading: the SMSC's receipts match in the other base.
    Any,
}

/// What became of a receipt.
#[derive(Debug, Clone, PartialEq)]
pub enum ReceiptMatch {
    /// It belongs to one of our messages (recorded, or nothing left to record).
    Matched,
    /// Like `Matched`, found by the id read in the other base: the SMSC
    /// mixes bases.
    MatchedInOtherBase,
    /// No message has that id (yet): the receipt, handed back to be tried
    /// again or kept.
    Unknown(Box<ReceiptIn>),
}

/// An outcome for one message at one instant.
#[derive(Debug, Clone, PartialEq)]
pub struct Update {
    pub msg: MessageNo,
    pub at: Millis,
    pub outcome: Outcome,
}

/// What a recipient did with a delivered message (tracked links, an
/// inbound STOP, a spam complaint their mailbox provider reported).
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize)]
pub enum Engagement {
    Clicked,
    Opened,
    Unsubscribed,
    OptedOut,
    Complained,
}

impl Engagement {
    pub const ALL: [Engagement; 5] = [
        Engagement::Clicked,
        Engagement::Opened,
        Engagement::Unsubscribed,
        Engagement::OptedOut,
        Engagement::Complained,
    ];

    /// The fact type and the audience outcome.
    pub fn as_str(self) -> &'static str {
        match self {
            Self::Clicked => "clicked",
            Self::Opened => "opened",
            Self::Unsubscribed => "unsubscribed",
            Self::OptedOut => "opted_out",
            Self::Complained => "complained",
        }
    }

    /// Its bit in a message's engagement flags.
    pub fn bit(self) -> u8 {
        1 << (self as u8)
    }
}

/// The flag, beside the [`Engagement::bit`]s, of a message whose participant
/// went to the campaign's fallback after it ended undelivered.
pub const FELL_BACK: u8 = 0x80;

/// One engagement to record as a fact.
#[derive(Debug, Clone, PartialEq)]
pub struct Engaged {
    pub msg: MessageNo,
    pub at: Millis,
    pub kind: Engagement,
    pub detail: FactDetail,
}
