//! The dispatcher: claims due messages of running campaigns with a lease,
//! sends them through their channel with bounded concurrency, and records
//! what the upstream said. Pausing or cancelling a campaign stops its claims
//! at the next tick (well under a second); sends in flight finish.
//!
//! The load-control seam: the policy checks of the `throttle` crate (windows,
//! caps, quotas, blacklist, bandwidth) belong between `claim` and `send`.

mod drivers;
mod outcome;
mod recorder;
mod series;

use std::{collections::HashMap, sync::Arc, time::Duration};

use tokio::{
    sync::{Notify, OwnedSemaphorePermit, Semaphore, oneshot},
    time::Instant,
};
use tokio_util::{sync::CancellationToken, task::TaskTracker};

use crate::{
    channel::{Channel, Registry},
    config::Dispatch,
    metrics::{ChannelLabels, Metrics, ReasonLabels},
    policy::{Policy, PolicyError, QuotaWrite, Room, Taken, Verdict},
    recorded::Recorded,
};
use domain::{
    CampaignRecord, CampaignState, ChannelKind, Delivery, Millis, Outcome, SuppressReason, Update,
    now_ms,
};
use drivers::Drivers;
use recorder::Recorder;
use series::SendSeries;
use store::{Claim, Lease, Store, StoreError};

/// How often the dispatcher asks whether the store takes writes (a look
/// at the disk's free space): sends go on for at most this long after it
/// stopped, their outcomes refused and sent again later.
const REFUSAL_LOOK: Duration = Duration::from_millis(100);
/// Longest pause between looks at the queue when nothing was due.
const IDLE_TICK: Duration = Duration::from_millis(100);
/// How often load control's counters are persisted: what a crash can let a
/// cap or a plan hour carry again is the sends of this long.
const CHECKPOINT_EVERY: Duration = Duration::from_secs(1);

pub struct Dispatcher {
    pub store: Arc<dyn Store>,
    pub channels: Registry,
    pub config: Dispatch,
    pub metrics: Arc<Metrics>,
    /// Load control: windows, exclusion days, caps, quotas, bandwidth.
    pub policy: Arc<Policy>,
    /// Woken when a campaign starts or gets participants.
    pub wake: Arc<Notify>,
    /// How many of the outcomes handed to the recorder are durable.
    pub recorded: Recorded,
}

impl Dispatcher {
    /// Runs until `shutdown`; then stops claiming and waits for sends in flight.
    pub async fn run(self: Arc<Self>, shutdown: CancellationToken) {
        let (recorder, recording) = Recorder::start(self.store.clone(), self.recorded.clone());
        let sends = TaskTracker::new();
        let lanes: Vec<Lane> = self
            .channels
            .iter()
            .map(|channel| Lane {
                job: Arc::new(SendJob {
                    store: self.store.clone(),
                    policy: self.policy.clone(),
                    channel: channel.clone(),
                    metrics: self.metrics.clone(),
                    series: SendSeries::new(&self.metrics, channel.kind()),
                    recorder: recorder.clone(),
                }),
                permits: Arc::new(Semaphore::new(channel.concurrency())),
                unrecorded: Arc::new(Semaphore::new(UNRECORDED_PER_SEND * channel.concurrency())),
                ahead: Arc::new(Semaphore::new(BATCHES_AHEAD)),
                turns: Turns::default(),
                drivers: Arc::new(Drivers::start(&sends)),
            })
            .collect();
        drop(recorder);
        // On a timer of its own: a tick can wait for send permits far longer.
        let checkpoints = tokio::spawn(checkpoint_until(self.policy.clone(), shutdown.clone()));
        let mut paused: Option<String> = None;
        let mut looked = Instant::now() - REFUSAL_LOOK;
        let mut busy = HashMap::new();
        let mut listing = None;
        while !shutdown.is_cancelled() {
            // Nothing is sent whose outcome could not be recorded.
            if looked.elapsed() >= REFUSAL_LOOK {
                looked = Instant::now();
                let refusal = self.store.write_refusal();
                if refusal != paused {
                    match &refusal {
                        Some(why) => {
                            tracing::error!(%why, "sending paused: the store takes no writes")
                        }
                        None => tracing::info!("sending resumed: the store takes writes again"),
                    }
                    paused = refusal;
                }
            }
            let progress = if paused.is_some() {
                Progress::default()
            } else {
                self.tick(&lanes, &sends, &shutdown, &mut busy, &mut listing)
                    .await
            };
            if progress.claimed == 0 {
                // Nothing claimed: wait for news, the next deferred message, or a tick.
                let idle = progress.next_due.map_or(IDLE_TICK, |due| {
                    Duration::from_millis(due.saturating_sub(now_ms())).min(IDLE_TICK)
                });
                tokio::select! {
                    () = shutdown.cancelled() => break,
                    () = self.wake.notified() => {}
                    () = tokio::time::sleep(idle) => {}
                }
            }
        }
        let channels: Vec<Arc<dyn Channel>> = lanes.iter().map(|l| l.job.channel.clone()).collect();
        // The drivers end once no lane is left to hand them sends.
        drop(lanes);
        sends.close();
        sends.wait().await;
        // The last checkpoint, once nothing is admitted any more.
        let _ = checkpoints.await;
        checkpoint(&self.policy).await;
        for channel in channels {
            channel.close().await;
        }
        // Every send has handed its outcome over: wait until they are written.
        let _ = recording.await;
    }

