//! The daemon behind the CRM API: validates declarations and uploads,
//! enforces the campaign lifecycle, and answers from the store.

use std::sync::Arc;

use admin_api::{
    AudienceRows, Backend, BackendError, BackendResult,
    types::v1::{
        self, AudienceRow, AudienceSource, BounceImport, CampaignFilter, CampaignPage,
        CampaignView, Control, Event, EventPage, ParticipantIn, Rejected, UnmatchedItem,
        UnmatchedKind, UnmatchedPage, UnmatchedReceipt, UploadResult, valid_id,
    },
};
use async_trait::async_trait;
use domain::{
    CampaignDecl, CampaignRecord, CampaignState, ChannelKind, FieldValue, MessageNo, Participant,
    Status, SuppressReason, Undelivered, Window, now_ms, rfc3339,
};
use store::{Store, StoreError, SuppressionQuery, UploadId};
use tokio::sync::Notify;

use crate::{
    channel::sms::intake::{self, KeptReceipt},
    channel::{Channel, Registry},
    links,
    metrics::Metrics,
    policy::{Policy, PolicyError, plan_key, window_spec},
    progress::{self, Progress},
    returns::{self, IntakeError, Returns},
};

mod connectors;
mod fallback;
mod preview;

/// Participants a declaration's new content would fail that its refusal
/// names, at most (the rest are counted).
const UNFIT_LISTED: usize = 10;

/// Participant records read at a time to check them against a new content.
const UNFIT_READ: usize = 10_000;

/// What the checks of a declaration found.
struct DeclarationChecked {
    problems: Vec<String>,
    /// With a new content checked against the participants there: the
    /// campaign's `Counts::numbered` when the check began (the declaration
    /// is written only if no participant came since).
    numbered: Option<u64>,
}

pub struct GatewayBackend {
    pub store: Arc<dyn Store>,
    pub returns: Arc<Returns>,
    pub policy: Arc<Policy>,
    pub channels: Registry,
    pub metrics: Arc<Metrics>,
    pub wake: Arc<Notify>,
    pub progress: Arc<Progress>,
    /// Forgets a deleted campaign's links.
    pub links: Arc<links::Links>,
}

/// The API's view of kept receipt number `n`; `None` (logged) when the
/// stored value is not one.
fn unmatched_receipt(n: u64, value: &[u8]) -> Option<UnmatchedItem> {
    let kept: KeptReceipt = serde_json::from_slice(value)
        .inspect_err(
            |e| tracing::warn!(n, error = %e, "a kept receipt could not be read; left out"),
        )
        .ok()?;
    Some(UnmatchedItem {
        n,
        message: None,
        receipt: Some(UnmatchedReceipt {
            smsc: kept.smsc,
            id: kept.id,
            at: rfc3339(kept.at),
            kept_at: rfc3339(kept.kept_at),
            stat: kept.stat,
            error: kept.error,
            reason: kept.reason,
        }),
    })
}

fn store_error(e: StoreError) -> BackendError {
    match e {
        StoreError::UnknownCampaign(id) => BackendError::NotFound(format!("no campaign `{id}`")),
        StoreError::Unavailable(m) => BackendError::Unavailable(m),
        StoreError::Closed { campaign, state } => closed(&campaign, state),
        StoreError::ParticipantsCame { campaign } => BackendError::Conflict(format!(
            "participants were added to campaign `{campaign}` while the new content was checked against those there: declare it again"
        )),
        e @ (StoreError::Open { .. }
        | StoreError::FallbackOf { .. }
        | StoreError::FallbackElsewhere { .. }
        | StoreError::StateChanged { .. }) => BackendError::Conflict(e.to_string()),
        e @ StoreError::DiskFull { .. } => BackendError::InsufficientStorage(e.to_string()),
        e @ (StoreError::Corrupt { .. } | StoreError::InUse { .. } | StoreError::Unopened(_)) => {
            BackendError::Internal(e.to_string())
        }
    }
}

/// A finished or cancelled campaign never silently sends again: new
/// participants go to a new campaign (a next stage can be built from it).
fn closed(id: &str, state: &str) -> BackendError {
    BackendError::Conflict(format!(
        "campaign `{id}` is {state}: it takes no more participants; declare a new campaign (POST /v1/campaigns/NEW/participants/from builds one from this one's audience)"
    ))
}

/// An upload abandoned if dropped before it ended (its request was cut
/// off): its staged customers are free again.
struct Unended {
    store: Arc<dyn Store>,
    upload: UploadId,
    ended: bool,
}

