//! The recipients a returned message reports on, by kind of report: a
//! feedback report (ARF), an auto-reply, a DSN, or the free text a mail
//! server wrote.

use std::sync::LazyLock;

use crate::address::find_addresses;
use crate::diagnosis::{self, Evidence};
use crate::dsn;
use crate::original::Original;
use crate::prose;
use crate::reason::{Kind, Reason};
use crate::report::Recipient;
use crate::rules;
use crate::status::{self, EnhancedStatus};

use super::{Envelope, MAX_DIAGNOSTIC};

pub(super) fn feedback_recipients(report: &str, original: &Original) -> Vec<Recipient> {
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

pub(super) fn auto_reply_recipient(envelope: &Envelope) -> Vec<Recipient> {
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

pub(super) fn dsn_recipients(
    delivery_status: &str,
    report: &str,
    exclude: &[String],
) -> Vec<Recipient> {
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

pub(super) fn text_recipients(
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
    let delayed = reads_like_delay(report);
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
                // Free text says no more than "still trying": its cause
                // is read as for a failure (on hold when none is given).
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
                action: Some(if delayed { "delayed" } else { "failed" }.to_owned()),
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

/// Phrases with which mail systems say they are still trying to deliver:
/// a delay notice (a DSN's `Action: delayed`) written as free text, as
/// Exim, Gmail and sendmail send them.
const DELAY_PHRASES: &[&str] = &[
    "not yet been delivered",
    "has been delayed",
    "delivery attempts will continue",
    "will continue to try",
    "will keep trying",
    "will be retried",
    "still being retried",
    "warning message only",
    "this is a warning only",
    "do not need to resend",
];

/// True when a report's text (without the copy of the original, where
/// one is marked) says delivery is still being tried, and nothing in it
/// says it failed for good: a permanent failure whose unmarked copy of the
/// original says "has not yet been delivered" (a parcel notice) is one.
fn reads_like_delay(report: &str) -> bool {
    static MATCHER: LazyLock<Option<aho_corasick::AhoCorasick>> =
        LazyLock::new(|| rules::phrase_matcher(DELAY_PHRASES));
    let permanent = status::find_status(report).is_some_and(|s| s.class == 5)
        || status::find_reply_code(report, false).is_some_and(|code| code >= 500);
    !permanent && MATCHER.as_ref().is_some_and(|m| m.is_match(report))
}

/// True when a message that does not look like a report by its headers
/// still reads like one: a failure phrase, an SMTP error code and a
/// recognised reason, all in its text.
pub(super) fn reads_like_failure(report: &str) -> bool {
    let lower = report.to_lowercase();
    FAILURE_PHRASES.iter().any(|p| lower.contains(p))
        && status::find_reply_code(report, false).is_some()
        && rules::reason_of_text(report).is_some()
}

pub(super) fn mentions_final_recipient(text: &str) -> bool {
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
