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

#[derive(Deserialize)]
#[serde(deny_unknown_fields)]
pub struct PageQuery {
    /// Items numbered below this: the `n` of the last item of the page
    /// before.
    before: Option<u64>,
    limit: Option<usize>,
}

/// Items a page, by default and at most: a returned mail is up to 64 KiB.
const MAIL_PAGE: (usize, usize) = (20, 100);
const RECEIPT_PAGE: (usize, usize) = (100, 1_000);

pub async fn mails(
    State(s): State<AppState>,
    StrictQuery(q): StrictQuery<PageQuery>,
    _: Authorized<Admin>,
) -> Result<Json<UnmatchedPage>, ApiError> {
    page(&s, q, UnmatchedKind::Mail, MAIL_PAGE).await
}

pub async fn receipts(
    State(s): State<AppState>,
    StrictQuery(q): StrictQuery<PageQuery>,
    _: Authorized<Admin>,
) -> Result<Json<UnmatchedPage>, ApiError> {
    page(&s, q, UnmatchedKind::Receipt, RECEIPT_PAGE).await
}

async fn page(
    s: &AppState,
    q: PageQuery,
    kind: UnmatchedKind,
    (default, most): (usize, usize),
) -> Result<Json<UnmatchedPage>, ApiError> {
    let limit = query::page_limit(q.limit, default, most)?;
    Ok(Json(s.backend.unmatched(kind, q.before, limit).await?))
}
