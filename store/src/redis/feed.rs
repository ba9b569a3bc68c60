//! One feed from many shards. A write appends its facts to its shard's own
//! feed, since its script touches one slot; with more than one shard the
//! facts then move into the one feed the API reads, which gives them its
//! cursors. A read of the feed moves first, so a CRM reading right after a
//! write sees its facts. Each move is one script in the global slot that
//! appends a shard's entries in their order and notes how far that shard
//! has moved, only if that is still where the mover read from: two nodes
//! moving at once, or a move repeated after a crash before the shard's
//! feed was trimmed, never show a fact twice or lose one.

use std::{collections::HashMap, sync::LazyLock};

use futures_util::future::try_join_all;

use super::{MAX_TRIES, Redis, keys, keys::Shard};
use crate::{Result, StoreError};

/// Entries of a shard's feed moved by one script (each up to
/// `FACTS_PER_ENTRY` facts).
const ENTRIES_PER_MOVE: usize = 64;

/// Appends a shard's entries to the feed if the shard has moved as far as
/// ARGV[2] (its cursor of the last fact moved; 0: none), and notes the new
/// end. ARGV[1]: the shard; then per entry, the shard's cursor of its last
/// fact, its count of facts, its facts. KEYS: the feed, its cursor, how
/// far each shard moved. Answers 1, or 0 if another mover was first.
static MOVE: LazyLock<::redis::Script> = LazyLock::new(|| ::redis::Script::new(MOVE_SCRIPT));
const MOVE_SCRIPT: &str = r#"
if (redis.call('HGET', KEYS[3], ARGV[1]) or '0') ~= ARGV[2] then return 0 end
for i = 3, #ARGV, 3 do
  local n = tonumber(ARGV[i + 1])
  local first = redis.call('INCRBY', KEYS[2], n) - n + 1
  redis.call('XADD', KEYS[1], first .. '-0', 'f', ARGV[i + 2], 'n', n)
