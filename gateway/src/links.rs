//! Tracked links of sent messages: a campaign's link table (the URLs of its
//! template, in order, derived from its stored declaration and so as
//! durable as the campaign) and the rewriter that signs tracked URLs into
//! each message (mail also gets an open pixel and RFC 8058
//! `List-Unsubscribe`).

use std::{
    borrow::Cow,
    collections::{BTreeSet, HashMap},
    sync::{Arc, Mutex},
    time::Duration,
};

use clicktrack::{Keyring, LinkTable, Rewriter};
use domain::{CampaignDecl, CampaignRecord, MessageNo, Participant, SmsContent};
use store::Store;
use tokio_util::sync::CancellationToken;

use crate::template::{Escape, Template};

/// A lock held only for a map lookup: a panic under it is a bug, so a
/// poisoned lock is used as it is.
fn lock<T>(mutex: &Mutex<T>) -> std::sync::MutexGuard<'_, T> {
    mutex
        .lock()
        .unwrap_or_else(std::sync::PoisonError::into_inner)
}

pub fn their(msg: MessageNo) -> clicktrack::MessageNo {
    clicktrack::MessageNo(msg.as_u64())
}

/// Link tables per campaign and the rewriter that signs tracked URLs.
pub struct Links {
    rewriter: Rewriter,
    tables: Mutex<HashMap<u32, Arc<LinkTable>>>,
    /// Per campaign number, how many of its first messages are known to
    /// exist, so that a click needs no round trip to the store (the
    /// redirect is the hot path). Messages go only with their campaign
    /// ([`Links::forget`]).
    known: Mutex<HashMap<u32, u32>>,
}

impl Links {
    /// Links signed with `keys` under `base_url` (`tracking.base_url`).
    pub fn new(keys: Arc<Keyring>, base_url: &str) -> Result<Self, clicktrack::Error> {
        let rewriter = Rewriter::new(keys, base_url)?;
        Ok(Self {
            rewriter,
            tables: Mutex::new(HashMap::new()),
            known: Mutex::new(HashMap::new()),
        })
    }

    /// Whether `msg` is known to exist.
    pub fn known(&self, msg: MessageNo) -> bool {
        msg.participant < lock(&self.known).get(&msg.campaign).copied().unwrap_or(0)
    }

    /// Notes that `msg` (and so every message before it) exists.
    pub fn note_known(&self, msg: MessageNo) {
        let mut known = lock(&self.known);
        let below = known.entry(msg.campaign).or_insert(0);
        *below = (*below).max(msg.participant.saturating_add(1));
    }

    /// Forgets campaign number `seq` (deleted): its links lead nowhere now.
    pub fn forget(&self, seq: u32) {
        lock(&self.tables).remove(&seq);
        lock(&self.known).remove(&seq);
    }

    /// Forgets, every `every` until `stop`, the campaigns deleted since
    /// they were cached: through another node on a shared store, where the
    /// delete's own [`Links::forget`] did not run. A store that does not
    /// answer is asked again next time.
    pub async fn forget_deleted(
        self: Arc<Self>,
        store: Arc<dyn Store>,
        every: Duration,
        stop: CancellationToken,
    ) {
        let mut tick = tokio::time::interval(every);
        tick.set_missed_tick_behavior(tokio::time::MissedTickBehavior::Delay);
        loop {
            tokio::select! {
                () = stop.cancelled() => return,
                _ = tick.tick() => {}
            }
            let cached: BTreeSet<u32> = (lock(&self.tables).keys())
                .chain(lock(&self.known).keys())
                .copied()
                .collect();
            for seq in cached {
                if let Ok(None) = store.campaign_by_seq(seq).await {
                    self.forget(seq);
                }
            }
        }
    }

    /// The table of campaign number `seq`, if it was built already.
    pub fn cached(&self, seq: u32) -> Option<Arc<LinkTable>> {
        lock(&self.tables).get(&seq).cloned()
    }