impl Drop for Unended {
    fn drop(&mut self) {
        if self.ended {
            return;
        }
        // Without a runtime the daemon is stopping: the store drops the
        // unpublished upload when it opens again.
        let Ok(runtime) = tokio::runtime::Handle::try_current() else {
            return;
        };
        let (store, upload) = (self.store.clone(), self.upload);
        runtime.spawn(async move { abandon(&*store, upload).await });
    }
}

/// The participants of an audience page (`records`, `None` where one was
/// deleted meanwhile) as they join the next stage, numbered by their
/// position in the audience (`position`, counted on across pages): with
/// `source.address_field`'s value as their address, refused where it is
/// missing or empty.
fn addressed(
    records: Vec<Option<Participant>>,
    source: &AudienceSource,
    position: &mut usize,
) -> (Vec<(usize, Participant)>, UploadResult) {
    let mut refused = UploadResult::default();
    let mut part = Vec::with_capacity(records.len());
    for record in records {
        *position += 1;
        let line = *position;
        let Some(mut p) = record else {
            continue;
        };
        if let Some(field) = &source.address_field {
            match p.fields.get(field).map(FieldValue::render) {
                Some(address) if !address.is_empty() => p.address = address.to_owned(),
                _ => {
                    refused.reject(Rejected::new(
                        line,
                        format!(
                            "customer `{}`: field `{field}` is missing or empty",
                            p.customer
                        ),
                    ));
                    continue;
                }
            }
        }
        part.push((line, p));
    }
    (part, refused)
}

/// Abandons `upload`; if that fails, the store drops it when it opens
/// again.
async fn abandon(store: &dyn Store, upload: UploadId) {
    if let Err(e) = store.abandon(upload).await {
        tracing::warn!(error = %e, "an abandoned upload is dropped at the next start instead");
    }
}

impl GatewayBackend {
    /// A page of the audience of campaign `id` for `outcome`, numbered
    /// `from` on: its participants' records (`None` where one was deleted
    /// meanwhile), and where the next page starts.
    async fn audience_records(
        &self,
        id: &str,
        outcome: &str,
        from: u32,
        limit: usize,
    ) -> BackendResult<(Vec<Option<Participant>>, Option<u32>)> {
        let page = (self.store)
            .audience_messages(id, outcome, from, limit)
            .await
            .map_err(store_error)?;
        let msgs: Vec<MessageNo> = page.messages.iter().map(|&(msg, _)| msg).collect();
        let records = self.store.participants(&msgs).await.map_err(store_error)?;
        Ok((records, page.next))
    }

    /// Adds the audience of `source` to campaign `id` as one upload, a page
    /// at a time: each page staged, then the whole published (abandoned if
    /// that fails or the request is cut off), as an NDJSON upload is: all
    /// or nothing, no store write as large as a whole audience (on Redis
    /// one such script would hold every node), and no audience held in
    /// memory whole.
    async fn add_audience(&self, id: &str, source: &AudienceSource) -> BackendResult<UploadResult> {
        let upload = self.store.new_upload();
        let mut unended = Unended {
            store: self.store.clone(),
            upload,
            ended: false,
        };
        let mut result = UploadResult::default();
        let added = async {
            let mut position = 0;
            // Once at least: an empty audience still has the campaign
            // checked (404 unknown, 409 closed).
            let mut from = Some(0);
            while let Some(first) = from {
                let (records, next) = self
                    .audience_records(
                        &source.campaign,
                        &source.outcome,
                        first,
                        admin_api::STAGE_BATCH,
                    )
                    .await?;
                from = next;
                let (part, refused) = addressed(records, source, &mut position);
                let staged = self.add_checked(id, Some(upload), part, refused).await?;
                result.merge(staged);
            }
            self.publish(upload.0).await
        }
        .await;
        if added.is_err() {
            self.abandon(upload.0).await;
        }
        unended.ended = true;
        result.published(added?);
        result.list_first();
        Ok(result)
    }

