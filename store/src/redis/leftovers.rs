//! What a deleted campaign leaves in the hashes every campaign of its
//! shard shares: the links from SMSC message ids to its messages (`upstream`; those whose
//! receipt never came stay there) and the addresses whose latest message
//! was one of its (`last:CHANNEL`). Both would grow for as long as the
//! installation runs. Deleting a campaign counts the deletion (`meta`
//! field `campaigns_deleted`); a sweep then reads those hashes a slice at
//! a time and removes each entry whose campaign is gone, unless the entry
//! changed meanwhile (an SMSC may give a used id to a new message). Every
//! node may sweep, since each removal is checked; a sweep notes the count
//! it swept for, and the next one only reads the hashes once another
//! campaign was deleted.

use std::collections::HashSet;

use domain::{ChannelKind, MessageNo};

use super::{
    Redis,
    keys::{self, Shard},
    plan::RECORD,
};
use crate::{Catalog, Result, upstream};

/// The `meta` field counting deleted campaigns.
pub(super) const DELETED: &str = "campaigns_deleted";
/// The `meta` field with that count when the last sweep began.
const SWEPT: &str = "leftovers_swept";
/// Entries checked and removed by one request, at most (about a
/// millisecond of Redis's time).
const ENTRIES_PER_CALL: usize = 1_000;

/// Removes each (field, value, campaign key) triple's field from hash
/// `KEYS[1]` if its value is still that one and the campaign is gone (its
/// hash holds no record field, ARGV[1]); answers how many went.
const FORGET: &str = r#"
local removed = 0
for i = 2, #ARGV, 3 do
  if redis.call('HEXISTS', ARGV[i + 2], ARGV[1]) == 0
    and redis.call('HGET', KEYS[1], ARGV[i]) == ARGV[i + 1] then
    redis.call('HDEL', KEYS[1], ARGV[i])
    removed = removed + 1
  end
end
return removed
"#;

impl Redis {
    /// Removes what deleted campaigns left in the shared hashes, if a
    /// campaign was deleted since the last sweep began; answers how many
    /// entries went.
    pub async fn forget_leftovers(&self) -> Result<u64> {
        let (deleted, swept): (Option<u64>, Option<u64>) = self
            .query(
                ::redis::cmd("HMGET")
                    .arg(keys::meta())
                    .arg(DELETED)
                    .arg(SWEPT),
            )
            .await?;
        let Some(deleted) = deleted.filter(|&d| swept < Some(d)) else {
            return Ok(0);
        };
        // A campaign declared after this read is not among them: the
        // script sees that it exists.
        let live: HashSet<u32> = self.campaigns().await?.iter().map(|c| c.seq).collect();
        let mut removed = 0;
        for shard in self.shards.all() {
            removed += self
                .forget_entries(shard, &shard.upstream(), &live, upstream::campaign_of)
                .await?;
            for channel in ChannelKind::ALL {
                removed += self
                    .forget_entries(shard, &shard.last(channel), &live, latest_campaign)
                    .await?;
            }
        }
        let _: () = self
            .query(
                ::redis::cmd("HSET")
                    .arg(keys::meta())
                    .arg(SWEPT)
                    .arg(deleted),
            )
            .await?;
        Ok(removed)
    }

    /// Removes hash `key`'s entries (of `shard`) whose campaign
    /// (`campaign_of` its field and value) is not in `live` and is gone.
    async fn forget_entries(
        &self,
        shard: Shard<'_>,
        key: &str,
        live: &HashSet<u32>,
        campaign_of: fn(&[u8], &[u8]) -> Option<u32>,
    ) -> Result<u64> {
        let script = ::redis::Script::new(FORGET);
        let mut removed = 0;
        let mut cursor = 0;
        loop {
            let (next, slice) = self.hash_slice(key, cursor).await?;
            let gone: Vec<_> = slice
                .into_iter()
                .filter_map(|(field, value)| {
                    let seq = campaign_of(&field, &value).filter(|s| !live.contains(s))?;
                    Some((field, value, shard.campaign(seq)))
                })
                .collect();
            for entries in gone.chunks(ENTRIES_PER_CALL) {
                let mut call = script.key(key);
                call.arg(RECORD);
                for (field, value, campaign) in entries {
                    call.arg(field).arg(value).arg(campaign);
                }
                let mut con = self.con();
                let result = call.invoke_async(&mut con).await;
                removed += self.seen::<u64>(result)?;
            }
            if next == 0 {
                return Ok(removed);
            }
            cursor = next;
        }
    }
}

/// The campaign of an address's latest message (`last:CHANNEL`'s value).
fn latest_campaign(_address: &[u8], value: &[u8]) -> Option<u32> {
    let msg: u64 = std::str::from_utf8(value).ok()?.parse().ok()?;
    Some(MessageNo::from_u64(msg).campaign)
}
