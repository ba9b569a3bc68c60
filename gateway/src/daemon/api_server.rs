//! The API listener: HTTP/1.1, over TLS where configured, with a deadline
//! for the TLS handshake and for each request's headers, so a client that
//! opens connections and sends nothing, or sends headers a byte at a time,
//! is cut off instead of holding a connection for ever (the tracking
//! listener has its own, `clicktrack::serve_on_thread`).

use std::time::Duration;

use hyper::server::conn::http1;
use hyper_util::{
    rt::{TokioIo, TokioTimer},
    server::graceful::{GracefulShutdown, Watcher},
    service::TowerToHyperService,
};
use tokio::{
    io::{AsyncRead, AsyncWrite},
    net::TcpListener,
};
use tokio_rustls::TlsAcceptor;
use tokio_util::sync::CancellationToken;

/// How long a client has to send a request's headers.
pub(super) const HEADER_READ_TIMEOUT: Duration = Duration::from_secs(10);

/// Serves `router` on `listener` (over TLS with `tls`) until `shutdown`,
/// then lets the requests in flight finish.
pub(super) async fn serve(
    listener: TcpListener,
    router: axum::Router,
    header_timeout: Duration,
    tls: Option<TlsAcceptor>,
    shutdown: CancellationToken,
) {
    let mut http = http1::Builder::new();
    http.timer(TokioTimer::new())
        .header_read_timeout(header_timeout);
    let connections = GracefulShutdown::new();
    loop {
        let stream = tokio::select! {
            accepted = listener.accept() => match accepted {
                Ok((stream, _)) => stream,
                Err(e) => {
                    // Out of file descriptors, say: wait rather than spin.
                    tracing::warn!(error = %e, "API listener could not accept");
                    tokio::time::sleep(Duration::from_millis(50)).await;
                    continue;
                }
            },
            () = shutdown.cancelled() => break,
        };
        let _ = stream.set_nodelay(true);
        let service = TowerToHyperService::new(router.clone());
        let (http, watcher, tls) = (http.clone(), connections.watcher(), tls.clone());
        tokio::spawn(async move {
            let Some(tls) = tls else {
                return serve_one(http, watcher, stream, service).await;
            };
            match tokio::time::timeout(header_timeout, tls.accept(stream)).await {
                Ok(Ok(stream)) => serve_one(http, watcher, stream, service).await,
                Ok(Err(e)) => tracing::debug!(error = %e, "API TLS handshake failed"),
                Err(_) => tracing::debug!("API TLS handshake too slow"),
            }
        });
    }
    connections.shutdown().await;
}

/// One connection, plain or TLS, until it ends or shutdown's grace does.
async fn serve_one<IO>(
    http: http1::Builder,
    watcher: Watcher,
    io: IO,
    service: TowerToHyperService<axum::Router>,
) where
    IO: AsyncRead + AsyncWrite + Unpin + Send + 'static,
{
    let connection = watcher.watch(http.serve_connection(TokioIo::new(io), service));
    if let Err(e) = connection.await {
        tracing::debug!(error = %e, "API connection ended");
    }
}

#[cfg(test)]
mod tests {
    use tokio::{
        io::{AsyncReadExt, AsyncWriteExt},
        net::TcpStream,
    };

    use super::*;

    #[tokio::test]
    async fn a_client_too_slow_with_its_headers_is_cut_off_and_others_are_served() {
        let listener = TcpListener::bind("127.0.0.1:0").await.expect("bind");
        let addr = listener.local_addr().expect("addr");
        let router = axum::Router::new().route("/", axum::routing::get(|| async { "ok" }));
        let shutdown = CancellationToken::new();
        let served = tokio::spawn(serve(
            listener,
            router,
            Duration::from_millis(200),
            None,
            shutdown.clone(),
        ));

        let mut slow = TcpStream::connect(addr).await.expect("connect");
        slow.write_all(b"GET / HTTP/1.1\r\nHo")
            .await
            .expect("write");
        let mut buf = [0u8; 64];
        let cut = tokio::time::timeout(Duration::from_secs(5), slow.read(&mut buf))
            .await
            .expect("cut off well before 5 s");
        assert!(
            matches!(cut, Ok(0) | Err(_)),
            "closed, not answered: {cut:?}"
        );

        let mut fast = TcpStream::connect(addr).await.expect("connect");
        fast.write_all(b"GET / HTTP/1.1\r\nHost: x\r\nConnection: close\r\n\r\n")
            .await
            .expect("write");
        let mut answer = String::new();
        fast.read_to_string(&mut answer).await.expect("read");
        assert!(answer.starts_with("HTTP/1.1 200"), "{answer}");

        shutdown.cancel();
        served.await.expect("stops");
    }
}
