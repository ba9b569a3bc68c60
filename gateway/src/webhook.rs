//! Signed webhooks: each configured endpoint receives the fact feed in
//! batches, `POST`ed as `{"events": [...]}` with
//! `X-Sluice-Signature: sha256=HEX(HMAC(secret, body))`, retried with
//! back-off until a 2xx. Its cursor is durable, so a restart resumes where
//! the last acknowledged batch ended (at-least-once).

use std::{
    path::{Path, PathBuf},
    sync::Arc,
    time::Duration,
};

use admin_api::types::v1::Event;
use bytes::Bytes;
use hmac::{Hmac, Mac};
use http_body_util::{BodyExt, Full};
use hyper::{Request, header::CONTENT_TYPE};
use hyper_rustls::{HttpsConnector, HttpsConnectorBuilder};
use hyper_util::{
    client::legacy::{Client, connect::HttpConnector},
    rt::TokioExecutor,
};
use rustls::pki_types::{CertificateDer, pem::PemObject};
use sha2::Sha256;
use tokio_util::sync::CancellationToken;

use crate::{
    BoxError,
    config::Webhook,
    metrics::{Metrics, OutcomeLabels},
};
use store::Store;

const IDLE: Duration = Duration::from_millis(250);

/// How a batch not delivered is retried: after `first`, doubling up to
/// `max` between tries, until the receiver takes it; a receiver that has
/// not answered within `answer` has not taken it.
#[derive(Debug, Clone, Copy)]
pub struct Retry {
    pub first: Duration,
    pub max: Duration,
    pub answer: Duration,
}

impl Default for Retry {
    fn default() -> Self {
        Self {
            first: Duration::from_secs(1),
            max: Duration::from_secs(60),
            answer: Duration::from_secs(30),
        }
    }
}

/// `sha256=HEX` of the body under `secret`.
pub fn signature(secret: &[u8], body: &[u8]) -> String {
    let mut mac = Hmac::<Sha256>::new_from_slice(secret).expect("HMAC accepts keys of any length");
    mac.update(body);
    format!("sha256={}", hex::encode(mac.finalize().into_bytes()))
}

/// An HTTP/1.1 client for http:// and https:// endpoints.
pub type WebClient = Client<HttpsConnector<HttpConnector>, Full<Bytes>>;

/// The client for `config`'s endpoint: https verified against the system's
/// trust store, or against `ca_file` alone when it is set. An http endpoint
/// needs no trust store at all.
pub fn client(config: &Webhook) -> Result<WebClient, ClientError> {
    let provider = Arc::new(rustls::crypto::ring::default_provider());
    let builder = HttpsConnectorBuilder::new();
    let builder = match &config.ca_file {
        Some(path) => {
            let unusable = |source: BoxError| ClientError::CaFile {
                path: path.clone(),
                source,
            };
            let roots = roots_in(path).map_err(unusable)?;
            builder.with_tls_config(tls_trusting(provider, &roots).map_err(|e| unusable(e.into()))?)
        }
        None if config.is_https() => builder
            .with_provider_and_platform_verifier(provider)
            .map_err(ClientError::TrustStore)?,
        None => builder.with_tls_config(tls_trusting(provider, &[])?),
    };
    let connector = builder.https_or_http().enable_http1().build();
    Ok(Client::builder(TokioExecutor::new()).build(connector))
}

/// Why a webhook's client could not be built.
#[derive(Debug, thiserror::Error)]
pub enum ClientError {
    #[error("{}: {source}", .path.display())]
    CaFile { path: PathBuf, source: BoxError },
    #[error("the system's trust store: {0}")]
    TrustStore(std::io::Error),
    #[error("TLS: {0}")]
    Tls(#[from] rustls::Error),
}

/// The certificates of the PEM file at `path`; at least one.
fn roots_in(path: &Path) -> Result<Vec<CertificateDer<'static>>, BoxError> {
    let certs: Vec<_> = CertificateDer::pem_file_iter(path)?.collect::<Result<_, _>>()?;
    if certs.is_empty() {
        return Err("no certificate in it".into());
    }
    Ok(certs)
}

