//! `/v1/events?after=CURSOR&limit=N`: the fact feed.

use axum::{Json, extract::State};
use serde::Deserialize;

use super::{
    AppState,
    extract::{Authorized, Crm, StrictQuery},
    query,
};
use crate::{error::ApiError, types::v1::EventPage};

const MAX_LIMIT: usize = 10_000;

#[derive(Deserialize)]
#[serde(deny_unknown_fields)]
pub struct FeedQuery {
    #[serde(default)]
    after: u64,
    limit: Option<usize>,
}

pub async fn feed(
    State(s): State<AppState>,
    StrictQuery(q): StrictQuery<FeedQuery>,
    _: Authorized<Crm>,
) -> Result<Json<EventPage>, ApiError> {
    let limit = query::page_limit(q.limit, 1000, MAX_LIMIT)?;
    Ok(Json(s.backend.events(q.after, limit).await?))
}
