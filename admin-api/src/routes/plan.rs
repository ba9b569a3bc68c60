//! `/v1/channels/{channel}/plan` (compute and read the load plan) and
//! `/admin/plan/{channel}`, the page that draws it for the administrator.

use axum::{Json, extract::State, http::header::CONTENT_TYPE, response::IntoResponse};
use serde::Deserialize;

use super::{
    AppState,
    channels::check_channel,
    extract::{Admin, Authorized, Path, WholeBody, json_body},
};
use crate::error::ApiError;

/// The page: fetches the stored plan (the token, if any, from the URL
/// fragment `#token=...`) and draws capacity, stacked campaigns and the
/// campaigns that cannot finish.
const PAGE: &str = include_str!("plan.html");

#[derive(Deserialize, Default)]
#[serde(deny_unknown_fields)]
struct PlanBody {
    campaigns: Option<Vec<String>>,
}

pub async fn compute(
    State(s): State<AppState>,
    Path(channel): Path<String>,
    _: Authorized<Admin>,
    WholeBody(body): WholeBody,
) -> Result<Json<serde_json::Value>, ApiError> {
    check_channel(&channel)?;
    let body: PlanBody = if body.is_empty() {
        PlanBody::default()
    } else {
        json_body(&body)?
    };
    Ok(Json(s.backend.plan(&channel, body.campaigns).await?))
}

pub async fn show(
    State(s): State<AppState>,
    Path(channel): Path<String>,
    _: Authorized<Admin>,
) -> Result<Json<serde_json::Value>, ApiError> {
    check_channel(&channel)?;
    Ok(Json(s.backend.stored_plan(&channel).await?))
}

/// The page itself holds no data, so it needs no token; its requests do.
pub async fn page(Path(channel): Path<String>) -> Result<impl IntoResponse, ApiError> {
    check_channel(&channel)?;
    Ok(([(CONTENT_TYPE, "text/html; charset=utf-8")], PAGE))
}
