//! The embedded engine: fjall as the durable log, an in-memory index for
//! claims and queries. One committer thread takes every write queued since
//! its last fsync and commits them as one batch, so callers share the cost of
//! durability (group commit) and memory changes only once a write is durable.

use std::{
    collections::{HashMap, HashSet},
    path::Path,
    sync::{
        Arc, Mutex, MutexGuard,
        atomic::{AtomicBool, AtomicU64, Ordering},
    },
    thread,
};

use domain::{
    CampaignDecl, CampaignRecord, CampaignState, ChannelKind, Engaged, Fact, FactDetail, FactKind,
    MessageNo, MessageState, Millis, Outcome, Participant, ReceiptIn, ReceiptMatch, Status,
    SuppressReason, Update,
};
use fjall::{Database, Keyspace, KeyspaceCreateOptions, PersistMode};
use rules::{self, PartReceipt};
use tokio::sync::{mpsc, oneshot};

use super::{
    Result, Store, StoreError, codec,
    index::CampaignIndex,
    upstream::{self, Link},
};

/// Writes taken into one commit at most.
const MAX_GROUP: usize = 512;
/// Facts stored per record: a commit's facts are written as runs of
/// consecutive cursors (key = first cursor), which halves the records an
/// upload writes compared with one record per fact.
const FACT_RUN: usize = 4096;

#[derive(Clone)]
struct Keyspaces {
    campaigns: Keyspace,
    participants: Keyspace,
    status: Keyspace,
    facts: Keyspace,
    meta: Keyspace,
    suppressions: Keyspace,
    /// Per message, the `Engagement::bit`s recorded.
    engagement: Keyspace,
    /// SMSC message ids → our messages (see `upstream`).
    upstream: Keyspace,
}

#[derive(Default)]
struct Index {
    campaigns: HashMap<String, CampaignIndex>,
    /// `channel\0address` (address lowercased) → why.
    suppressed: HashMap<String, SuppressReason>,
    ids: HashMap<u32, String>,
    next_campaign: u32,
}

impl Index {
    fn by_seq(&mut self, seq: u32) -> Option<&mut CampaignIndex> {
        let id = self.ids.get(&seq)?;
        self.campaigns.get_mut(id)
    }
}

struct Shared {
    index: Mutex<Index>,
    /// Highest fact cursor that is durable; the feed never reads past it.
    durable_cursor: AtomicU64,
    healthy: AtomicBool,
    ks: Keyspaces,
}

impl Shared {
    fn index(&self) -> MutexGuard<'_, Index> {
        // A panic while holding the lock would be a bug; keep serving reads.
        self.index
            .lock()
            .unwrap_or_else(std::sync::PoisonError::into_inner)
    }
}

/// The default store: a data directory, no external service.
pub struct Embedded {
    shared: Arc<Shared>,
    ops: mpsc::Sender<Op>,
}

impl Embedded {
    /// Opens (or creates) the store in `dir` and rebuilds the index.
    pub fn open(dir: &Path) -> Result<Self> {
        let db = Database::builder(dir)
            .manual_journal_persist(true)
            .open()
            .map_err(|e| StoreError::Unavailable(format!("opening {}: {e}", dir.display())))?;
        let open = |name: &str| {
            db.keyspace(name, KeyspaceCreateOptions::default)
                .map_err(|e| StoreError::Unavailable(format!("opening keyspace {name}: {e}")))
        };
        let ks = Keyspaces {
            campaigns: open("campaigns")?,
            participants: open("participants")?,
            status: open("status")?,
            facts: open("facts")?,
            meta: open("meta")?,
            suppressions: open("suppressions")?,
            engagement: open("engagement")?,
            upstream: open("upstream")?,
        };
        let (index, last_cursor) = recover(&ks).map_err(|e| e.found_in(dir))?;
        let shared = Arc::new(Shared {
            index: Mutex::new(index),
            durable_cursor: AtomicU64::new(last_cursor),
            healthy: AtomicBool::new(true),
            ks,
        });
        let (ops, rx) = mpsc::channel(4 * MAX_GROUP);
        let committer = Committer {
            db,
            shared: shared.clone(),
            next_cursor: last_cursor + 1,
        };
        thread::Builder::new()
            .name("store-commit".into())
            .spawn(move || committer.run(rx))
            .map_err(|e| StoreError::Unavailable(format!("starting the committer: {e}")))?;
        Ok(Self { shared, ops })
    }

