//! `/v1/channels`: the connectors' health; `/v1/channels/{channel}/limits`:
//! the channel administrator's limits.

use axum::{Json, extract::State};

use super::{
    AppState,
    extract::{Admin, Authorized, Path, WholeBody},
};
use crate::{
    error::ApiError,
    types::v1::{ChannelsView, ConnectorHealth},
};

pub(crate) fn check_channel(channel: &str) -> Result<(), ApiError> {
    match channel {
        "email" | "sms" => Ok(()),
        other => Err(
            ApiError::NotFound(format!("no channel `{other}` (email or sms)")).for_field("channel"),
        ),
    }
}

pub async fn put_limits(
    State(s): State<AppState>,
    Path(channel): Path<String>,
    _: Authorized<Admin>,
    WholeBody(body): WholeBody,
) -> Result<Json<serde_json::Value>, ApiError> {
    check_channel(&channel)?;
    let limits: serde_json::Value =
        serde_json::from_slice(&body).map_err(|e| ApiError::malformed("malformed JSON", &e))?;
    Ok(Json(s.backend.put_limits(&channel, limits).await?))
}

pub async fn get_limits(
    State(s): State<AppState>,
    Path(channel): Path<String>,
    _: Authorized<Admin>,
) -> Result<Json<serde_json::Value>, ApiError> {
    check_channel(&channel)?;
    Ok(Json(s.backend.get_limits(&channel).await?))
}

/// `GET /v1/channels`: every channel and each connector's health.
pub async fn list(State(s): State<AppState>, _: Authorized<Admin>) -> Json<ChannelsView> {
    Json(s.backend.channels())
}

/// `POST /v1/channels/{channel}/connectors/{name}/{stop|start}`: an
/// operator's stop (drain, then disconnect) or start of one connector.
pub async fn switch_connector(
    State(s): State<AppState>,
    Path((channel, name, action)): Path<(String, String, String)>,
    _: Authorized<Admin>,
) -> Result<Json<ConnectorHealth>, ApiError> {
    check_channel(&channel)?;
    let on = match action.as_str() {
        "start" => true,
        "stop" => false,
        other => {
            return Err(ApiError::NotFound(format!(
                "no connector action `{other}` (stop or start)"
            ))
            .for_field("action"));
        }
    };
    Ok(Json(s.backend.switch_connector(&channel, &name, on)?))
}
