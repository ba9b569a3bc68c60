//! Participant uploads: a JSON array or NDJSON, parsed as the body streams in
//! and staged by the backend in batches, so parsing overlaps the store's
//! writes. Once the body has ended and every batch is staged, the upload is
//! published: its participants become visible at once, durably, and only
//! then is it answered. A request that fails or is cut off publishes
//! nothing. A line that cannot be taken (broken JSON, a wrong shape, a value
//! too long) is rejected with its number and reason; the other lines are
//! still taken. A dry run does all of that but drops the upload instead of
//! publishing it: the answer says what an upload would take.

use std::sync::Arc;

use axum::body::Body;
use futures_util::StreamExt;
use serde_json::error::Category;
use tokio::task::JoinSet;

use crate::{
    backend::{Backend, BackendError, UploadId},
    error::ApiError,
    routes::budget::BodyBudget,
    types::v1::{ParticipantIn, Rejected, UploadResult, limits},
};

/// Participants handed to the backend at once.
pub const BATCH: usize = 4096;

/// The longest NDJSON line taken (`docs/api.md#limits`): a longer one is
/// rejected without being held, so no single line can fill the memory.
pub const MAX_LINE_BYTES: usize = 1 << 20;

/// The most line bytes a batch gathers before it is handed over, however
/// few participants it has: large participants (fields of kilobytes) make
/// smaller batches, so that what an upload holds in flight stays bounded.
pub const BATCH_BYTES: usize = 4 << 20;

/// Batches of an NDJSON upload waiting for the store at once: enough to
/// keep group commits full, few enough that a client sending faster than
/// the store commits is slowed down instead of filling the memory.
const COMMITS_IN_FLIGHT: usize = 16;

/// Collects parsed lines into batches and stages them in the background.
/// An error abandons the upload before it is answered, so that a retry
/// finds its customers free; dropped unended (the client gone), it abandons
/// the upload once its batches have stopped.
struct Uploader {
    backend: Arc<dyn Backend>,
    campaign: String,
    upload: UploadId,
    /// Published or abandoned.
    ended: bool,
    batch: Vec<(usize, ParticipantIn)>,
    /// The line bytes of `batch`.
    batch_bytes: usize,
    /// Batches gathered, with their line bytes, waiting for room in the
    /// budget to be handed over.
    ready: Vec<(Vec<(usize, ParticipantIn)>, usize)>,
    /// The memory that bodies and batches in flight share
    /// (`api.max_body_memory`).
    budget: Arc<BodyBudget>,
    commits: JoinSet<Result<UploadResult, BackendError>>,
    /// The answers of the batches committed so far, and the lines rejected.
    done: UploadResult,
    /// The first commit that failed.
    failed: Option<ApiError>,
    /// Check every line, answer as if stored, then drop the upload.
    dry_run: bool,
    /// Some batch went to the backend (which checks the campaign).
    handed_over: bool,
}

impl Uploader {
    fn new(
        backend: Arc<dyn Backend>,
        budget: Arc<BodyBudget>,
        campaign: &str,
        dry_run: bool,
    ) -> Self {
        Self {
            dry_run,
            upload: backend.new_upload(),
            ended: false,
            backend,
            campaign: campaign.to_owned(),
            batch: Vec::with_capacity(BATCH),
            batch_bytes: 0,
            ready: Vec::new(),
            budget,
            commits: JoinSet::new(),
            done: UploadResult::default(),
            failed: None,
            handed_over: false,
        }
    }

    /// One line of input: a participant, or a rejection naming the line.
    fn line(&mut self, line: usize, bytes: &[u8]) {
        let bytes = match line {
            1 => without_bom(bytes),
            _ => bytes,
        };
        if bytes.iter().all(u8::is_ascii_whitespace) {
            return;
        }
        // A participant has no nested struct: an object at the top is all
        // serde's derive would otherwise not ask (it takes an array too).
        if bytes.iter().find(|b| !b.is_ascii_whitespace()) != Some(&b'{') {
            return self.reject(line, NOT_AN_OBJECT.to_owned());
        }
        match serde_json::from_slice::<ParticipantIn>(bytes) {
            Ok(p) => self.push(line, p, bytes.len()),
            Err(e) => self.reject(line, line_error(&e)),
        }
    }

    fn reject(&mut self, line: usize, error: String) {
        self.done.reject(Rejected::new(line, error));
    }

