//! Phrase families: the same refusal worded differently by every vendor.
//! A family is a subject (what the refusal is about: the recipient, the
//! mailbox, the domain, the sender, ...) and a predicate (what is wrong
//! with it), near each other in either order: "the recipient name is not
//! recognized", "invalid recipient", "mailbox exceeds allowed size". Read
//! only when no phrase of the table matched, so a table phrase (a named
//! cause) always wins; they catch the wordings no table can list.
//!
//! The words are our own summary of RFC 3463's subjects and of how mail
//! servers word their replies; a family's words must each mean the same
//! thing across vendors (no product names, no vendor's error numbers).

use std::sync::LazyLock;

use aho_corasick::{AhoCorasick, AhoCorasickBuilder, MatchKind};

use super::{Finding, holdout};
use crate::reason::Reason;

/// One family: any of `subjects` near any of `predicates` means `reason`.
pub struct Family {
    pub reason: Reason,
    pub subjects: &'static [&'static str],
    pub predicates: &'static [&'static str],
    /// As [`super::Rule::vague`]: content filters word their refusals so too.
    pub vague: bool,
    /// A host or domain name (`mx.example.net`) is a subject too, of the
    /// [`NAME_PREDICATES`] only, right after it.
    pub names: bool,
}

/// What a bare host or domain name may be said to be, right after it
/// ("mx.example.net does not exist"). Only these: a name next to
/// "invalid" or "unknown" is as often the server speaking of the message
/// ("mx.example.com said: invalid DKIM").
const NAME_PREDICATES: &[&str] = &[
    "does not exist",
    "doesn't exist",
    "nonexistent",
    "non-existent",
    "unrouteable",
    "unroutable",
];

/// Terms read at most per text: a refusal names its cause early, and a
/// report that repeats the words thousands of times must not cost the
/// square of that.
const MAX_TERMS: usize = 256;

/// Most bytes from a subject to the predicate after it: a few words
/// ("the recipient name is not recognized").
const NEAR: usize = 32;
/// Most bytes from a predicate to the subject after it: an adjective
/// stands right before its noun ("invalid recipient", "unrouteable
/// domain", "invalid final delivery userid").
const ADJACENT: usize = 16;

