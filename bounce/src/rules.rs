//! The text rule table: phrases that receivers write in their rejection
//! text, and the reason each phrase reveals.
//!
//! The table is data. Rules are listed from the most specific to the most
//! general; when phrases of several rules occur in one text, the rule that
//! comes first in the table wins. Matching is case-insensitive, on text
//! whose runs of white space have been folded into one space. The phrases
//! are our own summary of how mail servers word their replies. A rule
//! marked [`vague`](Rule::vague) names its reason in words receivers also
//! use for other refusals; the diagnosis wants other evidence before it
//! believes them.

use std::sync::LazyLock;

use aho_corasick::{AhoCorasick, AhoCorasickBuilder, MatchKind};

use crate::reason::Reason;

/// One line of the table: any of `phrases` means `reason`.
pub struct Rule {
    /// The reason the phrases reveal.
    pub reason: Reason,
    /// Lowercase phrases, single-spaced.
    pub phrases: &'static [&'static str],
    /// True when receivers also use these words for refusals of another
    /// kind, so that the words alone are not proof of `reason`. The
    /// generic "user unknown" family is the case in point: content filters
    /// answer it after DATA too. See [`crate::classify_reply`] and
    /// [`Finding::vague`].
    pub vague: bool,
}

/// The rule table, highest priority first.
pub static RULES: &[Rule] = &[
    // Phrases that would otherwise read as a block or a listing.
    Rule {
        reason: Reason::UserUnknown,
        phrases: &[
            "recipient address rejected: access denied",
            "not listed in domino directory",
            "not listed in public name",
            "user not listed",
        ],
        vague: false,
    },
    Rule {
        reason: Reason::AuthFailure,
        phrases: &[
            "dmarc policy",
            "dmarc check",
            "dmarc verification",
            "failed dmarc",
            "dmarc failure",
            "spf check failed",
            "spf check",
            "bad spf",
            "pass spf",
            "hard fail policy",
            "spf validation",
            "spf fail",
            "failed spf",
            "sender policy framework",
            "authentication checks failed",
            "dkim signature",
            "dkim check",
            "dkim verification",
            "unauthenticated email from",
            "unauthenticated mail from",
            "does not designate",
            "not authorized to send on behalf",
            "sender is unauthenticated",
            "authentication information",
            "authenticate with",
        ],
        vague: false,
    },
    Rule {
        reason: Reason::RequirePtr,
        phrases: &[
            "reverse dns",
            "reverse lookup",
            "reverse hostname",
            "reverse-dns",
            "ptr record",
            "ptr resource record",
            "no ptr",
            "rdns",
            "ip name lookup failed",
            "cannot find your hostname",
            "mismatches client ip",
            "without a valid sender domain",
            "does not resolve to your ip",
        ],
        vague: false,
    },
    Rule {
        reason: Reason::BadReputation,
        phrases: &[
            "ip reputation",
            "domain reputation",
            "sender reputation",
            "poor reputation",
            "bad reputation",
            "low reputation",
            "likely suspicious due to the very low reputation",
            "likely suspicious due to",
            "user complaints",
        ],
        vague: false,
    },
    Rule {
        reason: Reason::VirusDetected,
        phrases: &["virus", "malware", "infected", "message contains a threat"],
        vague: false,
    },
    Rule {
        reason: Reason::NotCompliantRfc,
        phrases: &[
            "rfc 5322",
            "rfc5322",
            "rfc 2822",
            "rfc2822",
            "rfc 822",
            "not rfc compliant",
            "duplicate header",
            "multiple addresses in from",
            "headers are not rfc",
        ],
        vague: false,
    },
    // The sender, not the recipient, was refused.
    Rule {
        reason: Reason::Rejected,
        phrases: &[
            "sender address rejected",
            "domain of sender address",
            "sender verify failed",
            "sender verification failed",
            "sender was rejected",
            "sender domain",
        ],
        vague: false,
    },
    Rule {
        reason: Reason::NoRelaying,
        phrases: &[
            "relay access denied",
            "no relaying",
            "relaying denied",
            "relay denied",
            "relaying not allowed",
            "relay not permitted",
            "not permitted to relay",
            "unable to relay",
            "relaying prohibited",
            "we do not relay",
            "not allowed to relay",
            "relay not allowed",
            "relaying to",
            "not a gateway",
            "not our domain",
            "not local host",
            "to relay",
            "mail relay",
        ],
        vague: false,
    },
    Rule {
        reason: Reason::TooManyConn,
        phrases: &[
            "too many connections",
            "too many concurrent",
            "too many simultaneous",
            "connection limit",
            "connection rate limit",
            "connection frequency",
            "ip frequency",
            "too many smtp sessions",
            "too many sessions",
        ],
        vague: false,
    },
    Rule {
        reason: Reason::ExceedLimit,
        phrases: &[
            "limit set by recipient",
            "exceeds limit set",
            "message length exceeds",
        ],
        vague: false,
    },
    Rule {
        reason: Reason::Blocked,
        phrases: &[
            "my name was rejected",
            "invalid ip",
            "server of your isp",
            "spamhaus",
            "spamcop",
            "blacklist",
            "black list",
            "blocklist",
            "block list",
            "denylist",
            "dnsbl",
            " rbl",
            "/rbl",
            "listed at",
            "listed on",
            "listed in",
            "client host rejected",
            "client host blocked",
            "banned sending ip",
            "blocked ip",
            "ip address blocked",
            "your ip",
            "sending ip",
            "ip blocked",
            "host blocked",
            "refused to talk to me",
            "not accepting connections",
            "connection refused by",
            "access denied",
            "service refuse",
            "service refused",
            "has been blocked",
            "has been temporarily blocked",
            "you have been blocked",
            "blocked by",
            "blocked using",
            "your access to this mail system",
            "not allowed to connect",
            "open relay",
            "sender rejected",
            "your host",
            "your server",
            "your network",
        ],
        vague: false,
    },
    Rule {
        reason: Reason::SpamDetected,
        phrases: &[
            "spam",
            "junk mail",
            "bulk mail",
            "unsolicited",
            "content rejected",
            "message content rejected",
            "considered as junk",
            "suspicious",
        ],
        vague: false,
    },
    Rule {
        reason: Reason::Speeding,
        phrases: &[
            "rate limit",
            "rate-limit",
            "ratelimit",
            "too fast",
            "receiving mail at a rate",
            "too many recipients this hour",
            "too many messages",
            "too many emails",
            "sending limit",
            "throttl",
            "unexpected volume",
        ],
        vague: false,
    },
    Rule {
        reason: Reason::MesgTooBig,
        phrases: &[
            "message too large",
            "line limit exceeded",
            "line too long",
            "message too big",
            "message is too large",
            "message is too big",
            "message size exceeds",
            "message exceeds",
            "size exceeds",
            "exceeds size limit",
            "exceeds the maximum size",
            "maximum message size",
            "message size limit",
            "mail size limit",
            "too large for",
        ],
        vague: false,
    },
    Rule {
        reason: Reason::SystemFull,
        phrases: &[
            "insufficient system storage",
            "insufficient disk space",
            "disk full",
            "out of disk space",
            "no space left",
            "system storage",
        ],
        vague: false,
    },
    Rule {
        reason: Reason::MailboxFull,
        phrases: &[
            "mailbox full",
            "storage allocation",
            "mailbox size exceeded",
            "mail box is full",
            "mailbox is full",
            "mailbox is over",
            "mailbox has exceeded",
            "mailbox size limit",
            "mailbox would exceed",
            "box full",
            "over quota",
            "overquota",
            "quota exceeded",
            "exceeded quota",
            "exceeds quota",
            "quota exceed",
            "exceed the quota",
            "exceeded the quota",
            "exceeded its quota",
            "over its quota",
            "over the quota",
            "quota full",
            "disk quota",
            "mail quota",
            "storage quota",
            "insufficient storage",
            "not enough storage",
            "mailbox storage",
            "out of storage",
            "storage space",
            "exceeded storage",
            "user is over",
            "account is full",
            "inbox is full",
            "full mailbox",
            "mail box full",
            "mailfolder is full",
            "too much mail",
            "mailbox exceeds",
            "mailbox exceeded",
        ],
        vague: false,
    },
    Rule {
        reason: Reason::Suspend,
        phrases: &[
            "account is disabled",
            "disabled recipient",
            "account has been disabled",
            "account disabled",
            "is disabled",
            "been disabled",
            "mailbox disabled",
            "mailbox is disabled",
            "is inactive",
            "inactive account",
            "inactive user",
            "account inactive",
            "account is inactive",
            "mailbox is inactive",
            "not active",
            "deactivated",
            "suspended",
            "discontinued",
            "account is locked",
            "account locked",
            "account is blocked",
            "account has been blocked",
            "recipient account is blocked",
            "account expired",
            "account has expired",
            "mailbox unavailable due to",
        ],
        vague: false,
    },
    Rule {
        reason: Reason::HasMoved,
        phrases: &[
            "has moved",
            "has been moved",
            "no longer on server",
            "mailbox moved",
            "address has changed",
        ],
        vague: false,
    },
    // What a mail system says of its own directory: the mailbox is not
    // there.
    Rule {
        reason: Reason::UserUnknown,
        phrases: &[
            "unknown local part",
            "unknown or illegal alias",
            "recipnotfound",
            "bad recipient",
            "is not a known",
            "no valid recipients",
            "invalid final delivery userid",
            "recipientnotfound",
            "address not found",
            "invalid recipient",
            "invalid mailbox",
            "invalid address",
            "invalid user",
            "not a valid mailbox",
            "not a valid user",
            "not a known user",
            "bad destination mailbox",
            "destination mailbox address invalid",
            "mailbox unavailable",
            "mailbox not available",
            "rejected recipient",
            "name is not recognized",
            "not recognized",
            "wasn't found at the destination",
            "was not found at the destination",
            "no longer valid",
            "undeliverable address",
            "does not have an account",
            "doesn't have an account",
            "unknown in virtual",
            "unknown in local",
            "not our customer",
            "couldn't be found",
            "could not be found",
        ],
        vague: false,
    },
    // The generic words of a refused recipient. Receivers' content filters
    // answer them too (after DATA, or to refuse mail they do not want), so
    // they prove the mailbox is gone only when an addressing status (X.1.x)
    // or the RCPT phase backs them.
    Rule {
        reason: Reason::UserUnknown,
        phrases: &[
            "user unknown",
            "unknown user",
            "unknown recipient",
            "recipient unknown",
            "unknown address",
            "address unknown",
            "addressee unknown",
            "unknown mailbox",
            "no such user",
            "no mailbox here",
            "unknown account",
            "user not known",
            "no such recipient",
            "no such mailbox",
            "no such account",
            "no such address",
            "no such person",
            "no such local user",
            "no mailbox",
            "no account",
            "user not found",
            "recipient not found",
            "mailbox not found",
            "account not found",
            "user does not exist",
            "user doesn't exist",
            "mailbox does not exist",
            "mailbox doesn't exist",
            "account does not exist",
            "account doesn't exist",
            "address does not exist",
            "address doesn't exist",
            "recipient does not exist",
            "that you tried to reach does not exist",
            "user unavailable",
            "doesn't have a",
            "no user",
        ],
        vague: true,
    },
    Rule {
        reason: Reason::NotAccept,
        phrases: &[
            "does not accept mail",
            "doesn't accept mail",
            "not accepting mail",
            "accepts no mail",
            "doesn't receive email",
            "does not receive email",
            "null mx",
            "no mx",
        ],
        vague: false,
    },
    // A DNS answer that may change: not proof the domain is gone.
    Rule {
        reason: Reason::NetworkError,
        phrases: &[
            "host not found, try again",
            "unexpected name server reply",
            "server failure",
            "servfail",
        ],
        vague: false,
    },
    Rule {
        reason: Reason::HostUnknown,
        phrases: &[
            "host unknown",
            "unknown host",
            "host not found",
            "no such host",
            "unrouteable address",
            "domain has no mx",
            "no valid mx",
            "domain not found",
            "domain name not found",
            "unknown domain",
            "no such domain",
            "domain does not exist",
            "domain doesn't exist",
            "non-existent domain",
            "nonexistent domain",
            "nxdomain",
            "name or service not known",
            "no route to domain",
            "no relevant answers",
            "unroutable domain",
            "domain is not valid",
            "host or domain name not found",
            "unrouteable mail domain",
            "all relevant mx records point to non-existent hosts",
            "domain is not reachable",
            "dns lookup failure",
        ],
        vague: false,
    },
    Rule {
        reason: Reason::Rejected,
        phrases: &[
            "domain of sender",
            "sender verification",
            "sender is not",
            "sender not",
            "invalid sender",
            "bad sender",
            "envelope sender",
            "envelope from",
            "return address",
            "responsible address",
            "may not exist, or you may not have permission to post",
            "not have permission to post",
            "not allowed to post",
            "permission to post",
            "the group you tried to contact",
            // Google Groups signs its "cannot post" notices, in every
            // language, with its help link.
            "groups.google.com/support",
        ],
        vague: false,
    },
    Rule {
        reason: Reason::Filtered,
        phrases: &[
            "filtered",
            "content filter",
            "domain filter",
            "refused by recipient",
            "rejected by recipient",
            "recipient refuses",
            "user refuses",
            "not authorized to receive",
            "does not wish to receive",
        ],
        vague: false,
    },
    Rule {
        reason: Reason::SecurityError,
        phrases: &[
            "unauthenticated senders",
            "authentication required",
            "must issue a starttls",
            "tls required",
            "requires tls",
            "encryption required",
            "must authenticate",
            "authentication failed",
            "certificate",
        ],
        vague: false,
    },
    Rule {
        reason: Reason::FailedStartTls,
        phrases: &[
            "starttls failed",
            "tls negotiation failed",
            "tls handshake",
            "does not support tls",
            "does not support starttls",
        ],
        vague: false,
    },
    // Connections that kept timing out until the message was given up.
    Rule {
        reason: Reason::Expired,
        phrases: &[
            "timed out",
            "did not accept our requests to connect",
            "failing for a long time",
        ],
        vague: false,
    },
    Rule {
        reason: Reason::NetworkError,
        phrases: &[
            "connection refused",
            "connection reset",
            "able to establish",
            "host name lookup failure",
            "name lookup failed",
            "lost connection",
            "network is unreachable",
            "no route to host",
            "hop count exceeded",
            "too many hops",
            "routing loop",
            "mail loop",
            "loop detected",
            "loops back",
            "name service error",
            "dns error",
            "host not reachable",
            "unable to connect",
            "could not connect",
            "connect to",
        ],
        vague: false,
    },
    // The MTA gave up; a named cause (above) says more than this.
    Rule {
        reason: Reason::Expired,
        phrases: &[
            "retry timeout exceeded",
            "retry time exceeded",
            "aborted after",
            "could not be delivered for",
            "delivery attempts exhausted",
            "maximum delivery time",
            "message expired",
            "delivery expired",
            "expired",
            "too long in the queue",
            "could not be delivered within",
            "was not delivered within",
            "unable to deliver in",
            "in the queue too long",
            "queue too long",
            "delivery time",
            "time limit",
            "has been delayed",
            "deferred for",
            "could not deliver for the last",
            "warning message only",
            "not yet been delivered",
            "will keep trying",
            "will be retried",
        ],
        vague: false,
    },
    Rule {
        reason: Reason::ContentError,
        phrases: &[
            "8-bit data",
            "8bit data",
            "headers too large",
            "invalid header",
            "improper",
            "content error",
        ],
        vague: false,
    },
    Rule {
        reason: Reason::PolicyViolation,
        phrases: &[
            "policy",
            "protocol violation",
            "header error",
            "prohibited",
            "not allowed",
            "content presents a potential",
        ],
        vague: false,
    },
    Rule {
        reason: Reason::SyntaxError,
        phrases: &[
            "syntax error",
            "command unrecognized",
            "unrecognized command",
            "bad sequence of commands",
            "malformed address",
            "parameter not implemented",
            "command not implemented",
        ],
        vague: false,
    },
    Rule {
        reason: Reason::MailerError,
        phrases: &[
            "mailer error",
            "command failed",
            "procmail",
            "exit code",
            "pipe to",
            "delivery program",
        ],
        vague: false,
    },
    Rule {
        reason: Reason::SystemError,
        phrases: &[
            "system error",
            "internal error",
            "server error",
            "local error",
            "mail system problem",
            "i/o error",
            "out of memory",
            "temporary failure",
            "try again later",
            "please try later",
            "service unavailable",
            "service not available",
        ],
        vague: false,
    },
    // Advice to the sender, read only when nothing above names a cause.
    Rule {
        reason: Reason::UserUnknown,
        phrases: &[
            "check if address is correct",
            "check if the address is correct",
        ],
        vague: false,
    },
];

