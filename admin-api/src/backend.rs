//! What the API needs from the daemon. The gateway implements it; tests may
//! implement it in memory.

use async_trait::async_trait;

use crate::types::v1::{
    AudienceRow, AudienceSource, BlacklistFilter, BlacklistPage, BounceImport, CampaignDecl,
    CampaignFilter, CampaignPage, CampaignView, ChannelsView, ConnectorHealth, Control, EventPage,
    MessagePreview, ParticipantIn, TestSend, UnmatchedKind, UnmatchedPage, UploadResult,
};

/// A page of an audience (`Backend::audience_page`).
#[derive(Debug, Clone, Default, PartialEq)]
pub struct AudienceRows {
    pub rows: Vec<AudienceRow>,
    /// Where the next page starts; `None` after the last.
    pub next: Option<u32>,
}

/// Why the daemon refused or could not do a request.
#[derive(Debug, thiserror::Error)]
pub enum BackendError {
    #[error("{0}")]
    NotFound(String),
    #[error("{0}")]
    Conflict(String),
    /// Every problem found, each naming its field.
    #[error("invalid: {}", .0.join("; "))]
    Invalid(Vec<String>),
    /// The store cannot commit: nothing was acknowledged.
    #[error("{0}")]
    Unavailable(String),
    /// The store's disk is full: nothing was acknowledged; writes resume
    /// once space is freed.
    #[error("{0}")]
    InsufficientStorage(String),
    #[error("{0}")]
    Internal(String),
    #[error("body larger than {0} bytes")]
    TooLarge(usize),
}

pub type BackendResult<T> = Result<T, BackendError>;

/// How `/metrics` is written out, as the scraper asked.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Exposition {
    /// OpenMetrics 1.0 (`application/openmetrics-text`).
    OpenMetrics,
    /// The classic Prometheus text format 0.0.4 (`text/plain`).
    Classic,
}

/// One request's participants, published together.
pub type UploadId = u64;

