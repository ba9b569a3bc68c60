//! Blacklist: customers (ids or addresses) who must receive nothing on a
//! channel. Membership is a hash-set probe on the entry's 64-bit
//! [`CustomerKey`] (about 9–18 bytes per entry), so millions of entries fit
//! comfortably and bulk imports are a single pass.
//!
//! Entries are normalised like [`CustomerKey::of`] (trimmed, ASCII case
//! folded, phone punctuation dropped). A 64-bit key collision would
//! blacklist an extra customer (conservative); among ten million entries its
//! probability is about 3 in a million.

use std::collections::HashSet;
use std::hash::{BuildHasherDefault, Hasher};

use crate::key::CustomerKey;

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
        }
    }

    /// Adds an id or address; `true` if it was not there.
    pub fn insert(&mut self, entry: &str) -> bool {
        self.insert_key(CustomerKey::of(entry))
    }

    /// Adds a key; `true` if it was not there.
    pub fn insert_key(&mut self, key: CustomerKey) -> bool {
        self.keys.insert(key.0)
    }

    /// Removes an id or address; `true` if it was there.
    pub fn remove(&mut self, entry: &str) -> bool {
        self.keys.remove(&CustomerKey::of(entry).0)
    }

    /// Removes a key; `true` if it was there.
    pub fn remove_key(&mut self, key: CustomerKey) -> bool {
        self.keys.remove(&key.0)
    }

    /// Whether an id or address is blacklisted.
    pub fn contains(&self, entry: &str) -> bool {
        self.contains_key(CustomerKey::of(entry))
    }

    /// Whether a key is blacklisted.
    #[inline]
    pub fn contains_key(&self, key: CustomerKey) -> bool {
        self.keys.contains(&key.0)
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
        for k in keys {
            self.keys.insert(k);
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
}
