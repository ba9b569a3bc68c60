//! `/v1` request and response bodies.

use std::collections::BTreeMap;

use serde::{Deserialize, Serialize};

mod edge;
pub mod limits;

/// Which upstream a campaign goes out on.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, Serialize, Deserialize)]
#[serde(rename_all = "lowercase")]
pub enum ChannelKind {
    Sms,
    Email,
}

impl ChannelKind {
    pub fn as_str(self) -> &'static str {
        match self {
            Self::Sms => "sms",
            Self::Email => "email",
        }
    }
}

/// `PUT /v1/campaigns/{id}`.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct CampaignDecl {
    pub channel: ChannelKind,
    pub name: String,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub segment: Option<String>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub priority: Option<u8>,
    #[serde(default)]
    pub expected_participants: u64,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub window: Option<Window>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub content: Option<Content>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub fallback: Option<Fallback>,
}

/// When a campaign may send: an absolute span and a weekly template.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct Window {
    /// RFC 3339 instant; nothing is sent before it.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub start: Option<String>,
    /// RFC 3339 instant; nothing is sent after it.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub end: Option<String>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub tz: Option<String>,
    /// Absent for every day; an empty list is refused, not read as that.
    #[serde(
        default,
        skip_serializing_if = "Vec::is_empty",
        deserialize_with = "non_empty_weekdays"
    )]
    pub weekdays: Vec<String>,
    #[serde(default, skip_serializing_if = "Vec::is_empty")]
    pub hours: Vec<String>,
}

/// `window.weekdays` as given, refused when empty: a list of no days is a
/// mistake to name, not a campaign that sends every day.
fn non_empty_weekdays<'de, D: serde::Deserializer<'de>>(d: D) -> Result<Vec<String>, D::Error> {
    let days = Vec::<String>::deserialize(d)?;
    if days.is_empty() {
        return Err(serde::de::Error::custom(
            "weekdays: not empty if given (leave it out for every day)",
        ));
    }
    Ok(days)
}

#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct Content {
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub sms: Option<SmsContent>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub email: Option<EmailContent>,
}

#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct SmsContent {
    pub from: String,
    pub text: String,
    /// Rewrite the text's http(s) links to short signed tracking links
    /// (clicks become `clicked` facts), as e-mail links always are.
    #[serde(default, skip_serializing_if = "std::ops::Not::not")]
    pub track_links: bool,
}

#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct EmailContent {
    pub from: String,
    pub subject: String,
    pub text: String,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub html: Option<String>,
}

/// Where a participant goes when the campaign cannot reach them (docs/api.md).
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct Fallback {
    /// The SMS campaign that takes them.
    pub campaign: String,
    /// What triggers it (default: all three).
    #[serde(default = "Undelivered::all")]
    pub on: Vec<Undelivered>,
    /// The participant field holding the SMS address (default `phone`).
    #[serde(default = "default_address_field")]
    pub address_field: String,
    /// ISO 8601 duration: a bounce returning later than this after the
    /// hand-off to the relay no longer triggers the fallback.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub after: Option<String>,
}

/// A fallback's trigger.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "snake_case")]
pub enum Undelivered {
    BouncedHard,
    Failed,
    NoAddress,
}

impl Undelivered {
    fn all() -> Vec<Self> {
        vec![Self::BouncedHard, Self::Failed, Self::NoAddress]
    }
}

fn default_address_field() -> String {
    "phone".into()
}

/// One line of `POST /v1/campaigns/{id}/participants`.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct ParticipantIn {
    pub customer: String,
    /// Empty or absent only in a campaign whose fallback takes
    /// participants without an address (`no_address`).
    #[serde(default)]
    pub address: String,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub segment: Option<String>,
    #[serde(default, skip_serializing_if = "BTreeMap::is_empty")]
    pub fields: BTreeMap<String, serde_json::Value>,
}

/// A participant line refused, with why.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct Rejected {
    pub line: usize,
    pub error: String,
}

