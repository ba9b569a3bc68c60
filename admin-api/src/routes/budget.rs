//! The memory that request bodies may hold at once, across every request
//! (`api.max_body_memory`). A body read whole takes its bytes from the
//! budget as they arrive and gives them back when the request is answered;
//! a body that would go over is refused at once with 503, so a few large
//! requests cannot fill the memory, nor wait on each other forever. The
//! batches of NDJSON uploads on their way to the store share a budget of
//! half as much, waiting for room instead (`BodyBudget::hold_batch`): a
//! streamed upload slows down rather than failing.

use std::{ops::Deref, sync::Arc};

use axum::body::{Body, Bytes};
use bytes::BytesMut;
use futures_util::StreamExt;
use tokio::sync::{OwnedSemaphorePermit, Semaphore};

use crate::error::ApiError;

/// Bytes of bodies held at once, shared by every request.
pub(crate) struct BodyBudget {
    bytes: Arc<Semaphore>,
    limit: usize,
    /// The bytes of NDJSON batches on their way to the store: half the
    /// limit, a semaphore of its own. Tokio's semaphore is fair: a batch
    /// waiting in the bodies' queue would take the permits given back
    /// first, and every body read whole would meanwhile be turned away.
    batches: Arc<Semaphore>,
    batches_limit: usize,
}

impl BodyBudget {
    pub(crate) fn new(limit: usize) -> Self {
        let batches_limit = (limit / 2).max(1);
        Self {
            bytes: Arc::new(Semaphore::new(limit.min(Semaphore::MAX_PERMITS))),
            limit,
            batches: Arc::new(Semaphore::new(batches_limit.min(Semaphore::MAX_PERMITS))),
            batches_limit,
        }
    }

    /// Reads `body` whole: 413 beyond `max` bytes, 503 when the bodies being
    /// read or handled already hold the budget.
    pub(crate) async fn read_whole(&self, body: Body, max: usize) -> Result<HeldBody, ApiError> {
        let mut held: Option<OwnedSemaphorePermit> = None;
        let mut bytes = BytesMut::new();
        let mut stream = body.into_data_stream();
        while let Some(chunk) = stream.next().await {
            let chunk = chunk.map_err(|e| ApiError::bad_request(format!("reading body: {e}")))?;
            if bytes.len() + chunk.len() > max {
                return Err(ApiError::PayloadTooLarge { limit: max });
            }
            self.take(&mut held, chunk.len())?;
            bytes.extend_from_slice(&chunk);
        }
        Ok(HeldBody {
            bytes: bytes.freeze(),
            _held: held,
        })
    }

    /// Waits for room for a batch of `n` bytes among the batches in flight,
    /// then holds it until the permit is dropped. At most the batches' whole
    /// share is waited for, so that a batch larger than it still goes,
    /// alone.
    pub(crate) async fn hold_batch(&self, n: usize) -> Option<OwnedSemaphorePermit> {
        // Nothing to hold: not queued behind batches waiting for room.
        if n == 0 {
            return None;
        }
        let n = u32::try_from(n.min(self.batches_limit)).unwrap_or(u32::MAX);
        self.batches.clone().acquire_many_owned(n).await.ok()
    }

    fn take(&self, held: &mut Option<OwnedSemaphorePermit>, n: usize) -> Result<(), ApiError> {
        let Ok(n) = u32::try_from(n) else {
            return Err(self.exhausted());
        };
        let more = self
            .bytes
            .clone()
            .try_acquire_many_owned(n)
            .map_err(|_| self.exhausted())?;
        match held {
            Some(permit) => permit.merge(more),
            None => *held = Some(more),
        }
        Ok(())
    }

    fn exhausted(&self) -> ApiError {
        ApiError::Unavailable(format!(
            "request bodies being handled already hold {} bytes (api.max_body_memory); retry later",
            self.limit
        ))
    }
}

/// A body read whole, holding its share of the budget until dropped.
pub struct HeldBody {
    bytes: Bytes,
    _held: Option<OwnedSemaphorePermit>,
}

impl Deref for HeldBody {
    type Target = [u8];

    fn deref(&self) -> &[u8] {
        &self.bytes
    }
}