    fn push(&mut self, line: usize, p: ParticipantIn, bytes: usize) {
        if let Some(problem) = limits::participant_problem(&p) {
            return self.reject(line, problem);
        }
        self.batch.push((line, p));
        self.batch_bytes += bytes;
        if self.batch.len() >= BATCH || self.batch_bytes >= BATCH_BYTES {
            self.close_batch();
        }
    }

    /// Sets the gathered batch aside to be handed over.
    fn close_batch(&mut self) {
        let batch = std::mem::replace(&mut self.batch, Vec::with_capacity(BATCH));
        self.ready
            .push((batch, std::mem::take(&mut self.batch_bytes)));
    }

    /// Hands the batches set aside to the backend, each once the budget has
    /// room for its bytes (which it holds until it is staged): a client
    /// sending faster than the store stages waits for room, rather than
    /// the batches of every upload together filling the memory.
    async fn hand_over(&mut self) {
        for (batch, bytes) in std::mem::take(&mut self.ready) {
            let held = self.budget.hold_batch(bytes).await;
            self.handed_over = true;
            let backend = self.backend.clone();
            let campaign = self.campaign.clone();
            let upload = self.upload;
            self.commits.spawn(async move {
                let staged = backend.add_participants(&campaign, upload, batch).await;
                drop(held);
                staged
            });
        }
    }

    /// Waits until at most `n` batches are still being committed.
    async fn wait_for_commits(&mut self, n: usize) {
        while self.commits.len() > n {
            let Some(joined) = self.commits.join_next().await else {
                return;
            };
            let outcome = joined
                .map_err(|e| ApiError::Internal(e.to_string()))
                .and_then(|r| r.map_err(ApiError::from));
            match outcome {
                Ok(part) => self.done.merge(part),
                Err(e) => self.failed = self.failed.take().or(Some(e)),
            }
        }
    }

    /// Waits until every batch is staged, publishes the upload and sums
    /// the answers.
    async fn finish(mut self) -> Result<UploadResult, ApiError> {
        // A body with no participant still has its campaign checked (404
        // unknown, 409 closed): as an empty batch.
        if !self.batch.is_empty() || (!self.handed_over && self.ready.is_empty()) {
            self.close_batch();
        }
        self.hand_over().await;
        self.wait_for_commits(0).await;
        if let Some(e) = self.failed.take() {
            return Err(self.fail(e).await);
        }
        if self.dry_run {
            self.backend.abandon(self.upload).await;
            self.ended = true;
            let mut done = std::mem::take(&mut self.done);
            done.list_first();
            return Ok(done);
        }
        let published = match self.backend.publish(self.upload).await {
            Ok(n) => n,
            Err(e) => return Err(self.fail(e.into()).await),
        };
        self.ended = true;
        let mut done = std::mem::take(&mut self.done);
        done.published(published);
        done.list_first();
        Ok(done)
    }

    /// The upload failed with `error`: stops its batches and abandons it
    /// before the error is answered.
    async fn fail(mut self, error: ApiError) -> ApiError {
        self.commits.shutdown().await;
        self.backend.abandon(self.upload).await;
        self.ended = true;
        error
    }

    /// The error of a batch that could not be staged, if any.
    fn failure(&mut self) -> Option<ApiError> {
        self.failed.take()
    }
}

impl Drop for Uploader {
    fn drop(&mut self) {
        if self.ended {
            return;
        }
        // Without a runtime the daemon is stopping: the store drops the
        // unpublished upload when it opens again.
        let Ok(runtime) = tokio::runtime::Handle::try_current() else {
            return;
        };
        let mut commits = std::mem::take(&mut self.commits);
        let backend = self.backend.clone();
        let upload = self.upload;
        // After every batch has stopped, so none is staged after the drop.
        runtime.spawn(async move {
            commits.shutdown().await;
            backend.abandon(upload).await;
        });
    }
}

