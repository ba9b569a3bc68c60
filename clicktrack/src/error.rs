//! The crate's one error type.

/// Everything that can go wrong in `clicktrack`.
///
/// Token failures are deliberately a single variant: the public handler answers
/// every one of them with the same 404, and callers gain nothing from knowing
/// whether a forged token failed on its length, its alphabet or its tag.
#[derive(Debug, thiserror::Error)]
pub enum Error {
    /// A key id outside `0..=63` (the token header has six bits for it).
    #[error("key id {0} is out of range: key ids are 0..=63")]
    KeyId(u8),
    /// An HMAC secret too short to be a real key.
    #[error("HMAC secret for key id {id} is {len} bytes; at least {min} bytes are required")]
    ShortSecret {
        /// The key id the secret was given for.
        id: u8,
        /// Its length in bytes.
        len: usize,
        /// The minimum accepted length.
        min: usize,
    },
    /// A keyring configuration string that does not parse.
    #[error("keyring entry {entry}: {reason}")]
    KeySpec {
        /// The entry's position, from 1.
        entry: usize,
        /// What is wrong with it.
        reason: &'static str,
    },
    /// Two keys with the same id in one keyring.
    #[error("key id {0} appears twice in the keyring")]
    DuplicateKeyId(u8),
    /// A token that does not verify: malformed, truncated, oversized, tampered
    /// with, or signed by a key the keyring does not hold.
    #[error("tracking token does not verify")]
    InvalidToken,
    /// The tracking base URL is not usable in links.
    #[error("tracking base URL {url:?} is invalid: {reason}")]
    BaseUrl {
        /// The URL as given.
        url: String,
        /// Why it was refused.
        reason: &'static str,
    },
    /// A campaign with more distinct tracked links than a `u16` index can name.
    #[error("link table is full: a campaign may have at most 65536 distinct tracked links")]
    TooManyLinks,
    /// The tracking listener failed.
    #[error("tracking listener: {0}")]
    Io(#[from] std::io::Error),
}

/// `Result` with this crate's [`Error`].
pub type Result<T, E = Error> = std::result::Result<T, E>;
