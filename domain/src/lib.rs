//! The domain model of sluice: campaigns, participants, messages, what
//! happens to them (outcomes, facts) and when. No I/O and no wire format: the
//! `/v1` API maps its types to and from these at its edge (`admin-api`), and
//! the store persists them as versioned records of its own. The serde
//! derives here are for those records: field names match what the first
//! release wrote, so its data decodes into these types.
//!
//! See ARCHITECTURE.md at the repository root for how they flow.

mod campaign;
mod fact;
mod message;
mod participant;
mod time;

pub use campaign::{
    CampaignDecl, CampaignRecord, CampaignState, ChannelKind, Content, EmailContent, Fallback,
    SmsContent, Undelivered, Window,
};
pub use fact::{AudienceMember, Fact, FactDetail, FactKind, SuppressReason};
pub use message::{
    Delivery, Engaged, Engagement, FELL_BACK, IdReadings, MessageNo, MessageState, Outcome, Phase,
    ReceiptIn, ReceiptMatch, Status, Update, Upstream,
};
pub use participant::{FieldValue, Fields, Participant, fields_from_json, is_msisdn};
pub use time::{Millis, now_ms, parse_rfc3339, rfc3339};
