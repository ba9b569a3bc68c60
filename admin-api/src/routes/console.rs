//! `/console`: the web console, a page and its script and style, embedded
//! in the binary (`admin-api/console/`). The page holds no data: its script
//! asks the API with the operator's token (docs/operations.md, "Web
//! console"), so the assets need none.

use axum::{
    http::header::{CACHE_CONTROL, CONTENT_TYPE, HeaderName},
    response::IntoResponse,
};

use super::extract::Path;
use crate::error::ApiError;

/// Every asset: name, content type, bytes.
const ASSETS: &[(&str, &str, &str)] = &[
    (
        "console.js",
        "text/javascript; charset=utf-8",
        include_str!("../../console/console.js"),
    ),
    (
        "console.css",
        "text/css; charset=utf-8",
        include_str!("../../console/console.css"),
    ),
    (
        "favicon.svg",
        "image/svg+xml",
        include_str!("../../console/favicon.svg"),
    ),
];

const PAGE: &str = include_str!("../../console/index.html");

/// Scripts and styles from this server only, nothing inline, no framing;
/// data from the API on the same origin.
const POLICY: &str = "default-src 'self'; script-src 'self'; style-src 'self'; img-src 'self'; connect-src 'self'; frame-ancestors 'none'; base-uri 'none'; form-action 'self'";

fn served(content_type: &'static str, body: &'static str) -> impl IntoResponse {
    (
        [
            (CONTENT_TYPE, content_type),
            (CACHE_CONTROL, "no-cache"),
            (HeaderName::from_static("content-security-policy"), POLICY),
            (HeaderName::from_static("x-content-type-options"), "nosniff"),
            (HeaderName::from_static("referrer-policy"), "no-referrer"),
        ],
        body,
    )
}

/// `GET /console`: the page.
pub async fn page() -> impl IntoResponse {
    served("text/html; charset=utf-8", PAGE)
}

/// `GET /console/{asset}`: its script or style.
pub async fn asset(Path(name): Path<String>) -> Result<impl IntoResponse, ApiError> {
    ASSETS
        .iter()
        .find(|(asset, _, _)| *asset == name)
        .map(|(_, content_type, body)| served(content_type, body))
        .ok_or_else(|| ApiError::NotFound(format!("no console asset `{name}`")))
}
