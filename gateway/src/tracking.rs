//! Click tracking in the daemon: links of sent mail (and of SMS texts that
//! ask for it) are rewritten to signed tracking URLs (mail also gets an open
//! pixel and RFC 8058 `List-Unsubscribe`), and the public tracking
//! listener's clicks, opens and unsubscribes become facts.
//!
//! A campaign's link table is derived from its stored declaration (the
//! template's URLs in order), so it is as durable as the campaign. Clicks and
//! opens are queued without blocking the redirect and written in batches by
//! one task (group commit): a crash loses at most the queue and the batch in
//! commit, i.e. the events of the last commit interval (a few milliseconds).
//! An unsubscribe is answered only once it is durable with the address's
//! suppression (one write, the rules' decision).

use std::{
    borrow::Cow,
    collections::HashMap,
    sync::{Arc, Mutex},
    time::{Duration, UNIX_EPOCH},
};

use clicktrack::{
    EventKind, Keyring, LinkIndex, LinkTable, Overloaded, Rewriter, TrackingEvent, TrackingSink,
    is_personalised,
};
use domain::{
    CampaignRecord, ChannelKind, Engaged, Engagement, FactDetail, MessageNo, Participant,
    SmsContent,
};
use tokio::sync::mpsc;

use crate::{
    channel::mail::Rendered,
    template::{Escape, Template},
};
use store::Store;

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

    /// The table of campaign number `seq`, if it was built already.
    fn cached(&self, seq: u32) -> Option<Arc<LinkTable>> {
        self.tables
            .lock()
            .unwrap_or_else(std::sync::PoisonError::into_inner)
            .get(&seq)
            .cloned()
    }

    /// The table of `campaign`, built from its declaration on first use.
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

    /// Rewrites the links of a mail rendered for `p`, adds the open pixel,
    /// and returns the `List-Unsubscribe` header value for it.
    pub fn track(
        &self,
        campaign: &CampaignRecord,
        msg: MessageNo,
        p: &Participant,
        mail: &mut Rendered,
    ) -> String {
        let table = self.table(campaign);
        let table = for_participant(&table, p);
        let msg = their(msg);
        mail.text = self.rewriter.rewrite_text(&mail.text, &table, msg).body;
        if let Some(html) = &mail.html {
            let tracked = self.rewriter.rewrite_html(html, &table, msg).body;
            mail.html = Some(self.rewriter.insert_open_pixel(&tracked, msg));
        }
        self.rewriter.list_unsubscribe(msg).list_unsubscribe
    }

    /// An SMS text rendered for `p` with its links finished: rewritten to
    /// tracked ones when the campaign asks for it, `{{untracked:URL}}`
    /// markers removed in any case.
    pub fn track_sms(
        &self,
        campaign: &CampaignRecord,
        msg: MessageNo,
        p: &Participant,
        text: &str,
    ) -> String {
        self.finish_sms(&self.table(campaign), msg, p, text)
    }

    /// `text`, rendered for `p` from SMS content whose links are `table`
    /// ([`sms_table`]), with its links finished as [`Links::track_sms`]
    /// would in campaign number `campaign`, tracked ones as long as tracking
    /// can make them: to check its length before the message has a number.
    pub fn longest_sms(
        &self,
        table: &LinkTable,
        p: &Participant,
        text: &str,
        campaign: u32,
    ) -> String {
        let last = MessageNo {
            campaign,
            participant: u32::MAX,
        };
        self.finish_sms(table, last, p, text)
    }

    /// `text` with the links of `table`, filled for `p`, tracked for `msg`.
    fn finish_sms(&self, table: &LinkTable, msg: MessageNo, p: &Participant, text: &str) -> String {
        let table = for_participant(table, p);
        self.rewriter.rewrite_text(text, &table, their(msg)).body
    }
}

/// `table` with its personalised URLs filled with `p`'s fields.
fn for_participant<'t>(table: &'t LinkTable, p: &Participant) -> Cow<'t, LinkTable> {
    // Filling keeps the number of URLs, which the table already holds.
    table
        .for_message(|url| fill(url, p))
        .unwrap_or(Cow::Borrowed(table))
}

/// A personalised URL filled with `p`'s fields, as its message's body has it.
fn fill(url: &str, p: &Participant) -> String {
    Template::parse(url).map_or_else(|_| url.to_owned(), |t| t.render(p, Escape::None))
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
        ChannelKind::Sms => content
            .and_then(|c| c.sms.as_ref())
            .map_or_else(|| Ok(LinkTable::new()), sms_table),
    }
}

