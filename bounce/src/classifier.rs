//! The [`Classifier`]: parses a returned message and assembles a
//! [`Bounce`] from its parts.

use std::borrow::Cow;

use mail_parser::decoders::html::html_to_text;
use mail_parser::{Message, MimeHeaders, PartType};

use crate::address::is_system_mailbox;
use crate::error::{Error, Result};
use crate::mime::{PARSER, header_values};
use crate::notification;
use crate::original::{self, Original};
use crate::prose;
use crate::report::{Bounce, Format};

mod recipients;

use recipients::{
    auto_reply_recipient, dsn_recipients, feedback_recipients, mentions_final_recipient,
    reads_like_failure, text_recipients,
};

/// Default input size limit: 10 MiB.
pub const DEFAULT_MAX_SIZE: usize = 10 * 1024 * 1024;

/// Longest diagnostic text kept per recipient, in bytes.
const MAX_DIAGNOSTIC: usize = 2048;

/// Classifies returned messages. Cheap to build and to share between
/// threads; holds only limits.
#[derive(Debug, Clone)]
pub struct Classifier {
    max_size: usize,
}

impl Default for Classifier {
    fn default() -> Self {
        Classifier {
            max_size: DEFAULT_MAX_SIZE,
        }
    }
}

/// Subjects that announce a delivery failure (lowercase substrings).
const FAILURE_SUBJECTS: &[&str] = &[
    "undeliver",
    "undelivered",
    "delivery status notification",
    "delivery failure",
    "delivery failed",
    "failure notice",
    "failure delivery",
    "returned mail",
    "returned to sender",
    "mail delivery failed",
    "delivery problem",
    "non-delivery",
    "nondeliverable",
    "non deliverable",
    "could not be delivered",
    "not delivered",
    "mail system error",
    "delivery notification",
    "delivery report",
    "rejected",
    "failed delivery",
    "error sending",
    "mail error",
    "unable to deliver",
    "warning: could not send",
    "delayed mail",
    "delivery delayed",
    "message delayed",
    "returning message",
    "bounce",
];

/// Subjects of auto-replies (lowercase prefixes or substrings).
const AUTO_REPLY_SUBJECTS: &[&str] = &[
    "auto:",
    "autoreply",
    "auto-reply",
    "auto reply",
    "automatic reply",
    "automatische antwort",
    "out of office",
    "out of the office",
    "vacation",
    "absence",
    "abwesenheit",
    "réponse automatique",
];

/// The parts of a parsed message that matter here.
#[derive(Default)]
struct Parts {
    /// Human-readable text of the report (not of the original message).
    text: String,
    /// Body of the `message/delivery-status` part.
    delivery_status: Option<String>,
    /// Body of the `message/feedback-report` part.
    feedback: Option<String>,
    /// What the attached copy of the original message says.
    original: Original,
    /// A report attached to this one (a forwarded bounce).
    nested: Option<Box<Parts>>,
}

