//! Turning the evidence about one failure (text, codes, SMTP phase) into a
//! [`Verdict`]. Bounces and synchronous SMTP replies both go through here.

use std::sync::LazyLock;

use aho_corasick::AhoCorasick;

use crate::reason::Reason;
use crate::report::Verdict;
use crate::rules::{self, Finding};
use crate::status::{self, EnhancedStatus};

/// What is known about one failed recipient.
#[derive(Debug, Clone, Copy, Default)]
pub struct Evidence<'a> {
    /// The diagnostic text (remote reply or MTA explanation).
    pub text: &'a str,
    /// Wider text to fall back on when `text` reveals nothing (the
    /// human-readable part of the report).
    pub context: &'a str,
    /// The enhanced status, if any.
    pub status: Option<EnhancedStatus>,
    /// The SMTP reply code, if any.
    pub reply_code: Option<u16>,
    /// The SMTP command the receiver was answering, when known. When
    /// `None`, it is looked for in `text`, then `context`, if needed.
    pub phase: Option<Phase>,
    /// True when the report says delivery is only delayed (DSN `delayed`).
    pub delayed: bool,
}

impl Evidence<'_> {
    fn temporary(&self) -> bool {
        self.status.is_some_and(EnhancedStatus::is_temporary)
            || self.reply_code.is_some_and(|c| (400..500).contains(&c))
    }

    fn success(&self) -> bool {
        self.status.is_some_and(|s| s.class == 2)
            || self.reply_code.is_some_and(|c| (200..300).contains(&c))
    }
}

/// The SMTP command a refusal answered.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Phase {
    /// The greeting, HELO/EHLO or the connection itself.
    Connect,
    /// MAIL FROM.
    MailFrom,
    /// RCPT TO.
    RcptTo,
    /// DATA or the end of the content.
    Data,
}

/// Phrases naming the command a refusal answered (lowercase).
const PHASES: &[(&str, Phase)] = &[
    ("initial connection", Phase::Connect),
    ("greeting", Phase::Connect),
    ("refused to talk", Phase::Connect),
    ("helo", Phase::Connect),
    ("ehlo", Phase::Connect),
    ("mail from", Phase::MailFrom),
    ("in reply to mail", Phase::MailFrom),
    ("rcpt to", Phase::RcptTo),
    ("rcpt command", Phase::RcptTo),
    ("rcpt_to", Phase::RcptTo),
    ("smtp:rcpt", Phase::RcptTo),
    ("does not like recipient", Phase::RcptTo),
    ("recipient address rejected", Phase::RcptTo),
    ("end of data", Phase::Data),
    ("data command", Phase::Data),
    (">>> data", Phase::Data),
    ("final data", Phase::Data),
    ("after data", Phase::Data),
];

/// The last SMTP command `text` names as the one refused (in a session
/// transcript the failing command comes last).
pub fn phase_of(text: &str) -> Option<Phase> {
    static MATCHER: LazyLock<Option<AhoCorasick>> = LazyLock::new(|| {
        let phrases: Vec<&str> = PHASES.iter().map(|(p, _)| *p).collect();
        rules::phrase_matcher(&phrases)
    });
    let last = MATCHER.as_ref()?.find_iter(text).last()?;
    PHASES
        .get(last.pattern().as_usize())
        .map(|(_, phase)| *phase)
}

