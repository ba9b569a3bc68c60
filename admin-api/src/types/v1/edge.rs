//! The v1 wire types to and from the domain model: the one place where the
//! API's shapes meet the gateway's, so either can change without the other
//! (ARCHITECTURE.md, "Crates").

use domain::{AudienceMember, Fact, FactDetail, FieldValue, Participant, rfc3339};
use serde_json::{Map, Value, json};

use super::{
    AudienceRow, CampaignDecl, CampaignState, ChannelKind, Content, EmailContent, Event, Fallback,
    ParticipantIn, SmsContent, Window,
};

/// Maps an enum to its namesake, both ways.
macro_rules! same_variants {
    ($wire:ident <-> $domain:path { $($variant:ident),+ }) => {
        impl From<$wire> for $domain {
            fn from(v: $wire) -> Self {
                match v { $($wire::$variant => Self::$variant),+ }
            }
        }
        impl From<$domain> for $wire {
            fn from(v: $domain) -> Self {
                use $domain as D;
                match v { $(D::$variant => Self::$variant),+ }
            }
        }
    };
}

same_variants!(ChannelKind <-> domain::ChannelKind { Sms, Email });
same_variants!(CampaignState <-> domain::CampaignState { Declared, Running, Paused, Cancelled, Finished });

impl From<CampaignDecl> for domain::CampaignDecl {
    fn from(d: CampaignDecl) -> Self {
        Self {
            channel: d.channel.into(),
            name: d.name,
            segment: d.segment,
            priority: d.priority,
            expected_participants: d.expected_participants,
            window: d.window.map(|w| domain::Window {
                start: w.start,
                end: w.end,
                tz: w.tz,
                weekdays: w.weekdays,
                hours: w.hours,
            }),
            content: d.content.map(|c| domain::Content {
                sms: c.sms.map(|s| domain::SmsContent {
                    from: s.from,
                    text: s.text,
                    track_links: s.track_links,
                }),
                email: c.email.map(|e| domain::EmailContent {
                    from: e.from,
                    subject: e.subject,
                    text: e.text,
                    html: e.html,
                }),
            }),
            fallback: d.fallback.map(|f| domain::Fallback {
                campaign: f.campaign,
                after: f.after,
            }),
        }
    }
}

impl From<domain::CampaignDecl> for CampaignDecl {
    fn from(d: domain::CampaignDecl) -> Self {
        Self {
            channel: d.channel.into(),
            name: d.name,
            segment: d.segment,
            priority: d.priority,
            expected_participants: d.expected_participants,
            window: d.window.map(|w| Window {
                start: w.start,
                end: w.end,
                tz: w.tz,
                weekdays: w.weekdays,
                hours: w.hours,
            }),
            content: d.content.map(|c| Content {
                sms: c.sms.map(|s| SmsContent {
                    from: s.from,
                    text: s.text,
                    track_links: s.track_links,
                }),
                email: c.email.map(|e| EmailContent {
                    from: e.from,
                    subject: e.subject,
                    text: e.text,
                    html: e.html,
                }),
            }),
            fallback: d.fallback.map(|f| Fallback {
                campaign: f.campaign,
                after: f.after,
            }),
        }
    }
}

impl From<ParticipantIn> for Participant {
    fn from(p: ParticipantIn) -> Self {
        Self {
            customer: p.customer,
            address: p.address,
            segment: p.segment,
            fields: p
                .fields
                .into_iter()
                .map(|(name, value)| (name, FieldValue::from_json(value)))
                .collect(),
        }
    }
}

impl Event {
    /// A fact of the campaign `campaign` as the feed shows it.
    pub fn of(fact: Fact) -> Self {
        Self {
            cursor: fact.cursor,
            at: rfc3339(fact.at),
            campaign: fact.campaign,
            customer: fact.customer,
            kind: fact.kind.as_str().to_owned(),
            detail: detail_fields(fact.detail),
        }
    }
}

/// A fact's detail as the feed's flattened fields, each only where present.
fn detail_fields(d: FactDetail) -> Map<String, Value> {
    let mut fields = Map::new();
    let mut put = |name: &str, value: Option<Value>| {
        if let Some(value) = value {
            fields.insert(name.to_owned(), value);
        }
    };
    put("attempt", d.attempt.map(|n| json!(n)));
    put("attempts", d.attempts.map(|n| json!(n)));
    put("bounce", d.bounce.map(Value::String));
    put("bounce_reason", d.bounce_reason.map(Value::String));
    put("diagnostic", d.diagnostic.map(Value::String));
    put("error", d.error.map(Value::String));
    put("reason", d.reason.map(Value::String));
    put("reply", d.reply.map(Value::String));
    put("replycode", d.replycode.map(|n| json!(n)));
    put("retry_at", d.retry_at.map(|ms| Value::String(rfc3339(ms))));
    put("stat", d.stat.map(Value::String));
    put("status", d.status.map(Value::String));
    put("text", d.text.map(Value::String));
    put("url", d.url.map(Value::String));
    put("why", d.why.map(Value::String));
    fields
}

impl AudienceRow {
    /// A member of the audience for `outcome`.
    pub fn of(member: AudienceMember, outcome: &str) -> Self {
        Self {
            customer: member.customer,
            address: member.address,
            outcome: outcome.to_owned(),
            at: member.at.map(rfc3339),
        }
    }
}
