//! Errors as the API answers them: a status and a JSON body naming the problem.

use axum::{
    Json,
    http::StatusCode,
    response::{IntoResponse, Response},
};
use serde_json::json;

use crate::backend::BackendError;

#[derive(Debug, thiserror::Error)]
pub enum ApiError {
    #[error("{message}")]
    BadRequest {
        message: String,
        line: Option<usize>,
        /// Lines durably accepted before the bad one (uploads only).
        accepted: Option<u64>,
    },
    #[error("missing or wrong bearer token")]
    Unauthorized,
    #[error("this token's role may not do that")]
    Forbidden,
    #[error("{0}")]
    NotFound(String),
    #[error("{0}")]
    Conflict(String),
    #[error("body larger than {limit} bytes")]
    PayloadTooLarge { limit: usize },
    #[error("invalid request")]
    Unprocessable(Vec<String>),
    #[error("{0}")]
    Unavailable(String),
    #[error("{0}")]
    Internal(String),
}

impl ApiError {
    pub fn bad_request(message: impl Into<String>) -> Self {
        Self::BadRequest {
            message: message.into(),
            line: None,
            accepted: None,
        }
    }

    /// A body that is not the JSON expected: 400 naming where it broke.
    pub fn malformed(what: &str, e: &serde_json::Error) -> Self {
        Self::BadRequest {
            message: format!("{what} at line {} column {}: {e}", e.line(), e.column()),
            line: Some(e.line()),
            accepted: None,
        }
    }

    fn status(&self) -> StatusCode {
        match self {
            Self::BadRequest { .. } => StatusCode::BAD_REQUEST,
            Self::Unauthorized => StatusCode::UNAUTHORIZED,
            Self::Forbidden => StatusCode::FORBIDDEN,
            Self::NotFound(_) => StatusCode::NOT_FOUND,
            Self::Conflict(_) => StatusCode::CONFLICT,
            Self::PayloadTooLarge { .. } => StatusCode::PAYLOAD_TOO_LARGE,
            Self::Unprocessable(_) => StatusCode::UNPROCESSABLE_ENTITY,
            Self::Unavailable(_) => StatusCode::SERVICE_UNAVAILABLE,
            Self::Internal(_) => StatusCode::INTERNAL_SERVER_ERROR,
        }
    }
}

impl From<BackendError> for ApiError {
    fn from(e: BackendError) -> Self {
        match e {
            BackendError::NotFound(m) => Self::NotFound(m),
            BackendError::Conflict(m) => Self::Conflict(m),
            BackendError::Invalid(problems) => Self::Unprocessable(problems),
            BackendError::Unavailable(m) => Self::Unavailable(m),
            BackendError::Internal(m) => Self::Internal(m),
            BackendError::TooLarge(limit) => Self::PayloadTooLarge { limit },
        }
    }
}

impl IntoResponse for ApiError {
    fn into_response(self) -> Response {
        let status = self.status();
        let mut body = json!({ "error": self.to_string() });
        match &self {
            Self::BadRequest { line, accepted, .. } => {
                if let Some(line) = line {
                    body["line"] = json!(line);
                }
                if let Some(accepted) = accepted {
                    body["accepted"] = json!(accepted);
                }
            }
            Self::Unprocessable(problems) => body["problems"] = json!(problems),
            Self::Internal(m) => tracing::error!(error = %m, "internal error answered 500"),
            _ => {}
        }
        let mut response = (status, Json(body)).into_response();
        if matches!(self, Self::Unauthorized) {
            response.headers_mut().insert(
                axum::http::header::WWW_AUTHENTICATE,
                axum::http::HeaderValue::from_static("Bearer"),
            );
        }
        response
    }
}
