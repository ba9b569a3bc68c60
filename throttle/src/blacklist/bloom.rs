//! A Bloom filter with one 64-bit word per key ("register-blocked"): a
//! membership test reads a single word, so it costs one cache line (and at
//! about 2 bytes per entry the whole filter usually stays in the CPU cache),
//! where the exact hash set behind it costs two or more.
//!
//! It answers "certainly not" or "maybe": about 1 in 200 keys that were
//! never added are "maybe", and so are keys that were added then removed
//! (bits are never cleared; the owner rebuilds the filter instead).

use crate::key::mix;

/// Bits per planned entry: 16 keeps false positives near 0.5% with four
/// bits per key in one word.
const BITS_PER_ENTRY: usize = 16;

#[derive(Debug, Clone, Default)]
pub(crate) struct Bloom {
    words: Box<[u64]>,
    /// Entries it was sized for; more raise the false-positive rate.
    planned: usize,
}

impl Bloom {
    /// An empty filter sized for `planned` entries.
    pub(crate) fn with_capacity(planned: usize) -> Bloom {
        let words = (planned * BITS_PER_ENTRY).div_ceil(64);
        Bloom {
            words: vec![0; words].into_boxed_slice(),
            planned,
        }
    }

    /// Entries it was sized for.
    pub(crate) fn planned(&self) -> usize {
        self.planned
    }

    /// The word holding `key`'s bits, and the bits.
    #[inline]
    fn locate(&self, key: u64) -> (usize, u64) {
        // Keys are usually hashes already, but callers may use small
        // numbers: mixing keeps the filter's rate independent of that.
        let h = mix(key);
        let word = ((h >> 32) * self.words.len() as u64) >> 32;
        let bits = (1u64 << (h & 63))
            | (1u64 << ((h >> 6) & 63))
            | (1u64 << ((h >> 12) & 63))
            | (1u64 << ((h >> 18) & 63));
        (word as usize, bits)
    }

    pub(crate) fn insert(&mut self, key: u64) {
        let (i, bits) = self.locate(key);
        if let Some(w) = self.words.get_mut(i) {
            *w |= bits;
        }
    }

    /// `false` if `key` was certainly never inserted.
    #[inline]
    pub(crate) fn may_contain(&self, key: u64) -> bool {
        let (i, bits) = self.locate(key);
        self.words.get(i).is_some_and(|w| w & bits == bits)
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn no_false_negatives_and_few_false_positives() {
        let n = 100_000u64;
        let mut f = Bloom::with_capacity(n as usize);
        for k in 0..n {
            f.insert(k);
        }
        assert!((0..n).all(|k| f.may_contain(k)));
        let false_positives = (n..11 * n).filter(|&k| f.may_contain(k)).count();
        let rate = false_positives as f64 / (10 * n) as f64;
        assert!(rate < 0.01, "false-positive rate {rate}");
    }

    #[test]
    fn empty_filter_contains_nothing() {
        let f = Bloom::default();
        assert!(!f.may_contain(0));
        assert!(!f.may_contain(42));
    }
}
