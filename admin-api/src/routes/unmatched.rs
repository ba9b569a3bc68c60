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

/// A page of returned mail is at most 100 items of 64 KiB each.
pub async fn mails(
    State(s): State<AppState>,
    StrictQuery(q): StrictQuery<PageQuery>,
    _: Authorized<Admin>,
) -> Result<Json<UnmatchedPage>, ApiError> {
    let limit = query::page_limit(q.limit, 20, 100)?;
    Ok(Json(
        s.backend
            .unmatched(UnmatchedKind::Mail, q.before, limit)
            .await?,
    ))
}

pub async fn receipts(
    State(s): State<AppState>,
    StrictQuery(q): StrictQuery<PageQuery>,
    _: Authorized<Admin>,
) -> Result<Json<UnmatchedPage>, ApiError> {
    let limit = query::page_limit(q.limit, 100, 1_000)?;
    Ok(Json(
        s.backend
            .unmatched(UnmatchedKind::Receipt, q.before, limit)
            .await?,
    ))
}
