//! Load control in the daemon: each channel's limits (bandwidth, exclusion
//! days, caps, per-segment quotas) compiled by the `throttle` crate, each
//! campaign's send window, and the durable quota state, asked before every
//! send. Limits change without a restart; quota state survives one, and
//! so do the caps' and the plan's counters, persisted by a checkpoint every
//! second ([`Policy::checkpoint`]): after a crash a cap or a plan hour can
//! carry at most the sends of the last second again. On a store several
//! nodes share, the bandwidth (`credits`), the caps and the plan's hours
//! (`allowances`) and the quotas are counted in the store, across nodes,
//! and limits or a plan changed through one node hold on the others from
//! their next ask for bandwidth (`follow_changed_limits`).

use std::{
    collections::HashMap,
    sync::{Arc, Mutex},
};

use serde::{Deserialize, Serialize};
use throttle::{
    Admission, CapCount, CapSpec, CustomerKey, Decision, Limits, Opening, QuotaBook, QuotaState,
    Request, Window, WindowSpec,
    jiff::{Timestamp, civil::Date},
};

use crate::schedule::{HOUR_MS, Schedule, SentInHour};
use domain::{CampaignRecord, ChannelKind, Millis, Participant};
use store::{Store, StoreError};

mod allowances;
mod credits;

use allowances::{Allowances, Counted, Room as Allowed};
use credits::{Credits, Slot};

/// A customer's quota state to make durable before the send.
#[derive(Debug, Clone, PartialEq)]
pub struct QuotaWrite {
    /// Its meta key.
    pub key: String,
    pub state: Vec<u8>,
    /// On a store several nodes share: the state it was decided on, which
    /// it may only replace (`Some(None)`: there was none). If another node
    /// counted a send of this customer meanwhile, the message is not sent
    /// and is decided again.
    pub over: Option<Option<Vec<u8>>>,
    /// When the send was counted (forgotten if the state is not written).
    pub counted_at: Millis,
}

/// What a Go counted against the limits, given back if the message does
/// not go after all (its quota state not written, no upstream could take
/// it, its turn ran out): a message not sent takes nothing.
#[derive(Debug, Clone, PartialEq)]
pub struct Taken {
    channel: ChannelKind,
    campaign: String,
    /// When it was counted (its caps' periods and its plan hour).
    at: Millis,
    /// On a store several nodes share: the periods (load caps, the plan's
    /// hour) counted there with its bandwidth slot.
    shared: Option<Vec<String>>,
}

/// How many messages of a channel the dispatcher may claim now.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Room {
    Go(usize),
    /// None before `until` (the shared bandwidth is spent).
    Wait {
        until: Millis,
    },
}

