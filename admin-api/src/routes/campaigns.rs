//! `/v1/campaigns`: list; `/v1/campaigns/{id}`: declare, show, delete, and
//! start/pause/resume/cancel.

use axum::{Json, extract::State, http::StatusCode};
use serde::Deserialize;

use super::{
    AppState,
    extract::{Authorized, Crm, Path, StrictQuery, WholeBody, json_body},
    query,
};
use crate::{
    error::ApiError,
    types::v1::{
        CampaignDecl, CampaignFilter, CampaignPage, CampaignState, CampaignView, ChannelKind,
        Control, MessagePreview, ParticipantIn, TestSend, limits, valid_id,
    },
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
    let mut problems = limits::declaration_problems(&decl);
    if !problems.is_empty() {
        problems.extend(s.backend.declaration_problems(&id, &decl).await?);
        return Err(ApiError::Unprocessable(problems));
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

/// `DELETE /v1/campaigns/{id}`: an ended campaign removed, 204.
pub async fn delete(
    State(s): State<AppState>,
    Path(id): Path<String>,
    _: Authorized<Crm>,
) -> Result<StatusCode, ApiError> {
    check_id(&id)?;
    s.backend.delete_campaign(&id).await?;
    Ok(StatusCode::NO_CONTENT)
}

/// `POST /v1/campaigns/{id}/preview`: a participant (as uploaded) in, its
/// message out.
pub async fn preview(
    State(s): State<AppState>,
    Path(id): Path<String>,
    _: Authorized<Crm>,
    WholeBody(body): WholeBody,
) -> Result<Json<MessagePreview>, ApiError> {
    check_id(&id)?;
    let participant = participant_in(&body)?;
    Ok(Json(s.backend.preview(&id, participant).await?))
}

/// `POST /v1/campaigns/{id}/test`: a participant (as uploaded) in, the
/// upstream's answer to its message out.
pub async fn send_test(
    State(s): State<AppState>,
    Path(id): Path<String>,
    _: Authorized<Crm>,
    WholeBody(body): WholeBody,
) -> Result<Json<TestSend>, ApiError> {
    check_id(&id)?;
    let participant = participant_in(&body)?;
    Ok(Json(s.backend.send_test(&id, participant).await?))
}

/// A participant as an upload takes it, within the limits.
fn participant_in(body: &[u8]) -> Result<ParticipantIn, ApiError> {
    let participant: ParticipantIn = json_body(body)?;
    match limits::participant_problem(&participant) {
        Some(problem) => Err(ApiError::Unprocessable(vec![problem])),
        None => Ok(participant),
    }
}

/// The most campaigns one page lists.
const MAX_PAGE: usize = 1_000;

#[derive(Deserialize)]
#[serde(deny_unknown_fields)]
pub struct ListQuery {
    state: Option<String>,
    channel: Option<String>,
    before: Option<u32>,
    limit: Option<usize>,
}

/// `GET /v1/campaigns?state=S&channel=C&limit=N&before=NEXT`: campaigns,
/// newest first, a page at a time.
pub async fn list(
    State(s): State<AppState>,
    StrictQuery(q): StrictQuery<ListQuery>,
    _: Authorized<Crm>,
) -> Result<Json<CampaignPage>, ApiError> {
    let limit = query::page_limit(q.limit, 100, MAX_PAGE)?;
    let state = query::one_of::<CampaignState>(
        "state",
        q.state,
        &["declared", "running", "paused", "cancelled", "finished"],
    )?;
    let channel = query::one_of::<ChannelKind>("channel", q.channel, &["email", "sms"])?;
    let filter = CampaignFilter {
        state,
        channel,
        before: q.before,
        limit,
    };
    Ok(Json(s.backend.campaigns(filter).await?))
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
