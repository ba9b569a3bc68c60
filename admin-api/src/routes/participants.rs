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
    backend::{AudienceRows, BackendError},
    error::ApiError,
    ingest,
    types::v1::{AUDIENCE_OUTCOMES, AudienceRow, AudienceSource, UploadResult},
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
    let result = match Upload::of(content_type) {
        Some(Upload::Lines) => {
            ingest::ndjson(
                s.backend.clone(),
                s.bodies.clone(),
                &id,
                body,
                limit,
                q.dry_run,
            )
            .await?
        }
        Some(Upload::Array) => {
            let bytes = s.bodies.read_whole(body, limit).await?;
            ingest::array(s.backend.clone(), s.bodies.clone(), &id, &bytes, q.dry_run).await?
        }
        None => {
            return Err(ApiError::bad_request(format!(
                "Content-Type `{content_type}`: send application/json (an array) or application/x-ndjson"
            )));
        }
    };
    Ok(Json(result))
}

/// How an upload's body is written, by its media type.
#[derive(Debug, PartialEq)]
enum Upload {
    /// One participant per line.
    Lines,
    /// A JSON array.
    Array,
}

impl Upload {
    /// The media type's name without its parameters, in any case (RFC
    /// 9110 §8.3.1); JSON Lines under its other names too, so that it is
    /// not read as an array and refused as malformed.
    fn of(content_type: &str) -> Option<Self> {
        let media = content_type.split(';').next().unwrap_or("").trim();
        let is = |name: &str| media.eq_ignore_ascii_case(name);
        if [
            "application/x-ndjson",
            "application/ndjson",
            "application/jsonl",
            "application/x-jsonlines",
        ]
        .into_iter()
        .any(is)
        {
            Some(Self::Lines)
        } else if media.is_empty() || is("application/json") {
            Some(Self::Array)
        } else {
            None
        }
    }
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

/// The audience as NDJSON, a page of the store at a time: the first page
/// is read before the answer, so that an unknown campaign gets its 404 and a
/// store that does not answer its 503; the rest is streamed, so that an
/// audience of millions is never held in memory whole. A store failing
/// after the first page cuts the answer short (its chunked body never
/// ends), which a client reads as an incomplete answer.
pub async fn audience(
    State(s): State<AppState>,
    Path(id): Path<String>,
    StrictQuery(q): StrictQuery<AudienceQuery>,
    _: Authorized<Crm>,
) -> Result<Response, ApiError> {
    check_id(&id)?;
    check_outcome(&q.outcome)?;
    let first = s.backend.audience_page(&id, &q.outcome, 0).await?;
    let backend = s.backend.clone();
    let pages = futures_util::stream::try_unfold(Next::Read(first), move |next| {
        let (backend, id, outcome) = (backend.clone(), id.clone(), q.outcome.clone());
        async move {
            let page = match next {
                Next::Read(page) => page,
                Next::From(from) => backend
                    .audience_page(&id, &outcome, from)
                    .await
                    .inspect_err(|e| {
                        tracing::warn!(campaign = %id, error = %e, "audience answer cut short");
                    })?,
                Next::Done => return Ok::<_, BackendError>(None),
            };
            let next = page.next.map_or(Next::Done, Next::From);
            Ok(Some((ndjson(&page.rows)?, next)))
        }
    });
    Ok((
        [(CONTENT_TYPE, "application/x-ndjson")],
        Body::from_stream(pages),
    )
        .into_response())
}

/// What the audience stream sends next.
enum Next {
    /// A page read already.
    Read(AudienceRows),
    /// The page starting at this number.
    From(u32),
    Done,
}

/// `rows` as NDJSON, a line each.
fn ndjson(rows: &[AudienceRow]) -> Result<bytes::Bytes, BackendError> {
    let mut out = Vec::with_capacity(rows.len() * 96);
    for row in rows {
        serde_json::to_writer(&mut out, row).map_err(|e| BackendError::Internal(e.to_string()))?;
        out.push(b'\n');
    }
    Ok(out.into())
}

#[cfg(test)]
mod upload_tests {
    use super::Upload;

    #[test]
    fn an_upload_is_read_by_its_media_type_in_any_case() {
        for lines in [
            "application/x-ndjson",
            "Application/X-NDJSON; charset=utf-8",
            "application/jsonl",
        ] {
            assert_eq!(Upload::of(lines), Some(Upload::Lines), "{lines}");
        }
        for array in ["", "application/json", "APPLICATION/JSON;charset=UTF-8"] {
            assert_eq!(Upload::of(array), Some(Upload::Array), "{array}");
        }
        for other in ["text/csv", "application/json-seq", "application/jsonx"] {
            assert_eq!(Upload::of(other), None, "{other}");
        }
    }
}
