//! The embedded engine in each of the store's roles.

use std::sync::atomic::Ordering;

use async_trait::async_trait;
use domain::{
    CampaignDecl, CampaignRecord, CampaignState, ChannelKind, Engaged, Fact, MessageNo, Millis,
    Participant, ReceiptIn, ReceiptMatch, SuppressReason, Update,
};

use super::{Embedded, FACT_RUN, Op, io, participant_records, read_participant, suppression_key};
use crate::{
    AUDIENCE_SCAN_PER_MEMBER, AudienceMessages, Catalog, Claim, Counts, Intake, Lease, Ledger,
    LimitState, MessageInfo, Queue, Result, Store, StoreError, SuppressionQuery, Suppressions,
    UploadId, codec,
};

#[async_trait]
impl Catalog for Embedded {
    async fn put_campaign_if(
        &self,
        id: &str,
        decl: CampaignDecl,
        numbered: Option<u64>,
    ) -> Result<CampaignRecord> {
        self.submit(|reply| Op::PutCampaign {
            id: id.to_owned(),
            decl: Box::new(decl),
            numbered,
            reply,
        })
        .await
    }

    async fn change_state(
        &self,
        id: &str,
        from: &[CampaignState],
        to: CampaignState,
    ) -> Result<CampaignRecord> {
        self.submit(|reply| Op::SetState {
            id: id.to_owned(),
            from: from.to_vec(),
            state: to,
            reply,
        })
        .await
    }

    async fn campaign(&self, id: &str) -> Result<Option<CampaignRecord>> {
        Ok(self
            .shared
            .index()
            .campaigns
            .get(id)
            .map(|c| c.record.clone()))
    }

    async fn campaigns(&self) -> Result<Vec<CampaignRecord>> {
        Ok(self
            .shared
            .index()
            .campaigns
            .values()
            .map(|c| c.record.clone())
            .collect())
    }

    async fn campaign_by_seq(&self, seq: u32) -> Result<Option<CampaignRecord>> {
        Ok(self.shared.index().by_seq(seq).map(|c| c.record.clone()))
    }

    async fn delete_campaign(&self, id: &str) -> Result<CampaignRecord> {
        let record = self
            .submit(|reply| Op::DeleteCampaign {
                id: id.to_owned(),
                reply,
            })
            .await?;
        // The campaign is gone whatever this answers; links it leaves
        // now go with the next deletion.
        if let Err(e) = self.forget_leftovers().await {
            tracing::warn!(error = %e, "could not remove a deleted campaign's upstream links");
        }
        Ok(record)
    }
}

#[async_trait]
impl Intake for Embedded {
    async fn add_participants(
        &self,
        id: &str,
        items: Vec<Participant>,
        at: Millis,
    ) -> Result<Vec<bool>> {
        self.submit(|reply| Op::Add {
            id: id.to_owned(),
            items,
            at,
            reply,
        })
        .await
    }

    fn new_upload(&self) -> UploadId {
        UploadId(self.shared.last_upload.fetch_add(1, Ordering::Relaxed) + 1)
    }

    async fn stage(
        &self,
        id: &str,
        upload: UploadId,
        items: Vec<Participant>,
    ) -> Result<Vec<bool>> {
        self.submit(|reply| Op::Stage {
            id: id.to_owned(),
            upload,
            items,
            reply,
        })
        .await
    }

    async fn publish(&self, upload: UploadId, at: Millis) -> Result<u64> {
        self.submit(|reply| Op::Publish { upload, at, reply }).await
    }

    async fn abandon(&self, upload: UploadId) -> Result<()> {
        self.submit(|reply| Op::Abandon { upload, reply }).await
    }
}

