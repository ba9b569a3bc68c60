//! `POST /v1/campaigns/{id}/preview`: a channel's preview as the API shows it.

use admin_api::types::v1::{self, MessagePreview};
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
