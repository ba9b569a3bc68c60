//! The store as the pipeline uses it: one trait per role, each async and
//! fallible, so that an engine over the network (several nodes, one Redis)
//! can answer every call without holding all state in memory. [`Store`] is
//! all of them; the contract suite (`contract`) is what every engine passes.

use async_trait::async_trait;
use domain::{
    AudienceMember, CampaignDecl, CampaignRecord, CampaignState, ChannelKind, Engaged, Fact,
    MessageNo, Millis, Participant, ReceiptIn, ReceiptMatch, SuppressReason, Update,
};

use crate::{
    AudienceMessages, AudiencePage, Claim, Counts, Lease, MessageInfo, Result, SuppressionQuery,
    UploadId,
};

/// Campaigns: their declarations and lifecycle.
#[async_trait]
pub trait Catalog: Send + Sync {
    /// Declares a campaign or replaces its declaration; returns the record.
    async fn put_campaign(&self, id: &str, decl: CampaignDecl) -> Result<CampaignRecord> {
        self.put_campaign_if(id, decl, None).await
    }

    /// The same, and with `numbered` only if no participant came to the
    /// campaign since its [`Counts::numbered`] was that (else
    /// `ParticipantsCame`), checked in the same atomic write: a new content
    /// checked against the participants there is written only if no
    /// participant checked against the old one came meanwhile.
    async fn put_campaign_if(
        &self,
        id: &str,
        decl: CampaignDecl,
        numbered: Option<u64>,
    ) -> Result<CampaignRecord>;

    /// Moves a campaign to `to` if it is in one of `from` now, in the
    /// same atomic write as the check; else `StateChanged`. A control read
    /// the state before (a cancel and a resume at once): only one of two
    /// changes from the same state applies.
    async fn change_state(
        &self,
        id: &str,
        from: &[CampaignState],
        to: CampaignState,
    ) -> Result<CampaignRecord>;

    /// Moves a campaign to `state` from whatever state it is in (a test's
    /// or a tool's set-up; a control changes it by [`Catalog::change_state`]).
    async fn set_state(&self, id: &str, state: CampaignState) -> Result<CampaignRecord> {
        use CampaignState::*;
        let any = [Declared, Running, Paused, Cancelled, Finished];
        self.change_state(id, &any, state).await
    }

    async fn campaign(&self, id: &str) -> Result<Option<CampaignRecord>>;

    async fn campaigns(&self) -> Result<Vec<CampaignRecord>>;

    /// A campaign by its compact number (message numbers carry it).
    async fn campaign_by_seq(&self, seq: u32) -> Result<Option<CampaignRecord>>;

    /// Removes a finished or cancelled campaign with its participants,
    /// statuses and engagements; its facts stay in the feed and its number
    /// is never given again (tokens in sent mail carry it). `Open` for a
    /// campaign in any other state, `FallbackOf` while another campaign
    /// falls back to it. Returns the record as it was.
    async fn delete_campaign(&self, id: &str) -> Result<CampaignRecord>;
}

/// Participants arriving.
#[async_trait]
pub trait Intake: Send + Sync {
    /// Adds participants, idempotent on (campaign, customer), and appends an
    /// `accepted` fact for each new one. Returns, per input, whether it was
    /// new. Resolves only once durable.
    async fn add_participants(
        &self,
        id: &str,
        batch: Vec<Participant>,
        at: Millis,
    ) -> Result<Vec<bool>>;

    /// A new upload: participants staged under it are seen by nothing
    /// (counts, claims, audiences, the feed) until it is published, so a
    /// request's participants appear all or none (at once on the embedded
    /// engine; on Redis step by step, see `publish`).
    fn new_upload(&self) -> UploadId;

    /// Stages participants of campaign `id` under `upload`: kept, and
    /// deduplicated on (campaign, customer) against the campaign and every
    /// staged upload, but not visible. Returns, per input, whether it was
    /// new. A customer staged by an upload never published is free again
    /// once that upload is abandoned.
    async fn stage(&self, id: &str, upload: UploadId, batch: Vec<Participant>)
    -> Result<Vec<bool>>;