    /// One pass over the running campaigns. `busy` holds the campaigns
    /// whose last claim was full: more of them is due, so their counts
    /// (whether they may finish) are read again only now and then, and
    /// while every campaign is busy the `listing` is not read again either.
    async fn tick(
        self: &Arc<Self>,
        lanes: &[Lane],
        sends: &TaskTracker,
        shutdown: &CancellationToken,
        busy: &mut HashMap<u32, Busy>,
        listing: &mut Option<Listing>,
    ) -> Progress {
        let now = now_ms();
        let Some(campaigns) = self.campaigns(listing, busy).await else {
            return Progress::default();
        };
        busy.retain(|seq, _| campaigns.iter().any(|c| c.seq == *seq));
        let mut progress = Progress::default();
        let mut loads: HashMap<ChannelKind, Load> = lanes
            .iter()
            .map(|lane| (lane.job.channel.kind(), Load::new(now)))
            .collect();
        for campaign in campaigns.iter() {
            let (Some(lane), Some(load)) = (
                lanes
                    .iter()
                    .find(|l| l.job.channel.kind() == campaign.decl.channel),
                loads.get_mut(&campaign.decl.channel),
            ) else {
                continue; // validated at declaration: every channel runs
            };
            let still_busy = busy
                .remove(&campaign.seq)
                .filter(|b| campaign.state == CampaignState::Running && b.fresh());
            let pending = match &still_busy {
                Some(b) => b.pending,
                None => match self.counted(campaign).await {
                    Some(pending) => pending,
                    None => continue,
                },
            };
            load.depth += i64::try_from(pending).unwrap_or(i64::MAX);
            let pass = self
                .claim_and_feed(campaign, now, lane, sends, shutdown)
                .await;
            progress.claimed += pass.claimed;
            if pass.full && pass.claimed > 0 {
                // More is due now: no need to ask when.
                let counted_at = still_busy.map_or_else(Instant::now, |b| b.counted_at);
                busy.insert(
                    campaign.seq,
                    Busy {
                        pending,
                        counted_at,
                    },
                );
                continue;
            }
            if let Ok(Some(due)) = self.store.next_due(campaign.seq).await {
                let due = pass.not_before.map_or(due, |t| due.max(t));
                progress.next_due = Some(progress.next_due.map_or(due, |d| d.min(due)));
                load.oldest_due = load.oldest_due.min(due);
            }
        }
        for (channel, load) in loads {
            let labels = ChannelLabels {
                channel: channel.as_str(),
            };
            self.metrics
                .queue_depth
                .get_or_create(&labels)
                .set(load.depth);
            let waited = now.saturating_sub(load.oldest_due) as f64 / 1000.0;
            self.metrics.oldest_wait.get_or_create(&labels).set(waited);
            if let Some(limits) = self.policy.limits(channel) {
                self.metrics
                    .rate_limit
                    .get_or_create(&labels)
                    .set(limits.rate_per_sec);
            }
        }
        progress
    }