    /// Checks each participant (its id, its address or fallback address,
    /// the channel's rules) and adds the good ones, visible at once, or
    /// staged under `upload`; `result` may hold rejections found before.
    async fn add_checked(
        &self,
        id: &str,
        upload: Option<UploadId>,
        batch: Vec<(usize, Participant)>,
        mut result: UploadResult,
    ) -> BackendResult<UploadResult> {
        let record = self.record(id).await?;
        if let Some(state) = rules::closed_to_participants(record.state) {
            return Err(closed(id, state));
        }
        let check = self
            .channel(record.decl.channel)?
            .participant_check(&record)
            .map_err(|e| BackendError::Internal(e.to_string()))?;
        // Without an address a participant goes to the fallback, if that
        // takes such participants and they have its address.
        let no_address = record
            .decl
            .fallback
            .as_ref()
            .filter(|f| f.on.contains(&Undelivered::NoAddress));
        let mut accepted = Vec::with_capacity(batch.len());
        for (line, p) in batch {
            let problem = if !valid_id(&p.customer) {
                Some(format!(
                    "customer `{}` is not 1..=128 characters of [A-Za-z0-9._:-]",
                    p.customer
                ))
            } else if let (true, Some(f)) = (p.address.is_empty(), no_address) {
                rules::fallback_participant(f, &p)
                    .err()
                    .map(|why| format!("no address, and {why}"))
            } else {
                check(&p).map(|unfit| unfit.to_string())
            };
            match problem {
                Some(error) => result.reject(Rejected::new(line, error)),
                None => accepted.push(p),
            }
        }
        if accepted.is_empty() {
            return Ok(result);
        }
        let fresh = match upload {
            Some(upload) => self.store.stage(id, upload, accepted).await,
            None => self.store.add_participants(id, accepted, now_ms()).await,
        }
        .map_err(store_error)?;
        let new = fresh.iter().filter(|&&f| f).count() as u64;
        result.accepted = new;
        result.duplicates = fresh.len() as u64 - new;
        if upload.is_none() {
            self.accepted(new);
        }
        Ok(result)
    }

    /// Why `decl` cannot be `id`'s declaration: a conflict (409) when the
    /// campaign's state or channel forbids any declaration, which is told
    /// first; else each problem naming its field (empty: none).
    async fn declaration_refusals(
        &self,
        id: &str,
        decl: &CampaignDecl,
    ) -> BackendResult<DeclarationChecked> {
        let existing = self.store.campaign(id).await.map_err(store_error)?;
        if let Some(existing) = &existing {
            if existing.state != CampaignState::Declared {
                return Err(BackendError::Conflict(format!(
                    "campaign `{id}` is {:?}; a declaration can change only before start",
                    existing.state
                )));
            }
            if existing.decl.channel != decl.channel {
                return Err(BackendError::Conflict(
                    "a campaign's channel cannot change".into(),
                ));
            }
        }
        // Only an SMS text's length depends on the campaign's number: a new
        // campaign gets the next one (should a concurrent declaration take
        // it, the check is off by the tokens' length difference between two
        // neighbouring numbers: nil).
        let seq = match (&existing, decl.sms()) {
            (Some(c), _) => c.seq,
            (None, Some(_)) => self
                .store
                .campaigns()
                .await
                .map_err(store_error)?
                .iter()
                .map(|c| c.seq + 1)
                .max()
                .unwrap_or(0),
            (None, None) => 0,
        };
        let mut problems = declaration_problems(decl, seq, self.channel(decl.channel)?.as_ref());
        if let Some(f) = &decl.fallback {
            problems.extend(fallback::problems(self.store.as_ref(), id, decl, f).await?);
        }
        let mut numbered = None;
        if let (Some(existing), true) = (&existing, problems.is_empty()) {
            let (unfit, checked) = self.participants_unfit_for(existing, decl).await?;
            problems.extend(unfit);
            numbered = checked;
        }
        Ok(DeclarationChecked { problems, numbered })
    }

