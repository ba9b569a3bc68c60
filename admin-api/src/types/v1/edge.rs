//! The v1 wire types to and from the domain model: the one place where the
//! API's shapes meet the gateway's, so either can change without the other
//! (ARCHITECTURE.md, "Crates").

use domain::{AudienceMember, Fact, FactDetail, Participant, fields_from_json, rfc3339};
use serde_json::{Map, Value, json};

use super::{
    AudienceRow, CampaignDecl, CampaignState, ChannelKind, Content, EmailContent, Event, Fallback,
    ParticipantIn, SmsContent, Undelivered, Window,
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

/// Maps a struct to its namesake field by field, both ways: the fields
/// before `;` convert as they are, the optional ones after it inside.
macro_rules! same_fields {
    ($wire:ident <-> $domain:path { $($field:ident),* $(; $($optional:ident),+)? }) => {
        impl From<$wire> for $domain {
            fn from(v: $wire) -> Self {
                Self {
                    $($field: v.$field.into(),)*
                    $($($optional: v.$optional.map(Into::into),)+)?
                }
            }
        }
        impl From<$domain> for $wire {
            fn from(v: $domain) -> Self {
                Self {
                    $($field: v.$field.into(),)*
                    $($($optional: v.$optional.map(Into::into),)+)?
                }
            }
        }
    };
}

same_fields!(Window <-> domain::Window { start, end, tz, weekdays, hours });
same_fields!(SmsContent <-> domain::SmsContent { from, text, track_links });
same_fields!(EmailContent <-> domain::EmailContent { from, subject, text, html });
same_variants!(Undelivered <-> domain::Undelivered { BouncedHard, Failed, NoAddress });

impl From<Fallback> for domain::Fallback {
    fn from(f: Fallback) -> Self {
        Self {
            campaign: f.campaign,
            after: f.after,
            on: f.on.into_iter().map(Into::into).collect(),
            address_field: f.address_field,
        }
    }
}

impl From<domain::Fallback> for Fallback {
    fn from(f: domain::Fallback) -> Self {
        Self {
            campaign: f.campaign,
            after: f.after,
            on: f.on.into_iter().map(Into::into).collect(),
            address_field: f.address_field,
        }
    }
}
same_fields!(Content <-> domain::Content { ; sms, email });
same_fields!(CampaignDecl <-> domain::CampaignDecl {
    channel, name, segment, priority, expected_participants; window, content, fallback
});

impl From<ParticipantIn> for Participant {
    fn from(p: ParticipantIn) -> Self {
        Self {
            customer: p.customer,
            address: p.address,
            segment: p.segment,
            fields: fields_from_json(p.fields),
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
    put("to", d.to.map(Value::String));
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

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn a_declaration_with_every_field_survives_the_round_trip() {
        let wire: CampaignDecl = serde_json::from_value(json!({
            "channel": "sms", "name": "n", "segment": "gold", "priority": 3,
            "expected_participants": 9,
            "window": {"start": "2026-01-01T00:00:00Z", "end": "2026-02-01T00:00:00Z",
                       "tz": "Europe/Berlin", "weekdays": ["mon"], "hours": ["09:00-17:00"]},
            "content": {"sms": {"from": "Telco", "text": "Hi", "track_links": true},
                        "email": {"from": "a@b.c", "subject": "s", "text": "t", "html": "<p>h</p>"}},
            "fallback": {"campaign": "c2", "after": "PT6H"}
        }))
        .expect("declaration");
        let domain = domain::CampaignDecl::from(wire.clone());
        assert_eq!(domain.sms().map(|s| s.track_links), Some(true));
        assert_eq!(CampaignDecl::from(domain), wire);
    }
}
