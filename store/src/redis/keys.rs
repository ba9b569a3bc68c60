//! The engine's keys. What every node reads lives under one hash tag,
//! `{g}`: the campaigns by id, the next campaign number, the feed the API
//! reads, `meta`, node names, leads, rates and counters. A campaign and
//! everything its writes touch live in its *shard*, under a hash tag of
//! the shard's own: so every script touches one Cluster slot, and the
//! shards spread over a Cluster's masters (docs/redis.md, "Keys"). With
//! one shard (the default) the shard's tag is `{g}` too: one slot, the
//! layout of stores made before there were shards.

use domain::ChannelKind;

/// What every node reads.
const GLOBAL: &str = "sluice:{g}:";

/// A Redis Cluster's hash slots.
const SLOTS: u32 = 16_384;

/// The Cluster slot of hash tag `tag` (CRC-16/XMODEM, as Redis hashes).
fn slot(tag: &[u8]) -> u32 {
    let mut crc: u16 = 0;
    for &byte in tag {
        crc ^= u16::from(byte) << 8;
        for _ in 0..8 {
            crc = if crc & 0x8000 != 0 {
                (crc << 1) ^ 0x1021
            } else {
                crc << 1
            };
        }
    }
    u32::from(crc) % SLOTS
}

/// `{prefix}{kind}{id}`, made in one allocation: planning a write makes
/// several keys per message, and `format!` spent more on growing its
/// strings than on the digits.
fn key(prefix: &str, kind: &str, id: &str) -> String {
    let mut key = String::with_capacity(prefix.len() + kind.len() + id.len());
    key.push_str(prefix);
    key.push_str(kind);
    key.push_str(id);
    key
}

/// [`key`] with a number.
fn numbered(prefix: &str, kind: &str, id: impl itoa::Integer) -> String {
    key(prefix, kind, itoa::Buffer::new().format(id))
}

/// The key prefixes of a store's shards.
#[derive(Debug, Clone)]
pub struct Shards(Vec<String>);

impl Shards {
    /// `count` shards (at least one). Shard `k`'s tag hashes to a slot
    /// in the `k`-th of `count` equal ranges of the Cluster's slots: a
    /// Cluster whose masters own equal ranges (as `redis-cli --cluster
    /// create` makes them) gets equal numbers of shards on each when the
    /// count is a multiple of the masters'.
    pub fn new(count: u16) -> Self {
        let count = count.max(1);
        if count == 1 {
            return Self(vec![GLOBAL.to_owned()]);
        }
        Self(
            (0..u32::from(count))
                .map(|k| {
                    let slots =
                        (k * SLOTS / u32::from(count))..((k + 1) * SLOTS / u32::from(count));
                    let tag = (0u32..)
                        .map(|j| format!("s{k}.{j}"))
                        .find(|tag| slots.contains(&slot(tag.as_bytes())))
                        .expect("every range of slots has a tag");
                    format!("sluice:{{{tag}}}:")
                })
                .collect(),
        )
    }

    pub fn count(&self) -> u16 {
        self.0.len() as u16
    }

    /// The shard of campaign `seq`.
    pub fn of(&self, seq: u32) -> Shard<'_> {
        self.at((seq % u32::from(self.count())) as u16)
    }

    pub fn at(&self, index: u16) -> Shard<'_> {
        Shard {
            index,
            prefix: &self.0[usize::from(index)],
        }
    }

    pub fn all(&self) -> impl Iterator<Item = Shard<'_>> {
        (0..self.count()).map(|k| self.at(k))
    }

    /// Whether the shards' feeds are the feed the API reads (one shard),
    /// or move into it ([`super::feed`]).
    pub fn one(&self) -> bool {
        self.count() == 1
    }
}

/// One shard's keys: per campaign number `N`, `c:N` (record, next
/// participant number), `n:N` (counts per status and flag), `p:N` /
/// `s:N` / `f:N` (participant records, message states, flags by number),
/// `cu:N` (customer → number; `number/upload` while staged), `due:N`
/// (pending messages by due time), `lease:N` (leased messages by expiry),
/// `uploads:N`; per upload `U`, `upl:U` (its campaign; when its publish
/// began), `upn:U` (its staged numbers); `publishing` (uploads being
/// published); `upstream` (SMSC ids → its messages), `last:CHANNEL` (an
/// address's latest message among its campaigns), `sup:CHANNEL`
/// (suppressions), and its `feed` with its `cursor`.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
pub struct Shard<'a> {
    pub index: u16,
    prefix: &'a str,
}