    /// Why participants already in campaign `existing` could not be sent
    /// the content `decl` declares instead of its own: each was checked
    /// against the content at its upload (or none), and a content naming
    /// a field they lack would fail them all at send time (each a `failed`
    /// fact, which may start a fallback). At most [`UNFIT_LISTED`] are
    /// named. With a new content, also the campaign's `Counts::numbered`
    /// when the check began: the declaration is written only if no
    /// participant came since. Refused while an upload is read, whose
    /// checks the new content would overtake.
    async fn participants_unfit_for(
        &self,
        existing: &CampaignRecord,
        decl: &CampaignDecl,
    ) -> BackendResult<(Vec<String>, Option<u64>)> {
        if existing.decl.content == decl.content {
            return Ok((Vec::new(), None));
        }
        let id = &existing.id;
        let counts = self.store.counts(id).await.map_err(store_error)?;
        if counts.staged > 0 {
            return Err(BackendError::Conflict(format!(
                "campaign `{id}` has an upload being read, checked against its content as it is: declare the new content once the upload is answered"
            )));
        }
        let candidate = CampaignRecord {
            decl: decl.clone(),
            ..existing.clone()
        };
        // A content that cannot be parsed is refused by its own problems.
        let Ok(check) = self.channel(decl.channel)?.participant_check(&candidate) else {
            return Ok((Vec::new(), None));
        };
        let mut unfit = Vec::new();
        let mut total = 0usize;
        let mut from = Some(0);
        while let Some(first) = from {
            let (records, next) = self
                .audience_records(id, Status::Pending.as_str(), first, UNFIT_READ)
                .await?;
            from = next;
            for p in records.into_iter().flatten() {
                if let Some(why) = check(&p) {
                    total += 1;
                    if unfit.len() < UNFIT_LISTED {
                        unfit.push(format!(
                            "content: participant `{}`, uploaded before it, cannot be sent it: {why}",
                            p.customer
                        ));
                    }
                }
            }
        }
        if total > unfit.len() {
            unfit.push(format!(
                "content: {} more participants uploaded before it cannot be sent it",
                total - unfit.len()
            ));
        }
        Ok((unfit, Some(counts.numbered)))
    }

    /// Participants became visible: counted, and the dispatcher told.
    fn accepted(&self, new: u64) {
        self.metrics.participants_accepted.inc_by(new);
        self.wake.notify_one();
    }

    async fn record(&self, id: &str) -> BackendResult<CampaignRecord> {
        self.store
            .campaign(id)
            .await
            .map_err(store_error)?
            .ok_or_else(|| BackendError::NotFound(format!("no campaign `{id}`")))
    }

    async fn view(&self, record: CampaignRecord) -> BackendResult<CampaignView> {
        let counts = self.store.counts(&record.id).await.map_err(store_error)?;
        let pending = progress::pending(&counts);
        let pace = if record.state == CampaignState::Running {
            self.progress.observe(&record.id, now_ms(), pending);
            self.progress.pace(&record.id)
        } else {
            self.progress.forget(&record.id);
            None
        };
        let progress = v1::CampaignProgress {
            done: counts.participants.saturating_sub(pending),
            pending,
            rate_per_sec: pace.map(|p| p.per_sec),
            eta: pace.map(|p| rfc3339(p.eta)),
        };
        Ok(CampaignView {
            id: record.id,
            state: record.state.into(),
            declaration: record.decl.into(),
            participants: counts.participants,
            uploading: counts.staged,
            counts: counts.by_status,
            progress,
        })
    }

    /// Moves a campaign to `to` if it is still in one of `from` (a
    /// control decided on the state it read).
    async fn change_state(
        &self,
        id: &str,
        from: &[CampaignState],
        to: CampaignState,
    ) -> BackendResult<CampaignView> {
        let record = (self.store.change_state(id, from, to).await).map_err(store_error)?;
        self.wake.notify_one();
        self.view(record).await
    }

    /// The channel of `kind`; every kind has one, so none is a server fault.
    fn channel(&self, kind: ChannelKind) -> BackendResult<&Arc<dyn Channel>> {
        self.channels
            .get(kind)
            .ok_or_else(|| BackendError::Internal(format!("no {} channel runs", kind.as_str())))
    }
}

/// Every problem of a declaration, each naming its field; the content's
/// are its channel's (`seq` is the campaign's number, the next one for a new
/// campaign).
fn declaration_problems(decl: &CampaignDecl, seq: u32, channel: &dyn Channel) -> Vec<String> {
    let mut problems = Vec::new();
    if decl.name.trim().is_empty() {
        problems.push("name: must not be empty".into());
    }
    if decl.priority.is_some_and(|p| p > 9) {
        problems.push("priority: must be 0..=9".into());
    }
    if let Some(w) = &decl.window {
        let parse = |field: &str, v: &Option<String>, problems: &mut Vec<String>| {
            v.as_deref()
                .and_then(|s| match s.parse::<jiff::Timestamp>() {
                    Ok(t) => Some(t),
                    Err(e) => {
                        problems.push(format!(
                            "window.{field}: `{s}` is not an RFC 3339 instant: {e}"
                        ));
                        None
                    }
                })
        };
        let start = parse("start", &w.start, &mut problems);
        let end = parse("end", &w.end, &mut problems);
        if let (Some(s), Some(e)) = (start, end)
            && s >= e
        {
            problems.push("window: start must be before end".into());
        }
        problems.extend(window_problems(w));
    }
    // Content may come later, in another declaration (start checks it).
    if decl.content.is_some() {
        problems.extend(channel.content_problems(decl, seq));
        if let Ok(table) = channel.link_table(decl) {
            problems.extend(
                table
                    .urls()
                    .iter()
                    .filter_map(|url| links::link_problem(url)),
            );
        }
    }
    problems
}