#[async_trait]
impl Queue for Embedded {
    async fn claim(
        &self,
        campaign: u32,
        now: Millis,
        max: usize,
        lease: Millis,
    ) -> Result<Vec<Claim>> {
        let mut leased: Vec<(u32, u32, usize)> = {
            let mut index = self.shared.index();
            let Some(c) = index.by_seq(campaign) else {
                return Ok(Vec::new());
            };
            let claimed = c.claim(now, max, now + lease).into_iter().enumerate();
            claimed.map(|(i, (n, attempts))| (n, attempts, i)).collect()
        };
        // Read in key order (a fresh campaign's claims are consecutive),
        // then back in the order they were claimed: oldest due first.
        leased.sort_unstable_by_key(|&(n, ..)| n);
        let numbers: Vec<u32> = leased.iter().map(|&(n, ..)| n).collect();
        let records = participant_records(&self.shared.ks.participants, campaign, &numbers)?;
        let mut claims = Vec::with_capacity(leased.len());
        for ((participant, attempts, order), record) in leased.into_iter().zip(records) {
            let msg = MessageNo {
                campaign,
                participant,
            };
            let participant = record.ok_or_else(|| StoreError::Corrupt {
                what: "participant",
                detail: format!("message {msg:?} has no record"),
            })?;
            claims.push((
                order,
                Claim {
                    msg,
                    participant,
                    attempts,
                    lease_until: now + lease,
                },
            ));
        }
        claims.sort_unstable_by_key(|&(order, _)| order);
        Ok(claims.into_iter().map(|(_, claim)| claim).collect())
    }

    async fn next_due(&self, campaign: u32) -> Result<Option<Millis>> {
        Ok(self
            .shared
            .index()
            .by_seq(campaign)
            .and_then(|c| c.next_due()))
    }

    async fn release(&self, leases: &[Lease]) -> Result<()> {
        let mut index = self.shared.index();
        for lease in leases {
            if let Some(c) = index.by_seq(lease.msg.campaign) {
                c.give_back(lease.msg.participant, lease.until, None);
            }
        }
        Ok(())
    }

    async fn defer(&self, lease: Lease, due: Millis) -> Result<()> {
        if let Some(c) = self.shared.index().by_seq(lease.msg.campaign) {
            c.give_back(lease.msg.participant, lease.until, Some(due));
        }
        Ok(())
    }

    async fn record(&self, updates: Vec<Update>) -> Result<()> {
        self.submit(|reply| Op::Record { updates, reply }).await
    }

    async fn receipts(&self, items: Vec<ReceiptIn>) -> Result<Vec<ReceiptMatch>> {
        self.submit(|reply| Op::Receipts { items, reply }).await
    }
}

#[async_trait]
impl Ledger for Embedded {
    async fn engage(&self, items: Vec<Engaged>) -> Result<()> {
        self.submit(|reply| Op::Engage { items, reply }).await
    }

    async fn events(&self, after: u64, limit: usize) -> Result<Vec<Fact>> {
        let durable = self.shared.durable_cursor.load(Ordering::Acquire);
        if after >= durable {
            return Ok(Vec::new());
        }
        let wanted = codec::cursor_key(after + 1);
        // The run holding `after + 1` starts at or before it.
        let first = match self.shared.ks.facts.range(..=wanted).next_back() {
            Some(kv) => kv.key().map_err(io)?.to_vec(),
            None => wanted.to_vec(),
        };
        let mut events = Vec::with_capacity(limit.min(FACT_RUN));
        for kv in self
            .shared
            .ks
            .facts
            .range(first..=codec::cursor_key(durable).to_vec())
        {
            let run: Vec<Fact> = codec::decode(&kv.value().map_err(io)?)?;
            for event in run
                .into_iter()
                .filter(|e| e.cursor > after && e.cursor <= durable)
            {
                if events.len() == limit {
                    return Ok(events);
                }
                events.push(event);
            }
        }
        Ok(events)
    }

    async fn counts(&self, id: &str) -> Result<Counts> {
        let index = self.shared.index();
        let c = index
            .campaigns
            .get(id)
            .ok_or_else(|| StoreError::UnknownCampaign(id.to_owned()))?;
        Ok(c.counts())
    }

