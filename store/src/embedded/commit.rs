//! The committer: one thread takes every write queued since its last fsync,
//! asks the rules for each outcome's decision, writes facts and decisions
//! as one batch (group commit), and only once it is durable changes the
//! in-memory index and answers the callers.

use std::{
    collections::{HashMap, HashSet},
    sync::{Arc, atomic::Ordering},
    time::{Duration, Instant},
};

use domain::{
    CampaignDecl, CampaignRecord, CampaignState, Engaged, FELL_BACK, Fact, FactDetail, FactKind,
    Fallback, MessageNo, MessageState, Millis, Outcome, Participant, ReceiptIn, ReceiptMatch,
    Status, SuppressReason, Undelivered, Update,
};
use fjall::{Database, PersistMode};
use rules::{self, PartReceipt};
use tokio::sync::{mpsc, oneshot};

use super::{
    COMMIT_SPACING, FACT_RUN, Index, MAX_GROUP, Shared, participant_record,
    space::Room,
    stage::{self, Staged},
    states, suppression_key,
};
use crate::{
    Result, StoreError, UploadId, codec,
    flags::Flags,
    index::{CampaignIndex, Joining},
    upstream,
};

pub(super) enum Op {
    PutCampaign {
        id: String,
        decl: Box<CampaignDecl>,
        /// Written only if the campaign's participant numbers are this.
        numbered: Option<u64>,
        reply: oneshot::Sender<Result<CampaignRecord>>,
    },
    SetState {
        id: String,
        /// The states it may change from.
        from: Vec<CampaignState>,
        state: CampaignState,
        reply: oneshot::Sender<Result<CampaignRecord>>,
    },
    DeleteCampaign {
        id: String,
        reply: oneshot::Sender<Result<CampaignRecord>>,
    },
    Add {
        id: String,
        items: Vec<Participant>,
        at: Millis,
        reply: oneshot::Sender<Result<Vec<bool>>>,
    },
    Stage {
        id: String,
        upload: UploadId,
        items: Vec<Participant>,
        reply: oneshot::Sender<Result<Vec<bool>>>,
    },
    Publish {
        upload: UploadId,
        at: Millis,
        reply: oneshot::Sender<Result<u64>>,
    },
    Abandon {
        upload: UploadId,
        reply: oneshot::Sender<Result<()>>,
    },
    Record {
        updates: Vec<Update>,
        reply: oneshot::Sender<Result<()>>,
    },
    /// `value` under `key` (`None`: the key removed), written only over
    /// `expected` when that is given (`Some(None)`: only where there is
    /// none); answers whether it was written.
    Meta {
        key: String,
        value: Option<Vec<u8>>,
        expected: Option<Option<Vec<u8>>>,
        reply: oneshot::Sender<Result<bool>>,
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
    /// Removes the upstream entries (links, progress keys) under `keys`
    /// whose campaign is deleted; answers how many went.
    ForgetLinks {
        keys: Vec<Vec<u8>>,
        reply: oneshot::Sender<Result<u64>>,
    },
}

/// The largest value of what is under way (counters, cursors, the start of
/// returned mail kept unmatched); anything larger is new data.
const SMALL_VALUE: usize = 64 << 10;

impl Op {
    /// Whether it takes something new (a campaign, participants, a large
    /// value), which a filling disk refuses first; the rest records what is
    /// under way.
    fn takes_something_new(&self) -> bool {
        match self {
            Self::PutCampaign { .. }
            | Self::Add { .. }
            | Self::Stage { .. }
            | Self::Publish { .. } => true,
            Self::Meta { value, .. } => value.as_ref().is_some_and(|v| v.len() > SMALL_VALUE),
            _ => false,
        }
    }

    /// Whether the caller is answered only once its write is durable.
    /// Staging and abandoning are not: a staged upload becomes durable with
    /// its publishing commit, and one lost in a crash is dropped anyway.
    fn is_durable(&self) -> bool {
        !matches!(self, Self::Stage { .. } | Self::Abandon { .. })
    }