fn channel_kind(channel: &str) -> BackendResult<ChannelKind> {
    ChannelKind::parse(channel)
        .ok_or_else(|| BackendError::NotFound(format!("no channel `{channel}`")))
}

/// The window template's problems, found by the code that compiles it.
fn window_problems(w: &Window) -> Vec<String> {
    window_spec(w)
        .problems("window")
        .into_iter()
        .map(|p| format!("{}: {}", p.field, p.message))
        .collect()
}

#[async_trait]
impl Backend for GatewayBackend {
    async fn declare(&self, id: &str, decl: v1::CampaignDecl) -> BackendResult<CampaignView> {
        let decl = CampaignDecl::from(decl);
        let checked = self.declaration_refusals(id, &decl).await?;
        if !checked.problems.is_empty() {
            return Err(BackendError::Invalid(checked.problems));
        }
        let record = self
            .store
            .put_campaign_if(id, decl, checked.numbered)
            .await
            .map_err(store_error)?;
        self.view(record).await
    }

    async fn declaration_problems(
        &self,
        id: &str,
        decl: &v1::CampaignDecl,
    ) -> BackendResult<Vec<String>> {
        self.declaration_refusals(id, &CampaignDecl::from(decl.clone()))
            .await
            .map(|checked| checked.problems)
    }

    fn new_upload(&self) -> admin_api::UploadId {
        self.store.new_upload().0
    }

    async fn add_participants(
        &self,
        id: &str,
        upload: admin_api::UploadId,
        batch: Vec<(usize, ParticipantIn)>,
    ) -> BackendResult<UploadResult> {
        let batch = batch
            .into_iter()
            .map(|(line, p)| (line, Participant::from(p)))
            .collect();
        self.add_checked(id, Some(UploadId(upload)), batch, UploadResult::default())
            .await
    }

    async fn publish(&self, upload: admin_api::UploadId) -> BackendResult<u64> {
        // The store refuses a campaign that ended while it was read.
        let published = self
            .store
            .publish(UploadId(upload), now_ms())
            .await
            .map_err(store_error)?;
        self.accepted(published);
        Ok(published)
    }

    async fn abandon(&self, upload: admin_api::UploadId) {
        abandon(&*self.store, UploadId(upload)).await;
    }

    async fn add_from(&self, id: &str, source: AudienceSource) -> BackendResult<UploadResult> {
        self.record(&source.campaign).await?;
        self.add_audience(id, &source).await
    }

    async fn control(&self, id: &str, action: Control) -> BackendResult<CampaignView> {
        use CampaignState::*;
        let record = self.record(id).await?;
        let conflict = |what: &str| {
            Err(BackendError::Conflict(format!(
                "cannot {what} campaign `{id}`: it is {:?}",
                record.state
            )))
        };
        match (action, record.state) {
            (Control::Start, Declared) => {
                if let Some(why) = self.channel(record.decl.channel)?.start_blocker(&record) {
                    return Err(BackendError::Conflict(format!(
                        "cannot start `{id}`: {why}"
                    )));
                }
                let counts = self.store.counts(id).await.map_err(store_error)?;
                if counts.participants == 0 {
                    return Err(BackendError::Conflict(format!(
                        "cannot start `{id}`: it has no participants"
                    )));
                }
                self.change_state(id, &[Declared], Running).await
            }
            (Control::Start, _) => conflict("start"),
            (Control::Pause, Running) => self.change_state(id, &[Running], Paused).await,
            (Control::Pause, _) => conflict("pause"),
            (Control::Resume, Paused) => self.change_state(id, &[Paused], Running).await,
            (Control::Resume, _) => conflict("resume"),
            (Control::Cancel, Declared | Running | Paused) => {
                let open = [Declared, Running, Paused];
                self.change_state(id, &open, Cancelled).await
            }
            (Control::Cancel, _) => conflict("cancel"),
        }
    }

    async fn campaign(&self, id: &str) -> BackendResult<CampaignView> {
        let record = self.record(id).await?;
        self.view(record).await
    }

    async fn delete_campaign(&self, id: &str) -> BackendResult<()> {
        let deleted = self.store.delete_campaign(id).await.map_err(store_error)?;
        self.links.forget(deleted.seq);
        self.progress.forget(id);
        tracing::info!(campaign = %id, "campaign deleted");
        Ok(())
    }