    async fn submit<T>(&self, make: impl FnOnce(oneshot::Sender<Result<T>>) -> Op) -> Result<T> {
        if !self.healthy() {
            return Err(StoreError::Unavailable("an earlier commit failed".into()));
        }
        let (tx, rx) = oneshot::channel();
        self.ops
            .send(make(tx))
            .await
            .map_err(|_| StoreError::Unavailable("committer stopped".into()))?;
        rx.await
            .map_err(|_| StoreError::Unavailable("committer stopped".into()))?
    }
}

/// Reads everything back after a restart. Leases are not persisted: every
/// message not settled is due again (at-least-once).
fn recover(ks: &Keyspaces) -> Result<(Index, u64)> {
    let mut index = Index::default();
    for kv in ks.campaigns.iter() {
        let value = kv.value().map_err(io)?;
        let record: CampaignRecord = codec::decode(&value)?;
        index.next_campaign = index.next_campaign.max(record.seq + 1);
        index.ids.insert(record.seq, record.id.clone());
        index
            .campaigns
            .insert(record.id.clone(), CampaignIndex::new(record));
    }
    for kv in ks.participants.iter() {
        let (key, value) = kv.into_inner().map_err(io)?;
        let msg = codec::parse_message_key(&key)?;
        let p: Participant = codec::decode(&value)?;
        if let Some(c) = index.by_seq(msg.campaign) {
            c.push(p.customer.into(), p.address.into(), 0);
        }
    }
    for kv in ks.status.iter() {
        let (key, value) = kv.into_inner().map_err(io)?;
        let msg = codec::parse_message_key(&key)?;
        let s: MessageState = codec::decode(&value)?;
        if let Some(c) = index.by_seq(msg.campaign) {
            c.set(msg.participant, s.status, s.attempts, s.due, s.at);
        }
    }
    for kv in ks.engagement.iter() {
        let (key, value) = kv.into_inner().map_err(io)?;
        let msg = codec::parse_message_key(&key)?;
        if let Some(slot) = index
            .by_seq(msg.campaign)
            .and_then(|c| c.slots.get_mut(msg.participant as usize))
        {
            slot.engaged = value.first().copied().unwrap_or(0);
        }
    }
    for kv in ks.suppressions.iter() {
        let (key, value) = kv.into_inner().map_err(io)?;
        index.suppressed.insert(
            String::from_utf8_lossy(&key).into_owned(),
            SuppressReason::parse(&String::from_utf8_lossy(&value)),
        );
    }
    let last_cursor = match ks.facts.last_key_value() {
        Some(kv) => {
            let run: Vec<Fact> = codec::decode(&kv.value().map_err(io)?)?;
            run.last().map_or(0, |e| e.cursor)
        }
        None => 0,
    };
    Ok((index, last_cursor))
}

fn io(e: fjall::Error) -> StoreError {
    StoreError::Unavailable(e.to_string())
}

enum Op {
    PutCampaign {
        id: String,
        decl: Box<CampaignDecl>,
        reply: oneshot::Sender<Result<CampaignRecord>>,
    },
    SetState {
        id: String,
        state: CampaignState,
        reply: oneshot::Sender<Result<CampaignRecord>>,
    },
    Add {
        id: String,
        items: Vec<Participant>,
        at: Millis,
        reply: oneshot::Sender<Result<Vec<bool>>>,
    },
    Record {
        updates: Vec<Update>,
        reply: oneshot::Sender<Result<()>>,
    },
    Meta {
        key: String,
        value: Vec<u8>,
        reply: oneshot::Sender<Result<()>>,
    },
    Suppress {
        keys: Vec<String>,
        why: SuppressReason,
        reply: oneshot::Sender<Result<()>>,
    },
    Unsuppress {
        key: String,
        reply: oneshot::Sender<Result<()>>,
    },
    Engage {
        items: Vec<Engaged>,
        reply: oneshot::Sender<Result<()>>,
    },
    Receipts {
        items: Vec<ReceiptIn>,
        reply: oneshot::Sender<Result<Vec<ReceiptMatch>>>,
    },
}