    async fn audience_messages(
        &self,
        id: &str,
        outcome: &str,
        from: u32,
        limit: usize,
    ) -> Result<AudienceMessages> {
        let index = self.shared.index();
        let c = index
            .campaigns
            .get(id)
            .ok_or_else(|| StoreError::UnknownCampaign(id.to_owned()))?;
        let wanted = rules::audience_statuses(outcome, c.record.decl.channel.reports_delivery());
        let flag = rules::audience_flag(outcome);
        // At least one message a page, so that paging moves on.
        let limit = limit.max(1);
        let scan = limit.saturating_mul(AUDIENCE_SCAN_PER_MEMBER);
        let mut page = AudienceMessages::default();
        for (looked, (participant, slot)) in c.slots_from(from).enumerate() {
            // The page is full, or has looked at its share of numbers.
            if page.messages.len() == limit || looked == scan {
                page.next = Some(participant);
                break;
            }
            let Some(s) = slot.filter(|s| wanted.contains(&s.status) || s.engaged & flag != 0)
            else {
                continue;
            };
            let msg = MessageNo {
                campaign: c.record.seq,
                participant,
            };
            // A flag's row has the time of that outcome (the click).
            let at = if wanted.contains(&s.status) {
                (s.at > 0).then_some(s.at)
            } else {
                self.flags_of(msg).at(flag)
            };
            page.messages.push((msg, at));
        }
        Ok(page)
    }

    async fn participants(&self, msgs: &[MessageNo]) -> Result<Vec<Option<Participant>>> {
        let mut records = Vec::with_capacity(msgs.len());
        // Ascending runs of one campaign's (an audience page's) are read
        // with range scans.
        for run in msgs.chunk_by(|a, b| a.campaign == b.campaign && a.participant < b.participant) {
            let numbers: Vec<u32> = run.iter().map(|m| m.participant).collect();
            records.extend(participant_records(
                &self.shared.ks.participants,
                run[0].campaign,
                &numbers,
            )?);
        }
        Ok(records)
    }

    async fn message(&self, msg: MessageNo) -> Result<Option<MessageInfo>> {
        let info = self.shared.index().by_seq(msg.campaign).and_then(|c| {
            let slot = c.slot(msg.participant)?;
            Some(MessageInfo {
                campaign: c.record.clone(),
                customer: slot.customer.to_string(),
                address: String::new(),
                status: slot.status,
                attempts: slot.attempts,
            })
        });
        let Some(mut info) = info else {
            return Ok(None);
        };
        // Deleted meanwhile: then there is no such message any more.
        let Some(p) = self.participant(msg).await? else {
            return Ok(None);
        };
        info.address = p.address;
        Ok(Some(info))
    }

    async fn participant(&self, msg: MessageNo) -> Result<Option<Participant>> {
        read_participant(&self.shared.ks.participants, msg)
    }

    async fn exists(&self, msg: MessageNo) -> Result<bool> {
        Ok(self
            .shared
            .index()
            .by_seq(msg.campaign)
            .is_some_and(|c| c.slot(msg.participant).is_some()))
    }

    async fn last_message_to(
        &self,
        channel: ChannelKind,
        address: &str,
    ) -> Result<Option<MessageNo>> {
        // Candidates by the address's hash, newest campaign and message
        // first; the first whose record has the address is the one.
        let candidates: Vec<MessageNo> = {
            let index = self.shared.index();
            let mut campaigns: Vec<_> = index
                .campaigns
                .values()
                .filter(|c| c.record.decl.channel == channel)
                .collect();
            campaigns.sort_unstable_by_key(|c| std::cmp::Reverse(c.record.seq));
            campaigns
                .into_iter()
                .flat_map(|c| {
                    c.maybe_sent_to(address).map(|participant| MessageNo {
                        campaign: c.record.seq,
                        participant,
                    })
                })
                .collect()
        };
        for msg in candidates {
            if self
                .participant(msg)
                .await?
                .is_some_and(|p| p.address.eq_ignore_ascii_case(address))
            {
                return Ok(Some(msg));
            }
        }
        Ok(None)
    }
}

