//! Retention on Redis: what ended longer ago than the configured time is
//! forgotten, so that Redis's memory holds what is still of use. A
//! campaign that ended (finished or cancelled) is deleted with its
//! participants, counts and queue once it ended before the cut-off (a
//! fallback campaign after its sources); the feed's entries whose facts
//! all came before the cut-off are trimmed; what deleted campaigns left in
//! the shared hashes goes (`leftovers`). Every node may sweep: each step
//! is a checked write or idempotent.

use std::{
    sync::{Arc, Weak},
    time::Duration,
};

use domain::{Fact, Millis, now_ms};

use super::{Redis, keys, plan::RECORD};
use crate::{Catalog, LimitState, Result, StoreError, codec};

/// What a sweep forgot.
#[derive(Debug, Default, Clone, Copy, PartialEq, Eq)]
pub struct Forgotten {
    pub campaigns: usize,
    pub facts: u64,
    /// Entries that deleted campaigns left in the shared hashes
    /// (`leftovers`).
    pub leftovers: u64,
}

/// Feed entries a sweep looks at, at most (the next sweep goes on).
const ENTRIES_PER_SWEEP: usize = 10_000;

/// How often the nodes sweep.
const SWEEP_EVERY: Duration = Duration::from_secs(600);

/// The field of a campaign's hash noting when it ended (ms).
pub(super) const ENDED: &[u8] = b"ended";

/// Notes when campaign `KEYS[1]` ended (ARGV[2] = ARGV[3]) unless it is
/// noted, while its record (ARGV[1]) is there: a campaign deleted since it
/// was listed does not come back as a hash of that field alone.
const NOTE_ENDED: &str = r#"
if redis.call('HEXISTS', KEYS[1], ARGV[1]) == 1 then
  redis.call('HSETNX', KEYS[1], ARGV[2], ARGV[3])
end
"#;

impl Redis {
    /// Sweeps every ten minutes while the store is open: forgets what
    /// ended more than `keep` ago but the facts `readers` have not read
    /// (with `None`, only what a campaign deleted through the API left:
    /// [`Redis::forget_leftovers`]).
    pub fn sweep_while_open(self: &Arc<Self>, keep: Option<Duration>, readers: Vec<String>) {
        let store: Weak<Self> = Arc::downgrade(self);
        let keep_ms = keep.map(|k| u64::try_from(k.as_millis()).unwrap_or(u64::MAX));
        tokio::spawn(async move {
            loop {
                tokio::time::sleep(SWEEP_EVERY).await;
                let Some(store) = store.upgrade() else { return };
                let swept = match keep_ms {
                    Some(keep_ms) => {
                        let cutoff = now_ms().saturating_sub(keep_ms);
                        store.forget_before(cutoff, &readers).await
                    }
                    None => store.forget_leftovers().await.map(|leftovers| Forgotten {
                        leftovers,
                        ..Forgotten::default()
                    }),
                };
                match swept {
                    Ok(f) if f != Forgotten::default() => {
                        tracing::info!(
                            campaigns = f.campaigns,
                            facts = f.facts,
                            leftovers = f.leftovers,
                            "retention: forgot what ended before the retention time or was deleted"
                        );
                    }
                    Ok(_) => {}
                    Err(e) => {
                        tracing::warn!(error = %e, "retention: sweep failed; trying again later")
                    }
                }
            }
        });
    }

    /// Forgets campaigns that ended before `cutoff`, the feed's facts
    /// written before it that every one of `readers` has read, and what
    /// deleted campaigns left behind. Each step is tried whether the
    /// others fail; the first error is told.
    ///
    /// `readers` are the meta keys where the feed's readers (webhooks)
    /// keep the cursor of the last fact they delivered: a receiver down
    /// for longer than the retention time gets every fact once it is back.
    pub async fn forget_before(&self, cutoff: Millis, readers: &[String]) -> Result<Forgotten> {
        let campaigns = self.forget_campaigns(cutoff).await;
        let facts = match self.least_read(readers).await {
            Ok(read) => self.forget_facts(cutoff, read).await,
            Err(e) => Err(e),
        };
        let leftovers = self.forget_leftovers().await;
        Ok(Forgotten {
            campaigns: campaigns?,
            facts: facts?,
            leftovers: leftovers?,
        })
    }