/// Applies the rules: an enhanced status that [decides](status::decides)
/// its cause first, then text phrases (the table, then the phrase
/// families), then any other specific enhanced status, then the context
/// text, then the reply code and the SMTP phase.
///
/// The generic words of a refused recipient ("user unknown", "no such
/// user": the [vague](rules::Rule::vague) rules) prove the mailbox is gone
/// only when something backs them: an addressing status (X.1.x), the RCPT
/// phase, or a reply that names the address as their subject
/// (`<a@b.example>: User unknown`) where no specific status of another
/// kind (5.2.1, 5.7.1) says otherwise. Unbacked, a receiver's filter is
/// speaking and the refusal is `filtered`. Any "unknown user" answered to
/// DATA without an addressing status is a filter too. A temporary "host
/// unknown" is a DNS problem, not proof the domain is gone.
pub fn diagnose(evidence: &Evidence<'_>) -> Verdict {
    let phase = || {
        evidence
            .phase
            .or_else(|| phase_of(evidence.text))
            .or_else(|| phase_of(evidence.context))
    };
    let reason = if evidence.success() && !evidence.delayed {
        Reason::Delivered
    } else {
        let decisive = evidence
            .status
            .filter(|s| status::decides(*s))
            .and_then(status::reason_of_status)
            .map(|reason| Finding {
                reason,
                vague: false,
            });
        let found = decisive
            .or_else(|| rules::finding_of_text(evidence.text))
            .or_else(|| {
                evidence
                    .status
                    .filter(|s| !s.is_generic())
                    .and_then(status::reason_of_status)
                    .map(|reason| Finding {
                        reason,
                        vague: false,
                    })
            })
            .or_else(|| {
                // Often the same text (a one-recipient report): read it once.
                (evidence.context != evidence.text)
                    .then(|| rules::finding_of_text(evidence.context))
                    .flatten()
            });
        let vague = found.is_some_and(|f| f.vague);
        let found = found
            .map(|f| f.reason)
            .or_else(|| evidence.reply_code.and_then(status::reason_of_reply_code))
            .or_else(|| match phase() {
                Some(Phase::Connect) => Some(Reason::Blocked),
                Some(Phase::MailFrom) => Some(Reason::Rejected),
                _ => None,
            });
        let mut reason = found.unwrap_or(if evidence.delayed {
            Reason::Expired
        } else {
            Reason::OnHold
        });
        let addressing_status = evidence.status.is_some_and(|s| s.subject == 1);
        let about_address = matches!(
            reason,
            Reason::UserUnknown | Reason::HostUnknown | Reason::HasMoved
        );
        let phase = if about_address { phase() } else { None };
        if reason == Reason::UserUnknown && !addressing_status {
            // Naming the address backs the words only when the status
            // (absent or X.0.0) does not say something else.
            let backed = || {
                phase == Some(Phase::RcptTo)
                    || (evidence.status.is_none_or(EnhancedStatus::is_generic)
                        && (rules::names_its_address(evidence.text)
                            || rules::names_its_address(evidence.context)))
            };
            if phase == Some(Phase::Data) || (vague && !backed()) {
                reason = Reason::Filtered;
            }
        }
        // Refused at MAIL FROM: "no such user/domain" is about the sender.
        if about_address && phase == Some(Phase::MailFrom) {
            reason = Reason::Rejected;
        }
        if reason == Reason::HostUnknown && evidence.temporary() {
            reason = Reason::NetworkError;
        }
        reason
    };
    Verdict {
        kind: reason.kind(evidence.temporary()),
        reason,
    }
}