#[async_trait]
pub trait Backend: Send + Sync + 'static {
    /// Declare a campaign or update it before it starts.
    async fn declare(&self, id: &str, decl: CampaignDecl) -> BackendResult<CampaignView>;

    /// What `declare` would refuse `decl` for (each problem naming its
    /// field), without declaring it: asked when the API found problems of
    /// its own, so that a 422 lists them all.
    async fn declaration_problems(
        &self,
        _id: &str,
        _decl: &CampaignDecl,
    ) -> BackendResult<Vec<String>> {
        Ok(Vec::new())
    }

    /// Starts an upload: the participants it adds are seen by nothing until
    /// it is published, then all at once (`docs/api.md#participants`).
    fn new_upload(&self) -> UploadId;

    /// Adds participants to `upload`; each is paired with its 1-based line
    /// in the upload.
    async fn add_participants(
        &self,
        campaign: &str,
        upload: UploadId,
        batch: Vec<(usize, ParticipantIn)>,
    ) -> BackendResult<UploadResult>;

    /// Makes everything `upload` added visible at once; returns, once it is
    /// durable, how many participants became visible (fewer than added when
    /// some were added meanwhile by other means). `Conflict` when the
    /// campaign was cancelled while the upload was read.
    async fn publish(&self, upload: UploadId) -> BackendResult<u64>;

    /// Drops what `upload` added (its request failed or was cut off).
    async fn abandon(&self, upload: UploadId);

    /// The audience of `source.campaign` for `source.outcome` added to
    /// `campaign` as an upload would add it (the audience's position is
    /// each rejection's `line`).
    async fn add_from(&self, campaign: &str, source: AudienceSource)
    -> BackendResult<UploadResult>;

    async fn control(&self, campaign: &str, action: Control) -> BackendResult<CampaignView>;

    async fn campaign(&self, campaign: &str) -> BackendResult<CampaignView>;

    /// Removes a finished or cancelled campaign (`docs/api.md`); `Conflict`
    /// in any other state.
    async fn delete_campaign(&self, campaign: &str) -> BackendResult<()>;

    /// Sends `participant`'s message of `campaign` now, outside the
    /// campaign; `Invalid` says why it could not be sent.
    async fn send_test(
        &self,
        campaign: &str,
        participant: ParticipantIn,
    ) -> BackendResult<TestSend>;

    /// `participant`'s message of `campaign`; `Invalid` says why it could
    /// not be sent.
    async fn preview(
        &self,
        campaign: &str,
        participant: ParticipantIn,
    ) -> BackendResult<MessagePreview>;

    /// Campaigns matching `filter`, newest (last declared) first.
    async fn campaigns(&self, filter: CampaignFilter) -> BackendResult<CampaignPage>;

    /// A page of the participants whose outcome is `outcome` (one of
    /// `AUDIENCE_OUTCOMES`): those numbered `from` and up, a bounded
    /// number of them, and where the next page starts.
    async fn audience_page(
        &self,
        campaign: &str,
        outcome: &str,
        from: u32,
    ) -> BackendResult<AudienceRows>;

    async fn events(&self, after: u64, limit: usize) -> BackendResult<EventPage>;

    /// Takes one returned message (raw RFC 822), as if it had arrived at the
    /// bounce listener. `TooLarge` beyond the daemon's limit.
    async fn import_bounce(&self, raw: &[u8]) -> BackendResult<BounceImport>;

    /// The newest `limit` items of `kind` kept because they matched
    /// nothing, numbered below `before` if given, newest first.
    async fn unmatched(
        &self,
        kind: UnmatchedKind,
        before: Option<u64>,
        limit: usize,
    ) -> BackendResult<UnmatchedPage>;

    /// Sets a channel's limits (`docs/api.md` shape); `Invalid` lists every problem.
    async fn put_limits(
        &self,
        channel: &str,
        limits: serde_json::Value,
    ) -> BackendResult<serde_json::Value>;

    async fn get_limits(&self, channel: &str) -> BackendResult<serde_json::Value>;

    /// Adds customer ids or addresses to a channel's blacklist; durable
    /// before it returns. Returns how many entries were given.
    async fn blacklist_add(&self, channel: &str, entries: Vec<String>) -> BackendResult<usize>;

    /// Removes an entry; `false` if it was not listed.
    async fn blacklist_remove(&self, channel: &str, entry: &str) -> BackendResult<bool>;

    /// Why an entry is blocked on a channel (`blacklisted`, `hard_bounce`,
    /// `unsubscribed`, ...), if it is.
    async fn blacklist_get(&self, channel: &str, entry: &str) -> BackendResult<Option<String>>;

    /// Every channel with its connectors' health.
    fn channels(&self) -> ChannelsView;

    /// Starts (`on`) or stops the connector `name` of `channel`; its
    /// health after. `NotFound` when the channel has no such connector.
    fn switch_connector(
        &self,
        channel: &str,
        name: &str,
        on: bool,
    ) -> BackendResult<ConnectorHealth>;

    /// A page of the channel's suppressions (any reason), in entry order.
    async fn blacklist_list(
        &self,
        channel: &str,
        filter: BlacklistFilter,
    ) -> BackendResult<BlacklistPage>;

    /// Computes and stores the channel's load plan (`docs/api.md` shape), over all
    /// its declared, running and paused campaigns or only `campaigns`.
    async fn plan(
        &self,
        channel: &str,
        campaigns: Option<Vec<String>>,
    ) -> BackendResult<serde_json::Value>;

    /// The stored plan.
    async fn stored_plan(&self, channel: &str) -> BackendResult<serde_json::Value>;

    /// Every metric, written out as `exposition`.
    fn metrics(&self, exposition: Exposition) -> String;

    /// Counts one request answered: `route` is the matched route's
    /// template (`/v1/campaigns/{id}`), or `unmatched`.
    fn count_request(&self, route: &str, method: &str, status: u16);

    /// Why the gateway cannot send now (the store, an upstream not
    /// configured or not reachable), one reason each; empty when it can.
    fn not_ready(&self) -> Vec<String>;
}