    async fn preview(
        &self,
        id: &str,
        participant: ParticipantIn,
    ) -> BackendResult<v1::MessagePreview> {
        let record = self.record(id).await?;
        let channel = self.channel(record.decl.channel)?;
        let participant = Participant::from(participant);
        let message = channel
            .preview(&record, &participant)
            .map_err(|unfit| BackendError::Invalid(vec![unfit.to_string()]))?;
        Ok(preview::view(message, participant.address))
    }

    async fn send_test(&self, id: &str, participant: ParticipantIn) -> BackendResult<v1::TestSend> {
        let record = self.record(id).await?;
        let channel = self.channel(record.decl.channel)?;
        let participant = Participant::from(participant);
        // Consent first: a test never reaches a blocked address or customer.
        let blocked = self
            .store
            .participant_suppression(record.decl.channel, &participant)
            .await
            .map_err(store_error)?;
        if let Some(why) = blocked {
            return Err(BackendError::Conflict(format!(
                "`{}` (customer `{}`) is blocked on {} ({}): no test is sent to it",
                participant.address,
                participant.customer,
                record.decl.channel.as_str(),
                why.as_str()
            )));
        }
        let delivery = channel
            .send_test(&record, &participant)
            .await
            .map_err(|unfit| BackendError::Invalid(vec![unfit.to_string()]))?;
        tracing::info!(campaign = %id, to = %participant.address, ?delivery, "test send");
        Ok(preview::test_send(
            record.decl.channel,
            participant.address,
            delivery,
        ))
    }

    async fn campaigns(&self, filter: CampaignFilter) -> BackendResult<CampaignPage> {
        let state = filter.state.map(CampaignState::from);
        let channel = filter.channel.map(ChannelKind::from);
        let mut records: Vec<CampaignRecord> = self
            .store
            .campaigns()
            .await
            .map_err(store_error)?
            .into_iter()
            .filter(|r| state.is_none_or(|s| r.state == s))
            .filter(|r| channel.is_none_or(|c| r.decl.channel == c))
            .filter(|r| filter.before.is_none_or(|before| r.seq < before))
            .collect();
        // Newest first: campaigns are numbered as they are declared.
        records.sort_unstable_by_key(|r| std::cmp::Reverse(r.seq));
        let more = records.len() > filter.limit;
        records.truncate(filter.limit);
        let next = more.then(|| records.last().map(|r| r.seq)).flatten();
        let mut campaigns = Vec::with_capacity(records.len());
        for record in records {
            campaigns.push(self.view(record).await?);
        }
        Ok(CampaignPage { campaigns, next })
    }

    async fn audience_page(
        &self,
        id: &str,
        outcome: &str,
        from: u32,
    ) -> BackendResult<AudienceRows> {
        let page = self
            .store
            .audience_page(id, outcome, from, store::AUDIENCE_PAGE)
            .await
            .map_err(store_error)?;
        Ok(AudienceRows {
            rows: page
                .members
                .into_iter()
                .map(|m| AudienceRow::of(m, outcome))
                .collect(),
            next: page.next,
        })
    }

    async fn events(&self, after: u64, limit: usize) -> BackendResult<EventPage> {
        let facts = self.store.events(after, limit).await.map_err(store_error)?;
        let next = facts.last().map_or(after, |f| f.cursor);
        let events = facts.into_iter().map(Event::of).collect();
        Ok(EventPage { events, next })
    }

    async fn import_bounce(&self, raw: &[u8]) -> BackendResult<BounceImport> {
        match self.returns.take(raw, &[]).await {
            Ok(i) => Ok(BounceImport {
                is_bounce: i.is_bounce,
                matched: i.matched,
                unmatched: i.unmatched,
            }),
            Err(IntakeError::TooLarge { limit, .. }) => Err(BackendError::TooLarge(limit)),
            Err(IntakeError::Store(e)) => Err(store_error(e)),
        }
    }

    async fn unmatched(
        &self,
        kind: UnmatchedKind,
        before: Option<u64>,
        limit: usize,
    ) -> BackendResult<UnmatchedPage> {
        let ring = match kind {
            UnmatchedKind::Mail => returns::unmatched_mails(),
            UnmatchedKind::Receipt => intake::unmatched_receipts(),
        };
        let (kept, values) = ring
            .newest(self.store.as_ref(), before, limit)
            .await
            .map_err(store_error)?;
        let items = values
            .into_iter()
            .filter_map(|(n, value)| match kind {
                UnmatchedKind::Mail => Some(UnmatchedItem {
                    n,
                    message: Some(String::from_utf8_lossy(&value).into_owned()),
                    receipt: None,
                }),
                UnmatchedKind::Receipt => unmatched_receipt(n, &value),
            })
            .collect();
        Ok(UnmatchedPage {
            kept,
            capacity: ring.capacity(),
            items,
        })
    }

