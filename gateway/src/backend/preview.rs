//! `POST /v1/campaigns/{id}/preview` and `.../test`: a channel's preview
//! and test send as the API shows them.

use admin_api::types::v1::{self, MessagePreview, TestSend};
use domain::{ChannelKind, Delivery};
use smpp::text::Coding;

use crate::channel::Preview;

pub(super) fn view(preview: Preview, to: String) -> MessagePreview {
    match preview {
        Preview::Email {
            from,
            subject,
            text,
            html,
        } => MessagePreview {
            channel: v1::ChannelKind::Email,
            from,
            to,
            subject: Some(subject),
            text,
            html,
            encoding: None,
            parts: None,
        },
        Preview::Sms {
            from,
            text,
            coding,
            parts,
        } => MessagePreview {
            channel: v1::ChannelKind::Sms,
            from,
            to,
            subject: None,
            text,
            html: None,
            encoding: Some(
                match coding {
                    Coding::Gsm7 => "gsm7",
                    Coding::Ucs2 => "ucs2",
                }
                .to_owned(),
            ),
            parts: Some(parts),
        },
    }
}

pub(super) fn test_send(channel: ChannelKind, to: String, delivery: Delivery) -> TestSend {
    let (outcome, reply) = match delivery {
        Delivery::Accepted { reply, .. } => ("accepted", reply),
        Delivery::Refused { reply, .. } => ("refused", reply),
        Delivery::Permanent { reply } => ("failed", reply),
        Delivery::Unconfirmed { reply, .. } => ("unconfirmed", reply),
        Delivery::Transient { reply, .. } => ("temporary", reply),
        Delivery::Unsent { reply, .. } => ("not_sent", reply),
        Delivery::Throttled { .. } => ("not_sent", "the upstream is throttling".to_owned()),
    };
    TestSend {
        channel: channel.into(),
        to,
        outcome: outcome.to_owned(),
        reply,
    }
}