    async fn forget_campaigns(&self, cutoff: Millis) -> Result<usize> {
        let mut forgotten = 0;
        for c in self.campaigns().await? {
            if rules::closed_to_participants(c.state).is_none() {
                continue;
            }
            let key = self.shard(c.seq).campaign(c.seq);
            let ended: Option<u64> = self
                .query(::redis::cmd("HGET").arg(&key).arg(ENDED))
                .await?;
            let Some(ended) = ended else {
                // Ended before its end was noted: counted from now.
                let mut con = self.con();
                let result = ::redis::Script::new(NOTE_ENDED)
                    .key(&key)
                    .arg(RECORD)
                    .arg(ENDED)
                    .arg(now_ms())
                    .invoke_async(&mut con)
                    .await;
                self.seen::<()>(result)?;
                continue;
            };
            if ended >= cutoff {
                continue;
            }
            match self.delete_campaign(&c.id).await {
                Ok(_) => forgotten += 1,
                // Its sources' late bounces still fall back to it: it goes
                // after them.
                Err(StoreError::FallbackOf { .. }) => {}
                Err(e) => return Err(e),
            }
        }
        Ok(forgotten)
    }

    /// The cursor up to which every one of `readers` has read (0: one
    /// has read nothing yet, or keeps what is not a cursor); `None`
    /// without readers.
    async fn least_read(&self, readers: &[String]) -> Result<Option<u64>> {
        let mut least = None;
        for key in readers {
            let stored = self.meta(key).await?;
            let read = stored
                .as_deref()
                .and_then(|v| std::str::from_utf8(v).ok()?.parse().ok())
                .unwrap_or(0);
            least = Some(least.map_or(read, |l: u64| l.min(read)));
        }
        Ok(least)
    }

    /// Trims the feed's oldest entries whose facts all came before
    /// `cutoff` and are at most cursor `read`; answers how many facts went.
    /// The shards' facts move into the feed first: without a reader they
    /// would be kept for ever.
    async fn forget_facts(&self, cutoff: Millis, read: Option<u64>) -> Result<u64> {
        if !self.shards.one() {
            self.move_facts(usize::MAX).await?;
        }
        let mut forgotten = 0;
        let mut keep_from: Option<String> = None;
        let mut start = "-".to_owned();
        let mut looked = 0;
        'entries: while looked < ENTRIES_PER_SWEEP {
            let entries: Vec<(String, Vec<Vec<u8>>)> = self
                .query(
                    ::redis::cmd("XRANGE")
                        .arg(keys::feed())
                        .arg(&start)
                        .arg("+")
                        .arg("COUNT")
                        .arg(100),
                )
                .await?;
            let Some((last, _)) = entries.last() else {
                break;
            };
            start = format!("({last}");
            let read_all = entries.len() < 100;
            for (id, fields) in entries {
                looked += 1;
                let run: Vec<Fact> = match fields.get(1) {
                    Some(run) => codec::decode(run)?,
                    None => Vec::new(),
                };
                // The entry's id is its first fact's cursor (`events`);
                // one that is not is kept while anyone reads.
                let first: Option<u64> = id.split_once('-').and_then(|(c, _)| c.parse().ok());
                let last = first.map(|first| first + (run.len() as u64).saturating_sub(1));
                let unread = read.is_some_and(|read| last.is_none_or(|last| last > read));
                if unread || run.iter().any(|f| f.at >= cutoff) {
                    keep_from = Some(id);
                    break 'entries;
                }
                forgotten += run.len() as u64;
                keep_from = Some(format!("({id}"));
            }
            if read_all {
                break;
            }
        }
        let Some(keep_from) = keep_from else {
            return Ok(0);
        };
        if forgotten > 0 {
            // MINID keeps the entries from this id on; "(id" is exclusive.
            let minid = match keep_from.strip_prefix('(') {
                Some(id) => next_id(id),
                None => keep_from,
            };
            let _: u64 = self
                .query(
                    ::redis::cmd("XTRIM")
                        .arg(keys::feed())
                        .arg("MINID")
                        .arg(minid),
                )
                .await?;
        }
        Ok(forgotten)
    }
}

/// The stream id right after `id` (`cursor-0` → `cursor-1`).
fn next_id(id: &str) -> String {
    match id.split_once('-') {
        Some((ms, seq)) => format!("{ms}-{}", seq.parse::<u64>().unwrap_or(0) + 1),
        None => format!("{id}-1"),
    }
}
