//! Campaigns: what is sent, on which channel, when, and where it stands.

use serde::{Deserialize, Serialize};

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

    /// The kind a name (`email`, `sms`) gives.
    pub fn parse(name: &str) -> Option<Self> {
        [Self::Email, Self::Sms]
            .into_iter()
            .find(|k| k.as_str() == name)
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

/// Where a participant goes when this campaign cannot reach them.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct Fallback {
    pub campaign: String,
    /// ISO 8601 duration.
    pub after: String,
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
