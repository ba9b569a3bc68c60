//! The crate's error type.

/// Why a message could not be classified.
#[derive(Debug, thiserror::Error)]
pub enum Error {
    /// The input is larger than the configured limit; it was not parsed.
    #[error("message is {size} bytes, above the limit of {limit} bytes")]
    TooLarge {
        /// Size of the input in bytes.
        size: usize,
        /// The configured limit in bytes.
        limit: usize,
    },
    /// The input is empty.
    #[error("message is empty")]
    Empty,
    /// A reason name outside the vocabulary.
    #[error("unknown bounce reason {0:?}")]
    UnknownReason(String),
    /// Text that is not an enhanced status code (`class.subject.detail`).
    #[error("not an enhanced status code: {0:?}")]
    BadStatus(String),
}

/// `Result` with this crate's [`Error`].
pub type Result<T, E = Error> = std::result::Result<T, E>;