/// A TLS client configuration trusting `roots` alone.
fn tls_trusting(
    provider: Arc<rustls::crypto::CryptoProvider>,
    roots: &[CertificateDer<'static>],
) -> Result<rustls::ClientConfig, rustls::Error> {
    let mut store = rustls::RootCertStore::empty();
    for cert in roots {
        store.add(cert.clone())?;
    }
    Ok(rustls::ClientConfig::builder_with_provider(provider)
        .with_safe_default_protocol_versions()?
        .with_root_certificates(store)
        .with_no_client_auth())
}

/// Why a batch was not delivered (it is sent again after a back-off).
#[derive(Debug, thiserror::Error)]
enum PostError {
    #[error("{0}")]
    Request(#[from] hyper::http::Error),
    #[error("timed out")]
    TimedOut,
    /// With its causes: the client's own message says only what stage
    /// failed ("client error (Connect)"), its source why (a refused
    /// connection, an unknown CA, a name that does not resolve).
    #[error("{}", with_causes(.0))]
    Transport(#[from] hyper_util::client::legacy::Error),
    #[error("answered {0}")]
    Status(hyper::StatusCode),
}

/// The meta key of the cursor of the last fact delivered to the webhook
/// configured `index`th, to `url` (retention keeps the facts after it).
pub fn cursor_key(index: usize, url: &str) -> String {
    format!("webhook:{index}:{url}")
}

/// `error` and each error that caused it, outermost first.
fn with_causes(error: &dyn std::error::Error) -> String {
    let mut text = error.to_string();
    let mut cause = error.source();
    while let Some(e) = cause {
        text.push_str(": ");
        text.push_str(&e.to_string());
        cause = e.source();
    }
    text
}

/// How long a post in flight when the daemon stops may still take: a
/// batch not answered by then goes again after the restart.
const ANSWER_WHILE_STOPPING: Duration = Duration::from_secs(5);

/// Most bytes of an answer's body read (and thrown away) so that its
/// connection can be used again; a longer one closes the connection.
const MAX_ANSWER_BODY: usize = 64 * 1024;

/// Where delivery stands: facts after `after` are still to go; `stored`
/// is the stored value it was read as (`None`: nothing stored yet).
#[derive(Debug, Clone)]
struct Position {
    after: u64,
    stored: Option<Vec<u8>>,
}

pub struct WebhookSender {
    pub index: usize,
    pub config: Webhook,
    pub client: WebClient,
    pub secret: Vec<u8>,
    pub store: Arc<dyn Store>,
    pub metrics: Arc<Metrics>,
    pub retry: Retry,
}

impl WebhookSender {
    fn cursor_key(&self) -> String {
        cursor_key(self.index, &self.config.url)
    }

    /// The cursor of the last batch delivered, as stored. An error (the
    /// store unreachable, a value that is not a cursor) is never taken
    /// for "nothing delivered yet": that would send the whole feed again.
    async fn stored_cursor(&self) -> Result<Position, String> {
        let stored = self
            .store
            .meta(&self.cursor_key())
            .await
            .map_err(|e| e.to_string())?;
        let after = match &stored {
            None => 0,
            Some(v) => std::str::from_utf8(v)
                .ok()
                .and_then(|s| s.parse().ok())
                .ok_or_else(|| {
                    format!(
                        "the stored cursor {:?} is not a number",
                        String::from_utf8_lossy(v)
                    )
                })?,
        };
        Ok(Position { after, stored })
    }

    /// How long a node leads the delivery without asking again: longer
    /// than a post and the longest back-off after it, so that no other
    /// node takes over while the leader waits to try again.
    fn lead_ms(&self) -> u64 {
        let longest = self.retry.answer + self.retry.max + Duration::from_secs(10);
        longest.as_millis() as u64
    }

    /// Whether this node delivers the batches now. On a store several
    /// nodes share, one node leads each endpoint's delivery (so each batch
    /// goes out from one node); alone, a node always does.
    async fn leads(&self) -> bool {
        let Some(shared) = self.store.shared() else {
            return true;
        };
        match shared.lead(&self.cursor_key(), self.lead_ms()).await {
            Ok(led) => led,
            Err(e) => {
                tracing::warn!(error = %e, "webhook: cannot tell which node delivers");
                false
            }
        }
    }

    pub async fn run(self, shutdown: CancellationToken) {
        // The stored cursor as this node last read or wrote it; read again
        // whenever another node may have moved it (this node did not lead,
        // or its write found another value).
        let mut known: Option<Position> = None;
        let mut backoff = self.retry.first;
        while !shutdown.is_cancelled() {
            if !self.leads().await {
                // Another node delivers: its gauge tells.
                self.metrics.webhook_backlog(self.index, 0.0);
                known = None;
                tokio::select! { () = shutdown.cancelled() => break, () = tokio::time::sleep(IDLE) => continue }
            }
            let position = match known.take() {
                Some(p) => p,
                None => match self.stored_cursor().await {
                    Ok(p) => p,
                    Err(e) => {
                        tracing::error!(url = %self.config.url, error = %e, "webhook: cannot read where delivery stopped; waiting");
                        tokio::select! { () = shutdown.cancelled() => break, () = tokio::time::sleep(IDLE) => continue }
                    }
                },
            };
            let events = match self.store.events(position.after, self.config.batch).await {
                Ok(e) => {
                    let oldest = e
                        .first()
                        .map_or(0, |e| domain::now_ms().saturating_sub(e.at));
                    self.metrics
                        .webhook_backlog(self.index, oldest as f64 / 1000.0);
                    e
                }
                Err(e) => {
                    tracing::error!(error = %e, "webhook: reading the feed failed");
                    Vec::new()
                }
            };
            let Some(last) = events.last().map(|e| e.cursor) else {
                known = Some(position);
                tokio::select! { () = shutdown.cancelled() => break, () = tokio::time::sleep(IDLE) => continue }
            };
            // The feed's own shape, as `GET /v1/events` shows it.
            let events: Vec<Event> = events.into_iter().map(Event::of).collect();
            let body =
                serde_json::to_vec(&serde_json::json!({ "events": events })).unwrap_or_default();
            // Stopping waits a little for a post's answer (so that a
            // receiver that took the batch does not get it again after the
            // restart), not the whole answer time: the daemon's shutdown
            // has a grace of its own.
            let mut post = std::pin::pin!(self.post(body));
            let delivered = tokio::select! {
                delivered = &mut post => delivered,
                () = shutdown.cancelled() => {
                    match tokio::time::timeout(ANSWER_WHILE_STOPPING, &mut post).await {
                        Ok(delivered) => delivered,
                        Err(_) => break,
                    }
                }
            };
            let label = if delivered.is_ok() {
                "delivered"
            } else {
                "failed"
            };
            self.metrics
                .webhook_batches
                .get_or_create(&OutcomeLabels {
                    channel: "webhook",
                    outcome: label,
                })
                .inc();
            match delivered {
                Ok(()) => {
                    backoff = self.retry.first;
                    known = self.save_cursor(position, last).await;
                }
                Err(e) => {
                    known = Some(position);
                    tracing::warn!(url = %self.config.url, error = %e, retry_in = ?backoff, "webhook batch not delivered");
                    tokio::select! { () = shutdown.cancelled() => break, () = tokio::time::sleep(backoff) => {} }
                    backoff = (backoff * 2).min(self.retry.max);
                }
            }
        }
    }

    /// Moves the stored cursor from `from` to `last`, only over the value
    /// read: another node that moved it meanwhile keeps its value (this
    /// node reads it again), so the cursor never goes back.
    async fn save_cursor(&self, from: Position, last: u64) -> Option<Position> {
        let value = last.to_string().into_bytes();
        match self
            .store
            .put_meta_if(&self.cursor_key(), from.stored.as_deref(), value.clone())
            .await
        {
            Ok(true) => Some(Position {
                after: last,
                stored: Some(value),
            }),
            Ok(false) => {
                tracing::warn!(url = %self.config.url, "webhook: another node moved the cursor meanwhile; reading it again");
                None
            }
            Err(e) => {
                tracing::error!(url = %self.config.url, error = %e, "webhook: could not save the cursor");
                None
            }
        }
    }

    async fn post(&self, body: Vec<u8>) -> Result<(), PostError> {
        let request = Request::post(&self.config.url)
            .header(CONTENT_TYPE, "application/json")
            .header("X-Sluice-Signature", signature(&self.secret, &body))
            .body(Full::new(Bytes::from(body)))?;
        // One deadline for the whole post, which `lead_ms` counts on.
        let deadline = tokio::time::Instant::now() + self.retry.answer;
        let response = tokio::time::timeout_at(deadline, self.client.request(request))
            .await
            .map_err(|_| PostError::TimedOut)??;
        let status = response.status();
        // Drain the body so the connection can be reused; a body that
        // stalls or runs long is given up (the status is the answer).
        let body = http_body_util::Limited::new(response.into_body(), MAX_ANSWER_BODY);
        let _ = tokio::time::timeout_at(deadline, body.collect()).await;
        if status.is_success() {
            Ok(())
        } else {
            Err(PostError::Status(status))
        }
    }
}

#[cfg(test)]
mod outage_tests;

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn signature_matches_a_known_vector() {
        // RFC 4231 test case 2.
        assert_eq!(
            signature(b"Jefe", b"what do ya want for nothing?"),
            "sha256=5bdcc146bf60754e6a042426089575c75a003f089d2739839dec58b964ec3843"
        );
    }
}