struct Matcher {
    automaton: AhoCorasick,
    /// Pattern id -> index of its rule in [`RULES`].
    rule_of_pattern: Vec<usize>,
}

static MATCHER: LazyLock<Option<Matcher>> = LazyLock::new(|| {
    let mut patterns = Vec::new();
    let mut rule_of_pattern = Vec::new();
    for (index, rule) in RULES.iter().enumerate() {
        for phrase in rule.phrases {
            patterns.push(*phrase);
            rule_of_pattern.push(index);
        }
    }
    let automaton = AhoCorasickBuilder::new()
        .ascii_case_insensitive(true)
        .match_kind(MatchKind::Standard)
        .build(&patterns)
        .ok()?;
    Some(Matcher {
        automaton,
        rule_of_pattern,
    })
});

/// A case-insensitive (ASCII) matcher for a fixed phrase list; `None` only
/// if the automaton cannot be built (it always can for short lists).
pub(crate) fn phrase_matcher(phrases: &[&str]) -> Option<AhoCorasick> {
    AhoCorasickBuilder::new()
        .ascii_case_insensitive(true)
        .match_kind(MatchKind::LeftmostFirst)
        .build(phrases)
        .ok()
}

/// Folds white space runs into one space and typographic apostrophes into
/// `'`, appending to `out`.
pub(crate) fn fold(text: &str, out: &mut String) {
    let b = text.as_bytes();
    let mut space = out.is_empty() || out.ends_with(' ');
    // Start of the run of bytes copied as they are.
    let mut run = 0;
    let mut i = 0;
    while i < b.len() {
        let c = b[i];
        // Width of a special sequence at `i` and what it becomes.
        let (width, becomes) = match c {
            b' ' | b'\t' | b'\r' | b'\n' | 0x0b | 0x0c => (1, Some(' ')),
            b'`' => (1, Some('\'')),
            // U+00A0 no-break space
            0xC2 if b.get(i + 1) == Some(&0xA0) => (2, Some(' ')),
            // U+2018, U+2019 typographic apostrophes
            0xE2 if b.get(i + 1) == Some(&0x80) && matches!(b.get(i + 2), Some(0x98 | 0x99)) => {
                (3, Some('\''))
            }
            _ => (1, None),
        };
        let Some(becomes) = becomes else {
            i += 1;
            continue;
        };
        if run < i {
            out.push_str(text.get(run..i).unwrap_or_default());
            space = false;
        }
        if becomes == ' ' {
            if !space {
                out.push(' ');
                space = true;
            }
        } else {
            out.push(becomes);
            space = false;
        }
        i += width;
        run = i;
        if c == b'\n' {
            // Continuation lines of a multi-line reply repeat the code
            // (`550-5.7.1 ...`); drop it so phrases can span the lines.
            let rest = text.get(i..).unwrap_or_default();
            let line_end = rest.find('\n').unwrap_or(rest.len());
            let line = rest.get(..line_end).unwrap_or_default();
            let stripped = crate::status::strip_reply_prefix(line);
            i += line.len() - stripped.len();
            run = i;
        }
    }
    if run < b.len() {
        out.push_str(text.get(run..).unwrap_or_default());
    }
}

