//! Publishing or abandoning an upload on Redis, in steps. One script
//! making a whole upload live held Redis for about 7 µs per participant
//! (20 s for 1,000,000), and every node took the `BUSY` answers meanwhile
//! for Redis being lost. So a publish makes at most [`STEP`] staged
//! participants live per write, and an abandon drops as many per write.
//!
//! Its first write marks the upload as publishing: from then on the
//! upload is published whole, whatever becomes of the call or the node
//! that began it. An abandon leaves it be, its customers stay its own when
//! its node dies, and every node's sweep ([`Redis::complete_publishes`])
//! looks for a publish that nobody is carrying on: its own node's, or a
//! dead node's, which the one node that takes its lead carries on. Readers
//! see its participants arrive step by step for the seconds that takes.

use std::{
    collections::HashSet,
    sync::{Arc, Mutex, Weak},
};

use domain::{CampaignRecord, MessageNo, Millis};

use futures_util::future::try_join_all;

use super::{
    HEARTBEAT, HEARTBEAT_TTL_MS, MAX_TRIES, Redis, UPLOAD_BITS,
    keys::{self, Shard},
    plan::{Plan, contended},
};
use crate::{Result, Shared, StoreError};

/// Staged participants made live (or dropped) per write: 10-15 ms of
/// Redis's time. Steps of 500 to 5,000 publish as fast (BENCHMARKS.md);
/// the smaller, the shorter another node's request waits behind one.
pub(super) const STEP: usize = 1_000;

/// The field of an upload's hash noting when its publish began (ms): the
/// time its participants are accepted at, whoever completes it.
pub(super) const PUBLISHING: &[u8] = b"publishing";

/// The field of an upload's hash marking that its abandon began: its
/// customers are free from then on, while its steps drop what it staged.
pub(super) const ABANDONED: &[u8] = b"abandoned";

/// The field of an upload's hash counting its staging writes: a step
/// applies only if none came after what it read.
pub(super) const STAGED: &str = "staged";

/// The field of an upload's hash counting the participants its steps
/// made live, by whichever node: all that is left of it once it ended.
pub(super) const PUBLISHED: &str = "published";

/// How long an ended upload's count is kept: its call reads it at once.
pub(super) const PUBLISHED_KEPT_SECS: u64 = 3600;

/// How an upload ends.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
enum Ending {
    /// Published, accepted at the time its publish began: this one if it
    /// has not (`None`: only carry on a begun publish).
    Publish(Option<Millis>),
    Abandon,
}

/// What one step did.
enum Step {
    /// Made some participants live (others of the step were taken
    /// meanwhile by participants added at once, or dropped: abandoned, or
    /// their campaign closed, `.0` says how).
    Settled(Option<StoreError>),
    /// The same, and ended the upload: none was left. `.0` participants
    /// of it were made live in all, by whichever node's steps.
    Last(u64, Option<StoreError>),
    /// Nothing was left to do: the upload had ended (or, abandoned, its
    /// publish had begun).
    Done,
}

/// How a call's steps left an upload.
struct Ended {
    /// Participants of it made live in all, when this call's step ended
    /// it (another node's step may have).
    published: Option<u64>,
    /// Why the rest was dropped, if its campaign closed or went.
    dropped: Option<StoreError>,
}

/// Uploads this store is publishing now (so that its sweep leaves them).
#[derive(Debug, Default)]
pub(super) struct Carried(Mutex<HashSet<u64>>);

/// An upload carried by this store until dropped.
struct Carrying<'a> {
    carried: &'a Carried,
    upload: u64,
}

impl Carried {
    /// Carries `upload`; `None` when this store carries it already.
    fn carry(&self, upload: u64) -> Option<Carrying<'_>> {
        let fresh = self.lock().insert(upload);
        // Made only when fresh: one made and dropped would let it go.
        fresh.then(|| Carrying {
            carried: self,
            upload,
        })
    }

    fn lock(&self) -> std::sync::MutexGuard<'_, HashSet<u64>> {
        self.0.lock().unwrap_or_else(|e| e.into_inner())
    }
}