/// A memory change to make once its commit is durable.
enum Effect {
    Campaign(Box<CampaignRecord>),
    Participant {
        campaign: u32,
        customer: Box<str>,
        address: Box<str>,
        at: Millis,
    },
    Status {
        msg: MessageNo,
        record: MessageState,
    },
    Suppressed {
        key: String,
        why: SuppressReason,
    },
    Unsuppressed {
        key: String,
    },
    Engaged {
        msg: MessageNo,
        flags: u8,
    },
}

/// A caller to answer once its commit is durable.
enum Answer {
    Campaign(oneshot::Sender<Result<CampaignRecord>>, Box<CampaignRecord>),
    Added(oneshot::Sender<Result<Vec<bool>>>, Vec<bool>),
    Matched(
        oneshot::Sender<Result<Vec<ReceiptMatch>>>,
        Vec<ReceiptMatch>,
    ),
    Done(oneshot::Sender<Result<()>>),
}

impl Answer {
    /// Answers the caller; `failure` says the commit did not happen. A caller
    /// that went away no longer needs its answer, so send errors are ignored.
    fn send(self, failure: Option<&str>) {
        fn outcome<T>(value: T, failure: Option<&str>) -> Result<T> {
            match failure {
                None => Ok(value),
                Some(reason) => Err(StoreError::Unavailable(reason.to_owned())),
            }
        }
        match self {
            Self::Campaign(tx, record) => drop(tx.send(outcome(*record, failure))),
            Self::Added(tx, fresh) => drop(tx.send(outcome(fresh, failure))),
            Self::Matched(tx, matches) => drop(tx.send(outcome(matches, failure))),
            Self::Done(tx) => drop(tx.send(outcome((), failure))),
        }
    }
}

struct Committer {
    db: Database,
    shared: Arc<Shared>,
    next_cursor: u64,
}

/// One commit being assembled.
struct Group {
    batch: fjall::OwnedWriteBatch,
    effects: Vec<Effect>,
    answers: Vec<Answer>,
    /// Customers added in this group, per campaign, not yet in the index.
    staged: HashMap<u32, HashSet<String, foldhash::fast::RandomState>>,
    /// Facts not yet written, consecutive cursors.
    facts: Vec<Fact>,
    /// Upstream keys written (Some) or removed (None) in this group.
    upstream: HashMap<Vec<u8>, Option<Vec<u8>>, foldhash::fast::RandomState>,
    /// Statuses recorded in this group, not yet in the index.
    statuses: HashMap<MessageNo, Status, foldhash::fast::RandomState>,
    /// Engagement flags set in this group, written once per message.
    engaged: HashMap<MessageNo, u8, foldhash::fast::RandomState>,
}

impl Committer {
    fn run(mut self, mut rx: mpsc::Receiver<Op>) {
        while let Some(first) = rx.blocking_recv() {
            let mut ops = vec![first];
            while ops.len() < MAX_GROUP {
                match rx.try_recv() {
                    Ok(op) => ops.push(op),
                    Err(_) => break,
                }
            }
            self.commit_group(ops);
        }
    }

    fn commit_group(&mut self, ops: Vec<Op>) {
        let mut group = Group {
            batch: self.db.batch().durability(None),
            effects: Vec::new(),
            answers: Vec::new(),
            staged: HashMap::new(),
            facts: Vec::new(),
            upstream: HashMap::default(),
            statuses: HashMap::default(),
            engaged: HashMap::default(),
        };
        let first_cursor = self.next_cursor;
        {
            let shared = self.shared.clone();
            let mut index = shared.index();
            for op in ops {
                self.plan(op, &mut index, &mut group);
            }
        }
        self.write_facts(&mut group);
        for (msg, flags) in std::mem::take(&mut group.engaged) {
            group.batch.insert(
                &self.shared.ks.engagement,
                codec::message_key(msg),
                vec![flags],
            );
            group.effects.push(Effect::Engaged { msg, flags });
        }
        let written = if group.batch.is_empty() {
            Ok(())
        } else {
            group
                .batch
                .commit()
                .and_then(|()| self.db.persist(PersistMode::SyncData))
        };
        match written {
            Ok(()) => {
                let mut index = self.shared.index();
                for effect in group.effects {
                    apply(&mut index, effect);
                }
                drop(index);
                self.shared
                    .durable_cursor
                    .store(self.next_cursor - 1, Ordering::Release);
                for answer in group.answers {
                    answer.send(None);
                }
            }
            Err(e) => {
                tracing::error!(error = %e, "store commit failed; refusing further writes");
                self.shared.healthy.store(false, Ordering::Release);
                self.next_cursor = first_cursor;
                let reason = format!("commit failed: {e}");
                for answer in group.answers {
                    answer.send(Some(&reason));
                }
            }
        }
    }

