//! Anti-spam quotas: "a customer receives at most N messages in any period
//! of length P", exactly, in about 16 bytes per customer.
//!
//! # Guarantee
//! A send at `t` is allowed only if fewer than N of the customer's recorded
//! sends lie in `(t - P, ∞)`. Every recorded time is rounded *up* (later) to
//! the storage unit, so the stored history is never earlier than the truth
//! and the check can only over-count. Hence in every half-open window
//! `[a, a + P)` a customer receives at most N messages. The price of the
//! rounding: a customer may wait up to one unit ([`UNIT_SECS`], 32 s) longer
//! than strictly necessary. A clock moving backwards also only over-counts.
//!
//! # Memory
//! Only the N most recent sends matter. Each customer is one 12-byte slot:
//! a 32-bit fingerprint of the key and a 64-bit word holding up to three
//! 21-bit send times (units of 32 s from the book's epoch, ~776 days of
//! range; the epoch is moved forward, rarely, by one pass over the table).
//! Slots live in 4,096 shards chosen by the key's top 12 bits (the shard
//! directory, 96 KiB, stays in the CPU cache), each an open-addressed table
//! kept between ~70% and 87.5% full, so the table costs 12 / load ≈ 14–17
//! bytes per customer (≈ 15 on average). Rules with
//! N > 3 keep that customer's times in a spill map instead (4 bytes per send
//! plus map overhead). A customer whose segment moves from a rule with
//! N <= 3 to one with N > 3 has its older sends assumed as late as the oldest
//! of the three kept (over-counting, never under-counting).
//!
//! A customer's identity is 44 bits of its [`CustomerKey`] (top 12 + low
//! 32). Two customers sharing them share a quota: conservative (one of them
//! may be suppressed early), and rare: about 3 such pairs among ten million
//! customers, 0.03 among one million.
//!
//! # Durability
//! [`QuotaBook::export`] gives a customer's state as a [`QuotaState`]
//! (absolute send times) with a stable byte form; [`QuotaBook::import`]
//! merges it back. Persist after each admitted send, import on start-up, and
//! a restart never resets a quota.

use std::collections::HashMap;

use jiff::Timestamp;

use crate::error::{Error, Problem, Result};
use crate::key::CustomerKey;

/// Storage unit for send times, in seconds. Stored times are rounded up to it.
use shard::{Shard, Slot, home, insert_desc, pack, unpack};

pub const UNIT_SECS: i64 = 32;
/// Longest supported quota period (366 days).
pub const MAX_PERIOD_SECS: i64 = 366 * 86_400;

const TIME_BITS: u32 = 21;
const MASK: u64 = (1 << TIME_BITS) - 1;
const MAX_UNITS: i64 = MASK as i64;
const MAX_PERIOD_UNITS: i64 = MAX_PERIOD_SECS / UNIT_SECS + 1;
const SPILL: u64 = 1 << 63;
const INLINE: usize = 3;
const SHARD_BITS: u32 = 12;
const SHARDS: usize = 1 << SHARD_BITS;

/// One quota rule: at most `max` messages in any `per_secs` seconds.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct QuotaRule {
    /// N, at least 1.
    pub max: u32,
    /// P in seconds, 1 ..= [`MAX_PERIOD_SECS`].
    pub per_secs: i64,
}

impl QuotaRule {
    /// A validated rule.
    pub fn new(max: u32, per_secs: i64) -> Result<QuotaRule> {
        let mut p = Vec::new();
        if max == 0 {
            p.push(Problem::new(
                "max",
                "must be at least 1 (use the blacklist to stop all messages)",
            ));
        }
        if per_secs <= 0 {
            p.push(Problem::new("per", "must be a positive period"));
        } else if per_secs > MAX_PERIOD_SECS {
            p.push(Problem::new("per", "must be at most 366 days"));
        }
        if p.is_empty() {
            Ok(QuotaRule { max, per_secs })
        } else {
            Err(Error::Invalid(p))
        }
    }
}

/// Result of a quota check.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum QuotaCheck {
    /// The customer may receive one more message now (or no rule applies).
    Allowed,
    /// N messages already lie within the period; the oldest of them leaves
    /// it at `free_at`.
    Exceeded {
        /// When one more message would be allowed.
        free_at: Timestamp,
    },
}

/// A customer's quota state in absolute terms, for persistence.
#[derive(Debug, Clone, PartialEq, Eq, Default)]
pub struct QuotaState {
    /// Recorded send times (Unix seconds, rounded up), most recent first.
    pub sends: Vec<i64>,
}

