//! `/v1/blacklist/{channel}`: bulk additions, and one entry's look-up and removal.

use axum::{Json, extract::State, http::StatusCode};
use serde_json::json;

use super::{
    AppState,
    channels::check_channel,
    extract::{Admin, Authorized, Path, WholeBody},
};
use crate::{error::ApiError, types::v1::limits};

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
