//! The sluice daemon: configuration, the transit store, the dispatcher, the
//! SMTP channel, signed webhooks and metrics, wired to the CRM API of
//! `admin-api`.
//!
//! Main entry points: [`config::Config`] (load and validate) and [`run`]
//! (serve until shutdown). `main.rs` only parses arguments and calls them.

pub mod backend;
pub mod channel;
pub mod config;
pub mod dispatch;
pub mod metrics;
pub mod policy;
pub mod returns;
pub mod schedule;
pub mod template;
pub mod tracking;
pub mod verp;
pub mod webhook;

mod daemon;

pub use daemon::{RunError, Running, run, start};
