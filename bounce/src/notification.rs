//! JSON bounce notifications (Amazon SES, delivered by SNS or e-mail):
//! `{"notificationType":"Bounce"|"Complaint"|"Delivery", ...}`, possibly
//! wrapped in an SNS envelope whose `Message` is that JSON as a string.

use serde_json::Value;

use crate::reason::{Kind, Reason};
use crate::report::Recipient;
use crate::status::{self, EnhancedStatus};

/// What a notification says.
pub struct Notification {
    /// One entry per recipient.
    pub recipients: Vec<Recipient>,
    /// The provider's message id of the original message.
    pub message_id: Option<String>,
    /// The envelope sender of the original message.
    pub source: Option<String>,
}

/// Parses `text` as a notification; `None` when it is not one.
pub fn parse(text: &str) -> Option<Notification> {
    let start = text.find('{')?;
    let end = text.rfind('}')?;
    let json = text.get(start..=end)?;
    // Mail relays break over-long lines; some mark the break with `!`.
    let json = json
        .replace("\r", "")
        .replace("!\n ", "")
        .replace("\n ", "");
    let mut value: Value = serde_json::from_str(&json).ok()?;
    if let Some(inner) = value.get("Message").and_then(Value::as_str) {
        value = serde_json::from_str(inner).ok()?;
    }
    let kind = value
        .get("notificationType")
        .or_else(|| value.get("eventType"))
        .and_then(Value::as_str)?;
    let mail = value.get("mail");
    let message_id = mail
        .and_then(|m| m.get("messageId"))
        .and_then(Value::as_str)
        .map(str::to_owned);
    let source = mail
        .and_then(|m| m.get("source"))
        .and_then(Value::as_str)
        .map(str::to_owned);
    let recipients = match kind {
        "Bounce" => bounced(value.get("bounce")?),
        "Complaint" => addresses(value.get("complaint")?.get("complainedRecipients")?)
            .into_iter()
            .map(|a| other(a, Reason::Feedback))
            .collect(),
        "Delivery" => value
            .get("delivery")?
            .get("recipients")?
            .as_array()?
            .iter()
            .filter_map(Value::as_str)
            .map(|a| other(a.to_owned(), Reason::Delivered))
            .collect(),
        _ => return None,
    };
    Some(Notification {
        recipients,
        message_id,
        source,
    })
}

fn addresses(list: &Value) -> Vec<String> {
    list.as_array()
        .map(|items| {
            items
                .iter()
                .filter_map(|r| r.get("emailAddress").and_then(Value::as_str))
                .map(str::to_owned)
                .collect()
        })
        .unwrap_or_default()
}

fn other(address: String, reason: Reason) -> Recipient {
    Recipient {
        address,
        kind: Kind::Other,
        reason,
        status: None,
        reply_code: None,
        diagnostic: None,
        action: None,
        remote_mta: None,
    }
}

fn bounced(bounce: &Value) -> Vec<Recipient> {
    let Some(items) = bounce.get("bouncedRecipients").and_then(Value::as_array) else {
        return Vec::new();
    };
    items
        .iter()
        .filter_map(|item| {
            let address = item.get("emailAddress").and_then(Value::as_str)?.to_owned();
            let diagnostic = item
                .get("diagnosticCode")
                .and_then(Value::as_str)
                .unwrap_or_default();
            let diagnostic = diagnostic
                .split_once(';')
                .map_or(diagnostic, |(_, rest)| rest)
                .trim()
                .to_owned();
            let status = item
                .get("status")
                .and_then(Value::as_str)
                .and_then(|s| s.parse::<EnhancedStatus>().ok())
                .or_else(|| status::find_status(&diagnostic));
            let reply_code = status::find_reply_code(&diagnostic, false);
            let verdict = crate::diagnosis::diagnose(&crate::diagnosis::Evidence {
                text: &diagnostic,
                status,
                reply_code,
                ..Default::default()
            });
            Some(Recipient {
                address,
                kind: verdict.kind,
                reason: verdict.reason,
                status,
                reply_code,
                diagnostic: Some(diagnostic).filter(|d| !d.is_empty()),
                action: item
                    .get("action")
                    .and_then(Value::as_str)
                    .map(str::to_owned),
                remote_mta: None,
            })
        })
        .collect()
}
