//! Closing connections on which no request arrives, without a timer per
//! request.
//!
//! hyper's `header_read_timeout` allocates and registers a timer for every
//! request head it waits for; at tens of thousands of redirects a second that
//! was a visible share of the listener's CPU. Here each connection has one
//! interval instead, and counters its service bumps per request.

use std::future::Future;
use std::pin::Pin;
use std::sync::Arc;
use std::sync::atomic::{AtomicU64, Ordering};
use std::task::{Context, Poll};
use std::time::Duration;

use tokio::time::{Instant, MissedTickBehavior};

/// The requests of one connection: those begun (hyper calls the service
/// once a request's head has arrived) and those answered or dropped.
#[derive(Debug, Default)]
pub(super) struct Requests {
    begun: AtomicU64,
    ended: AtomicU64,
}

impl Requests {
    fn begun(&self) -> u64 {
        self.begun.load(Ordering::Relaxed)
    }

    /// Whether a request is being answered (one waiting on the store, say).
    fn in_flight(&self) -> bool {
        self.ended.load(Ordering::Relaxed) != self.begun()
    }
}

/// A service that counts its requests in [`Requests`].
#[derive(Clone, Debug)]
pub(super) struct Counted<S> {
    inner: S,
    requests: Arc<Requests>,
}

impl<S> Counted<S> {
    pub(super) fn new(inner: S) -> Self {
        Counted {
            inner,
            requests: Arc::default(),
        }
    }

    /// The counters, for [`unless_idle`].
    pub(super) fn requests(&self) -> Arc<Requests> {
        self.requests.clone()
    }
}

impl<S, R> hyper::service::Service<R> for Counted<S>
where
    S: hyper::service::Service<R>,
{
    type Response = S::Response;
    type Error = S::Error;
    type Future = Answering<S::Future>;

    fn call(&self, req: R) -> Self::Future {
        self.requests.begun.fetch_add(1, Ordering::Relaxed);
        Answering {
            inner: self.inner.call(req),
            _ended: Ended(self.requests.clone()),
        }
    }
}

pin_project_lite::pin_project! {
    /// A request's answer, counted ended once it is dropped (answered or
    /// not).
    pub(super) struct Answering<F> {
        #[pin]
        inner: F,
        _ended: Ended,
    }
}

impl<F: Future> Future for Answering<F> {
    type Output = F::Output;

    fn poll(self: Pin<&mut Self>, cx: &mut Context<'_>) -> Poll<F::Output> {
        self.project().inner.poll(cx)
    }
}

struct Ended(Arc<Requests>);

impl Drop for Ended {
    fn drop(&mut self) {
        self.0.ended.fetch_add(1, Ordering::Relaxed);
    }
}

/// Runs `conn` to its end, or drops it (closing the connection) once a whole
/// `window` has passed without a request begun and none being answered: an
/// idle keep-alive connection or a client sending its head too slowly is
/// closed after one to two windows, a request still being answered never.
pub(super) async fn unless_idle<F: Future>(
    conn: F,
    requests: &Requests,
    window: Duration,
) -> Option<F::Output> {
    let mut conn = std::pin::pin!(conn);
    let mut ticks = tokio::time::interval_at(Instant::now() + window, window);
    // A stalled runtime must not make a busy connection look idle.
    ticks.set_missed_tick_behavior(MissedTickBehavior::Delay);
    let mut seen = 0;
    loop {
        tokio::select! {
            biased;
            ended = &mut conn => return Some(ended),
            _ = ticks.tick() => {
                let now = requests.begun();
                if now == seen && !requests.in_flight() {
                    return None;
                }
                seen = now;
            }
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    const WINDOW: Duration = Duration::from_secs(10);

    /// A request's head arrived (as `Counted::call` counts it).
    fn begin(requests: &Requests) {
        requests.begun.fetch_add(1, Ordering::Relaxed);
    }

    #[tokio::test(start_paused = true)]
    async fn a_connection_without_requests_is_dropped_after_one_to_two_windows() {
        let requests = Requests::default();
        let start = Instant::now();
        let ended = unless_idle(std::future::pending::<()>(), &requests, WINDOW).await;
        assert_eq!(ended, None);
        assert!((WINDOW..=2 * WINDOW).contains(&start.elapsed()));
    }

    #[tokio::test(start_paused = true)]
    async fn a_connection_with_a_request_every_half_window_runs_to_its_end() {
        let requests = Requests::default();
        let conn = async {
            for _ in 0..10 {
                tokio::time::sleep(WINDOW / 2).await;
                begin(&requests);
                requests.ended.fetch_add(1, Ordering::Relaxed);
            }
            "done"
        };
        assert_eq!(unless_idle(conn, &requests, WINDOW).await, Some("done"));
    }

    #[tokio::test(start_paused = true)]
    async fn a_connection_that_falls_silent_is_dropped() {
        let requests = Requests::default();
        let start = Instant::now();
        let conn = async {
            tokio::time::sleep(WINDOW / 2).await;
            begin(&requests);
            requests.ended.fetch_add(1, Ordering::Relaxed);
            std::future::pending::<()>().await;
        };
        assert_eq!(unless_idle(conn, &requests, WINDOW).await, None);
        assert!((2 * WINDOW..=3 * WINDOW).contains(&start.elapsed()));
    }

    /// A request answered slowly (an unsubscribe waiting on the store) is
    /// not cut off for want of new ones; the connection's idleness counts
    /// from its answer.
    #[tokio::test(start_paused = true)]
    async fn a_request_answered_over_several_windows_is_not_cut_off() {
        let requests = Requests::default();
        let conn = async {
            begin(&requests);
            tokio::time::sleep(3 * WINDOW).await;
            requests.ended.fetch_add(1, Ordering::Relaxed);
            "answered"
        };
        assert_eq!(unless_idle(conn, &requests, WINDOW).await, Some("answered"));
    }

    #[test]
    fn counted_counts_each_call_and_each_answer() {
        struct Answer;
        impl hyper::service::Service<()> for Answer {
            type Response = ();
            type Error = std::convert::Infallible;
            type Future = std::future::Ready<Result<(), Self::Error>>;
            fn call(&self, (): ()) -> Self::Future {
                std::future::ready(Ok(()))
            }
        }
        let counted = Counted::new(Answer);
        let requests = counted.requests();
        let answering: Vec<_> = (0..3)
            .map(|_| hyper::service::Service::call(&counted, ()))
            .collect();
        assert_eq!(requests.begun(), 3);
        assert!(requests.in_flight());
        drop(answering);
        assert!(!requests.in_flight(), "dropped answers have ended");
    }
}
