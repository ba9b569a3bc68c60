//! Tracked links of sent messages: a campaign's link table (the URLs of its
//! template, in order, derived from its stored declaration and so as
//! durable as the campaign) and the rewriter that signs tracked URLs into
//! each message (mail also gets an open pixel and RFC 8058
//! `List-Unsubscribe`).

use std::{
    borrow::Cow,
    collections::HashMap,
    sync::{Arc, Mutex},
};

use clicktrack::{Keyring, LinkTable, Rewriter};
use domain::{CampaignDecl, CampaignRecord, MessageNo, Participant, SmsContent};

use crate::template::{Escape, Template};

pub fn their(msg: MessageNo) -> clicktrack::MessageNo {
    clicktrack::MessageNo(msg.as_u64())
}

/// Link tables per campaign and the rewriter that signs tracked URLs.
pub struct Links {
    rewriter: Rewriter,
    tables: Mutex<HashMap<u32, Arc<LinkTable>>>,
}

impl Links {
    /// Links signed with `keys` under `base_url` (`tracking.base_url`).
    pub fn new(keys: Arc<Keyring>, base_url: &str) -> Result<Self, clicktrack::Error> {
        let rewriter = Rewriter::new(keys, base_url)?;
        Ok(Self {
            rewriter,
            tables: Mutex::new(HashMap::new()),
        })
    }

    /// The table of campaign number `seq`, if it was built already.
    pub fn cached(&self, seq: u32) -> Option<Arc<LinkTable>> {
        self.tables
            .lock()
            .unwrap_or_else(std::sync::PoisonError::into_inner)
            .get(&seq)
            .cloned()
    }

    /// The table of `campaign`, built by `build` from its declaration (its
    /// channel's `link_table`) on first use.
    pub fn table(
        &self,
        campaign: &CampaignRecord,
        build: impl FnOnce(&CampaignDecl) -> Result<LinkTable, clicktrack::Error>,
    ) -> Arc<LinkTable> {
        let mut tables = self
            .tables
            .lock()
            .unwrap_or_else(std::sync::PoisonError::into_inner);
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
        let table = for_participant(table, p);
        let msg = their(msg);
        *text = self.rewriter.rewrite_text(text, &table, msg).body;
        if let Some(body) = html {
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
pub fn fill(url: &str, p: &Participant) -> String {
    Template::parse(url).map_or_else(|_| url.to_owned(), |t| t.render(p, Escape::None))
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
}
