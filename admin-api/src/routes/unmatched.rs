//! `GET /v1/bounces/unmatched` and `GET /v1/receipts/unmatched`: what
//! matched nothing (returned mail, SMSC receipts for unknown ids), kept
//! for an operator to look at, newest first.

use axum::{Json, extract::State};
use serde::Deserialize;

use super::{
    AppState,
    extract::{Admin, Authorized, StrictQuery},
    query,
};
use crate::{
    error::ApiError,
    types::v1::{UnmatchedKind, UnmatchedPage},
};

/// A page is at most the larger ring (10,000 receipts).
const MAX_LIMIT: usize = 10_000;
const DEFAULT_LIMIT: usize = 100;

#[derive(Deserialize)]
#[serde(deny_unknown_fields)]
pub struct PageQuery {
    limit: Option<usize>,
}

pub async fn mails(
    State(s): State<AppState>,
    StrictQuery(q): StrictQuery<PageQuery>,
    _: Authorized<Admin>,
) -> Result<Json<UnmatchedPage>, ApiError> {
    page(s, q, UnmatchedKind::Mail).await
}

pub async fn receipts(
    State(s): State<AppState>,
    StrictQuery(q): StrictQuery<PageQuery>,
    _: Authorized<Admin>,
) -> Result<Json<UnmatchedPage>, ApiError> {
    page(s, q, UnmatchedKind::Receipt).await
}

async fn page(
    s: AppState,
    q: PageQuery,
    kind: UnmatchedKind,
) -> Result<Json<UnmatchedPage>, ApiError> {
    let limit = query::page_limit(q.limit, DEFAULT_LIMIT, MAX_LIMIT)?;
    Ok(Json(s.backend.unmatched(kind, limit).await?))
}