impl Drop for Carrying<'_> {
    fn drop(&mut self) {
        self.carried.lock().remove(&self.upload);
    }
}

impl Redis {
    /// Publishes `upload` whole, step by step; how many participants it
    /// made live. Refused when its campaign is closed (the upload stays
    /// staged: the caller abandons it).
    pub(super) async fn publish_upload(&self, upload: u64, at: Millis) -> Result<u64> {
        let Some(_carrying) = self.carried.carry(upload) else {
            return Err(StoreError::Unavailable(format!(
                "upload {upload} is being published already"
            )));
        };
        let shard = self.upload_shard(upload).await?;
        // Other nodes' sweeps may have made some live too: they take a
        // node whose heartbeat lapsed for dead.
        let ended = self
            .end_in_steps(shard, upload, Ending::Publish(Some(at)))
            .await?;
        if let Some(closed) = ended.dropped {
            return Err(closed);
        }
        match ended.published {
            Some(published) => Ok(published),
            // Ended by another node's step.
            None => self.published_by(shard, upload).await,
        }
    }

    /// The shard `upload` is staged in (any, if it is in none).
    async fn upload_shard(&self, upload: u64) -> Result<Shard<'_>> {
        if self.shards.one() {
            return Ok(self.shards.at(0));
        }
        let there = try_join_all(self.shards.all().map(|shard| async move {
            let exists: bool = self
                .query(::redis::cmd("EXISTS").arg(shard.upload(upload)))
                .await?;
            Ok::<_, StoreError>(exists.then_some(shard))
        }))
        .await?;
        Ok(there
            .into_iter()
            .flatten()
            .next()
            .unwrap_or(self.shards.at(0)))
    }

    /// How many participants the steps of ended upload `upload` made live.
    async fn published_by(&self, shard: Shard<'_>, upload: u64) -> Result<u64> {
        let published: Option<u64> = self
            .query(
                ::redis::cmd("HGET")
                    .arg(shard.upload(upload))
                    .arg(PUBLISHED),
            )
            .await?;
        Ok(published.unwrap_or(0))
    }

    /// Drops what is staged under `upload`, step by step, unless its
    /// publish has begun.
    pub(super) async fn abandon_upload(&self, upload: u64) -> Result<()> {
        // Intake waits for the first step only: it frees every customer
        // of the upload (the others just drop what it staged).
        let (shard, first) = {
            let _order = self.abandoning.write().await;
            let shard = self.upload_shard(upload).await?;
            (shard, self.step(shard, upload, Ending::Abandon).await?)
        };
        if matches!(first, Step::Settled(..)) {
            self.end_in_steps(shard, upload, Ending::Abandon).await?;
        }
        Ok(())
    }

    /// Carries on every publish that nobody carries on: begun by a node
    /// that died, or by a call of this store that failed or was dropped.
    /// Returns how many uploads it completed.
    pub async fn complete_publishes(&self) -> Result<usize> {
        let mut completed = 0;
        let mut failure = None;
        for shard in self.shards.all() {
            let uploads: Vec<u64> = match self
                .query(::redis::cmd("SMEMBERS").arg(shard.publishing()))
                .await
            {
                Ok(uploads) => uploads,
                Err(e) => {
                    failure = Some(e);
                    continue;
                }
            };
            for upload in uploads {
                // One that fails does not keep the others waiting.
                match self.carry_on(shard, upload).await {
                    Ok(true) => completed += 1,
                    Ok(false) => {}
                    Err(e) => failure = Some(e),
                }
            }
        }
        failure.map_or(Ok(completed), Err)
    }

    /// Completes the publish of `upload` unless someone carries it on;
    /// whether it did.
    async fn carry_on(&self, shard: Shard<'_>, upload: u64) -> Result<bool> {
        let own = upload >> UPLOAD_BITS == self.instance;
        if !own && self.instance_lives(upload).await? {
            // Its node carries it on (or its own sweep will).
            return Ok(false);
        }
        let Some(_carrying) = self.carried.carry(upload) else {
            return Ok(false);
        };
        let lead = format!("publish:{upload}");
        let mut dropped = None;
        let ended = loop {
            // One node carries on a dead node's publish: the others leave
            // it while its carrier renews the lead before every step.
            if !own && !self.lead(&lead, HEARTBEAT_TTL_MS).await? {
                return Ok(false);
            }
            let step = self.step_once(shard, upload, Ending::Publish(None), &mut dropped);
            if let Some(ended) = step.await? {
                break ended;
            }
        };
        tracing::info!(
            upload,
            published = ended.published,
            closed = ended.dropped.is_some(),
            "completed the publish of an upload"
        );
        Ok(true)
    }

    /// Sweeps for publishes to carry on every heartbeat while the store is
    /// open.
    pub fn complete_publishes_while_open(self: &Arc<Self>) {
        let store: Weak<Self> = Arc::downgrade(self);
        tokio::spawn(async move {
            loop {
                tokio::time::sleep(HEARTBEAT).await;
                let Some(store) = store.upgrade() else { return };
                if let Err(e) = store.complete_publishes().await {
                    tracing::warn!(error = %e, "could not carry on the publish of an upload; trying again");
                }
            }
        });
    }

    /// Steps until the upload is ended.
    async fn end_in_steps(&self, shard: Shard<'_>, upload: u64, ending: Ending) -> Result<Ended> {
        let mut dropped = None;
        loop {
            if let Some(ended) = self.step_once(shard, upload, ending, &mut dropped).await? {
                return Ok(ended);
            }
        }
    }

    /// One step of a call's; how the upload ended, if it did. `dropped`
    /// keeps why participants were dropped, over the call's steps.
    async fn step_once(
        &self,
        shard: Shard<'_>,
        upload: u64,
        ending: Ending,
        dropped: &mut Option<StoreError>,
    ) -> Result<Option<Ended>> {
        Ok(match self.step(shard, upload, ending).await? {
            Step::Settled(why) => {
                if dropped.is_none() {
                    *dropped = why;
                }
                None
            }
            Step::Last(published, why) => Some(Ended {
                published: Some(published),
                dropped: dropped.take().or(why),
            }),
            Step::Done => Some(Ended {
                published: None,
                dropped: dropped.take(),
            }),
        })
    }

    /// Makes up to [`STEP`] staged participants of an upload live (the
    /// first step marks it as publishing), or drops as many of an
    /// abandoned one; the step that leaves none ends the upload.
    async fn step(&self, shard: Shard<'_>, upload: u64, ending: Ending) -> Result<Step> {
        write_until_applied!(self, shard, "ending an upload", |p| {
            // One more than a step: if they come, this step is not the
            // last. Which ones is not checked: each one's customer is, and
            // the upload's staging count.
            let (staged, mut numbers) = p.upload_at_rest(upload, STEP + 1).await?;
            let Some(staged) = staged else {
                // Nothing staged, or ended already (by a node's sweep, say).
                return Ok(Step::Done);
            };
            let seq = staged.campaign;
            let last = numbers.len() <= STEP;
            numbers.truncate(STEP);
            let accepted_at = match (ending, staged.publishing_since) {
                // Abandoned meanwhile: nothing of it is published.
                (Ending::Publish(_), _) if staged.abandoned => return Ok(Step::Done),
                (Ending::Publish(_), Some(since)) => Some(since),
                (Ending::Publish(Some(at)), None) => {
                    // Refused (kept staged: the caller abandons it).
                    open_campaign(&mut p, seq).await??;
                    if !last {
                        mark_publishing(&mut p, upload, at);
                    }
                    Some(at)
                }
                // A sweep's: ended meanwhile.
                (Ending::Publish(None), None) => return Ok(Step::Done),
                // Its publish has begun: it ends whole.
                (Ending::Abandon, Some(_)) => return Ok(Step::Done),
                (Ending::Abandon, None) => {
                    if !last && !staged.abandoned {
                        mark_abandoned(&mut p, upload);
                    }
                    None
                }
            };
            let (published, dropped) = settle(&mut p, seq, upload, &numbers, accepted_at).await?;
            if published > 0 {
                p.txn
                    .hincr(&p.keys.upload(upload), PUBLISHED, published as i64);
            }

            let members: Vec<[u8; 10]> = numbers.iter().map(|&n| keys::number(n)).collect();
            p.txn
                .over_members(b"SREM", &p.keys.upload_numbers(upload), &members);
            if last {
                p.check_published(upload, &staged);
                p.end_upload(seq, upload).await?;
                Ok(Step::Last(staged.published + published, dropped))
            } else {
                p.stage_changed(seq).await?;
                Ok(Step::Settled(dropped))
            }
        })
    }
}