#[async_trait]
impl LimitState for Embedded {
    async fn meta(&self, key: &str) -> Result<Option<Vec<u8>>> {
        Ok(self
            .shared
            .ks
            .meta
            .get(key)
            .map_err(io)?
            .map(|v| v.to_vec()))
    }

    async fn put_meta(&self, key: &str, value: Vec<u8>) -> Result<()> {
        self.submit(|reply| Op::Meta {
            key: key.to_owned(),
            value: Some(value),
            expected: None,
            reply,
        })
        .await
        .map(drop)
    }

    async fn delete_meta(&self, key: &str) -> Result<()> {
        self.submit(|reply| Op::Meta {
            key: key.to_owned(),
            value: None,
            expected: None,
            reply,
        })
        .await
        .map(drop)
    }

    async fn put_meta_if(
        &self,
        key: &str,
        expected: Option<&[u8]>,
        value: Vec<u8>,
    ) -> Result<bool> {
        self.submit(|reply| Op::Meta {
            key: key.to_owned(),
            value: Some(value),
            expected: Some(expected.map(<[u8]>::to_vec)),
            reply,
        })
        .await
    }

    async fn meta_prefix(&self, prefix: &str) -> Result<Vec<(String, Vec<u8>)>> {
        let mut out = Vec::new();
        for kv in self.shared.ks.meta.prefix(prefix) {
            let (key, value) = kv.into_inner().map_err(io)?;
            out.push((String::from_utf8_lossy(&key).into_owned(), value.to_vec()));
        }
        Ok(out)
    }
}

#[async_trait]
impl Suppressions for Embedded {
    async fn suppress_many(
        &self,
        channel: ChannelKind,
        entries: Vec<String>,
        why: SuppressReason,
    ) -> Result<()> {
        let keys = entries
            .iter()
            .map(|e| suppression_key(channel, e))
            .collect();
        self.submit(|reply| Op::Suppress { keys, why, reply }).await
    }

    async fn unsuppress(&self, channel: ChannelKind, entry: &str) -> Result<bool> {
        let key = suppression_key(channel, entry);
        if !self.shared.index().suppressed.contains_key(&key) {
            return Ok(false);
        }
        self.submit(|reply| Op::Unsuppress { key, reply }).await?;
        Ok(true)
    }

    async fn suppressed(
        &self,
        channel: ChannelKind,
        address: &str,
    ) -> Result<Option<SuppressReason>> {
        Ok(self
            .shared
            .index()
            .suppressed
            .get(&suppression_key(channel, address))
            .copied())
    }

    /// The whole batch under one lock of the index, without a future per
    /// lookup: the dispatcher asks this for every message it claims.
    async fn participants_suppressions(
        &self,
        channel: ChannelKind,
        participants: &[&Participant],
    ) -> Result<Vec<Option<SuppressReason>>> {
        let index = self.shared.index();
        let suppressed = |entry: &str| index.suppressed.get(&suppression_key(channel, entry));
        Ok(participants
            .iter()
            .map(|p| {
                suppressed(&p.address)
                    .or_else(|| suppressed(&p.customer))
                    .copied()
            })
            .collect())
    }

    async fn suppressions(
        &self,
        channel: ChannelKind,
        query: &SuppressionQuery,
    ) -> Result<Vec<(String, SuppressReason)>> {
        let index = self.shared.index();
        Ok(super::listing::suppressions_page(
            &index.suppressed,
            channel,
            query,
        ))
    }
}

impl Store for Embedded {
    fn write_refusal(&self) -> Option<String> {
        if !self.shared.healthy.load(Ordering::Acquire) {
            return Some(super::POISONED.to_owned());
        }
        self.shared.space.check().err().map(|e| e.to_string())
    }
}