impl QuotaState {
    const MAGIC: [u8; 2] = *b"Q1";

    /// Stable byte form: `Q1`, a little-endian u16 count, then that many
    /// little-endian i64 Unix seconds.
    pub fn to_bytes(&self) -> Vec<u8> {
        let n = self.sends.len().min(usize::from(u16::MAX));
        let mut out = Vec::with_capacity(4 + 8 * n);
        out.extend_from_slice(&Self::MAGIC);
        out.extend_from_slice(&(n as u16).to_le_bytes());
        for s in &self.sends[..n] {
            out.extend_from_slice(&s.to_le_bytes());
        }
        out
    }

    /// Parses [`to_bytes`](Self::to_bytes) output.
    pub fn from_bytes(bytes: &[u8]) -> Result<QuotaState> {
        let (head, rest) = bytes
            .split_at_checked(4)
            .ok_or(Error::QuotaState("too short"))?;
        if head[..2] != Self::MAGIC {
            return Err(Error::QuotaState("unknown format"));
        }
        let n = usize::from(u16::from_le_bytes([head[2], head[3]]));
        if rest.len() != 8 * n {
            return Err(Error::QuotaState("length does not match count"));
        }
        let sends = rest
            .chunks_exact(8)
            .map(|c| {
                let mut w = [0u8; 8];
                w.copy_from_slice(c);
                i64::from_le_bytes(w)
            })
            .collect();
        Ok(QuotaState { sends })
    }
}

/// Where a customer's slot was found (within its shard), if it has one.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub(crate) struct SlotHint(Option<usize>);

impl SlotHint {
    /// No slot known.
    pub(crate) const NONE: SlotHint = SlotHint(None);
}

/// Per-customer quota state for a set of per-segment rules.
#[derive(Debug, Clone)]
pub struct QuotaBook {
    default: Option<QuotaRule>,
    rules: Vec<(Box<str>, QuotaRule)>,
    /// Longest N among the rules: how many sends a spilled customer keeps.
    keep: usize,
    /// Unix second that unit 0 stands for.
    epoch: i64,
    shards: Box<[Shard]>,
    spill: HashMap<u64, Vec<i64>>,
    len: usize,
}

impl QuotaBook {
    /// A book with `rules` (segment name → rule; `*` is the default for
    /// segments not listed), created at `now`.
    pub fn new(rules: impl IntoIterator<Item = (String, QuotaRule)>, now: Timestamp) -> QuotaBook {
        let mut book = QuotaBook {
            default: None,
            rules: Vec::new(),
            keep: INLINE,
            epoch: now.as_second().saturating_sub(MAX_PERIOD_SECS + UNIT_SECS),
            shards: vec![Shard::default(); SHARDS].into_boxed_slice(),
            spill: HashMap::new(),
            len: 0,
        };
        book.set_rules(rules);
        book
    }

    /// As [`new`](Self::new), with room for `customers` without regrowing.
    pub fn with_capacity(
        rules: impl IntoIterator<Item = (String, QuotaRule)>,
        now: Timestamp,
        customers: usize,
    ) -> QuotaBook {
        let mut book = QuotaBook::new(rules, now);
        let per = (customers / SHARDS + 1) * 8 / 7 + 2;
        for s in book.shards.iter_mut() {
            s.grow(per);
        }
        book
    }

    /// Replaces the rules, keeping every customer's history.
    pub fn set_rules(&mut self, rules: impl IntoIterator<Item = (String, QuotaRule)>) {
        self.default = None;
        self.rules.clear();
        for (name, rule) in rules {
            if name == "*" {
                self.default = Some(rule);
            } else {
                self.rules.push((name.into_boxed_str(), rule));
            }
        }
        self.keep = self
            .rules
            .iter()
            .map(|r| r.1.max as usize)
            .chain(self.default.map(|r| r.max as usize))
            .max()
            .unwrap_or(INLINE)
            .max(INLINE);
    }

    /// The rule for `segment` (the `*` rule if it has none of its own).
    #[inline]
    pub fn rule_for(&self, segment: Option<&str>) -> Option<QuotaRule> {
        if let Some(seg) = segment
            && let Some((_, r)) = self.rules.iter().find(|(n, _)| &**n == seg)
        {
            return Some(*r);
        }
        self.default
    }

    /// Customers with recorded state.
    pub fn len(&self) -> usize {
        self.len
    }

    /// Whether no customer has recorded state.
    pub fn is_empty(&self) -> bool {
        self.len == 0
    }

