//! The Redis engine in each of the store's roles.

use std::{collections::HashMap, sync::Arc};

use async_trait::async_trait;
use domain::{
    CampaignDecl, CampaignRecord, CampaignState, ChannelKind, Engaged, Engagement, FELL_BACK, Fact,
    MessageNo, MessageState, Millis, Participant, ReceiptIn, ReceiptMatch, Status, SuppressReason,
    Update,
};
use futures_util::future::try_join_all;

use super::{
    MAX_TRIES, Redis, UPLOAD_TTL_SECS, Values,
    keys::{self, Shard},
    known::KnownMessage,
    leftovers, message,
    plan::{
        Admit, DELETED_MARK, NEXT_NUMBER, Plan, RECORD, STAGE_GEN, UPLOAD_FIELDS, Upload, contended,
    },
    publish::{STAGED, STEP},
    retention::ENDED,
    suppression_field,
    txn::Txn,
};
use crate::{
    AUDIENCE_SCAN_PER_MEMBER, AudienceMessages, Catalog, Claim, Counts, Intake, Lease, Ledger,
    LimitState, MessageInfo, Paced, Queue, Result, Shared, Store, StoreError, SuppressionQuery,
    Suppressions, UploadId, codec, flags::Flags, upstream,
};

/// Message states an audience page reads in one request (with their
/// flags): one `HMGET` of each, as `participants` reads records.
const FIELDS_PER_READ: u32 = 10_000;

