//! A ready-made accept loop for the tracking listener.

use std::future::Future;
use std::time::Duration;

use hyper::server::conn::http1;
use hyper_util::rt::{TokioIo, TokioTimer};
use hyper_util::server::graceful::GracefulShutdown;
use tokio::net::TcpListener;

use crate::{Result, Tracking, TrackingSink};

/// How long a client may take to send a request's headers.
const HEADER_TIMEOUT: Duration = Duration::from_secs(10);
/// How long in-flight requests get to finish once shutdown is asked.
const SHUTDOWN_GRACE: Duration = Duration::from_secs(5);
/// Pause after a failed `accept` (e.g. out of file descriptors).
const ACCEPT_BACKOFF: Duration = Duration::from_millis(50);

/// Serves `tracking` over HTTP/1.1 with keep-alive on `listener` until
/// `shutdown` completes; then stops accepting, lets in-flight requests finish
/// (idle keep-alive connections close at once) for at most 5 seconds, and
/// returns.
pub async fn serve<S, F>(listener: TcpListener, tracking: Tracking<S>, shutdown: F) -> Result<()>
where
    S: TrackingSink,
    F: Future<Output = ()>,
{
    let graceful = GracefulShutdown::new();
    let mut builder = http1::Builder::new();
    builder
        .keep_alive(true)
        .timer(TokioTimer::new())
        .header_read_timeout(HEADER_TIMEOUT);
    let mut shutdown = std::pin::pin!(shutdown);
    loop {
        let stream = tokio::select! {
            biased;
            () = &mut shutdown => break,
            accepted = listener.accept() => match accepted {
                Ok((stream, _)) => stream,
                Err(_) => {
                    tokio::time::sleep(ACCEPT_BACKOFF).await;
                    continue;
                }
            },
        };
        // Best effort: a refused option only costs latency.
        let _ = stream.set_nodelay(true);
        let conn = builder.serve_connection(TokioIo::new(stream), tracking.clone());
        let conn = graceful.watch(conn);
        tokio::spawn(async move {
            // Client resets and timeouts end the connection; nothing to do.
            let _ = conn.await;
        });
    }
    drop(listener);
    let _ = tokio::time::timeout(SHUTDOWN_GRACE, graceful.shutdown()).await;
    Ok(())
}