    /// The running and finished campaigns, highest priority first: as
    /// last listed while that is recent and every one of them is busy
    /// (the steady state of a bulk send, where listing them each claim
    /// would cost a store request per claim), else listed again.
    async fn campaigns(
        &self,
        listing: &mut Option<Listing>,
        busy: &HashMap<u32, Busy>,
    ) -> Option<Arc<[CampaignRecord]>> {
        if let Some(listed) = listing.as_ref()
            && listed.at.elapsed() < LIST_EVERY
            && listed.campaigns.iter().all(|c| busy.contains_key(&c.seq))
        {
            return Some(Arc::clone(&listed.campaigns));
        }
        let running_before: Option<Vec<u32>> = listing.take().map(|l| running(&l.campaigns));
        let mut campaigns: Vec<CampaignRecord> = match self.store.campaigns().await {
            Ok(all) => all
                .into_iter()
                .filter(|c| matches!(c.state, CampaignState::Running | CampaignState::Finished))
                .collect(),
            Err(e) => {
                tracing::error!(error = %e, "listing campaigns failed");
                return None;
            }
        };
        campaigns.sort_by_key(|c| std::cmp::Reverse(c.decl.priority.unwrap_or(0)));
        let started = running(&campaigns)
            .into_iter()
            .any(|seq| running_before.as_ref().is_some_and(|b| !b.contains(&seq)));
        if started {
            // Started through another node, maybe right after it set new
            // limits: take them up before the first claim, not within
            // the second the checkpoint takes.
            if let Err(e) = self.policy.refresh(now_ms()).await {
                tracing::error!(error = %e, "limits set by another node not taken up");
            }
        }
        let campaigns: Arc<[CampaignRecord]> = campaigns.into();
        *listing = Some(Listing {
            campaigns: Arc::clone(&campaigns),
            at: Instant::now(),
        });
        Some(campaigns)
    }

    /// Reads a campaign's counts and finishes it when nothing is left to
    /// send and no upload to it is being read (the store checks again as
    /// it writes), or runs it again when something came back to send (a
    /// soft bounce's resend). Its pending messages; `None` when it is
    /// settled (nothing to claim) or the store did not answer.
    async fn counted(&self, campaign: &CampaignRecord) -> Option<u64> {
        let counts = self.store.counts(&campaign.id).await.ok()?;
        let pending = counts.by_status.get("pending").copied().unwrap_or(0);
        let settled = pending == 0 && counts.in_flight == 0;
        let next = match campaign.state {
            CampaignState::Running
                if rules::may_finish(pending, counts.in_flight, counts.staged) =>
            {
                Some(CampaignState::Finished)
            }
            CampaignState::Finished if !settled => Some(CampaignState::Running),
            _ => None,
        };
        // Only from the state listed: one an operator changed since (a
        // cancel, a pause) stays as they left it.
        let from = [campaign.state];
        if let Some(state) = next
            && let Err(e) = self.store.change_state(&campaign.id, &from, state).await
            && !matches!(e, StoreError::StateChanged { .. })
        {
            tracing::warn!(campaign = %campaign.id, error = %e, "could not change state");
        }
        (!settled).then_some(pending)
    }

    /// Claims a batch of a campaign's due messages and hands it to a
    /// feeder task that looks its suppressions up, then checks and sends
    /// its messages, so that the next claim goes to the store while this
    /// batch is fed (on a shared store a claim and a suppression lookup
    /// are each a round trip, during which the channel would otherwise run
    /// dry). A lane's batches are fed one at a time, in claim order, and at
    /// most [`BATCHES_AHEAD`] are claimed and not fed yet.
    async fn claim_and_feed(
        self: &Arc<Self>,
        campaign: &CampaignRecord,
        now: Millis,
        lane: &Lane,
        sends: &TaskTracker,
        shutdown: &CancellationToken,
    ) -> Pass {
        let ahead = tokio::select! {
            a = lane.ahead.clone().acquire_owned() => a.ok(),
            () = shutdown.cancelled() => None,
        };
        let Some(ahead) = ahead else {
            return Pass::default();
        };
        if !lane.room_for_a_batch(shutdown).await {
            return Pass::default();
        }
        let room = claim_room(lane.job.channel.concurrency(), self.config.claim_batch);
        // A store shared with other nodes has the bandwidth: claim no more
        // than may go now, so that nothing claimed waits for it.
        let room = match self.policy.room(campaign.decl.channel, room, now).await {
            Ok(Room::Go(room)) => room,
            Ok(Room::Wait { until }) => {
                return Pass {
                    not_before: Some(until),
                    ..Pass::default()
                };
            }
            Err(e) => {
                tracing::error!(campaign = %campaign.id, error = %e, "bandwidth not known");
                return Pass::default();
            }
        };
        let lease = self.config.lease_secs * 1000;
        let claims = match self.store.claim(campaign.seq, now, room, lease).await {
            Ok(c) => c,
            Err(e) => {
                tracing::error!(campaign = %campaign.id, error = %e, "claim failed");
                return Pass::default();
            }
        };
        let pass = Pass {
            claimed: claims.len(),
            full: claims.len() == room,
            not_before: None,
        };
        if claims.is_empty() {
            return pass;
        }
        let batch = Batch {
            campaign: Arc::new(campaign.clone()),
            claims,
            send_by: now + lease / 2,
            done_by: instant_of(now + lease - lease / LEASE_MARGIN),
        };
        let (me, lane, shutdown) = (Arc::clone(self), lane.clone(), shutdown.clone());
        let turn = lane.turns.take();
        sends.spawn(async move {
            me.feed(batch, turn, &lane, &shutdown).await;
            drop(ahead);
        });
        pass
    }