impl Rejected {
    /// The refusal of `line`, any long value quoted in `error` cut short.
    pub fn new(line: usize, error: impl AsRef<str>) -> Self {
        Self {
            line,
            error: limits::shorten_quoted(error.as_ref()),
        }
    }
}

/// Answer to a participant upload, sent only once the batch is durable.
#[derive(Debug, Clone, Default, PartialEq, Serialize, Deserialize)]
pub struct UploadResult {
    pub accepted: u64,
    pub duplicates: u64,
    /// Lines refused, at most [`UploadResult::MAX_LISTED`] of them.
    pub rejected: Vec<Rejected>,
    /// Every line refused, listed or not.
    #[serde(default)]
    pub rejected_total: u64,
}

impl UploadResult {
    /// Refused lines listed at most: an upload of garbage cannot make the
    /// answer (and the memory that holds it) grow with its size.
    pub const MAX_LISTED: usize = 10_000;

    /// Counts a refused line, and lists it if it may be among the first
    /// [`UploadResult::MAX_LISTED`] ([`UploadResult::list_first`] keeps
    /// those). Lines come out of order (a batch's refusals by the store
    /// come after later lines' parse errors), so the list is cut to the
    /// first ones whenever it doubles: memory stays bounded.
    pub fn reject(&mut self, rejected: Rejected) {
        self.rejected_total += 1;
        self.rejected.push(rejected);
        if self.rejected.len() >= 2 * Self::MAX_LISTED {
            self.list_first();
        }
    }

    /// Keeps the first [`UploadResult::MAX_LISTED`] refused lines listed,
    /// in line order: what the answer shows.
    pub fn list_first(&mut self) {
        self.rejected.sort_by_key(|r| r.line);
        self.rejected.truncate(Self::MAX_LISTED);
    }

    /// Settles the answer once the upload published `published`
    /// participants: customers added at once meanwhile (a fallback) were
    /// counted accepted when staged, and are duplicates now.
    pub fn published(&mut self, published: u64) {
        let taken_meanwhile = self.accepted.saturating_sub(published);
        self.accepted -= taken_meanwhile;
        self.duplicates += taken_meanwhile;
    }

    pub fn merge(&mut self, other: UploadResult) {
        self.accepted += other.accepted;
        self.duplicates += other.duplicates;
        let unlisted = other
            .rejected_total
            .saturating_sub(other.rejected.len() as u64);
        for rejected in other.rejected {
            self.reject(rejected);
        }
        self.rejected_total += unlisted;
    }
}

/// Lifecycle of a campaign.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "lowercase")]
pub enum CampaignState {
    Declared,
    Running,
    Paused,
    Cancelled,
    Finished,
}

/// `POST /v1/campaigns/{id}/{action}`.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Control {
    Start,
    Pause,
    Resume,
    Cancel,
}

/// `GET /v1/campaigns/{id}`.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct CampaignView {
    pub id: String,
    pub state: CampaignState,
    #[serde(flatten)]
    pub declaration: CampaignDecl,
    pub participants: u64,
    /// Participants of uploads still being read: not in `participants` or
    /// `counts` until their upload is answered.
    pub uploading: u64,
    /// Participants per current outcome (`pending`, `submitted`, `failed`, ...).
    pub counts: BTreeMap<String, u64>,
    #[serde(default)]
    pub progress: CampaignProgress,
}

/// How far a campaign is, and, while it runs at a measurable pace, when
/// it will have sent every message.
#[derive(Debug, Clone, Default, PartialEq, Serialize, Deserialize)]
pub struct CampaignProgress {
    /// Participants whose message left `pending`.
    pub done: u64,
    pub pending: u64,
    /// How fast `pending` fell over the last minute.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub rate_per_sec: Option<f64>,
    /// RFC 3339: when `pending` reaches 0 at that rate.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub eta: Option<String>,
}

/// `GET /v1/campaigns`: a page of campaigns, newest first, and where the
/// next page starts (`before`), if there is one.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct CampaignPage {
    pub campaigns: Vec<CampaignView>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub next: Option<u32>,
}

