//! The public tracking listener's side in the daemon: clicks, opens and
//! unsubscribes on the links of `links` become facts. Clicks and
//! opens are queued without blocking the redirect and written in batches by
//! one task (group commit): a crash loses at most the queue and the batch in
//! commit, i.e. the events of the last commit interval (a few milliseconds).
//! A store that refuses writes for a while (a full disk, a lost Redis) is
//! waited out with the batch kept, never dropped; the queue fills meanwhile,
//! and once it is full the listener answers 503.
//! An unsubscribe is answered only once it is durable with the address's
//! suppression (one write, the rules' decision).

use std::{
    sync::Arc,
    time::{Duration, UNIX_EPOCH},
};

use clicktrack::{EventKind, LinkIndex, Overloaded, TrackingEvent, TrackingSink, is_personalised};
use domain::{Engaged, Engagement, FactDetail, MessageNo};
use store::{Store, StoreError};
use tokio::sync::mpsc;

use crate::{
    channel::Registry,
    engagements::EngagementLog,
    links::{Links, fill},
};

/// Events waiting for the writer; beyond this the listener answers 503.
pub const QUEUE: usize = 65_536;
/// Events written in one commit at most.
const BATCH: usize = 4096;
/// How long the writer lets events gather after the first of a batch before
/// committing them: one commit (and one fsync) for all the clicks of the
/// interval instead of one for each handful. It bounds what a crash can lose
/// of acknowledged events together with the commit itself.
const LINGER: Duration = Duration::from_millis(5);
/// How soon a campaign deleted through another node stops redirecting
/// here (links of one deleted on this node stop at once).
pub const FORGET_DELETED_EVERY: Duration = Duration::from_secs(5);
/// The first and the longest wait for a store that refuses writes.
const REFUSED_FIRST: Duration = Duration::from_millis(50);
const REFUSED_LONGEST: Duration = Duration::from_secs(2);

fn ours(msg: clicktrack::MessageNo) -> MessageNo {
    MessageNo::from_u64(msg.0)
}

/// What the tracking handlers ask and report, answered from the store's
/// memory and queued for the writer.
pub struct Sink {
    store: Arc<dyn Store>,
    links: Arc<Links>,
    /// Each campaign's channel says which of its links are tracked.
    channels: Registry,
    queue: mpsc::Sender<TrackingEvent>,
    engagements: EngagementLog,
}

impl Sink {
    /// The sink and the receiving end for [`write_events`].
    pub fn new(
        store: Arc<dyn Store>,
        engagements: EngagementLog,
        links: Arc<Links>,
        channels: Registry,
    ) -> (Self, mpsc::Receiver<TrackingEvent>) {
        let (queue, rx) = mpsc::channel(QUEUE);
        (
            Self {
                engagements,
                store,
                links,
                channels,
                queue,
            },
            rx,
        )
    }
}

impl Sink {
    /// The store's answer; `Err` (the handler's 503) when it gave none.
    fn answered<T>(answer: store::Result<T>) -> Result<T, Overloaded> {
        answer.map_err(|e| {
            tracing::warn!(error = %e, "tracking: the store did not answer");
            Overloaded
        })
    }
}

impl TrackingSink for Sink {
    async fn resolve_link(
        &self,
        message: clicktrack::MessageNo,
        link: LinkIndex,
    ) -> Result<Option<Arc<str>>, Overloaded> {
        let msg = ours(message);
        if !self.knows_message(message).await? {
            return Ok(None);
        }
        let table = match self.links.cached(msg.campaign) {
            Some(table) => table,
            None => {
                let Some(campaign) =
                    Self::answered(self.store.campaign_by_seq(msg.campaign).await)?
                else {
                    return Ok(None);
                };
                let Some(channel) = self.channels.get(campaign.decl.channel) else {
                    return Ok(None);
                };
                self.links.table(&campaign, |decl| channel.link_table(decl))
            }
        };
        let Some(url) = table.get(link) else {
            return Ok(None);
        };
        if !is_personalised(url) {
            return Ok(Some(url.clone()));
        }
        // Filled again with the recipient's fields, as in the message.
        let p = Self::answered(self.store.participant(msg).await)?;
        Ok(p.map(|p| fill(url, &p).into()))
    }

    async fn knows_message(&self, message: clicktrack::MessageNo) -> Result<bool, Overloaded> {
        let msg = ours(message);
        if self.links.known(msg) {
            return Ok(true);
        }
        let known = Self::answered(self.store.exists(msg).await)?;
        if known {
            self.links.note_known(msg);
        }
        Ok(known)
    }

    fn record(&self, event: TrackingEvent) -> Result<(), Overloaded> {
        self.queue.try_send(event).map_err(|_| Overloaded)
    }

    async fn unsubscribe(&self, event: TrackingEvent) -> Result<(), Overloaded> {
        self.engagements
            .record(vec![engaged(&event)])
            .await
            .map_err(|e| {
                tracing::error!(error = %e, "unsubscribe not recorded");
                Overloaded
            })
    }
}