    /// Makes everything staged under `upload` visible, each with its
    /// `accepted` fact at `at`; resolves once durable with how many
    /// participants it published. The embedded engine does it in one
    /// atomic write; Redis in steps of a thousand (one script would
    /// hold Redis for seconds), publishing the upload whole once its first
    /// step is written, even if the call or its node dies midway. An
    /// upload not published when the store closes is dropped when it opens
    /// again.
    async fn publish(&self, upload: UploadId, at: Millis) -> Result<u64>;

    /// Drops what was staged under `upload` (its request failed); an
    /// upload whose publish has begun is left to end whole.
    async fn abandon(&self, upload: UploadId) -> Result<()>;
}

/// Messages due to be sent: claimed with a lease, settled by their outcome.
#[async_trait]
pub trait Queue: Send + Sync {
    /// Leases up to `max` messages of a campaign due at `now` until
    /// `now + lease`. A lease not settled by `record` or `release` in time
    /// makes the message claimable again.
    async fn claim(
        &self,
        campaign: u32,
        now: Millis,
        max: usize,
        lease: Millis,
    ) -> Result<Vec<Claim>>;

    /// When the earliest pending, unleased message of a campaign is due.
    async fn next_due(&self, campaign: u32) -> Result<Option<Millis>>;

    /// Gives leased messages back unsent (shutdown, pause): each only if
    /// its lease is still the one that leased it.
    async fn release(&self, leases: &[Lease]) -> Result<()>;

    /// Gives a leased message back to be claimed again at `due` (load
    /// control said "not now"), only if its lease is still `lease`. Not
    /// persisted: after a restart the policy is simply asked again.
    async fn defer(&self, lease: Lease, due: Millis) -> Result<()>;

    /// Records outcomes with their facts and the rules' decisions (a hard
    /// bounce suppresses the address), all in one atomic write; resolves
    /// once durable.
    async fn record(&self, updates: Vec<Update>) -> Result<()>;

    /// Matches delivery receipts to messages by the SMSC's ids (recorded with
    /// `Outcome::Submitted`) and records their outcome; resolves once durable.
    /// A receipt for an id not (yet) known comes back `Unknown`.
    async fn receipts(&self, receipts: Vec<ReceiptIn>) -> Result<Vec<ReceiptMatch>>;
}

/// What happened: the fact feed, engagement, counts and audiences.
#[async_trait]
pub trait Ledger: Send + Sync {
    /// Records clicks, opens, unsubscribes and opt-outs as facts and in the
    /// message's engagement flags (for the audience query), with the rules'
    /// decisions (an unsubscribe suppresses the address) in the same atomic
    /// write; resolves once durable.
    async fn engage(&self, items: Vec<Engaged>) -> Result<()>;

    /// Durable facts with a cursor greater than `after`, oldest first.
    async fn events(&self, after: u64, limit: usize) -> Result<Vec<Fact>>;

    /// Participants per current status.
    async fn counts(&self, id: &str) -> Result<Counts>;

    /// A page of the messages of a campaign whose current outcome is
    /// `outcome`: those numbered `from` and up, in number order, at most
    /// `limit`. A page looks at no more than `limit` times
    /// [`AUDIENCE_SCAN_PER_MEMBER`](crate::AUDIENCE_SCAN_PER_MEMBER) numbers,
    /// so it may hold fewer messages, even none, while `next` is `Some`.
    /// Each page is read as the campaign is then: a participant whose
    /// outcome changes while the pages are read is in at most one of them
    /// (each number is in one page), whichever its outcome was when its
    /// page was read. Their participants are read with `participants`.
    async fn audience_messages(
        &self,
        id: &str,
        outcome: &str,
        from: u32,
        limit: usize,
    ) -> Result<AudienceMessages>;