    /// Looks the batch's suppressions up, waits for its turn, then checks
    /// each claimed message (suppressions, then the load rules) and sends,
    /// defers or settles it.
    async fn feed(&self, batch: Batch, mut turn: Turn, lane: &Lane, shutdown: &CancellationToken) {
        let Batch {
            campaign,
            claims,
            send_by,
            done_by,
        } = batch;
        let permits = &lane.permits;
        let channel = campaign.decl.channel;
        let mut suppressions = Lookup::of(self.store.as_ref(), channel, &claims, 0).await;
        turn.previous_fed().await;
        // The dispatcher may be waiting for news while this batch is fed:
        // a message given back is due again (or at its deferred time).
        let mut given_back = false;
        // What is left of the batch once it must stop: given back at once.
        let mut unsent = Vec::new();
        let mut queue = claims.into_iter();
        for i in 0.. {
            suppressions
                .refresh(self.store.as_ref(), channel, queue.as_slice(), i)
                .await;
            let Some(claim) = queue.next() else { break };
            if shutdown.is_cancelled() {
                unsent.push(claim.lease());
                unsent.extend(queue.map(|c| c.lease()));
                break;
            }
            let p = &claim.participant;
            // Decided at its own time: a batch may have waited for its turn.
            let now = now_ms();
            let verdict = match suppressions.at(i) {
                Ok(Some(why)) => Ok(Verdict::Suppress { why: why.as_str() }),
                Ok(None) => self.policy.admit(&campaign, p, now).await,
                Err(e) => Err(PolicyError::Store(e)),
            };
            match verdict {
                Ok(Verdict::Go { quota, taken }) => {
                    let acquired = async {
                        let unrecorded = lane.unrecorded.clone().acquire_owned().await?;
                        let sending = permits.clone().acquire_owned().await?;
                        Ok::<_, tokio::sync::AcquireError>(Permits {
                            sending,
                            unrecorded,
                        })
                    };
                    let permits = tokio::select! {
                        p = acquired => match p { Ok(p) => Some(p), Err(_) => break },
                        () = shutdown.cancelled() => None,
                    };
                    // Half the batch's lease went by while it waited: a send
                    // may take the other half, and one still under way when
                    // the lease runs out could be claimed and sent again.
                    let Some(permits) = permits.filter(|_| now_ms() < send_by) else {
                        // Its quota send is counted, not stored yet.
                        lane.job
                            .give_back(&claim, &taken, quota.as_ref(), false)
                            .await;
                        unsent.push(claim.lease());
                        unsent.extend(queue.map(|c| c.lease()));
                        break;
                    };
                    let (job, campaign) = (lane.job.clone(), campaign.clone());
                    lane.drivers.run(async move {
                        job.send(&campaign, claim, quota, taken, permits, done_by)
                            .await
                    });
                }
                Ok(Verdict::Defer { reason, until }) => {
                    give_back(self.store.as_ref(), claim.lease(), Some(until)).await;
                    given_back = true;
                    self.metrics
                        .deferred
                        .get_or_create(&ReasonLabels {
                            channel: channel.as_str(),
                            reason,
                        })
                        .inc();
                }
                Ok(Verdict::Suppress { why }) => {
                    self.metrics
                        .suppressed
                        .get_or_create(&ReasonLabels {
                            channel: channel.as_str(),
                            reason: why,
                        })
                        .inc();
                    lane.job
                        .record(
                            &campaign,
                            claim,
                            now,
                            Outcome::Suppressed {
                                why: why.to_owned(),
                            },
                        )
                        .await;
                }
                Err(e) => {
                    tracing::error!(campaign = %campaign.id, error = %e, "load control failed; message released");
                    give_back(self.store.as_ref(), claim.lease(), None).await;
                    given_back = true;
                }
            }
        }
        if !unsent.is_empty() {
            release(self.store.as_ref(), &unsent).await;
            given_back = true;
        }
        if given_back {
            self.wake.notify_one();
        }
    }
}