impl Parts {
    fn collect(message: &Message<'_>) -> Self {
        let mut parts = Parts::default();
        let mut html: Vec<&str> = Vec::new();
        for part in &message.parts {
            let (ctype, subtype) = match part.content_type() {
                Some(ct) => (
                    ct.ctype().to_ascii_lowercase(),
                    ct.subtype().unwrap_or_default().to_ascii_lowercase(),
                ),
                None => (String::from("text"), String::from("plain")),
            };
            let is_status = ctype == "message"
                && (subtype == "delivery-status" || subtype == "global-delivery-status");
            let is_feedback = ctype == "message" && subtype == "feedback-report";
            let is_headers = subtype == "rfc822-headers" || subtype == "global-headers";
            let body: Option<Cow<'_, str>> = match &part.body {
                PartType::Text(t) => Some(Cow::Borrowed(t.as_ref())),
                PartType::Html(h) => {
                    if !(is_status || is_feedback || is_headers) {
                        html.push(h.as_ref());
                        continue;
                    }
                    Some(Cow::Borrowed(h.as_ref()))
                }
                PartType::Binary(b) | PartType::InlineBinary(b) => {
                    Some(String::from_utf8_lossy(b.as_ref()))
                }
                PartType::Message(m) => {
                    if parts.nested.is_none() && carries_report(m) {
                        parts.nested = Some(Box::new(Parts::collect(m)));
                    } else {
                        parts.original.merge(Original::of_message(m));
                    }
                    None
                }
                PartType::Multipart(_) => None,
            };
            let Some(body) = body else { continue };
            if is_status {
                let status = parts.delivery_status.get_or_insert_with(String::new);
                status.push_str(&body);
                status.push_str("\n\n");
            } else if is_feedback {
                parts
                    .feedback
                    .get_or_insert_with(String::new)
                    .push_str(&body);
            } else if is_headers
                || (ctype == "message" && (subtype == "rfc822" || subtype == "global"))
            {
                parts.original.merge(Original::of_text(&body));
            } else if ctype == "text" || part.content_type().is_none() {
                parts.text.push_str(&body);
                parts.text.push('\n');
            }
        }
        // A DSN or ARF part carries what we need; the human-readable text is
        // only context then, and converting HTML or re-reading the raw body
        // for it costs more than it tells.
        let has_report = parts.delivery_status.is_some() || parts.feedback.is_some();
        if !has_report && parts.text.trim().is_empty() {
            // Only HTML: turn it into text (costly, so only when needed).
            for h in html {
                parts.text.push_str(&html_to_text(h));
                parts.text.push('\n');
            }
        }
        if !has_report && parts.text.trim().is_empty() {
            // Broken MIME: fall back on the raw body.
            let raw = message.raw_message();
            let body_at = message.root_part().offset_body as usize;
            parts.text =
                String::from_utf8_lossy(raw.get(body_at..).unwrap_or_default()).into_owned();
        }
        if parts.delivery_status.is_none()
            && parts.feedback.is_none()
            && mentions_final_recipient(&parts.text)
        {
            // A report whose status fields ended up in the text (a bounce
            // forwarded as text, or broken MIME).
            parts.delivery_status = Some(parts.text.clone());
        }
        if parts.delivery_status.is_none()
            && parts.feedback.is_none()
            && let Some(nested) = parts.nested.take()
        {
            let mut nested = *nested;
            nested.text.push('\n');
            nested.text.push_str(&parts.text);
            return nested;
        }
        parts
    }
}

/// True when `message` has a delivery-status or feedback-report part (a
/// report forwarded inside another message).
fn carries_report(message: &Message<'_>) -> bool {
    message.parts.iter().any(|part| {
        part.content_type().is_some_and(|ct| {
            ct.ctype().eq_ignore_ascii_case("message")
                && ct.subtype().is_some_and(|s| {
                    s.eq_ignore_ascii_case("delivery-status")
                        || s.eq_ignore_ascii_case("global-delivery-status")
                        || s.eq_ignore_ascii_case("feedback-report")
                })
        })
    })
}

/// Headers of the report itself.
struct Envelope {
    from: Option<String>,
    from_raw: String,
    to: Vec<String>,
    subject: String,
    failed: Vec<String>,
    auto_submitted: String,
    auto_reply_header: bool,
    report_type: String,
}

impl Envelope {
    fn of(message: &Message<'_>) -> Self {
        const NAMES: [&str; 11] = [
            "From",
            "To",
            "Delivered-To",
            "X-Original-To",
            "Return-Path",
            "X-Failed-Recipients",
            "Auto-Submitted",
            "Precedence",
            "X-Autoreply",
            "X-Autorespond",
            "X-Vacation",
        ];
        let values = header_values(message, &NAMES);
        let raw = |index: usize| {
            values
                .get(index)
                .copied()
                .flatten()
                .unwrap_or_default()
                .trim()
                .to_owned()
        };
        let from_raw = raw(0);
        let mut to = Vec::new();
        for index in 1..=4 {
            to.extend(prose::header_addresses(&raw(index)));
        }
        let report_type = message
            .content_type()
            .and_then(|ct| ct.attribute("report-type"))
            .unwrap_or_default()
            .to_ascii_lowercase();
        Envelope {
            from: prose::first(&from_raw),
            from_raw,
            to,
            subject: message.subject().unwrap_or_default().to_lowercase(),
            failed: {
                let mut failed = prose::header_addresses(&raw(5));
                failed.truncate(prose::MAX_RECIPIENTS + 1);
                failed
            },
            auto_submitted: raw(6).to_ascii_lowercase(),
            auto_reply_header: values
                .get(8..)
                .is_some_and(|v| v.iter().any(Option::is_some))
                || raw(7).eq_ignore_ascii_case("auto_reply"),
            report_type,
        }
    }