end
redis.call('HSET', KEYS[3], ARGV[1], ARGV[#ARGV - 2])
return 1
"#;

/// Notes shard ARGV[1] as moved up to ARGV[3] if it stands at ARGV[2].
/// KEYS: how far each shard moved.
static MOVE_BACK: LazyLock<::redis::Script> = LazyLock::new(|| {
    ::redis::Script::new(
        r#"
if (redis.call('HGET', KEYS[1], ARGV[1]) or '0') ~= ARGV[2] then return 0 end
redis.call('HSET', KEYS[1], ARGV[1], ARGV[3])
return 1
"#,
    )
});

/// What a shard has not moved yet.
struct Unmoved {
    /// The shard's cursor: of its last fact.
    cursor: u64,
    /// The cursor of its feed's oldest entry's first fact.
    oldest: Option<u64>,
    entries: Vec<Entry>,
}

/// The cursor of a feed entry's first fact: its id is `cursor-0`.
fn entry_cursor(id: &str) -> Option<u64> {
    id.split_once('-')?.0.parse().ok()
}

/// A shard's feed entry.
struct Entry {
    /// The shard's cursor of its last fact.
    last: u64,
    facts: u64,
    body: Vec<u8>,
}

impl Redis {
    /// Moves the shards' facts into the feed until none is left or at
    /// least `enough` moved.
    pub(super) async fn move_facts(&self, enough: usize) -> Result<()> {
        let mut moved = 0;
        for _ in 0..MAX_TRIES {
            let positions: HashMap<u16, u64> = self
                .query(::redis::cmd("HGETALL").arg(keys::moved()))
                .await?;
            let position = |shard: Shard<'_>| positions.get(&shard.index).copied().unwrap_or(0);
            let unmoved = try_join_all(
                self.shards
                    .all()
                    .map(|shard| self.unmoved(shard, position(shard))),
            )
            .await?;
            let mut more = false;
            for (shard, unmoved) in self.shards.all().zip(unmoved) {
                let from = position(shard);
                let Unmoved {
                    cursor,
                    oldest,
                    entries,
                } = unmoved;
                if cursor < from {
                    // The shard counts from further back than it moved: its
                    // master lost writes (a failover before they reached a
                    // replica), and its later facts took cursors it moved
                    // already. Everything its feed holds moves again: a
                    // fact moved whose trim was lost too may be shown twice,
                    // none is lost.
                    let back = oldest.map_or(cursor, |first| first.saturating_sub(1));
                    tracing::warn!(
                        shard = shard.index,
                        moved = from,
                        cursor,
                        "a shard's facts count from before what was moved of them: its Redis lost writes; moving what its feed holds"
                    );
                    self.move_back(shard, from, back).await?;
                    more = true;
                    continue;
                }
                if entries.is_empty() {
                    continue;
                }
                more |= entries.len() == ENTRIES_PER_MOVE;
                match self.move_entries(shard, from, &entries).await? {
                    true => moved += entries.iter().map(|e| e.facts).sum::<u64>(),
                    // Moved by another node meanwhile: read again.
                    false => more = true,
                }
            }
            if !more || moved >= enough as u64 {
                break;
            }
        }
        Ok(())
    }

    /// `shard`'s cursor, its feed's oldest entry, and up to
    /// [`ENTRIES_PER_MOVE`] entries of its feed after cursor `from` (one
    /// request).
    async fn unmoved(&self, shard: Shard<'_>, from: u64) -> Result<Unmoved> {
        type Entries = Vec<(String, Vec<Vec<u8>>)>;
        let (cursor, oldest, entries): (Option<u64>, Entries, Entries) = self
            .pipe(
                ::redis::pipe()
                    .cmd("GET")
                    .arg(shard.cursor())
                    .cmd("XRANGE")
                    .arg(shard.feed())
                    .arg("-")
                    .arg("+")
                    .arg("COUNT")
                    .arg(1)
                    .cmd("XRANGE")
                    .arg(shard.feed())
                    .arg(format!("{}-0", from + 1))
                    .arg("+")
                    .arg("COUNT")
                    .arg(ENTRIES_PER_MOVE),
            )
            .await?;
        let entries = entries
            .into_iter()
            .map(|(id, fields)| {
                let corrupt = || StoreError::Corrupt {
                    what: "fact",
                    detail: format!("entry {id} of {}", shard.feed()),
                };
                let first = entry_cursor(&id).ok_or_else(corrupt)?;
                let facts: u64 = fields
                    .get(3)
                    .and_then(|n| std::str::from_utf8(n).ok()?.parse().ok())
                    .filter(|&n| n > 0)
                    .ok_or_else(corrupt)?;
                let body = fields.into_iter().nth(1).ok_or_else(corrupt)?;
                Ok(Entry {
                    last: first + facts - 1,
                    facts,
                    body,
                })
            })
            .collect::<Result<_>>()?;
        Ok(Unmoved {
            cursor: cursor.unwrap_or(0),
            oldest: oldest.first().and_then(|(id, _)| entry_cursor(id)),
            entries,
        })
    }

    /// Notes that `shard` moved only as far as `cursor`, if it still
    /// stands at `from`.
    async fn move_back(&self, shard: Shard<'_>, from: u64, cursor: u64) -> Result<()> {
        let mut con = self.con();
        let result = MOVE_BACK
            .key(keys::moved())
            .arg(shard.index)
            .arg(from)
            .arg(cursor)
            .invoke_async(&mut con)
            .await;
        self.seen::<i64>(result).map(drop)
    }

    /// Moves `entries` of `shard`, read after its cursor `from`, then
    /// trims them from the shard's feed; `false` if another mover was
    /// first.
    async fn move_entries(&self, shard: Shard<'_>, from: u64, entries: &[Entry]) -> Result<bool> {
        let mut call = MOVE.prepare_invoke();
        call.key(keys::feed())
            .key(keys::cursor())
            .key(keys::moved())
            .arg(shard.index)
            .arg(from);
        for e in entries {
            call.arg(e.last).arg(e.facts).arg(&e.body[..]);
        }
        let moved: i64 = {
            let mut con = self.con();
            let result = call.invoke_async(&mut con).await;
            self.seen(result)?
        };
        if moved == 0 {
            return Ok(false);
        }
        // What is left behind is never read again (reads start after the
        // end noted), so a trim that fails only costs memory until the
        // next.
        let last = entries.last().map_or(from, |e| e.last);
        let _: u64 = self
            .query(
                ::redis::cmd("XTRIM")
                    .arg(shard.feed())
                    .arg("MINID")
                    .arg(format!("{}-0", last + 1)),
            )
            .await?;
        Ok(true)
    }
}