    /// A page of the audience as `audience_messages` gives it, with each
    /// member's customer and address (one whose record is gone, its
    /// campaign deleted while the page was read, is left out).
    async fn audience_page(
        &self,
        id: &str,
        outcome: &str,
        from: u32,
        limit: usize,
    ) -> Result<AudiencePage> {
        let page = self.audience_messages(id, outcome, from, limit).await?;
        let msgs: Vec<MessageNo> = page.messages.iter().map(|&(msg, _)| msg).collect();
        let records = self.participants(&msgs).await?;
        let members = page
            .messages
            .into_iter()
            .zip(records)
            .filter_map(|((msg, at), record)| {
                let p = record?;
                Some(AudienceMember {
                    msg,
                    customer: p.customer,
                    address: p.address,
                    at,
                })
            })
            .collect();
        Ok(AudiencePage {
            members,
            next: page.next,
        })
    }

    /// The participants of a campaign whose current outcome is `outcome`,
    /// read page by page (all in memory: for tests and small audiences).
    async fn audience(&self, id: &str, outcome: &str) -> Result<Vec<AudienceMember>> {
        let mut members = Vec::new();
        let mut from = 0;
        loop {
            let page = self
                .audience_page(id, outcome, from, crate::AUDIENCE_PAGE)
                .await?;
            members.extend(page.members);
            match page.next {
                Some(next) => from = next,
                None => return Ok(members),
            }
        }
    }

    /// One message, for matching what comes back (bounces, clicks).
    async fn message(&self, msg: MessageNo) -> Result<Option<MessageInfo>>;

    /// The participant a message went to, with its fields.
    async fn participant(&self, msg: MessageNo) -> Result<Option<Participant>>;

    /// The participants of many messages, in their order (`None` where a
    /// message has none): an engine on a server reads them in a few
    /// requests, not one per message (a stage's audience can be large).
    async fn participants(&self, msgs: &[MessageNo]) -> Result<Vec<Option<Participant>>> {
        let mut out = Vec::with_capacity(msgs.len());
        for &msg in msgs {
            out.push(self.participant(msg).await?);
        }
        Ok(out)
    }

    /// Whether a message exists.
    async fn exists(&self, msg: MessageNo) -> Result<bool>;

    /// The latest message sent on `channel` to `address`, to link an inbound
    /// reply (an SMS "STOP") to a campaign and customer.
    async fn last_message_to(
        &self,
        channel: ChannelKind,
        address: &str,
    ) -> Result<Option<MessageNo>>;
}

/// Small durable values: load control's counters (quotas, caps, plan
/// hours), limits and plans, cursors of webhooks, kept returns.
#[async_trait]
pub trait LimitState: Send + Sync {
    async fn meta(&self, key: &str) -> Result<Option<Vec<u8>>>;

    /// Resolves once durable.
    async fn put_meta(&self, key: &str, value: Vec<u8>) -> Result<()>;

    /// Removes the value under `key`, if any; resolves once durable.
    async fn delete_meta(&self, key: &str) -> Result<()>;

    /// Writes `value` only if the key holds `expected` now (`None`: holds
    /// nothing), atomically; answers whether it wrote. What several nodes
    /// count together (a customer's quota) is written this way.
    async fn put_meta_if(&self, key: &str, expected: Option<&[u8]>, value: Vec<u8>)
    -> Result<bool>;

    /// Every value whose key starts with `prefix`.
    async fn meta_prefix(&self, prefix: &str) -> Result<Vec<(String, Vec<u8>)>>;
}

/// Addresses and customers never sent to again on a channel.
#[async_trait]
pub trait Suppressions: Send + Sync {
    /// Suppresses `address` on `channel` (an opt-out from an address no
    /// message went to); resolves once durable. Suppressions that follow
    /// from a fact about a message (hard bounce, unsubscribe) are the rules'
    /// decisions, written with their fact by `record` and `engage`.
    async fn suppress(
        &self,
        channel: ChannelKind,
        address: &str,
        why: SuppressReason,
    ) -> Result<()> {
        self.suppress_many(channel, vec![address.to_owned()], why)
            .await
    }

    /// Suppresses many entries (customer ids or addresses) at once.
    async fn suppress_many(
        &self,
        channel: ChannelKind,
        entries: Vec<String>,
        why: SuppressReason,
    ) -> Result<()>;

