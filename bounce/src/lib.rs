//! Bounce classification for sluice.
//!
//! This crate turns the raw bytes of a returned message into a [`Bounce`]:
//! the recipients it reports on, each with a [`Kind`] (hard, soft or
//! other), a fine [`Reason`], the RFC 3463 [`EnhancedStatus`] and SMTP reply
//! code where present, and the diagnostic text; plus what the report tells
//! about the original message (Message-ID, Return-Path, sluice token). It
//! understands standard delivery status notifications (RFC 3464), feedback
//! reports (ARF), auto-replies and the free-text bounces real mail servers
//! write. [`classify_reply`] applies the same rules to a synchronous SMTP
//! reply at send time.
//!
//! It does not receive mail, verify tokens, match bounces to campaigns or
//! suppress addresses: that is the gateway's job. It does no I/O.
//!
//! Bad input never panics. Input above the size limit
//! ([`DEFAULT_MAX_SIZE`], 10 MiB, configurable on [`Classifier`]) is
//! refused with [`Error::TooLarge`] before parsing; anything else gives a
//! [`Bounce`], with `is_bounce == false` when it is not a report. Work is
//! bounded: at most [`MAX_REPORT`] bytes of a report's text are read and at
//! most [`MAX_RECIPIENTS`] recipients returned ([`Bounce::truncated`] says
//! when there were more).
//!
//! Main types: [`Classifier`] (limits; [`classify`] uses the defaults),
//! [`Bounce`] and its [`Recipient`]s, [`Kind`], [`Reason`],
//! [`EnhancedStatus`], [`Verdict`] (from [`classify_reply`]) and [`Error`].
//!
//! The classification rules are data: [`status::reason_of_status`]
//! (enhanced status to reason; the codes of [`status::decides`] come
//! before any text), [`rules::RULES`] (text phrases to reasons) and the
//! phrase families of `rules/families.rs` (a subject near a predicate,
//! read when no phrase matched); the hard/soft rule lives in
//! [`Reason::kind`]. `tests/holdout.rs` measures them on each family of
//! the corpus with the phrases only that family has left out.

mod address;
mod classifier;
mod diagnosis;
mod dsn;
mod error;
mod mime;
mod notification;
mod original;
mod prose;
pub mod reason;
mod report;
pub mod rules;
pub mod status;

pub use classifier::{Classifier, DEFAULT_MAX_SIZE};
pub use diagnosis::{Phase, classify_reply};
pub use error::{Error, Result};
pub use original::TOKEN_HEADER;
pub use prose::{MAX_RECIPIENTS, MAX_REPORT};
pub use reason::{Kind, Reason};
pub use report::{Bounce, Format, Recipient, Verdict};
pub use status::EnhancedStatus;

/// Classifies the raw bytes of a returned message with the default limits
/// (see [`Classifier`]).
///
/// ```
/// let raw = b"From: MAILER-DAEMON@mx.example.org\r\nTo: b+t1@bounce.example\r\n\
/// Subject: failure notice\r\n\r\n<kim@example.jp>:\r\n\
/// Remote host said: 550 5.1.1 <kim@example.jp>... User Unknown\r\n";
/// let bounce = bounce::classify(raw)?;
/// assert!(bounce.is_bounce);
/// assert_eq!(bounce.recipients[0].address, "kim@example.jp");
/// assert_eq!(bounce.recipients[0].kind, bounce::Kind::Hard);
/// assert_eq!(bounce.recipients[0].reason, bounce::Reason::UserUnknown);
/// assert_eq!(bounce.token.as_deref(), Some("t1"));
/// # Ok::<(), bounce::Error>(())
/// ```
pub fn classify(raw: &[u8]) -> Result<Bounce> {
    Classifier::default().classify(raw)
}
