//! Outcomes on their way to the store. A send hands its outcome over with
//! its unrecorded permit and ends; the recorder writes what has gathered as
//! one `Store::record` call and gives the permits back once it is durable.
//! One call and one answer for a batch instead of one per send: the
//! committer wakes one waiter, not every send. One call is under way
//! at a time, so what the sends answer during a commit goes into the next
//! one whole: fewer, larger commits (two under way made e-mail 12% slower,
//! BENCHMARKS.md, issue 19). How many of the outcomes handed over are
//! durable is published ([`Recorded`]) before their permits come back.

use std::sync::Arc;

use tokio::sync::{OwnedSemaphorePermit, mpsc};

use crate::recorded::Recorded;
use domain::Update;
use store::Store;

/// Outcomes written by one call at most.
const BATCH: usize = 1024;

/// An outcome not yet durable, with the permit that counts it.
struct Unrecorded {
    update: Update,
    permit: OwnedSemaphorePermit,
}

/// Where sends hand their outcomes; cloned into every send.
#[derive(Clone)]
pub(super) struct Recorder {
    tx: mpsc::UnboundedSender<Unrecorded>,
    recorded: Recorded,
}

impl Recorder {
    /// The recorder and the task that writes for it, which ends once every
    /// `Recorder` is dropped and all it was given is written (or refused).
    pub(super) fn start(
        store: Arc<dyn Store>,
        recorded: Recorded,
    ) -> (Self, tokio::task::JoinHandle<()>) {
        let (tx, rx) = mpsc::unbounded_channel();
        let writing = tokio::spawn(write(store, rx, recorded.clone()));
        (Self { tx, recorded }, writing)
    }

    /// Hands `update` over; `permit` is given back once it is durable.
    pub(super) fn record(&self, update: Update, permit: OwnedSemaphorePermit) {
        self.recorded.hand_one();
        // The receiver lives until every sender is gone.
        let _ = self.tx.send(Unrecorded { update, permit });
    }
}

async fn write(
    store: Arc<dyn Store>,
    mut rx: mpsc::UnboundedReceiver<Unrecorded>,
    recorded: Recorded,
) {
    let mut gathered = Vec::with_capacity(BATCH);
    // Outcomes taken from the channel so far, in the order they were handed.
    let mut taken = 0;
    while rx.recv_many(&mut gathered, BATCH).await > 0 {
        taken += gathered.len() as u64;
        let (updates, permits): (Vec<Update>, Vec<OwnedSemaphorePermit>) =
            gathered.drain(..).map(|u| (u.update, u.permit)).unzip();
        let n = updates.len();
        if let Err(e) = store.record(updates).await {
            // Not recorded: their leases expire and the messages are sent
            // again (at-least-once), never silently dropped.
            tracing::error!(error = %e, outcomes = n, "could not record outcomes");
        }
        recorded.written(taken);
        drop(permits);
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use domain::{CampaignDecl, ChannelKind, FactDetail, Outcome, Participant};
    use store::embedded::Embedded;
    use tokio::sync::Semaphore;

    #[tokio::test]
    async fn each_permit_comes_back_once_its_outcome_is_durable() {
        let dir = tempfile::tempdir().expect("tempdir");
        let store: Arc<dyn Store> = Arc::new(Embedded::open(dir.path()).expect("store"));
        let campaign = store
            .put_campaign("c", CampaignDecl::new(ChannelKind::Email, "c"))
            .await
            .expect("campaign");
        let participants = (0..300)
            .map(|n| Participant {
                customer: format!("c{n}"),
                address: format!("c{n}@example.org"),
                segment: None,
                fields: Default::default(),
            })
            .collect();
        store
            .add_participants("c", participants, 1)
            .await
            .expect("participants");
        let claims = store
            .claim(campaign.seq, 2, 300, 60_000)
            .await
            .expect("claims");
        assert_eq!(claims.len(), 300);

        let unrecorded = Arc::new(Semaphore::new(claims.len()));
        let recorded = Recorded::default();
        let durable = recorded.watch();
        let (recorder, writing) = Recorder::start(store.clone(), recorded.clone());
        for claim in claims {
            let permit = unrecorded.clone().try_acquire_owned().expect("a permit");
            let outcome = Outcome::Submitted {
                detail: FactDetail::default(),
                upstream: None,
            };
            recorder.record(
                Update {
                    msg: claim.msg,
                    at: 3,
                    outcome,
                },
                permit,
            );
        }
        drop(recorder);

        // Every permit back: every outcome must be durable by then.
        let _all = unrecorded.acquire_many(300).await.expect("permits");
        let counts = store.counts("c").await.expect("counts");
        assert_eq!(counts.by_status.get("submitted"), Some(&300), "{counts:?}");
        assert_eq!(recorded.handed(), 300);
        assert_eq!(
            *durable.borrow(),
            300,
            "every outcome handed over is durable"
        );
        tokio::time::timeout(std::time::Duration::from_secs(10), writing)
            .await
            .expect("the recorder ends once its senders are gone")
            .expect("the recorder's task");
    }
}
