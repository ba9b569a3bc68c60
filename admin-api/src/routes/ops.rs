//! Operations: `/metrics`, `/healthz`, `/readyz` (no token needed).

use axum::{
    Json,
    extract::State,
    http::{StatusCode, header::CONTENT_TYPE},
    response::IntoResponse,
};

use serde_json::json;

use super::AppState;

pub async fn metrics(State(s): State<AppState>) -> impl IntoResponse {
    (
        [(
            CONTENT_TYPE,
            "application/openmetrics-text; version=1.0.0; charset=utf-8",
        )],
        s.backend.metrics(),
    )
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