/// `POST /v1/campaigns/{id}/preview`: one participant's message as the
/// campaign would send it, links untracked.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct MessagePreview {
    pub channel: ChannelKind,
    pub from: String,
    pub to: String,
    /// E-mail only.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub subject: Option<String>,
    pub text: String,
    /// E-mail with an HTML part only.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub html: Option<String>,
    /// SMS only: `gsm7` or `ucs2`.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub encoding: Option<String>,
    /// SMS only: the parts it is sent in, tracked links at their longest.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub parts: Option<usize>,
}

/// `POST /v1/campaigns/{id}/test`: what the upstream answered a test send.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct TestSend {
    pub channel: ChannelKind,
    pub to: String,
    /// `accepted`, `refused` (a relay's 4xx/5xx), `failed` (permanently),
    /// `unconfirmed` (sent, answer lost), `temporary` (try again) or
    /// `not_sent` (no upstream could take it now).
    pub outcome: String,
    /// What the upstream said, or why it was not sent.
    pub reply: String,
}

/// `GET /v1/blacklist/{channel}`: a page of suppressions, and where the
/// next page starts (`after`), if there is one.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct BlacklistPage {
    pub entries: Vec<BlacklistEntry>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub next: Option<String>,
}

#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct BlacklistEntry {
    /// A customer id or an address (lowercased).
    pub entry: String,
    /// `blacklisted`, `hard_bounce`, `unsubscribed`, `opted_out` or
    /// `complained`.
    pub why: String,
}

/// Which suppressions `GET /v1/blacklist/{channel}` lists.
#[derive(Debug, Clone, Default, PartialEq)]
pub struct BlacklistFilter {
    /// Only entries containing this text, in any case.
    pub contains: Option<String>,
    pub why: Option<String>,
    /// Only entries after this one (a page's `next`).
    pub after: Option<String>,
    pub limit: usize,
}

/// `GET /v1/channels`: every channel and the health of its connectors.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct ChannelsView {
    pub channels: Vec<ChannelHealth>,
}

#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct ChannelHealth {
    pub channel: ChannelKind,
    /// Its connectors, in configured order; none when it has no upstream.
    pub connectors: Vec<ConnectorHealth>,
}

/// One named upstream: an SMTP relay or an SMSC.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct ConnectorHealth {
    /// `smtp_relay` or `smsc`.
    pub kind: String,
    pub name: String,
    /// `host:port`.
    pub address: String,
    pub state: ConnectorState,
    /// The last connection failure, kept after recovery.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub last_error: Option<String>,
    /// RFC 3339: when `last_error` happened.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub last_error_at: Option<String>,
    /// An SMSC's binds with every session up.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub binds_up: Option<usize>,
    /// An SMSC's configured binds.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub binds: Option<usize>,
}

#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "lowercase")]
pub enum ConnectorState {
    /// Bound (an SMSC: at least one bind) or reached at its last
    /// connection (a relay).
    Up,
    /// Not up yet, or up before and being connected again.
    Connecting,
    /// Its last connection attempt failed (`last_error` says why).
    Failing,
    /// Stopped by an operator (`POST .../connectors/{name}/stop`).
    Stopped,
}

/// Which campaigns `GET /v1/campaigns` lists.
#[derive(Debug, Clone, Default, PartialEq)]
pub struct CampaignFilter {
    pub state: Option<CampaignState>,
    pub channel: Option<ChannelKind>,
    /// Only campaigns declared before the one numbered so (a page's `next`).
    pub before: Option<u32>,
    pub limit: usize,
}

/// One fact in the feed. `detail` carries the type-specific fields
/// (`bounce`, `reason`, `status`, `url`, `why`, ...).
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct Event {
    pub cursor: u64,
    pub at: String,
    pub campaign: String,
    pub customer: String,
    #[serde(rename = "type")]
    pub kind: String,
    #[serde(flatten)]
    pub detail: serde_json::Map<String, serde_json::Value>,
}