/// A campaign whose last claim was full, with its pending messages as
/// last counted.
#[derive(Clone, Copy)]
struct Busy {
    pending: u64,
    counted_at: Instant,
}

/// How long a busy campaign goes without its counts read again (the
/// queue-depth gauge follows them).
const BUSY_COUNTS_EVERY: Duration = Duration::from_millis(250);

/// The campaigns as the dispatcher last listed them.
struct Listing {
    campaigns: Arc<[CampaignRecord]>,
    at: Instant,
}

/// The numbers of the running campaigns of a listing.
fn running(campaigns: &[CampaignRecord]) -> Vec<u32> {
    (campaigns.iter())
        .filter(|c| c.state == CampaignState::Running)
        .map(|c| c.seq)
        .collect()
}

/// How long busy campaigns are claimed from as listed: a pause, a cancel,
/// a changed priority or a campaign started (on any node) is seen within
/// this.
const LIST_EVERY: Duration = Duration::from_millis(250);

impl Busy {
    fn fresh(&self) -> bool {
        self.counted_at.elapsed() < BUSY_COUNTS_EVERY
    }
}

/// What one claim of a campaign came to.
#[derive(Debug, Default)]
struct Pass {
    /// Messages claimed (handed to a feeder, which sends, defers or
    /// settles each and wakes the dispatcher when it gives one back).
    claimed: usize,
    /// The claim got all it asked for: more may be due.
    full: bool,
    /// Nothing of the campaign may go before then (the shared bandwidth).
    not_before: Option<Millis>,
}

/// Gives a leased message back unsent: due again at `due`, or at once.
/// Should the store not answer, the lease runs out instead and the message
/// is claimed again then: never lost, only later.
async fn give_back(store: &dyn Store, lease: Lease, due: Option<Millis>) {
    match due {
        Some(due) => {
            if let Err(e) = store.defer(lease, due).await {
                tracing::warn!(error = %e, "message not given back; its lease will run out");
            }
        }
        None => release(store, &[lease]).await,
    }
}

/// Gives leased messages back unsent, due again at once, in one call; as
/// in [`give_back`], a store that does not answer lets their leases run
/// out instead.
async fn release(store: &dyn Store, leases: &[Lease]) {
    if let Err(e) = store.release(leases).await {
        tracing::warn!(error = %e, messages = leases.len(), "messages not given back; their leases will run out");
    }
}

/// What one pass achieved: messages claimed, and when the earliest
/// waiting message (deferred or retried) is due.
#[derive(Debug, Default, Clone, Copy)]
struct Progress {
    claimed: usize,
    next_due: Option<Millis>,
}

/// Claimed messages on their way to be sent.
struct Batch {
    campaign: Arc<CampaignRecord>,
    claims: Vec<Claim>,
    /// A message may start being sent until then: half its lease.
    send_by: Millis,
    /// A send still under way then is given up, before its lease ends and
    /// the message could be claimed and sent again.
    done_by: Instant,
}

/// The share of a lease (1/10) kept between a send given up and the lease's
/// end.
const LEASE_MARGIN: u64 = 10;

/// The monotonic instant of wall-clock time `at` (leases run on the wall
/// clock, timers on the monotonic one).
fn instant_of(at: Millis) -> Instant {
    Instant::now() + Duration::from_millis(at.saturating_sub(now_ms()))
}

