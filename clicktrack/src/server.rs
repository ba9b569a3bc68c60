//! A ready-made accept loop for the tracking listener, and a way to run it
//! on a thread of its own.

use std::future::Future;
use std::sync::Arc;
use std::time::Duration;

use hyper::server::conn::http1;
use hyper_util::rt::TokioIo;
use hyper_util::server::graceful::{GracefulShutdown, Watcher};
use tokio::io::{AsyncRead, AsyncWrite};
use tokio::net::TcpListener;
use tokio::sync::Semaphore;
use tokio_rustls::TlsAcceptor;

use crate::{Error, Result, Tracking, TrackingSink};

mod idle;

/// A connection on which no request arrives for this long (to twice as long)
/// is closed: idle keep-alive connections and clients that send their
/// headers too slowly.
const IDLE_WINDOW: Duration = Duration::from_secs(10);
/// How long in-flight requests get to finish once shutdown is asked.
const SHUTDOWN_GRACE: Duration = Duration::from_secs(5);
/// Most bytes of a request head read (hyper's least is 8 KiB).
const MAX_HEAD: usize = 16 * 1024;
/// Pause after a failed `accept` (e.g. out of file descriptors).
const ACCEPT_BACKOFF: Duration = Duration::from_millis(50);

/// Serves `tracking` over HTTP/1.1 with keep-alive on `listener` (over TLS
/// with `tls`: the handshake must end within the idle window) until
/// `shutdown` completes; then stops accepting, lets in-flight requests finish
/// (idle keep-alive connections close at once) for at most 5 seconds, and
/// returns. A connection on which no request arrives for 10 to 20 seconds is
/// closed.
///
/// At most `max_connections` connections are open at once: beyond that
/// nothing more is accepted (new clients wait in the kernel's backlog) until
/// one closes, so a flood of connections to this public listener cannot
/// take the file descriptors the rest of the process needs.
pub async fn serve<S, F>(
    listener: TcpListener,
    tracking: Tracking<S>,
    max_connections: usize,
    tls: Option<TlsAcceptor>,
    shutdown: F,
) -> Result<()>
where
    S: TrackingSink,
    F: Future<Output = ()>,
{
    let slots = Arc::new(Semaphore::new(max_connections));
    let graceful = GracefulShutdown::new();
    let mut builder = http1::Builder::new();
    builder
        .keep_alive(true)
        // Answers are a few hundred bytes: one buffer, one write(2).
        .writev(false)
        // Slow and idle clients are closed by `idle::unless_idle` instead.
        .header_read_timeout(None)
        // A request here is a token and a few headers: a head longer than
        // this is answered 431 rather than buffered (hyper's default, about
        // 400 KiB, let the connections held at once take gigabytes).
        .max_buf_size(MAX_HEAD);
    let mut shutdown = std::pin::pin!(shutdown);
    loop {
        let slot = tokio::select! {
            biased;
            () = &mut shutdown => break,
            slot = slots.clone().acquire_owned() => match slot {
                Ok(slot) => slot,
                // Never closed: the semaphore is ours alone.
                Err(_) => break,
            },
        };
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
        let service = idle::Counted::new(tracking.clone());
        let (builder, watcher, tls) = (builder.clone(), graceful.watcher(), tls.clone());
        tokio::spawn(async move {
            match tls {
                None => serve_one(stream, builder, watcher, service).await,
                // The handshake, like the headers, must come within the window.
                Some(tls) => {
                    if let Ok(Ok(stream)) =
                        tokio::time::timeout(IDLE_WINDOW, tls.accept(stream)).await
                    {
                        serve_one(stream, builder, watcher, service).await;
                    }
                }
            }
            drop(slot);
        });
    }
    drop(listener);
    let _ = tokio::time::timeout(SHUTDOWN_GRACE, graceful.shutdown()).await;
    Ok(())
}

/// One connection, plain or TLS, until it ends, falls idle, or shutdown's
/// grace runs out.
async fn serve_one<IO, S>(
    io: IO,
    builder: http1::Builder,
    watcher: Watcher,
    service: idle::Counted<Tracking<S>>,
) where
    IO: AsyncRead + AsyncWrite + Unpin + Send + 'static,
    S: TrackingSink,
{
    let requests = service.requests();
    let conn = watcher.watch(builder.serve_connection(TokioIo::new(io), service));
    // Client resets and idle clients end the connection; nothing to do.
    let _ = idle::unless_idle(conn, &requests, IDLE_WINDOW).await;
}

/// Runs [`serve`] on a new OS thread named `tracking`, with a current-thread
/// runtime of its own, and returns a future that completes with its result.
///
/// A redirect is a few microseconds of work between two system calls: on a
/// runtime shared with other tasks it waits behind them, and a multi-thread
/// scheduler adds cross-thread bookkeeping to every wake-up. On its own
/// thread the listener gets a core whenever one is free, and the caller's
/// tasks (e.g. the writer draining the sink's queue) run beside it.
pub fn serve_on_thread<S, F>(
    listener: TcpListener,
    tracking: Tracking<S>,
    max_connections: usize,
    tls: Option<TlsAcceptor>,
    shutdown: F,
) -> Result<impl Future<Output = Result<()>> + Send + 'static>
where
    S: TrackingSink,
    F: Future<Output = ()> + Send + 'static,
{
    // Deregistered from the caller's runtime, registered again on the new one.
    let listener = listener.into_std()?;
    let (done, stopped) = tokio::sync::oneshot::channel();
    std::thread::Builder::new()
        .name("tracking".into())
        .spawn(move || {
            let served = tokio::runtime::Builder::new_current_thread()
                .enable_all()
                .build()
                .map_err(Error::from)
                .and_then(|runtime| {
                    runtime.block_on(async {
                        serve(
                            TcpListener::from_std(listener)?,
                            tracking,
                            max_connections,
                            tls,
                            shutdown,
                        )
                        .await
                    })
                });
            // The caller may have stopped waiting; nothing left to tell.
            let _ = done.send(served);
        })?;
    Ok(async move {
        stopped.await.unwrap_or_else(|_| {
            Err(Error::Io(std::io::Error::other(
                "the tracking thread panicked",
            )))
        })
    })
}