/// What the dispatcher does with a claimed message.
#[derive(Debug, Clone, PartialEq)]
pub enum Verdict {
    /// Send it; first make `quota` durable, if any. What it counted is
    /// `taken`, to give back if it does not go.
    Go {
        quota: Option<QuotaWrite>,
        taken: Taken,
    },
    /// Ask again at `until` (ms); `reason` labels the metric.
    Defer { reason: &'static str, until: Millis },
    /// Never send; `why` goes into the `suppressed` fact.
    Suppress { why: &'static str },
}

#[derive(Debug, thiserror::Error)]
pub enum PolicyError {
    #[error("{}", .0.join("; "))]
    Invalid(Vec<String>),
    #[error(transparent)]
    Store(#[from] StoreError),
}

struct ChannelPolicy {
    limits: Limits,
    admission: Admission,
    quotas: QuotaBook,
}

/// Load-control state of every channel, and the windows of running campaigns.
pub struct Policy {
    store: Arc<dyn Store>,
    channels: Mutex<HashMap<ChannelKind, ChannelPolicy>>,
    windows: Mutex<HashMap<u32, Window>>,
    /// The stored plan of each channel that has one, as it is followed.
    schedules: Mutex<HashMap<ChannelKind, Schedule>>,
    /// The counters as last persisted, by meta key: unchanged ones are not
    /// written again.
    checkpointed: Mutex<HashMap<String, Vec<u8>>>,
    /// Slots of the channels' bandwidth taken from a store shared with
    /// other nodes.
    credits: Credits,
    /// Allowances of the channels' load caps and plan hours taken from a
    /// store shared with other nodes.
    allowances: Allowances,
    /// The stored plan each channel follows, as stored (to notice one
    /// another node stored).
    followed_plans: Mutex<HashMap<ChannelKind, Vec<u8>>>,
    /// The channels load control knows.
    kinds: Vec<ChannelKind>,
    /// Per channel, the version of its limits in the store that this node
    /// read them at (`follow_changed_limits`).
    limits_followed: Mutex<HashMap<ChannelKind, u64>>,
    /// Held while the limits are read again (`refresh`, or for a change an
    /// ask showed): one reading at a time, not one per message that
    /// noticed the change, and never an older one applied last.
    following: tokio::sync::Mutex<()>,
}

/// A channel's cap counters as persisted, with the time zone whose days
/// they count: counters of another zone's days are not restored.
#[derive(Default, Serialize, Deserialize)]
struct StoredCaps {
    tz: String,
    counts: Vec<StoredCapCount>,
}

/// A cap's counter as persisted: with the cap's definition rather than its
/// index, so that a counter never lands on another cap once limits change.
#[derive(Serialize, Deserialize)]
struct StoredCapCount {
    cap: CapSpec,
    day: Date,
    count: u64,
}

fn limits_key(channel: ChannelKind) -> String {
    format!("limits:{}", channel.as_str())
}

pub fn plan_key(channel: ChannelKind) -> String {
    format!("plan:{}", channel.as_str())
}

fn caps_key(channel: ChannelKind) -> String {
    format!("caps:{}", channel.as_str())
}

fn plan_sent_key(channel: ChannelKind) -> String {
    format!("plan_sent:{}", channel.as_str())
}

fn quota_prefix(channel: ChannelKind) -> String {
    format!("quota:{}:", channel.as_str())
}

fn timestamp(ms: Millis) -> Timestamp {
    Timestamp::from_millisecond(i64::try_from(ms).unwrap_or(i64::MAX)).unwrap_or(Timestamp::MAX)
}

fn millis(t: Timestamp) -> Millis {
    u64::try_from(t.as_millisecond()).unwrap_or(0)
}

impl Policy {
    /// Loads the stored limits, quota state, plan and counters of every
    /// channel in `kinds`.
    pub async fn load(
        store: Arc<dyn Store>,
        kinds: impl IntoIterator<Item = ChannelKind>,
        now: Millis,
    ) -> Result<Self, PolicyError> {
        let mut channels = HashMap::new();
        let mut schedules = HashMap::new();
        let mut checkpointed = HashMap::new();
        let mut followed_plans = HashMap::new();
        let kinds: Vec<ChannelKind> = kinds.into_iter().collect();
        for &channel in &kinds {
            if let Some(raw) = store.meta(&plan_key(channel)).await? {
                let plan = stored_plan(channel, &raw)?;
                followed_plans.insert(channel, raw);
                let mut schedule = Schedule::new(&plan);
                let key = plan_sent_key(channel);
                if let Some(raw) = store.meta(&key).await? {
                    for sent in stored_counters::<Vec<SentInHour>>(&key, &raw) {
                        schedule.restore(&sent);
                    }
                    checkpointed.insert(key, raw);
                }
                schedules.insert(channel, schedule);
            }
            let Some(raw) = store.meta(&limits_key(channel)).await? else {
                continue;
            };
            let limits: Limits = serde_json::from_slice(&raw).map_err(|e| {
                PolicyError::Invalid(vec![format!("stored limits of {}: {e}", channel.as_str())])
            })?;
            let mut policy = compile(&limits, now, store.shared().is_some())?;
            for (key, bytes) in store.meta_prefix(&quota_prefix(channel)).await? {
                let customer = &key[quota_prefix(channel).len()..];
                if let Ok(state) = QuotaState::from_bytes(&bytes) {
                    policy.quotas.import(CustomerKey::of(customer), &state);
                }
            }
            let key = caps_key(channel);
            if let Some(raw) = store.meta(&key).await? {
                let caps = stored_counters::<StoredCaps>(&key, &raw);
                let same_days = caps.tz == limits.tz;
                for stored in caps.counts.into_iter().filter(|_| same_days) {
                    // A cap no longer in the limits has nothing to restore.
                    if let Some(cap) = limits.caps.iter().position(|c| *c == stored.cap) {
                        policy.admission.restore_cap_count(CapCount {
                            cap,
                            day: stored.day,
                            count: stored.count,
                        });
                    }
                }
                checkpointed.insert(key, raw);
            }
            channels.insert(channel, policy);
        }
        Ok(Self {
            store,
            channels: Mutex::new(channels),
            windows: Mutex::new(HashMap::new()),
            schedules: Mutex::new(schedules),
            checkpointed: Mutex::new(checkpointed),
            credits: Credits::default(),
            allowances: Allowances::default(),
            followed_plans: Mutex::new(followed_plans),
            kinds,
            limits_followed: Mutex::new(HashMap::new()),
            following: tokio::sync::Mutex::new(()),
        })
    }

    /// Persists the caps' and the plan's counters that changed since the
    /// last checkpoint, so that a restart goes on counting from them.
    pub async fn checkpoint(&self, now: Millis) -> Result<(), StoreError> {
        for (key, value) in self.counters(now) {
            if self.lock_checkpointed().get(&key) == Some(&value) {
                continue;
            }
            self.store.put_meta(&key, value.clone()).await?;
            self.lock_checkpointed().insert(key, value);
        }
        Ok(())
    }

    /// Every channel's counters as meta keys and values.
    fn counters(&self, now: Millis) -> Vec<(String, Vec<u8>)> {
        let mut counters = Vec::new();
        for (&channel, policy) in self.lock_channels().iter() {
            let caps = StoredCaps {
                tz: policy.limits.tz.clone(),
                counts: policy
                    .admission
                    .cap_counts()
                    .into_iter()
                    .filter_map(|c| {
                        Some(StoredCapCount {
                            cap: policy.limits.caps.get(c.cap)?.clone(),
                            day: c.day,
                            count: c.count,
                        })
                    })
                    .collect(),
            };
            counters.push((caps_key(channel), json_bytes(&caps)));
        }
        for (&channel, schedule) in self.lock_schedules().iter() {
            counters.push((plan_sent_key(channel), json_bytes(&schedule.sent_from(now))));
        }
        counters
    }

    fn lock_checkpointed(&self) -> std::sync::MutexGuard<'_, HashMap<String, Vec<u8>>> {
        self.checkpointed
            .lock()
            .unwrap_or_else(std::sync::PoisonError::into_inner)
    }

    /// On a store shared with other nodes, takes up the limits and plans
    /// another node set since (called every second with the checkpoint).
    pub async fn refresh(&self, now: Millis) -> Result<(), PolicyError> {
        if self.store.shared().is_none() {
            return Ok(());
        }
        // One reading at a time: an older one applied after a newer one
        // would undo it.
        let _one = self.following.lock().await;
        self.read_limits_again(now).await
    }

    async fn read_limits_again(&self, now: Millis) -> Result<(), PolicyError> {
        for &channel in &self.kinds {
            if let Some(raw) = self.store.meta(&plan_key(channel)).await?
                && self.lock_followed_plans().get(&channel) != Some(&raw)
            {
                let plan = stored_plan(channel, &raw)?;
                self.follow(channel, &plan, now);
                self.lock_followed_plans().insert(channel, raw);
            }
            let Some(raw) = self.store.meta(&limits_key(channel)).await? else {
                continue;
            };
            let current = self.limits(channel).map(|l| json_bytes(&l));
            if current.as_deref() == Some(raw.as_slice()) {
                continue;
            }
            let limits: Limits = serde_json::from_slice(&raw).map_err(|e| {
                PolicyError::Invalid(vec![format!("stored limits of {}: {e}", channel.as_str())])
            })?;
            // A store shared with other nodes (see above).
            self.apply_limits(channel, compile(&limits, now, true)?)?;
        }
        Ok(())
    }

    /// Reads the limits and plans again when an ask for `channel`'s
    /// bandwidth showed that a node changed them since this one read them:
    /// a change made through another node holds here from the send after
    /// its next ask (one every fiftieth of a second while it sends), not
    /// from its next once-a-second look.
    async fn follow_changed_limits(&self, channel: ChannelKind, now: Millis) {
        let seen = self.credits.limits_version(channel);
        // Not `<`: a Redis that lost its data counts again from 0.
        if self
            .lock_limits_followed()
            .get(&channel)
            .copied()
            .unwrap_or(0)
            == seen
        {
            return;
        }
        // Another send (or the once-a-second look) reads them already: this
        // one goes on with what it has.
        let Ok(_one) = self.following.try_lock() else {
            return;
        };
        // Sending goes on with the limits it has should they not be read:
        // the once-a-second look tries again and says why.
        if let Err(e) = self.read_limits_again(now).await {
            tracing::warn!(error = %e, "limits another node changed not taken up yet");
        }
        self.lock_limits_followed().insert(channel, seen);
    }

    fn lock_limits_followed(&self) -> std::sync::MutexGuard<'_, HashMap<ChannelKind, u64>> {
        self.limits_followed
            .lock()
            .unwrap_or_else(std::sync::PoisonError::into_inner)
    }

    /// Tells the other nodes on a shared store that `channel`'s limits or
    /// plan changed (stored already): they read them again at their next
    /// ask. Should that fail, they still do within a second (`refresh`).
    async fn tell_nodes_limits_changed(&self, channel: ChannelKind) {
        if let Some(shared) = self.store.shared()
            && let Err(e) = shared.limits_changed(channel.as_str()).await
        {
            tracing::warn!(error = %e, channel = channel.as_str(),
                "other nodes take the changed limits up within a second, not at once");
        }
    }

    /// Validates, stores durably, then applies a channel's limits.
    pub async fn set_limits(
        &self,
        channel: ChannelKind,
        limits: Limits,
        now: Millis,
    ) -> Result<(), PolicyError> {
        let compiled = compile(&limits, now, self.store.shared().is_some())?;
        let raw =
            serde_json::to_vec(&limits).map_err(|e| PolicyError::Invalid(vec![e.to_string()]))?;
        self.store.put_meta(&limits_key(channel), raw).await?;
        self.apply_limits(channel, compiled)?;
        self.tell_nodes_limits_changed(channel).await;
        Ok(())
    }

    /// Applies a channel's compiled limits here: an existing channel keeps
    /// its counters and bandwidth schedule.
    fn apply_limits(
        &self,
        channel: ChannelKind,
        compiled: ChannelPolicy,
    ) -> Result<(), PolicyError> {
        let shared = self.store.shared().is_some();
        let mut channels = self.lock_channels();
        match channels.get_mut(&channel) {
            Some(existing) => {
                let limits = compiled.limits;
                existing
                    .admission
                    .set_limits(&local_limits(&limits, shared))
                    .map_err(invalid)?;
                existing
                    .quotas
                    .set_rules(limits.quota_rules().map_err(invalid)?);
                existing.limits = limits;
            }
            None => {
                channels.insert(channel, compiled);
            }
        }
        Ok(())
    }

    /// Stores `plan` as `channel`'s and follows it from now on (other
    /// nodes on the same store take it up at their next ask for the
    /// channel's bandwidth: `follow_changed_limits`).
    pub async fn put_plan(
        &self,
        channel: ChannelKind,
        plan: &throttle::plan::Plan,
        now: Millis,
    ) -> Result<(), PolicyError> {
        let raw = json_bytes(plan);
        self.store.put_meta(&plan_key(channel), raw.clone()).await?;
        self.follow(channel, plan, now);
        self.lock_followed_plans().insert(channel, raw);
        self.tell_nodes_limits_changed(channel).await;
        Ok(())
    }

    fn lock_followed_plans(&self) -> std::sync::MutexGuard<'_, HashMap<ChannelKind, Vec<u8>>> {
        self.followed_plans
            .lock()
            .unwrap_or_else(std::sync::PoisonError::into_inner)
    }