    /// Answers the caller with `error`, nothing written.
    fn refuse(self, error: &StoreError) {
        // A caller that went away no longer needs its answer.
        fn fail<T>(reply: oneshot::Sender<Result<T>>, error: &StoreError) {
            let _ = reply.send(Err(error.clone()));
        }
        match self {
            Self::PutCampaign { reply, .. }
            | Self::SetState { reply, .. }
            | Self::DeleteCampaign { reply, .. } => fail(reply, error),
            Self::Add { reply, .. } | Self::Stage { reply, .. } => fail(reply, error),
            Self::Publish { reply, .. } | Self::ForgetLinks { reply, .. } => fail(reply, error),
            Self::Receipts { reply, .. } => fail(reply, error),
            Self::Meta { reply, .. } => fail(reply, error),
            Self::Record { reply, .. }
            | Self::Suppress { reply, .. }
            | Self::Unsuppress { reply, .. }
            | Self::Abandon { reply, .. }
            | Self::Engage { reply, .. } => fail(reply, error),
        }
    }
}

/// Campaign `id`'s record as the ops of group `g` planned so far leave it:
/// what the last of them wrote, else the index's (which changes only once
/// the group is durable).
fn latest_record(g: &Group, index: &Index, id: &str) -> Option<CampaignRecord> {
    let written = g.effects.iter().rev().find_map(|e| match e {
        Effect::Campaign(r) if r.id == id => Some(r.as_ref().clone()),
        _ => None,
    });
    written.or_else(|| index.campaigns.get(id).map(|c| c.record.clone()))
}

/// A memory change to make once its commit is durable.
enum Effect {
    Campaign(Box<CampaignRecord>),
    /// A new participant: live at `at`, or staged (`None`).
    Participant {
        msg: MessageNo,
        customer: Box<str>,
        address: Box<str>,
        at: Option<Millis>,
    },
    /// A staged participant made live.
    Published {
        msg: MessageNo,
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
    Count(oneshot::Sender<Result<u64>>, u64),
    Matched(
        oneshot::Sender<Result<Vec<ReceiptMatch>>>,
        Vec<ReceiptMatch>,
    ),
    Done(oneshot::Sender<Result<()>>),
    Written(oneshot::Sender<Result<bool>>, bool),
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
            Self::Count(tx, n) => drop(tx.send(outcome(n, failure))),
            Self::Matched(tx, matches) => drop(tx.send(outcome(matches, failure))),
            Self::Done(tx) => drop(tx.send(outcome((), failure))),
            Self::Written(tx, written) => drop(tx.send(outcome(written, failure))),
        }
    }
}

pub(super) struct Committer {
    pub(super) db: Database,
    pub(super) shared: Arc<Shared>,
    pub(super) next_cursor: u64,
    /// The message states in runs, not folded yet.
    pub(super) runs: states::Runs,
    /// States in runs that start a fold.
    pub(super) fold_after: usize,
    /// The last group's buffer of facts, empty, kept for the next one: a
    /// group's facts grew it afresh, moving each fact again as it doubled.
    pub(super) spare_facts: Vec<Fact>,
}

/// How a customer was added in the group being assembled.
enum AddedHere {
    /// Visible at once: it keeps out everyone after it.
    AtOnce,
    /// Staged by these uploads (more than one: twins of uploads read at
    /// once); each keeps out its own upload's copies only.
    Staged(UploadId),
    Twins(Vec<UploadId>),
}

impl AddedHere {
    /// Whether it keeps out a participant of the same customer added
    /// next, at once (`None`) or staged by `upload`.
    fn keeps_out(&self, upload: Option<UploadId>) -> bool {
        match (self, upload) {
            (Self::AtOnce, _) => true,
            (_, None) => false,
            (Self::Staged(by), Some(upload)) => *by == upload,
            (Self::Twins(by), Some(upload)) => by.contains(&upload),
        }
    }

    /// A customer's first participant in the group, added at once
    /// (`upload` is `None`) or staged by `upload`.
    fn first(upload: Option<UploadId>) -> Self {
        upload.map_or(Self::AtOnce, Self::Staged)
    }

    /// Another participant of the customer, added at once (`upload` is
    /// `None`) or staged by `upload`.
    fn join(&mut self, upload: Option<UploadId>) {
        *self = match (std::mem::replace(self, Self::AtOnce), upload) {
            (_, None) | (Self::AtOnce, _) => Self::AtOnce,
            (Self::Staged(by), Some(upload)) => Self::Twins(vec![by, upload]),
            (Self::Twins(mut by), Some(upload)) => {
                by.push(upload);
                Self::Twins(by)
            }
        };
    }
}

/// One commit being assembled.
struct Group {
    batch: fjall::OwnedWriteBatch,
    effects: Vec<Effect>,
    answers: Vec<Answer>,
    /// Customers added in this group, per campaign, not yet in the index.
    admitted: HashMap<u32, foldhash::HashMap<String, AddedHere>>,
    /// Facts not yet written, consecutive cursors.
    facts: Vec<Fact>,
    /// Upstream keys written (Some) or removed (None) in this group.
    upstream: foldhash::HashMap<Vec<u8>, Option<Vec<u8>>>,
    /// Statuses recorded in this group, not yet in the index.
    statuses: foldhash::HashMap<MessageNo, Status>,
    /// The states recorded in this group: its run.
    run: states::Entries,
    /// Flags set in this group, with their times, written once per message.
    engaged: foldhash::HashMap<MessageNo, Flags>,
    /// Values written (Some) or removed (None) in this group: a conditional
    /// write after one reads them.
    meta: HashMap<String, Option<Vec<u8>>>,
    /// A record a decision needed could not be read: nothing of the group
    /// is written, as when its commit fails.
    unreadable: Option<StoreError>,
}