/// Leases due messages: gives back leases run out (due at once: they
/// were due when claimed), then moves up to ARGV[2] messages due at ARGV[1]
/// from the due set to the leases until ARGV[3]; answers each with its
/// state and participant record. KEYS: due, leases, states, participants.
const CLAIM: &str = r#"
local function each_slice(command, key, args, step)
  for s = 1, #args, step do
    redis.call(command, key, unpack(args, s, math.min(s + step - 1, #args)))
  end
end
local expired = redis.call('ZRANGEBYSCORE', KEYS[2], '-inf', ARGV[1])
if #expired > 0 then
  each_slice('ZREM', KEYS[2], expired, 1000)
  local again = {}
  for k, n in ipairs(expired) do again[2 * k - 1] = 0; again[2 * k] = n end
  each_slice('ZADD', KEYS[1], again, 1000)
end
local taken = redis.call('ZRANGEBYSCORE', KEYS[1], '-inf', ARGV[1], 'LIMIT', 0, ARGV[2])
if #taken == 0 then return {} end
each_slice('ZREM', KEYS[1], taken, 1000)
local leased = {}
for k, n in ipairs(taken) do leased[2 * k - 1] = ARGV[3]; leased[2 * k] = n end
each_slice('ZADD', KEYS[2], leased, 1000)
local out = {}
for s = 1, #taken, 1000 do
  local slice = {unpack(taken, s, math.min(s + 999, #taken))}
  local states = redis.call('HMGET', KEYS[3], unpack(slice))
  local records = redis.call('HMGET', KEYS[4], unpack(slice))
  for k, n in ipairs(slice) do out[s + k - 1] = {n, states[k], records[k]} end
end
return out
"#;

/// The number of campaign ARGV[1], given now if it has none (or its
/// name still leads to number ARGV[4], which holds none): the next number, or with
/// ARGV[2] shards, the next in shard ARGV[3] (-1: any). KEYS: the
/// campaigns by id, the next number.
const NAME: &str = r#"
local seq = redis.call('HGET', KEYS[1], ARGV[1])
if seq and seq == ARGV[4] then seq = nil end
if seq then return tonumber(seq) end
local n = redis.call('INCR', KEYS[2])
local wanted = tonumber(ARGV[3])
if wanted >= 0 then
  local skip = (wanted - n) % tonumber(ARGV[2])
  if skip > 0 then
    n = n + skip
    redis.call('SET', KEYS[2], n)
  end
end
redis.call('HSET', KEYS[1], ARGV[1], n)
return n
"#;

/// Forgets that name ARGV[1] leads to deleted campaign ARGV[2], counting
/// the deletion once (meta field ARGV[3], for the leftovers' sweep).
/// KEYS: the campaigns by id, meta.
const FORGET_NAME: &str = r#"
if redis.call('HGET', KEYS[1], ARGV[1]) ~= ARGV[2] then return 0 end
redis.call('HDEL', KEYS[1], ARGV[1])
redis.call('HINCRBY', KEYS[2], ARGV[3], 1)
return 1
"#;

/// Gives a leased message back, due at ARGV[2]: only if it is still
/// leased by the claim that leased it until ARGV[3]. KEYS: due, leases.
const GIVE_BACK: &str = r#"
if tonumber(redis.call('ZSCORE', KEYS[2], ARGV[1])) ~= tonumber(ARGV[3]) then return 0 end
redis.call('ZREM', KEYS[2], ARGV[1])
redis.call('ZADD', KEYS[1], ARGV[2], ARGV[1])
return 1
"#;

/// A change of one message that the store plans with others: an outcome,
/// an engagement.
trait MessageChange: Clone + Send + Sync {
    /// What a write of them does, for the error of one that kept meeting
    /// other writers.
    const WHAT: &'static str;

    fn msg(&self) -> MessageNo;

    /// Plans this change in `p`.
    fn plan(self, p: &mut Plan<'_>) -> impl Future<Output = Result<()>> + Send;
}

impl MessageChange for Update {
    const WHAT: &'static str = "recording outcomes";

    fn msg(&self) -> MessageNo {
        self.msg
    }

    fn plan(self, p: &mut Plan<'_>) -> impl Future<Output = Result<()>> + Send {
        p.record(self)
    }
}

impl MessageChange for Engaged {
    const WHAT: &'static str = "recording engagement";

    fn msg(&self) -> MessageNo {
        self.msg
    }

    fn plan(self, p: &mut Plan<'_>) -> impl Future<Output = Result<()>> + Send {
        p.engage(self)
    }
}

/// Feed entries read at a time (each up to `FACTS_PER_ENTRY` facts).
const ENTRIES_PER_READ: usize = 32;

impl Redis {
    async fn give_back(&self, lease: Lease, due: Option<Millis>) -> Result<()> {
        let seq = lease.msg.campaign;
        let shard = self.shard(seq);
        let _: i64 = {
            let mut con = self.con();
            let result = ::redis::Script::new(GIVE_BACK)
                .key(shard.due(seq))
                .key(shard.leases(seq))
                .arg(&keys::number(lease.msg.participant)[..])
                .arg(due.unwrap_or(0))
                .arg(lease.until)
                .invoke_async(&mut con)
                .await;
            self.seen(result)?
        };
        Ok(())
    }

    /// Stages `items` of campaign `id` under upload `u` in one write.
    async fn stage_part(&self, id: &str, u: u64, items: &[Participant]) -> Result<Vec<bool>> {
        let seq = self.seq_of(id).await?;
        write_until_applied!(self, self.shard(seq), "staging participants", |p| {
            let c = p
                .campaign(seq)
                .await?
                .ok_or_else(|| StoreError::UnknownCampaign(id.to_owned()))?;
            if let Some(staged) = p.upload(u).await? {
                if staged.campaign != c.seq {
                    return Err(StoreError::Unavailable(format!(
                        "upload {u} was staged for another campaign than `{id}`"
                    )));
                }
                if staged.publishing_since.is_some() || staged.abandoned {
                    return Err(StoreError::Unavailable(format!(
                        "upload {u} is being published or abandoned: nothing more is staged under it"
                    )));
                }
            }
            p.prefetch_customers(c.seq, items).await?;
            let batch = items.len();
            let mut fresh = Vec::with_capacity(batch);
            let mut numbers = Vec::new();
            for item in items {
                let admitted = p.admit(&c, item, Admit::Staged(u), batch).await?;
                fresh.push(admitted.is_some());
                numbers.extend(admitted.map(|m| keys::number(m.participant)));
            }
            if !numbers.is_empty() {
                let (upl, upn) = (p.keys.upload(u), p.keys.upload_numbers(u));
                let ttl = UPLOAD_TTL_SECS.to_string();
                p.txn.hset(&upl, b"campaign", c.seq.to_string().as_bytes());
                // What a publish step read of the upload is out of date.
                p.txn.hincr(&upl, STAGED, 1);
                p.txn.command(&[b"EXPIRE", upl.as_bytes(), ttl.as_bytes()]);
                p.txn.over_members(b"SADD", &upn, &numbers);
                p.txn.command(&[b"EXPIRE", upn.as_bytes(), ttl.as_bytes()]);
                let uploads = p.keys.uploads_of(c.seq);
                p.txn
                    .command(&[b"SADD", uploads.as_bytes(), u.to_string().as_bytes()]);
                p.stage_changed(c.seq).await?;
            }
            Ok(fresh)
        })
    }

    /// Participants of uploads of campaign `seq` still being read.
    async fn staged(&self, seq: u32) -> Result<u64> {
        let uploads: Vec<u64> = self
            .query(::redis::cmd("SMEMBERS").arg(self.shard(seq).uploads_of(seq)))
            .await?;
        self.staged_of(seq, uploads).await
    }

    /// Participants of `uploads` (of campaign `seq`) still being read.
    async fn staged_of(&self, seq: u32, uploads: Vec<u64>) -> Result<u64> {
        let shard = self.shard(seq);
        let mut staged = 0;
        for upload in uploads {
            let (fields, count): (Values, u64) = self
                .pipe(
                    ::redis::pipe()
                        .cmd("HMGET")
                        .arg(shard.upload(upload))
                        .arg(&UPLOAD_FIELDS[..])
                        .cmd("SCARD")
                        .arg(shard.upload_numbers(upload)),
                )
                .await?;
            match Upload::from_fields(fields)? {
                Some(u) if u.lives(self, upload).await? => staged += count,
                // Its node seems dead: not counted, but kept, for the node
                // may only have missed heartbeats (its hash expires if not).
                Some(u) if !u.abandoned => {}
                // Ended, abandoned, or expired: nothing of it is kept.
                _ => {
                    let _: i64 = self
                        .query(::redis::cmd("SREM").arg(shard.uploads_of(seq)).arg(upload))
                        .await?;
                }
            }
        }
        Ok(staged)
    }

    /// Participant records of campaign `seq` by number, in number order;
    /// numbers with no record (deleted meanwhile) are left out.
    pub(super) async fn records(
        &self,
        seq: u32,
        mut numbers: Vec<u32>,
    ) -> Result<Vec<(u32, Participant)>> {
        numbers.sort_unstable();
        let msgs: Vec<MessageNo> = numbers
            .into_iter()
            .map(|participant| MessageNo {
                campaign: seq,
                participant,
            })
            .collect();
        let records = self.participants(&msgs).await?;
        Ok(msgs
            .into_iter()
            .zip(records)
            .filter_map(|(msg, record)| Some((msg.participant, record?)))
            .collect())
    }

    /// `items` grouped by their shard (`shard_of` each), in order.
    fn by_shard<'s, T>(
        items: Vec<T>,
        shard_of: impl Fn(&T) -> Shard<'s>,
    ) -> Vec<(Shard<'s>, Vec<T>)> {
        let mut groups: Vec<(Shard<'s>, Vec<T>)> = Vec::new();
        for item in items {
            let shard = shard_of(&item);
            match groups.iter_mut().find(|(s, _)| *s == shard) {
                Some((_, group)) => group.push(item),
                None => groups.push((shard, vec![item])),
            }
        }
        groups
    }

    /// Plans and writes `changes` of messages, one write per shard (all
    /// at once), each reading its messages in one request first.
    async fn change_messages<C: MessageChange>(&self, changes: Vec<C>) -> Result<()> {
        let shards = Self::by_shard(changes, |c| self.shard(c.msg().campaign));
        try_join_all(shards.into_iter().map(|(shard, changes)| async move {
            let msgs: Vec<MessageNo> = changes.iter().map(MessageChange::msg).collect();
            write_until_applied!(self, shard, C::WHAT, |p| {
                p.prefetch(&msgs).await?;
                for change in changes.iter().cloned() {
                    change.plan(&mut p).await?;
                }
                Ok(())
            })
        }))
        .await?;
        Ok(())
    }

    /// Matches receipts whose links are in `shard`, in one write.
    async fn match_receipts(
        &self,
        shard: Shard<'_>,
        items: &[ReceiptIn],
    ) -> Result<Vec<ReceiptMatch>> {
        write_until_applied!(self, shard, "matching receipts", |p| {
            p.prefetch_receipts(items).await?;
            let mut matches = Vec::with_capacity(items.len());
            for r in items.iter().cloned() {
                matches.push(p.receipt(r).await?);
            }
            Ok(matches)
        })
    }

    /// The shard holding a link of each receipt's id (in any of its
    /// readings), if one does: the shard of a link this node wrote, else
    /// asked of every shard (one request each, all at once).
    async fn receipt_shards(&self, items: &[ReceiptIn]) -> Result<Vec<Option<Shard<'_>>>> {
        let readings: Vec<Vec<Vec<u8>>> = items
            .iter()
            .map(|r| upstream::lookup_keys(r).collect())
            .collect();
        // Only the id as the SMSC gave it: another reading of it this node
        // linked may be an older message's, settled since by another node,
        // where a write would match the id as given once its link is in.
        let mut linked: Vec<Option<MessageNo>> = readings
            .iter()
            .map(|keys| Some(upstream::decode_link(&self.known.link(keys.first()?)?)?.msg))
            .collect();
        let mut fields: Vec<&[u8]> = readings
            .iter()
            .zip(&linked)
            .filter(|(_, msg)| msg.is_none())
            .flat_map(|(keys, _)| keys.iter().map(Vec::as_slice))
            .collect();
        if !fields.is_empty() {
            fields.sort_unstable();
            fields.dedup();
            let latest = self.latest_links(&fields).await?;
            for (keys, msg) in readings.iter().zip(&mut linked) {
                if msg.is_none() {
                    // The first reading found, as a write matches it.
                    *msg = keys
                        .iter()
                        .find_map(|key| latest.get(key.as_slice()).copied());
                }
            }
        }
        Ok(linked
            .into_iter()
            .map(|msg| msg.map(|m| self.shard(m.campaign)))
            .collect())
    }

    /// The message each of `fields` links to in any shard (one request
    /// per shard, all at once). An SMSC that gave an id again may have
    /// left the older message's link in another shard: the later
    /// campaign's message is taken, as one shard's hash keeps the last.
    async fn latest_links<'f>(&self, fields: &[&'f [u8]]) -> Result<HashMap<&'f [u8], MessageNo>> {
        let answers = try_join_all(self.shards.all().map(|shard| async move {
            let mut links: Values = Vec::with_capacity(fields.len());
            for chunk in fields.chunks(10_000) {
                let found: Values = self
                    .query(::redis::cmd("HMGET").arg(shard.upstream()).arg(chunk))
                    .await?;
                links.extend(found);
            }
            Ok::<_, StoreError>(links)
        }))
        .await?;
        let mut latest: HashMap<&[u8], MessageNo> = HashMap::new();
        for links in answers {
            for (&field, link) in fields.iter().zip(links) {
                let Some(msg) = link
                    .as_deref()
                    .and_then(upstream::decode_link)
                    .map(|l| l.msg)
                else {
                    continue;
                };
                let kept = latest.entry(field).or_insert(msg);
                *kept = (*kept).max(msg);
            }
        }
        Ok(latest)
    }

    /// The number of campaign `id`.
    async fn seq_of(&self, id: &str) -> Result<u32> {
        self.campaign_seq(id)
            .await?
            .ok_or_else(|| StoreError::UnknownCampaign(id.to_owned()))
    }

    /// The number of campaign `id`, given now if it has none; in shard
    /// `wanted`, if given now and that is asked. `unused`: a number its
    /// name may still lead to that holds no campaign (deleted, or never
    /// recorded): a new one is given instead.
    async fn name_campaign(
        &self,
        id: &str,
        wanted: Option<u16>,
        unused: Option<u32>,
    ) -> Result<u32> {
        let mut con = self.con();
        let result = ::redis::Script::new(NAME)
            .key(keys::campaigns())
            .key(keys::next_campaign())
            .arg(id)
            .arg(self.shards.count())
            .arg(wanted.map_or(-1, i32::from))
            .arg(unused.map(|d| d.to_string()).unwrap_or_default())
            .invoke_async(&mut con)
            .await;
        self.seen(result)
    }

    /// Forgets that `id` leads to deleted campaign `seq`. The mark of its
    /// deletion stays (a few bytes): a declaration that read the name
    /// before it went still finds the campaign deleted, and takes a new
    /// number instead of recording one under this.
    async fn forget_name(&self, id: &str, seq: u32) -> Result<()> {
        let mut con = self.con();
        let result = ::redis::Script::new(FORGET_NAME)
            .key(keys::campaigns())
            .key(keys::meta())
            .arg(id)
            .arg(seq)
            .arg(leftovers::DELETED)
            .invoke_async(&mut con)
            .await;
        self.seen::<i64>(result).map(drop)
    }

    async fn state_of(&self, msg: MessageNo) -> Result<Option<MessageState>> {
        let seq = msg.campaign;
        self.hget(&self.shard(seq).states(seq), &keys::number(msg.participant))
            .await?
            .map(|b| codec::decode(&b))
            .transpose()
    }
}

#[async_trait]
impl Catalog for Redis {
    async fn put_campaign_if(
        &self,
        id: &str,
        decl: CampaignDecl,
        numbered: Option<u64>,
    ) -> Result<CampaignRecord> {
        // A fallback's messages are added by its sources' writes: it is in
        // their shard.
        let fallback = match &decl.fallback {
            Some(f) => self.campaign_seq(&f.campaign).await?,
            None => None,
        };
        let wanted = fallback.map(|seq| self.shard(seq).index);
        let mut unused = None;
        for _ in 0..MAX_TRIES {
            let seq = self.name_campaign(id, wanted, unused).await?;
            if wanted.is_some_and(|w| w != self.shard(seq).index) {
                if self.campaign_record(seq).await?.is_none() {
                    // Named, never recorded (its node died in between):
                    // named again, in the fallback's shard.
                    unused = Some(seq);
                    continue;
                }
                return Err(StoreError::FallbackElsewhere {
                    campaign: id.to_owned(),
                    fallback: decl
                        .fallback
                        .as_ref()
                        .map(|f| f.campaign.clone())
                        .unwrap_or_default(),
                });
            }
            let declared =
                write_until_applied!(self, self.shard(seq), "declaring a campaign", |p| {
                    let record = match p.campaign(seq).await? {
                        // Only a declared campaign is declared again; the
                        // API checked so, but a start may have come since.
                        Some(c) if c.state != CampaignState::Declared => {
                            return Err(StoreError::StateChanged {
                                campaign: id.to_owned(),
                                state: c.state.as_str(),
                            });
                        }
                        Some(_)
                            if numbered.is_some() && numbered != Some(p.numbered(seq).await?) =>
                        {
                            return Err(StoreError::ParticipantsCame {
                                campaign: id.to_owned(),
                            });
                        }
                        Some(c) => Some(CampaignRecord {
                            decl: decl.clone(),
                            ..Arc::unwrap_or_clone(c)
                        }),
                        None if numbered.is_some() => {
                            return Err(StoreError::ParticipantsCame {
                                campaign: id.to_owned(),
                            });
                        }
                        None if p.deleted(seq).await? => None,
                        None => Some(CampaignRecord {
                            id: id.to_owned(),
                            seq,
                            state: CampaignState::Declared,
                            decl: decl.clone(),
                        }),
                    };
                    if let Some(record) = &record {
                        p.put_campaign(record);
                    }
                    Ok(record)
                })?;
            match declared {
                Some(record) => return Ok(record),
                // Its name still led to a campaign deleted meanwhile.
                None => unused = Some(seq),
            }
        }
        Err(contended("declaring a campaign"))
    }

    async fn change_state(
        &self,
        id: &str,
        from: &[CampaignState],
        state: CampaignState,
    ) -> Result<CampaignRecord> {
        let seq = self.seq_of(id).await?;
        write_until_applied!(self, self.shard(seq), "changing a campaign's state", |p| {
            let c = p
                .campaign(seq)
                .await?
                .ok_or_else(|| StoreError::UnknownCampaign(id.to_owned()))?;
            // Read in the write's transaction: a change applied meanwhile
            // makes it read again.
            if !from.contains(&c.state) {
                return Err(StoreError::StateChanged {
                    campaign: id.to_owned(),
                    state: c.state.as_str(),
                });
            }
            if state == CampaignState::Finished {
                // Decided on what is read here and checked unchanged:
                // a participant staged or made live meanwhile keeps it
                // running.
                let counts = p.keys.counts(seq);
                let pending = p.read_count(&counts, Status::Pending.as_str()).await?;
                p.read_count(&counts, STAGE_GEN).await?;
                let staged = p.store().staged(seq).await?;
                if !rules::may_finish(pending, 0, staged) {
                    return Ok(Arc::unwrap_or_clone(c));
                }
            }
            let record = CampaignRecord {
                state,
                ..Arc::unwrap_or_clone(c)
            };
            p.put_campaign(&record);
            if rules::closed_to_participants(state).is_some() {
                // Retention counts from here.
                let at = domain::now_ms().to_string();
                p.txn.hset(&p.keys.campaign(seq), ENDED, at.as_bytes());
            }
            if state == CampaignState::Cancelled {
                // Nothing of it is sent any more: its queue goes (a finished
                // campaign's is empty, so Redis has removed it already).
                p.txn.del(&p.keys.due(seq));
                p.txn.del(&p.keys.leases(seq));
            }
            Ok(record)
        })
    }

    async fn campaign(&self, id: &str) -> Result<Option<CampaignRecord>> {
        Ok(self.campaign_by_id(id).await?.map(|(c, _)| c))
    }

    async fn campaigns(&self) -> Result<Vec<CampaignRecord>> {
        let numbers: Vec<u32> = self
            .query(::redis::cmd("HVALS").arg(keys::campaigns()))
            .await?;
        let mut by_shard: HashMap<u16, Vec<u32>> = HashMap::new();
        for seq in numbers {
            by_shard.entry(self.shard(seq).index).or_default().push(seq);
        }
        // One request per shard, all at once.
        let shards = by_shard.into_iter().map(|(index, numbers)| async move {
            let shard = self.shards.at(index);
            let mut pipe = ::redis::pipe();
            for &seq in &numbers {
                pipe.cmd("HGET").arg(shard.campaign(seq)).arg(RECORD);
            }
            self.pipe::<Vec<Option<Vec<u8>>>>(&pipe).await
        });
        let mut records = Vec::new();
        for found in try_join_all(shards).await? {
            for record in found.into_iter().flatten() {
                records.push(codec::decode::<CampaignRecord>(&record)?);
            }
        }
        records.sort_unstable_by_key(|c| c.seq);
        Ok(records)
    }

    async fn campaign_by_seq(&self, seq: u32) -> Result<Option<CampaignRecord>> {
        Ok(self.campaign_record(seq).await?.map(|(c, _)| c))
    }

    async fn delete_campaign(&self, id: &str) -> Result<CampaignRecord> {
        let all = self.campaigns().await?;
        let seq = self.seq_of(id).await?;
        let shard = self.shard(seq);
        // In a block of its own: a refusal is looked at, not returned at once.
        let deleted = async {
            write_until_applied!(self, shard, "deleting a campaign", |p| {
                let c = p
                    .campaign(seq)
                    .await?
                    .ok_or_else(|| StoreError::UnknownCampaign(id.to_owned()))?;
                if rules::closed_to_participants(c.state).is_none() {
                    return Err(StoreError::Open {
                        campaign: id.to_owned(),
                        state: c.state.as_str(),
                    });
                }
                // Its participants would be lost: a source's late bounce
                // still falls back.
                if let Some(source) = all
                    .iter()
                    .find(|s| s.decl.fallback.as_ref().is_some_and(|f| f.campaign == id))
                {
                    return Err(StoreError::FallbackOf {
                        campaign: id.to_owned(),
                        source_campaign: source.id.clone(),
                    });
                }
                for key in shard.of_campaign(seq) {
                    p.txn.del(&key);
                }
                // A mark that it was deleted, kept: its name (forgotten
                // next, in another slot) or a declaration that read the
                // name never leads to a new campaign under its number.
                let record = shard.campaign(seq);
                p.txn
                    .command(&[b"HSET", record.as_bytes(), DELETED_MARK, b"1"]);
                Ok(Arc::unwrap_or_clone(c))
            })
        }
        .await;
        match deleted {
            Ok(deleted) => {
                self.forget_name(id, seq).await?;
                Ok(deleted)
            }
            // Deleted already, but its name was not forgotten (Redis was
            // lost in between): forgotten now, so the deletion is counted.
            Err(StoreError::UnknownCampaign(_))
                if self
                    .hget(&shard.campaign(seq), DELETED_MARK)
                    .await?
                    .is_some() =>
            {
                self.forget_name(id, seq).await?;
                Err(StoreError::UnknownCampaign(id.to_owned()))
            }
            Err(e) => Err(e),
        }
    }
}

#[async_trait]
impl Intake for Redis {
    async fn add_participants(
        &self,
        id: &str,
        items: Vec<Participant>,
        at: Millis,
    ) -> Result<Vec<bool>> {
        let _order = self.abandoning.read().await;
        let seq = self.seq_of(id).await?;
        write_until_applied!(self, self.shard(seq), "adding participants", |p| {
            let c = p
                .campaign(seq)
                .await?
                .ok_or_else(|| StoreError::UnknownCampaign(id.to_owned()))?;
            p.prefetch_customers(c.seq, &items).await?;
            let batch = items.len();
            let mut fresh = Vec::with_capacity(batch);
            for item in items.iter().cloned() {
                fresh.push(p.add_to(&c, item, at, batch).await?);
            }
            Ok(fresh)
        })
    }

    fn new_upload(&self) -> UploadId {
        UploadId(self.next_upload())
    }

    async fn stage(
        &self,
        id: &str,
        upload: UploadId,
        items: Vec<Participant>,
    ) -> Result<Vec<bool>> {
        let _order = self.abandoning.read().await;
        // In writes of a publish step's size: none holds Redis long.
        let mut fresh = Vec::with_capacity(items.len());
        for part in items.chunks(STEP) {
            fresh.extend(self.stage_part(id, upload.0, part).await?);
        }
        Ok(fresh)
    }

    async fn publish(&self, upload: UploadId, at: Millis) -> Result<u64> {
        self.publish_upload(upload.0, at).await
    }

    async fn abandon(&self, upload: UploadId) -> Result<()> {
        self.abandon_upload(upload.0).await
    }
}

#[async_trait]
impl Queue for Redis {
    async fn claim(
        &self,
        campaign: u32,
        now: Millis,
        max: usize,
        lease: Millis,
    ) -> Result<Vec<Claim>> {
        type Taken = (Vec<u8>, Option<Vec<u8>>, Option<Vec<u8>>);
        let shard = self.shard(campaign);
        let taken: Vec<Taken> = {
            let mut con = self.con();
            let result = ::redis::Script::new(CLAIM)
                .key(shard.due(campaign))
                .key(shard.leases(campaign))
                .key(shard.states(campaign))
                .key(shard.participants(campaign))
                .arg(now)
                .arg(max)
                .arg(now + lease)
                .invoke_async(&mut con)
                .await;
            self.seen(result)?
        };
        let mut claims = Vec::with_capacity(taken.len());
        for (field, state, record) in taken {
            let msg = message(campaign, &field).ok_or_else(|| StoreError::Corrupt {
                what: "due set",
                detail: format!(
                    "member {:?} is not a number",
                    String::from_utf8_lossy(&field)
                ),
            })?;
            let (Some(state), Some(record)) = (state, record) else {
                return Err(StoreError::Corrupt {
                    what: "participant",
                    detail: format!("message {msg:?} has no record"),
                });
            };
            let decoded: MessageState = codec::decode(&state)?;
            let participant: Participant = codec::decode(&record)?;
            self.known.claimed(
                msg,
                KnownMessage {
                    state,
                    participant: Arc::new(participant.clone()),
                },
            );
            claims.push(Claim {
                msg,
                participant,
                attempts: decoded.attempts,
                lease_until: now + lease,
            });
        }
        Ok(claims)
    }

    async fn next_due(&self, campaign: u32) -> Result<Option<Millis>> {
        let first: Vec<(Vec<u8>, u64)> = self
            .query(
                ::redis::cmd("ZRANGE")
                    .arg(self.shard(campaign).due(campaign))
                    .arg(0)
                    .arg(0)
                    .arg("WITHSCORES"),
            )
            .await?;
        Ok(first.first().map(|&(_, due)| due))
    }

    async fn release(&self, leases: &[Lease]) -> Result<()> {
        for &lease in leases {
            self.give_back(lease, None).await?;
        }
        Ok(())
    }

    async fn defer(&self, lease: Lease, due: Millis) -> Result<()> {
        self.give_back(lease, Some(due)).await
    }

    async fn record(&self, updates: Vec<Update>) -> Result<()> {
        self.change_messages(updates).await
    }

    async fn receipts(&self, items: Vec<ReceiptIn>) -> Result<Vec<ReceiptMatch>> {
        if self.shards.one() {
            return self.match_receipts(self.shards.at(0), &items).await;
        }
        // Each receipt in the shard that has its message's link; those of
        // none are unknown (yet).
        let shards = self.receipt_shards(&items).await?;
        let mut matches: Vec<Option<ReceiptMatch>> = Vec::with_capacity(items.len());
        let mut located = Vec::new();
        for (at, (r, shard)) in items.into_iter().zip(shards).enumerate() {
            match shard {
                Some(shard) => {
                    located.push((at, shard, r));
                    matches.push(None);
                }
                None => matches.push(Some(ReceiptMatch::Unknown(Box::new(r)))),
            }
        }
        let groups = Self::by_shard(located, |&(_, shard, _)| shard);
        let matched = try_join_all(groups.into_iter().map(|(shard, located)| async move {
            let (places, receipts): (Vec<usize>, Vec<ReceiptIn>) =
                located.into_iter().map(|(at, _, r)| (at, r)).unzip();
            let matched = self.match_receipts(shard, &receipts).await?;
            Ok::<_, StoreError>(places.into_iter().zip(matched))
        }))
        .await?;
        for (at, m) in matched.into_iter().flatten() {
            matches[at] = Some(m);
        }
        Ok(matches.into_iter().flatten().collect())
    }
}

#[async_trait]
impl Ledger for Redis {
    async fn engage(&self, items: Vec<Engaged>) -> Result<()> {
        self.change_messages(items).await
    }

    async fn events(&self, after: u64, limit: usize) -> Result<Vec<Fact>> {
        if limit == 0 {
            return Ok(Vec::new());
        }
        if !self.shards.one() {
            self.move_facts(limit).await?;
        }
        // Each entry is a run of one write's facts, its id the run's first
        // cursor: start from the run holding `after + 1`.
        let wanted = format!("{}-0", after + 1);
        let holding: Vec<(String, Vec<Vec<u8>>)> = self
            .query(
                ::redis::cmd("XREVRANGE")
                    .arg(keys::feed())
                    .arg(&wanted)
                    .arg("-")
                    .arg("COUNT")
                    .arg(1),
            )
            .await?;
        let mut start = holding.first().map_or(wanted, |(id, _)| id.clone());
        let mut facts = Vec::with_capacity(limit);
        // A few entries at a time: one may hold thousands of facts.
        loop {
            let entries: Vec<(String, Vec<Vec<u8>>)> = self
                .query(
                    ::redis::cmd("XRANGE")
                        .arg(keys::feed())
                        .arg(&start)
                        .arg("+")
                        .arg("COUNT")
                        .arg(ENTRIES_PER_READ),
                )
                .await?;
            let read_all = entries.len() < ENTRIES_PER_READ;
            for (id, fields) in entries {
                let first: u64 = id
                    .split_once('-')
                    .and_then(|(c, _)| c.parse().ok())
                    .ok_or_else(|| StoreError::Corrupt {
                        what: "fact",
                        detail: format!("feed entry id {id}"),
                    })?;
                let run = fields.get(1).ok_or_else(|| StoreError::Corrupt {
                    what: "fact",
                    detail: format!("feed entry {id} has no facts"),
                })?;
                let run: Vec<Fact> = codec::decode(run)?;
                for (cursor, mut fact) in (first..).zip(run) {
                    if cursor <= after {
                        continue;
                    }
                    if facts.len() == limit {
                        return Ok(facts);
                    }
                    fact.cursor = cursor;
                    facts.push(fact);
                }
                start = format!("({id}");
            }
            if read_all || facts.len() == limit {
                return Ok(facts);
            }
        }
    }

    async fn counts(&self, id: &str) -> Result<Counts> {
        let seq = self
            .campaign_seq(id)
            .await?
            .ok_or_else(|| StoreError::UnknownCampaign(id.to_owned()))?;
        let shard = self.shard(seq);
        let (stored, in_flight, uploads, numbered): (
            HashMap<String, i64>,
            u64,
            Vec<u64>,
            Option<u64>,
        ) = self
            .pipe(
                ::redis::pipe()
                    .cmd("HGETALL")
                    .arg(shard.counts(seq))
                    .cmd("ZCARD")
                    .arg(shard.leases(seq))
                    .cmd("SMEMBERS")
                    .arg(shard.uploads_of(seq))
                    .cmd("HGET")
                    .arg(shard.campaign(seq))
                    .arg(NEXT_NUMBER),
            )
            .await?;
        let count = |field: &str| stored.get(field).copied().unwrap_or(0).max(0) as u64;
        let flag = |bit: u8| count(&format!("flag:{}", bit.trailing_zeros()));
        let mut by_status: std::collections::BTreeMap<String, u64> = Status::ALL
            .iter()
            .map(|s| (s.as_str().to_owned(), count(s.as_str())))
            .collect();
        for e in Engagement::ALL {
            by_status.insert(e.as_str().to_owned(), flag(e.bit()));
        }
        *by_status
            .entry(Status::Fallback.as_str().to_owned())
            .or_default() += flag(FELL_BACK);
        Ok(Counts {
            participants: count("live"),
            by_status,
            in_flight,
            staged: self.staged_of(seq, uploads).await?,
            numbered: numbered.unwrap_or(0),
        })
    }

    async fn audience_messages(
        &self,
        id: &str,
        outcome: &str,
        from: u32,
        limit: usize,
    ) -> Result<AudienceMessages> {
        let c = self
            .campaign(id)
            .await?
            .ok_or_else(|| StoreError::UnknownCampaign(id.to_owned()))?;
        let wanted = rules::audience_statuses(outcome, c.decl.channel.reports_delivery());
        let flag = rules::audience_flag(outcome);
        let shard = self.shard(c.seq);
        // Numbers below this have been given out; none above.
        let numbered = self
            .hget(&shard.campaign(c.seq), NEXT_NUMBER)
            .await?
            .and_then(|n| keys::parse_number(&n))
            .unwrap_or(0);
        // At least one member a page, so that paging moves on.
        let limit = limit.max(1);
        let last = u64::from(from)
            .saturating_add((limit.saturating_mul(AUDIENCE_SCAN_PER_MEMBER)) as u64)
            .min(u64::from(numbered)) as u32;
        // (number, when)
        let mut chosen: Vec<(u32, Option<Millis>)> = Vec::new();
        let mut next = (from < numbered).then_some(from);
        while let Some(first) = next.filter(|&n| n < last && chosen.len() < limit) {
            let end = first.saturating_add(FIELDS_PER_READ).min(last);
            let fields: Vec<Vec<u8>> = (first..end).map(|n| keys::number(n).to_vec()).collect();
            let mut read = ::redis::pipe();
            read.cmd("HMGET").arg(shard.states(c.seq)).arg(&fields);
            // A status outcome has no flag to read.
            if flag != 0 {
                read.cmd("HMGET").arg(shard.flags(c.seq)).arg(&fields);
            }
            let (states, flags): (Values, Option<Values>) = if flag != 0 {
                let (states, flags) = self.pipe(&read).await?;
                (states, Some(flags))
            } else {
                let (states,): (Values,) = self.pipe(&read).await?;
                (states, None)
            };
            let flags = flags.unwrap_or_else(|| vec![None; fields.len()]);
            next = Some(end);
            for ((n, state), flags) in (first..end).zip(states).zip(flags) {
                let Some(state) = state else {
                    continue;
                };
                let state: MessageState = codec::decode(&state)?;
                let flags = flags.map(|f| Flags::decode(&f)).unwrap_or_default();
                if wanted.contains(&state.status) {
                    chosen.push((n, (state.at > 0).then_some(state.at)));
                } else if flags.bits() & flag != 0 {
                    // A flag's row has the time of that outcome (the click).
                    chosen.push((n, flags.at(flag)));
                }
                if chosen.len() == limit {
                    next = Some(n + 1);
                    break;
                }
            }
        }
        Ok(AudienceMessages {
            messages: chosen
                .into_iter()
                .map(|(participant, at)| {
                    let msg = MessageNo {
                        campaign: c.seq,
                        participant,
                    };
                    (msg, at)
                })
                .collect(),
            next: next.filter(|&n| n < numbered),
        })
    }

    async fn message(&self, msg: MessageNo) -> Result<Option<MessageInfo>> {
        let Some(campaign) = self.campaign_by_seq(msg.campaign).await? else {
            return Ok(None);
        };
        let Some(state) = self.state_of(msg).await? else {
            return Ok(None);
        };
        let Some(p) = self.participant(msg).await? else {
            return Ok(None);
        };
        Ok(Some(MessageInfo {
            campaign,
            customer: p.customer,
            address: p.address,
            status: state.status,
            attempts: state.attempts,
        }))
    }

    async fn participants(&self, msgs: &[MessageNo]) -> Result<Vec<Option<Participant>>> {
        let mut out = Vec::with_capacity(msgs.len());
        // One HMGET per 10,000 messages of a campaign.
        for run in msgs.chunk_by(|a, b| a.campaign == b.campaign) {
            for chunk in run.chunks(10_000) {
                let fields: Vec<Vec<u8>> = chunk
                    .iter()
                    .map(|m| keys::number(m.participant).to_vec())
                    .collect();
                let seq = chunk[0].campaign;
                let records: Values = self
                    .query(
                        ::redis::cmd("HMGET")
                            .arg(self.shard(seq).participants(seq))
                            .arg(&fields),
                    )
                    .await?;
                for record in records {
                    out.push(record.map(|b| codec::decode(&b)).transpose()?);
                }
            }
        }
        Ok(out)
    }

    async fn participant(&self, msg: MessageNo) -> Result<Option<Participant>> {
        self.hget(
            &self.shard(msg.campaign).participants(msg.campaign),
            &keys::number(msg.participant),
        )
        .await?
        .map(|b| codec::decode(&b))
        .transpose()
    }

    async fn exists(&self, msg: MessageNo) -> Result<bool> {
        self.query(
            ::redis::cmd("HEXISTS")
                .arg(self.shard(msg.campaign).states(msg.campaign))
                .arg(&keys::number(msg.participant)[..]),
        )
        .await
    }

    async fn last_message_to(
        &self,
        channel: ChannelKind,
        address: &str,
    ) -> Result<Option<MessageNo>> {
        let address = address.to_lowercase();
        // The latest among the shards' latest.
        let address = &address;
        let lasts = try_join_all(self.shards.all().map(|shard| async move {
            self.query::<Option<u64>>(::redis::cmd("HGET").arg(shard.last(channel)).arg(address))
                .await
        }))
        .await?;
        let Some(msg) = lasts.into_iter().flatten().max().map(MessageNo::from_u64) else {
            return Ok(None);
        };
        // Its campaign may have been deleted since.
        Ok(self.exists(msg).await?.then_some(msg))
    }
}

#[async_trait]
impl LimitState for Redis {
    async fn meta(&self, key: &str) -> Result<Option<Vec<u8>>> {
        self.hget(&keys::meta(), key.as_bytes()).await
    }

    async fn put_meta(&self, key: &str, value: Vec<u8>) -> Result<()> {
        self.query(::redis::cmd("HSET").arg(keys::meta()).arg(key).arg(value))
            .await
    }

    async fn delete_meta(&self, key: &str) -> Result<()> {
        self.query(::redis::cmd("HDEL").arg(keys::meta()).arg(key))
            .await
    }

    async fn put_meta_if(
        &self,
        key: &str,
        expected: Option<&[u8]>,
        value: Vec<u8>,
    ) -> Result<bool> {
        let mut txn = Txn::default();
        txn.read(&keys::meta(), key.as_bytes(), expected);
        txn.hset(&keys::meta(), key.as_bytes(), &value);
        self.apply(txn, keys::global()).await
    }

    async fn meta_prefix(&self, prefix: &str) -> Result<Vec<(String, Vec<u8>)>> {
        let mut out = Vec::new();
        let mut cursor = 0u64;
        loop {
            let (next, page): (u64, Vec<(String, Vec<u8>)>) = self
                .query(
                    ::redis::cmd("HSCAN")
                        .arg(keys::meta())
                        .arg(cursor)
                        .arg("MATCH")
                        .arg(format!("{}*", glob_escape(prefix)))
                        .arg("COUNT")
                        .arg(1000),
                )
                .await?;
            out.extend(page);
            if next == 0 {
                break;
            }
            cursor = next;
        }
        // HSCAN may return a field twice (the hash grew while scanned).
        out.sort_unstable_by(|a, b| a.0.cmp(&b.0));
        out.dedup_by(|a, b| a.0 == b.0);
        Ok(out)
    }
}

/// `text` matched literally by a Redis glob pattern.
fn glob_escape(text: &str) -> String {
    let mut out = String::with_capacity(text.len());
    for c in text.chars() {
        if matches!(c, '*' | '?' | '[' | ']' | '\\') {
            out.push('\\');
        }
        out.push(c);
    }
    out
}

impl Redis {
    /// The hashes of a channel's suppressions: those added through the
    /// API (in the global slot) and those the rules decided in each
    /// shard's writes; one with one shard.
    fn suppression_keys(&self, channel: ChannelKind) -> Vec<String> {
        let mut keys: Vec<String> = std::iter::once(keys::global())
            .chain(self.shards.all())
            .map(|shard| shard.suppressions(channel))
            .collect();
        keys.dedup();
        keys
    }

    /// The first reason found for each of `fields` among the channel's
    /// suppression hashes.
    async fn suppression_reasons(
        &self,
        channel: ChannelKind,
        fields: &[String],
    ) -> Result<Vec<Option<String>>> {
        let found = try_join_all(self.suppression_keys(channel).into_iter().map(
            |key| async move {
                self.query::<Vec<Option<String>>>(::redis::cmd("HMGET").arg(key).arg(fields))
                    .await
            },
        ))
        .await?;
        let mut reasons = vec![None; fields.len()];
        for hash in found {
            for (reason, why) in reasons.iter_mut().zip(hash) {
                if reason.is_none() {
                    *reason = why;
                }
            }
        }
        Ok(reasons)
    }
}

#[async_trait]
impl Suppressions for Redis {
    async fn suppress_many(
        &self,
        channel: ChannelKind,
        entries: Vec<String>,
        why: SuppressReason,
    ) -> Result<()> {
        if entries.is_empty() {
            return Ok(());
        }
        let key = keys::global().suppressions(channel);
        // Not one transaction: Redis runs other requests between the
        // slices (1,000,000 entries in one held it 0.5-0.7 s). A
        // failure midway leaves some added; adding again is harmless.
        let mut pipe = ::redis::pipe();
        for chunk in entries.chunks(10_000) {
            let cmd = pipe.cmd("HSET").arg(&key);
            for entry in chunk {
                cmd.arg(suppression_field(entry)).arg(why.as_str());
            }
            cmd.ignore();
        }
        self.pipe::<()>(&pipe).await
    }

    async fn unsuppress(&self, channel: ChannelKind, entry: &str) -> Result<bool> {
        let field = suppression_field(entry);
        let removed = try_join_all(self.suppression_keys(channel).into_iter().map(|key| {
            let field = &field;
            async move {
                self.query::<u64>(::redis::cmd("HDEL").arg(key).arg(field))
                    .await
            }
        }))
        .await?;
        Ok(removed.into_iter().sum::<u64>() > 0)
    }

    async fn suppressed(
        &self,
        channel: ChannelKind,
        entry: &str,
    ) -> Result<Option<SuppressReason>> {
        let reasons = self
            .suppression_reasons(channel, &[suppression_field(entry)])
            .await?;
        Ok(reasons
            .into_iter()
            .flatten()
            .next()
            .map(|w| SuppressReason::parse(&w)))
    }

    async fn participants_suppressions(
        &self,
        channel: ChannelKind,
        participants: &[&Participant],
    ) -> Result<Vec<Option<SuppressReason>>> {
        if participants.is_empty() {
            return Ok(Vec::new());
        }
        let fields: Vec<String> = participants
            .iter()
            .flat_map(|p| {
                [
                    suppression_field(&p.address),
                    suppression_field(&p.customer),
                ]
            })
            .collect();
        let reasons = self.suppression_reasons(channel, &fields).await?;
        Ok(reasons
            .chunks(2)
            .map(|pair| {
                pair.iter()
                    .flatten()
                    .next()
                    .map(|why| SuppressReason::parse(why))
            })
            .collect())
    }

    async fn suppressions(
        &self,
        channel: ChannelKind,
        query: &SuppressionQuery,
    ) -> Result<Vec<(String, SuppressReason)>> {
        let mut all: HashMap<Vec<u8>, Vec<u8>> = HashMap::new();
        for key in self.suppression_keys(channel) {
            for (entry, why) in self.hash_entries(&key).await? {
                all.entry(entry).or_insert(why);
            }
        }
        let entries = all.iter().filter_map(|(entry, why)| {
            let entry = std::str::from_utf8(entry).ok()?;
            Some((entry, SuppressReason::parse(std::str::from_utf8(why).ok()?)))
        });
        Ok(crate::listing::page(entries, query))
    }
}

/// GCRA on the server's clock: grants up to ARGV[2] slots of ARGV[1]
/// microseconds each, at most ARGV[2] back to back; answers {granted,
/// microseconds until the next free slot, the limits' version}. KEYS: the
/// theoretical arrival time of the next slot, the limits' version.
const PACE: &str = r#"
local t = redis.call('TIME')
local now = tonumber(t[1]) * 1000000 + tonumber(t[2])
local interval = tonumber(ARGV[1])
local wanted = tonumber(ARGV[2])
local tolerance = (wanted - 1) * interval
local base = tonumber(redis.call('GET', KEYS[1]) or '0')
if base < now then base = now end
local granted = 0
if now + tolerance >= base then
  granted = math.floor((now + tolerance - base) / interval) + 1
  if granted > wanted then granted = wanted end
end
local tat = base + granted * interval
if granted > 0 then
  redis.call('SET', KEYS[1], string.format('%.0f', tat), 'PX', math.ceil((tat - now) / 1000) + 1000)
end
local retry = 0
if granted < wanted then retry = math.max(interval, tat - tolerance - now) end
return {granted, retry, tonumber(redis.call('GET', KEYS[2]) or '0')}
"#;

/// Counts KEYS[1] up by at most ARGV[2], never past ARGV[1]; keeps it
/// ARGV[3] ms; answers how much it counted.
const COUNT_UP_TO: &str = r#"
local count = tonumber(redis.call('GET', KEYS[1]) or '0')
local granted = math.min(tonumber(ARGV[2]), tonumber(ARGV[1]) - count)
if granted <= 0 then return 0 end
redis.call('INCRBY', KEYS[1], granted)
redis.call('PEXPIRE', KEYS[1], ARGV[3])
return granted
"#;

/// Takes or keeps task KEYS[1] for node ARGV[1] for ARGV[2] ms.
const LEAD: &str = r#"
local holder = redis.call('GET', KEYS[1])
if holder and holder ~= ARGV[1] then return 0 end
redis.call('SET', KEYS[1], ARGV[1], 'PX', ARGV[2])
return 1
"#;

#[async_trait]
impl Shared for Redis {
    async fn pace(&self, key: &str, rate_per_sec: f64, wanted: u32) -> Result<Paced> {
        // Never faster than the rate: the interval rounds up.
        let interval_us = (1e6 / rate_per_sec).ceil().max(1.0) as u64;
        let (granted, retry_us, limits_version): (u32, u64, u64) = {
            let mut con = self.con();
            let result = ::redis::Script::new(PACE)
                .key(keys::pace(key))
                .key(keys::limits_version(key))
                .arg(interval_us)
                .arg(wanted.max(1))
                .invoke_async(&mut con)
                .await;
            self.seen(result)?
        };
        Ok(Paced {
            granted,
            retry_ms: retry_us.div_ceil(1000),
            limits_version,
        })
    }

    async fn limits_changed(&self, key: &str) -> Result<()> {
        self.query(::redis::cmd("INCR").arg(keys::limits_version(key)))
            .await
    }

    async fn count_up_to(&self, key: &str, max: u64, wanted: u64, keep_ms: Millis) -> Result<u64> {
        let mut con = self.con();
        let result = ::redis::Script::new(COUNT_UP_TO)
            .key(keys::count(key))
            .arg(max)
            .arg(wanted)
            .arg(keep_ms.max(1))
            .invoke_async(&mut con)
            .await;
        self.seen(result)
    }

    async fn lead(&self, task: &str, ttl_ms: Millis) -> Result<bool> {
        let led: i64 = {
            let mut con = self.con();
            let result = ::redis::Script::new(LEAD)
                .key(keys::lead(task))
                .arg(self.instance)
                .arg(ttl_ms)
                .invoke_async(&mut con)
                .await;
            self.seen(result)?
        };
        Ok(led == 1)
    }
}

impl Store for Redis {
    fn write_refusal(&self) -> Option<String> {
        let failure = self
            .failure
            .lock()
            .unwrap_or_else(|e| e.into_inner())
            .clone();
        // A read that succeeds clears `failure`; replicas that lag stay
        // until a write reaches them.
        failure.or_else(|| {
            (self.con.lagging()).map(|why| format!("Redis at {} failed: {why}", self.url))
        })
    }

    fn shared(&self) -> Option<&dyn Shared> {
        Some(self)
    }

    fn requests(&self) -> Option<u64> {
        Some(self.requests.load(std::sync::atomic::Ordering::Relaxed))
    }
}