    fn sent_by_system(&self) -> bool {
        let lower = self.from_raw.to_ascii_lowercase();
        // `From: <>` (present, but no address) is how some MTAs sign.
        (self.from.is_none() && !self.from_raw.is_empty())
            || self.from.as_deref().is_some_and(is_system_mailbox)
            || lower.contains("mailer-daemon")
            || lower.contains("mail delivery")
            || lower.contains("postmaster")
    }

    fn failure_subject(&self) -> bool {
        FAILURE_SUBJECTS.iter().any(|s| self.subject.contains(s))
    }

    fn auto_reply(&self) -> bool {
        self.auto_reply_header
            || self.auto_submitted.starts_with("auto-replied")
            || AUTO_REPLY_SUBJECTS.iter().any(|s| self.subject.contains(s))
    }
}

impl Classifier {
    /// A classifier with the default limits.
    pub fn new() -> Self {
        Classifier::default()
    }

    /// Sets the largest input accepted, in bytes.
    pub fn with_max_size(mut self, bytes: usize) -> Self {
        self.max_size = bytes;
        self
    }

    /// The largest input accepted, in bytes.
    pub fn max_size(&self) -> usize {
        self.max_size
    }

    /// Classifies the raw bytes of a returned message.
    ///
    /// Errors only for input that is empty or above the size limit; any
    /// other input, however malformed, gives a [`Bounce`] (with
    /// `is_bounce == false` when it is not recognisably a report).
    pub fn classify(&self, raw: &[u8]) -> Result<Bounce> {
        if raw.len() > self.max_size {
            return Err(Error::TooLarge {
                size: raw.len(),
                limit: self.max_size,
            });
        }
        if raw.iter().all(u8::is_ascii_whitespace) {
            return Err(Error::Empty);
        }
        let Some(message) = PARSER.parse(raw) else {
            return Ok(Bounce::not_a_bounce());
        };
        Ok(assemble(&message))
    }
}

fn assemble(message: &Message<'_>) -> Bounce {
    let envelope = Envelope::of(message);
    let mut parts = Parts::collect(message);
    let (report, inline_original) = {
        let (report, original) = prose::split_original(&parts.text);
        (report.to_owned(), original.map(Original::of_text))
    };
    if let Some(inline) = inline_original {
        parts.original.merge(inline);
    }

    let mut exclude: Vec<String> = envelope.to.clone();
    exclude.extend(envelope.from.clone());
    exclude.extend(parts.original.from.clone());
    exclude.extend(parts.original.return_path.clone());

    let (format, recipients) = if let Some(feedback) = &parts.feedback {
        (Format::Arf, feedback_recipients(feedback, &parts.original))
    } else if envelope.report_type == "feedback-report" {
        (Format::Arf, feedback_recipients("", &parts.original))
    } else if let Some(recipients) = parts
        .delivery_status
        .as_deref()
        .map(|ds| dsn_recipients(ds, &report, &exclude))
        .filter(|r| !r.is_empty())
    {
        (Format::Dsn, recipients)
    } else if let Some(note) = report
        .contains("notificationType")
        .then(|| notification::parse(&report))
        .flatten()
    {
        parts.original.message_id = parts.original.message_id.take().or(note.message_id);
        parts.original.return_path = parts.original.return_path.take().or(note.source);
        (Format::Json, note.recipients)
    } else if envelope.failed.is_empty()
        && !envelope.sent_by_system()
        && !envelope.failure_subject()
        && envelope.report_type != "delivery-status"
        && !reads_like_failure(&report)
    {
        if envelope.auto_reply() {
            (Format::AutoReply, auto_reply_recipient(&envelope))
        } else {
            return Bounce::not_a_bounce();
        }
    } else {
        (
            Format::Text,
            text_recipients(&report, &envelope, &parts.original, &exclude),
        )
    };

    let original = parts.original;
    let reply_path = envelope.to.first().cloned();
    let token = original
        .token
        .clone()
        .or_else(|| {
            original
                .return_path
                .as_deref()
                .and_then(original::verp_detail)
                .map(str::to_owned)
        })
        .or_else(|| {
            envelope
                .to
                .iter()
                .find_map(|a| original::verp_detail(a))
                .map(str::to_owned)
        });
    let mut recipients = recipients;
    let truncated = recipients.len() > prose::MAX_RECIPIENTS;
    recipients.truncate(prose::MAX_RECIPIENTS);
    Bounce {
        is_bounce: true,
        format,
        truncated,
        recipients,
        original_message_id: original.message_id,
        original_return_path: original.return_path.or(reply_path),
        token,
    }
}