impl Shard<'_> {
    fn key(&self, kind: &str, id: &str) -> String {
        key(self.prefix, kind, id)
    }
    fn numbered(&self, kind: &str, id: impl itoa::Integer) -> String {
        numbered(self.prefix, kind, id)
    }

    pub fn campaign(&self, seq: u32) -> String {
        self.numbered("c:", seq)
    }
    pub fn counts(&self, seq: u32) -> String {
        self.numbered("n:", seq)
    }
    pub fn participants(&self, seq: u32) -> String {
        self.numbered("p:", seq)
    }
    pub fn states(&self, seq: u32) -> String {
        self.numbered("s:", seq)
    }
    pub fn flags(&self, seq: u32) -> String {
        self.numbered("f:", seq)
    }
    pub fn customers(&self, seq: u32) -> String {
        self.numbered("cu:", seq)
    }
    pub fn due(&self, seq: u32) -> String {
        self.numbered("due:", seq)
    }
    pub fn leases(&self, seq: u32) -> String {
        self.numbered("lease:", seq)
    }
    pub fn uploads_of(&self, seq: u32) -> String {
        self.numbered("uploads:", seq)
    }
    pub fn upload(&self, id: u64) -> String {
        self.numbered("upl:", id)
    }
    pub fn upload_numbers(&self, id: u64) -> String {
        self.numbered("upn:", id)
    }
    /// Uploads whose publish has begun and not ended.
    pub fn publishing(&self) -> String {
        self.key("publishing", "")
    }
    pub fn upstream(&self) -> String {
        self.key("upstream", "")
    }
    pub fn last(&self, channel: ChannelKind) -> String {
        self.key("last:", channel.as_str())
    }
    pub fn suppressions(&self, channel: ChannelKind) -> String {
        self.key("sup:", channel.as_str())
    }
    pub fn feed(&self) -> String {
        self.key("feed", "")
    }
    pub fn cursor(&self) -> String {
        self.key("cursor", "")
    }

    /// Every key of campaign `seq`'s participants and messages.
    pub fn of_campaign(&self, seq: u32) -> Vec<String> {
        vec![
            self.campaign(seq),
            self.counts(seq),
            self.participants(seq),
            self.states(seq),
            self.flags(seq),
            self.customers(seq),
            self.due(seq),
            self.leases(seq),
            self.uploads_of(seq),
        ]
    }
}

/// The shard of what every node reads: a write to `meta` is planned in it.
pub fn global() -> Shard<'static> {
    Shard {
        index: 0,
        prefix: GLOBAL,
    }
}

pub fn campaigns() -> String {
    key(GLOBAL, "campaigns", "")
}
pub fn next_campaign() -> String {
    key(GLOBAL, "next_campaign", "")
}
pub fn meta() -> String {
    key(GLOBAL, "meta", "")
}
/// The feed the API reads (with one shard, the shard's own).
pub fn feed() -> String {
    global().feed()
}
pub fn cursor() -> String {
    global().cursor()
}
/// How far each shard's feed has moved into the feed: the shard's cursor
/// of the last fact moved, by shard.
pub fn moved() -> String {
    key(GLOBAL, "moved", "")
}
pub fn instance(id: u64) -> String {
    numbered(GLOBAL, "instance:", id)
}
pub fn pace(name: &str) -> String {
    key(GLOBAL, "pace:", name)
}
/// How often bandwidth `name`'s limits changed.
pub fn limits_version(name: &str) -> String {
    key(GLOBAL, "limits:", name)
}
pub fn count(name: &str) -> String {
    key(GLOBAL, "count:", name)
}
pub fn lead(task: &str) -> String {
    key(GLOBAL, "lead:", task)
}
pub fn node(name: &str) -> String {
    key(GLOBAL, "node:", name)
}

/// A participant number as a hash field or set member: fixed width, so
/// that members of equal score sort by number.
pub fn number(n: u32) -> [u8; 10] {
    let mut out = [b'0'; 10];
    let mut digits = itoa::Buffer::new();
    let digits = digits.format(n).as_bytes();
    out[10 - digits.len()..].copy_from_slice(digits);
    out
}

pub fn parse_number(field: &[u8]) -> Option<u32> {
    std::str::from_utf8(field).ok()?.parse().ok()
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn numbers_sort_as_text_in_number_order() {
        assert!(number(9) < number(10));
        assert_eq!(parse_number(&number(4_000_000_000)), Some(4_000_000_000));
    }

    #[test]
    fn one_shard_keeps_the_layout_of_stores_made_before_shards() {
        let one = Shards::new(1);
        assert_eq!(one.of(7).states(7), "sluice:{g}:s:7");
        assert_eq!(one.of(7).feed(), feed());
    }

    /// The slot of a key's hash tag.
    fn slot_of(key: &str) -> u32 {
        let tag = key.split_once('{').and_then(|(_, t)| t.split_once('}'));
        slot(tag.expect("a tag").0.as_bytes())
    }

    #[test]
    fn slots_are_those_redis_gives() {
        // `CLUSTER KEYSLOT` of these on Redis 7.
        assert_eq!(slot(b"g"), 7233);
        assert_eq!(slot(b"123456789"), 12739);
    }

    #[test]
    fn campaigns_spread_over_shards_by_number_each_under_its_tag() {
        let three = Shards::new(3);
        assert_eq!(three.of(7).index, 1);
        assert_eq!(
            slot_of(&three.of(7).states(7)),
            slot_of(&three.of(7).campaign(7))
        );
        assert_ne!(three.of(7).states(7), three.of(8).states(8));
        assert_ne!(three.of(9).feed(), feed());
    }

    #[test]
    fn shards_spread_evenly_over_masters_of_equal_slot_ranges() {
        for (shards, masters) in [(3u16, 3u32), (12, 3), (12, 4), (64, 8)] {
            let mut per_master = vec![0; masters as usize];
            for shard in Shards::new(shards).all() {
                let master = slot_of(&shard.feed()) * masters / SLOTS;
                per_master[master as usize] += 1;
            }
            let even = u32::from(shards) / masters;
            assert!(
                per_master.iter().all(|&n| n == even),
                "{shards} shards over {masters}: {per_master:?}"
            );
        }
    }
}
