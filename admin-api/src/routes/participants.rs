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
    extract::{Path, StrictQuery, read_whole},
};
use crate::{
    auth::Role,
    error::ApiError,
    ingest,
    types::v1::{AUDIENCE_OUTCOMES, UploadResult},
};

pub async fn upload(
    State(s): State<AppState>,
    Path(id): Path<String>,
    headers: HeaderMap,
    body: Body,
) -> Result<Json<UploadResult>, ApiError> {
    s.config.tokens.authorize(&headers, Role::Crm)?;
    check_id(&id)?;
    let limit = s.config.max_body_bytes;
    let content_type = headers
        .get(CONTENT_TYPE)
        .and_then(|v| v.to_str().ok())
        .unwrap_or("");
    let result = if content_type.starts_with("application/x-ndjson") {
        ingest::ndjson(s.backend.clone(), &id, body, limit).await?
    } else if content_type.is_empty() || content_type.starts_with("application/json") {
        ingest::array(s.backend.clone(), &id, &read_whole(body, limit).await?).await?
    } else {
        return Err(ApiError::bad_request(format!(
            "Content-Type `{content_type}`: send application/json (an array) or application/x-ndjson"
        )));
    };
    Ok(Json(result))
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
    headers: HeaderMap,
) -> Result<Response, ApiError> {
    s.config.tokens.authorize(&headers, Role::Crm)?;
    check_id(&id)?;
    if !AUDIENCE_OUTCOMES.contains(&q.outcome.as_str()) {
        return Err(ApiError::Unprocessable(vec![format!(
            "outcome `{}` is not one of {}",
            q.outcome,
            AUDIENCE_OUTCOMES.join(", ")
        )])
        .for_field("outcome"));
    }
    let rows = s.backend.audience(&id, &q.outcome).await?;
    let mut out = Vec::with_capacity(rows.len() * 96);
    for row in rows {
        serde_json::to_writer(&mut out, &row).map_err(|e| ApiError::Internal(e.to_string()))?;
        out.push(b'\n');
    }
    Ok(([(CONTENT_TYPE, "application/x-ndjson")], out).into_response())
}
