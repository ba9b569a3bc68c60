//! `POST /v1/bounces`: import one returned message (raw RFC 822), for
//! operators whose bounces land in a mailbox instead of the bounce listener.

use axum::{Json, extract::State, http::HeaderMap};

use super::{AppState, extract::WholeBody};
use crate::{auth::Role, error::ApiError, types::v1::BounceImport};

pub async fn import(
    State(s): State<AppState>,
    headers: HeaderMap,
    WholeBody(body): WholeBody,
) -> Result<Json<BounceImport>, ApiError> {
    s.config.tokens.authorize(&headers, Role::Admin)?;
    if body.is_empty() {
        return Err(ApiError::bad_request(
            "empty body: send the returned message as raw RFC 822",
        ));
    }
    Ok(Json(s.backend.import_bounce(&body).await?))
}
