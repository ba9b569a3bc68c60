//! Click tracking for sluice: signed tracking tokens, link rewriting in text
//! and HTML bodies, and the HTTP handlers of the public tracking listener.
//!
//! A [`Keyring`] mints and verifies compact tokens (≈ 24 URL-safe characters)
//! that name a message number ([`MessageNo`]), a link index ([`LinkIndex`]) and
//! a [`Kind`] (click, open, unsubscribe), authenticated by a truncated
//! HMAC-SHA256 tag under a rotatable key id. The original URLs are not in the
//! token: a campaign's [`LinkTable`] is built once from its template and stored
//! by the caller. A [`Rewriter`] turns each personalised body into a tracked one
//! (links, open pixel, `List-Unsubscribe` headers). [`Tracking`] is the hyper
//! service for `/c/{token}` (302), `/o/{token}` (1×1 GIF) and `/u/{token}`
//! (unsubscribe page and RFC 8058 one-click POST); [`serve`] runs it on a
//! listener until a shutdown future completes, [`serve_on_thread`] does so on
//! a thread and runtime of its own.
//!
//! This crate does not know the gateway: it does not store link tables, map
//! messages to campaigns or customers, or persist facts. It asks and reports
//! through the [`TrackingSink`] trait, which the gateway implements (a link
//! table cache and a bounded, non-blocking event queue).

// Tests may unwrap: the workspace denies `unwrap_used` in library code only.
#![cfg_attr(test, allow(clippy::unwrap_used))]

mod error;
mod handler;
mod keyring;
mod rewrite;
mod server;
mod token;

pub use error::{Error, Result};
pub use handler::{EventKind, Overloaded, Served, Tracking, TrackingEvent, TrackingSink};
pub use keyring::{Key, Keyring, MAX_KEY_ID, MIN_SECRET_LEN};
pub use rewrite::{
    LinkTable, ListUnsubscribe, Rewriter, Rewritten, UNTRACKED_ATTRIBUTE, is_personalised,
};
pub use server::{serve, serve_on_thread};
pub use token::{Kind, LinkIndex, MAX_TOKEN_LEN, MessageNo, Token};
