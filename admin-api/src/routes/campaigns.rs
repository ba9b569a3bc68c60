//! `/v1/campaigns/{id}`: declare, show, and start/pause/resume/cancel.

use axum::{Json, extract::State};

use super::{
    AppState,
    extract::{Authorized, Crm, Path, WholeBody, json_body},
};
use crate::{
    error::ApiError,
    types::v1::{CampaignDecl, CampaignView, Control, limits, valid_id},
};

pub(crate) fn check_id(id: &str) -> Result<(), ApiError> {
    if valid_id(id) {
        Ok(())
    } else {
        Err(ApiError::NotFound(format!(
            "campaign id `{id}` is not 1..=128 characters of [A-Za-z0-9._:-]"
        ))
        .for_field("id"))
    }
}

pub async fn declare(
    State(s): State<AppState>,
    Path(id): Path<String>,
    _: Authorized<Crm>,
    WholeBody(body): WholeBody,
) -> Result<Json<CampaignView>, ApiError> {
    check_id(&id)?;
    let decl: CampaignDecl = json_body(&body)?;
    let too_long = limits::declaration_problems(&decl);
    if !too_long.is_empty() {
        return Err(ApiError::Unprocessable(too_long));
    }
    Ok(Json(s.backend.declare(&id, decl).await?))
}

pub async fn show(
    State(s): State<AppState>,
    Path(id): Path<String>,
    _: Authorized<Crm>,
) -> Result<Json<CampaignView>, ApiError> {
    check_id(&id)?;
    Ok(Json(s.backend.campaign(&id).await?))
}

pub async fn control(
    State(s): State<AppState>,
    Path((id, action)): Path<(String, String)>,
    _: Authorized<Crm>,
) -> Result<Json<CampaignView>, ApiError> {
    check_id(&id)?;
    let action = match action.as_str() {
        "start" => Control::Start,
        "pause" => Control::Pause,
        "resume" => Control::Resume,
        "cancel" => Control::Cancel,
        other => {
            return Err(
                ApiError::NotFound(format!("no campaign action `{other}`")).for_field("action")
            );
        }
    };
    Ok(Json(s.backend.control(&id, action).await?))
}
