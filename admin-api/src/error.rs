//! Errors as the API answers them: RFC 9457 problem details
//! (`application/problem+json`, `docs/api.md#errors`), so that a client reads
//! every refusal the same way, whichever layer refused.

use axum::{
    Json,
    http::{
        HeaderValue, StatusCode,
        header::{CONTENT_TYPE, WWW_AUTHENTICATE},
    },
    response::{IntoResponse, Response},
};
use serde::Serialize;
use serde_json::{Map, Value, json};

use crate::{backend::BackendError, types::v1::limits::shorten_quoted};

/// The media type of every error answer (RFC 9457).
pub(crate) const PROBLEM_JSON: &str = "application/problem+json";

#[derive(Debug, thiserror::Error)]
pub enum ApiError {
    #[error("{message}")]
    BadRequest {
        message: String,
        line: Option<usize>,
    },
    #[error("missing or wrong bearer token")]
    Unauthorized,
    #[error("this token's role may not do that")]
    Forbidden,
    #[error("{0}")]
    NotFound(String),
    /// A known path asked with a method it does not take (axum adds `Allow`).
    #[error("{0}")]
    MethodNotAllowed(String),
    #[error("{0}")]
    Conflict(String),
    #[error("body larger than {limit} bytes")]
    PayloadTooLarge { limit: usize },
    #[error("invalid request")]
    Unprocessable(Vec<String>),
    #[error("{0}")]
    Unavailable(String),
    /// 507: the store's disk is full.
    #[error("{0}")]
    InsufficientStorage(String),
    #[error("{0}")]
    Internal(String),
    /// An error about one query parameter or path segment: the answer names
    /// it in `field`, so a client need not parse the text to find it.
    #[error("{error}")]
    Field { field: String, error: Box<ApiError> },
}

impl ApiError {
    pub fn bad_request(message: impl Into<String>) -> Self {
        Self::BadRequest {
            message: message.into(),
            line: None,
        }
    }

    /// A body that is not the JSON expected: 400 naming where it broke.
    pub fn malformed(what: &str, e: &serde_json::Error) -> Self {
        Self::BadRequest {
            message: format!("{what} at line {} column {}: {e}", e.line(), e.column()),
            line: Some(e.line()),
        }
    }

    /// The same error, about the query parameter or path segment `field`.
    pub fn for_field(self, field: impl Into<String>) -> Self {
        Self::Field {
            field: field.into(),
            error: Box::new(self),
        }
    }

    fn status(&self) -> StatusCode {
        match self {
            Self::BadRequest { .. } => StatusCode::BAD_REQUEST,
            Self::Unauthorized => StatusCode::UNAUTHORIZED,
            Self::Forbidden => StatusCode::FORBIDDEN,
            Self::NotFound(_) => StatusCode::NOT_FOUND,
            Self::MethodNotAllowed(_) => StatusCode::METHOD_NOT_ALLOWED,
            Self::Conflict(_) => StatusCode::CONFLICT,
            Self::PayloadTooLarge { .. } => StatusCode::PAYLOAD_TOO_LARGE,
            Self::Unprocessable(_) => StatusCode::UNPROCESSABLE_ENTITY,
            Self::Unavailable(_) => StatusCode::SERVICE_UNAVAILABLE,
            Self::InsufficientStorage(_) => StatusCode::INSUFFICIENT_STORAGE,
            Self::Internal(_) => StatusCode::INTERNAL_SERVER_ERROR,
            Self::Field { error, .. } => error.status(),
        }
    }

    /// The human message. `error` keeps its short text for the clients that
    /// read it; a 422's detail spells out its problems as well.
    fn detail(&self) -> String {
        match self {
            Self::Unprocessable(problems) => format!("{self}: {}", problems.join("; ")),
            Self::Field { error, .. } => error.detail(),
            _ => self.to_string(),
        }
    }

    /// The extension members each kind adds to the problem.
    fn extend(&self, members: &mut Map<String, Value>) {
        match self {
            Self::BadRequest {
                line: Some(line), ..
            } => {
                members.insert("line".into(), json!(line));
            }
            Self::PayloadTooLarge { limit } => {
                members.insert("limit".into(), json!(limit));
            }
            Self::Unprocessable(problems) => {
                let problems: Vec<String> = problems.iter().map(|p| shorten_quoted(p)).collect();
                members.insert("problems".into(), json!(problems));
            }
            Self::Field { field, error } => {
                members.insert("field".into(), json!(field));
                error.extend(members);
            }
            _ => {}
        }
    }

    fn problem(&self, status: StatusCode) -> Problem {
        let mut extensions = Map::new();
        self.extend(&mut extensions);
        Problem {
            kind: "about:blank",
            title: status.canonical_reason().unwrap_or_default(),
            status: status.as_u16(),
            detail: shorten_quoted(&self.detail()),
            error: shorten_quoted(&self.to_string()),
            extensions,
        }
    }
}

/// An RFC 9457 problem document. `type` is always `about:blank`: the kind
/// is told by `status`, so `title` is the status's reason phrase. The
/// members are written in this order, extensions last, for a reader's eye.
#[derive(Serialize)]
struct Problem {
    #[serde(rename = "type")]
    kind: &'static str,
    title: &'static str,
    status: u16,
    detail: String,
    /// The message as before problem details, kept for the clients reading it.
    error: String,
    #[serde(flatten)]
    extensions: Map<String, Value>,
}

impl From<BackendError> for ApiError {
    fn from(e: BackendError) -> Self {
        match e {
            BackendError::NotFound(m) => Self::NotFound(m),
            BackendError::Conflict(m) => Self::Conflict(m),
            BackendError::Invalid(problems) => Self::Unprocessable(problems),
            BackendError::Unavailable(m) => Self::Unavailable(m),
            BackendError::InsufficientStorage(m) => Self::InsufficientStorage(m),
            BackendError::Internal(m) => Self::Internal(m),
            BackendError::TooLarge(limit) => Self::PayloadTooLarge { limit },
        }
    }
}

impl IntoResponse for ApiError {
    fn into_response(self) -> Response {
        let status = self.status();
        if status == StatusCode::INTERNAL_SERVER_ERROR {
            tracing::error!(error = %self, "internal error answered 500");
        }
        let mut response = (
            status,
            [(CONTENT_TYPE, PROBLEM_JSON)],
            Json(self.problem(status)),
        )
            .into_response();
        if matches!(self, Self::Unauthorized) {
            response
                .headers_mut()
                .insert(WWW_AUTHENTICATE, HeaderValue::from_static("Bearer"));
        }
        response
    }
}
