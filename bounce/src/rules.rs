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

mod causes;
mod families;
mod general;
#[doc(hidden)]
pub mod holdout;

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

/// The rule table, highest priority first: the named causes, then the
/// general words (`rules/causes.rs`, `rules/general.rs`).
pub static RULES: LazyLock<Vec<&'static Rule>> =
    LazyLock::new(|| causes::RULES.iter().chain(general::RULES).collect());

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
/// The table first, then the [phrase families](families).
pub(crate) fn finding_of_folded(folded: &str) -> Option<Finding> {
    let matcher = MATCHER.as_ref()?;
    let best = matcher
        .automaton
        .find_overlapping_iter(folded)
        .map(|m| m.pattern().as_usize())
        .filter(|&pattern| holdout::admits(pattern))
        .filter_map(|pattern| matcher.rule_of_pattern.get(pattern).copied())
        .min();
    match best.and_then(|best| RULES.get(best)) {
        Some(rule) => Some(Finding {
            reason: rule.reason,
            vague: rule.vague,
        }),
        None => families::finding(folded, matcher.rule_of_pattern.len()),
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn table_builds() {
        assert!(MATCHER.is_some());
        let mut seen = std::collections::HashSet::new();
        for rule in RULES.iter() {
            for phrase in rule.phrases {
                assert!(seen.insert(*phrase), "{phrase:?} is listed twice");
            }
        }
        for rule in RULES.iter() {
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