    /// From now on, sends on `channel` follow `plan` (it is stored already).
    /// What the previous plan counted in this hour and later still counts.
    pub fn follow(&self, channel: ChannelKind, plan: &throttle::plan::Plan, now: Millis) {
        let mut schedules = self.lock_schedules();
        let mut next = Schedule::new(plan);
        if let Some(previous) = schedules.get(&channel) {
            for sent in previous.sent_from(now) {
                next.restore(&sent);
            }
        }
        schedules.insert(channel, next);
    }

    fn lock_schedules(&self) -> std::sync::MutexGuard<'_, HashMap<ChannelKind, Schedule>> {
        self.schedules
            .lock()
            .unwrap_or_else(std::sync::PoisonError::into_inner)
    }

    /// The channel's bandwidth, if it has limits.
    fn rate(&self, channel: ChannelKind) -> Option<f64> {
        self.lock_channels()
            .get(&channel)
            .map(|c| c.limits.rate_per_sec)
    }

    pub fn limits(&self, channel: ChannelKind) -> Option<Limits> {
        self.lock_channels().get(&channel).map(|c| c.limits.clone())
    }

    fn lock_channels(&self) -> std::sync::MutexGuard<'_, HashMap<ChannelKind, ChannelPolicy>> {
        self.channels
            .lock()
            .unwrap_or_else(std::sync::PoisonError::into_inner)
    }

    /// May `p` of `campaign` be sent at `now`? On Go the send is counted in
    /// memory (bandwidth, caps, quota) and the customer's new quota state is
    /// returned for the sender to make durable before it sends.
    pub async fn admit(
        &self,
        campaign: &CampaignRecord,
        p: &Participant,
        now: Millis,
    ) -> Result<Verdict, PolicyError> {
        let channel = campaign.decl.channel;
        let planned = self
            .lock_schedules()
            .get(&channel)
            .and_then(|s| s.check(&campaign.id, now));
        if let Some(until) = planned {
            // The plan holds it back, but never past the campaign's end:
            // then what is left is suppressed, as without a plan.
            let end = campaign
                .decl
                .window
                .as_ref()
                .and_then(|w| instant(&w.end))
                .map(millis);
            return Ok(match end {
                Some(end) if end <= now => Verdict::Suppress {
                    why: "campaign_ended",
                },
                end => Verdict::Defer {
                    reason: "plan",
                    until: end.map_or(until, |end| until.min(end)),
                },
            });
        }
        let Some(shared) = self.store.shared() else {
            return self.admit_counted(campaign, p, now, None);
        };
        // Nodes on one store share the bandwidth and the load caps (a slot
        // and an allowance first, given back if the message does not go)
        // and each customer's quota (decided on the stored state, written
        // only over it).
        self.follow_changed_limits(channel, now).await;
        let Some(rate) = self.rate(channel) else {
            return self.admit_counted(campaign, p, now, None);
        };
        match self.credits.take(shared, channel, rate, now).await? {
            Slot::Taken(_) => {}
            Slot::Wait { until } => {
                return Ok(Verdict::Defer {
                    reason: "rate_limited",
                    until,
                });
            }
        }
        let periods = match self.take_allowances(shared, campaign, rate, now).await? {
            Ok(periods) => periods,
            Err(deferred) => {
                self.credits.give_back(channel, 1);
                return Ok(deferred);
            }
        };
        let over = match self.quota_key(channel, p) {
            Some(key) => {
                let stored = self.store.meta(&key).await?;
                self.import_quota(channel, p, stored.as_deref());
                Some(stored)
            }
            None => None,
        };
        let mut verdict = self.admit_counted(campaign, p, now, over)?;
        match &mut verdict {
            Verdict::Go { taken, .. } => taken.shared = Some(periods),
            _ => {
                self.credits.give_back(channel, 1);
                self.allowances.give_back(&periods);
            }
        }
        Ok(verdict)
    }

    /// Counts a send of `campaign` at `now` in the periods nodes count
    /// together (its channel's load caps applying now, its hour in the
    /// plan): the periods counted in, or the deferral when one is full.
    async fn take_allowances(
        &self,
        shared: &dyn store::Shared,
        campaign: &CampaignRecord,
        rate: f64,
        now: Millis,
    ) -> Result<Result<Vec<String>, Verdict>, PolicyError> {
        let channel = campaign.decl.channel;
        let caps = self.active_caps(channel, now)?;
        let plan_hour = self
            .lock_schedules()
            .get(&channel)
            .and_then(|s| s.hour_of(&campaign.id, now))
            .map(|hour| Counted {
                name: format!("plan:{}:{}:{}", channel.as_str(), campaign.id, hour.start),
                max: hour.allocated,
                ends: hour.start + HOUR_MS,
                full_until: hour.next,
                full_reason: "plan",
            });
        let counted: Vec<Counted> = caps.into_iter().chain(plan_hour).collect();
        if counted.is_empty() {
            return Ok(Ok(Vec::new()));
        }
        let per_ask = credits::slots_per_ask(rate);
        Ok(
            match self.allowances.take(shared, &counted, per_ask, now).await? {
                Allowed::Taken(names) => Ok(names),
                Allowed::Full { until, reason } => Err(Verdict::Defer { reason, until }),
            },
        )
    }

    /// The load caps of `channel` applying at `now`, as periods counted
    /// across nodes (named by the cap's definition and local day).
    fn active_caps(&self, channel: ChannelKind, now: Millis) -> Result<Vec<Counted>, PolicyError> {
        let mut channels = self.lock_channels();
        let Some(policy) = channels.get_mut(&channel) else {
            return Ok(Vec::new());
        };
        let active = policy
            .admission
            .active_caps(timestamp(now))
            .map_err(invalid)?;
        Ok(active
            .into_iter()
            .filter_map(|a| {
                let cap = serde_json::to_string(policy.limits.caps.get(a.cap)?).ok()?;
                let ends = millis(a.ends);
                Some(Counted {
                    name: format!("cap:{}:{}:{cap}", channel.as_str(), a.day),
                    max: a.max,
                    ends,
                    full_until: ends,
                    full_reason: throttle::Deferral::CapReached.as_str(),
                })
            })
            .collect())
    }

    /// How many messages of `channel` may be claimed to go now: on a store
    /// shared with other nodes, the bandwidth's slots this node holds or
    /// gets (so that no claimed message waits for one); else `wanted`.
    pub async fn room(
        &self,
        channel: ChannelKind,
        wanted: usize,
        now: Millis,
    ) -> Result<Room, PolicyError> {
        let Some(shared) = self.store.shared() else {
            return Ok(Room::Go(wanted));
        };
        self.follow_changed_limits(channel, now).await;
        let Some(rate) = self.rate(channel) else {
            return Ok(Room::Go(wanted));
        };
        Ok(
            match self.credits.reserve(shared, channel, rate, now).await? {
                Slot::Taken(held) => Room::Go(wanted.min(held as usize)),
                Slot::Wait { until } => Room::Wait { until },
            },
        )
    }

    /// The meta key of `p`'s quota state on `channel`, if a quota rule
    /// applies to its segment.
    fn quota_key(&self, channel: ChannelKind, p: &Participant) -> Option<String> {
        let channels = self.lock_channels();
        channels
            .get(&channel)?
            .quotas
            .rule_for(p.segment.as_deref())?;
        Some(format!("{}{}", quota_prefix(channel), p.customer))
    }

    /// Makes the quota state of a send of `p` durable before it goes:
    /// `true` once written, `false` when another node counted a send of
    /// the customer since the state was read (the message is decided
    /// again). A send whose state is not written does not go: a write
    /// that fails forgets it here too, lest it hold back or suppress the
    /// customer's next message, and what it took of the shared bandwidth
    /// and caps (`taken`) is given back.
    pub async fn make_quota_durable(
        &self,
        p: &Participant,
        quota: &QuotaWrite,
        taken: &Taken,
    ) -> Result<bool, StoreError> {
        let written = match &quota.over {
            Some(over) => {
                let state = quota.state.clone();
                self.store
                    .put_meta_if(&quota.key, over.as_deref(), state)
                    .await
            }
            None => (self.store.put_meta(&quota.key, quota.state.clone()).await).map(|()| true),
        };
        if !matches!(written, Ok(true)) {
            self.give_back_counts(taken);
        }
        if written.is_err() {
            self.forget_quota(taken.channel, p, quota.counted_at);
        }
        written
    }

    /// Gives back what a Go counted whose message did not go after all,
    /// `quota` its quota send. Once `durable`, the customer's state is
    /// written again without the send (on a shared store only over the
    /// state written: if another node counted a send of the customer
    /// since, the send stays counted, which can only hold the customer
    /// back, never over-send).
    pub async fn give_back(
        &self,
        p: &Participant,
        taken: &Taken,
        quota: Option<&QuotaWrite>,
        durable: bool,
    ) -> Result<(), StoreError> {
        self.give_back_counts(taken);
        let Some(written) = quota else {
            return Ok(());
        };
        self.forget_quota(taken.channel, p, written.counted_at);
        if !durable {
            return Ok(());
        }
        let customer = CustomerKey::of(&p.customer);
        let left = self
            .lock_channels()
            .get(&taken.channel)
            .and_then(|policy| policy.quotas.export(customer))
            .unwrap_or(QuotaState { sends: Vec::new() })
            .to_bytes();
        if written.over.is_some() {
            self.store
                .put_meta_if(&written.key, Some(&written.state), left)
                .await
                .map(drop)
        } else {
            self.store.put_meta(&written.key, left).await
        }
    }

    /// The counts of `taken` in memory and, on a shared store, there.
    fn give_back_counts(&self, taken: &Taken) {
        if let Some(periods) = &taken.shared {
            self.credits.give_back(taken.channel, 1);
            self.allowances.give_back(periods);
        }
        if let Some(schedule) = self.lock_schedules().get_mut(&taken.channel) {
            schedule.uncount(&taken.campaign, taken.at);
        }
        if let Some(policy) = self.lock_channels().get_mut(&taken.channel)
            && let Err(e) = policy.admission.unrecord_caps(timestamp(taken.at))
        {
            tracing::warn!(error = %e, "a send's place in the caps not given back");
        }
    }

    /// Forgets the send of `p` counted at `at` in the quota book, if a
    /// quota rule counted it.
    fn forget_quota(&self, channel: ChannelKind, p: &Participant, at: Millis) {
        if self.quota_key(channel, p).is_none() {
            return;
        }
        if let Some(policy) = self.lock_channels().get_mut(&channel) {
            policy
                .quotas
                .forget(CustomerKey::of(&p.customer), timestamp(at));
        }
    }

    /// Takes the stored quota state of `p` as this node's: a send this
    /// node counted whose quota write did not land (another node's came
    /// first, or the store failed) did not happen, and must not count.
    fn import_quota(&self, channel: ChannelKind, p: &Participant, stored: Option<&[u8]>) {
        let state = stored.and_then(|raw| QuotaState::from_bytes(raw).ok());
        if let Some(policy) = self.lock_channels().get_mut(&channel) {
            policy
                .quotas
                .replace(CustomerKey::of(&p.customer), state.as_ref());
        }
    }

    /// [`admit_now`](Self::admit_now), counted in the plan on Go; a quota
    /// write is made conditional on `over` when given.
    fn admit_counted(
        &self,
        campaign: &CampaignRecord,
        p: &Participant,
        now: Millis,
        over: Option<Option<Vec<u8>>>,
    ) -> Result<Verdict, PolicyError> {
        let channel = campaign.decl.channel;
        let mut verdict = self.admit_now(campaign, p, timestamp(now))?;
        if let Verdict::Go { quota: Some(q), .. } = &mut verdict {
            q.over = over;
        }
        if let Verdict::Go { .. } = verdict
            && let Some(schedule) = self.lock_schedules().get_mut(&channel)
        {
            schedule.count(&campaign.id, now);
        }
        Ok(verdict)
    }

    /// The channel's limits and the campaign's window (the plan aside).
    fn admit_now(
        &self,
        campaign: &CampaignRecord,
        p: &Participant,
        at: Timestamp,
    ) -> Result<Verdict, PolicyError> {
        let channel = campaign.decl.channel;
        let (decision, quota) = {
            let mut windows = self
                .windows
                .lock()
                .unwrap_or_else(std::sync::PoisonError::into_inner);
            let window = match windows.get_mut(&campaign.seq) {
                Some(w) => w,
                None => windows.entry(campaign.seq).or_insert(window_of(campaign)?),
            };
            let mut channels = self.lock_channels();
            let Some(policy) = channels.get_mut(&channel) else {
                // No limits on this channel: only the campaign's window applies.
                return Ok(match window.check(at).map_err(invalid)? {
                    Opening::Open { .. } => Verdict::Go {
                        quota: None,
                        taken: Taken::at(campaign, at),
                    },
                    Opening::Closed { opens: Some(next) } => Verdict::Defer {
                        reason: "outside_window",
                        until: millis(next),
                    },
                    Opening::Closed { opens: None } => Verdict::Suppress {
                        why: "campaign_ended",
                    },
                });
            };
            let customer = CustomerKey::of(&p.customer);
            let request = Request {
                customer,
                segment: p.segment.as_deref(),
            };
            let decision = policy
                .admission
                .admit(at, window, &request, &mut policy.quotas)
                .map_err(invalid)?;
            let quota = match decision {
                Decision::Go => policy.quotas.export(customer).map(|s| s.to_bytes()),
                _ => None,
            };
            (decision, quota)
        };
        Ok(match decision {
            Decision::Go => Verdict::Go {
                quota: quota.map(|state| QuotaWrite {
                    key: format!("{}{}", quota_prefix(channel), p.customer),
                    state,
                    over: None,
                    counted_at: millis(at),
                }),
                taken: Taken::at(campaign, at),
            },
            Decision::Defer { reason, retry_at } => Verdict::Defer {
                reason: reason.as_str(),
                until: millis(retry_at),
            },
            Decision::Suppress(why) => Verdict::Suppress { why: why.as_str() },
        })
    }
}

