//! `/v1/campaigns/{id}/participants`: upload (JSON array or NDJSON) and the
//! audience query by outcome (NDJSON).

use axum::{
    Json,
    body::Body,
    extract::State,
    http::{HeaderMap, header::CONTENT_TYPE},
    response::{IntoResponse, Response},
};
use serde::Deserialize;

use super::{
    AppState,
    campaigns::check_id,
    extract::{Authorized, Crm, Path, StrictQuery, WholeBody, json_body},
};
use crate::{
    error::ApiError,
    ingest,
    types::v1::{AUDIENCE_OUTCOMES, AudienceSource, UploadResult},
};

#[derive(Deserialize)]
#[serde(deny_unknown_fields)]
pub struct UploadQuery {
    #[serde(default)]
    dry_run: bool,
}

pub async fn upload(
    State(s): State<AppState>,
    Path(id): Path<String>,
    StrictQuery(q): StrictQuery<UploadQuery>,
    _: Authorized<Crm>,
    headers: HeaderMap,
    body: Body,
) -> Result<Json<UploadResult>, ApiError> {
    check_id(&id)?;
    let limit = s.config.max_body_bytes;
    let content_type = headers
        .get(CONTENT_TYPE)
        .and_then(|v| v.to_str().ok())
        .unwrap_or("");
    let result = if content_type.starts_with("application/x-ndjson") {
        ingest::ndjson(s.backend.clone(), &id, body, limit, q.dry_run).await?
    } else if content_type.is_empty() || content_type.starts_with("application/json") {
        ingest::array(
            s.backend.clone(),
            &id,
            &s.bodies.read_whole(body, limit).await?,
            q.dry_run,
        )
        .await?
    } else {
        return Err(ApiError::bad_request(format!(
            "Content-Type `{content_type}`: send application/json (an array) or application/x-ndjson"
        )));
    };
    Ok(Json(result))
}

/// `POST .../participants/from`: another campaign's audience for one
/// outcome becomes this campaign's participants, answered like an upload.
pub async fn from_audience(
    State(s): State<AppState>,
    Path(id): Path<String>,
    _: Authorized<Crm>,
    WholeBody(body): WholeBody,
) -> Result<Json<UploadResult>, ApiError> {
    check_id(&id)?;
    let source: AudienceSource = json_body(&body)?;
    check_outcome(&source.outcome)?;
    Ok(Json(s.backend.add_from(&id, source).await?))
}

/// An outcome the audience query knows, else 422 naming `outcome`.
fn check_outcome(outcome: &str) -> Result<(), ApiError> {
    if AUDIENCE_OUTCOMES.contains(&outcome) {
        return Ok(());
    }
    Err(ApiError::Unprocessable(vec![format!(
        "outcome `{outcome}` is not one of {}",
        AUDIENCE_OUTCOMES.join(", ")
    )])
    .for_field("outcome"))
}

#[derive(Deserialize)]
#[serde(deny_unknown_fields)]
pub struct AudienceQuery {
    outcome: String,
}

pub async fn audience(
    State(s): State<AppState>,
    Path(id): Path<String>,
    StrictQuery(q): StrictQuery<AudienceQuery>,
    _: Authorized<Crm>,
) -> Result<Response, ApiError> {
    check_id(&id)?;
    check_outcome(&q.outcome)?;
    let rows = s.backend.audience(&id, &q.outcome).await?;
    let mut out = Vec::with_capacity(rows.len() * 96);
    for row in rows {
        serde_json::to_writer(&mut out, &row).map_err(|e| ApiError::Internal(e.to_string()))?;
        out.push(b'\n');
    }
    Ok(([(CONTENT_TYPE, "application/x-ndjson")], out).into_response())
}