    /// The table of `campaign`, built by `build` from its declaration (its
    /// channel's `link_table`) on first use.
    pub fn table(
        &self,
        campaign: &CampaignRecord,
        build: impl FnOnce(&CampaignDecl) -> Result<LinkTable, clicktrack::Error>,
    ) -> Arc<LinkTable> {
        let mut tables = lock(&self.tables);
        tables
            .entry(campaign.seq)
            .or_insert_with(|| {
                Arc::new(build(&campaign.decl).unwrap_or_else(|e| {
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
        table: &LinkTable,
        msg: MessageNo,
        p: &Participant,
        text: &mut String,
        html: &mut Option<String>,
    ) -> String {
        let msg = their(msg);
        let (text_table, found) = findable_in_text(table, p, text);
        *text = self.rewriter.rewrite_text(&found, &text_table, msg).body;
        if let Some(body) = html {
            let table = for_participant(table, p);
            let tracked = self.rewriter.rewrite_html(body, &table, msg).body;
            *body = self.rewriter.insert_open_pixel(&tracked, msg);
        }
        self.rewriter.list_unsubscribe(msg).list_unsubscribe
    }

    /// An SMS text rendered for `p` with its links finished: those of
    /// `table` (none unless the campaign asks for tracking) rewritten to
    /// tracked ones, `{{untracked:URL}}` markers removed in any case.
    pub fn track_sms(
        &self,
        table: &LinkTable,
        msg: MessageNo,
        p: &Participant,
        text: &str,
    ) -> String {
        self.finish_sms(table, msg, p, text)
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

    /// `text` (or, with `html`, an HTML body) with no link tracked and its
    /// `{{untracked:URL}}` markers removed: what a preview shows, since it
    /// has no message to sign links for.
    pub fn untracked(&self, text: &str, html: bool) -> String {
        let (none, msg) = (LinkTable::new(), clicktrack::MessageNo(0));
        match html {
            true => self.rewriter.rewrite_html(text, &none, msg).body,
            false => self.rewriter.rewrite_text(text, &none, msg).body,
        }
    }

    /// `text` with the links of `table`, filled for `p`, tracked for `msg`.
    fn finish_sms(&self, table: &LinkTable, msg: MessageNo, p: &Participant, text: &str) -> String {
        let (table, text) = findable_in_text(table, p, text);
        self.rewriter.rewrite_text(&text, &table, their(msg)).body
    }
}

/// `table` with its personalised URLs filled with `p`'s fields as the
/// rendered body has them, to find them there and replace them by tracked
/// links (which is all a recipient sees of them).
fn for_participant<'t>(table: &'t LinkTable, p: &Participant) -> Cow<'t, LinkTable> {
    // Filling keeps the number of URLs, which the table already holds.
    table
        .for_message(|url| rendered(url, p, Escape::None))
        .unwrap_or(Cow::Borrowed(table))
}

/// A URL template (or part of one) filled with `p`'s fields, escaped as
/// `escape` says; one that does not parse as it is.
fn rendered(url: &str, p: &Participant, escape: Escape) -> String {
    Template::parse(url).map_or_else(|_| url.to_owned(), |t| t.render(p, escape))
}

/// `table` filled for `p` as [`fill`] writes its URLs, and `text`
/// (rendered for `p` from the template the table was made of) with its
/// personalised URLs written the same way. In plain text a URL ends at the
/// first character a URL cannot hold: a field bringing a space or a
/// non-ASCII letter would cut it short there, and the link would be left
/// untracked (and broken); percent-encoded, it is found whole.
fn findable_in_text<'a>(
    table: &'a LinkTable,
    p: &Participant,
    text: &'a str,
) -> (Cow<'a, LinkTable>, Cow<'a, str>) {
    let mut rewritten = Vec::new();
    let filled = table
        .for_message(|url| {
            let as_rendered = rendered(url, p, Escape::None);
            let as_filled = fill(url, p);
            if as_rendered != as_filled {
                rewritten.push((as_rendered, as_filled.clone()));
            }
            as_filled
        })
        .unwrap_or(Cow::Borrowed(table));
    let mut text = Cow::Borrowed(text);
    for (as_rendered, as_filled) in rewritten {
        if text.contains(&as_rendered) {
            text = Cow::Owned(text.replace(&as_rendered, &as_filled));
        }
    }
    (filled, text)
}

/// Where a click on a personalised link goes: the URL filled with `p`'s
/// fields, each value percent-encoded so that it stays inside the path
/// segment, query or fragment it is written in. The scheme and host never
/// come from a field: one written there (refused at declaration) is left
/// out.
pub fn fill(url: &str, p: &Participant) -> String {
    let (head, tail) = url.split_at(authority_end(url));
    let nobody = Participant {
        customer: String::new(),
        address: String::new(),
        segment: None,
        fields: Default::default(),
    };
    rendered(head, &nobody, Escape::Url) + &rendered(tail, p, Escape::Url)
}

/// Where a URL template's scheme and host end: at the first `/`, `?` or
/// `#` after `://` (the whole text when there is none).
fn authority_end(url: &str) -> usize {
    let Some(scheme_end) = url.find("://").map(|i| i + 3) else {
        return url.len();
    };
    url[scheme_end..]
        .find(['/', '?', '#'])
        .map_or(url.len(), |i| scheme_end + i)
}

/// Why a tracked link template cannot be sent: a field in its scheme or
/// host would let a participant's value choose where the click goes.
pub fn link_problem(url: &str) -> Option<String> {
    url[..authority_end(url)].contains("{{").then(|| {
        format!(
            "link `{url}`: its scheme and host cannot come from a field; write them out and put fields after the first `/`"
        )
    })
}

/// The links an SMS text tracks: none unless it asks for tracking.
pub fn sms_table(content: &SmsContent) -> Result<LinkTable, clicktrack::Error> {
    if content.track_links {
        LinkTable::from_template(Some(&content.text), None)
    } else {
        Ok(LinkTable::new())
    }
}

/// Links under `https://t.example` signed with a fixed test key.
#[cfg(test)]
pub(crate) fn test_links() -> Links {
    let keys = Keyring::from_spec("1:AAECAwQFBgcICQoLDA0ODxAREhMUFRYXGBkaGxwdHh8=").expect("key");
    Links::new(Arc::new(keys), "https://t.example").expect("links")
}

#[cfg(test)]
mod tests {
    use clicktrack::LinkIndex;
    use domain::FieldValue;
    use serde_json::json;

    use super::*;

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
        let links = test_links();
        let text = "Go https://a.example/x or https://b.example/y?z=1 now, {{customer}}";
        for seq in [0, 1, 300, u32::MAX] {
            let (_, content) = sms_campaign(seq, text, true);
            let longest =
                links.longest_sms(&sms_table(&content).expect("table"), &ann(), text, seq);
            for participant in [0, 1, 200, 70_000, u32::MAX] {
                let msg = MessageNo {
                    campaign: seq,
                    participant,
                };
                let sent = links.track_sms(&sms_table(&content).expect("table"), msg, &ann(), text);
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
        let links = test_links();
        let template = "Your code: https://a.example/r/{{code}}?c={{customer}}";
        let (campaign, content) = sms_campaign(4, template, true);
        let text = "Your code: https://a.example/r/A7?c=ann";
        let msg = MessageNo {
            campaign: 4,
            participant: 9,
        };
        let sent = links.track_sms(&sms_table(&content).expect("table"), msg, &ann(), text);
        assert!(
            sent.starts_with("Your code: https://t.example/c/"),
            "{sent}"
        );
        let longest = links.longest_sms(&sms_table(&content).expect("table"), &ann(), text, 4);
        assert!(sent.len() <= longest.len(), "{sent} vs {longest}");
        let table = links.table(&campaign, |decl| sms_table(decl.sms().expect("sms")));
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
    fn a_personalised_link_whose_field_brings_a_space_or_a_non_ascii_letter_is_tracked() {
        let links = test_links();
        let zoe = Participant {
            fields: [("code".into(), FieldValue::Text("Zoë M".into()))].into(),
            ..ann()
        };
        let template = "Hi, see https://a.example/r/{{code}}. Bye";
        let (_, content) = sms_campaign(4, template, true);
        let table = sms_table(&content).expect("table");
        let text = "Hi, see https://a.example/r/Zoë M. Bye";
        let msg = MessageNo {
            campaign: 4,
            participant: 9,
        };
        let sent = links.track_sms(&table, msg, &zoe, text);
        assert!(sent.starts_with("Hi, see https://t.example/c/"), "{sent}");
        assert!(
            sent.ends_with(". Bye") && !sent.contains("a.example"),
            "{sent}"
        );
        let (mut mail, mut html) = (text.to_owned(), None);
        links.track(&table, msg, &zoe, &mut mail, &mut html);
        assert_eq!(mail, sent, "a mail's text part the same");
    }

    /// A campaign deleted through another node's API (here: the store
    /// directly) stops redirecting on this node too.
    #[tokio::test]
    async fn links_of_a_campaign_deleted_elsewhere_are_forgotten() {
        let dir = tempfile::tempdir().expect("tempdir");
        let store: Arc<dyn Store> =
            Arc::new(store::embedded::Embedded::open(dir.path()).expect("open"));
        let (campaign, content) = sms_campaign(0, "See https://a.example/x", true);
        let links = Arc::new(test_links());
        let mut seqs = Vec::new();
        for id in ["kept", "gone"] {
            let record = store.put_campaign(id, campaign.decl.clone()).await;
            let record = record.expect("declare");
            links.table(&record, |_| sms_table(&content));
            links.note_known(MessageNo {
                campaign: record.seq,
                participant: 0,
            });
            seqs.push(record.seq);
        }
        store
            .set_state("gone", domain::CampaignState::Cancelled)
            .await
            .expect("cancel");
        store.delete_campaign("gone").await.expect("delete");
        let stop = CancellationToken::new();
        let sweep = tokio::spawn(links.clone().forget_deleted(
            store.clone(),
            Duration::from_millis(10),
            stop.clone(),
        ));
        let message = |seq| MessageNo {
            campaign: seq,
            participant: 0,
        };
        for _ in 0..500 {
            if !links.known(message(seqs[1])) {
                break;
            }
            tokio::time::sleep(Duration::from_millis(10)).await;
        }
        stop.cancel();
        sweep.await.expect("sweep ends");
        assert!(!links.known(message(seqs[1])) && links.cached(seqs[1]).is_none());
        assert!(links.known(message(seqs[0])) && links.cached(seqs[0]).is_some());
    }

    #[test]
    fn an_untracked_sms_keeps_its_links_and_loses_the_markers() {
        let links = test_links();
        let text = "See https://a.example/x and {{untracked:https://b.example/y}}";
        let (_, content) = sms_campaign(2, text, false);
        let want = "See https://a.example/x and https://b.example/y";
        let msg = MessageNo {
            campaign: 2,
            participant: 7,
        };
        assert_eq!(
            links.track_sms(&sms_table(&content).expect("table"), msg, &ann(), text),
            want
        );
        assert_eq!(
            links.longest_sms(&sms_table(&content).expect("table"), &ann(), text, 2),
            want
        );
    }

    #[test]
    fn a_field_value_cannot_move_a_redirect_to_another_host() {
        let evil = |value: &str| Participant {
            fields: [("q".into(), FieldValue::Text(value.into()))].into(),
            ..ann()
        };
        // The example: a field right after the host.
        assert_eq!(
            fill("https://shop.example{{q}}", &evil("@evil.example/")),
            "https://shop.example"
        );
        assert_eq!(
            fill("{{q}}://x.example/", &evil("javascript")),
            "://x.example/"
        );
        // In the path, the query and the fragment a value stays one value.
        assert_eq!(
            fill(
                "https://shop.example/p/{{q}}?q={{q}}#{{q}}",
                &evil("a b/../@evil.example?x=1&y#z")
            ),
            "https://shop.example/p/a%20b%2F..%2F%40evil.example%3Fx%3D1%26y%23z\
             ?q=a%20b%2F..%2F%40evil.example%3Fx%3D1%26y%23z\
             #a%20b%2F..%2F%40evil.example%3Fx%3D1%26y%23z"
        );
        assert_eq!(
            fill("https://a.example/r/{{code}}?c={{customer}}", &ann()),
            "https://a.example/r/A7?c=ann",
            "plain values are as they were"
        );
        assert_eq!(
            fill("https://a.example/é/{{q}}", &evil("ü")),
            "https://a.example/é/%C3%BC"
        );
    }

    #[test]
    fn a_link_whose_host_names_a_field_is_refused() {
        for bad in [
            "https://{{host}}/x",
            "https://shop.example{{q}}",
            "{{scheme}}://a.example/",
        ] {
            assert!(link_problem(bad).is_some(), "{bad}");
        }
        for good in [
            "https://a.example/{{q}}",
            "https://a.example?q={{q}}",
            "https://a.example#{{q}}",
        ] {
            assert_eq!(link_problem(good), None, "{good}");
        }
    }

    proptest::proptest! {
        /// Whatever a field holds, a filled link goes to the template's
        /// own scheme and host, and holds no space or control character.
        #[test]
        fn no_field_value_changes_where_a_link_goes(value in "\\PC{0,40}", raw in proptest::collection::vec(proptest::prelude::any::<char>(), 0..20)) {
            for v in [value, raw.into_iter().collect::<String>()] {
                let p = Participant {
                    fields: [("q".into(), FieldValue::Text(v.clone()))].into(),
                    ..ann()
                };
                for template in [
                    "https://shop.example{{q}}",
                    "https://shop.example/{{q}}",
                    "https://shop.example?x={{q}}",
                    "https://shop.example/a#{{q}}",
                    "https://shop.example/{{q}}/{{q}}?{{q}}={{q}}",
                ] {
                    let out = fill(template, &p);
                    proptest::prop_assert_eq!(&out[..authority_end(&out)], "https://shop.example", "{} with {:?}", template, v);
                    proptest::prop_assert!(!out.chars().any(|c| c.is_whitespace() || c.is_control()), "{}", out);
                }
            }
        }
    }
}