    fn plan(&mut self, op: Op, index: &mut Index, g: &mut Group) {
        let ks = self.shared.ks.clone();
        match op {
            Op::PutCampaign { id, decl, reply } => {
                let record = match index.campaigns.get(&id) {
                    Some(c) => CampaignRecord {
                        decl: *decl,
                        ..c.record.clone()
                    },
                    None => {
                        let seq = index.next_campaign;
                        index.next_campaign += 1;
                        index.ids.insert(seq, id.clone());
                        index.campaigns.insert(
                            id.clone(),
                            CampaignIndex::new(CampaignRecord {
                                id: id.clone(),
                                seq,
                                state: CampaignState::Declared,
                                decl: (*decl).clone(),
                            }),
                        );
                        CampaignRecord {
                            id,
                            seq,
                            state: CampaignState::Declared,
                            decl: *decl,
                        }
                    }
                };
                g.batch
                    .insert(&ks.campaigns, record.id.as_str(), codec::encode(&record));
                g.effects.push(Effect::Campaign(Box::new(record.clone())));
                g.answers.push(Answer::Campaign(reply, Box::new(record)));
            }
            Op::SetState { id, state, reply } => {
                let Some(c) = index.campaigns.get(&id) else {
                    let _ = reply.send(Err(StoreError::UnknownCampaign(id)));
                    return;
                };
                let record = CampaignRecord {
                    state,
                    ..c.record.clone()
                };
                g.batch
                    .insert(&ks.campaigns, record.id.as_str(), codec::encode(&record));
                g.effects.push(Effect::Campaign(Box::new(record.clone())));
                g.answers.push(Answer::Campaign(reply, Box::new(record)));
            }
            Op::Add {
                id,
                items,
                at,
                reply,
            } => {
                let Some(c) = index.campaigns.get_mut(&id) else {
                    let _ = reply.send(Err(StoreError::UnknownCampaign(id)));
                    return;
                };
                let seq = c.record.seq;
                let mut staged = std::mem::take(g.staged.entry(seq).or_default());
                let mut fresh = Vec::with_capacity(items.len());
                for p in items {
                    let new = !c.by_customer.contains_key(p.customer.as_str())
                        && staged.insert(p.customer.clone());
                    fresh.push(new);
                    if !new {
                        continue;
                    }
                    let msg = MessageNo {
                        campaign: seq,
                        participant: c.allocated,
                    };
                    c.allocated += 1;
                    g.batch
                        .insert(&ks.participants, codec::message_key(msg), codec::encode(&p));
                    self.append_fact(
                        g,
                        fact(
                            at,
                            &id,
                            &p.customer,
                            FactKind::Accepted,
                            FactDetail::default(),
                        ),
                    );
                    g.effects.push(Effect::Participant {
                        campaign: seq,
                        customer: p.customer.into(),
                        address: p.address.into(),
                        at,
                    });
                }
                g.staged.insert(seq, staged);
                g.answers.push(Answer::Added(reply, fresh));
            }
            Op::Record { updates, reply } => {
                for u in updates {
                    if let Outcome::Submitted {
                        upstream: Some(up), ..
                    } = &u.outcome
                    {
                        let parts = u8::try_from(up.ids.len()).unwrap_or(u8::MAX);
                        for (part, id) in up.ids.iter().enumerate() {
                            let link = Link {
                                msg: u.msg,
                                part: u8::try_from(part).unwrap_or(u8::MAX),
                                parts,
                            };
                            let value = upstream::encode_link(link);
                            self.put_upstream(g, upstream::id_key(up.smsc, id), Some(value));
                        }
                    }
                    self.record_update(index, g, u);
                }
                g.answers.push(Answer::Done(reply));
            }
            Op::Receipts { items, reply } => {
                let matches = items
                    .into_iter()
                    .map(|r| self.receipt(index, g, r))
                    .collect();
                g.answers.push(Answer::Matched(reply, matches));
            }
            Op::Engage { items, reply } => {
                for e in items {
                    let Some(c) = index.by_seq(e.msg.campaign) else {
                        continue;
                    };
                    let Some(slot) = c.slots.get(e.msg.participant as usize) else {
                        continue;
                    };
                    let flags = g.engaged.get(&e.msg).copied().unwrap_or(slot.engaged);
                    g.engaged.insert(e.msg, flags | e.kind.bit());
                    let suppress = rules::engaged(e.kind)
                        .map(|why| (suppression_key(c.record.decl.channel, &slot.address), why));
                    let fact = fact(
                        e.at,
                        &c.record.id,
                        &slot.customer,
                        FactKind::Engaged(e.kind),
                        e.detail,
                    );
                    self.append_fact(g, fact);
                    if let Some((key, why)) = suppress {
                        self.put_suppression(g, key, why);
                    }
                }
                g.answers.push(Answer::Done(reply));
            }
            Op::Suppress { keys, why, reply } => {
                for key in keys {
                    self.put_suppression(g, key, why);
                }
                g.answers.push(Answer::Done(reply));
            }
            Op::Unsuppress { key, reply } => {
                g.batch.remove(&ks.suppressions, key.as_str());
                g.effects.push(Effect::Unsuppressed { key });
                g.answers.push(Answer::Done(reply));
            }
            Op::Meta { key, value, reply } => {
                g.batch.insert(&ks.meta, key.as_str(), value);
                g.answers.push(Answer::Done(reply));
            }
        }
    }