/// `send`, given up at `done_by`: a send still under way then, waiting
/// for a relay's connection or its reply, may have gone, but must not
/// outlast its lease, after which the message could be claimed and sent
/// again meanwhile.
async fn before_the_lease_ends(done_by: Instant, send: impl Future<Output = Delivery>) -> Delivery {
    tokio::time::timeout_at(done_by, send)
        .await
        .unwrap_or_else(|_| Delivery::Unconfirmed {
            reply: "the send outlasted its lease: given up, it may have gone".into(),
            retry_after: None,
        })
}

/// A batch's suppressions as looked up: for the whole batch in one call
/// (one request on a shared store), and again for what is left of it once
/// older than [`SUPPRESSIONS_FRESH`] (a batch may wait for its turn and
/// for permits, and a number blacklisted on any node stops its texts
/// within a second).
struct Lookup {
    /// Where in the batch the looked-up messages begin.
    from: usize,
    at: Instant,
    found: Result<Vec<Option<SuppressReason>>, StoreError>,
}

/// How old a batch's suppressions may be when one of its messages is sent.
const SUPPRESSIONS_FRESH: Duration = Duration::from_millis(500);

impl Lookup {
    /// The suppressions of `claims`, the batch's from index `from` on.
    async fn of(store: &dyn Store, channel: ChannelKind, claims: &[Claim], from: usize) -> Self {
        let participants: Vec<&domain::Participant> =
            claims.iter().map(|c| &c.participant).collect();
        let at = Instant::now();
        let found = store
            .participants_suppressions(channel, &participants)
            .await;
        Self { from, at, found }
    }

    /// Looks `rest` (the batch from index `from` on) up again if the
    /// last lookup is no longer fresh.
    async fn refresh(
        &mut self,
        store: &dyn Store,
        channel: ChannelKind,
        rest: &[Claim],
        from: usize,
    ) {
        if !rest.is_empty() && self.at.elapsed() >= SUPPRESSIONS_FRESH {
            *self = Self::of(store, channel, rest, from).await;
        }
    }

    /// Why the batch's message `i` must not go, if it must not.
    fn at(&self, i: usize) -> Result<Option<SuppressReason>, StoreError> {
        match &self.found {
            Ok(all) => Ok(all.get(i - self.from).copied().flatten()),
            Err(e) => Err(e.clone()),
        }
    }
}

/// One channel as the dispatcher drives it: the channel and its sends in
/// flight (each channel says how many it takes).
#[derive(Clone)]
struct Lane {
    /// What each of its sends needs, shared by them all.
    job: Arc<SendJob>,
    permits: Arc<Semaphore>,
    /// Sends whose outcome is not durable yet, being sent or answered: what
    /// a crash may send twice.
    unrecorded: Arc<Semaphore>,
    /// One held by each batch from its claim until it is fed.
    ahead: Arc<Semaphore>,
    /// Its batches are fed one at a time, in claim order.
    turns: Turns,
    /// What polls its sends.
    drivers: Arc<Drivers>,
}

/// A lane's batches claimed and not fed yet, the one being claimed
/// included: while one is fed, the next one's suppressions are looked up
/// and the one after is claimed.
const BATCHES_AHEAD: usize = 3;

/// Hands out a lane's feeding turns in claim order.
#[derive(Clone, Default)]
struct Turns {
    last: Arc<std::sync::Mutex<Option<oneshot::Receiver<()>>>>,
}

impl Turns {
    /// The turn after the last one taken.
    fn take(&self) -> Turn {
        let (done, fed) = oneshot::channel();
        let previous = self
            .last
            .lock()
            .unwrap_or_else(std::sync::PoisonError::into_inner)
            .replace(fed);
        Turn {
            previous,
            _done: done,
        }
    }
}

/// A batch's turn to be fed; dropping it lets the next batch go.
struct Turn {
    previous: Option<oneshot::Receiver<()>>,
    _done: oneshot::Sender<()>,
}

impl Turn {
    /// Waits until the batch claimed before this one has been fed.
    async fn previous_fed(&mut self) {
        if let Some(previous) = self.previous.take() {
            // Its sender is dropped, never used: the error is the signal.
            let _ = previous.await;
        }
    }
}