/// Plans the mark of a publish begun at `at`: from then on the upload is
/// published whole.
fn mark_publishing(p: &mut Plan<'_>, upload: u64, at: Millis) {
    let (upl, upn) = (p.keys.upload(upload), p.keys.upload_numbers(upload));
    p.txn.hset(&upl, PUBLISHING, at.to_string().as_bytes());
    // Kept until published, however long that takes.
    p.txn.command(&[b"PERSIST", upl.as_bytes()]);
    p.txn.command(&[b"PERSIST", upn.as_bytes()]);
    let publishing = p.keys.publishing();
    p.txn.command(&[
        b"SADD",
        publishing.as_bytes(),
        upload.to_string().as_bytes(),
    ]);
}

/// Plans the mark of an abandon begun: from then on the upload's
/// customers are free and nothing of it is published.
fn mark_abandoned(p: &mut Plan<'_>, upload: u64) {
    p.txn.hset(&p.keys.upload(upload), ABANDONED, b"1");
}

/// Campaign `seq` when it takes participants; else why not (closed, or
/// gone).
async fn open_campaign(
    p: &mut Plan<'_>,
    seq: u32,
) -> Result<std::result::Result<Arc<CampaignRecord>, StoreError>> {
    Ok(match p.campaign(seq).await? {
        None => Err(StoreError::UnknownCampaign(format!("#{seq}"))),
        Some(c) => match rules::closed_to_participants(c.state) {
            Some(state) => Err(StoreError::Closed {
                campaign: c.id.clone(),
                state,
            }),
            None => Ok(c),
        },
    })
}