/// In priority order: the first family found decides.
pub static FAMILIES: &[Family] = &[
    // A mailbox that exists but is closed for now (RFC 3463 X.2.1):
    // "account has been disabled", "recipient account is blocked",
    // "mailbox is inactive", "user suspended".
    Family {
        reason: Reason::Suspend,
        subjects: &["account", "mailbox", "recipient", "user", "address"],
        predicates: &[
            "disabled",
            "suspended",
            "inactive",
            "deactivated",
            "discontinued",
            "is blocked",
            "is locked",
            "has been closed",
            "is closed",
            "frozen",
            "expired",
        ],
        vague: false,
        names: false,
    },
    // A mailbox over its quota (X.2.2): "mailbox full", "quota exceeded",
    // "mailbox exceeds allowed size", "exceeded the local limit", "over quota",
    // "out of storage", "overdrawn his diskspace quota", "does not have
    // enough space", "quota violation".
    Family {
        reason: Reason::MailboxFull,
        subjects: &[
            "mailbox",
            "quota",
            "storage",
            "inbox",
            "mail box",
            "disk space",
            "diskspace",
            "space",
        ],
        predicates: &[
            "full",
            "exceed",
            "exceeded",
            "exceeds",
            "exceeding",
            "overdrawn",
            "over",
            "out of",
            "too many messages",
            "no space",
            "not enough",
            "insufficient",
            "violation",
        ],
        vague: false,
        names: false,
    },
    // A message that breaks the format (RFC 5322): "duplicate header",
    // "not RFC 5322 compliant", "malformed header", "multiple Subject
    // headers". Before the sender's family: "From: header" is
    // about the format, not the sender.
    Family {
        reason: Reason::NotCompliantRfc,
        subjects: &[
            "header", "headers", "rfc 5322", "rfc5322", "rfc 2822", "rfc2822", "rfc 822",
        ],
        predicates: &[
            "duplicate",
            "multiple",
            "malformed",
            "missing",
            "compliant",
            "violation",
            "violates",
            "syntax",
        ],
        vague: false,
        names: false,
    },
    // The sender refused (X.1.7, X.1.8, X.7.1 at MAIL FROM): "sender
    // rejected", "sender address refused", "from address is not verified",
    // "From: domain is invalid". Before the domain's family: a refusal
    // naming the sender is about the sender's domain.
    Family {
        reason: Reason::Rejected,
        subjects: &[
            "sender",
            "from address",
            "envelope from",
            "mail from",
            "return path",
            "return-path",
            "from:",
            "identities",
        ],
        predicates: &[
            "rejected",
            "refused",
            "denied",
            "not allowed",
            "not permitted",
            "not verified",
            "unverified",
            "not authorized",
            "blacklisted",
            "invalid",
            "failed the check",
        ],
        vague: false,
        names: false,
    },
    // A domain that does not exist or has no mail host (X.1.2, X.4.4):
    // "domain does not exist", "host not found", "domain is not
    // reachable", "unrouteable domain".
    Family {
        reason: Reason::HostUnknown,
        subjects: &["domain", "host", "hostname", "mail exchanger"],
        predicates: &[
            "not found",
            "does not exist",
            "doesn't exist",
            "unknown",
            "not reachable",
            "unreachable",
            "unrouteable",
            "unroutable",
            "no such",
            "not resolvable",
            "unresolvable",
            "invalid",
            "nonexistent",
            "non-existent",
        ],
        vague: false,
        names: true,
    },
    // A recipient the receiver does not know (X.1.1): "recipient name is
    // not recognized", "invalid recipient", "no valid recipients", "user
    // not listed", "address rejected: not found", "unknown mailbox".
    // "Unknown" alone is also what content filters answer, hence vague.
    Family {
        reason: Reason::UserUnknown,
        subjects: &[
            "recipient",
            "recipients",
            "user",
            "userid",
            "user id",
            "username",
            "mailbox",
            "addressee",
            "account",
            "email address",
            "e-mail address",
            "destinataire",
        ],
        predicates: &[
            "not recognized",
            "not recognised",
            "unrecognized",
            "not listed",
            "invalid",
            "no valid",
            "not valid",
            "nonexistent",
            "non-existent",
            "does not exist",
            "doesn't exist",
            "not found",
            "no such",
            "not known",
        ],
        vague: false,
        names: false,
    },
    // Relaying refused (X.7.1 for a domain not served): "relaying denied",
    // "insecure mail relay", "relay not permitted".
    Family {
        reason: Reason::NoRelaying,
        subjects: &["relay", "relaying"],
        predicates: &[
            "denied",
            "not permitted",
            "not allowed",
            "refused",
            "prohibited",
            "insecure",
            "rejected",
        ],
        vague: false,
        names: false,
    },
    // Authentication of the sender's domain failed (X.7.20-X.7.27):
    // "DMARC check failed", "SPF validation error", "bad SPF records".
    Family {
        reason: Reason::AuthFailure,
        subjects: &["dmarc", "spf", "dkim"],
        predicates: &[
            "fail",
            "failed",
            "failure",
            "not pass",
            "did not pass",
            "error",
            "reject",
            "bad",
            "invalid",
            "missing",
        ],
        vague: false,
        names: false,
    },
    // The sending host has no or a mismatching reverse name (X.7.25):
    // "no reverse DNS", "PTR lookup failed", "mismatches client IP".
    Family {
        reason: Reason::RequirePtr,
        subjects: &["ptr", "rdns", "reverse dns", "reverse name", "client ip"],
        predicates: &[
            "missing",
            "no ",
            "failed",
            "mismatch",
            "not match",
            "lookup",
        ],
        vague: false,
        names: false,
    },
    // Too many connections or messages from the sender (X.4.5, 421):
    // "connection frequency limited", "too many connections", "rate limit
    // exceeded".
    Family {
        reason: Reason::TooManyConn,
        subjects: &[
            "connection",
            "connections",
            "ip frequency",
            "frequency",
            "concurrent",
        ],
        predicates: &["limited", "limit", "too many", "exceeded"],
        vague: false,
        names: false,
    },
    // Too much mail from the sender over a time (X.7.1 with a rate): "has
    // sent to too many recipients this hour", "too many messages per
    // minute", "sending rate exceeded".
    Family {
        reason: Reason::Speeding,
        subjects: &[
            "too many messages",
            "too many recipients",
            "too many mails",
            "sending rate",
            "message rate",
        ],
        predicates: &[
            "hour",
            "minute",
            "per day",
            "today",
            "exceeded",
            "slow down",
        ],
        vague: false,
        names: false,
    },
    // The sending host refused as such (X.7.1 at connect): "IP blocked",
    // "client host rejected", "listed on a blocklist", "not accepting
    // connections".
    Family {
        reason: Reason::Blocked,
        subjects: &[
            "ip",
            "client host",
            "your host",
            "sending host",
            "connections",
            "blocklist",
            "blacklist",
            "dnsbl",
        ],
        predicates: &[
            "blocked",
            "blacklisted",
            "listed",
            "rejected",
            "refused",
            "not accepting",
            "banned",
            "invalid",
        ],
        vague: false,
        names: false,
    },
    // The sending MTA gave up after retrying (X.4.7): "could not deliver
    // for the last 432000 seconds, giving up", "delivery failed 20
    // attempts", "aborted after 5 days", "retry time exceeded".
    Family {
        reason: Reason::Expired,
        subjects: &[
            "deliver",
            "delivery",
            "retry",
            "retries",
            "attempts",
            "queue",
            "queue period",
        ],
        predicates: &[
            "giving up",
            "gave up",
            "for the last",
            "aborted after",
            "time exceeded",
            "timeout",
            "timed out",
            "too long",
            "within the allowed",
            "expired",
        ],
        vague: false,
        names: false,
    },
    // The same, counted in attempts: "delivery failed 20 attempts",
    // "retries exhausted", "maximum attempts exceeded".
    Family {
        reason: Reason::Expired,
        subjects: &["attempts", "retries", "tries", "delivery attempts"],
        predicates: &["failed", "exhausted", "exceeded", "maximum"],
        vague: false,
        names: false,
    },
];