impl Taken {
    /// A send of `campaign` counted at `at` (on this node only, so far).
    fn at(campaign: &CampaignRecord, at: Timestamp) -> Self {
        Self {
            channel: campaign.decl.channel,
            campaign: campaign.id.clone(),
            at: millis(at),
            shared: None,
        }
    }
}

/// A channel's plan as stored.
fn stored_plan(channel: ChannelKind, raw: &[u8]) -> Result<throttle::plan::Plan, PolicyError> {
    serde_json::from_slice(raw).map_err(|e| {
        PolicyError::Invalid(vec![format!("stored plan of {}: {e}", channel.as_str())])
    })
}

/// Counters persisted under `key`; none (and a warning) if they do not
/// parse, as a lost checkpoint would leave them.
fn stored_counters<T: serde::de::DeserializeOwned + Default>(key: &str, raw: &[u8]) -> T {
    serde_json::from_slice(raw).unwrap_or_else(|e| {
        tracing::warn!(key, error = %e, "stored counters unreadable; counting from zero");
        T::default()
    })
}

fn json_bytes<T: Serialize>(value: &T) -> Vec<u8> {
    // Plain structs of strings, dates and numbers always serialize.
    serde_json::to_vec(value).unwrap_or_default()
}

fn invalid(e: throttle::Error) -> PolicyError {
    match e {
        throttle::Error::Invalid(problems) => PolicyError::Invalid(
            problems
                .iter()
                .map(|p| format!("{}: {}", p.field, p.message))
                .collect(),
        ),
        other => PolicyError::Invalid(vec![other.to_string()]),
    }
}