impl Committer {
    pub(super) fn run(mut self, mut rx: mpsc::Receiver<Op>) {
        let mut held = None;
        let mut last_durable: Option<Instant> = None;
        while let Some(first) = held.take().or_else(|| rx.blocking_recv()) {
            let pause = pause_before_commit(last_durable, Instant::now());
            if !pause.is_zero() {
                std::thread::sleep(pause);
            }
            let mut ops = vec![first];
            while ops.len() < MAX_GROUP {
                match rx.try_recv() {
                    // An abandon starts a group: every staging before it is
                    // then in the index, where it frees the customers at once.
                    Ok(op @ Op::Abandon { .. }) => {
                        held = Some(op);
                        break;
                    }
                    Ok(op) => ops.push(op),
                    Err(_) => break,
                }
            }
            let started = Instant::now();
            if self.commit_group(ops) {
                last_durable = Some(started);
            }
        }
    }

    /// Commits `ops` as one group; says whether it fsynced.
    fn commit_group(&mut self, ops: Vec<Op>) -> bool {
        // Before anything changes: a refused op leaves no trace.
        let ops = match self.shared.space.room() {
            Room::Enough => ops,
            Room::Low(full) => {
                let (refused, taken): (Vec<Op>, Vec<Op>) =
                    ops.into_iter().partition(Op::takes_something_new);
                for op in refused {
                    op.refuse(&full);
                }
                taken
            }
            Room::Exhausted(full) => {
                // Abandoning an upload, deleting a campaign and forgetting
                // its links only remove (how an operator frees space): they
                // are still taken.
                let (taken, refused): (Vec<Op>, Vec<Op>) = ops.into_iter().partition(|op| {
                    matches!(
                        op,
                        Op::Abandon { .. } | Op::DeleteCampaign { .. } | Op::ForgetLinks { .. }
                    )
                });
                for op in refused {
                    op.refuse(&full);
                }
                taken
            }
        };
        if ops.is_empty() {
            return false;
        }
        let mut group = Group {
            batch: self.db.batch().durability(None),
            effects: Vec::new(),
            answers: Vec::new(),
            admitted: HashMap::new(),
            facts: std::mem::take(&mut self.spare_facts),
            upstream: HashMap::default(),
            statuses: HashMap::default(),
            run: states::Entries::new(),
            engaged: HashMap::default(),
            meta: HashMap::new(),
            unreadable: None,
        };
        let first_cursor = self.next_cursor;
        let durable = ops.iter().any(Op::is_durable);
        {
            let shared = self.shared.clone();
            let mut index = shared.index();
            for op in ops {
                self.plan(op, &mut index, &mut group);
            }
        }
        self.write_facts(&mut group);
        self.spare_facts = std::mem::take(&mut group.facts);
        if !group.run.is_empty() {
            let run = std::mem::replace(&mut group.run, states::Entries::new());
            let key = states::run_key(self.runs.take_number());
            (group.batch).insert(&self.shared.ks.state_runs, key, run.into_bytes());
        }
        for (msg, flags) in std::mem::take(&mut group.engaged) {
            group.batch.insert(
                &self.shared.ks.engagement,
                codec::message_key(msg),
                flags.encode(),
            );
            group.effects.push(Effect::Engaged {
                msg,
                flags: flags.bits(),
            });
        }
        // Whether it was fsynced, once written.
        let written = if let Some(e) = group.unreadable.take() {
            Err(e.to_string())
        } else if group.batch.is_empty() {
            Ok(false)
        } else {
            group
                .batch
                .commit()
                .and_then(|()| {
                    if durable {
                        self.db.persist(PersistMode::SyncData).map(|()| true)
                    } else {
                        Ok(false)
                    }
                })
                .map_err(|e| e.to_string())
        };
        match written {
            Ok(synced) => {
                let mut index = self.shared.index();
                for effect in group.effects {
                    apply(&mut index, effect);
                }
                drop(index);
                self.shared
                    .durable_cursor
                    .store(self.next_cursor - 1, Ordering::Release);
                // Before the answers, so that a caller finds it done.
                if self.runs.states >= self.fold_after {
                    self.fold();
                }
                for answer in group.answers {
                    answer.send(None);
                }
                synced
            }
            Err(e) => {
                tracing::error!(error = %e, "store commit failed; refusing further writes");
                self.shared.healthy.store(false, Ordering::Release);
                self.next_cursor = first_cursor;
                let reason = format!("commit failed: {e}");
                for answer in group.answers {
                    answer.send(Some(&reason));
                }
                false
            }
        }
    }

