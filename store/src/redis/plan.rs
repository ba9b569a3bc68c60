//! Planning one write of the Redis engine: what it reads (each value
//! checked unchanged when the write is applied), the rules' decisions, and
//! the commands and facts of the one atomic script (`txn`). The same steps
//! as the embedded engine's committer, over values read from Redis: a plan
//! sees its own writes (two updates of one message in one call).

use std::{collections::HashSet, sync::Arc};

use domain::{
    CampaignRecord, Engaged, FELL_BACK, Fact, FactDetail, FactKind, Fallback, MessageNo,
    MessageState, Millis, Outcome, Participant, ReceiptIn, ReceiptMatch, Status, Undelivered,
    Update,
};
use rules::PartReceipt;

use super::{
    Redis, Values,
    holding::{self, Holding, Twin},
    keys::{self, Shard},
    publish::{ABANDONED, PUBLISHED, PUBLISHED_KEPT_SECS, PUBLISHING, STAGED},
    suppression_field,
    txn::Txn,
};
use crate::{Result, StoreError, codec, flags::Flags, upstream};

/// The field of a campaign's hash (`c:N`) counting the participant
/// numbers it reserved: the next block starts there.
pub(super) const NEXT_NUMBER: &[u8] = b"next";

/// The field of a campaign's hash (`c:N`) holding its record: there while
/// the campaign is.
pub(super) const RECORD: &[u8] = b"rec";

/// The field of a deleted campaign's hash (`c:N`) marking it deleted:
/// its name may still lead to it, or a declaration may have read that.
pub(super) const DELETED_MARK: &[u8] = b"deleted";

/// The field of a campaign's counts changed by every write that stages
/// participants or ends an upload: a finish decision reads it.
pub(super) const STAGE_GEN: &str = "stage_gen";

/// The fields of an upload's hash a plan reads: its campaign, when its
/// publish began, whether it is abandoned, how many staging writes it had,
/// how many participants its steps made live so far. In this order: a
/// write checks the first three unchanged, a publish step the staging
/// count too (`checked_upload`).
pub(super) const UPLOAD_FIELDS: [&[u8]; 5] = [
    b"campaign",
    PUBLISHING,
    ABANDONED,
    STAGED.as_bytes(),
    PUBLISHED.as_bytes(),
];

/// An upload being read (`upl:ID`).
#[derive(Debug, Clone, Copy)]
pub(super) struct Upload {
    /// The campaign it stages for.
    pub campaign: u32,
    /// When its publish began, if it has.
    pub publishing_since: Option<Millis>,
    /// Whether its abandon began (its customers are free).
    pub abandoned: bool,
    /// Participants its steps made live so far (not checked unless asked:
    /// [`Plan::check_published`]).
    pub published: u64,
}

impl Upload {
    /// An upload read as [`UPLOAD_FIELDS`]; `None` when it is not there.
    pub fn from_fields(values: Values) -> Result<Option<Self>> {
        let [campaign, publishing_since, abandoned, _, published] =
            <[Option<Vec<u8>>; 5]>::try_from(values)
                .map_err(|_| StoreError::Unavailable("HMGET answered a wrong count".into()))?;
        Ok(stored_number(campaign).map(|campaign| Self {
            campaign,
            publishing_since: stored_number(publishing_since),
            abandoned: abandoned.is_some(),
            published: stored_number(published).unwrap_or(0),
        }))
    }

    /// Whether upload `id` (this one) may still be published: not
    /// abandoned, and its publish has begun (it ends whole) or the store
    /// that stages it is open.
    pub async fn lives(&self, store: &Redis, id: u64) -> Result<bool> {
        if self.abandoned {
            return Ok(false);
        }
        Ok(self.publishing_since.is_some() || store.instance_lives(id).await?)
    }
}

/// What holds the customer of a staged participant.
enum Holder {
    /// The staged participant itself, beside its twins (`others`) staged by
    /// other uploads.
    Staged { others: Vec<Twin> },
    /// The same participant, made live.
    Live,
    /// Nothing, or another participant (one added at once, or a twin
    /// published first, superseded it).
    Other,
}

/// How a participant is admitted: live at once, or staged under an upload.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub(super) enum Admit {
    Live,
    Staged(u64),
}

/// A plan's maps: filled per message, so hashed fast (the keys are ours,
/// not an attacker's).
type Map<K, V> = foldhash::HashMap<K, V>;

pub(super) struct Plan<'a> {
    store: &'a Redis,
    /// The shard this write is in: every key it reads checked or changes.
    pub keys: Shard<'a>,
    pub txn: Txn,
    seqs: Map<String, Option<u32>>,
    /// Shared: a record call asks for its campaign once per message.
    campaigns: Map<u32, Option<Arc<CampaignRecord>>>,
    states: Map<MessageNo, Option<MessageState>>,
    participants: Map<MessageNo, Option<Arc<Participant>>>,
    flags: Map<MessageNo, Flags>,
    customers: Map<(u32, String), Option<Vec<u8>>>,
    /// Uploads read (every twin of a retry's batch names its first try).
    uploads: Map<u64, Option<Upload>>,
    upstream: Map<Vec<u8>, Option<Vec<u8>>>,
    /// Messages whose link this plan read from Redis: the write of this
    /// node that stored it may be answered but not yet in `Known` (a
    /// receipt can come that soon), so their states are read from Redis
    /// too, not taken from `Known` as the claim left them.
    linked_in_redis: foldhash::HashSet<MessageNo>,
    /// Participant numbers reserved for this plan: (next, end) per campaign.
    numbers: Map<u32, (u32, u32)>,
    /// The facts of this write, in order (their cursors are given as it is
    /// applied).
    facts: Vec<Fact>,
    /// What this write gives messages and campaigns, for `Known`.
    written: Written,
}

