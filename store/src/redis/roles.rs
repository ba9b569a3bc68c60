//! The Redis engine in each of the store's roles.

use std::{collections::HashMap, sync::Arc};

use async_trait::async_trait;
use domain::{
    AudienceMember, CampaignDecl, CampaignRecord, CampaignState, ChannelKind, Engaged, Engagement,
    FELL_BACK, Fact, MessageNo, MessageState, Millis, Participant, ReceiptIn, ReceiptMatch, Status,
    SuppressReason, Update,
};

use super::{
    MAX_TRIES, Redis, UPLOAD_TTL_SECS, Values, keys,
    known::KnownMessage,
    leftovers, message,
    plan::{Admit, Plan, STAGE_GEN, UPLOAD_FIELDS, Upload, contended},
    publish::{STAGED, STEP},
    retention::ENDED,
    suppression_field,
    txn::Txn,
};
use crate::{
    Catalog, Claim, Counts, Intake, Ledger, LimitState, MessageInfo, Paced, Queue, Result, Shared,
    Store, StoreError, SuppressionQuery, Suppressions, UploadId, codec, flags::Flags,
};

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

/// Every campaign's record, with its number: one request for what the
/// dispatcher reads every tick. KEYS: the campaigns by id; ARGV[1]: the
/// prefix of a campaign's key (same slot: the engine's one hash tag).
/// Run with `EVAL_RO`: a read, which waits for no replica.
const CAMPAIGNS: &str = r#"
local out = {}
for _, seq in ipairs(redis.call('HVALS', KEYS[1])) do
  local record = redis.call('HGET', ARGV[1] .. seq, 'rec')
  if record then out[#out + 1] = {tonumber(seq), record} end
end
return out
"#;

/// Gives a leased message back, due at ARGV[2]: only if it is still
/// leased. KEYS: due, leases.
const GIVE_BACK: &str = r#"
if redis.call('ZREM', KEYS[2], ARGV[1]) == 0 then return 0 end
redis.call('ZADD', KEYS[1], ARGV[2], ARGV[1])
return 1
"#;

/// Feed entries read at a time (each up to `FACTS_PER_ENTRY` facts).
const ENTRIES_PER_READ: usize = 32;

impl Redis {
    async fn give_back(&self, msg: MessageNo, due: Option<Millis>) -> Result<()> {
        let seq = msg.campaign;
        let _: i64 = {
            let mut con = self.con();
            let result = ::redis::Script::new(GIVE_BACK)
                .key(keys::due(seq))
                .key(keys::leases(seq))
                .arg(&keys::number(msg.participant)[..])
                .arg(due.unwrap_or(0))
                .invoke_async(&mut con)
                .await;
            self.seen(result)?
        };
        Ok(())
    }

    /// Stages `items` of campaign `id` under upload `u` in one write.
    async fn stage_part(&self, id: &str, u: u64, items: &[Participant]) -> Result<Vec<bool>> {
        write_until_applied!(self, "staging participants", |p| {
            let c = p
                .campaign_named(id)
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
                let (upl, upn) = (keys::upload(u), keys::upload_numbers(u));
                let ttl = UPLOAD_TTL_SECS.to_string();
                p.txn.hset(&upl, b"campaign", c.seq.to_string().as_bytes());
                // What a publish step read of the upload is out of date.
                p.txn.hincr(&upl, STAGED, 1);
                p.txn.command(&[b"EXPIRE", upl.as_bytes(), ttl.as_bytes()]);
                p.txn.over_members(b"SADD", &upn, &numbers);
                p.txn.command(&[b"EXPIRE", upn.as_bytes(), ttl.as_bytes()]);
                let uploads = keys::uploads_of(c.seq);
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
            .query(::redis::cmd("SMEMBERS").arg(keys::uploads_of(seq)))
            .await?;
        self.staged_of(seq, uploads).await
    }

    /// Participants of `uploads` (of campaign `seq`) still being read.
    async fn staged_of(&self, seq: u32, uploads: Vec<u64>) -> Result<u64> {
        let mut staged = 0;
        for upload in uploads {
            let (fields, count): (Values, u64) = self
                .pipe(
                    ::redis::pipe()
                        .cmd("HMGET")
                        .arg(keys::upload(upload))
                        .arg(&UPLOAD_FIELDS[..])
                        .cmd("SCARD")
                        .arg(keys::upload_numbers(upload)),
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
                        .query(::redis::cmd("SREM").arg(keys::uploads_of(seq)).arg(upload))
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

    async fn state_of(&self, msg: MessageNo) -> Result<Option<MessageState>> {
        self.hget(&keys::states(msg.campaign), &keys::number(msg.participant))
            .await?
            .map(|b| codec::decode(&b))
            .transpose()
    }
}

#[async_trait]
impl Catalog for Redis {
    async fn put_campaign(&self, id: &str, decl: CampaignDecl) -> Result<CampaignRecord> {
        write_until_applied!(self, "declaring a campaign", |p| {
            let record = match p.campaign_named(id).await? {
                Some(c) => CampaignRecord {
                    decl: decl.clone(),
                    ..Arc::unwrap_or_clone(c)
                },
                None => {
                    let seq: u32 = p
                        .store()
                        .query(::redis::cmd("INCR").arg(keys::next_campaign()))
                        .await?;
                    p.txn.hset(
                        &keys::campaigns(),
                        id.as_bytes(),
                        seq.to_string().as_bytes(),
                    );
                    CampaignRecord {
                        id: id.to_owned(),
                        seq,
                        state: CampaignState::Declared,
                        decl: decl.clone(),
                    }
                }
            };
            p.put_campaign(&record);
            Ok(record)
        })
    }

    async fn set_state(&self, id: &str, state: CampaignState) -> Result<CampaignRecord> {
        write_until_applied!(self, "changing a campaign's state", |p| {
            let c = p
                .campaign_named(id)
                .await?
                .ok_or_else(|| StoreError::UnknownCampaign(id.to_owned()))?;
            if state == CampaignState::Finished {
                // Decided on what is read here and checked unchanged:
                // a participant staged or made live meanwhile keeps it
                // running.
                let counts = keys::counts(c.seq);
                let pending = p.read_count(&counts, Status::Pending.as_str()).await?;
                p.read_count(&counts, STAGE_GEN).await?;
                let staged = p.store().staged(c.seq).await?;
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
                p.txn
                    .hset(&keys::campaign(record.seq), ENDED, at.as_bytes());
            }
            if state == CampaignState::Cancelled {
                // Nothing of it is sent any more: its queue goes (a finished
                // campaign's is empty, so Redis has removed it already).
                p.txn.del(&keys::due(record.seq));
                p.txn.del(&keys::leases(record.seq));
            }
            Ok(record)
        })
    }

    async fn campaign(&self, id: &str) -> Result<Option<CampaignRecord>> {
        Ok(self.campaign_by_id(id).await?.map(|(c, _)| c))
    }

    async fn campaigns(&self) -> Result<Vec<CampaignRecord>> {
        let records: Vec<(u32, Vec<u8>)> = {
            let mut con = self.con();
            let result = ::redis::cmd("EVAL_RO")
                .arg(CAMPAIGNS)
                .arg(1)
                .arg(keys::campaigns())
                .arg(keys::campaign_prefix())
                .query_async(&mut con)
                .await;
            self.seen(result)?
        };
        let mut records: Vec<CampaignRecord> = records
            .into_iter()
            .map(|(_, b)| codec::decode(&b))
            .collect::<Result<_>>()?;
        records.sort_unstable_by_key(|c| c.seq);
        Ok(records)
    }

    async fn campaign_by_seq(&self, seq: u32) -> Result<Option<CampaignRecord>> {
        Ok(self.campaign_record(seq).await?.map(|(c, _)| c))
    }

    async fn delete_campaign(&self, id: &str) -> Result<CampaignRecord> {
        let all = self.campaigns().await?;
        write_until_applied!(self, "deleting a campaign", |p| {
            let c = p
                .campaign_named(id)
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
            for key in keys::of_campaign(c.seq) {
                p.txn.del(&key);
            }
            p.txn.hdel(&keys::campaigns(), id.as_bytes());
            // Its links and latest messages go with the next sweep.
            p.txn.hincr(&keys::meta(), leftovers::DELETED, 1);
            Ok(Arc::unwrap_or_clone(c))
        })
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
        write_until_applied!(self, "adding participants", |p| {
            let c = p
                .campaign_named(id)
                .await?
                .ok_or_else(|| StoreError::UnknownCampaign(id.to_owned()))?;
            p.prefetch_customers(c.seq, &items).await?;
            let batch = items.len();
            let mut fresh = Vec::with_capacity(batch);
            for item in items.iter().cloned() {
                fresh.push(p.add(id, item, at, batch).await? == Some(true));
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
        let taken: Vec<Taken> = {
            let mut con = self.con();
            let result = ::redis::Script::new(CLAIM)
                .key(keys::due(campaign))
                .key(keys::leases(campaign))
                .key(keys::states(campaign))
                .key(keys::participants(campaign))
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
            });
        }
        Ok(claims)
    }

    async fn next_due(&self, campaign: u32) -> Result<Option<Millis>> {
        let first: Vec<(Vec<u8>, u64)> = self
            .query(
                ::redis::cmd("ZRANGE")
                    .arg(keys::due(campaign))
                    .arg(0)
                    .arg(0)
                    .arg("WITHSCORES"),
            )
            .await?;
        Ok(first.first().map(|&(_, due)| due))
    }

    async fn release(&self, msgs: &[MessageNo]) -> Result<()> {
        for &msg in msgs {
            self.give_back(msg, None).await?;
        }
        Ok(())
    }

    async fn defer(&self, msg: MessageNo, due: Millis) -> Result<()> {
        self.give_back(msg, Some(due)).await
    }

    async fn record(&self, updates: Vec<Update>) -> Result<()> {
        let msgs: Vec<MessageNo> = updates.iter().map(|u| u.msg).collect();
        write_until_applied!(self, "recording outcomes", |p| {
            p.prefetch(&msgs).await?;
            for u in updates.iter().cloned() {
                p.record(u).await?;
            }
            Ok(())
        })
    }

    async fn receipts(&self, items: Vec<ReceiptIn>) -> Result<Vec<ReceiptMatch>> {
        write_until_applied!(self, "matching receipts", |p| {
            p.prefetch_receipts(&items).await?;
            let mut matches = Vec::with_capacity(items.len());
            for r in items.iter().cloned() {
                matches.push(p.receipt(r).await?);
            }
            Ok(matches)
        })
    }
}

#[async_trait]
impl Ledger for Redis {
    async fn engage(&self, items: Vec<Engaged>) -> Result<()> {
        let msgs: Vec<MessageNo> = items.iter().map(|e| e.msg).collect();
        write_until_applied!(self, "recording engagement", |p| {
            p.prefetch(&msgs).await?;
            for e in items.iter().cloned() {
                p.engage(e).await?;
            }
            Ok(())
        })
    }

    async fn events(&self, after: u64, limit: usize) -> Result<Vec<Fact>> {
        if limit == 0 {
            return Ok(Vec::new());
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
        let (stored, in_flight, uploads): (HashMap<String, i64>, u64, Vec<u64>) = self
            .pipe(
                ::redis::pipe()
                    .cmd("HGETALL")
                    .arg(keys::counts(seq))
                    .cmd("ZCARD")
                    .arg(keys::leases(seq))
                    .cmd("SMEMBERS")
                    .arg(keys::uploads_of(seq)),
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
        })
    }

    async fn audience(&self, id: &str, outcome: &str) -> Result<Vec<AudienceMember>> {
        let c = self
            .campaign(id)
            .await?
            .ok_or_else(|| StoreError::UnknownCampaign(id.to_owned()))?;
        let wanted = rules::audience_statuses(outcome, c.decl.channel.reports_delivery());
        let flag = match outcome {
            "fallback" => FELL_BACK,
            _ => Engagement::ALL
                .into_iter()
                .find(|e| e.as_str() == outcome)
                .map_or(0, Engagement::bit),
        };
        let states = self.hash_entries(&keys::states(c.seq)).await?;
        let flags: HashMap<Vec<u8>, Flags> = self
            .hash_entries(&keys::flags(c.seq))
            .await?
            .into_iter()
            .map(|(n, f)| (n, Flags::decode(&f)))
            .collect();
        // (number, customer filled below, when)
        let mut chosen: Vec<(u32, Option<Millis>)> = Vec::new();
        for (field, state) in states {
            let Some(n) = keys::parse_number(&field) else {
                continue;
            };
            let state: MessageState = codec::decode(&state)?;
            let flags = flags.get(&field).copied().unwrap_or_default();
            if wanted.contains(&state.status) {
                chosen.push((n, (state.at > 0).then_some(state.at)));
            } else if flags.bits() & flag != 0 {
                // A flag's row has the time of that outcome (the click).
                chosen.push((n, flags.at(flag)));
            }
        }
        let at: HashMap<u32, Option<Millis>> = chosen.iter().copied().collect();
        let numbers = chosen.into_iter().map(|(n, _)| n).collect();
        Ok(self
            .records(c.seq, numbers)
            .await?
            .into_iter()
            .map(|(n, p)| AudienceMember {
                msg: MessageNo {
                    campaign: c.seq,
                    participant: n,
                },
                customer: p.customer,
                address: p.address,
                at: at.get(&n).copied().flatten(),
            })
            .collect())
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
                let records: Values = self
                    .query(
                        ::redis::cmd("HMGET")
                            .arg(keys::participants(chunk[0].campaign))
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
            &keys::participants(msg.campaign),
            &keys::number(msg.participant),
        )
        .await?
        .map(|b| codec::decode(&b))
        .transpose()
    }

    async fn exists(&self, msg: MessageNo) -> Result<bool> {
        self.query(
            ::redis::cmd("HEXISTS")
                .arg(keys::states(msg.campaign))
                .arg(&keys::number(msg.participant)[..]),
        )
        .await
    }

    async fn last_message_to(
        &self,
        channel: ChannelKind,
        address: &str,
    ) -> Result<Option<MessageNo>> {
        let last: Option<u64> = self
            .query(
                ::redis::cmd("HGET")
                    .arg(keys::last(channel))
                    .arg(address.to_lowercase()),
            )
            .await?;
        let Some(msg) = last.map(MessageNo::from_u64) else {
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

    async fn put_meta_if(
        &self,
        key: &str,
        expected: Option<&[u8]>,
        value: Vec<u8>,
    ) -> Result<bool> {
        let mut txn = Txn::default();
        txn.read(&keys::meta(), key.as_bytes(), expected);
        txn.hset(&keys::meta(), key.as_bytes(), &value);
        self.apply(txn).await
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
        out.sort_unstable_by(|a, b| a.0.cmp(&b.0));
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
        let key = keys::suppressions(channel);
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
        let removed: u64 = self
            .query(
                ::redis::cmd("HDEL")
                    .arg(keys::suppressions(channel))
                    .arg(suppression_field(entry)),
            )
            .await?;
        Ok(removed > 0)
    }

    async fn suppressed(
        &self,
        channel: ChannelKind,
        entry: &str,
    ) -> Result<Option<SuppressReason>> {
        let why: Option<String> = self
            .query(
                ::redis::cmd("HGET")
                    .arg(keys::suppressions(channel))
                    .arg(suppression_field(entry)),
            )
            .await?;
        Ok(why.map(|w| SuppressReason::parse(&w)))
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
        let reasons: Vec<Option<String>> = self
            .query(
                ::redis::cmd("HMGET")
                    .arg(keys::suppressions(channel))
                    .arg(&fields),
            )
            .await?;
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
        let all = self.hash_entries(&keys::suppressions(channel)).await?;
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
