//! Operations: `/metrics`, `/healthz`, `/readyz` (no token needed).

use axum::{
    Json,
    extract::{MatchedPath, Request, State},
    http::{
        HeaderMap, StatusCode,
        header::{ACCEPT, CONTENT_TYPE},
    },
    middleware::Next,
    response::IntoResponse,
    response::Response,
};

use serde_json::json;

use super::AppState;
use crate::backend::Exposition;

/// OpenMetrics when the scraper asks for it (Prometheus does), else the
/// classic text format (`curl`, `promtool`, older scrapers).
pub async fn metrics(State(s): State<AppState>, headers: HeaderMap) -> impl IntoResponse {
    let openmetrics = headers
        .get_all(ACCEPT)
        .iter()
        .filter_map(|v| v.to_str().ok())
        .any(|accept| accept.contains("application/openmetrics-text"));
    let (exposition, content_type) = if openmetrics {
        (
            Exposition::OpenMetrics,
            "application/openmetrics-text; version=1.0.0; charset=utf-8",
        )
    } else {
        (
            Exposition::Classic,
            "text/plain; version=0.0.4; charset=utf-8",
        )
    };
    (
        [(CONTENT_TYPE, content_type)],
        s.backend.metrics(exposition),
    )
}

/// Counts each request by its route's template (no id ever a label), its
/// method and the status it was answered.
pub async fn count_request(State(s): State<AppState>, request: Request, next: Next) -> Response {
    let route = request
        .extensions()
        .get::<MatchedPath>()
        .map_or("unmatched", MatchedPath::as_str)
        .to_owned();
    let method = request.method().clone();
    let response = next.run(request).await;
    s.backend
        .count_request(&route, method.as_str(), response.status().as_u16());
    response
}

pub async fn healthz() -> &'static str {
    "ok\n"
}

/// 200 when the gateway can send, else 503; either way a JSON document
/// `{"ready": bool, "reasons": [...]}` saying what is missing.
pub async fn readyz(State(s): State<AppState>) -> impl IntoResponse {
    let reasons = s.backend.not_ready();
    let status = if reasons.is_empty() {
        StatusCode::OK
    } else {
        StatusCode::SERVICE_UNAVAILABLE
    };
    let ready = reasons.is_empty();
    (status, Json(json!({ "ready": ready, "reasons": reasons })))
}
