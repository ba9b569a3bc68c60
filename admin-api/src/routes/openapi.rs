//! `GET /v1/openapi.json`: the API's machine-readable contract (OpenAPI
//! 3.1), written by hand in `admin-api/openapi.json` and checked against
//! the router and the handlers' answers by `routes/tests/openapi.rs`.

use axum::{http::header::CONTENT_TYPE, response::IntoResponse};

/// The document, as committed.
pub(crate) const DOCUMENT: &str = include_str!("../../openapi.json");

/// Needs no token, like `/metrics`: the contract holds no data.
pub async fn document() -> impl IntoResponse {
    ([(CONTENT_TYPE, "application/json")], DOCUMENT)
}
