//! The extractors the routes use instead of axum's own, whose rejections are
//! plain text: each of these refuses with an [`ApiError`], so every refusal
//! is a problem document (`docs/api.md#errors`).

use axum::{
    extract::{FromRequest, FromRequestParts, Query, Request, rejection::PathRejection},
    http::request::Parts,
};
use serde::{Deserialize, de::DeserializeOwned};

use super::{AppState, budget::HeldBody, query};
use crate::{auth::Role, error::ApiError};

/// A role a route needs.
pub trait Needs: Send + Sync + 'static {
    const ROLE: Role;
}

/// The CRM's role (an admin token may act as the CRM too).
pub struct Crm;

impl Needs for Crm {
    const ROLE: Role = Role::Crm;
}

/// The channel administrator's role.
pub struct Admin;

impl Needs for Admin {
    const ROLE: Role = Role::Admin;
}

/// The request's bearer token grants role `R`. Checked from the headers
/// alone, before the body extractor (always a handler's last argument)
/// reads anything: a request without the right token costs no body.
pub struct Authorized<R>(std::marker::PhantomData<R>);

impl<R: Needs> FromRequestParts<AppState> for Authorized<R> {
    type Rejection = ApiError;

    async fn from_request_parts(parts: &mut Parts, state: &AppState) -> Result<Self, ApiError> {
        state.config.tokens.authorize(&parts.headers, R::ROLE)?;
        Ok(Self(std::marker::PhantomData))
    }
}

/// Path segments, as `axum::extract::Path`; a segment that does not decode
/// (invalid UTF-8) is a 400 naming it.
pub struct Path<T>(pub T);

impl<T, S> FromRequestParts<S> for Path<T>
where
    T: DeserializeOwned + Send,
    S: Send + Sync,
{
    type Rejection = ApiError;

    async fn from_request_parts(parts: &mut Parts, state: &S) -> Result<Self, ApiError> {
        axum::extract::Path::from_request_parts(parts, state)
            .await
            .map(|axum::extract::Path(t)| Self(t))
            .map_err(path_error)
    }
}

fn path_error(rejection: PathRejection) -> ApiError {
    use axum::extract::path::ErrorKind;
    let message = rejection.body_text();
    let PathRejection::FailedToDeserializePathParams(e) = &rejection else {
        // `MissingPathParams`: a handler reading segments its route lacks.
        return ApiError::Internal(message);
    };
    match e.kind() {
        ErrorKind::InvalidUtf8InPathParam { key }
        | ErrorKind::ParseErrorAtKey { key, .. }
        | ErrorKind::DeserializeError { key, .. } => ApiError::bad_request(message).for_field(key),
        _ => ApiError::bad_request(message),
    }
}

/// A route's query parameters, read strictly: an unknown, repeated, missing
/// or unparsable parameter is a 400 naming it in `field`. `T` must be
/// `#[serde(deny_unknown_fields)]`, which is what makes unknown ones an error
/// (and lets serde list the accepted names).
pub struct StrictQuery<T>(pub T);

impl<T, S> FromRequestParts<S> for StrictQuery<T>
where
    T: DeserializeOwned,
    S: Send + Sync,
{
    type Rejection = ApiError;

    async fn from_request_parts(parts: &mut Parts, _: &S) -> Result<Self, ApiError> {
        let Query(pairs) = Query::<Vec<(String, String)>>::try_from_uri(&parts.uri)
            .map_err(|e| ApiError::bad_request(e.body_text()))?;
        query::from_pairs(&pairs).map(Self)
    }
}

/// The parameters of a route that takes none, so that one given by mistake
/// is refused rather than silently ignored.
#[derive(Deserialize)]
#[serde(deny_unknown_fields)]
pub struct NoParameters {}

/// A whole request body, read up to `api.max_body_bytes` within the
/// bodies' memory budget (`budget`).
pub struct WholeBody(pub HeldBody);

impl FromRequest<AppState> for WholeBody {
    type Rejection = ApiError;

    async fn from_request(req: Request, state: &AppState) -> Result<Self, ApiError> {
        state
            .bodies
            .read_whole(req.into_body(), state.config.max_body_bytes)
            .await
            .map(Self)
    }
}

/// A JSON body as `T`: 422 listing what does not fit the shape (an unknown
/// field, a wrong type), 400 where the JSON itself breaks.
pub fn json_body<T: DeserializeOwned>(body: &[u8]) -> Result<T, ApiError> {
    crate::strict_json::from_slice(body).map_err(|e| match e.classify() {
        serde_json::error::Category::Data => ApiError::Unprocessable(vec![e.to_string()]),
        _ => ApiError::malformed("malformed JSON", &e),
    })
}