/// NDJSON: lines are parsed as chunks arrive; memory stays bounded by one
/// line of at most [`MAX_LINE_BYTES`], and the batches in flight by the
/// shared budget.
pub async fn ndjson(
    backend: Arc<dyn Backend>,
    budget: Arc<BodyBudget>,
    campaign: &str,
    body: Body,
    limit: usize,
    dry_run: bool,
) -> Result<UploadResult, ApiError> {
    let mut up = Uploader::new(backend, budget, campaign, dry_run);
    let mut lines = Lines::default();
    let mut stream = body.into_data_stream();
    let mut total = 0usize;
    while let Some(chunk) = stream.next().await {
        let chunk = match chunk {
            Ok(c) => c,
            Err(e) => {
                let error = format!("reading body: {e}; nothing of this upload was stored");
                return Err(up.fail(ApiError::bad_request(error)).await);
            }
        };
        total += chunk.len();
        if total > limit {
            return Err(up.fail(ApiError::PayloadTooLarge { limit }).await);
        }
        lines.feed(&chunk, &mut up);
        up.hand_over().await;
        up.wait_for_commits(COMMITS_IN_FLIGHT).await;
        // A batch that could not be staged ends the upload: no more reading.
        if let Some(e) = up.failure() {
            return Err(up.fail(e).await);
        }
    }
    lines.end(&mut up);
    up.finish().await
}

/// Splits a byte stream into numbered lines for the uploader, holding at
/// most [`MAX_LINE_BYTES`] of the line not yet ended.
#[derive(Default)]
struct Lines {
    pending: Vec<u8>,
    /// The pending line outgrew the limit: its bytes are dropped up to its end.
    overlong: bool,
    number: usize,
}

impl Lines {
    fn feed(&mut self, mut chunk: &[u8], up: &mut Uploader) {
        while let Some(nl) = chunk.iter().position(|&b| b == b'\n') {
            let (line, rest) = (&chunk[..nl], &chunk[nl + 1..]);
            if self.pending.is_empty() && !self.overlong && line.len() <= MAX_LINE_BYTES {
                // The whole line is in this chunk: parsed in place, not copied.
                self.number += 1;
                up.line(self.number, line);
            } else {
                self.take(line);
                self.end_line(up);
            }
            chunk = rest;
        }
        self.take(chunk);
    }

    fn take(&mut self, part: &[u8]) {
        if self.pending.len() + part.len() > MAX_LINE_BYTES {
            self.overlong = true;
            self.pending = Vec::new();
        }
        if !self.overlong {
            self.pending.extend_from_slice(part);
        }
    }

    /// Ends the pending line at a newline.
    fn end_line(&mut self, up: &mut Uploader) {
        self.number += 1;
        if std::mem::take(&mut self.overlong) {
            up.reject(
                self.number,
                format!("line longer than {MAX_LINE_BYTES} bytes"),
            );
        } else {
            up.line(self.number, &self.pending);
        }
        self.pending.clear();
    }

    /// The body ended: a last line without a newline is a line too.
    fn end(mut self, up: &mut Uploader) {
        if !self.pending.is_empty() || self.overlong {
            self.end_line(up);
        }
    }
}

/// Why a line is not a participant, placed by column: serde's "line 1" is
/// always the line itself, whose number the rejection already gives.
/// Why a line that is valid JSON but no object is refused.
const NOT_AN_OBJECT: &str = "expected a JSON object (a participant), not another JSON value";

fn line_error(e: &serde_json::Error) -> String {
    let text = e.to_string();
    let place = format!(" at line {} column {}", e.line(), e.column());
    let why = text.strip_suffix(&place).unwrap_or(&text);
    match e.classify() {
        Category::Data => format!("{why} (column {})", e.column()),
        _ => format!("malformed JSON at column {}: {why}", e.column()),
    }
}

/// `bytes` without the UTF-8 byte order mark that Windows tools write at
/// the start of a file (RFC 8259 §8.1 lets a parser ignore it).
fn without_bom(bytes: &[u8]) -> &[u8] {
    bytes.strip_prefix(b"\xEF\xBB\xBF").unwrap_or(bytes)
}

/// A JSON array, read whole by the caller: each element is checked on its
/// own so one bad participant rejects only itself.
pub async fn array(
    backend: Arc<dyn Backend>,
    budget: Arc<BodyBudget>,
    campaign: &str,
    bytes: &[u8],
    dry_run: bool,
) -> Result<UploadResult, ApiError> {
    let items: Vec<serde_json::Value> = serde_json::from_slice(without_bom(bytes))
        .map_err(|e| ApiError::malformed("malformed JSON array", &e))?;
    let mut up = Uploader::new(backend, budget, campaign, dry_run);
    for (i, item) in items.into_iter().enumerate() {
        match crate::strict_json::from_value::<ParticipantIn>(&item) {
            // The body is held whole already (and counted): its batches
            // take nothing more from the budget.
            Ok(p) => up.push(i + 1, p, 0),
            Err(e) => up.reject(i + 1, e.to_string()),
        }
        // Staged while the rest is checked.
        up.hand_over().await;
    }
    up.finish().await
}