    async fn put_limits(
        &self,
        channel: &str,
        limits: serde_json::Value,
    ) -> BackendResult<serde_json::Value> {
        let channel = channel_kind(channel)?;
        let parsed: throttle::Limits = admin_api::strict_json::from_value(&limits)
            .map_err(|e| BackendError::Invalid(vec![e.to_string()]))?;
        match self
            .policy
            .set_limits(channel, parsed.clone(), now_ms())
            .await
        {
            Ok(()) => {
                self.wake.notify_one();
                serde_json::to_value(parsed).map_err(|e| BackendError::Internal(e.to_string()))
            }
            Err(PolicyError::Invalid(problems)) => Err(BackendError::Invalid(problems)),
            Err(PolicyError::Store(e)) => Err(store_error(e)),
        }
    }

    async fn get_limits(&self, channel: &str) -> BackendResult<serde_json::Value> {
        let kind = channel_kind(channel)?;
        let limits = self
            .policy
            .limits(kind)
            .ok_or_else(|| BackendError::NotFound(format!("no limits set for {channel}")))?;
        serde_json::to_value(limits).map_err(|e| BackendError::Internal(e.to_string()))
    }

    async fn blacklist_add(&self, channel: &str, entries: Vec<String>) -> BackendResult<usize> {
        let n = entries.len();
        self.store
            .suppress_many(channel_kind(channel)?, entries, SuppressReason::Blacklisted)
            .await
            .map_err(store_error)?;
        Ok(n)
    }

    async fn blacklist_remove(&self, channel: &str, entry: &str) -> BackendResult<bool> {
        self.store
            .unsuppress(channel_kind(channel)?, entry)
            .await
            .map_err(store_error)
    }

    async fn blacklist_get(&self, channel: &str, entry: &str) -> BackendResult<Option<String>> {
        let why = self
            .store
            .suppressed(channel_kind(channel)?, entry)
            .await
            .map_err(store_error)?;
        Ok(why.map(|why| why.as_str().to_owned()))
    }

    async fn blacklist_list(
        &self,
        channel: &str,
        filter: v1::BlacklistFilter,
    ) -> BackendResult<v1::BlacklistPage> {
        let query = SuppressionQuery {
            contains: filter.contains,
            reason: filter.why.as_deref().map(SuppressReason::parse),
            after: filter.after,
            // One more than the page says whether there is a next page.
            limit: filter.limit + 1,
        };
        let mut found = self
            .store
            .suppressions(channel_kind(channel)?, &query)
            .await
            .map_err(store_error)?;
        let more = found.len() > filter.limit;
        found.truncate(filter.limit);
        let next = more
            .then(|| found.last().map(|(entry, _)| entry.clone()))
            .flatten();
        let entries = found
            .into_iter()
            .map(|(entry, why)| v1::BlacklistEntry {
                entry,
                why: why.as_str().to_owned(),
            })
            .collect();
        Ok(v1::BlacklistPage { entries, next })
    }

    async fn plan(
        &self,
        channel: &str,
        campaigns: Option<Vec<String>>,
    ) -> BackendResult<serde_json::Value> {
        let kind = channel_kind(channel)?;
        let mut records: Vec<(CampaignRecord, u64)> = Vec::new();
        for c in self.store.campaigns().await.map_err(store_error)? {
            let counts = self.store.counts(&c.id).await.map_err(store_error)?;
            let pending = counts.by_status.get("pending").copied().unwrap_or(0);
            records.push((c, pending));
        }
        let plan = match self
            .policy
            .plan(kind, &records, campaigns.as_deref(), now_ms())
        {
            Ok(plan) => plan,
            Err(PolicyError::Invalid(problems)) => return Err(BackendError::Invalid(problems)),
            Err(PolicyError::Store(e)) => return Err(store_error(e)),
        };
        let json =
            serde_json::to_value(&plan).map_err(|e| BackendError::Internal(e.to_string()))?;
        match self.policy.put_plan(kind, &plan, now_ms()).await {
            Ok(()) => Ok(json),
            Err(PolicyError::Invalid(problems)) => Err(BackendError::Invalid(problems)),
            Err(PolicyError::Store(e)) => Err(store_error(e)),
        }
    }