/// What the table reads in a text: the reason of the first rule (in
/// table order) one of whose phrases occurs, and whether that rule is
/// [`vague`](Rule::vague).
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Finding {
    /// The reason of the rule.
    pub reason: Reason,
    /// The rule's words alone do not prove `reason`.
    pub vague: bool,
}

/// The reason revealed by `text`, if any phrase of the table occurs in it.
/// Addresses are left out first: a mailbox called `filtered@...` says
/// nothing about this failure.
pub fn reason_of_text(text: &str) -> Option<Reason> {
    finding_of_text(text).map(|f| f.reason)
}

/// Like [`reason_of_text`], telling also whether the words were vague.
pub fn finding_of_text(text: &str) -> Option<Finding> {
    if text.is_empty() {
        return None;
    }
    if is_plain(text) {
        // Nothing to fold or leave out: search the text as it is.
        return finding_of_folded(text);
    }
    let mut folded = String::with_capacity(text.len());
    let mut at = 0;
    for (start, end) in noise(text) {
        fold(text.get(at..start).unwrap_or_default(), &mut folded);
        folded.push(' ');
        at = end;
    }
    fold(text.get(at..).unwrap_or_default(), &mut folded);
    finding_of_folded(&folded)
}

/// True when the words of a [vague](Rule::vague) rule name the refused
/// address as their subject: `<a@b.example>: User unknown`, `Unknown
/// user: a@b.example`. A receiver that names the address this way is
/// answering for that mailbox (at RCPT time), not refusing the message.
pub(crate) fn names_its_address(text: &str) -> bool {
    let found = crate::address::find_addresses(text);
    if found.is_empty() {
        return false;
    }
    let vague = || {
        RULES
            .iter()
            .filter(|rule| rule.vague)
            .flat_map(|rule| rule.phrases.iter())
    };
    let starts_with = |hay: &str, phrase: &str| {
        hay.as_bytes()
            .get(..phrase.len())
            .is_some_and(|head| head.eq_ignore_ascii_case(phrase.as_bytes()))
    };
    let ends_with = |hay: &str, phrase: &str| {
        hay.len() >= phrase.len()
            && hay
                .as_bytes()
                .get(hay.len() - phrase.len()..)
                .is_some_and(|tail| tail.eq_ignore_ascii_case(phrase.as_bytes()))
    };
    found.iter().any(|f| {
        // `<address>: words`
        let after = text.get(f.end..).unwrap_or_default();
        let after = after.strip_prefix('>').unwrap_or(after);
        if let Some(words) = after.strip_prefix(':') {
            let words = words.trim_start();
            if vague().any(|p| starts_with(words, p)) {
                return true;
            }
        }
        // `words: <address>`
        let before = text.get(..f.start).unwrap_or_default();
        let before = before.strip_suffix('<').unwrap_or(before).trim_end();
        before
            .strip_suffix(':')
            .is_some_and(|words| vague().any(|p| ends_with(words.trim_end(), p)))
    })
}

