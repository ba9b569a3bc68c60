//! Campaigns: what is sent, on which channel, when, and where it stands.

use serde::{Deserialize, Serialize};

use crate::Millis;

/// Which upstream a campaign goes out on.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, Serialize, Deserialize)]
#[serde(rename_all = "lowercase")]
pub enum ChannelKind {
    Sms,
    Email,
}

impl ChannelKind {
    pub const ALL: [ChannelKind; 2] = [Self::Email, Self::Sms];

    pub fn as_str(self) -> &'static str {
        match self {
            Self::Sms => "sms",
            Self::Email => "email",
        }
    }

    /// The kind a name (`email`, `sms`) gives.
    pub fn parse(name: &str) -> Option<Self> {
        Self::ALL.into_iter().find(|k| k.as_str() == name)
    }

    /// Whether the channel learns that a message reached its recipient (an
    /// SMS delivery receipt); e-mail learns only of failures (bounces).
    pub fn reports_delivery(self) -> bool {
        match self {
            Self::Sms => true,
            Self::Email => false,
        }
    }
}

/// Where a campaign stands in its lifecycle.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "lowercase")]
pub enum CampaignState {
    Declared,
    Running,
    Paused,
    Cancelled,
    Finished,
}

impl CampaignState {
    /// The state's name on the wire.
    pub fn as_str(self) -> &'static str {
        match self {
            Self::Declared => "declared",
            Self::Running => "running",
            Self::Paused => "paused",
            Self::Cancelled => "cancelled",
            Self::Finished => "finished",
        }
    }
}

/// A campaign as the CRM declared it.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct CampaignDecl {
    pub channel: ChannelKind,
    pub name: String,
    /// The anti-spam segment its participants count against by default.
    #[serde(default)]
    pub segment: Option<String>,
    /// 0..=9, higher first.
    #[serde(default)]
    pub priority: Option<u8>,
    #[serde(default)]
    pub expected_participants: u64,
    #[serde(default)]
    pub window: Option<Window>,
    #[serde(default)]
    pub content: Option<Content>,
    #[serde(default)]
    pub fallback: Option<Fallback>,
}

/// When a campaign may send: an absolute span and a weekly template, as
/// declared (validated at the API; kept as written so a read returns it).
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct Window {
    /// RFC 3339 instant; nothing is sent before it.
    #[serde(default)]
    pub start: Option<String>,
    /// RFC 3339 instant; nothing is sent after it.
    #[serde(default)]
    pub end: Option<String>,
    #[serde(default)]
    pub tz: Option<String>,
    #[serde(default)]
    pub weekdays: Vec<String>,
    #[serde(default)]
    pub hours: Vec<String>,
}

/// The templates of a campaign, per channel.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct Content {
    #[serde(default)]
    pub sms: Option<SmsContent>,
    #[serde(default)]
    pub email: Option<EmailContent>,
}

#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct SmsContent {
    pub from: String,
    pub text: String,
    /// Rewrite the text's links to short tracked ones.
    #[serde(default)]
    pub track_links: bool,
}

#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct EmailContent {
    pub from: String,
    pub subject: String,
    pub text: String,
    #[serde(default)]
    pub html: Option<String>,
}

/// Where a participant goes when this campaign cannot reach them: the SMS
/// campaign that takes them, with the same customer id and fields.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct Fallback {
    pub campaign: String,
    /// ISO 8601 duration: a bounce returning later than this after the
    /// message was handed to the relay no longer triggers the fallback.
    /// (Before `on` and `address_field` so that records written when it
    /// came alone still read.)
    #[serde(default)]
    pub after: Option<String>,
    /// What triggers it; all three unless declared.
    #[serde(default = "Undelivered::all")]
    pub on: Vec<Undelivered>,
    /// The participant field that holds the SMS address (`+E.164`).
    #[serde(default = "default_address_field")]
    pub address_field: String,
}

/// How a message ended without reaching its recipient, as a fallback's
/// `on` names it.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "snake_case")]
pub enum Undelivered {
    /// Refused at send time or returned as a hard bounce.
    BouncedHard,
    /// A permanent failure, a failed receipt, or soft bounces whose
    /// retries ran out.
    Failed,
    /// The participant came without an address.
    NoAddress,
}

impl Undelivered {
    pub const ALL: [Undelivered; 3] = [Self::BouncedHard, Self::Failed, Self::NoAddress];

    fn all() -> Vec<Self> {
        Self::ALL.to_vec()
    }

    pub fn as_str(self) -> &'static str {
        match self {
            Self::BouncedHard => "bounced_hard",
            Self::Failed => "failed",
            Self::NoAddress => "no_address",
        }
    }
}

fn default_address_field() -> String {
    "phone".into()
}

impl Fallback {
    /// A fallback to `campaign` on every trigger, from the `phone` field.
    pub fn to(campaign: impl Into<String>) -> Self {
        Self {
            campaign: campaign.into(),
            after: None,
            on: Undelivered::all(),
            address_field: default_address_field(),
        }
    }

    /// `after` in milliseconds (days of 24 hours); `Ok(None)` without one.
    /// Years and months have no fixed length and are refused.
    pub fn after_ms(&self) -> Result<Option<Millis>, String> {
        let Some(after) = &self.after else {
            return Ok(None);
        };
        let refuse = || {
            format!(
                "`{after}` is not an ISO 8601 duration in weeks, days, hours, minutes or seconds"
            )
        };
        let span: jiff::Span = after.parse().map_err(|_| refuse())?;
        if span.get_years() != 0 || span.get_months() != 0 || span.is_negative() {
            return Err(refuse());
        }
        let total = span
            .total((
                jiff::Unit::Millisecond,
                jiff::SpanRelativeTo::days_are_24_hours(),
            ))
            .map_err(|_| refuse())?;
        Ok(Some(total as Millis))
    }
}

/// A campaign as the store keeps it.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct CampaignRecord {
    pub id: String,
    /// Compact number used in message keys and tokens.
    pub seq: u32,
    pub state: CampaignState,
    pub decl: CampaignDecl,
}

impl CampaignDecl {
    /// A declaration of `channel` named `name` and nothing more yet: no
    /// window, content, fallback, segment or priority.
    pub fn new(channel: ChannelKind, name: impl Into<String>) -> Self {
        Self {
            channel,
            name: name.into(),
            segment: None,
            priority: None,
            expected_participants: 0,
            window: None,
            content: None,
            fallback: None,
        }
    }

    /// The SMS template, if it has one.
    pub fn sms(&self) -> Option<&SmsContent> {
        self.content.as_ref().and_then(|c| c.sms.as_ref())
    }

    /// The e-mail template, if it has one.
    pub fn email(&self) -> Option<&EmailContent> {
        self.content.as_ref().and_then(|c| c.email.as_ref())
    }
}
