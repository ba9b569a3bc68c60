//! `POST /v1/bounces`: import one returned message (raw RFC 822), for
//! operators whose bounces land in a mailbox instead of the bounce listener.

use axum::{Json, extract::State};

use super::{
    AppState,
    extract::{Admin, Authorized, WholeBody},
};
use crate::{error::ApiError, types::v1::BounceImport};

pub async fn import(
    State(s): State<AppState>,
    _: Authorized<Admin>,
    WholeBody(body): WholeBody,
) -> Result<Json<BounceImport>, ApiError> {
    if body.is_empty() {
        return Err(ApiError::bad_request(
            "empty body: send the returned message as raw RFC 822",
        ));
    }
    Ok(Json(s.backend.import_bounce(&body).await?))
}
