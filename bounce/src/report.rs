//! The output types: a classified [`Bounce`] and its [`Recipient`]s.

use serde::Serialize;

use crate::reason::{Kind, Reason};
use crate::status::EnhancedStatus;

/// How the returned message was written.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize)]
#[serde(rename_all = "lowercase")]
pub enum Format {
    /// A standard delivery status notification (RFC 3464).
    Dsn,
    /// A feedback-loop report (RFC 5965, ARF).
    Arf,
    /// A free-text bounce as many MTAs write them.
    Text,
    /// A JSON notification (Amazon SES through SNS).
    Json,
    /// An auto-reply (vacation, out of office).
    AutoReply,
    /// Not a report about a message sent: an ordinary mail.
    None,
}

/// A returned message, classified.
#[derive(Debug, Clone, PartialEq, Eq, Serialize)]
pub struct Bounce {
    /// True when the message is a report about a message we sent (a
    /// failure or delay notice, a delivery report, a feedback report or an
    /// auto-reply). False for ordinary mail, which has no recipients.
    pub is_bounce: bool,
    /// How the report was written.
    pub format: Format,
    /// One entry per recipient the report is about, in the order the
    /// report lists them.
    pub recipients: Vec<Recipient>,
    /// Message-ID of the original message, when the report carries it.
    pub original_message_id: Option<String>,
    /// Return-Path (envelope sender) of the original message, when known.
    pub original_return_path: Option<String>,
    /// The sluice token of the original message: its `X-Sluice-Token`
    /// header, or the `+detail` of its VERP Return-Path, or of the address
    /// the report was sent to (`b+TOKEN@bounce.example`). Not verified here.
    pub token: Option<String>,
    /// True when the report names more recipients than are read (see
    /// [`MAX_RECIPIENTS`](crate::MAX_RECIPIENTS)); `recipients` then holds
    /// the first ones only.
    pub truncated: bool,
}

impl Bounce {
    /// A message that is not a bounce.
    pub fn not_a_bounce() -> Self {
        Bounce {
            is_bounce: false,
            format: Format::None,
            recipients: Vec::new(),
            original_message_id: None,
            original_return_path: None,
            token: None,
            truncated: false,
        }
    }
}

/// One recipient of the original message and what happened to it.
#[derive(Debug, Clone, PartialEq, Eq, Serialize)]
pub struct Recipient {
    /// The recipient address as the report names it. Empty when the report
    /// names no address at all (then match on the token).
    pub address: String,
    /// Hard, soft or other; derived from `reason` by [`Reason::kind`].
    pub kind: Kind,
    /// The fine reason.
    pub reason: Reason,
    /// The RFC 3463 enhanced status, when the report carries one.
    pub status: Option<EnhancedStatus>,
    /// The SMTP reply code, when the report carries one.
    #[serde(rename = "replycode")]
    pub reply_code: Option<u16>,
    /// The diagnostic text (the remote server's answer, or the MTA's own
    /// explanation), white space folded.
    pub diagnostic: Option<String>,
    /// The DSN `Action` (`failed`, `delayed`, `delivered`, ...), lowercase.
    pub action: Option<String>,
    /// The remote MTA that answered, when named.
    pub remote_mta: Option<String>,
}

/// The verdict of the classification rules for one failure.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize)]
pub struct Verdict {
    /// Hard, soft or other.
    pub kind: Kind,
    /// The fine reason.
    pub reason: Reason,
}
