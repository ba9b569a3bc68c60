//! Click tracking in the daemon: links of sent mail are rewritten to signed
//! tracking URLs (with an open pixel and RFC 8058 `List-Unsubscribe`), and
//! the public tracking listener's clicks, opens and unsubscribes become facts.
//!
//! A campaign's link table is derived from its stored declaration (the
//! template's URLs in order), so it is as durable as the campaign. Events are
//! queued without blocking the redirect and written in batches by one task
//! (group commit): a crash loses at most the queue and the batch in commit,
//! i.e. the events of the last commit interval (a few milliseconds).

use std::{
    collections::HashMap,
    sync::{Arc, Mutex},
    time::{Duration, UNIX_EPOCH},
};

use clicktrack::{
    EventKind, Keyring, LinkIndex, LinkTable, Overloaded, Rewriter, TrackingEvent, TrackingSink,
};
use serde_json::{Map, json};
use tokio::sync::mpsc;

use crate::{
    channel::mail::Rendered,
    domain::{CampaignRecord, ChannelKind, Engaged, Engagement, MessageNo},
    store::Store,
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

fn their(msg: MessageNo) -> clicktrack::MessageNo {
    clicktrack::MessageNo(msg.as_u64())
}

fn ours(msg: clicktrack::MessageNo) -> MessageNo {
    MessageNo::from_u64(msg.0)
}

/// Link tables per campaign and the rewriter that signs tracked URLs.
pub struct Links {
    rewriter: Rewriter,
    tables: Mutex<HashMap<u32, Arc<LinkTable>>>,
}

impl Links {
    pub fn new(keys: Arc<Keyring>, base_url: &str) -> Result<Self, String> {
        let rewriter =
            Rewriter::new(keys, base_url).map_err(|e| format!("tracking.base_url: {e}"))?;
        Ok(Self {
            rewriter,
            tables: Mutex::new(HashMap::new()),
        })
    }

    /// The table of campaign number `seq`, built from its declaration on first use.
    fn table_of(
        &self,
        seq: u32,
        campaign: impl FnOnce() -> Option<CampaignRecord>,
    ) -> Option<Arc<LinkTable>> {
        let cached = self
            .tables
            .lock()
            .unwrap_or_else(std::sync::PoisonError::into_inner)
            .get(&seq)
            .cloned();
        match cached {
            Some(table) => Some(table),
            None => campaign().map(|c| self.table(&c)),
        }
    }

    fn table(&self, campaign: &CampaignRecord) -> Arc<LinkTable> {
        let mut tables = self
            .tables
            .lock()
            .unwrap_or_else(std::sync::PoisonError::into_inner);
        tables
            .entry(campaign.seq)
            .or_insert_with(|| {
                Arc::new(link_table(campaign).unwrap_or_else(|e| {
                    tracing::warn!(campaign = %campaign.id, error = %e, "links left untracked");
                    LinkTable::new()
                }))
            })
            .clone()
    }

    /// Rewrites a rendered mail's links, adds the open pixel, and returns the
    /// `List-Unsubscribe` header value for it.
    pub fn track(&self, campaign: &CampaignRecord, msg: MessageNo, mail: &mut Rendered) -> String {
        let table = self.table(campaign);
        let msg = their(msg);
        mail.text = self.rewriter.rewrite_text(&mail.text, &table, msg).body;
        if let Some(html) = &mail.html {
            let tracked = self.rewriter.rewrite_html(html, &table, msg).body;
            mail.html = Some(self.rewriter.insert_open_pixel(&tracked, msg));
        }
        self.rewriter.list_unsubscribe(msg).list_unsubscribe
    }

    /// A rendered SMS text with its links rewritten to tracked ones.
    pub fn track_sms(&self, campaign: &CampaignRecord, msg: MessageNo, text: &str) -> String {
        let table = self.table(campaign);
        self.rewriter.rewrite_text(text, &table, their(msg)).body
    }

    /// `text`, rendered from the SMS template `template`, with its links as
    /// long as tracking can make them in campaign number `campaign` (any
    /// campaign when `None`): to check its length before the message has a
    /// number.
    pub fn longest_tracked_sms(&self, template: &str, text: &str, campaign: Option<u32>) -> String {
        let Ok(table) = LinkTable::from_template(Some(template), None) else {
            return text.to_owned();
        };
        let last = MessageNo {
            campaign: campaign.unwrap_or(u32::MAX),
            participant: u32::MAX,
        };
        self.rewriter.rewrite_text(text, &table, their(last)).body
    }
}

/// The links a campaign tracks, in order: those of an e-mail's text and HTML
/// parts, and those of an SMS text that asks for tracking.
fn link_table(campaign: &CampaignRecord) -> Result<LinkTable, clicktrack::Error> {
    let content = campaign.decl.content.as_ref();
    match campaign.decl.channel {
        ChannelKind::Email => match content.and_then(|c| c.email.as_ref()) {
            Some(e) => LinkTable::from_template(Some(&e.text), e.html.as_deref()),
            None => Ok(LinkTable::new()),
        },
        ChannelKind::Sms => match content.and_then(|c| c.sms.as_ref()) {
            Some(sms) if sms.track_links => LinkTable::from_template(Some(&sms.text), None),
            _ => Ok(LinkTable::new()),
        },
    }
}

/// What the tracking handlers ask and report, answered from the store's
/// memory and queued for the writer.
pub struct Sink {
    store: Arc<dyn Store>,
    links: Arc<Links>,
    queue: mpsc::Sender<TrackingEvent>,
}

impl Sink {
    /// The sink and the receiving end for [`write_events`].
    pub fn new(store: Arc<dyn Store>, links: Arc<Links>) -> (Self, mpsc::Receiver<TrackingEvent>) {
        let (queue, rx) = mpsc::channel(QUEUE);
        (
            Self {
                store,
                links,
                queue,
            },
            rx,
        )
    }
}

impl TrackingSink for Sink {
    fn resolve_link(&self, message: clicktrack::MessageNo, link: LinkIndex) -> Option<Arc<str>> {
        let msg = ours(message);
        if !self.store.exists(msg) {
            return None;
        }
        let table = self
            .links
            .table_of(msg.campaign, || self.store.campaign_by_seq(msg.campaign))?;
        table.get(link).cloned()
    }

    fn knows_message(&self, message: clicktrack::MessageNo) -> bool {
        self.store.exists(ours(message))
    }

    fn record(&self, event: TrackingEvent) -> Result<(), Overloaded> {
        self.queue.try_send(event).map_err(|_| Overloaded)
    }
}

/// Writes queued events in batches (those of `LINGER` at a time) until
/// every sender is gone; an unsubscribe also suppresses the address on the
/// campaign's channel.
pub async fn write_events(mut rx: mpsc::Receiver<TrackingEvent>, store: Arc<dyn Store>) {
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
        let mut items = Vec::with_capacity(batch.len());
        for event in batch.drain(..) {
            let msg = ours(event.message);
            let at = event
                .at
                .duration_since(UNIX_EPOCH)
                .map_or(0, |d| d.as_millis() as u64);
            let mut detail = Map::new();
            let kind = match event.kind {
                EventKind::Clicked { url, .. } => {
                    detail.insert("url".into(), json!(&*url));
                    Engagement::Clicked
                }
                EventKind::Opened => Engagement::Opened,
                EventKind::Unsubscribed => {
                    if let Some(info) = store.message(msg)
                        && let Err(e) = store
                            .suppress(info.campaign.decl.channel, &info.address, "unsubscribed")
                            .await
                    {
                        tracing::error!(error = %e, "could not record an unsubscribe");
                    }
                    Engagement::Unsubscribed
                }
            };
            items.push(Engaged {
                msg,
                at,
                kind,
                detail,
            });
        }
        if let Err(e) = store.engage(items).await {
            tracing::error!(error = %e, "tracking events not recorded");
        }
    }
}