    async fn stored_plan(&self, channel: &str) -> BackendResult<serde_json::Value> {
        let kind = channel_kind(channel)?;
        let raw = self
            .store
            .meta(&plan_key(kind))
            .await
            .map_err(store_error)?
            .ok_or_else(|| {
                BackendError::NotFound(format!("no plan for {channel}: POST one first"))
            })?;
        serde_json::from_slice(&raw).map_err(|e| BackendError::Internal(e.to_string()))
    }

    fn metrics(&self, exposition: admin_api::Exposition) -> String {
        self.metrics.render(exposition)
    }

    fn count_request(&self, route: &str, method: &str, status: u16) {
        self.metrics.api_request(route, method, status);
    }

    fn channels(&self) -> v1::ChannelsView {
        connectors::view(&self.channels)
    }

    fn switch_connector(
        &self,
        channel: &str,
        name: &str,
        on: bool,
    ) -> BackendResult<v1::ConnectorHealth> {
        let report = self
            .channel(channel_kind(channel)?)?
            .switch_connector(name, on)
            .ok_or_else(|| {
                BackendError::NotFound(format!("no {channel} connector named `{name}`"))
            })?;
        if on {
            // Messages waiting for a connector may go now.
            self.wake.notify_one();
        }
        Ok(connectors::health(report))
    }

    /// The store takes writes, some upstream is configured, and every
    /// channel's configured upstreams can take messages (an SMSC a bind up,
    /// a relay reached).
    fn not_ready(&self) -> Vec<String> {
        let mut reasons = Vec::new();
        if let Some(why) = self.store.write_refusal() {
            reasons.push(format!("store: {why}"));
        }
        if !self.channels.iter().any(|c| c.is_configured()) {
            reasons.push("no upstream configured: add [[email.relays]] or [[sms.smsc]]".to_owned());
        }
        reasons.extend(self.channels.iter().flat_map(|c| c.not_ready()));
        reasons
    }
}

#[cfg(test)]
mod tests {
    use std::sync::Arc;

    use store::embedded::Embedded;

    use super::*;
    use crate::{
        channel::{Deps, email::EmailChannel},
        config::Config,
        links::test_links,
        verp::ReturnPaths,
    };

    #[test]
    fn hour_ranges() {
        let valid_hour_range = |range: &str| {
            let w = Window {
                start: None,
                end: None,
                tz: None,
                weekdays: vec![],
                hours: vec![range.into()],
            };
            window_problems(&w).is_empty()
        };
        assert!(valid_hour_range("09:00-12:00"));
        assert!(valid_hour_range("00:00-24:00"));
        assert!(!valid_hour_range("12:00-09:00"));
        assert!(!valid_hour_range("25:00-26:00"));
        assert!(!valid_hour_range("9-12"));
    }

    #[tokio::test]
    async fn declarations_list_every_problem_the_channels_among_them() {
        let dir = tempfile::tempdir().expect("tempdir");
        let email = EmailChannel::start(&Deps {
            config: &Config::default(),
            store: Arc::new(Embedded::open(dir.path()).expect("store")),
            metrics: Arc::default(),
            links: Arc::new(test_links()),
            return_paths: ReturnPaths::new(b"secret", "bounces.example.com"),
            recorded: Default::default(),
        })
        .expect("e-mail channel");
        let decl: CampaignDecl = serde_json::from_value(serde_json::json!({
            "channel": "email", "name": "", "priority": 12,
            "window": { "start": "yesterday", "tz": "Mars/Olympus", "weekdays": ["funday"], "hours": ["18:00-09:00"] },
            "content": { "sms": { "from": "x", "text": "y" } }
        }))
        .expect("shape");
        let problems = declaration_problems(&decl, 0, &email);
        assert_eq!(problems.len(), 7, "{problems:#?}");
        let link_to_a_field: CampaignDecl = serde_json::from_value(serde_json::json!({
            "channel": "email", "name": "n",
            "content": { "email": { "from": "a@b.example", "subject": "s",
                                    "text": "Go https://shop.example{{q}} now" } }
        }))
        .expect("shape");
        assert_eq!(
            declaration_problems(&link_to_a_field, 0, &email),
            [
                "link `https://shop.example{{q}}`: its scheme and host cannot come from a field; write them out and put fields after the first `/`"
            ]
        );
        assert!(
            problems.contains(&"content.email: required for an email campaign".to_owned()),
            "{problems:#?}"
        );
    }
}