/// `GET /v1/events`.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct EventPage {
    pub events: Vec<Event>,
    pub next: u64,
}

/// One row of the audience query.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct AudienceRow {
    pub customer: String,
    pub address: String,
    pub outcome: String,
    #[serde(skip_serializing_if = "Option::is_none")]
    pub at: Option<String>,
}

/// `POST /v1/bounces`: what became of an imported returned message.
#[derive(Debug, Clone, Default, PartialEq, Eq, Serialize, Deserialize)]
pub struct BounceImport {
    /// The message reports a delivery failure.
    pub is_bounce: bool,
    /// Failed recipients recorded against their message.
    pub matched: usize,
    /// Kept without a message to attach to.
    pub unmatched: usize,
}

/// What matched nothing and is kept for an operator to look at.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum UnmatchedKind {
    /// Returned mail with no message to attach to.
    Mail,
    /// SMSC receipts for ids no message has.
    Receipt,
}

/// `GET /v1/bounces/unmatched`, `GET /v1/receipts/unmatched`: the newest
/// items kept, newest first.
#[derive(Debug, Clone, Default, PartialEq, Eq, Serialize, Deserialize)]
pub struct UnmatchedPage {
    /// Items kept since the store began; past `capacity` the newest take
    /// the oldest's places.
    pub kept: u64,
    /// Items held at most.
    pub capacity: u64,
    pub items: Vec<UnmatchedItem>,
}

/// One item kept: a returned mail's `message` or a receipt's `receipt`.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct UnmatchedItem {
    /// Its number: the items kept before it.
    pub n: u64,
    /// A returned mail as it came, its first 64 KiB (bytes that are not
    /// UTF-8 replaced by U+FFFD), under an `X-Sluice-Kept-At` header.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub message: Option<String>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub receipt: Option<UnmatchedReceipt>,
}

/// A delivery receipt no message had the id of.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct UnmatchedReceipt {
    /// The SMSC it came from: its place in `[[sms.smsc]]`, from 0.
    pub smsc: u16,
    /// The SMSC's message id.
    pub id: String,
    /// When the SMSC says the message reached its state.
    pub at: String,
    /// When sluice kept it.
    pub kept_at: String,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub stat: Option<String>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub error: Option<String>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub reason: Option<String>,
}

/// Outcomes the audience query accepts.
pub const AUDIENCE_OUTCOMES: &[&str] = &[
    "pending",
    "submitted",
    "delivered",
    "failed",
    "bounced_hard",
    "bounced_soft",
    "suppressed",
    "clicked",
    "opened",
    "unsubscribed",
    "opted_out",
    "complained",
    "fallback",
];

/// `POST /v1/campaigns/{id}/participants/from`: the audience of `campaign`
/// for `outcome` becomes participants of `{id}`, addressed from
/// `address_field` (for a campaign on another channel) or at the same
/// address.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct AudienceSource {
    pub campaign: String,
    pub outcome: String,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub address_field: Option<String>,
}

/// Ids chosen by the CRM: 1..=128 chars of `[A-Za-z0-9._:-]`.
pub fn valid_id(id: &str) -> bool {
    !id.is_empty()
        && id.len() <= 128
        && id
            .bytes()
            .all(|b| b.is_ascii_alphanumeric() || matches!(b, b'.' | b'_' | b':' | b'-'))
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn ids_follow_the_contract() {
        assert!(valid_id("spring-2026:stage.1_a"));
        assert!(!valid_id(""));
        assert!(!valid_id("has space"));
        assert!(!valid_id(&"x".repeat(129)));
        assert!(valid_id(&"x".repeat(128)));
    }

    #[test]
    fn unknown_participant_fields_are_refused() {
        let err =
            serde_json::from_str::<ParticipantIn>(r#"{"customer":"c","address":"a@b.c","x":1}"#);
        assert!(err.is_err());
    }
}
