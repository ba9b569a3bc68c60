//! The transit store: campaigns, participants, message state and the fact
//! feed, behind one trait shaped by what the pipeline does (enqueue batches,
//! claim due messages with a lease, record outcomes and facts, read the feed
//! from a cursor), the record codec, and `embedded`, the default engine.
//! Engines apply the rules' decisions (the `rules` crate) with the fact that
//! caused them in one atomic write and hold no business rule of their own.

pub mod codec;
pub mod embedded;
mod index;
mod upstream;

use std::collections::BTreeMap;

use async_trait::async_trait;

use domain::{
    AudienceMember, CampaignDecl, CampaignRecord, CampaignState, ChannelKind, Engaged, Fact,
    MessageNo, Millis, Participant, ReceiptIn, ReceiptMatch, Status, SuppressReason, Update,
};

#[derive(Debug, thiserror::Error)]
pub enum StoreError {
    #[error("no campaign `{0}`")]
    UnknownCampaign(String),
    #[error("store cannot commit: {0}")]
    Unavailable(String),
    #[error("corrupt record in {what}: {detail}")]
    Corrupt { what: &'static str, detail: String },
}

impl StoreError {
    /// Names the data directory a corrupt record was found in, so that a
    /// start-up error says which files to look at.
    pub fn found_in(self, dir: &std::path::Path) -> Self {
        match self {
            Self::Corrupt { what, detail } => Self::Corrupt {
                what,
                detail: format!("{detail} (data directory {})", dir.display()),
            },
            other => other,
        }
    }
}

pub type Result<T, E = StoreError> = std::result::Result<T, E>;

/// A message handed to the dispatcher, leased until it reports an outcome.
#[derive(Debug, Clone)]
pub struct Claim {
    pub msg: MessageNo,
    pub participant: Participant,
    /// Sends already tried (0 on the first).
    pub attempts: u32,
}

/// What the store knows of one message.
#[derive(Debug, Clone)]
pub struct MessageInfo {
    pub campaign: CampaignRecord,
    pub customer: String,
    pub address: String,
    pub status: Status,
    pub attempts: u32,
}

/// Participants per current status, and in total.
#[derive(Debug, Clone, Default, PartialEq)]
pub struct Counts {
    pub participants: u64,
    pub by_status: BTreeMap<String, u64>,
    /// Messages leased to the dispatcher right now.
    pub in_flight: u64,
}

#[async_trait]
pub trait Store: Send + Sync + 'static {
    /// Declares a campaign or replaces its declaration; returns the record.
    async fn put_campaign(&self, id: &str, decl: CampaignDecl) -> Result<CampaignRecord>;

    async fn set_state(&self, id: &str, state: CampaignState) -> Result<CampaignRecord>;

    fn campaign(&self, id: &str) -> Option<CampaignRecord>;

    fn campaigns(&self) -> Vec<CampaignRecord>;

    /// Adds participants, idempotent on (campaign, customer), and appends an
    /// `accepted` fact for each new one. Returns, per input, whether it was
    /// new. Resolves only once durable.
    async fn add_participants(
        &self,
        id: &str,
        batch: Vec<Participant>,
        at: Millis,
    ) -> Result<Vec<bool>>;

    /// Leases up to `max` messages of a campaign due at `now` until
    /// `now + lease`. A lease not settled by `record` or `release` in time
    /// makes the message claimable again.
    fn claim(&self, campaign: u32, now: Millis, max: usize, lease: Millis) -> Result<Vec<Claim>>;

    /// When the earliest pending, unleased message of a campaign is due.
    fn next_due(&self, campaign: u32) -> Option<Millis>;

    /// Gives leased messages back unsent (shutdown, pause).
    fn release(&self, msgs: &[MessageNo]);

    /// Gives a leased message back to be claimed again at `due` (load
    /// control said "not now"). Not persisted: after a restart the policy
    /// is simply asked again.
    fn defer(&self, msg: MessageNo, due: Millis);

    /// Records outcomes with their facts and the rules' decisions (a hard
    /// bounce suppresses the address), all in one atomic write; resolves
    /// once durable.
    async fn record(&self, updates: Vec<Update>) -> Result<()>;

    /// Matches delivery receipts to messages by the SMSC's ids (recorded with
    /// `Outcome::Submitted`) and records their outcome; resolves once durable.
    /// A receipt for an id not (yet) known comes back `Unknown`.
    async fn receipts(&self, receipts: Vec<ReceiptIn>) -> Result<Vec<ReceiptMatch>>;

    /// The latest message sent on `channel` to `address`, to link an inbound
    /// reply (an SMS "STOP") to a campaign and customer.
    fn last_message_to(&self, channel: ChannelKind, address: &str) -> Option<MessageNo>;

    /// Records clicks, opens, unsubscribes and opt-outs as facts and in the
    /// message's engagement flags (for the audience query), with the rules'
    /// decisions (an unsubscribe suppresses the address) in the same atomic
    /// write; resolves once durable.
    async fn engage(&self, items: Vec<Engaged>) -> Result<()>;

    /// Durable facts with a cursor greater than `after`, oldest first.
    fn events(&self, after: u64, limit: usize) -> Result<Vec<Fact>>;

    /// The participants of a campaign whose current outcome is `outcome`.
    fn audience(&self, id: &str, outcome: &str) -> Result<Vec<AudienceMember>>;

    fn counts(&self, id: &str) -> Result<Counts>;

    /// A small durable value (e.g. a webhook's cursor).
    fn meta(&self, key: &str) -> Result<Option<Vec<u8>>>;

    async fn put_meta(&self, key: &str, value: Vec<u8>) -> Result<()>;

    /// Every small durable value whose key starts with `prefix`.
    fn meta_prefix(&self, prefix: &str) -> Result<Vec<(String, Vec<u8>)>>;

    /// One message, for matching what comes back (bounces, clicks).
    fn message(&self, msg: MessageNo) -> Option<MessageInfo>;

    /// The participant a message went to, with its fields (read from disk:
    /// for filling a personalised link, not for every click).
    fn participant(&self, msg: MessageNo) -> Result<Option<Participant>>;

    /// Whether a message exists (cheaper than `message` on hot paths).
    fn exists(&self, msg: MessageNo) -> bool;

    /// A campaign by its compact number.
    fn campaign_by_seq(&self, seq: u32) -> Option<CampaignRecord>;

    /// Never send to `address` on `channel` again (an opt-out from an
    /// address no message went to); resolves once durable. Suppressions that
    /// follow from a fact about a message (hard bounce, unsubscribe) are the
    /// rules' decisions, written with their fact by `record` and `engage`.
    async fn suppress(
        &self,
        channel: ChannelKind,
        address: &str,
        why: SuppressReason,
    ) -> Result<()>;

    /// Suppresses many entries (customer ids or addresses) at once.
    async fn suppress_many(
        &self,
        channel: ChannelKind,
        entries: Vec<String>,
        why: SuppressReason,
    ) -> Result<()>;

    /// Lifts a suppression; returns whether there was one.
    async fn unsuppress(&self, channel: ChannelKind, entry: &str) -> Result<bool>;

    /// Why `address` is suppressed on `channel`, if it is.
    fn suppressed(&self, channel: ChannelKind, address: &str) -> Option<SuppressReason>;

    /// False once a commit has failed: nothing more is acknowledged.
    fn healthy(&self) -> bool;
}
