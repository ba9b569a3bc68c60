//! Blacklist: customers (ids or addresses) who must receive nothing on a
//! channel. Membership is exact, on the entry's 64-bit [`CustomerKey`]: a
//! hash set (about 9–18 bytes per entry), so millions of entries fit
//! comfortably and bulk imports are a single pass. A Bloom filter in front
//! (2–4 bytes per entry) answers "not listed", for nearly every key, from
//! one cache line, so the admission path rarely touches the set.
//!
//! Entries are normalised like [`CustomerKey::of`] (trimmed, ASCII case
//! folded, phone punctuation dropped). A 64-bit key collision would
//! blacklist an extra customer (conservative); among ten million entries its
//! probability is about 3 in a million.

use std::collections::HashSet;
use std::hash::{BuildHasherDefault, Hasher};

use crate::admission::Request;
use crate::key::CustomerKey;

mod bloom;

use bloom::Bloom;

/// Keys are already well mixed; hashing them again would only cost time.
#[derive(Default)]
struct PassThrough(u64);

impl Hasher for PassThrough {
    fn finish(&self) -> u64 {
        self.0
    }

    fn write(&mut self, bytes: &[u8]) {
        for &b in bytes {
            self.0 = (self.0.rotate_left(8) ^ u64::from(b)).wrapping_mul(0x9e37_79b9_7f4a_7c15);
        }
    }

    fn write_u64(&mut self, n: u64) {
        self.0 = n;
    }
}

/// A channel's (or, if the caller shares it, every channel's) blacklist.
#[derive(Default, Clone)]
pub struct Blacklist {
    keys: HashSet<u64, BuildHasherDefault<PassThrough>>,
    /// Holds every key of `keys` (and removed ones until the next rebuild).
    filter: Bloom,
    /// Keys removed since the filter was built; they still pass it.
    removed: usize,
}

impl std::fmt::Debug for Blacklist {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("Blacklist")
            .field("len", &self.keys.len())
            .finish()
    }
}

impl Blacklist {
    /// An empty blacklist.
    pub fn new() -> Blacklist {
        Blacklist::default()
    }

    /// An empty blacklist with room for `n` entries.
    pub fn with_capacity(n: usize) -> Blacklist {
        Blacklist {
            keys: HashSet::with_capacity_and_hasher(n, BuildHasherDefault::default()),
            filter: Bloom::with_capacity(n),
            removed: 0,
        }
    }

    /// Adds an id or address; `true` if it was not there.
    pub fn insert(&mut self, entry: &str) -> bool {
        self.insert_key(CustomerKey::of(entry))
    }

    /// Adds a key; `true` if it was not there.
    pub fn insert_key(&mut self, key: CustomerKey) -> bool {
        if !self.keys.insert(key.0) {
            return false;
        }
        self.reserve_filter(self.keys.len());
        self.filter.insert(key.0);
        true
    }

    /// Removes an id or address; `true` if it was there.
    pub fn remove(&mut self, entry: &str) -> bool {
        self.remove_key(CustomerKey::of(entry))
    }

    /// Removes a key; `true` if it was there.
    pub fn remove_key(&mut self, key: CustomerKey) -> bool {
        if !self.keys.remove(&key.0) {
            return false;
        }
        // Removed keys still pass the filter (correct, the set decides, but
        // slower): rebuild once they are a sizeable share of it.
        self.removed += 1;
        if self.removed * 4 > self.filter.planned() {
            self.rebuild_filter(self.keys.len());
        }
        true
    }

    /// Makes the filter big enough for `entries` keys.
    fn reserve_filter(&mut self, entries: usize) {
        if entries > self.filter.planned() {
            self.rebuild_filter(entries);
        }
    }

    /// A filter holding exactly the current keys, sized for twice
    /// `entries` so that growth rebuilds it only at doublings.
    fn rebuild_filter(&mut self, entries: usize) {
        self.filter = Bloom::with_capacity(entries * 2);
        for &k in &self.keys {
            self.filter.insert(k);
        }
        self.removed = 0;
    }

    /// Whether an id or address is blacklisted.
    pub fn contains(&self, entry: &str) -> bool {
        self.contains_key(CustomerKey::of(entry))
    }

    /// Whether a key is blacklisted.
    #[inline]
    pub fn contains_key(&self, key: CustomerKey) -> bool {
        self.filter.may_contain(key.0) && self.keys.contains(&key.0)
    }

    /// Whether a request's customer or address is blacklisted.
    #[inline]
    pub fn lists(&self, req: &Request<'_>) -> bool {
        !self.is_empty()
            && (self.contains_key(req.customer)
                || req.address.is_some_and(|a| self.contains_key(a)))
    }

    /// Bulk insert; returns how many entries were new.
    pub fn extend<I, S>(&mut self, entries: I) -> usize
    where
        I: IntoIterator<Item = S>,
        S: AsRef<str>,
    {
        let mut keys: Vec<u64> = entries
            .into_iter()
            .map(|e| CustomerKey::of(e.as_ref()).0)
            .collect();
        // The table places a key by its low bits: inserting in that order
        // walks the table front to back instead of jumping around memory,
        // several times faster for large imports.
        keys.sort_unstable_by_key(|k| k.reverse_bits());
        self.keys.reserve(keys.len());
        let before = self.keys.len();
        self.reserve_filter(before + keys.len());
        for k in keys {
            if self.keys.insert(k) {
                self.filter.insert(k);
            }
        }
        self.keys.len() - before
    }

    /// Number of entries.
    pub fn len(&self) -> usize {
        self.keys.len()
    }

    /// Whether there are no entries.
    pub fn is_empty(&self) -> bool {
        self.keys.is_empty()
    }
}

#[cfg(test)]
#[allow(clippy::unwrap_used)] // tests may unwrap
mod tests {
    use super::*;

    #[test]
    fn add_remove_bulk() {
        let mut b = Blacklist::new();
        assert!(b.insert("Alice@Example.com"));
        assert!(!b.insert("alice@example.com "));
        assert!(b.contains("ALICE@example.com"));
        assert!(!b.contains("+49 170 1234567"));
        let added = b.extend((0..1_000_000).map(|i| format!("+4917{i:07}")));
        assert_eq!(added, 1_000_000);
        assert_eq!(b.len(), 1_000_001);
        assert!(b.contains("+49 17 0001234"));
        assert!(!b.contains("+4918 0001234"));
        assert!(b.remove("alice@example.com"));
        assert!(!b.contains("alice@example.com"));
        assert!(!b.remove("alice@example.com"));
    }

    #[test]
    fn removals_and_regrowth_keep_membership_exact() {
        let mut b = Blacklist::new();
        for i in 0..1_000 {
            assert!(b.insert_key(CustomerKey(i)));
        }
        // Enough removals to rebuild the filter several times.
        for i in 100..1_000 {
            assert!(b.remove_key(CustomerKey(i)));
        }
        assert!((0..100).all(|i| b.contains_key(CustomerKey(i))));
        assert!((100..2_000).all(|i| !b.contains_key(CustomerKey(i))));
        assert!(b.insert_key(CustomerKey(500)));
        assert!(b.contains_key(CustomerKey(500)));
        assert_eq!(b.extend(["a", "b", "a"]), 2);
        assert!(b.contains("b"));
        assert_eq!(b.len(), 103);
    }
}
