//! The transit store: campaigns, participants, message state and the fact
//! feed, behind one trait shaped by what the pipeline does (enqueue batches,
//! claim due messages with a lease, record outcomes and facts, read the feed
//! from a cursor), the record codec, and `embedded`, the default engine.
//! Engines apply the rules' decisions (the `rules` crate) with the fact that
//! caused them in one atomic write and hold no business rule of their own.

pub mod codec;
pub mod contract;
pub mod embedded;
mod flags;
mod index;
mod listing;
pub mod redis;
mod roles;
mod upstream;

pub use roles::{Catalog, Intake, Ledger, LimitState, Paced, Queue, Shared, Store, Suppressions};

use std::collections::BTreeMap;

use domain::{
    AudienceMember, CampaignRecord, MessageNo, Millis, Participant, Status, SuppressReason,
};

#[derive(Debug, Clone, thiserror::Error)]
pub enum StoreError {
    #[error("no campaign `{0}`")]
    UnknownCampaign(String),
    #[error("store cannot commit: {0}")]
    Unavailable(String),
    /// The store cannot be opened: its server is unreachable, or this
    /// node's name is taken.
    #[error("{0}")]
    Unopened(String),
    /// The campaign ended while participants were on their way to it.
    #[error("campaign `{campaign}` is {state}: it takes no more participants")]
    Closed {
        campaign: String,
        state: &'static str,
    },
    /// Only an ended campaign may be deleted.
    #[error(
        "campaign `{campaign}` is {state}: only a finished or cancelled campaign can be deleted"
    )]
    Open {
        campaign: String,
        state: &'static str,
    },
    /// A campaign that another one falls back to is deleted after it.
    #[error(
        "campaign `{source_campaign}` falls back to `{campaign}`: delete `{source_campaign}` first"
    )]
    FallbackOf {
        campaign: String,
        source_campaign: String,
    },
    /// On Redis with shards, a campaign's fallback lives in the campaign's
    /// shard: one declared in another cannot become its fallback later.
    #[error(
        "campaign `{campaign}` cannot fall back to `{fallback}`: they were placed in different shards of the Redis store (store.shards) when declared; declare a new campaign with this fallback"
    )]
    FallbackElsewhere { campaign: String, fallback: String },
    /// A campaign's state is not one the change asked for may leave (it
    /// changed after the caller read it).
    #[error("campaign `{campaign}` is {state} now: its state changed meanwhile")]
    StateChanged {
        campaign: String,
        state: &'static str,
    },
    /// A declaration conditional on the participants (`Catalog::put_campaign_if`)
    /// found that some came since they were read.
    #[error("participants came to campaign `{campaign}` since they were read")]
    ParticipantsCame { campaign: String },
    #[error("corrupt record in {what}: {detail}")]
    Corrupt { what: &'static str, detail: String },
    /// The data directory's disk is (nearly) full: nothing is written
    /// until space is freed, then writes resume by themselves.
    #[error(
        "disk full: {free} bytes free in {}, below the reserve of {reserve} (store.min_free_bytes); nothing was written; writes resume once space is freed",
        .dir.display()
    )]
    DiskFull {
        dir: std::path::PathBuf,
        free: u64,
        reserve: u64,
    },
    /// Another daemon has the embedded store's data directory open.
    #[error("data directory {} is in use by pid {pid}", .dir.display())]
    InUse {
        dir: std::path::PathBuf,
        pid: String,
    },
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

/// One request's participants, staged until they are published together
/// (`Intake::stage`). Unique within one open store.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
pub struct UploadId(pub u64);

/// A page of a campaign's audience (`Ledger::audience_page`).
#[derive(Debug, Clone, Default, PartialEq)]
pub struct AudiencePage {
    /// Members numbered from the page's `from` on, in number order.
    pub members: Vec<AudienceMember>,
    /// The number to read the next page from; `None` once every number was
    /// looked at.
    pub next: Option<u32>,
}

/// A page of the messages of a campaign's audience, without their
/// participants (`Ledger::audience_messages`).
#[derive(Debug, Clone, Default, PartialEq)]
pub struct AudienceMessages {
    /// Messages numbered from the page's `from` on, in number order, each
    /// with when it reached the outcome (`None` while unknown).
    pub messages: Vec<(MessageNo, Option<Millis>)>,
    /// The number to read the next page from; `None` once every number was
    /// looked at.
    pub next: Option<u32>,
}

/// Members in one page of an audience read whole (`Ledger::audience`).
pub const AUDIENCE_PAGE: usize = 10_000;

/// How many participant numbers one page looks at, at most, for each member
/// it may hold: a page of a rare outcome (1 in 1,000 clicked) ends early,
/// holding fewer members, rather than reading the whole campaign at once.
pub const AUDIENCE_SCAN_PER_MEMBER: usize = 16;

/// Which of a channel's suppressions to list (`Suppressions::suppressions`).
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct SuppressionQuery {
    /// Only entries containing this text, in any case.
    pub contains: Option<String>,
    pub reason: Option<SuppressReason>,
    /// Only entries after this one (the last of the page before).
    pub after: Option<String>,
    pub limit: usize,
}

/// A message handed to the dispatcher, leased until it reports an outcome.
#[derive(Debug, Clone)]
pub struct Claim {
    pub msg: MessageNo,
    pub participant: Participant,
    /// Sends already tried (0 on the first).
    pub attempts: u32,
    /// When its lease runs out.
    pub lease_until: Millis,
}

impl Claim {
    pub fn lease(&self) -> Lease {
        Lease {
            msg: self.msg,
            until: self.lease_until,
        }
    }
}

/// One claim's lease of a message: a message is given back by the lease
/// that took it, so that a claim whose lease ran out (and which another
/// claim took since) gives back nothing. Each claim of a message leases it
/// until later than the one before, so `until` tells them apart.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Lease {
    pub msg: MessageNo,
    pub until: Millis,
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
    /// Participants of uploads still being read: not counted yet, but the
    /// campaign is not done while there are any.
    pub staged: u64,
    /// Participant numbers given out so far (staged or live, kept or
    /// dropped; on Redis reserved in blocks): it grows whenever a
    /// participant comes, so a declaration can be written only if none came
    /// since it was read ([`Catalog::put_campaign_if`]).
    pub numbered: u64,
}