/// Classifies a synchronous SMTP reply, as a relay answers at MAIL FROM,
/// RCPT TO or DATA time, with the same rules as bounces.
///
/// `phase` is the command the reply answered, when the caller knows it (a
/// client does): the same words mean different things there ("user
/// unknown" at MAIL FROM is about the sender, after DATA it is a content
/// filter). `None` takes the reply as the answer to RCPT TO unless its
/// text names another command. A 2xx reply is `delivered`.
///
/// ```
/// use bounce::{classify_reply, Kind, Phase, Reason};
/// let v = classify_reply(550, "5.1.1".parse().ok(), "user unknown", Some(Phase::RcptTo));
/// assert_eq!((v.kind, v.reason), (Kind::Hard, Reason::UserUnknown));
/// let v = classify_reply(452, "4.2.2".parse().ok(), "mailbox full", None);
/// assert_eq!((v.kind, v.reason), (Kind::Soft, Reason::MailboxFull));
/// ```
pub fn classify_reply(
    reply_code: u16,
    status: Option<EnhancedStatus>,
    text: &str,
    phase: Option<Phase>,
) -> Verdict {
    let status = status.or_else(|| status::find_status(text));
    diagnose(&Evidence {
        text,
        context: "",
        status,
        reply_code: Some(reply_code),
        phase: Some(phase.or_else(|| phase_of(text)).unwrap_or(Phase::RcptTo)),
        delayed: false,
    })
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::reason::Kind;

    #[test]
    fn replies() {
        let v = classify_reply(
            550,
            None,
            "5.1.1 <a@b.example>: Recipient address rejected: User unknown",
            None,
        );
        assert_eq!((v.kind, v.reason), (Kind::Hard, Reason::UserUnknown));
        let v = classify_reply(452, None, "4.2.2 Mailbox full", None);
        assert_eq!((v.kind, v.reason), (Kind::Soft, Reason::MailboxFull));
        let v = classify_reply(550, "5.1.1".parse().ok(), "", None);
        assert_eq!(v.reason, Reason::UserUnknown);
        let v = classify_reply(250, None, "2.0.0 Ok: queued", None);
        assert_eq!((v.kind, v.reason), (Kind::Other, Reason::Delivered));
        let v = classify_reply(554, None, "something odd", None);
        assert_eq!((v.kind, v.reason), (Kind::Soft, Reason::OnHold));
        // After DATA, "unknown user" is a filter unless an X.1.x status backs it.
        let v = classify_reply(550, None, "user unknown", Some(Phase::Data));
        assert_eq!(v.reason, Reason::Filtered);
        let v = classify_reply(550, None, "5.1.1 user unknown", Some(Phase::Data));
        assert_eq!(v.reason, Reason::UserUnknown);
        // Refused at MAIL FROM: about the sender, not the recipient.
        let v = classify_reply(550, None, "5.1.8 sender domain does not exist", None);
        assert_eq!(v.reason, Reason::Rejected);
        // A synchronous refusal not to DATA answered RCPT TO: backed.
        let v = classify_reply(550, None, "no such user here", None);
        assert_eq!((v.kind, v.reason), (Kind::Hard, Reason::UserUnknown));
    }

    #[test]
    fn a_refused_sender_is_not_a_refused_recipient() {
        // A relay verifying our return path: the words and the status are
        // a recipient's, only the phase tells they are about the sender.
        let text = "5.1.2 <b-x@bounce.example>: domain not found";
        let v = classify_reply(550, None, text, Some(Phase::MailFrom));
        assert_eq!((v.kind, v.reason), (Kind::Soft, Reason::Rejected));
        let v = classify_reply(550, None, text, Some(Phase::RcptTo));
        assert_eq!((v.kind, v.reason), (Kind::Hard, Reason::HostUnknown));
    }

    fn bounce(text: &str, status: &str) -> Verdict {
        let status = status.parse().ok();
        diagnose(&Evidence {
            text,
            status,
            reply_code: status::find_reply_code(text, false),
            ..Default::default()
        })
    }

    #[test]
    fn generic_unknown_user_needs_backing() {
        // Nothing backs the words: a filter's stock answer.
        for (text, status) in [
            ("550 user unknown", "5.0.0"),
            ("550 <a@b.example>... User Unknown", "5.2.1"),
            ("550 5.7.1 550 User Unknown: a@b.example", "5.7.1"),
            ("<a@b.example>: 550 No such user here", ""),
        ] {
            let v = bounce(text, status);
            assert_eq!((v.kind, v.reason), (Kind::Soft, Reason::Filtered), "{text}");
        }
        // Backed by the status, the RCPT phase, or naming the address.
        for (text, status) in [
            ("550 5.1.1 user unknown", "5.1.1"),
            ("550 user unknown (in reply to RCPT TO command)", "5.0.0"),
            (">>> RCPT To:<a@b.example>\n<<< 550 No such user", ""),
            (
                "a@b.example: 192.0.2.1 does not like recipient. 550 user unknown",
                "",
            ),
            ("550 <a@b.example>: User unknown", "5.0.0"),
            ("Unknown user: a@b.example", ""),
        ] {
            let v = bounce(text, status);
            assert_eq!(
                (v.kind, v.reason),
                (Kind::Hard, Reason::UserUnknown),
                "{text}"
            );
        }
        // A mail system's statement about its own directory needs nothing.
        let v = bounce("The recipient name is not recognized", "");
        assert_eq!(v.reason, Reason::UserUnknown);
    }
}