/// Where term `id` of [`MATCHER`] comes from.
#[derive(Clone, Copy)]
struct Term {
    family: usize,
    subject: bool,
}

struct Matcher {
    automaton: AhoCorasick,
    terms: Vec<Term>,
}

static MATCHER: LazyLock<Option<Matcher>> = LazyLock::new(|| {
    let mut patterns = Vec::new();
    let mut terms = Vec::new();
    for (family, f) in FAMILIES.iter().enumerate() {
        for (words, subject) in [(f.subjects, true), (f.predicates, false)] {
            for term in words {
                patterns.push(*term);
                terms.push(Term { family, subject });
            }
        }
    }
    let automaton = AhoCorasickBuilder::new()
        .ascii_case_insensitive(true)
        .match_kind(MatchKind::Standard)
        .build(&patterns)
        .ok()?;
    Some(Matcher { automaton, terms })
});

/// Every term of the families, in [`MATCHER`]'s order (for `holdout`).
pub(super) fn terms() -> impl Iterator<Item = &'static str> {
    FAMILIES
        .iter()
        .flat_map(|f| f.subjects.iter().chain(f.predicates).copied())
}

/// Whether the bytes around `start..end` of `text` end words there.
fn whole_words(text: &[u8], start: usize, end: usize) -> bool {
    let word = |c: &u8| c.is_ascii_alphanumeric();
    let before = start == 0 || !text.get(start - 1).is_some_and(word);
    // A predicate written with its own trailing space ("no ") ends a word.
    let after = text.get(end.wrapping_sub(1)) == Some(&b' ') || !text.get(end).is_some_and(word);
    before && after
}

/// Byte ranges of the host or domain names in `text`: words of labels
/// joined by dots whose last label is alphabetic (`mx.example.net`, not
/// `192.0.2.1` nor `5.1.1`).
fn dotted_names(text: &str) -> Vec<(usize, usize)> {
    let mut names = Vec::new();
    let mut start = 0;
    for word in text.split(' ') {
        let end = start + word.len();
        let name = word.trim_end_matches(['.', ',', ';', ':', ')', ']', '>']);
        let name = name.trim_start_matches(['(', '[', '<']);
        let labels: Vec<&str> = name.split('.').collect();
        let is_name = labels.len() >= 2
            && labels.iter().all(|l| {
                !l.is_empty() && l.bytes().all(|b| b.is_ascii_alphanumeric() || b == b'-')
            })
            && labels
                .last()
                .is_some_and(|tld| tld.len() >= 2 && tld.bytes().all(|b| b.is_ascii_alphabetic()));
        if is_name {
            names.push((start, end));
            if names.len() == MAX_TERMS {
                break;
            }
        }
        start = end + 1;
    }
    names
}

