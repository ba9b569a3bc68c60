//! The HTTP API as the CLI calls it: one request, its JSON answer, and the
//! API's problem details (RFC 9457) turned into an error a person can read.

use std::{fmt, sync::Arc};

use bytes::Bytes;
use http_body_util::{BodyExt, Full};
use hyper::{Method, Request, header};
use hyper_rustls::{HttpsConnector, HttpsConnectorBuilder};
use hyper_util::{
    client::legacy::{Client as Hyper, connect::HttpConnector},
    rt::TokioExecutor,
};
use serde_json::Value;

/// Why a call did not give an answer.
#[derive(Debug, thiserror::Error)]
pub enum CallError {
    #[error("{0}")]
    Api(Problem),
    #[error("cannot reach {url}: {reason}")]
    Unreachable { url: String, reason: String },
    #[error("{0}")]
    Usage(String),
}

/// An error answer: its status and the problem document.
#[derive(Debug)]
pub struct Problem {
    pub status: u16,
    pub body: Value,
}

impl fmt::Display for Problem {
    /// "422 Unprocessable Entity: detail", then the field, the line and
    /// every listed problem on lines of their own.
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        let text = |key: &str| self.body.get(key).and_then(Value::as_str);
        write!(f, "{} {}", self.status, text("title").unwrap_or("error"))?;
        if let Some(detail) = text("detail").or_else(|| text("error")) {
            write!(f, ": {detail}")?;
        }
        if let Some(field) = text("field") {
            write!(f, "\n  field: {field}")?;
        }
        if let Some(line) = self.body.get("line").and_then(Value::as_u64) {
            write!(f, "\n  line: {line}")?;
        }
        for problem in self
            .body
            .get("problems")
            .and_then(Value::as_array)
            .into_iter()
            .flatten()
        {
            write!(f, "\n  - {}", problem.as_str().unwrap_or_default())?;
        }
        Ok(())
    }
}

pub struct Client {
    base: String,
    token: Option<String>,
    http: Hyper<HttpsConnector<HttpConnector>, Full<Bytes>>,
}

impl Client {
    /// A client of the API at `base` (`http://host:port`, or https verified
    /// against the system's trust store), sending `token` as a bearer.
    pub fn new(base: &str, token: Option<String>) -> Result<Self, CallError> {
        let provider = Arc::new(rustls::crypto::ring::default_provider());
        let connector = HttpsConnectorBuilder::new()
            .with_provider_and_platform_verifier(provider)
            .map_err(|e| CallError::Usage(format!("TLS trust store: {e}")))?
            .https_or_http()
            .enable_http1()
            .build();
        Ok(Self {
            base: base.trim_end_matches('/').to_owned(),
            token: token.filter(|t| !t.is_empty()),
            http: Hyper::builder(TokioExecutor::new()).build(connector),
        })
    }

    pub async fn get(&self, path: &str) -> Result<Value, CallError> {
        self.call(Method::GET, path, None).await
    }

    pub async fn post(&self, path: &str, body: Option<(&str, Bytes)>) -> Result<Value, CallError> {
        self.call(Method::POST, path, body).await
    }

    pub async fn put_json(&self, path: &str, body: &Value) -> Result<Value, CallError> {
        let body = Bytes::from(body.to_string());
        self.call(Method::PUT, path, Some(("application/json", body)))
            .await
    }

    pub async fn delete(&self, path: &str) -> Result<Value, CallError> {
        self.call(Method::DELETE, path, None).await
    }

    /// One request; the answer's JSON (`null` for an empty one), or the
    /// problem of a 4xx/5xx.
    async fn call(
        &self,
        method: Method,
        path: &str,
        body: Option<(&str, Bytes)>,
    ) -> Result<Value, CallError> {
        let url = format!("{}{path}", self.base);
        let mut request = Request::builder().method(method).uri(&url);
        if let Some(token) = &self.token {
            request = request.header(header::AUTHORIZATION, format!("Bearer {token}"));
        }
        let body = match body {
            Some((content_type, bytes)) => {
                request = request.header(header::CONTENT_TYPE, content_type);
                bytes
            }
            None => Bytes::new(),
        };
        let request = request
            .body(Full::new(body))
            .map_err(|e| CallError::Usage(format!("{url}: {e}")))?;
        let unreachable = |reason: String| CallError::Unreachable {
            url: self.base.clone(),
            reason,
        };
        let response = self
            .http
            .request(request)
            .await
            .map_err(|e| unreachable(error_chain(&e)))?;
        let status = response.status();
        let bytes = response
            .into_body()
            .collect()
            .await
            .map_err(|e| unreachable(e.to_string()))?
            .to_bytes();
        let json = if bytes.is_empty() {
            Value::Null
        } else {
            serde_json::from_slice(&bytes)
                .unwrap_or_else(|_| Value::String(String::from_utf8_lossy(&bytes).into_owned()))
        };
        if status.is_client_error() || status.is_server_error() {
            return Err(CallError::Api(Problem {
                status: status.as_u16(),
                body: json,
            }));
        }
        Ok(json)
    }
}

/// An error with its causes, which hyper keeps apart ("client error
/// (Connect): tcp connect error: Connection refused").
fn error_chain(e: &dyn std::error::Error) -> String {
    let mut text = e.to_string();
    let mut source = e.source();
    while let Some(cause) = source {
        text.push_str(": ");
        text.push_str(&cause.to_string());
        source = cause.source();
    }
    text
}

/// `value` percent-encoded for a path segment or a query value.
pub fn encode(value: &str) -> String {
    value
        .bytes()
        .map(|b| match b {
            b'A'..=b'Z' | b'a'..=b'z' | b'0'..=b'9' | b'-' | b'.' | b'_' | b'~' => {
                (b as char).to_string()
            }
            _ => format!("%{b:02X}"),
        })
        .collect()
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn a_problem_reads_as_its_status_detail_field_and_problems() {
        let problem = Problem {
            status: 422,
            body: serde_json::json!({"title": "Unprocessable Entity", "detail": "invalid limits",
                "field": "limit", "problems": ["rate_per_sec: must be > 0", "tz: unknown"]}),
        };
        assert_eq!(
            problem.to_string(),
            "422 Unprocessable Entity: invalid limits\n  field: limit\n  - rate_per_sec: must be > 0\n  - tz: unknown"
        );
    }

    #[test]
    fn values_are_encoded_for_a_path_segment() {
        assert_eq!(encode("ann+1@x.org/ü"), "ann%2B1%40x.org%2F%C3%BC");
    }
}