/// True when [`fold`] would not change `text` and it holds no address.
fn is_plain(text: &str) -> bool {
    let b = text.as_bytes();
    !b.iter()
        .any(|&c| matches!(c, b'@' | b'\n' | b'\r' | b'\t' | b'`') || c >= 0x80)
        && !b.windows(2).any(|w| w == b"  ")
        && !text.starts_with(' ')
}

/// Byte ranges of the addresses in `text`, in order.
fn noise(text: &str) -> Vec<(usize, usize)> {
    crate::address::find_addresses(text)
        .into_iter()
        .map(|f| (f.start, f.end))
        .collect()
}

/// Like [`finding_of_text`] for text already passed through [`fold`].
pub(crate) fn finding_of_folded(folded: &str) -> Option<Finding> {
    let matcher = MATCHER.as_ref()?;
    let best = matcher
        .automaton
        .find_overlapping_iter(folded)
        .filter_map(|m| matcher.rule_of_pattern.get(m.pattern().as_usize()).copied())
        .min()?;
    RULES.get(best).map(|rule| Finding {
        reason: rule.reason,
        vague: rule.vague,
    })
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn table_builds() {
        assert!(MATCHER.is_some());
        let mut seen = std::collections::HashSet::new();
        for rule in RULES {
            for phrase in rule.phrases {
                assert!(seen.insert(*phrase), "{phrase:?} is listed twice");
            }
        }
        for rule in RULES {
            for phrase in rule.phrases {
                assert_eq!(*phrase, phrase.to_lowercase(), "phrases are lowercase");
                assert!(!phrase.contains("  "), "phrases are single-spaced");
            }
        }
    }

    #[test]
    fn folds_white_space_and_quotes() {
        let mut out = String::new();
        fold(
            "  doesn\u{2019}t\r\n 550-5.1.1  exist\u{a0}here `x`",
            &mut out,
        );
        assert_eq!(out, "doesn't exist here 'x'");
        let mut out = String::new();
        fold("ünïcode\tstays", &mut out);
        assert_eq!(out, "ünïcode stays");
    }

    #[test]
    fn common_texts() {
        let cases = [
            (
                "550 5.1.1 <a@b.example>... User Unknown",
                Reason::UserUnknown,
            ),
            ("452 4.2.2 Mailbox full", Reason::MailboxFull),
            (
                "Host unknown (Name server: x: host not found)",
                Reason::HostUnknown,
            ),
            ("554 5.7.1 Relay access denied", Reason::NoRelaying),
            (
                "550 5.7.26 Unauthenticated email from x is not accepted due to domain's\n DMARC policy",
                Reason::AuthFailure,
            ),
            (
                "Client host rejected: blocked using zen.spamhaus.org",
                Reason::Blocked,
            ),
            ("retry timeout exceeded", Reason::Expired),
            (
                "The email account that you tried to reach is disabled.",
                Reason::Suspend,
            ),
        ];
        for (text, reason) in cases {
            assert_eq!(reason_of_text(text), Some(reason), "{text}");
        }
        assert_eq!(reason_of_text("hello world"), None);
        // A phrase split over the lines of a multi-line reply.
        assert_eq!(
            reason_of_text("550-5.7.1 Messages with multiple\n550 5.7.1 addresses in From: header"),
            Some(Reason::NotCompliantRfc)
        );
        // The address of the recipient is not evidence.
        assert_eq!(reason_of_text("<filtered@example.jp>:"), None);
        // The generic words are found, and said to be vague.
        assert_eq!(
            finding_of_text("550 User unknown"),
            Some(Finding {
                reason: Reason::UserUnknown,
                vague: true
            })
        );
        assert_eq!(
            finding_of_text("User x not listed in Domino Directory"),
            Some(Finding {
                reason: Reason::UserUnknown,
                vague: false
            })
        );
    }

    #[test]
    fn words_naming_their_address() {
        assert!(names_its_address("550 <a@b.example>: User unknown"));
        assert!(names_its_address("a@b.example:  no such user"));
        assert!(names_its_address("Unknown user: a@b.example"));
        assert!(names_its_address("User unknown: <a@b.example>"));
        assert!(!names_its_address("<a@b.example>: 550 unknown user"));
        assert!(!names_its_address("<a@b.example>... User unknown"));
        assert!(!names_its_address("550 user unknown"));
        assert!(!names_its_address("<a@b.example>: mailbox full"));
    }
}