/// The limits this node's admission applies: on a store shared with other
/// nodes the bandwidth is the store's (`credits`), so not limited here.
fn local_limits(limits: &Limits, shared: bool) -> std::borrow::Cow<'_, Limits> {
    if !shared {
        return std::borrow::Cow::Borrowed(limits);
    }
    std::borrow::Cow::Owned(Limits {
        rate_per_sec: 1e9,
        // A claim's messages are admitted at one instant.
        burst: Some(i64::from(u32::MAX)),
        ..limits.clone()
    })
}

fn compile(limits: &Limits, now: Millis, shared: bool) -> Result<ChannelPolicy, PolicyError> {
    let admission = Admission::new(&local_limits(limits, shared)).map_err(invalid)?;
    let quotas = QuotaBook::new(limits.quota_rules().map_err(invalid)?, timestamp(now));
    Ok(ChannelPolicy {
        limits: limits.clone(),
        admission,
        quotas,
    })
}

/// A campaign's window: weekdays and hours in its time zone, start and end.
fn window_of(campaign: &CampaignRecord) -> Result<Window, PolicyError> {
    let Some(w) = &campaign.decl.window else {
        return Ok(Window::always());
    };
    Window::new(&window_spec(w), instant(&w.start), instant(&w.end)).map_err(invalid)
}

