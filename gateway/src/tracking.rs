//! The public tracking listener's side in the daemon: clicks, opens and
//! unsubscribes on the links of `links` become facts. Clicks and
//! opens are queued without blocking the redirect and written in batches by
//! one task (group commit): a crash loses at most the queue and the batch in
//! commit, i.e. the events of the last commit interval (a few milliseconds).
//! An unsubscribe is answered only once it is durable with the address's
//! suppression (one write, the rules' decision).

use std::{
    sync::Arc,
    time::{Duration, UNIX_EPOCH},
};

use clicktrack::{EventKind, LinkIndex, Overloaded, TrackingEvent, TrackingSink, is_personalised};
use domain::{Engaged, Engagement, FactDetail, MessageNo};
use store::Store;
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
    /// The store's answer, or `None` (the handler's 404) when it has none.
    fn answered<T>(answer: store::Result<Option<T>>) -> Option<T> {
        answer.unwrap_or_else(|e| {
            tracing::warn!(error = %e, "tracking: the store did not answer");
            None
        })
    }
}

impl TrackingSink for Sink {
    async fn resolve_link(
        &self,
        message: clicktrack::MessageNo,
        link: LinkIndex,
    ) -> Option<Arc<str>> {
        let msg = ours(message);
        if !self.knows_message(message).await {
            return None;
        }
        let table = match self.links.cached(msg.campaign) {
            Some(table) => table,
            None => {
                let campaign = Self::answered(self.store.campaign_by_seq(msg.campaign).await)?;
                let channel = self.channels.get(campaign.decl.channel)?;
                self.links.table(&campaign, |decl| channel.link_table(decl))
            }
        };
        let url = table.get(link)?;
        if !is_personalised(url) {
            return Some(url.clone());
        }
        // Filled again with the recipient's fields, as in the message.
        let p = Self::answered(self.store.participant(msg).await)?;
        Some(fill(url, &p).into())
    }

    async fn knows_message(&self, message: clicktrack::MessageNo) -> bool {
        let msg = ours(message);
        if self.links.known(msg) {
            return true;
        }
        match self.store.exists(msg).await {
            Ok(true) => {
                self.links.note_known(msg);
                true
            }
            Ok(false) => false,
            Err(e) => {
                tracing::warn!(error = %e, "tracking: the store did not answer");
                false
            }
        }
    }

    fn record(&self, event: TrackingEvent) -> Result<(), Overloaded> {
        self.queue.try_send(event).map_err(|_| Overloaded)
    }

    async fn unsubscribe(&self, event: TrackingEvent) -> Result<(), Overloaded> {
        self.engagements
            .record(vec![engaged(event)])
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
        let items = batch.drain(..).map(engaged).collect();
        if let Err(e) = engagements.record(items).await {
            tracing::error!(error = %e, "tracking events not recorded");
        }
    }
}

/// A tracking event as the store records it.
fn engaged(event: TrackingEvent) -> Engaged {
    let at = event
        .at
        .duration_since(UNIX_EPOCH)
        .map_or(0, |d| d.as_millis() as u64);
    let mut detail = FactDetail::default();
    let kind = match event.kind {
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