    /// Folds the runs, in a batch of its own once a commit is written and
    /// the index lock is free. It needs no fsync of its own: lost in a
    /// crash, it leaves the runs it would have removed, which say the same
    /// (the journal keeps a batch whole or not at all, and in order).
    fn fold(&mut self) {
        let live: HashSet<u32> = self.shared.index().ids.keys().copied().collect();
        let ks = &self.shared.ks;
        let mut batch = self.db.batch().durability(None);
        let folded = (self.runs)
            .fold(ks, |campaign| live.contains(&campaign), &mut batch)
            .and_then(|()| batch.commit().map_err(super::io));
        if let Err(e) = folded {
            // As after a failed commit: the runs stay, and the next open
            // replays them.
            tracing::error!(error = %e, "folding message states failed; refusing further writes");
            self.shared.healthy.store(false, Ordering::Release);
        }
    }

    fn plan(&mut self, op: Op, index: &mut Index, g: &mut Group) {
        let ks = self.shared.ks.clone();
        match op {
            Op::PutCampaign {
                id,
                decl,
                numbered,
                reply,
            } => {
                let now_numbered = index.campaigns.get(&id).map(|c| u64::from(c.allocated));
                if numbered.is_some_and(|n| now_numbered != Some(n)) {
                    let _ = reply.send(Err(StoreError::ParticipantsCame { campaign: id }));
                    return;
                }
                let record = match latest_record(g, index, &id) {
                    // Only a declared campaign is declared again; the API
                    // checked so, but a start may be in this very group.
                    Some(c) if c.state != CampaignState::Declared => {
                        let _ = reply.send(Err(StoreError::StateChanged {
                            campaign: id,
                            state: c.state.as_str(),
                        }));
                        return;
                    }
                    Some(c) => CampaignRecord { decl: *decl, ..c },
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
            Op::SetState {
                id,
                from,
                state,
                reply,
            } => {
                let (Some(c), Some(current)) =
                    (index.campaigns.get(&id), latest_record(g, index, &id))
                else {
                    let _ = reply.send(Err(StoreError::UnknownCampaign(id)));
                    return;
                };
                if !from.contains(&current.state) {
                    let _ = reply.send(Err(StoreError::StateChanged {
                        campaign: id,
                        state: current.state.as_str(),
                    }));
                    return;
                }
                // Decided on counts read earlier: a participant staged or
                // published since keeps it running.
                if state == CampaignState::Finished && !c.may_finish() {
                    let _ = reply.send(Ok(current));
                    return;
                }
                let record = CampaignRecord { state, ..current };
                g.batch
                    .insert(&ks.campaigns, record.id.as_str(), codec::encode(&record));
                g.effects.push(Effect::Campaign(Box::new(record.clone())));
                g.answers.push(Answer::Campaign(reply, Box::new(record)));
            }
            Op::DeleteCampaign { id, reply } => self.delete_campaign(index, g, &id, reply),
            Op::ForgetLinks { keys, reply } => {
                let mut removed = 0;
                for key in keys {
                    let campaign = (self.upstream_value(g, &key))
                        .and_then(|value| upstream::campaign_of(&key, &value));
                    // Checked here, not when the key was found: an SMSC
                    // may have given its id to a new message since.
                    if campaign.is_some_and(|seq| !index.ids.contains_key(&seq)) {
                        self.put_upstream(g, key, None);
                        removed += 1;
                    }
                }
                g.answers.push(Answer::Count(reply, removed));
            }
            Op::Add {
                id,
                items,
                at,
                reply,
            } => {
                if !index.campaigns.contains_key(&id) {
                    let _ = reply.send(Err(StoreError::UnknownCampaign(id)));
                    return;
                }
                let fresh = items
                    .into_iter()
                    .map(|p| self.add(index, g, &id, p, at).unwrap_or(false))
                    .collect();
                g.answers.push(Answer::Added(reply, fresh));
            }
            Op::Stage {
                id,
                upload,
                items,
                reply,
            } => self.stage(index, g, &id, upload, items, reply),
            Op::Publish { upload, at, reply } => self.publish(index, g, upload, at, reply),
            Op::Abandon { upload, reply } => {
                if let Some(staged) = index.uploads.remove(&upload) {
                    // Its customers are free for the ops after it at once
                    // (a retry may follow in this very group).
                    for msg in staged.messages() {
                        g.batch.remove(&ks.participants, codec::message_key(msg));
                        if let Some(c) = index.by_seq(msg.campaign) {
                            c.drop_staged(msg.participant);
                        }
                    }
                    for marker in &staged.markers {
                        g.batch.remove(&ks.stages, marker.as_slice());
                    }
                }
                g.answers.push(Answer::Done(reply));
            }
            Op::Record { updates, reply } => {
                for mut u in updates {
                    let msg = u.msg;
                    let upstream = match &mut u.outcome {
                        Outcome::Submitted { upstream, .. } => upstream.take(),
                        _ => None,
                    };
                    // An outcome that changes nothing (a late one of a
                    // deleted campaign, say) links no id: as on Redis.
                    if self.record_update(index, g, u)
                        && let Some(up) = upstream
                    {
                        for (key, link) in upstream::links(msg, &up) {
                            self.put_upstream(g, key, Some(link));
                        }
                    }
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
                    let Some(slot) = c.slot(e.msg.participant) else {
                        continue;
                    };
                    let mut flags = self.flags(g, e.msg, slot.engaged);
                    if flags.bits() & e.kind.bit() != 0 && !rules::recorded_again(e.kind) {
                        continue;
                    }
                    flags.set(e.kind.bit(), e.at);
                    g.engaged.insert(e.msg, flags);
                    let suppress = match rules::engaged(e.kind) {
                        Some(why) => {
                            match participant_record(&self.shared.ks.participants, e.msg) {
                                Ok(p) => {
                                    Some((suppression_key(c.record.decl.channel, &p.address), why))
                                }
                                Err(err) => {
                                    g.unreadable = Some(err);
                                    continue;
                                }
                            }
                        }
                        None => None,
                    };
                    let fact = fact(
                        e.at,
                        &c.record.id,
                        slot.customer,
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
            Op::Meta {
                key,
                value,
                expected,
                reply,
            } => {
                if let Some(expected) = expected {
                    let current = match g.meta.get(&key) {
                        Some(v) => Ok(v.clone()),
                        None => ks.meta.get(&key).map(|v| v.map(|v| v.to_vec())),
                    };
                    match current {
                        Ok(current) if current == expected => {}
                        Ok(_) => {
                            g.answers.push(Answer::Written(reply, false));
                            return;
                        }
                        Err(e) => {
                            let _ = reply.send(Err(super::io(e)));
                            return;
                        }
                    }
                }
                match &value {
                    Some(value) => g.batch.insert(&ks.meta, key.as_str(), value.clone()),
                    None => g.batch.remove(&ks.meta, key.as_str()),
                }
                g.meta.insert(key, value);
                g.answers.push(Answer::Written(reply, true));
            }
        }
    }

    /// Adds `p` to campaign `id` with its `accepted` fact, unless its
    /// customer is there already (`Some(false)`); `None` for an unknown
    /// campaign.
    fn add(
        &mut self,
        index: &mut Index,
        g: &mut Group,
        id: &str,
        p: Participant,
        at: Millis,
    ) -> Option<bool> {
        let Some(msg) = self.admit(index, g, id, &p, None)? else {
            return Some(false);
        };
        g.effects.push(Effect::Participant {
            msg,
            customer: p.customer.as_str().into(),
            address: p.address.as_str().into(),
            at: Some(at),
        });
        let no_address = p.address.is_empty();
        self.accept(index, g, id, msg, (&p.customer, no_address), at, || {
            Ok(p.clone())
        });
        Some(true)
    }

    /// Writes `p`'s record under a new message number of campaign `id`,
    /// visible at once (`upload` is `None`) or staged by `upload`, unless
    /// its customer is there already (`Some(None)`); `None` for an unknown
    /// campaign. A customer only staged is not there already for another
    /// upload, which stages a twin (the first published is kept, so an
    /// upload abandoned loses nobody another one took), nor for a
    /// participant made visible at once (a fallback, an audience copy),
    /// which supersedes the staged ones.
    fn admit(
        &self,
        index: &mut Index,
        g: &mut Group,
        id: &str,
        p: &Participant,
        upload: Option<UploadId>,
    ) -> Option<Option<MessageNo>> {
        let own: &[u32] = upload
            .and_then(|u| index.uploads.get(&u))
            .map_or(&[], |s| s.participants.as_slice());
        let c = index.campaigns.get_mut(id)?;
        let seq = c.record.seq;
        let joining = match upload {
            Some(_) => Joining::Staged(own),
            None => Joining::AtOnce,
        };
        let taken = c.takes(&p.customer, joining);
        let admitted = g.admitted.entry(seq).or_default();
        let here = admitted.get_mut(p.customer.as_str());
        if taken || here.as_ref().is_some_and(|h| h.keeps_out(upload)) {
            return Some(None);
        }
        match here {
            Some(here) => here.join(upload),
            None => {
                admitted.insert(p.customer.clone(), AddedHere::first(upload));
            }
        }
        let msg = MessageNo {
            campaign: seq,
            participant: c.allocated,
        };
        c.allocated += 1;
        g.batch.insert(
            &self.shared.ks.participants,
            codec::message_key(msg),
            codec::encode(p),
        );
        Some(Some(msg))
    }

    /// A new participant's `accepted` fact; one without an address, in a
    /// campaign whose fallback takes those, goes to the fallback at once,
    /// never sent (`read` gives its record).
    #[allow(clippy::too_many_arguments)]
    fn accept(
        &mut self,
        index: &mut Index,
        g: &mut Group,
        id: &str,
        msg: MessageNo,
        (customer, no_address): (&str, bool),
        at: Millis,
        read: impl FnOnce() -> Result<Participant>,
    ) {
        self.append_fact(
            g,
            fact(at, id, customer, FactKind::Accepted, FactDetail::default()),
        );
        if !no_address {
            return;
        }
        let Some(fallback) = index
            .campaigns
            .get(id)
            .and_then(|c| c.record.decl.fallback.clone())
        else {
            return;
        };
        let p = match read() {
            Ok(p) => p,
            Err(e) => {
                tracing::error!(error = %e, campaign = %id, "cannot read a participant to fall back");
                return;
            }
        };
        if !rules::falls_back(&fallback, Undelivered::NoAddress, None, at) {
            return;
        }
        let record = MessageState {
            status: Status::Fallback,
            attempts: 0,
            due: 0,
            at,
        };
        self.put_status(g, msg, record);
        self.fall_back(index, g, id, &fallback, &p, at);
    }

    /// Stages `items` under `upload`: their records and the batch's marker
    /// are written, nothing is visible.
    /// Removes an ended campaign: its record and every key of its messages.
    /// The index forgets it at once, so later ops of this group see it gone
    /// (a failed commit poisons the store anyway); the next campaign number
    /// is kept so that the number is never given again.
    fn delete_campaign(
        &mut self,
        index: &mut Index,
        g: &mut Group,
        id: &str,
        reply: oneshot::Sender<Result<CampaignRecord>>,
    ) {
        let ks = &self.shared.ks;
        let Some(c) = index.campaigns.get(id) else {
            let _ = reply.send(Err(StoreError::UnknownCampaign(id.to_owned())));
            return;
        };
        if rules::closed_to_participants(c.record.state).is_none() {
            let _ = reply.send(Err(StoreError::Open {
                campaign: id.to_owned(),
                state: c.record.state.as_str(),
            }));
            return;
        }
        // Its participants would be lost: a source's late bounce still
        // falls back.
        let source = index.campaigns.values().find(|source| {
            (source.record.decl.fallback.as_ref()).is_some_and(|f| f.campaign == id)
        });
        if let Some(source) = source {
            let _ = reply.send(Err(StoreError::FallbackOf {
                campaign: id.to_owned(),
                source_campaign: source.record.id.clone(),
            }));
            return;
        }
        let record = c.record.clone();
        let prefix = record.seq.to_be_bytes();
        for keyspace in [
            &ks.participants,
            &ks.status,
            &ks.state_chunks,
            &ks.engagement,
        ] {
            for kv in keyspace.prefix(prefix) {
                match kv.key() {
                    Ok(key) => g.batch.remove(keyspace, key),
                    Err(e) => {
                        let _ = reply.send(Err(super::io(e)));
                        return;
                    }
                }
            }
        }
        g.batch.remove(&ks.campaigns, id);
        g.batch.insert(
            &ks.meta,
            super::NEXT_CAMPAIGN,
            index.next_campaign.to_be_bytes(),
        );
        index.campaigns.remove(id);
        index.ids.remove(&record.seq);
        g.answers.push(Answer::Campaign(reply, Box::new(record)));
    }

    fn stage(
        &mut self,
        index: &mut Index,
        g: &mut Group,
        id: &str,
        upload: UploadId,
        items: Vec<Participant>,
        reply: oneshot::Sender<Result<Vec<bool>>>,
    ) {
        let Some(seq) = index.campaigns.get(id).map(|c| c.record.seq) else {
            let _ = reply.send(Err(StoreError::UnknownCampaign(id.to_owned())));
            return;
        };
        if index
            .uploads
            .get(&upload)
            .is_some_and(|s| s.campaign != seq)
        {
            let _ = reply.send(Err(StoreError::Unavailable(format!(
                "upload {} was staged for another campaign than `{id}`",
                upload.0
            ))));
            return;
        }
        let mut fresh = Vec::with_capacity(items.len());
        let mut numbers = Vec::new();
        for p in items {
            let admitted = self.admit(index, g, id, &p, Some(upload)).flatten();
            fresh.push(admitted.is_some());
            if let Some(msg) = admitted {
                numbers.push(msg.participant);
                g.effects.push(Effect::Participant {
                    msg,
                    customer: p.customer.into(),
                    address: p.address.into(),
                    at: None,
                });
            }
        }
        if !numbers.is_empty() {
            let staged = index
                .uploads
                .entry(upload)
                .or_insert_with(|| Staged::new(seq));
            let marker = staged.next_marker(upload);
            g.batch.insert(
                &self.shared.ks.stages,
                marker.as_slice(),
                stage::encode_marker(seq, &numbers),
            );
            staged.markers.push(marker);
            staged.participants.extend(numbers);
        }
        g.answers.push(Answer::Added(reply, fresh));
    }

    /// Makes everything staged under `upload` live, with its facts, and
    /// removes the upload's markers, in this one commit.
    fn publish(
        &mut self,
        index: &mut Index,
        g: &mut Group,
        upload: UploadId,
        at: Millis,
        reply: oneshot::Sender<Result<u64>>,
    ) {
        let Some(staged) = index.uploads.remove(&upload) else {
            // Nothing new was staged (every participant a duplicate).
            g.answers.push(Answer::Count(reply, 0));
            return;
        };
        let Some(c) = index.by_seq(staged.campaign) else {
            let _ = reply.send(Err(StoreError::UnknownCampaign(format!(
                "#{}",
                staged.campaign
            ))));
            return;
        };
        let id = c.record.id.clone();
        if let Some(state) = rules::closed_to_participants(c.record.state) {
            // Kept staged: the caller abandons it.
            index.uploads.insert(upload, staged);
            let _ = reply.send(Err(StoreError::Closed {
                campaign: id,
                state,
            }));
            return;
        }
        let participants = self.shared.ks.participants.clone();
        let mut published = 0;
        for msg in staged.messages() {
            let Some(c) = index.by_seq(msg.campaign) else {
                continue;
            };
            let Some((customer, no_address)) = c
                .begin_publish(msg.participant)
                .map(|s| (s.customer.to_string(), s.no_address))
            else {
                // Superseded: added at once meanwhile (a fallback), so a
                // duplicate now.
                g.batch.remove(&participants, codec::message_key(msg));
                c.drop_staged(msg.participant);
                continue;
            };
            published += 1;
            g.effects.push(Effect::Published { msg, at });
            let read = || participant_record(&participants, msg);
            self.accept(index, g, &id, msg, (&customer, no_address), at, read);
        }
        for marker in &staged.markers {
            g.batch.remove(&self.shared.ks.stages, marker.as_slice());
        }
        g.answers.push(Answer::Count(reply, published));
    }

    /// Sends participant `p` of campaign `source` to fallback `f`: the
    /// `fallback` fact, and the participant added to the fallback campaign
    /// (once per customer), or a `failed` fact there saying why it cannot.
    fn fall_back(
        &mut self,
        index: &mut Index,
        g: &mut Group,
        source: &str,
        f: &Fallback,
        p: &Participant,
        at: Millis,
    ) {
        let to = FactDetail {
            to: Some(f.campaign.clone()),
            ..FactDetail::default()
        };
        self.append_fact(g, fact(at, source, &p.customer, FactKind::Fallback, to));
        match rules::fallback_participant(f, p) {
            // A finished fallback campaign runs again once the dispatcher
            // sees the participant pending.
            Ok(sms) => {
                if self.add(index, g, &f.campaign, sms, at).is_none() {
                    tracing::error!(campaign = %f.campaign, from = %source, "fallback campaign missing; participant not added");
                }
            }
            Err(reason) => {
                let failed = FactDetail {
                    reason: Some(reason),
                    ..FactDetail::default()
                };
                self.append_fact(
                    g,
                    fact(at, &f.campaign, &p.customer, FactKind::Failed, failed),
                );
            }
        }
    }

    /// A message ended undelivered (`how`): if its campaign's fallback
    /// takes it, and it has not fallen back before, flags it and sends its
    /// participant there, in the batch of the fact that ended it.
    fn undelivered(
        &mut self,
        index: &mut Index,
        g: &mut Group,
        msg: MessageNo,
        how: Undelivered,
        handed_at: Option<Millis>,
        at: Millis,
    ) {
        let Some(c) = index.by_seq(msg.campaign) else {
            return;
        };
        let Some(f) = c
            .record
            .decl
            .fallback
            .clone()
            .filter(|f| rules::falls_back(f, how, handed_at, at))
        else {
            return;
        };
        let source = c.record.id.clone();
        let bits = c.slot(msg.participant).map_or(0, |s| s.engaged);
        let mut flags = self.flags(g, msg, bits);
        if flags.bits() & FELL_BACK != 0 {
            return;
        }
        match participant_record(&self.shared.ks.participants, msg) {
            Ok(p) => {
                flags.set(FELL_BACK, at);
                g.engaged.insert(msg, flags);
                self.fall_back(index, g, &source, &f, &p, at);
            }
            Err(e) => {
                tracing::error!(error = %e, campaign = %source, "cannot read a participant to fall back")
            }
        }
    }

    /// A message's flags as this group last set them, else as stored
    /// (read only when the index says some are set).
    fn flags(&self, g: &Group, msg: MessageNo, indexed: u8) -> Flags {
        if let Some(flags) = g.engaged.get(&msg) {
            return *flags;
        }
        if indexed == 0 {
            return Flags::default();
        }
        match self.shared.ks.engagement.get(codec::message_key(msg)) {
            Ok(Some(bytes)) => Flags::decode(&bytes),
            _ => Flags::from_bits(indexed),
        }
    }

    fn put_status(&mut self, g: &mut Group, msg: MessageNo, record: MessageState) {
        g.run.push(msg, &record);
        self.runs.states += 1;
        g.statuses.insert(msg, record.status);
        g.effects.push(Effect::Status { msg, record });
    }

    /// Writes the rules' decision on an outcome with its fact: the
    /// message's new status and, where the rules say so, the address's
    /// suppression and the fallback, in the same batch.
    /// Records `u` if it applies to its message as it stands; answers
    /// whether it did.
    fn record_update(&mut self, index: &mut Index, g: &mut Group, u: Update) -> bool {
        let Some(c) = index.by_seq(u.msg.campaign) else {
            return false;
        };
        let Some(slot) = c.slot(u.msg.participant) else {
            return false;
        };
        // As this group left it: a copy may follow in the same group.
        let status = g.statuses.get(&u.msg).copied().unwrap_or(slot.status);
        if !rules::applies(status, slot.attempts, &u.outcome) {
            return false;
        }
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
            slot.customer,
            decision.fact,
            decision.detail,
        );
        let suppress = match decision.suppress {
            Some(why) => match participant_record(&self.shared.ks.participants, u.msg) {
                Ok(p) => Some((suppression_key(c.record.decl.channel, &p.address), why)),
                Err(e) => {
                    g.unreadable = Some(e);
                    return false;
                }
            },
            None => None,
        };
        // A returned bounce counts from when the message was handed over.
        let handed_at = (before.status == Status::Submitted).then_some(before.at);
        self.append_fact(g, fact);
        if let Some((key, why)) = suppress {
            self.put_suppression(g, key, why);
        }
        self.put_status(g, u.msg, record);
        if let Some(how) = decision.undelivered {
            self.undelivered(index, g, u.msg, how, handed_at, u.at);
        }
        true
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
        let found = upstream::lookup_keys(&r).find_map(|key| {
            let link = upstream::decode_link(&self.upstream_value(g, &key)?)?;
            Some((key, link))
        });
        let Some((key, link)) = found else {
            return ReceiptMatch::Unknown(Box::new(r));
        };
        let matched = upstream::matched(&r, &key);
        // An intermediate state (en route, accepted) changes nothing.
        let Some(delivered) = r.delivered else {
            return matched;
        };
        self.put_upstream(g, key, None);
        // Only a concatenated message keeps a count of parts waiting.
        let progress = (link.parts > 1).then(|| upstream::progress_key(link.msg));
        let waiting = progress
            .as_ref()
            .and_then(|progress| self.upstream_value(g, progress))
            .and_then(|v| v.first().copied());
        let delivered = match rules::part_receipt(link.parts, waiting, delivered) {
            PartReceipt::AlreadySettled => return matched,
            PartReceipt::Wait { left } => {
                if let Some(progress) = progress {
                    self.put_upstream(g, progress, Some(vec![left]));
                }
                return matched;
            }
            PartReceipt::Settle { delivered } => delivered,
        };
        if let Some(progress) = progress {
            // A failed part marks the message settled (0 left) against
            // later receipts of its other parts.
            self.put_upstream(g, progress, (!delivered).then(|| vec![0]));
        }
        let status = g.statuses.get(&link.msg).copied().or_else(|| {
            index
                .by_seq(link.msg.campaign)
                .and_then(|c| c.slot(link.msg.participant))
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
        matched
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

/// How long a group that could start `now` waits: until `COMMIT_SPACING`
/// after the last durable commit started, if that was so recent.
fn pause_before_commit(last_durable: Option<Instant>, now: Instant) -> Duration {
    last_durable.map_or(Duration::ZERO, |started| {
        (started + COMMIT_SPACING).saturating_duration_since(now)
    })
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
            if let Some(c) = index.by_seq(msg.campaign) {
                c.set_flags(msg.participant, flags);
            }
        }
        Effect::Campaign(record) => {
            if let Some(c) = index.campaigns.get_mut(&record.id) {
                c.record = *record;
            }
        }
        Effect::Participant {
            msg,
            customer,
            address,
            at,
        } => {
            if let Some(c) = index.by_seq(msg.campaign) {
                c.place(msg.participant, &customer, &address, at);
            }
        }
        Effect::Published { msg, at } => {
            if let Some(c) = index.by_seq(msg.campaign) {
                c.publish(msg.participant, at);
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

#[cfg(test)]
mod spacing_tests {
    use super::*;

    #[test]
    fn the_first_commit_and_one_after_an_idle_spell_start_at_once() {
        let now = Instant::now();
        assert_eq!(pause_before_commit(None, now), Duration::ZERO);
        let long_ago = now - 2 * COMMIT_SPACING;
        assert_eq!(pause_before_commit(Some(long_ago), now), Duration::ZERO);
    }

    #[test]
    fn a_commit_right_after_a_durable_one_waits_out_the_spacing() {
        let started = Instant::now();
        let now = started + COMMIT_SPACING / 4;
        assert_eq!(
            pause_before_commit(Some(started), now),
            COMMIT_SPACING - COMMIT_SPACING / 4
        );
    }

    #[test]
    fn a_commit_that_took_longer_than_the_spacing_is_not_followed_by_a_wait() {
        let started = Instant::now();
        let finished = started + COMMIT_SPACING + Duration::from_micros(1);
        assert_eq!(pause_before_commit(Some(started), finished), Duration::ZERO);
    }
}
