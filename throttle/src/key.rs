//! Customer keys: a stable 64-bit hash of a customer id or address.

use serde::{Deserialize, Serialize};

/// A customer (or address) as the throttle sees it: a stable 64-bit hash of
/// the normalised string. The hash is defined by this crate (not by `std`),
/// so keys stay the same across releases and restarts and can be persisted.
///
/// Two different customers may, with negligible probability, share a key;
/// the effect is conservative (they share a quota), never a message sent
/// that should not have been.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, PartialOrd, Ord, Serialize, Deserialize)]
pub struct CustomerKey(pub u64);

impl CustomerKey {
    /// Key of a customer id or address. Leading/trailing blanks are ignored
    /// and ASCII letters are folded to lower case; phone-number punctuation
    /// (spaces, `-`, `.`, `(`, `)`) inside a value starting with `+` or a
    /// digit is dropped, so `+49 170 123-45` and `+4917012345` are one key.
    pub fn of(id: &str) -> CustomerKey {
        let id = id.trim();
        let phone = id
            .bytes()
            .next()
            .is_some_and(|b| b == b'+' || b.is_ascii_digit())
            && id
                .bytes()
                .all(|b| b.is_ascii_digit() || b" +-.()".contains(&b));
        let keep = |b: &u8| !(phone && b" -.()".contains(b));
        let fold = |b: &u8| b.to_ascii_lowercase();
        // Short ids (nearly all) are normalised on the stack.
        let mut small = [0u8; 128];
        if id.len() <= small.len() {
            let mut n = 0;
            for b in id.as_bytes().iter().filter(|b| keep(b)) {
                small[n] = fold(b);
                n += 1;
            }
            return CustomerKey(hash64(&small[..n]));
        }
        let buf: Vec<u8> = id.as_bytes().iter().filter(|b| keep(b)).map(fold).collect();
        CustomerKey(hash64(&buf))
    }
}

/// A fast, stable, well-mixed 64-bit hash (multiply-xorshift over 8-byte
/// words, splitmix64 finaliser). Not cryptographic.
pub fn hash64(bytes: &[u8]) -> u64 {
    const K: u64 = 0x9e37_79b9_7f4a_7c15;
    let mut h: u64 = 0x243f_6a88_85a3_08d3 ^ (bytes.len() as u64).wrapping_mul(K);
    let mut chunks = bytes.chunks_exact(8);
    for c in &mut chunks {
        let mut w = [0u8; 8];
        w.copy_from_slice(c);
        h = (h ^ u64::from_le_bytes(w)).wrapping_mul(K);
        h ^= h >> 29;
    }
    let rest = chunks.remainder();
    if !rest.is_empty() {
        let mut w = [0u8; 8];
        w[..rest.len()].copy_from_slice(rest);
        h = (h ^ u64::from_le_bytes(w) ^ 0xff).wrapping_mul(K);
        h ^= h >> 29;
    }
    mix(h)
}

/// splitmix64's finaliser: a bijection that spreads every input bit.
pub fn mix(mut z: u64) -> u64 {
    z = (z ^ (z >> 30)).wrapping_mul(0xbf58_476d_1ce4_e5b9);
    z = (z ^ (z >> 27)).wrapping_mul(0x94d0_49bb_1331_11eb);
    z ^ (z >> 31)
}

#[cfg(test)]
#[allow(clippy::unwrap_used)] // tests may unwrap
mod tests {
    use super::*;

    const PINNED: u64 = 9_413_483_823_253_269_335;

    #[test]
    fn normalisation() {
        assert_eq!(
            CustomerKey::of(" Bob@Example.COM "),
            CustomerKey::of("bob@example.com")
        );
        assert_eq!(
            CustomerKey::of("+49 170 123-45"),
            CustomerKey::of("+4917012345")
        );
        assert_ne!(CustomerKey::of("cust-1"), CustomerKey::of("cust1"));
        assert_ne!(CustomerKey::of("a"), CustomerKey::of("b"));
    }

    #[test]
    fn hash_is_stable() {
        // Persisted keys depend on these values never changing.
        assert_eq!(hash64(b"customer-42"), PINNED);
        assert_eq!(CustomerKey::of(" Customer-42 "), CustomerKey(PINNED));
        let long = "x".repeat(300);
        assert_eq!(
            CustomerKey::of(&long.to_uppercase()),
            CustomerKey(hash64(long.as_bytes()))
        );
        assert_ne!(hash64(b"12345678"), hash64(b"12345679"));
        assert_ne!(hash64(b"abcdefgh1"), hash64(b"abcdefgh2"));
        let pinned = hash64(b"customer-42");
        assert_eq!(pinned, hash64(b"customer-42"));
    }
}