    /// Writes the rules' decision on an outcome with its fact: the
    /// message's new status and, where the rules say so, the address's
    /// suppression, in the same batch.
    fn record_update(&mut self, index: &mut Index, g: &mut Group, u: Update) {
        let Some(c) = index.by_seq(u.msg.campaign) else {
            return;
        };
        let Some(slot) = c.slots.get(u.msg.participant as usize) else {
            return;
        };
        let before = MessageState {
            status: slot.status,
            attempts: slot.attempts,
            due: slot.due,
            at: slot.at,
        };
        let decision = rules::settle(before, u.at, u.outcome);
        let record = decision.state;
        let fact = fact(
            u.at,
            &c.record.id,
            &slot.customer,
            decision.fact,
            decision.detail,
        );
        let suppress = decision
            .suppress
            .map(|why| (suppression_key(c.record.decl.channel, &slot.address), why));
        g.batch.insert(
            &self.shared.ks.status,
            codec::message_key(u.msg),
            codec::encode(&record),
        );
        self.append_fact(g, fact);
        if let Some((key, why)) = suppress {
            self.put_suppression(g, key, why);
        }
        g.statuses.insert(u.msg, record.status);
        g.effects.push(Effect::Status { msg: u.msg, record });
    }

    fn put_suppression(&self, g: &mut Group, key: String, why: SuppressReason) {
        g.batch
            .insert(&self.shared.ks.suppressions, key.as_str(), why.as_str());
        g.effects.push(Effect::Suppressed { key, why });
    }

    /// Settles one receipt: finds its message by any reading of the id, and
    /// once every part is delivered (or one failed) records the outcome of a
    /// message still waiting for it.
    fn receipt(&mut self, index: &mut Index, g: &mut Group, r: ReceiptIn) -> ReceiptMatch {
        let found = upstream::lookup_keys(r.smsc, &r.id).find_map(|key| {
            let link = upstream::decode_link(&self.upstream_value(g, &key)?)?;
            Some((key, link))
        });
        let Some((key, link)) = found else {
            return ReceiptMatch::Unknown(Box::new(r));
        };
        // An intermediate state (en route, accepted) changes nothing.
        let Some(delivered) = r.delivered else {
            return ReceiptMatch::Matched;
        };
        self.put_upstream(g, key, None);
        let progress = upstream::progress_key(link.msg);
        let waiting = if link.parts > 1 {
            self.upstream_value(g, &progress)
                .and_then(|v| v.first().copied())
        } else {
            None
        };
        let delivered = match rules::part_receipt(link.parts, waiting, delivered) {
            PartReceipt::AlreadySettled => return ReceiptMatch::Matched,
            PartReceipt::Wait { left } => {
                self.put_upstream(g, progress, Some(vec![left]));
                return ReceiptMatch::Matched;
            }
            PartReceipt::Settle { delivered } => delivered,
        };
        if link.parts > 1 {
            // A failed part marks the message settled (0 left) against
            // later receipts of its other parts.
            self.put_upstream(g, progress, (!delivered).then(|| vec![0]));
        }
        let status = g.statuses.get(&link.msg).copied().or_else(|| {
            index
                .by_seq(link.msg.campaign)
                .and_then(|c| c.slots.get(link.msg.participant as usize))
                .map(|s| s.status)
        });
        if status.is_some_and(rules::receipt_settles) {
            let outcome = Outcome::Receipt {
                delivered,
                detail: r.detail,
            };
            self.record_update(
                index,
                g,
                Update {
                    msg: link.msg,
                    at: r.at,
                    outcome,
                },
            );
        }
        ReceiptMatch::Matched
    }