impl Lane {
    /// Waits until a batch's worth of sends can start (false: shut down).
    /// A claim and its tick cost about as much as the sends they start, so
    /// claiming each permit as it comes back would double the CPU per
    /// message; sends in flight end within a round trip, so the wait is
    /// short.
    async fn room_for_a_batch(&self, shutdown: &CancellationToken) -> bool {
        let batch = u32::try_from(self.job.channel.concurrency() / CLAIM_SHARE)
            .unwrap_or(u32::MAX)
            .max(1);
        let room = async {
            let _sending = self.permits.acquire_many(batch).await;
            let _unrecorded = self.unrecorded.acquire_many(batch).await;
        };
        tokio::select! {
            () = room => true,
            () = shutdown.cancelled() => false,
        }
    }
}

/// A claim waits until this share of a channel's sends can start (1/8).
const CLAIM_SHARE: usize = 8;

/// How many messages to claim: as many as the channel sends at once (a
/// batch at most), whether or not its permits are free yet. A claim is a
/// round trip to a shared store: claims the size of the permits free at
/// the time were small and many. What is left of a batch when half its
/// lease is gone before a permit came is given back unsent (the feeder
/// checks).
fn claim_room(concurrency: usize, batch: usize) -> usize {
    concurrency.min(batch).max(1)
}

/// Sends answered but not yet recorded may be as many as this times those
/// being sent: the upstream is not kept waiting on a commit, and a slow disk
/// cannot let sends run ahead of their records without bound (after a
/// `kill -9` every unrecorded send goes again).
const UNRECORDED_PER_SEND: usize = 2;

/// What a send holds: a place among the sends in flight until the upstream
/// answers, and one among the unrecorded until its outcome is durable.
struct Permits {
    sending: OwnedSemaphorePermit,
    unrecorded: OwnedSemaphorePermit,
}

/// A channel's queue in one pass: messages pending, and the earliest due.
struct Load {
    depth: i64,
    oldest_due: Millis,
}

impl Load {
    fn new(now: Millis) -> Self {
        Self {
            depth: 0,
            oldest_due: now,
        }
    }
}

/// What every send of a lane needs.
struct SendJob {
    store: Arc<dyn Store>,
    policy: Arc<Policy>,
    channel: Arc<dyn Channel>,
    metrics: Arc<Metrics>,
    /// The lane's series of what every send counts.
    series: SendSeries,
    /// Where answered sends leave their outcomes (one for every lane).
    recorder: Recorder,
}

impl SendJob {
    /// Gives back what admitting `claim` counted, `quota` its quota send
    /// (stored once `durable`): the message was not sent after all.
    async fn give_back(
        &self,
        claim: &Claim,
        taken: &Taken,
        quota: Option<&QuotaWrite>,
        durable: bool,
    ) {
        if let Err(e) = self
            .policy
            .give_back(&claim.participant, taken, quota, durable)
            .await
        {
            tracing::warn!(error = %e, customer = %claim.participant.customer,
                "an unsent message's quota send not given back: it counts until it ages out");
        }
    }

    /// Makes the customer's quota state durable; `false` when the message
    /// must not go now: the write failed (it is left for a later claim),
    /// or another node counted a send of this customer since the state was
    /// read (it is given back, to be decided again on the new state).
    async fn count_quota(&self, claim: &Claim, quota: &QuotaWrite, taken: &Taken) -> bool {
        let written = self
            .policy
            .make_quota_durable(&claim.participant, quota, taken)
            .await;
        match written {
            Ok(true) => true,
            Ok(false) => {
                tracing::debug!(customer = %claim.participant.customer, "quota counted by another node meanwhile; deciding again");
                give_back(self.store.as_ref(), claim.lease(), None).await;
                false
            }
            Err(e) => {
                tracing::error!(error = %e, "quota state not durable; message left for a later claim");
                false
            }
        }
    }