/// The first family (in priority order) with a subject near a predicate
/// in `folded` (text passed through [`super::fold`]); `offset` numbers the
/// terms after the table's phrases for `holdout`.
pub(super) fn finding(folded: &str, offset: usize) -> Option<Finding> {
    let matcher = MATCHER.as_ref()?;
    let bytes = folded.as_bytes();
    // (family, subject?, start, end) of every whole-word term found.
    let mut found: Vec<(Term, usize, usize)> = Vec::new();
    for m in matcher.automaton.find_overlapping_iter(folded) {
        if found.len() == MAX_TERMS {
            break;
        }
        let id = m.pattern().as_usize();
        if whole_words(bytes, m.start(), m.end())
            && holdout::admits(offset + id)
            && let Some(term) = matcher.terms.get(id)
        {
            found.push((*term, m.start(), m.end()));
        }
    }
    // Whether predicate `p` is said of the subject at `s` (byte ranges).
    let near = |s: (usize, usize), p: (usize, usize)| {
        (p.0 >= s.1 && p.0 - s.1 <= NEAR) || (s.0 >= p.1 && s.0 - p.1 <= ADJACENT)
    };
    (0..FAMILIES.len()).find_map(|family| {
        let of = |subject: bool| {
            found
                .iter()
                .filter(move |(t, _, _)| t.family == family && t.subject == subject)
                .map(|&(_, start, end)| (start, end))
        };
        // The names are found once, and only when a name predicate is there.
        let named = || {
            if !FAMILIES[family].names {
                return false;
            }
            let said: Vec<usize> = of(false)
                .filter(|p| {
                    let said = folded.get(p.0..p.1).unwrap_or_default();
                    NAME_PREDICATES.iter().any(|n| n.eq_ignore_ascii_case(said))
                })
                .map(|p| p.0)
                .collect();
            !said.is_empty()
                && dotted_names(folded)
                    .iter()
                    .any(|n| said.contains(&(n.1 + 1)))
        };
        let hit = of(true).any(|s| of(false).any(|p| near(s, p))) || named();
        hit.then(|| Finding {
            reason: FAMILIES[family].reason,
            vague: FAMILIES[family].vague,
        })
    })
}

#[cfg(test)]
mod tests {
    use super::*;

    fn reason(text: &str) -> Option<Reason> {
        let mut folded = String::new();
        super::super::fold(text, &mut folded);
        finding(&folded, 0).map(|f| f.reason)
    }

    #[test]
    fn wordings_of_one_refusal_fall_in_one_family() {
        let cases = [
            ("The recipient name is not recognized", Reason::UserUnknown),
            ("550 Invalid recipient", Reason::UserUnknown),
            ("No valid recipients for this message", Reason::UserUnknown),
            ("User mailbox exceeds allowed size", Reason::MailboxFull),
            ("the domain is not reachable", Reason::HostUnknown),
            (
                "This account has been disabled or discontinued",
                Reason::Suspend,
            ),
            (
                "Could not deliver for the last 432000 seconds. Giving up.",
                Reason::Expired,
            ),
            ("550 Connection frequency limited", Reason::TooManyConn),
            ("550 DMARC check failed", Reason::AuthFailure),
            ("553 neko.example.com does not exist", Reason::HostUnknown),
            (
                "mx.example.com said: message rejected, invalid DKIM",
                Reason::AuthFailure,
            ),
            (
                "INVALID IP FOR SENDING MAIL OF DOMAIN example.com",
                Reason::Blocked,
            ),
            (
                "has sent to too many recipients this hour",
                Reason::Speeding,
            ),
            ("Delivery failed 20 attempts", Reason::Expired),
            ("550 Bad SPF records for example.org", Reason::AuthFailure),
            (
                "This message is not RFC 5322 compliant",
                Reason::NotCompliantRfc,
            ),
            (
                "554 Transaction failed: Duplicate header 'DKIM-Signature'.",
                Reason::NotCompliantRfc,
            ),
            (
                "Email address is not verified. The following identities failed the check",
                Reason::Rejected,
            ),
        ];
        for (text, want) in cases {
            assert_eq!(reason(text), Some(want), "{text}");
        }
    }

    #[test]
    fn far_apart_or_inside_words_is_no_match() {
        assert_eq!(reason("hello world"), None);
        // "user" inside "users", far from the predicate.
        assert_eq!(
            reason("users of this service are reminded that long messages are sometimes invalid"),
            None
        );
        assert_eq!(reason("superuser invalidated"), None);
    }
}
