//! The router: one file per resource under `routes/`.

mod blacklist;
mod bounces;
mod campaigns;
mod channels;
mod events;
mod ops;
mod participants;
mod plan;

use std::sync::Arc;

use axum::{
    Router,
    extract::DefaultBodyLimit,
    routing::{get, post, put},
};

use crate::{auth::Tokens, backend::Backend};

/// Settings of the API listener.
#[derive(Debug, Clone)]
pub struct ApiConfig {
    pub tokens: Tokens,
    /// Largest request body accepted, in bytes (413 beyond).
    pub max_body_bytes: usize,
}

#[derive(Clone)]
pub(crate) struct AppState {
    pub backend: Arc<dyn Backend>,
    pub config: Arc<ApiConfig>,
}

/// Every `/v1` route plus `/metrics`, `/healthz` and `/readyz`.
pub fn router(backend: Arc<dyn Backend>, config: ApiConfig) -> Router {
    // Whole-body extractors get the operator's limit, not axum's 2 MB default.
    let body_limit = DefaultBodyLimit::max(config.max_body_bytes);
    let state = AppState {
        backend,
        config: Arc::new(config),
    };
    Router::new()
        .route(
            "/v1/campaigns/{id}",
            put(campaigns::declare).get(campaigns::show),
        )
        .route("/v1/campaigns/{id}/{action}", post(campaigns::control))
        .route(
            "/v1/campaigns/{id}/participants",
            post(participants::upload).get(participants::audience),
        )
        .route("/v1/events", get(events::feed))
        .route("/v1/bounces", post(bounces::import))
        .route(
            "/v1/channels/{channel}/limits",
            put(channels::put_limits).get(channels::get_limits),
        )
        .route(
            "/v1/channels/{channel}/plan",
            post(plan::compute).get(plan::show),
        )
        .route("/admin/plan/{channel}", get(plan::page))
        .route("/v1/blacklist/{channel}", put(blacklist::add))
        .route(
            "/v1/blacklist/{channel}/{entry}",
            get(blacklist::show).delete(blacklist::remove),
        )
        .route("/metrics", get(ops::metrics))
        .route("/healthz", get(ops::healthz))
        .route("/readyz", get(ops::readyz))
        .layer(body_limit)
        .with_state(state)
}

#[cfg(test)]
mod tests;