    /// Lifts a suppression; returns whether there was one.
    async fn unsuppress(&self, channel: ChannelKind, entry: &str) -> Result<bool>;

    /// Why `entry` (address, any case, or customer id) is suppressed on
    /// `channel`, if it is.
    async fn suppressed(&self, channel: ChannelKind, entry: &str)
    -> Result<Option<SuppressReason>>;

    /// Why `p` is suppressed on `channel`: its address, else its customer id.
    async fn participant_suppression(
        &self,
        channel: ChannelKind,
        p: &Participant,
    ) -> Result<Option<SuppressReason>> {
        match self.suppressed(channel, &p.address).await? {
            Some(why) => Ok(Some(why)),
            None => self.suppressed(channel, &p.customer).await,
        }
    }

    /// [`participant_suppression`](Self::participant_suppression) of each
    /// of `participants`, in order (an engine over the network answers
    /// them in one request).
    async fn participants_suppressions(
        &self,
        channel: ChannelKind,
        participants: &[&Participant],
    ) -> Result<Vec<Option<SuppressReason>>> {
        let mut out = Vec::with_capacity(participants.len());
        for p in participants {
            out.push(self.participant_suppression(channel, p).await?);
        }
        Ok(out)
    }

    /// Up to `query.limit` of `channel`'s suppressions matching `query`,
    /// in entry order (entries as stored: addresses lowercased).
    async fn suppressions(
        &self,
        channel: ChannelKind,
        query: &SuppressionQuery,
    ) -> Result<Vec<(String, SuppressReason)>>;
}

/// What the nodes sharing one store decide together: the channels'
/// bandwidth and load caps, and which node runs a task only one may run
/// at a time.
#[async_trait]
pub trait Shared: Send + Sync {
    /// Takes up to `wanted` send slots of bandwidth `key` at `rate_per_sec`,
    /// on the engine's clock (GCRA, at most `wanted` back to back): how
    /// many were granted, and if fewer than wanted, in how many ms another
    /// one is free.
    async fn pace(&self, key: &str, rate_per_sec: f64, wanted: u32) -> Result<Paced>;

    /// Tells the nodes that bandwidth `key`'s limits (or plan) changed in
    /// the store: every later [`Shared::pace`] of `key` answers a larger
    /// [`Paced::limits_version`], so that a node sending on it reads them
    /// again at its next ask rather than at its next look.
    async fn limits_changed(&self, key: &str) -> Result<()>;

    /// Counts up to `wanted` more of counter `key` (a load cap's period),
    /// never past `max`: how many were counted. The counter is kept for
    /// `keep_ms`.
    async fn count_up_to(&self, key: &str, max: u64, wanted: u64, keep_ms: Millis) -> Result<u64>;

    /// Whether this node leads `task` for the next `ttl_ms`: taken when no
    /// node holds it, kept by the holder asking again in time.
    async fn lead(&self, task: &str, ttl_ms: Millis) -> Result<bool>;
}

/// Send slots granted by [`Shared::pace`].
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Paced {
    pub granted: u32,
    /// Milliseconds until one more slot is free (0 when all were granted).
    pub retry_ms: Millis,
    /// How often the key's limits changed so far ([`Shared::limits_changed`]).
    pub limits_version: u64,
}

/// Every role: what the daemon holds.
pub trait Store:
    Catalog + Intake + Queue + Ledger + LimitState + Suppressions + Send + Sync + 'static
{
    /// Why the store takes no writes right now (a failed commit, a full
    /// disk), if it does not: sending pauses and `/readyz` says why.
    fn write_refusal(&self) -> Option<String>;

    /// Requests this node sent to the engine's server so far (a pipeline
    /// or a script is one); `None` for an engine with no server.
    fn requests(&self) -> Option<u64> {
        None
    }

    /// What this node decides together with others on the same store;
    /// `None` for an engine only one node runs on (it decides alone).
    fn shared(&self) -> Option<&dyn Shared> {
        None
    }
}