/// Writes queued events in batches (those of `LINGER` at a time) until
/// every sender is gone.
pub async fn write_events(mut rx: mpsc::Receiver<TrackingEvent>, engagements: EngagementLog) {
    let mut batch = Vec::with_capacity(BATCH);
    while rx.recv_many(&mut batch, BATCH).await > 0 {
        if batch.len() < BATCH {
            // Sleep rather than wait on the queue: waiting would wake this
            // task for every event queued meanwhile.
            tokio::time::sleep(LINGER).await;
            while batch.len() < BATCH
                && let Ok(event) = rx.try_recv()
            {
                batch.push(event);
            }
        }
        record_when_taken(&engagements, &batch).await;
        batch.clear();
    }
}

/// Records `batch`, waiting out a store that refuses writes for now
/// rather than dropping events already answered. A batch the store cannot
/// record for good (a corrupt record of one message) is split in halves,
/// and those again, so that only the events that cannot be recorded are
/// lost, at about twice the log of the batch's size in writes for each.
/// (On Redis with shards, the events of a shard whose part of a failed
/// write was written may then be recorded twice: a click too many rather
/// than thousands lost.)
async fn record_when_taken(engagements: &EngagementLog, batch: &[TrackingEvent]) {
    let mut parts = vec![batch];
    while let Some(part) = parts.pop() {
        let Err(e) = record_once_taken(engagements, part).await else {
            continue;
        };
        if let [event] = part {
            tracing::error!(error = %e, message = event.message.0, "tracking event not recorded");
            continue;
        }
        tracing::warn!(error = %e, events = part.len(), "tracking events recorded in halves");
        let (first, second) = part.split_at(part.len() / 2);
        parts.push(second);
        parts.push(first);
    }
}

/// Records `batch` once the store takes writes; the error it cannot
/// record it for.
async fn record_once_taken(
    engagements: &EngagementLog,
    batch: &[TrackingEvent],
) -> Result<(), StoreError> {
    let mut wait = REFUSED_FIRST;
    loop {
        match engagements
            .record(batch.iter().map(engaged).collect())
            .await
        {
            Err(e @ (StoreError::Unavailable(_) | StoreError::DiskFull { .. })) => {
                if wait == REFUSED_FIRST {
                    tracing::warn!(error = %e, events = batch.len(), "tracking events wait for the store to take writes");
                }
                tokio::time::sleep(wait).await;
                wait = (wait * 2).min(REFUSED_LONGEST);
            }
            recorded => return recorded,
        }
    }
}

/// A tracking event as the store records it.
fn engaged(event: &TrackingEvent) -> Engaged {
    let at = event
        .at
        .duration_since(UNIX_EPOCH)
        .map_or(0, |d| d.as_millis() as u64);
    let mut detail = FactDetail::default();
    let kind = match &event.kind {
        EventKind::Clicked { url, .. } => {
            detail.url = Some(url.to_string());
            Engagement::Clicked
        }
        EventKind::Opened => Engagement::Opened,
        EventKind::Unsubscribed => Engagement::Unsubscribed,
    };
    Engaged {
        msg: ours(event.message),
        at,
        kind,
        detail,
    }
}

#[cfg(test)]
mod tests {
    use std::sync::atomic::{AtomicU64, Ordering};

    use store::embedded::{Embedded, Options};

    use super::*;
    use crate::{metrics::Metrics, test_support::ann_in_a_campaign};

    /// Clicks answered while the disk is full wait for it, and are
    /// recorded once there is room: none is dropped.
    #[tokio::test(flavor = "multi_thread", worker_threads = 2)]
    async fn clicks_wait_out_a_full_disk_and_are_recorded() {
        let dir = tempfile::tempdir().expect("tempdir");
        let free = Arc::new(AtomicU64::new(1 << 30));
        let options = Options::disk_of(free.clone());
        let store: Arc<dyn Store> =
            Arc::new(Embedded::open_with(dir.path(), options).expect("open"));
        let msg = ann_in_a_campaign(&store, "e").await;

        free.store(1_000, Ordering::SeqCst); // the disk fills up
        let (queue, events) = mpsc::channel(QUEUE);
        let log = EngagementLog::new(store.clone(), Arc::new(Metrics::default()));
        let writer = tokio::spawn(write_events(events, log));
        let click = TrackingEvent {
            at: std::time::SystemTime::now(),
            message: clicktrack::MessageNo(msg.as_u64()),
            kind: EventKind::Clicked {
                link: LinkIndex(0),
                url: "https://example.org/".into(),
            },
        };
        queue.send(click).await.expect("queued");
        tokio::time::sleep(Duration::from_millis(300)).await;
        free.store(1 << 30, Ordering::SeqCst); // room again
        drop(queue);
        tokio::time::timeout(Duration::from_secs(10), writer)
            .await
            .expect("the writer ends once the click is written")
            .expect("writer");
        let clicks = store.audience("e", "clicked").await.expect("audience");
        assert_eq!(
            clicks.len(),
            1,
            "the click answered on a full disk: {clicks:?}"
        );
    }
}
