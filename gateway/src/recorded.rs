//! How far this node's send outcomes are durable, for what must wait for
//! them: a delivery receipt can overtake the submit answer it belongs to,
//! and it matches only once the outcome carrying its SMSC id is written.
//! Outcomes are numbered as they are handed to the recorder, which writes
//! them in that order; a receipt that arrives once `handed` outcomes were
//! handed over is matched once they are all durable, not tried before and
//! found unknown.

use std::sync::{
    Arc,
    atomic::{AtomicU64, Ordering},
};

use tokio::sync::watch;

/// Shared by the recorder (which counts) and whoever waits (which reads).
#[derive(Clone)]
pub struct Recorded {
    handed: Arc<AtomicU64>,
    durable: Arc<watch::Sender<u64>>,
}

impl Default for Recorded {
    fn default() -> Self {
        Self {
            handed: Arc::default(),
            durable: Arc::new(watch::Sender::new(0)),
        }
    }
}

impl Recorded {
    /// Outcomes handed to the recorder so far.
    pub fn handed(&self) -> u64 {
        self.handed.load(Ordering::Acquire)
    }

    /// Counts one outcome handed over (before it is sent to the recorder,
    /// so that what is durable never runs ahead of what was handed).
    pub fn hand_one(&self) {
        self.handed.fetch_add(1, Ordering::AcqRel);
    }

    /// The first `written` outcomes handed over were written (or refused:
    /// what waits for them is then tried and finds them unknown).
    pub fn written(&self, written: u64) {
        self.durable.send_replace(written);
    }

    /// Follows how many outcomes are written.
    pub fn watch(&self) -> watch::Receiver<u64> {
        self.durable.subscribe()
    }
}
