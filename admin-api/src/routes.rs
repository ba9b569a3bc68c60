//! The router: one file per resource under `routes/`.

mod blacklist;
mod bounces;
pub(crate) mod budget;
mod campaigns;
mod channels;
mod console;
mod events;
mod extract;
mod openapi;
mod ops;
mod participants;
mod plan;
mod query;
mod unmatched;

use std::sync::Arc;

use axum::{
    Router,
    http::{Method, Uri},
    middleware::{from_extractor, from_fn_with_state},
    routing::{get, post, put},
};

use crate::{auth::Tokens, backend::Backend, error::ApiError};
use extract::{NoParameters, StrictQuery};

/// Settings of the API listener.
#[derive(Debug, Clone)]
pub struct ApiConfig {
    pub tokens: Tokens,
    /// Largest request body accepted, in bytes (413 beyond).
    pub max_body_bytes: usize,
    /// Bytes that bodies read whole may hold at once, across every request
    /// (503 beyond); NDJSON batches on their way to the store may hold half
    /// as much besides (they wait for room).
    pub max_body_memory: usize,
}

#[derive(Clone)]
pub(crate) struct AppState {
    pub backend: Arc<dyn Backend>,
    pub config: Arc<ApiConfig>,
    pub bodies: Arc<budget::BodyBudget>,
}

/// Every `/v1` route plus `/metrics`, `/healthz` and `/readyz`. Whatever
/// misses a route answers a problem too: an unknown path 404, a known path
/// with another method 405.
pub fn router(backend: Arc<dyn Backend>, config: ApiConfig) -> Router {
    let state = AppState {
        backend,
        bodies: Arc::new(budget::BodyBudget::new(config.max_body_memory)),
        config: Arc::new(config),
    };
    routes_without_query()
        .merge(routes_with_query())
        .fallback(no_route)
        // Last: it reaches only the routes already added.
        .method_not_allowed_fallback(wrong_method)
        // After every route: each request is counted with its route.
        .layer(from_fn_with_state(state.clone(), ops::count_request))
        .with_state(state)
}

/// The routes that take no query parameters: one given is refused as
/// unknown, as on the routes that take some.
fn routes_without_query() -> Router<AppState> {
    Router::new()
        .route(
            "/v1/campaigns/{id}",
            put(campaigns::declare)
                .get(campaigns::show)
                .delete(campaigns::delete),
        )
        .route("/v1/campaigns/{id}/{action}", post(campaigns::control))
        .route("/v1/campaigns/{id}/preview", post(campaigns::preview))
        .route("/v1/campaigns/{id}/test", post(campaigns::send_test))
        .route(
            "/v1/campaigns/{id}/participants/from",
            post(participants::from_audience),
        )
        .route("/v1/bounces", post(bounces::import))
        .route("/v1/channels", get(channels::list))
        .route(
            "/v1/channels/{channel}/connectors/{name}/{action}",
            post(channels::switch_connector),
        )
        .route(
            "/v1/channels/{channel}/limits",
            put(channels::put_limits).get(channels::get_limits),
        )
        .route(
            "/v1/channels/{channel}/plan",
            post(plan::compute).get(plan::show),
        )
        .route("/admin/plan/{channel}", get(plan::page))
        .route("/console", get(console::page))
        .route("/console/", get(console::page))
        .route("/console/{asset}", get(console::asset))
        .route("/v1/blacklist/{channel}", put(blacklist::add))
        .route(
            "/v1/blacklist/{channel}/{entry}",
            get(blacklist::show).delete(blacklist::remove),
        )
        .route("/metrics", get(ops::metrics))
        .route("/healthz", get(ops::healthz))
        .route("/readyz", get(ops::readyz))
        .route("/v1/openapi.json", get(openapi::document))
        .route_layer(from_extractor::<StrictQuery<NoParameters>>())
}

/// The routes whose handlers read their parameters through [`StrictQuery`].
fn routes_with_query() -> Router<AppState> {
    Router::new()
        .route(
            "/v1/campaigns/{id}/participants",
            get(participants::audience).post(participants::upload),
        )
        .route("/v1/events", get(events::feed))
        .route("/v1/campaigns", get(campaigns::list))
        .route("/v1/blacklist/{channel}", get(blacklist::list))
        .route("/v1/bounces/unmatched", get(unmatched::mails))
        .route("/v1/receipts/unmatched", get(unmatched::receipts))
}

async fn no_route(uri: Uri) -> ApiError {
    ApiError::NotFound(format!(
        "no route `{}` (docs/api.md lists the routes)",
        uri.path()
    ))
}

async fn wrong_method(method: Method, uri: Uri) -> ApiError {
    ApiError::MethodNotAllowed(format!(
        "`{}` does not take {method} (the Allow header lists what it takes)",
        uri.path()
    ))
}

#[cfg(test)]
mod tests;
