//! The sluice daemon: configuration, the channels (SMTP and SMPP), the
//! dispatcher, returned mail, tracked links and the tracking listener's
//! sink, signed webhooks and metrics, wired to the CRM API of `admin-api`
//! over the store of the `store` crate. ARCHITECTURE.md maps the crates.
//!
//! Main entry points: [`config::Config`] (load and validate) and [`run`]
//! (serve until shutdown). `main.rs` only parses arguments and calls them.

pub mod backend;
pub mod channel;
pub mod config;
pub mod dispatch;
pub mod engagements;
pub mod links;
pub mod metrics;
pub mod policy;
pub mod progress;
pub mod recorded;
pub mod returns;
pub mod schedule;
pub mod template;
pub mod tracking;
pub mod unmatched;
pub mod verp;
pub mod webhook;

mod daemon;
#[cfg(test)]
mod test_support;

pub use daemon::{RunError, Running, run, start};

/// Another library's error, kept as the source of one of ours.
pub type BoxError = Box<dyn std::error::Error + Send + Sync>;
