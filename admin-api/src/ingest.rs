//! Participant uploads: a JSON array or NDJSON, parsed as the body streams in
//! and handed to the backend in batches, so parsing overlaps the store's
//! durable commits. The answer waits for every batch to be durable.

use std::sync::Arc;

use axum::body::Body;
use futures_util::StreamExt;
use serde_json::error::Category;
use tokio::task::JoinSet;

use crate::{
    backend::{Backend, BackendError},
    error::ApiError,
    types::v1::{ParticipantIn, Rejected, UploadResult},
};

/// Participants handed to the backend at once.
const BATCH: usize = 4096;

/// Collects parsed lines into batches and commits them in the background.
struct Uploader {
    backend: Arc<dyn Backend>,
    campaign: String,
    batch: Vec<(usize, ParticipantIn)>,
    rejected: Vec<Rejected>,
    commits: JoinSet<Result<UploadResult, BackendError>>,
}

impl Uploader {
    fn new(backend: Arc<dyn Backend>, campaign: &str) -> Self {
        Self {
            backend,
            campaign: campaign.to_owned(),
            batch: Vec::with_capacity(BATCH),
            rejected: Vec::new(),
            commits: JoinSet::new(),
        }
    }

    /// One line of input; syntax errors end the upload with a 400.
    fn line(&mut self, line: usize, bytes: &[u8]) -> Result<(), ApiError> {
        if bytes.iter().all(u8::is_ascii_whitespace) {
            return Ok(());
        }
        match serde_json::from_slice::<ParticipantIn>(bytes) {
            Ok(p) => self.push(line, p),
            Err(e) if e.classify() == Category::Data => {
                self.rejected.push(Rejected {
                    line,
                    error: e.to_string(),
                });
            }
            Err(e) => {
                return Err(ApiError::BadRequest {
                    message: format!("line {line}: malformed JSON: {e}"),
                    line: Some(line),
                    accepted: None,
                });
            }
        }
        Ok(())
    }

    fn push(&mut self, line: usize, p: ParticipantIn) {
        self.batch.push((line, p));
        if self.batch.len() >= BATCH {
            self.flush();
        }
    }

    fn flush(&mut self) {
        if self.batch.is_empty() {
            return;
        }
        let batch = std::mem::replace(&mut self.batch, Vec::with_capacity(BATCH));
        let backend = self.backend.clone();
        let campaign = self.campaign.clone();
        self.commits
            .spawn(async move { backend.add_participants(&campaign, batch).await });
    }

    /// Waits until every batch is durable and sums the answers.
    async fn finish(mut self) -> Result<UploadResult, ApiError> {
        self.flush();
        let mut result = UploadResult {
            rejected: std::mem::take(&mut self.rejected),
            ..Default::default()
        };
        let mut first_error = None;
        while let Some(joined) = self.commits.join_next().await {
            match joined {
                Ok(Ok(part)) => result.merge(part),
                Ok(Err(e)) => first_error = first_error.or(Some(ApiError::from(e))),
                Err(e) => first_error = first_error.or(Some(ApiError::Internal(e.to_string()))),
            }
        }
        if let Some(e) = first_error {
            return Err(e);
        }
        result.rejected.sort_by_key(|r| r.line);
        Ok(result)
    }

    /// Ends a failed upload: commits the good lines before the failure (uploads
    /// are idempotent, so a corrected resend is safe) and reports how many
    /// became durable.
    async fn abort(mut self, error: ApiError) -> ApiError {
        self.flush();
        let accepted = match self.finish_handed_over().await {
            Ok(n) => n,
            Err(e) => return e,
        };
        match error {
            ApiError::BadRequest { message, line, .. } => ApiError::BadRequest {
                message,
                line,
                accepted: Some(accepted),
            },
            other => other,
        }
    }

    async fn finish_handed_over(mut self) -> Result<u64, ApiError> {
        let mut accepted = 0;
        while let Some(joined) = self.commits.join_next().await {
            match joined {
                Ok(Ok(part)) => accepted += part.accepted,
                Ok(Err(e)) => return Err(e.into()),
                Err(e) => return Err(ApiError::Internal(e.to_string())),
            }
        }
        Ok(accepted)
    }
}

/// NDJSON: lines are parsed as chunks arrive; memory stays bounded by one line.
pub async fn ndjson(
    backend: Arc<dyn Backend>,
    campaign: &str,
    body: Body,
    limit: usize,
) -> Result<UploadResult, ApiError> {
    let mut up = Uploader::new(backend, campaign);
    let mut stream = body.into_data_stream();
    let mut pending: Vec<u8> = Vec::new();
    let mut line = 0usize;
    let mut total = 0usize;
    while let Some(chunk) = stream.next().await {
        let chunk = match chunk {
            Ok(c) => c,
            Err(e) => {
                return Err(up
                    .abort(ApiError::bad_request(format!("reading body: {e}")))
                    .await);
            }
        };
        total += chunk.len();
        if total > limit {
            return Err(up.abort(ApiError::PayloadTooLarge { limit }).await);
        }
        let mut rest: &[u8] = &chunk;
        while let Some(nl) = rest.iter().position(|&b| b == b'\n') {
            line += 1;
            let outcome = if pending.is_empty() {
                up.line(line, &rest[..nl])
            } else {
                pending.extend_from_slice(&rest[..nl]);
                let r = up.line(line, &pending);
                pending.clear();
                r
            };
            if let Err(e) = outcome {
                return Err(up.abort(e).await);
            }
            rest = &rest[nl + 1..];
        }
        pending.extend_from_slice(rest);
    }
    if !pending.is_empty() {
        line += 1;
        if let Err(e) = up.line(line, &pending) {
            return Err(up.abort(e).await);
        }
    }
    up.finish().await
}

/// A JSON array, read whole by the caller: each element is checked on its
/// own so one bad participant rejects only itself.
pub async fn array(
    backend: Arc<dyn Backend>,
    campaign: &str,
    bytes: &[u8],
) -> Result<UploadResult, ApiError> {
    let items: Vec<serde_json::Value> = serde_json::from_slice(bytes)
        .map_err(|e| ApiError::malformed("malformed JSON array", &e))?;
    let mut up = Uploader::new(backend, campaign);
    for (i, item) in items.into_iter().enumerate() {
        match serde_json::from_value::<ParticipantIn>(item) {
            Ok(p) => up.push(i + 1, p),
            Err(e) => up.rejected.push(Rejected {
                line: i + 1,
                error: e.to_string(),
            }),
        }
    }
    up.finish().await
}
