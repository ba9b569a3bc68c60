//! The sluice daemon: configuration, the transit store, the dispatcher, the
//! SMTP channel, events and metrics, wired to the CRM API of `admin-api`.
//!
//! Main entry points: [`config::Config`] (load and validate) and [`run`]
//! (serve until shutdown).

pub mod domain;
pub mod store;