/// A window's `start` or `end` as an instant (validated when declared).
fn instant(declared: &Option<String>) -> Option<Timestamp> {
    declared.as_deref().and_then(|s| s.parse().ok())
}

/// The weekly template of a declared window, as the throttle crate reads it
/// (no time zone means UTC; no days or hours mean all). Declarations are
/// validated with the same spec they are later compiled from.
pub fn window_spec(w: &domain::Window) -> WindowSpec {
    WindowSpec {
        tz: w.tz.clone().unwrap_or_else(|| "UTC".into()),
        days: (!w.weekdays.is_empty()).then(|| w.weekdays.clone()),
        hours: (!w.hours.is_empty()).then(|| w.hours.clone()),
    }
}

/// The longest planning horizon: 90 days.
const MAX_HORIZON_HOURS: u32 = 90 * 24;

impl Policy {
    /// Plans every declared, running or paused campaign of `channel` (or only
    /// `only`, if given) against the channel's limits, from the current hour
    /// to the last campaign end (at least a day, at most 90 days).
    pub fn plan(
        &self,
        channel: ChannelKind,
        campaigns: &[(CampaignRecord, u64)],
        only: Option<&[String]>,
        now: Millis,
    ) -> Result<throttle::plan::Plan, PolicyError> {
        use domain::CampaignState;
        let limits = self.limits(channel).ok_or_else(|| {
            PolicyError::Invalid(vec![format!(
                "set the limits of {} before planning",
                channel.as_str()
            )])
        })?;
        if let Some(ids) = only {
            let unknown: Vec<String> = ids
                .iter()
                .filter(|id| {
                    !campaigns
                        .iter()
                        .any(|(c, _)| &c.id == *id && c.decl.channel == channel)
                })
                .map(|id| format!("campaigns: no {} campaign `{id}`", channel.as_str()))
                .collect();
            if !unknown.is_empty() {
                return Err(PolicyError::Invalid(unknown));
            }
        }
        // The plan's hours start with the current one, which counts only
        // its seconds from now on: the past ones cannot carry a message.
        let from = timestamp(now);
        let first_hour = timestamp(now - now % 3_600_000);
        let hours_on = |n: u32| first_hour + throttle::jiff::SignedDuration::from_hours(n.into());
        let horizon_end = hours_on(MAX_HORIZON_HOURS);
        let mut planned = Vec::new();
        let mut last_end = hours_on(24);
        for (c, pending) in campaigns {
            let included = only.is_none_or(|ids| ids.contains(&c.id));
            let active = matches!(
                c.state,
                CampaignState::Declared | CampaignState::Running | CampaignState::Paused
            );
            if c.decl.channel != channel || !included || !active {
                continue;
            }
            let w = c.decl.window.as_ref();
            let start = w.and_then(|w| instant(&w.start)).unwrap_or(from).max(from);
            let end = w
                .and_then(|w| instant(&w.end))
                .unwrap_or(horizon_end)
                .min(horizon_end);
            // Its window is over, or opens past the horizon: nothing of it
            // can be planned, and it must not refuse the others' plan.
            if end <= start {
                continue;
            }
            last_end = last_end.max(end);
            let participants = if c.state == CampaignState::Declared {
                c.decl.expected_participants.max(*pending)
            } else {
                *pending
            };
            planned.push(throttle::plan::PlannedCampaign {
                id: c.id.clone(),
                participants,
                window: w.map(window_spec).unwrap_or_else(|| WindowSpec {
                    tz: "UTC".into(),
                    days: None,
                    hours: None,
                }),

                priority: c.decl.priority.unwrap_or(0),
                start,
                end,
                after: None,
            });
        }
        let hours = (last_end.as_second() - first_hour.as_second())
            .max(0)
            .unsigned_abs()
            .div_ceil(3600);
        let horizon_hours = u32::try_from(hours)
            .unwrap_or(MAX_HORIZON_HOURS)
            .clamp(1, MAX_HORIZON_HOURS);
        let request = throttle::plan::PlanRequest {
            limits,
            campaigns: planned,
            from,
            horizon_hours,
        };
        throttle::plan::plan(&request).map_err(invalid)
    }
}

#[cfg(test)]
mod tests;
