//! `/v1/blacklist/{channel}`: bulk additions, listing and search, and one
//! entry's look-up and removal.

use axum::{Json, extract::State, http::StatusCode};
use serde::Deserialize;
use serde_json::json;

use super::{
    AppState,
    channels::check_channel,
    extract::{Admin, Authorized, Path, StrictQuery, WholeBody},
    query,
};
use crate::{
    error::ApiError,
    types::v1::{BlacklistFilter, BlacklistPage, limits},
};

/// The most entries one page lists.
const MAX_PAGE: usize = 1_000;

/// Why an entry is blocked, as `why` says it.
const REASONS: [&str; 5] = [
    "blacklisted",
    "hard_bounce",
    "unsubscribed",
    "opted_out",
    "complained",
];

#[derive(Deserialize)]
#[serde(deny_unknown_fields)]
pub struct ListQuery {
    q: Option<String>,
    why: Option<String>,
    after: Option<String>,
    limit: Option<usize>,
}

/// `GET /v1/blacklist/{channel}?q=TEXT&why=W&after=NEXT&limit=N`: the
/// channel's blocked entries in order, searched, a page at a time.
pub async fn list(
    State(s): State<AppState>,
    Path(channel): Path<String>,
    StrictQuery(q): StrictQuery<ListQuery>,
    _: Authorized<Admin>,
) -> Result<Json<BlacklistPage>, ApiError> {
    check_channel(&channel)?;
    let limit = query::page_limit(q.limit, 100, MAX_PAGE)?;
    let why = query::one_of::<String>("why", q.why, &REASONS)?;
    for (field, value) in [("q", &q.q), ("after", &q.after)] {
        if let Some(problem) = value.as_deref().and_then(limits::entry_problem) {
            return Err(
                ApiError::bad_request(format!("query parameter `{field}`: {problem}"))
                    .for_field(field),
            );
        }
    }
    let filter = BlacklistFilter {
        contains: q.q.filter(|q| !q.is_empty()),
        why,
        after: q.after,
        limit,
    };
    Ok(Json(s.backend.blacklist_list(&channel, filter).await?))
}

/// `PUT`: a JSON array of customer ids or addresses.
pub async fn add(
    State(s): State<AppState>,
    Path(channel): Path<String>,
    _: Authorized<Admin>,
    WholeBody(body): WholeBody,
) -> Result<Json<serde_json::Value>, ApiError> {
    check_channel(&channel)?;
    let entries: Vec<String> = serde_json::from_slice(&body)
        .map_err(|e| ApiError::malformed("expected a JSON array of strings", &e))?;
    let problems: Vec<String> = entries
        .iter()
        .enumerate()
        .filter_map(|(i, e)| {
            let problem = if e.trim().is_empty() {
                Some("empty entry".to_owned())
            } else {
                limits::entry_problem(e)
            };
            problem.map(|p| format!("[{i}]: {p}"))
        })
        .collect();
    if !problems.is_empty() {
        return Err(ApiError::Unprocessable(problems));
    }
    let added = s.backend.blacklist_add(&channel, entries).await?;
    Ok(Json(json!({ "added": added })))
}

pub async fn show(
    State(s): State<AppState>,
    Path((channel, entry)): Path<(String, String)>,
    _: Authorized<Admin>,
) -> Result<Json<serde_json::Value>, ApiError> {
    check_channel(&channel)?;
    match s.backend.blacklist_get(&channel, &entry).await? {
        Some(why) => Ok(Json(
            json!({ "channel": channel, "entry": entry, "why": why }),
        )),
        None => Err(ApiError::NotFound(format!(
            "`{entry}` is not blocked on {channel}"
        ))),
    }
}

pub async fn remove(
    State(s): State<AppState>,
    Path((channel, entry)): Path<(String, String)>,
    _: Authorized<Admin>,
) -> Result<StatusCode, ApiError> {
    check_channel(&channel)?;
    if s.backend.blacklist_remove(&channel, &entry).await? {
        Ok(StatusCode::NO_CONTENT)
    } else {
        Err(ApiError::NotFound(format!(
            "`{entry}` is not blocked on {channel}"
        )))
    }
}