/// The message states and campaign records a write stores, encoded.
#[derive(Debug, Default)]
pub(super) struct Written {
    pub states: Vec<(MessageNo, Vec<u8>)>,
    /// SMSC id keys and their links (`None`: removed).
    pub links: Vec<(Vec<u8>, Option<Vec<u8>>)>,
    pub campaigns: Vec<(u32, Vec<u8>)>,
}

impl<'a> Plan<'a> {
    pub fn new(store: &'a Redis, keys: Shard<'a>) -> Self {
        Self {
            store,
            keys,
            txn: Txn::default(),
            seqs: Map::default(),
            campaigns: Map::default(),
            states: Map::default(),
            participants: Map::default(),
            flags: Map::default(),
            customers: Map::default(),
            uploads: Map::default(),
            upstream: Map::default(),
            linked_in_redis: HashSet::default(),
            numbers: Map::default(),
            facts: Vec::new(),
            written: Written::default(),
        }
    }

    /// The write this plan makes (its facts in runs of the feed), and what
    /// it stores of messages and campaigns.
    pub fn into_parts(self) -> (Txn, Written, Shard<'a>) {
        let mut txn = self.txn;
        txn.facts(&self.facts);
        (txn, self.written, self.keys)
    }

    pub fn store(&self) -> &'a Redis {
        self.store
    }

    /// A counter of `key` (0 when unset), checked unchanged.
    pub async fn read_count(&mut self, key: &str, field: &str) -> Result<u64> {
        let raw = self.read_checked(key.to_owned(), field.as_bytes()).await?;
        Ok(stored_number::<i64>(raw).map_or(0, |v| v.max(0) as u64))
    }

    /// Reads who holds each of `items`' customers in campaign `seq` at once.
    pub async fn prefetch_customers<'p>(
        &mut self,
        seq: u32,
        items: impl IntoIterator<Item = &'p Participant>,
    ) -> Result<()> {
        let key = self.keys.customers(seq);
        let names: Vec<&str> = items.into_iter().map(|p| p.customer.as_str()).collect();
        for chunk in names.chunks(10_000) {
            let holders: Vec<Option<Vec<u8>>> = self
                .store
                .query(::redis::cmd("HMGET").arg(&key).arg(chunk))
                .await?;
            for (&name, holder) in chunk.iter().zip(holders) {
                if self.customers.contains_key(&(seq, name.to_owned())) {
                    continue;
                }
                self.check(key.clone(), name.as_bytes(), holder.as_deref());
                self.customers.insert((seq, name.to_owned()), holder);
            }
        }
        Ok(())
    }

    /// An upload's campaign and publish, while it lives, checked
    /// unchanged (one request).
    pub async fn upload(&mut self, upload: u64) -> Result<Option<Upload>> {
        if let Some(read) = self.uploads.get(&upload) {
            return Ok(*read);
        }
        let values: Values = self
            .store
            .query(
                ::redis::cmd("HMGET")
                    .arg(self.keys.upload(upload))
                    .arg(&UPLOAD_FIELDS[..]),
            )
            .await?;
        let read = self.checked_upload(upload, values, false)?;
        self.uploads.insert(upload, read);
        Ok(read)
    }

    /// The same, also checking that nothing is staged under it meanwhile,
    /// with up to `count` of its staged numbers, not checked (what a
    /// publish step reads, in one request).
    pub async fn upload_at_rest(
        &mut self,
        upload: u64,
        count: usize,
    ) -> Result<(Option<Upload>, Vec<u32>)> {
        let (values, numbers): (Values, Vec<u32>) = self
            .store
            .pipe(
                ::redis::pipe()
                    .cmd("HMGET")
                    .arg(self.keys.upload(upload))
                    .arg(&UPLOAD_FIELDS[..])
                    .cmd("SRANDMEMBER")
                    .arg(self.keys.upload_numbers(upload))
                    .arg(count),
            )
            .await?;
        Ok((self.checked_upload(upload, values, true)?, numbers))
    }

    /// Has the write check that no step made participants of `upload`
    /// live since `upload` was read (one that ends it answers the total).
    pub fn check_published(&mut self, upload: u64, read: &Upload) {
        let published = (read.published > 0).then(|| read.published.to_string());
        self.check(
            self.keys.upload(upload),
            PUBLISHED.as_bytes(),
            published.as_ref().map(String::as_bytes),
        );
    }

    /// An upload read as [`UPLOAD_FIELDS`], its campaign, publish and
    /// abandon checked unchanged, and its staging count too when `at_rest`
    /// (a publish step's read: nothing may be staged after it).
    fn checked_upload(
        &mut self,
        upload: u64,
        values: Values,
        at_rest: bool,
    ) -> Result<Option<Upload>> {
        let key = self.keys.upload(upload);
        let checked = if at_rest { 4 } else { 3 };
        for (field, value) in UPLOAD_FIELDS.iter().zip(&values).take(checked) {
            self.check(key.clone(), field, value.as_deref());
        }
        Upload::from_fields(values)
    }

    /// Makes staged participant `n` of `upload` live as its customer's
    /// participant; `false` when it is live already (another node carries
    /// on the same publish) or one added at once meanwhile superseded it
    /// (then its record is dropped).
    pub async fn take_staged(
        &mut self,
        c: &CampaignRecord,
        n: u32,
        upload: u64,
        p: &Participant,
    ) -> Result<bool> {
        match self.staged_holder(c.seq, n, upload, p).await? {
            Holder::Staged { .. } => {
                self.set_customer(c.seq, &p.customer, Some(keys::number(n).to_vec()));
                Ok(true)
            }
            Holder::Live => Ok(false),
            Holder::Other => {
                self.txn
                    .hdel(&self.keys.participants(c.seq), &keys::number(n));
                Ok(false)
            }
        }
    }

    /// Drops staged participant `n` of `upload`: its customer is free
    /// again. One made live already (another node published it) stays.
    pub async fn drop_staged(
        &mut self,
        seq: u32,
        n: u32,
        upload: u64,
        p: &Participant,
    ) -> Result<()> {
        match self.staged_holder(seq, n, upload, p).await? {
            Holder::Staged { others } => {
                let rest = (!others.is_empty()).then(|| holding::staged(&others));
                self.set_customer(seq, &p.customer, rest);
            }
            Holder::Live => return Ok(()),
            Holder::Other => {}
        }
        self.txn
            .hdel(&self.keys.participants(seq), &keys::number(n));
        Ok(())
    }

    /// What holds the customer of staged participant `n` of `upload`.
    async fn staged_holder(
        &mut self,
        seq: u32,
        n: u32,
        upload: u64,
        p: &Participant,
    ) -> Result<Holder> {
        let holder = self.customer(seq, &p.customer).await?;
        let ours = Twin { number: n, upload };
        Ok(match holder.as_deref().map(Holding::parse) {
            Some(Holding::Staged(twins)) if twins.contains(&ours) => Holder::Staged {
                others: twins.into_iter().filter(|&t| t != ours).collect(),
            },
            Some(Holding::Live(h)) if h == keys::number(n) => Holder::Live,
            _ => Holder::Other,
        })
    }

    /// Forgets an upload published or abandoned, but for how many
    /// participants it made live ([`PUBLISHED`], kept
    /// [`PUBLISHED_KEPT_SECS`]): the call that began its publish answers
    /// that, whichever nodes' steps made them live.
    pub async fn end_upload(&mut self, seq: u32, upload: u64) -> Result<()> {
        let upl = self.keys.upload(upload);
        for field in UPLOAD_FIELDS.iter().filter(|&&f| f != PUBLISHED.as_bytes()) {
            self.txn.hdel(&upl, field);
        }
        let kept = PUBLISHED_KEPT_SECS.to_string();
        self.txn
            .command(&[b"EXPIRE", upl.as_bytes(), kept.as_bytes()]);
        self.txn.del(&self.keys.upload_numbers(upload));
        let id = upload.to_string();
        for set in [self.keys.uploads_of(seq), self.keys.publishing()] {
            self.txn.command(&[b"SREM", set.as_bytes(), id.as_bytes()]);
        }
        self.stage_changed(seq).await
    }

    /// Has the finish decisions on campaign `seq` planned before this
    /// write conflict with it (what is staged or live keeps a campaign
    /// running), unless the campaign is gone: its counts went with it.
    pub async fn stage_changed(&mut self, seq: u32) -> Result<()> {
        if self.campaign(seq).await?.is_some() {
            self.txn.hincr(&self.keys.counts(seq), STAGE_GEN, 1);
        }
        Ok(())
    }

    /// Reads a field and has the write check it is unchanged.
    async fn read_checked(&mut self, key: String, field: &[u8]) -> Result<Option<Vec<u8>>> {
        let value = self.store.hget(&key, field).await?;
        self.check(key, field, value.as_deref());
        Ok(value)
    }

    fn check(&mut self, key: String, field: &[u8], value: Option<&[u8]>) {
        self.txn.read(&key, field, value);
    }

    pub async fn seq(&mut self, id: &str) -> Result<Option<u32>> {
        if let Some(seq) = self.seqs.get(id) {
            return Ok(*seq);
        }
        // Not checked: the campaigns by id live in another slot, and the
        // record (checked) goes when its campaign is deleted.
        let seq = self.store.campaign_seq(id).await?;
        // Declarations keep a fallback in its sources' shard: one in
        // another cannot be written here, and is taken for missing.
        let seq = seq.filter(|&seq| {
            let here = self.store.shard(seq) == self.keys;
            if !here {
                tracing::error!(campaign = %id, "campaign named by a write in another shard");
            }
            here
        });
        self.seqs.insert(id.to_owned(), seq);
        Ok(seq)
    }

    pub async fn campaign(&mut self, seq: u32) -> Result<Option<Arc<CampaignRecord>>> {
        if let Some(c) = self.campaigns.get(&seq) {
            return Ok(c.clone());
        }
        let record = match self.read_checked(self.keys.campaign(seq), b"rec").await? {
            Some(bytes) => {
                self.store.known.campaign_read(seq, &bytes);
                Some(Arc::new(codec::decode::<CampaignRecord>(&bytes)?))
            }
            None => None,
        };
        self.campaigns.insert(seq, record.clone());
        Ok(record)
    }

    /// Whether campaign `seq` was deleted (its name may still lead to
    /// it), checked unchanged.
    pub async fn deleted(&mut self, seq: u32) -> Result<bool> {
        let key = self.keys.campaign(seq);
        Ok(self.read_checked(key, DELETED_MARK).await?.is_some())
    }

    /// Stores a campaign's record.
    pub fn put_campaign(&mut self, record: &CampaignRecord) {
        let encoded = codec::encode(record);
        self.txn
            .hset(&self.keys.campaign(record.seq), RECORD, &encoded);
        self.campaigns
            .insert(record.seq, Some(Arc::new(record.clone())));
        self.written.campaigns.push((record.seq, encoded));
    }

    async fn campaign_named(&mut self, id: &str) -> Result<Option<Arc<CampaignRecord>>> {
        match self.seq(id).await? {
            Some(seq) => self.campaign(seq).await,
            None => Ok(None),
        }
    }

    /// Reads the states and records of many messages at once (a record
    /// call's), so that planning them asks Redis once per campaign.
    pub async fn prefetch(&mut self, msgs: &[MessageNo]) -> Result<()> {
        let mut by_campaign: Map<u32, Vec<u32>> = Map::default();
        for &msg in msgs {
            if self.states.contains_key(&msg) {
                continue;
            }
            let known = if self.linked_in_redis.contains(&msg) {
                None
            } else {
                self.store.known.message(msg)
            };
            if let Some(known) = known {
                // As the claim read it or this node wrote it: checked like
                // a value read now.
                self.check(
                    self.keys.states(msg.campaign),
                    &keys::number(msg.participant),
                    Some(&known.state),
                );
                self.states.insert(msg, Some(codec::decode(&known.state)?));
                self.participants.insert(msg, Some(known.participant));
                self.known_campaign(msg.campaign)?;
                continue;
            }
            by_campaign
                .entry(msg.campaign)
                .or_default()
                .push(msg.participant);
        }
        if by_campaign.is_empty() {
            return Ok(());
        }
        // One request for every campaign: its record, the states and the
        // participant records.
        let mut pipe = ::redis::pipe();
        let mut asked = Vec::with_capacity(by_campaign.len());
        for (seq, mut numbers) in by_campaign {
            numbers.sort_unstable();
            numbers.dedup();
            let fields: Vec<Vec<u8>> = numbers.iter().map(|&n| keys::number(n).to_vec()).collect();
            pipe.cmd("HGET").arg(self.keys.campaign(seq)).arg("rec");
            pipe.cmd("HMGET").arg(self.keys.states(seq)).arg(&fields);
            pipe.cmd("HMGET")
                .arg(self.keys.participants(seq))
                .arg(&fields);
            asked.push((seq, numbers));
        }
        let answers: Vec<::redis::Value> = self.store.pipe(&pipe).await?;
        let mut answers = answers.into_iter();
        for (seq, numbers) in asked {
            let (Some(record), Some(states), Some(records)) =
                (answers.next(), answers.next(), answers.next())
            else {
                return Err(StoreError::Unavailable(
                    "Redis answered a pipeline short".into(),
                ));
            };
            let typed = |e: ::redis::ParsingError| StoreError::Unavailable(e.to_string());
            let record: Option<Vec<u8>> = ::redis::from_redis_value(record).map_err(typed)?;
            let states: Values = ::redis::from_redis_value(states).map_err(typed)?;
            let records: Values = ::redis::from_redis_value(records).map_err(typed)?;
            if !self.campaigns.contains_key(&seq) {
                self.check(self.keys.campaign(seq), b"rec", record.as_deref());
                if let Some(bytes) = &record {
                    self.store.known.campaign_read(seq, bytes);
                }
                let record = record.map(|b| codec::decode(&b)).transpose()?;
                self.campaigns.insert(seq, record.map(Arc::new));
            }
            for ((n, state), record) in numbers.into_iter().zip(states).zip(records) {
                let msg = MessageNo {
                    campaign: seq,
                    participant: n,
                };
                self.check(self.keys.states(seq), &keys::number(n), state.as_deref());
                let state = state.map(|b| codec::decode(&b)).transpose()?;
                let record = record
                    .map(|b| codec::decode(&b).map(Arc::new))
                    .transpose()?;
                self.states.insert(msg, state);
                self.participants.insert(msg, record);
            }
        }
        Ok(())
    }

    /// Takes campaign `seq`'s record as this node last read it, if it did
    /// (checked unchanged like a value read now).
    fn known_campaign(&mut self, seq: u32) -> Result<()> {
        if self.campaigns.contains_key(&seq) {
            return Ok(());
        }
        if let Some(bytes) = self.store.known.campaign(seq) {
            self.check(self.keys.campaign(seq), b"rec", Some(&bytes));
            self.campaigns
                .insert(seq, Some(Arc::new(codec::decode(&bytes)?)));
        }
        Ok(())
    }

    /// A live message's state (`None`: no such message, or still staged).
    pub async fn state(&mut self, msg: MessageNo) -> Result<Option<MessageState>> {
        if let Some(s) = self.states.get(&msg) {
            return Ok(*s);
        }
        let field = keys::number(msg.participant);
        let state = match self
            .read_checked(self.keys.states(msg.campaign), &field)
            .await?
        {
            Some(bytes) => Some(codec::decode::<MessageState>(&bytes)?),
            None => None,
        };
        self.states.insert(msg, state);
        Ok(state)
    }

    /// A message's participant record (written once, never changed).
    pub async fn participant(&mut self, msg: MessageNo) -> Result<Option<Arc<Participant>>> {
        if let Some(p) = self.participants.get(&msg) {
            return Ok(p.clone());
        }
        let field = keys::number(msg.participant);
        let record = match self
            .store
            .hget(&self.keys.participants(msg.campaign), &field)
            .await?
        {
            Some(bytes) => Some(Arc::new(codec::decode::<Participant>(&bytes)?)),
            None => None,
        };
        self.participants.insert(msg, record.clone());
        Ok(record)
    }

    async fn flags(&mut self, msg: MessageNo) -> Result<Flags> {
        if let Some(f) = self.flags.get(&msg) {
            return Ok(*f);
        }
        let field = keys::number(msg.participant);
        let flags = self
            .read_checked(self.keys.flags(msg.campaign), &field)
            .await?
            .map_or_else(Flags::default, |b| Flags::decode(&b));
        self.flags.insert(msg, flags);
        Ok(flags)
    }

    /// Sets `mask` on a message's flags at `at`, counting each bit newly set.
    async fn set_flags(&mut self, msg: MessageNo, mask: u8, at: Millis) -> Result<Flags> {
        let before = self.flags(msg).await?;
        let mut after = before;
        after.set(mask, at);
        if after != before {
            let field = keys::number(msg.participant);
            self.txn
                .hset(&self.keys.flags(msg.campaign), &field, &after.encode());
            for bit in 0..8 {
                let m = 1u8 << bit;
                if after.bits() & m != 0 && before.bits() & m == 0 {
                    self.txn
                        .hincr(&self.keys.counts(msg.campaign), &format!("flag:{bit}"), 1);
                }
            }
            self.flags.insert(msg, after);
        }
        Ok(before)
    }

    /// Who holds `customer` in campaign `seq`: its live participant's
    /// number, or the twins staged for it (`holding`).
    async fn customer(&mut self, seq: u32, customer: &str) -> Result<Option<Vec<u8>>> {
        let key = (seq, customer.to_owned());
        if let Some(v) = self.customers.get(&key) {
            return Ok(v.clone());
        }
        let value = self
            .read_checked(self.keys.customers(seq), customer.as_bytes())
            .await?;
        self.customers.insert(key, value.clone());
        Ok(value)
    }

    fn set_customer(&mut self, seq: u32, customer: &str, value: Option<Vec<u8>>) {
        let key = self.keys.customers(seq);
        match &value {
            Some(v) => self.txn.hset(&key, customer.as_bytes(), v),
            None => self.txn.hdel(&key, customer.as_bytes()),
        }
        self.customers.insert((seq, customer.to_owned()), value);
    }

    /// The participant numbers campaign `seq` has given out (reserved in
    /// blocks), checked unchanged: `Counts::numbered`.
    pub async fn numbered(&mut self, seq: u32) -> Result<u64> {
        let key = self.keys.campaign(seq);
        let next = self.read_checked(key, NEXT_NUMBER).await?;
        Ok(stored_number(next).unwrap_or(0))
    }

    /// A new participant number of campaign `seq`, from a block reserved
    /// for this plan (numbers of a plan not applied stay unused).
    async fn allocate(&mut self, seq: u32, wanted: usize) -> Result<u32> {
        let (next, end) = self.numbers.get(&seq).copied().unwrap_or((0, 0));
        if next < end {
            self.numbers.insert(seq, (next + 1, end));
            return Ok(next);
        }
        let block = wanted.clamp(16, 100_000) as u32;
        let end: u32 = self
            .store
            .query(
                redis::cmd("HINCRBY")
                    .arg(self.keys.campaign(seq))
                    .arg(NEXT_NUMBER)
                    .arg(block),
            )
            .await?;
        let first = end - block;
        self.numbers.insert(seq, (first + 1, end));
        Ok(first)
    }

    /// Writes a message's new state, keeping its counts and its place in
    /// the due set and the leases.
    pub fn put_state(&mut self, msg: MessageNo, before: Option<MessageState>, after: MessageState) {
        let seq = msg.campaign;
        let field = keys::number(msg.participant);
        let encoded = codec::encode(&after);
        self.txn.hset(&self.keys.states(seq), &field, &encoded);
        self.written.states.push((msg, encoded));
        let counts = self.keys.counts(seq);
        match before {
            Some(b) if b.status != after.status => {
                self.txn.hincr(&counts, b.status.as_str(), -1);
                self.txn.hincr(&counts, after.status.as_str(), 1);
            }
            Some(_) => {}
            None => {
                self.txn.hincr(&counts, "live", 1);
                self.txn.hincr(&counts, after.status.as_str(), 1);
            }
        }
        // Only a pending message is due or leased: one that was not
        // pending before and is not now is in neither set.
        let queued = before.is_some_and(|b| b.status == Status::Pending);
        if queued {
            self.txn.zrem(&self.keys.leases(seq), &field);
        }
        if after.status == Status::Pending {
            self.txn.zadd(&self.keys.due(seq), after.due, &field);
        } else if queued {
            self.txn.zrem(&self.keys.due(seq), &field);
        }
        self.states.insert(msg, Some(after));
    }

    pub fn fact(
        &mut self,
        at: Millis,
        campaign: &str,
        customer: &str,
        kind: FactKind,
        detail: FactDetail,
    ) {
        self.facts.push(Fact {
            cursor: 0,
            at,
            campaign: campaign.to_owned(),
            customer: customer.to_owned(),
            kind,
            detail,
        });
    }

    pub fn suppress(
        &mut self,
        channel: domain::ChannelKind,
        entry: &str,
        why: domain::SuppressReason,
    ) {
        self.txn.hset(
            &self.keys.suppressions(channel),
            suppression_field(entry).as_bytes(),
            why.as_str().as_bytes(),
        );
    }

    /// Admits `p` to campaign `c` under a new number unless its customer is
    /// there already (`None`). A customer only staged by uploads keeps out
    /// none but their own copies: another upload stages a twin (the first
    /// published is kept, so an upload abandoned loses nobody another took),
    /// and one added at once (a fallback) supersedes them all, which their
    /// publish then drops.
    pub async fn admit(
        &mut self,
        c: &CampaignRecord,
        p: &Participant,
        how: Admit,
        batch: usize,
    ) -> Result<Option<MessageNo>> {
        let seq = c.seq;
        let mut twins = Vec::new();
        if let Some(holder) = self.customer(seq, &p.customer).await? {
            match (Holding::parse(&holder), how) {
                (Holding::Live(_), _) => return Ok(None),
                (Holding::Staged(_), Admit::Live) => {}
                (Holding::Staged(staged), Admit::Staged(upload)) => {
                    // Twice in this upload (its own key is not written yet
                    // while its first batch is planned).
                    if staged.iter().any(|t| t.upload == upload) {
                        return Ok(None);
                    }
                    for twin in staged {
                        match self.upload(twin.upload).await? {
                            // Its publish has begun: it ends whole.
                            Some(u) if u.publishing_since.is_some() => return Ok(None),
                            // Kept while it may yet be published, its node
                            // seemingly dead or not: twins keep nobody out.
                            Some(u) if !u.abandoned => twins.push(twin),
                            // Abandoned, ended or expired: it holds nobody.
                            _ => {}
                        }
                    }
                }
            }
        }
        let n = self.allocate(seq, batch).await?;
        let msg = MessageNo {
            campaign: seq,
            participant: n,
        };
        let number = keys::number(n);
        let holder = match how {
            Admit::Live => number.to_vec(),
            Admit::Staged(upload) => {
                twins.push(Twin { number: n, upload });
                holding::staged(&twins)
            }
        };
        self.set_customer(seq, &p.customer, Some(holder));
        self.txn
            .hset(&self.keys.participants(seq), &number, &codec::encode(p));
        self.participants.insert(msg, Some(Arc::new(p.clone())));
        Ok(Some(msg))
    }

    /// Adds `p` to campaign `id` at once with its `accepted` fact;
    /// `Some(false)` for a customer already there, `None` for no campaign.
    async fn add(
        &mut self,
        id: &str,
        p: Participant,
        at: Millis,
        batch: usize,
    ) -> Result<Option<bool>> {
        match self.campaign_named(id).await? {
            Some(c) => self.add_to(&c, p, at, batch).await.map(Some),
            None => Ok(None),
        }
    }

    /// Adds `p` to campaign `c` at once with its `accepted` fact; `false`
    /// for a customer already there.
    pub async fn add_to(
        &mut self,
        c: &CampaignRecord,
        p: Participant,
        at: Millis,
        batch: usize,
    ) -> Result<bool> {
        let Some(msg) = self.admit(c, &p, Admit::Live, batch).await? else {
            return Ok(false);
        };
        Box::pin(self.accept(c, msg, &p, at)).await?;
        Ok(true)
    }

    /// A participant made live: pending, its `accepted` fact, known as the
    /// last message to its address; one without an address, in a campaign
    /// whose fallback takes those, goes to the fallback at once, never sent.
    pub async fn accept(
        &mut self,
        c: &CampaignRecord,
        msg: MessageNo,
        p: &Participant,
        at: Millis,
    ) -> Result<()> {
        self.fact(
            at,
            &c.id,
            &p.customer,
            FactKind::Accepted,
            FactDetail::default(),
        );
        if !p.address.is_empty() {
            self.txn.hmax(
                &self.keys.last(c.decl.channel),
                p.address.to_lowercase().as_bytes(),
                msg.as_u64(),
            );
        }
        let fallback = c.decl.fallback.clone().filter(|f| {
            p.address.is_empty() && rules::falls_back(f, Undelivered::NoAddress, None, at)
        });
        let status = if fallback.is_some() {
            Status::Fallback
        } else {
            Status::Pending
        };
        let state = MessageState {
            status,
            attempts: 0,
            due: 0,
            at,
        };
        self.put_state(msg, None, state);
        if let Some(f) = fallback {
            self.fall_back(&c.id, &f, p, at).await?;
        }
        Ok(())
    }

    /// Sends participant `p` of campaign `source` to fallback `f`.
    async fn fall_back(
        &mut self,
        source: &str,
        f: &Fallback,
        p: &Participant,
        at: Millis,
    ) -> Result<()> {
        let to = FactDetail {
            to: Some(f.campaign.clone()),
            ..FactDetail::default()
        };
        self.fact(at, source, &p.customer, FactKind::Fallback, to);
        match rules::fallback_participant(f, p) {
            Ok(sms) => {
                if Box::pin(self.add(&f.campaign, sms, at, 1)).await?.is_none() {
                    tracing::error!(campaign = %f.campaign, from = %source, "fallback campaign missing; participant not added");
                }
            }
            Err(reason) => {
                let failed = FactDetail {
                    reason: Some(reason),
                    ..FactDetail::default()
                };
                self.fact(at, &f.campaign, &p.customer, FactKind::Failed, failed);
            }
        }
        Ok(())
    }

    /// The rules' decision on an outcome, written with its fact.
    pub async fn record(&mut self, u: Update) -> Result<()> {
        let Some(c) = self.campaign(u.msg.campaign).await? else {
            return Ok(());
        };
        let Some(before) = self.state(u.msg).await? else {
            return Ok(());
        };
        if !rules::applies(before.status, before.attempts, &u.outcome) {
            return Ok(());
        }
        let Some(p) = self.participant(u.msg).await? else {
            return Ok(());
        };
        if let Outcome::Submitted {
            upstream: Some(up), ..
        } = &u.outcome
        {
            for (key, link) in upstream::links(u.msg, up) {
                self.put_upstream(key, Some(link));
            }
        }
        let decision = rules::settle(before, u.at, u.outcome);
        self.fact(u.at, &c.id, &p.customer, decision.fact, decision.detail);
        if let Some(why) = decision.suppress {
            self.suppress(c.decl.channel, &p.address, why);
        }
        self.put_state(u.msg, Some(before), decision.state);
        // A returned bounce counts from when the message was handed over.
        let handed_at = (before.status == Status::Submitted).then_some(before.at);
        if let Some(how) = decision.undelivered {
            self.undelivered(&c, u.msg, &p, how, handed_at, u.at)
                .await?;
        }
        Ok(())
    }

    /// A message ended undelivered: its campaign's fallback takes it once.
    async fn undelivered(
        &mut self,
        c: &CampaignRecord,
        msg: MessageNo,
        p: &Participant,
        how: Undelivered,
        handed_at: Option<Millis>,
        at: Millis,
    ) -> Result<()> {
        let Some(f) = c
            .decl
            .fallback
            .clone()
            .filter(|f| rules::falls_back(f, how, handed_at, at))
        else {
            return Ok(());
        };
        if self.set_flags(msg, FELL_BACK, at).await?.bits() & FELL_BACK != 0 {
            return Ok(());
        }
        self.fall_back(&c.id, &f, p, at).await
    }

    /// A click, open, unsubscribe or opt-out: its flag and fact, and the
    /// suppression the rules decide.
    pub async fn engage(&mut self, e: Engaged) -> Result<()> {
        let Some(c) = self.campaign(e.msg.campaign).await? else {
            return Ok(());
        };
        if self.state(e.msg).await?.is_none() {
            return Ok(());
        }
        let Some(p) = self.participant(e.msg).await? else {
            return Ok(());
        };
        let before = self.set_flags(e.msg, e.kind.bit(), e.at).await?;
        if before.bits() & e.kind.bit() != 0 && !rules::recorded_again(e.kind) {
            return Ok(());
        }
        self.fact(
            e.at,
            &c.id,
            &p.customer,
            FactKind::Engaged(e.kind),
            e.detail,
        );
        if let Some(why) = rules::engaged(e.kind) {
            self.suppress(c.decl.channel, &p.address, why);
        }
        Ok(())
    }

    /// An id's link (checked if found), or a message's part progress
    /// (checked either way: two parts' receipts count down one number).
    async fn upstream_value(&mut self, key: &[u8], progress: bool) -> Result<Option<Vec<u8>>> {
        if let Some(v) = self.upstream.get(key) {
            return Ok(v.clone());
        }
        let value = if progress {
            self.read_checked(self.keys.upstream(), key).await?
        } else {
            let value = self.store.hget(&self.keys.upstream(), key).await?;
            self.note_link(key, value.as_deref());
            value
        };
        self.upstream.insert(key.to_vec(), value.clone());
        Ok(value)
    }

    fn put_upstream(&mut self, key: Vec<u8>, value: Option<Vec<u8>>) {
        match &value {
            Some(v) => self.txn.hset(&self.keys.upstream(), &key, v),
            None => self.txn.hdel(&self.keys.upstream(), &key),
        }
        self.written.links.push((key.clone(), value.clone()));
        self.upstream.insert(key, value);
    }

    /// Reads what matching `receipts` needs at once: the link of each id
    /// in its first reading, then in its other readings where the first
    /// is not known, then the states and records of the messages they lead
    /// to.
    pub async fn prefetch_receipts(&mut self, receipts: &[ReceiptIn]) -> Result<()> {
        let firsts: Vec<Vec<u8>> = receipts
            .iter()
            .filter_map(|r| upstream::lookup_keys(r).next())
            .collect();
        let mut msgs = self.read_links(firsts).await?;
        let others: Vec<Vec<u8>> = receipts
            .iter()
            .filter(|r| {
                upstream::lookup_keys(r)
                    .next()
                    .is_some_and(|k| self.upstream.get(&k).is_some_and(Option::is_none))
            })
            .flat_map(|r| upstream::lookup_keys(r).skip(1))
            .collect();
        msgs.extend(self.read_links(others).await?);
        self.prefetch(&msgs).await
    }

    /// Reads the links of upstream ids not read yet; returns the messages
    /// of those found.
    async fn read_links(&mut self, mut fields: Vec<Vec<u8>>) -> Result<Vec<MessageNo>> {
        fields.retain(|k| !self.upstream.contains_key(k));
        fields.sort_unstable();
        fields.dedup();
        let mut msgs = Vec::new();
        // Links this node recorded: checked like those read now.
        fields.retain(|field| match self.store.known.link(field) {
            Some(link) => {
                self.note_link(field, Some(&link));
                msgs.extend(upstream::decode_link(&link).map(|l| l.msg));
                self.upstream.insert(field.clone(), Some(link));
                false
            }
            None => true,
        });
        for chunk in fields.chunks(10_000) {
            let links: Values = self
                .store
                .query(::redis::cmd("HMGET").arg(self.keys.upstream()).arg(chunk))
                .await?;
            for (field, link) in chunk.iter().zip(links) {
                self.note_link(field, link.as_deref());
                if let Some(l) = link.as_deref().and_then(upstream::decode_link) {
                    msgs.push(l.msg);
                    self.linked_in_redis.insert(l.msg);
                }
                self.upstream.insert(field.clone(), link);
            }
        }
        Ok(msgs)
    }

    /// Has the write check a link read: one found must be unchanged (so
    /// that no two writers settle it); one not found needs no check, as
    /// its receipt is only looked up again later.
    fn note_link(&mut self, field: &[u8], link: Option<&[u8]>) {
        if link.is_some() {
            self.check(self.keys.upstream(), field, link);
        }
    }

    /// Settles one receipt: finds its message by any reading of the id,
    /// and once every part is in (or one failed) records the outcome of a
    /// message still waiting for it.
    pub async fn receipt(&mut self, r: ReceiptIn) -> Result<ReceiptMatch> {
        let mut found = None;
        for key in upstream::lookup_keys(&r) {
            if let Some(link) = self
                .upstream_value(&key, false)
                .await?
                .and_then(|v| upstream::decode_link(&v))
            {
                found = Some((key, link));
                break;
            }
        }
        let Some((key, link)) = found else {
            return Ok(ReceiptMatch::Unknown(Box::new(r)));
        };
        let matched = upstream::matched(&r, &key);
        let Some(delivered) = r.delivered else {
            return Ok(matched);
        };
        self.put_upstream(key, None);
        let progress = upstream::progress_key(link.msg);
        let waiting = if link.parts > 1 {
            self.upstream_value(&progress, true)
                .await?
                .and_then(|v| v.first().copied())
        } else {
            None
        };
        let delivered = match rules::part_receipt(link.parts, waiting, delivered) {
            PartReceipt::AlreadySettled => return Ok(matched),
            PartReceipt::Wait { left } => {
                self.put_upstream(progress, Some(vec![left]));
                return Ok(matched);
            }
            PartReceipt::Settle { delivered } => delivered,
        };
        if link.parts > 1 {
            self.put_upstream(progress, (!delivered).then(|| vec![0]));
        }
        let status = self.state(link.msg).await?.map(|s| s.status);
        if status.is_some_and(rules::receipt_settles) {
            let outcome = Outcome::Receipt {
                delivered,
                detail: r.detail,
            };
            self.record(Update {
                msg: link.msg,
                at: r.at,
                outcome,
            })
            .await?;
        }
        Ok(matched)
    }
}

/// A number Redis keeps as text (a counter, a campaign number).
fn stored_number<T: std::str::FromStr>(raw: Option<Vec<u8>>) -> Option<T> {
    std::str::from_utf8(&raw?).ok()?.parse().ok()
}

/// The error for a write that kept meeting other writers' changes.
pub(super) fn contended(what: &str) -> StoreError {
    StoreError::Unavailable(format!(
        "{what}: Redis values kept changing under {} attempts",
        super::MAX_TRIES
    ))
}
