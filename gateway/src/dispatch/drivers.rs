//! The tasks that drive a lane's sends. A send is a future polled by one of
//! a few long-lived tasks (as many as the runtime has workers), not a task
//! of its own: a burst of answers read at once (an SMSC answers a window of
//! submits in one segment) wakes each driver at most once, and it polls
//! its sends among them together, where a task each was scheduled, and
//! often a sleeping worker woken, for every answer (BENCHMARKS.md, issue
//! 19, "Sends driven together").
//!
//! A driver is one task: what a send does without awaiting delays the
//! driver's other sends. Sends therefore keep heavy work off the runtime
//! (DKIM signing runs on the blocking pool).

use std::{
    future::Future,
    panic::AssertUnwindSafe,
    pin::Pin,
    sync::atomic::{AtomicUsize, Ordering},
};

use futures_util::{FutureExt, StreamExt, future::CatchUnwind, stream::FuturesUnordered};
use tokio::sync::mpsc;
use tokio_util::task::TaskTracker;

type SendFuture = Pin<Box<dyn Future<Output = ()> + Send>>;

/// Sends a driver takes from its queue in one go at most.
const TAKE: usize = 64;

/// Hands sends to the driver tasks in turn.
pub(super) struct Drivers {
    queues: Vec<mpsc::UnboundedSender<SendFuture>>,
    turn: AtomicUsize,
}

impl Drivers {
    /// One driver per worker of the current runtime, each on `tracker`. A
    /// driver ends once its `Drivers` is dropped and every send it was
    /// given has finished.
    pub(super) fn start(tracker: &TaskTracker) -> Self {
        let workers = tokio::runtime::Handle::current().metrics().num_workers();
        Self::with(workers, tracker)
    }

    fn with(drivers: usize, tracker: &TaskTracker) -> Self {
        let queues = (0..drivers.max(1))
            .map(|_| {
                let (tx, rx) = mpsc::unbounded_channel();
                tracker.spawn(drive(rx));
                tx
            })
            .collect();
        Self {
            queues,
            turn: AtomicUsize::new(0),
        }
    }

    /// Hands `send` to the next driver.
    pub(super) fn run(&self, send: impl Future<Output = ()> + Send + 'static) {
        let i = self.turn.fetch_add(1, Ordering::Relaxed) % self.queues.len();
        // A driver ends before its `Drivers` only by a bug of its own: the
        // send then goes as a task, not silently nowhere.
        if let Err(mpsc::error::SendError(send)) = self.queues[i].send(Box::pin(send)) {
            tracing::error!(driver = i, "a send driver has ended; sending as a task");
            tokio::spawn(send);
        }
    }
}

/// Polls every send it is given until each has finished. A send that
/// panics ends alone, as a task of its own would: the message it held
/// stays leased and is claimed again once the lease runs out.
async fn drive(mut queue: mpsc::UnboundedReceiver<SendFuture>) {
    let mut running: FuturesUnordered<CatchUnwind<AssertUnwindSafe<SendFuture>>> =
        FuturesUnordered::new();
    let mut taken = Vec::with_capacity(TAKE);
    let mut open = true;
    while open || !running.is_empty() {
        tokio::select! {
            biased;
            Some(finished) = running.next(), if !running.is_empty() => {
                if finished.is_err() {
                    tracing::error!("a send panicked; its message is claimed again after its lease");
                }
            }
            n = queue.recv_many(&mut taken, TAKE), if open => {
                open = n > 0;
                running.extend(taken.drain(..).map(|send| AssertUnwindSafe(send).catch_unwind()));
            }
        }
    }
}

#[cfg(test)]
mod tests {
    use std::{
        sync::{
            Arc,
            atomic::{AtomicUsize, Ordering},
        },
        time::Duration,
    };

    use tokio::sync::{Barrier, oneshot};

    use super::*;

    /// Hands `drivers` a send that waits for the first end returned, then
    /// tells the second that it finished.
    fn run_waiting(drivers: &Drivers) -> (oneshot::Sender<()>, oneshot::Receiver<()>) {
        let (release, released) = oneshot::channel::<()>();
        let (done, finished) = oneshot::channel();
        drivers.run(async move {
            let _ = released.await;
            let _ = done.send(());
        });
        (release, finished)
    }

    #[tokio::test]
    async fn the_sends_of_one_driver_run_at_once() {
        let tracker = TaskTracker::new();
        let drivers = Drivers::with(1, &tracker);
        // Each send waits for all the others to have started.
        let all_started = Arc::new(Barrier::new(3));
        let finished = Arc::new(AtomicUsize::new(0));
        for _ in 0..3 {
            let (all_started, finished) = (all_started.clone(), finished.clone());
            drivers.run(async move {
                all_started.wait().await;
                finished.fetch_add(1, Ordering::SeqCst);
            });
        }
        drop(drivers);
        tracker.close();
        tokio::time::timeout(Duration::from_secs(5), tracker.wait())
            .await
            .expect("sends waiting on each other all finish on one driver");
        assert_eq!(finished.load(Ordering::SeqCst), 3);
    }

    #[tokio::test]
    async fn a_driver_outlives_its_drivers_until_its_sends_finish() {
        let tracker = TaskTracker::new();
        let drivers = Drivers::with(2, &tracker);
        let (go, finished) = run_waiting(&drivers);
        drop(drivers);
        tracker.close();
        tokio::time::sleep(Duration::from_millis(50)).await;
        assert!(!tracker.is_empty(), "a send under way keeps its driver");
        go.send(()).expect("the send waits");
        finished.await.expect("the send finished");
        tokio::time::timeout(Duration::from_secs(5), tracker.wait())
            .await
            .expect("the drivers end with their last send");
    }

    #[tokio::test]
    async fn a_send_handed_over_while_others_wait_runs_at_once() {
        let tracker = TaskTracker::new();
        let drivers = Drivers::with(1, &tracker);
        let (release, finished) = run_waiting(&drivers);
        // The driver is now polling the first send, which waits.
        tokio::time::sleep(Duration::from_millis(20)).await;
        drivers.run(async move {
            let _ = release.send(());
        });
        tokio::time::timeout(Duration::from_secs(5), finished)
            .await
            .expect("the later send ran while the first waited")
            .expect("the first send finished");
    }

    #[tokio::test]
    async fn a_send_that_panics_ends_alone() {
        let tracker = TaskTracker::new();
        let drivers = Drivers::with(1, &tracker);
        let (release, finished) = run_waiting(&drivers);
        // Under way, waiting, when its neighbour panics.
        tokio::time::sleep(Duration::from_millis(20)).await;
        drivers.run(async { panic!("a send's bug") });
        tokio::time::sleep(Duration::from_millis(20)).await;
        release.send(()).expect("the first send waits");
        finished
            .await
            .expect("a send under way at the panic finishes");
        let (after, after_done) = oneshot::channel();
        drivers.run(async move {
            let _ = after.send(());
        });
        after_done
            .await
            .expect("a send handed over after the panic runs");
    }
}