/// Plans staged participants `numbers` of `upload` live in campaign `seq`,
/// accepted at `accepted_at`; dropped instead when that is `None` (an
/// abandon) or their campaign has closed or gone (then also why). How
/// many it made live.
async fn settle(
    p: &mut Plan<'_>,
    seq: u32,
    upload: u64,
    numbers: &[u32],
    accepted_at: Option<Millis>,
) -> Result<(u64, Option<StoreError>)> {
    let staged = p.store().records(seq, numbers.to_vec()).await?;
    p.prefetch_customers(seq, staged.iter().map(|(_, participant)| participant))
        .await?;
    let (open, dropped) = match accepted_at {
        Some(at) => match open_campaign(p, seq).await? {
            Ok(c) => (Some((c, at)), None),
            Err(why) => (None, Some(why)),
        },
        None => (None, None),
    };
    let mut published = 0;
    for (n, participant) in staged {
        let Some((c, at)) = &open else {
            p.drop_staged(seq, n, upload, &participant).await?;
            continue;
        };
        if p.take_staged(c, n, upload, &participant).await? {
            published += 1;
            let msg = MessageNo {
                campaign: seq,
                participant: n,
            };
            p.accept(c, msg, &participant, *at).await?;
        }
    }
    Ok((published, dropped))
}

#[cfg(test)]
mod tests {
    use super::Carried;

    #[test]
    fn an_upload_carried_stays_carried_until_its_carrier_is_dropped() {
        let carried = Carried::default();
        let carrying = carried.carry(7);
        assert!(carrying.is_some());
        // Asked again (a sweep while the publish call runs): refused, and
        // the refusal does not let it go.
        assert!(carried.carry(7).is_none());
        assert!(carried.carry(7).is_none());
        drop(carrying);
        assert!(carried.carry(7).is_some());
    }
}
