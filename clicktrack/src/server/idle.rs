//! Closing connections on which no request arrives, without a timer per
//! request.
//!
//! hyper's `header_read_timeout` allocates and registers a timer for every
//! request head it waits for; at tens of thousands of redirects a second that
//! was a visible share of the listener's CPU. Here each connection has one
//! interval instead, and a counter its service bumps per request.

use std::future::Future;
use std::sync::Arc;
use std::sync::atomic::{AtomicU64, Ordering};
use std::time::Duration;

use tokio::time::{Instant, MissedTickBehavior};

/// A service that counts the requests it is called for (hyper calls it once
/// a request's head has arrived).
#[derive(Clone, Debug)]
pub(super) struct Counted<S> {
    inner: S,
    requests: Arc<AtomicU64>,
}

impl<S> Counted<S> {
    pub(super) fn new(inner: S) -> Self {
        Counted {
            inner,
            requests: Arc::new(AtomicU64::new(0)),
        }
    }

    /// The counter, for [`unless_idle`].
    pub(super) fn requests(&self) -> Arc<AtomicU64> {
        self.requests.clone()
    }
}

impl<S, R> hyper::service::Service<R> for Counted<S>
where
    S: hyper::service::Service<R>,
{
    type Response = S::Response;
    type Error = S::Error;
    type Future = S::Future;

    fn call(&self, req: R) -> Self::Future {
        self.requests.fetch_add(1, Ordering::Relaxed);
        self.inner.call(req)
    }
}

/// Runs `conn` to its end, or drops it (closing the connection) once a whole
/// `window` has passed without a request: an idle keep-alive connection or a
/// client sending its head too slowly is closed after one to two windows.
pub(super) async fn unless_idle<F: Future>(
    conn: F,
    requests: &AtomicU64,
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
                let now = requests.load(Ordering::Relaxed);
                if now == seen {
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

    #[tokio::test(start_paused = true)]
    async fn a_connection_without_requests_is_dropped_after_one_to_two_windows() {
        let requests = AtomicU64::new(0);
        let start = Instant::now();
        let ended = unless_idle(std::future::pending::<()>(), &requests, WINDOW).await;
        assert_eq!(ended, None);
        assert!((WINDOW..=2 * WINDOW).contains(&start.elapsed()));
    }

    #[tokio::test(start_paused = true)]
    async fn a_connection_with_a_request_every_half_window_runs_to_its_end() {
        let requests = AtomicU64::new(0);
        let conn = async {
            for _ in 0..10 {
                tokio::time::sleep(WINDOW / 2).await;
                requests.fetch_add(1, Ordering::Relaxed);
            }
            "done"
        };
        assert_eq!(unless_idle(conn, &requests, WINDOW).await, Some("done"));
    }

    #[tokio::test(start_paused = true)]
    async fn a_connection_that_falls_silent_is_dropped() {
        let requests = AtomicU64::new(0);
        let start = Instant::now();
        let conn = async {
            tokio::time::sleep(WINDOW / 2).await;
            requests.fetch_add(1, Ordering::Relaxed);
            std::future::pending::<()>().await;
        };
        assert_eq!(unless_idle(conn, &requests, WINDOW).await, None);
        assert!((2 * WINDOW..=3 * WINDOW).contains(&start.elapsed()));
    }

    #[test]
    fn counted_counts_each_call() {
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
        for _ in 0..3 {
            drop(hyper::service::Service::call(&counted, ()));
        }
        assert_eq!(requests.load(Ordering::Relaxed), 3);
    }
}
