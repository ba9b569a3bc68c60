//! The HTTP contract of sluice with the CRM and the channel administrator
//! (`/v1/...`, documented in `docs/api.md`): routes, bearer-token roles, request
//! validation and the versioned wire types.
//!
//! It does not know how campaigns are stored or sent: the daemon's behaviour
//! arrives through the [`Backend`] trait, which the `gateway` crate implements.
//! Main types: [`Backend`], [`ApiConfig`], [`ApiError`], [`router`], and the
//! wire types in [`types::v1`].

mod auth;
mod backend;
mod error;
mod ingest;
mod routes;
pub mod strict_json;
pub mod types;

pub use auth::{Role, TokenSpecError, Tokens};
pub use backend::{AudienceRows, Backend, BackendError, BackendResult, Exposition, UploadId};
pub use error::ApiError;
pub use ingest::BATCH as STAGE_BATCH;
pub use routes::{ApiConfig, router};