    /// Bytes of memory held for quota state (slots, shard headers, spill).
    pub fn memory_bytes(&self) -> usize {
        let slots: usize = self.shards.iter().map(|s| s.slots.len()).sum();
        let spill: usize = self
            .spill
            .values()
            .map(|v| v.capacity() * 8 + 48)
            .sum::<usize>()
            + self.spill.capacity() * 8;
        slots * std::mem::size_of::<Slot>()
            + self.shards.len() * std::mem::size_of::<Shard>()
            + spill
    }

    #[inline]
    fn split(key: CustomerKey) -> (usize, u32, u64) {
        let shard = (key.0 >> (64 - SHARD_BITS)) as usize;
        let fp = (key.0 as u32).max(1);
        (shard, fp, ((shard as u64) << 32) | u64::from(fp))
    }

    /// The `n`-th most recent recorded send (1-based), in units, if any,
    /// and the customer's slot if it has one.
    #[inline]
    fn nth_recent(&self, key: CustomerKey, n: usize) -> (i64, SlotHint) {
        let (shard, fp, ident) = Self::split(key);
        let Some(shard) = self.shards.get(shard) else {
            return (0, SlotHint(None));
        };
        let Some(i) = shard.find(fp) else {
            return (0, SlotHint(None));
        };
        let hint = SlotHint(Some(i));
        let st = shard.slots[i].state();
        if st & SPILL != 0 {
            let v = self
                .spill
                .get(&ident)
                .and_then(|v| v.get(n - 1))
                .copied()
                .unwrap_or(0);
            return (v, hint);
        }
        if n > INLINE {
            return (0, hint);
        }
        (unpack(st)[n - 1], hint)
    }

    /// Loads the slots of `keys` into the CPU cache, all at once, so that
    /// the checks that follow do not each wait for memory in turn. Purely
    /// an optimisation; see [`Admission::admit_batch`](crate::Admission::admit_batch).
    pub fn warm(&self, keys: &[CustomerKey]) {
        // A search starts at the home slot and runs on a few slots (see the
        // probe-length test), often into the next cache line: load both
        // (the slot a line's width on is in the same or the next line).
        const LINE_SLOTS: usize = 64 / std::mem::size_of::<Slot>();
        let mut acc = 0u32;
        for &k in keys {
            let (shard, fp, _) = Self::split(k);
            if let Some(sh) = self.shards.get(shard) {
                let i = home(fp, sh.slots.len());
                for s in [sh.slots.get(i), sh.slots.get(i + LINE_SLOTS)]
                    .into_iter()
                    .flatten()
                {
                    acc ^= s.fp;
                }
            }
        }
        // Only the loads matter; keep the compiler from dropping them.
        std::hint::black_box(acc);
    }

    /// May `key` receive one more message at `now` under `rule`?
    #[inline]
    pub fn check(&self, key: CustomerKey, rule: QuotaRule, now: Timestamp) -> QuotaCheck {
        self.check_slot(key, rule, now).0
    }

    /// [`check`](Self::check), plus where the customer's slot is (a hint
    /// for [`record_at`](Self::record_at), so that a check followed by a
    /// record searches the table once).
    #[inline]
    pub(crate) fn check_slot(
        &self,
        key: CustomerKey,
        rule: QuotaRule,
        now: Timestamp,
    ) -> (QuotaCheck, SlotHint) {
        let (v, hint) = self.nth_recent(key, rule.max.max(1) as usize);
        (self.check_units(v, rule, now), hint)
    }

    #[inline]
    fn check_units(&self, v: i64, rule: QuotaRule, now: Timestamp) -> QuotaCheck {
        if v == 0 {
            return QuotaCheck::Allowed;
        }
        // Sends whose stored time is <= thr (in units) left the period.
        let x = now
            .as_second()
            .saturating_sub(rule.per_secs)
            .saturating_sub(self.epoch);
        let thr = x.div_euclid(UNIT_SECS);
        if x >= 0 && v <= thr {
            return QuotaCheck::Allowed;
        }
        let free = self.unit_secs(v).saturating_add(rule.per_secs);
        QuotaCheck::Exceeded {
            free_at: Timestamp::from_second(free).unwrap_or(Timestamp::MAX),
        }
    }

    /// Records a message sent to `key` at `now` under `rule`.
    #[inline]
    pub fn record(&mut self, key: CustomerKey, rule: QuotaRule, now: Timestamp) {
        self.record_at(key, rule, now, SlotHint(None));
    }