/// The links an SMS text tracks: none unless it asks for tracking.
pub fn sms_table(content: &SmsContent) -> Result<LinkTable, clicktrack::Error> {
    if content.track_links {
        LinkTable::from_template(Some(&content.text), None)
    } else {
        Ok(LinkTable::new())
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
                self.links.table(&campaign)
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
        self.store.exists(ours(message)).await.unwrap_or_else(|e| {
            tracing::warn!(error = %e, "tracking: the store did not answer");
            false
        })
    }

    fn record(&self, event: TrackingEvent) -> Result<(), Overloaded> {
        self.queue.try_send(event).map_err(|_| Overloaded)
    }

    async fn unsubscribe(&self, event: TrackingEvent) -> Result<(), Overloaded> {
        self.store.engage(vec![engaged(event)]).await.map_err(|e| {
            tracing::error!(error = %e, "unsubscribe not recorded");
            Overloaded
        })
    }
}

/// Writes queued events in batches (those of `LINGER` at a time) until
/// every sender is gone.
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
        let items = batch.drain(..).map(engaged).collect();
        if let Err(e) = store.engage(items).await {
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

#[cfg(test)]
mod tests {
    use domain::FieldValue;
    use serde_json::json;

    use super::*;

    fn links() -> Links {
        let keys =
            Keyring::from_spec("1:AAECAwQFBgcICQoLDA0ODxAREhMUFRYXGBkaGxwdHh8=").expect("key");
        Links::new(Arc::new(keys), "https://t.example").expect("links")
    }

    fn ann() -> Participant {
        Participant {
            customer: "ann".into(),
            address: "+4915100000001".into(),
            segment: None,
            fields: [("code".into(), FieldValue::Text("A7".into()))].into(),
        }
    }

    fn sms_campaign(seq: u32, text: &str, track_links: bool) -> (CampaignRecord, SmsContent) {
        let content = SmsContent {
            from: "Sluice".into(),
            text: text.into(),
            track_links,
        };
        let decl = serde_json::from_value(json!({"channel": "sms", "name": "s",
            "content": {"sms": content}}))
        .expect("declaration");
        let record = CampaignRecord {
            id: "s".into(),
            seq,
            state: domain::CampaignState::Running,
            decl,
        };
        (record, content)
    }

    #[test]
    fn an_sms_checked_at_its_longest_is_never_shorter_than_one_sent() {
        let links = links();
        let text = "Go https://a.example/x or https://b.example/y?z=1 now, {{customer}}";
        for seq in [0, 1, 300, u32::MAX] {
            let (campaign, content) = sms_campaign(seq, text, true);
            let longest =
                links.longest_sms(&sms_table(&content).expect("table"), &ann(), text, seq);
            for participant in [0, 1, 200, 70_000, u32::MAX] {
                let msg = MessageNo {
                    campaign: seq,
                    participant,
                };
                let sent = links.track_sms(&campaign, msg, &ann(), text);
                assert!(!sent.contains("a.example"), "tracked: {sent}");
                assert!(
                    sent.ends_with(", {{customer}}"),
                    "only links change: {sent}"
                );
                assert!(sent.len() <= longest.len(), "{sent} vs {longest}");
            }
        }
    }

    #[test]
    fn a_personalised_link_is_tracked_with_the_recipients_fields() {
        let links = links();
        let template = "Your code: https://a.example/r/{{code}}?c={{customer}}";
        let (campaign, content) = sms_campaign(4, template, true);
        let text = "Your code: https://a.example/r/A7?c=ann";
        let msg = MessageNo {
            campaign: 4,
            participant: 9,
        };
        let sent = links.track_sms(&campaign, msg, &ann(), text);
        assert!(
            sent.starts_with("Your code: https://t.example/c/"),
            "{sent}"
        );
        let longest = links.longest_sms(&sms_table(&content).expect("table"), &ann(), text, 4);
        assert!(sent.len() <= longest.len(), "{sent} vs {longest}");
        let table = links.table(&campaign);
        assert_eq!(
            &**table.get(LinkIndex(0)).expect("link"),
            "https://a.example/r/{{code}}?c={{customer}}"
        );
        assert_eq!(
            fill(table.get(LinkIndex(0)).expect("link"), &ann()),
            "https://a.example/r/A7?c=ann"
        );
    }

    #[test]
    fn an_untracked_sms_keeps_its_links_and_loses_the_markers() {
        let links = links();
        let text = "See https://a.example/x and {{untracked:https://b.example/y}}";
        let (campaign, content) = sms_campaign(2, text, false);
        let want = "See https://a.example/x and https://b.example/y";
        let msg = MessageNo {
            campaign: 2,
            participant: 7,
        };
        assert_eq!(links.track_sms(&campaign, msg, &ann(), text), want);
        assert_eq!(
            links.longest_sms(&sms_table(&content).expect("table"), &ann(), text, 2),
            want
        );
    }
}