    fn upstream_value(&self, g: &Group, key: &[u8]) -> Option<Vec<u8>> {
        match g.upstream.get(key) {
            Some(staged) => staged.clone(),
            None => match self.shared.ks.upstream.get(key) {
                Ok(v) => v.map(|v| v.to_vec()),
                Err(e) => {
                    tracing::error!(error = %e, "reading an upstream id");
                    None
                }
            },
        }
    }

    fn put_upstream(&self, g: &mut Group, key: Vec<u8>, value: Option<Vec<u8>>) {
        let ks = &self.shared.ks.upstream;
        match &value {
            Some(v) => g.batch.insert(ks, key.as_slice(), v.as_slice()),
            None => g.batch.remove(ks, key.as_slice()),
        }
        g.upstream.insert(key, value);
    }

    fn append_fact(&mut self, g: &mut Group, mut fact: Fact) {
        fact.cursor = self.next_cursor;
        self.next_cursor += 1;
        g.facts.push(fact);
        if g.facts.len() >= FACT_RUN {
            self.write_facts(g);
        }
    }

    fn write_facts(&self, g: &mut Group) {
        if let Some(first) = g.facts.first().map(|f| f.cursor) {
            let run = codec::encode(&g.facts);
            g.batch
                .insert(&self.shared.ks.facts, codec::cursor_key(first), run);
            g.facts.clear();
        }
    }
}

fn fact(at: Millis, campaign: &str, customer: &str, kind: FactKind, detail: FactDetail) -> Fact {
    Fact {
        cursor: 0,
        at,
        campaign: campaign.to_owned(),
        customer: customer.to_owned(),
        kind,
        detail,
    }
}

fn apply(index: &mut Index, effect: Effect) {
    match effect {
        Effect::Suppressed { key, why } => {
            index.suppressed.insert(key, why);
        }
        Effect::Unsuppressed { key } => {
            index.suppressed.remove(&key);
        }
        Effect::Engaged { msg, flags } => {
            if let Some(slot) = index
                .by_seq(msg.campaign)
                .and_then(|c| c.slots.get_mut(msg.participant as usize))
            {
                slot.engaged = flags;
            }
        }
        Effect::Campaign(record) => {
            if let Some(c) = index.campaigns.get_mut(&record.id) {
                c.record = *record;
            }
        }
        Effect::Participant {
            campaign,
            customer,
            address,
            at,
        } => {
            if let Some(c) = index.by_seq(campaign) {
                c.push(customer, address, at);
            }
        }
        Effect::Status { msg, record } => {
            if let Some(c) = index.by_seq(msg.campaign) {
                c.set(
                    msg.participant,
                    record.status,
                    record.attempts,
                    record.due,
                    record.at,
                );
            }
        }
    }
}

fn suppression_key(channel: ChannelKind, address: &str) -> String {
    format!("{}\0{}", channel.as_str(), address.to_lowercase())
}

/// Which statuses an audience outcome selects, per channel.
fn audience_statuses(channel: ChannelKind, outcome: &str) -> &'static [Status] {
    match (outcome, channel) {
        // E-mail has no delivery receipt: a relay's acceptance is the best
        // knowledge until a bounce says otherwise.
        ("delivered", ChannelKind::Email) => &[Status::Submitted, Status::Delivered],
        ("delivered", ChannelKind::Sms) => &[Status::Delivered],
        ("pending", _) => &[Status::Pending],
        ("submitted", _) => &[Status::Submitted],
        ("failed", _) => &[Status::Failed],
        ("bounced_hard", _) => &[Status::BouncedHard],
        ("bounced_soft", _) => &[Status::BouncedSoft],
        ("suppressed", _) => &[Status::Suppressed],
        _ => &[],
    }
}

mod roles;

#[cfg(test)]
mod tests;
#[cfg(test)]
mod upgrade_tests;