    /// Persists the customer's quota state (if load control counted one),
    /// then sends: a crash in between can only over-count the quota. The
    /// sending permit is given back once the upstream has answered: waiting
    /// for the outcome to be durable is not sending, and holding it through
    /// a commit would cap the rate at permits / commit time. The unrecorded
    /// one goes with the outcome to the recorder, which gives it back once
    /// the outcome is durable.
    async fn send(
        &self,
        campaign: &CampaignRecord,
        claim: Claim,
        quota: Option<QuotaWrite>,
        taken: Taken,
        permits: Permits,
        done_by: Instant,
    ) {
        if let Some(quota) = &quota
            && !self.count_quota(&claim, quota, &taken).await
        {
            return;
        }
        let started = Instant::now();
        self.metrics.in_flight.inc();
        let send = self.channel.send(campaign, &claim, done_by);
        let delivery = before_the_lease_ends(done_by, send).await;
        drop(permits.sending);
        self.metrics.in_flight.dec();
        let channel = campaign.decl.channel.as_str();
        if let Delivery::Unsent { reply, retry_after } = &delivery {
            tracing::debug!(campaign = %campaign.id, reason = %reply, "not sent; waiting");
            self.give_back(&claim, &taken, quota.as_ref(), true).await;
            let due = now_ms() + retry_after.as_millis() as u64;
            give_back(self.store.as_ref(), claim.lease(), Some(due)).await;
            self.metrics
                .deferred
                .get_or_create(&ReasonLabels {
                    channel,
                    reason: "upstream_unavailable",
                })
                .inc();
            return;
        }
        self.series.observe_send(started.elapsed().as_secs_f64());
        if matches!(delivery, Delivery::Unconfirmed { .. }) {
            self.metrics
                .unconfirmed
                .get_or_create(&ChannelLabels { channel })
                .inc();
        }
        let at = now_ms();
        let retry = self.channel.retry();
        let outcome = outcome::of(delivery, claim.attempts + 1, at, retry, &self.metrics);
        self.count(&outcome);
        let update = Update {
            msg: claim.msg,
            at,
            outcome,
        };
        self.recorder.record(update, permits.unrecorded);
    }

    /// Records an outcome decided without sending (a suppression) and waits
    /// until it is durable.
    async fn record(&self, campaign: &CampaignRecord, claim: Claim, at: Millis, outcome: Outcome) {
        self.count(&outcome);
        if let Err(e) = self
            .store
            .record(vec![Update {
                msg: claim.msg,
                at,
                outcome,
            }])
            .await
        {
            // Not recorded: the lease expires and the message is claimed
            // again, never silently dropped.
            tracing::error!(campaign = %campaign.id, error = %e, "could not record an outcome");
        }
    }

    fn count(&self, outcome: &Outcome) {
        self.series.count(&self.metrics, outcome);
    }
}

/// Persists load control's counters (caps, plan hours) every
/// [`CHECKPOINT_EVERY`] until `shutdown`.
async fn checkpoint_until(policy: Arc<Policy>, shutdown: CancellationToken) {
    let mut every = tokio::time::interval(CHECKPOINT_EVERY);
    every.set_missed_tick_behavior(tokio::time::MissedTickBehavior::Delay);
    loop {
        tokio::select! {
            () = shutdown.cancelled() => return,
            _ = every.tick() => checkpoint(&policy).await,
        }
    }
}

async fn checkpoint(policy: &Policy) {
    if let Err(e) = policy.refresh(now_ms()).await {
        tracing::error!(error = %e, "limits set by another node not taken up");
    }
    if let Err(e) = policy.checkpoint(now_ms()).await {
        tracing::warn!(error = %e, "load-control counters not persisted; retried in a second");
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn claims_no_more_than_the_channel_sends_at_once() {
        assert_eq!(claim_room(8, 100), 8, "the channel's sends bound the claim");
        assert_eq!(claim_room(500, 100), 100, "a claim batch at most");
        assert_eq!(claim_room(0, 100), 1, "one at least");
    }

    /// A send that would outlast its lease is given up, unconfirmed; one
    /// that ends in time is as it ends.
    #[tokio::test]
    async fn a_send_is_given_up_before_its_lease_ends() {
        let slow = async {
            tokio::time::sleep(Duration::from_secs(3600)).await;
            Delivery::Permanent {
                reply: "never".into(),
            }
        };
        let given_up = tokio::time::timeout(
            Duration::from_secs(5),
            before_the_lease_ends(Instant::now() + Duration::from_millis(50), slow),
        )
        .await
        .expect("given up at its time");
        assert!(
            matches!(&given_up, Delivery::Unconfirmed { reply, .. } if reply.contains("outlasted its lease")),
            "{given_up:?}"
        );
        let quick = async {
            Delivery::Transient {
                reply: "451".into(),
                retry_after: None,
            }
        };
        let done = before_the_lease_ends(Instant::now() + Duration::from_secs(60), quick).await;
        assert!(matches!(done, Delivery::Transient { .. }), "{done:?}");
    }
}
