//! The [`Classifier`]: parses a returned message and assembles a
//! [`Bounce`] from its parts.

use std::borrow::Cow;
use std::sync::LazyLock;

use mail_parser::decoders::html::html_to_text;
use mail_parser::{Message, MimeHeaders, PartType};

use crate::address::{find_addresses, is_system_mailbox};
use crate::diagnosis::{self, Evidence};
use crate::dsn;
use crate::error::{Error, Result};
use crate::mime::{PARSER, header_values};
use crate::notification;
use crate::original::{self, Original};
use crate::prose;
use crate::reason::{Kind, Reason};
use crate::report::{Bounce, Format, Recipient};
use crate::rules;
use crate::status::{self, EnhancedStatus};

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

fn feedback_recipients(report: &str, original: &Original) -> Vec<Recipient> {
    let mut addresses = Vec::new();
    let mut feedback_type = None;
    for line in report.lines() {
        let Some((name, value)) = line.split_once(':') else {
            continue;
        };
        let name = name.trim().to_ascii_lowercase();
        if name == "original-rcpt-to" || name == "removal-recipient" {
            addresses.extend(
                find_addresses(value)
                    .into_iter()
                    .map(|f| f.address.to_owned()),
            );
        } else if name == "feedback-type" {
            feedback_type = Some(value.trim().to_owned());
        }
    }
    if addresses.is_empty() {
        addresses = original.to.clone();
    }
    if addresses.is_empty() {
        addresses.push(String::new());
    }
    addresses.dedup();
    addresses
        .into_iter()
        .map(|address| Recipient {
            address,
            kind: Kind::Other,
            reason: Reason::Feedback,
            status: None,
            reply_code: None,
            diagnostic: feedback_type.clone(),
            action: None,
            remote_mta: None,
        })
        .collect()
}

fn auto_reply_recipient(envelope: &Envelope) -> Vec<Recipient> {
    vec![Recipient {
        address: envelope.from.clone().unwrap_or_default(),
        kind: Kind::Other,
        reason: Reason::Vacation,
        status: None,
        reply_code: None,
        diagnostic: Some(envelope.subject.clone()).filter(|s| !s.is_empty()),
        action: None,
        remote_mta: None,
    }]
}

fn dsn_recipients(delivery_status: &str, report: &str, exclude: &[String]) -> Vec<Recipient> {
    let blocks = dsn::parse(delivery_status);
    let mentions = prose::recipients(report, exclude);
    let single = blocks.len() == 1;
    blocks
        .into_iter()
        .map(|block| {
            let written = block
                .final_recipient
                .clone()
                .or_else(|| block.original_recipient.clone())
                .unwrap_or_default();
            let address = prose::first(&written)
                .unwrap_or_else(|| written.trim_matches(['<', '>', ' ']).to_owned());
            let diagnostic = block.diagnostic.clone().unwrap_or_default();
            let mention = mentions
                .iter()
                .find(|m| m.address.eq_ignore_ascii_case(&address))
                .map(|m| m.text.as_str());
            let context = match mention {
                Some(text) => text,
                None if single => report,
                None => "",
            };
            let field_status = block
                .status
                .as_deref()
                .and_then(|s| s.split_whitespace().next())
                .and_then(|s| s.parse::<EnhancedStatus>().ok());
            let text_status = status::find_status(&diagnostic);
            let status = match (field_status, text_status) {
                (Some(f), Some(t)) if f.is_generic() && !t.is_generic() && f.class == t.class => {
                    Some(t)
                }
                (Some(f), _) => Some(f),
                (None, t) => t.or_else(|| status::find_status(context)),
            };
            let action = block.action.clone();
            let delivered = matches!(
                action.as_deref(),
                Some("delivered" | "relayed" | "expanded")
            );
            let reply_code = status::find_reply_code(&diagnostic, delivered)
                .or_else(|| status::find_reply_code(context, delivered));
            // Without a Diagnostic-Code, the human-readable text is the best
            // witness of the cause (the status then often only says
            // "expired" or "other").
            let (text, context) = if diagnostic.is_empty() {
                (context, "")
            } else {
                (diagnostic.as_str(), context)
            };
            let evidence = Evidence {
                text,
                context,
                status,
                reply_code,
                phase: None,
                delayed: action.as_deref() == Some("delayed"),
            };
            let mut verdict = diagnosis::diagnose(&evidence);
            if delivered {
                verdict = crate::report::Verdict {
                    kind: Kind::Other,
                    reason: Reason::Delivered,
                };
            }
            Recipient {
                address,
                kind: verdict.kind,
                reason: verdict.reason,
                status,
                reply_code,
                diagnostic: Some(diagnostic)
                    .filter(|d| !d.is_empty())
                    .or_else(|| clip(context)),
                action,
                remote_mta: block.remote_mta,
            }
        })
        .collect()
}