    /// [`record`](Self::record) with the slot found by a
    /// [`check_slot`](Self::check_slot) just before (the hint is verified,
    /// so a stale one only costs the search it would have saved).
    #[inline]
    pub(crate) fn record_at(
        &mut self,
        key: CustomerKey,
        rule: QuotaRule,
        now: Timestamp,
        hint: SlotHint,
    ) {
        self.record_secs_at(key, rule.max as usize, send_secs(now), hint);
    }

    /// Forgets one send recorded for `key` at `sent`: its message did not
    /// go after all (its state could not be made durable before it was
    /// sent). Every other send of the customer stays counted.
    pub fn forget(&mut self, key: CustomerKey, sent: Timestamp) {
        let Some(mut state) = self.export(key) else {
            return;
        };
        let unit = self.units(send_secs(sent));
        let recorded = self.unit_secs(unit);
        if let Some(i) = state.sends.iter().position(|&s| s == recorded) {
            state.sends.remove(i);
            let left = (!state.sends.is_empty()).then_some(&state);
            self.replace(key, left);
        }
    }

    /// Checks and, if allowed, records.
    pub fn try_take(&mut self, key: CustomerKey, rule: QuotaRule, now: Timestamp) -> QuotaCheck {
        let c = self.check(key, rule, now);
        if c == QuotaCheck::Allowed {
            self.record(key, rule, now);
        }
        c
    }

    /// The Unix second unit `u` stands for (as exported).
    fn unit_secs(&self, u: i64) -> i64 {
        self.epoch.saturating_add(u.saturating_mul(UNIT_SECS))
    }

    /// Units for Unix second `secs`, rounded up, moving the epoch if needed.
    #[inline]
    fn units(&mut self, secs: i64) -> i64 {
        let d = secs.saturating_sub(self.epoch);
        let u = d.div_euclid(UNIT_SECS) + i64::from(d.rem_euclid(UNIT_SECS) != 0);
        if u > MAX_UNITS {
            self.rebase(u - (MAX_PERIOD_UNITS + 2));
            return self.units(secs);
        }
        u.max(1)
    }

    /// Moves the epoch forward by `shift` units; sends older than that
    /// (beyond every possible period) are forgotten.
    fn rebase(&mut self, shift: i64) {
        let adj = |v: i64| if v > shift { v - shift } else { 0 };
        for shard in self.shards.iter_mut() {
            for s in shard.slots.iter_mut().filter(|s| s.fp != 0) {
                let st = s.state();
                if st & SPILL == 0 {
                    s.set_state(pack(unpack(st).map(adj)));
                }
            }
        }
        for v in self.spill.values_mut() {
            for x in v.iter_mut() {
                *x = adj(*x);
            }
        }
        self.epoch = self.epoch.saturating_add(shift.saturating_mul(UNIT_SECS));
    }

    fn record_secs(&mut self, key: CustomerKey, n: usize, secs: i64) {
        self.record_secs_at(key, n, secs, SlotHint(None));
    }

    #[inline]
    fn record_secs_at(&mut self, key: CustomerKey, n: usize, secs: i64, hint: SlotHint) {
        let u = self.units(secs);
        let keep = self.keep;
        let (shard, fp, ident) = Self::split(key);
        let Some(sh) = self.shards.get_mut(shard) else {
            return;
        };
        let (i, is_new) = match hint.0 {
            Some(i) if sh.slots.get(i).is_some_and(|s| s.fp == fp) => (i, false),
            _ => sh.entry(fp),
        };
        if is_new {
            self.len += 1;
        }
        let slot = &mut sh.slots[i];
        let st = slot.state();
        if st & SPILL == 0 && n <= INLINE {
            let mut v = unpack(st);
            insert_desc(&mut v, u);
            slot.set_state(pack(v));
            return;
        }
        slot.set_state(SPILL);
        let keep = keep.max(n);
        let list = self.spill.entry(ident).or_insert_with(|| {
            if st & SPILL != 0 {
                return Vec::new();
            }
            let inline = unpack(st);
            let mut v: Vec<i64> = inline.into_iter().filter(|&x| x > 0).collect();
            // Moving from an inline rule (N <= 3) to a larger N: sends older
            // than the three kept are unknown. If all three slots were in
            // use, assume the unknown ones happened as late as the oldest
            // kept one, which can only over-count (conservative).
            if inline[INLINE - 1] > 0 {
                v.resize(keep, inline[INLINE - 1]);
            }
            v
        });
        let pos = list.iter().position(|&x| x < u).unwrap_or(list.len());
        list.insert(pos, u);
        list.truncate(keep);
    }

    /// A customer's state for persistence (`None` if nothing recorded).
    pub fn export(&self, key: CustomerKey) -> Option<QuotaState> {
        let (shard, fp, ident) = Self::split(key);
        let sh = self.shards.get(shard)?;
        let st = sh.slots[sh.find(fp)?].state();
        let units: Vec<i64> = if st & SPILL != 0 {
            self.spill.get(&ident).cloned().unwrap_or_default()
        } else {
            unpack(st).to_vec()
        };
        Some(QuotaState {
            sends: units
                .into_iter()
                .filter(|&u| u > 0)
                .map(|u| self.unit_secs(u))
                .collect(),
        })
    }

    /// Sets `key`'s state to `state` exactly (`None`: no sends), dropping
    /// sends this book counted that `state` does not have: for a book that
    /// follows state kept elsewhere (several nodes on one store), where a
    /// send counted here may not have happened.
    pub fn replace(&mut self, key: CustomerKey, state: Option<&QuotaState>) {
        let (shard, fp, ident) = Self::split(key);
        if let Some(sh) = self.shards.get_mut(shard)
            && sh.remove(fp)
        {
            self.spill.remove(&ident);
            self.len -= 1;
        }
        if let Some(state) = state {
            self.import(key, state);
        }
    }

    /// Merges persisted state for `key` (idempotent: importing the same
    /// state twice changes nothing).
    pub fn import(&mut self, key: CustomerKey, state: &QuotaState) {
        let present: Vec<i64> = self.export(key).map(|s| s.sends).unwrap_or_default();
        let mut sends = state.sends.clone();
        sends.sort_unstable_by(|a, b| b.cmp(a));
        sends.truncate(self.keep);
        let n = if sends.len() > INLINE {
            self.keep
        } else {
            INLINE
        };
        for s in sends {
            if !present.contains(&s) {
                self.record_secs(key, n, s);
            }
        }
    }

    /// Every customer's state, keyed so that [`import`](Self::import) of
    /// the pair restores it (the key carries the 48 identity bits only).
    pub fn export_all(&self) -> impl Iterator<Item = (CustomerKey, QuotaState)> + '_ {
        self.shards.iter().enumerate().flat_map(move |(si, sh)| {
            sh.slots.iter().filter(|s| s.fp != 0).filter_map(move |s| {
                let key = CustomerKey(((si as u64) << (64 - SHARD_BITS)) | u64::from(s.fp));
                self.export(key).map(|st| (key, st))
            })
        })
    }

    /// Forgets customers whose every recorded send is older than the
    /// longest rule's period at `now` (they are free under every rule).
    pub fn purge(&mut self, now: Timestamp) {
        let longest = self
            .rules
            .iter()
            .map(|r| r.1.per_secs)
            .chain(self.default.map(|r| r.per_secs))
            .max()
            .unwrap_or(0);
        let x = now
            .as_second()
            .saturating_sub(longest)
            .saturating_sub(self.epoch);
        if x < 0 {
            return;
        }
        let thr = x.div_euclid(UNIT_SECS);
        let mut len = 0;
        for (si, sh) in self.shards.iter_mut().enumerate() {
            let old = std::mem::take(&mut sh.slots);
            let keep: Vec<Slot> = old
                .iter()
                .filter(|s| s.fp != 0)
                .filter(|s| {
                    let st = s.state();
                    let ident = ((si as u64) << 32) | u64::from(s.fp);
                    let newest = if st & SPILL != 0 {
                        self.spill
                            .get(&ident)
                            .and_then(|v| v.first())
                            .copied()
                            .unwrap_or(0)
                    } else {
                        unpack(st)[0]
                    };
                    let live = newest > thr;
                    if !live {
                        self.spill.remove(&ident);
                    }
                    live
                })
                .copied()
                .collect();
            sh.len = 0;
            if !keep.is_empty() {
                sh.slots =
                    vec![Slot::default(); (keep.len() * 8 / 7 + 2).max(8)].into_boxed_slice();
                for s in keep {
                    sh.place(s);
                    sh.len += 1;
                }
            }
            len += sh.len as usize;
        }
        self.len = len;
    }
}

/// The Unix second a send at `now` is recorded at (rounded up: a send is
/// never counted as earlier than it was).
fn send_secs(now: Timestamp) -> i64 {
    now.as_second()
        .saturating_add(i64::from(now.subsec_nanosecond() > 0))
}

mod shard;

#[cfg(test)]
mod tests;