fn text_recipients(
    report: &str,
    envelope: &Envelope,
    original: &Original,
    exclude: &[String],
) -> Vec<Recipient> {
    let mentions = prose::recipients(report, exclude);
    let mut chosen: Vec<(String, String, String)> = if envelope.failed.is_empty() {
        mentions
            .into_iter()
            .map(|m| (m.address, m.line, m.text))
            .collect()
    } else {
        envelope
            .failed
            .iter()
            .map(|address| {
                let mention = mentions
                    .iter()
                    .find(|m| m.address.eq_ignore_ascii_case(address));
                (
                    address.clone(),
                    mention.map(|m| m.line.clone()).unwrap_or_default(),
                    mention.map(|m| m.text.clone()).unwrap_or_default(),
                )
            })
            .collect()
    };
    if chosen.is_empty() {
        let address = original.to.first().cloned().unwrap_or_default();
        chosen.push((address, String::new(), String::new()));
    }
    let single = chosen.len() == 1;
    chosen
        .into_iter()
        .map(|(address, line, mention)| {
            // The line naming the recipient often carries its whole reason;
            // otherwise the lines that follow it; otherwise the report.
            let text = if rules::reason_of_text(&line).is_some() {
                line.as_str()
            } else if single || mention.is_empty() {
                report
            } else {
                mention.as_str()
            };
            let status = status::find_status(text);
            let reply_code = status::find_reply_code(text, false);
            // The recipient's own lines are its context; the whole report
            // only when it is about one recipient.
            let context = if single || mention.is_empty() {
                report
            } else {
                mention.as_str()
            };
            let evidence = Evidence {
                text,
                context,
                status,
                reply_code,
                phase: None,
                delayed: false,
            };
            let verdict = diagnosis::diagnose(&evidence);
            Recipient {
                address,
                kind: verdict.kind,
                reason: verdict.reason,
                status,
                reply_code,
                diagnostic: clip(text),
                action: Some("failed".to_owned()),
                remote_mta: None,
            }
        })
        .collect()
}

/// Phrases with which mail systems announce a failed delivery (lowercase).
const FAILURE_PHRASES: &[&str] = &[
    "could not be delivered",
    "couldn't be delivered",
    "was not delivered",
    "wasn't delivered",
    "undeliverable",
    "delivery failed",
    "delivery has failed",
    "failed permanently",
    "permanent error",
    "permanent failure",
    "unable to deliver",
    "error message",
    "delivery to the following",
    "did not reach",
    "could not deliver",
];

/// True when a message that does not look like a report by its headers
/// still reads like one: a failure phrase, an SMTP error code and a
/// recognised reason, all in its text.
fn reads_like_failure(report: &str) -> bool {
    let lower = report.to_lowercase();
    FAILURE_PHRASES.iter().any(|p| lower.contains(p))
        && status::find_reply_code(report, false).is_some()
        && rules::reason_of_text(report).is_some()
}

fn mentions_final_recipient(text: &str) -> bool {
    static FIELD: LazyLock<Option<aho_corasick::AhoCorasick>> =
        LazyLock::new(|| rules::phrase_matcher(&["final-recipient:"]));
    FIELD.as_ref().is_some_and(|m| m.is_match(text))
}

/// Folds white space and caps the length of a diagnostic text.
fn clip(text: &str) -> Option<String> {
    let mut folded = String::with_capacity(text.len().min(MAX_DIAGNOSTIC));
    rules::fold(text, &mut folded);
    let folded = folded.trim();
    if folded.is_empty() {
        return None;
    }
    let mut end = folded.len().min(MAX_DIAGNOSTIC);
    while !folded.is_char_boundary(end) {
        end -= 1;
    }
    Some(folded.get(..end).unwrap_or_default().to_owned())
}
