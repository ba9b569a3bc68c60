//! The human-readable text of a bounce: where the copy of the original
//! message starts, which addresses are the failed recipients, and which
//! lines explain each of them.

use std::collections::{HashMap, HashSet};
use std::sync::LazyLock;

use aho_corasick::AhoCorasick;

use crate::address::{self, Found, find_addresses, is_system_mailbox, same_address};

/// Most bytes of a report's human-readable text that are read.
pub const MAX_REPORT: usize = 1024 * 1024;

/// Most recipients returned for one report (one more is read, to know
/// that there were more).
pub const MAX_RECIPIENTS: usize = 1000;

/// Most lines of explanation kept for one recipient.
const MAX_EXPLANATION_LINES: usize = 200;

/// Lines that announce the copy of the original message (lowercase,
/// compared after trimming).
const ORIGINAL_MARKERS: &[&str] = &[
    "below this line is a copy of the message",
    "this is a copy of the message",
    "original message follows",
    "unsent message follows",
    "message headers follow",
    "returned message",
    "original message headers",
    "headers of the original message",
    "original message --",
    "original message -",
    "copy of the original message",
    "text of the returned message",
    "--- original message",
    "returned mail follows",
    "undelivered message follows",
    "included is a copy",
    "original message header",
];

/// Header names that start a copied message when no marker line precedes it.
const HEADER_STARTS: &[&str] = &["received: ", "return-path: ", "x-originating-ip: "];

/// Splits `text` into the report and the copy of the original message.
pub fn split_original(text: &str) -> (&str, Option<&str>) {
    static MARKERS: LazyLock<Option<AhoCorasick>> =
        LazyLock::new(|| crate::rules::phrase_matcher(ORIGINAL_MARKERS));
    let Some(markers) = MARKERS.as_ref() else {
        return (text, None);
    };
    // The first marker line, found in one pass over the text.
    let marker = markers.find_iter(text).find_map(|m| {
        let start = text.get(..m.start())?.rfind('\n').map_or(0, |at| at + 1);
        let end = text
            .get(m.end()..)?
            .find('\n')
            .map_or(text.len(), |at| m.end() + at + 1);
        let line = text.get(start..end)?;
        // The marker opens its line (after dashes, stars or spaces): the
        // same words inside a sentence ("delete your own text from the
        // attached returned message") announce nothing.
        let lead = text.get(start..m.start())?;
        let opens = !lead.chars().any(char::is_alphanumeric);
        (opens && line.trim().len() < 120).then_some((start, end))
    });
    let limit = marker.map_or(text.len(), |(start, _)| start);
    // A copied header block without a marker line before it.
    let mut offset = 0;
    for line in text.get(..limit).unwrap_or_default().split_inclusive('\n') {
        let trimmed = line.trim();
        if offset > 0
            && !line.starts_with([' ', '\t'])
            && HEADER_STARTS.iter().any(|h| {
                trimmed
                    .as_bytes()
                    .get(..h.len())
                    .is_some_and(|start| start.eq_ignore_ascii_case(h.as_bytes()))
            })
        {
            return (text.get(..offset).unwrap_or(text), text.get(offset..));
        }
        offset += line.len();
    }
    if let Some((start, end)) = marker {
        return (
            text.get(..start).unwrap_or(text),
            text.get(end..).map(str::trim_start),
        );
    }
    (text, None)
}

/// One failed recipient found in the text, with the lines that follow its
/// first mention up to the next recipient.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Mention {
    /// The address.
    pub address: String,
    /// The line that first names the recipient (with the transcript
    /// command lines just before it).
    pub line: String,
    /// The explaining lines.
    pub text: String,
}

/// Finds the failed recipients of a free-text report, in order of first
/// mention. `exclude` lists the addresses of the parties around the report
/// (the original sender, the report's own sender and recipient).
pub fn recipients(report: &str, exclude: &[String]) -> Vec<Mention> {
    // Bounded work on hostile input: a report is read up to MAX_REPORT
    // bytes, names at most MAX_RECIPIENTS recipients, and one recipient's
    // explanation spans at most MAX_EXPLANATION_LINES lines.
    let report = clip_to(report, MAX_REPORT);
    let lines: Vec<&str> = report.lines().collect();
    // Addresses of every line, found once.
    let found_in: Vec<Vec<Found<'_>>> = lines.iter().map(|l| find_addresses(l)).collect();
    // Lowercase address -> index in `candidates`.
    let mut index_of: HashMap<String, usize> = HashMap::new();
    // (first line, address, named the way recipients are named)
    let mut candidates: Vec<(usize, String, bool)> = Vec::new();
    // Excluded addresses named as recipients: someone who mailed himself.
    let mut self_sent: Vec<(usize, String, bool)> = Vec::new();
    for (index, (line, found_here)) in lines.iter().zip(&found_in).enumerate() {
        if found_here.is_empty() || names_sender(line) {
            continue;
        }
        for found in found_here {
            let candidate = found.address;
            if is_system_mailbox(candidate) || looks_like_message_id(line, found.start) {
                continue;
            }
            if exclude.iter().any(|e| same_address(e, candidate)) {
                if self_sent.is_empty() && names_recipient(line, found) {
                    self_sent.push((index, candidate.to_owned(), true));
                }
                continue;
            }
            let strong = names_recipient(line, found);
            let key = candidate.to_ascii_lowercase();
            match index_of.get(&key) {
                Some(&at) => {
                    if let Some(seen) = candidates.get_mut(at) {
                        seen.2 |= strong;
                    }
                }
                None if candidates.len() <= MAX_RECIPIENTS => {
                    index_of.insert(key, candidates.len());
                    candidates.push((index, candidate.to_owned(), strong));
                }
                None => {}
            }
        }
    }
    // Addresses only mentioned in passing ("please contact x@y") are not
    // recipients when others are named the way failed recipients are.
    if candidates.is_empty() {
        candidates = self_sent;
    }
    let any_strong = candidates.iter().any(|(_, _, strong)| *strong);
    let starts: Vec<(usize, String)> = candidates
        .into_iter()
        .filter(|(_, _, strong)| *strong || !any_strong)
        .map(|(index, address, _)| (index, address))
        .collect();
    let is_start: HashSet<String> = starts.iter().map(|(_, a)| a.to_ascii_lowercase()).collect();
    let mut out = Vec::with_capacity(starts.len());
    for (first, address) in &starts {
        // A session transcript names the command, and the reply to it,
        // just before the line that names the recipient: keep them with
        // the recipient.
        let mut start = *first;
        while start > 0
            && first - start < 4
            && lines.get(start - 1).is_some_and(|l| {
                let l = l.trim_start();
                l.starts_with(">>>") || l.starts_with("<<<")
            })
        {
            start -= 1;
        }
        // The explanation ends where another recipient is named.
        let limit = lines.len().min(first + MAX_EXPLANATION_LINES);
        let end = (first + 1..limit)
            .find(|&i| {
                found_in.get(i).is_some_and(|here| {
                    here.iter().any(|f| {
                        !same_address(f.address, address)
                            && is_start.contains(&f.address.to_ascii_lowercase())
                    })
                })
            })
            .unwrap_or(limit);
        let text = lines
            .get(start..end)
            .map(|l| l.join("\n"))
            .unwrap_or_default();
        let line = lines
            .get(start..=*first)
            .map(|l| l.join("\n"))
            .unwrap_or_default();
        out.push(Mention {
            address: address.clone(),
            line,
            text,
        });
    }
    out
}

/// `text` cut to at most `max` bytes, at a character boundary.
pub fn clip_to(text: &str, max: usize) -> &str {
    if text.len() <= max {
        return text;
    }
    let mut end = max;
    while !text.is_char_boundary(end) {
        end -= 1;
    }
    text.get(..end).unwrap_or_default()
}

/// True when `found` is named in `line` the way reports name a failed
/// recipient: at the start of the line, after "to"/"recipient"/"address",
/// before a colon or `...`, or on a line carrying an SMTP reply.
fn names_recipient(line: &str, found: &Found<'_>) -> bool {
    const BEFORE: &[&str] = &[
        "to",
        "to:",
        "rcpt",
        "recipient",
        "recipient:",
        "recipients:",
        "address",
        "address:",
        "addressee:",
        "user",
        "user:",
        "mailbox",
        "mailbox:",
        "for",
    ];
    // Only the words just before the address matter (and long lines must
    // not make this quadratic).
    // `To: x` lines summarise the original message's headers; they list
    // whom it was sent to, not who failed.
    if line
        .trim_start()
        .get(..3)
        .is_some_and(|h| h.eq_ignore_ascii_case("to:"))
    {
        return false;
    }
    let before = window_before(line, found.start, 48);
    let before = before
        .trim_end_matches(|c: char| c.is_whitespace() || "<\"'*-[(:".contains(c))
        .to_ascii_lowercase();
    let word = before
        .rsplit(|c: char| c.is_whitespace() || c == '<')
        .next()
        .unwrap_or_default();
    let after = line.get(found.end..).unwrap_or_default();
    let after = after.trim_start_matches(['>', '"', '\'', ']', ')']);
    before.trim().is_empty()
        || BEFORE.contains(&word)
        || after.starts_with(':')
        || after.starts_with("...")
        || crate::status::find_reply_code(clip_to(line, 512), false).is_some()
}

/// Up to `max` bytes of `line` just before byte `at`, at a char boundary.
fn window_before(line: &str, at: usize, max: usize) -> &str {
    let mut start = at.saturating_sub(max);
    while start < at && !line.is_char_boundary(start) {
        start += 1;
    }
    line.get(start..at).unwrap_or_default()
}

/// Lines that name the sender of the original message, not a recipient.
fn names_sender(line: &str) -> bool {
    const SENDER_LINES: &[&str] = &[
        "from:",
        "mail from",
        "sender:",
        "reply-to:",
        "return-path:",
        "envelope-from",
    ];
    let lower = line.trim_start().to_ascii_lowercase();
    SENDER_LINES.iter().any(|p| lower.starts_with(p))
}

/// `Message-ID: <x@y>` and `id <x@y>` mention ids, not people.
fn looks_like_message_id(line: &str, start: usize) -> bool {
    let before = window_before(line, start, 24).to_ascii_lowercase();
    let before = before.trim_end_matches(['<', ' ']);
    before.ends_with("message-id:") || before.ends_with(" id") || before.ends_with("msgid:")
}

/// The addresses listed in a header value such as `X-Failed-Recipients`.
pub fn header_addresses(value: &str) -> Vec<String> {
    find_addresses(value)
        .into_iter()
        .map(|f| f.address.to_owned())
        .collect()
}

/// The first address in `value`, if any.
pub fn first(value: &str) -> Option<String> {
    address::first_address(value).map(str::to_owned)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn splits_and_finds() {
        let text = "Hi. This is the qmail-send program.\n\n<a@example.jp>:\nRemote host said: 550 5.1.1 <a@example.jp>... User Unknown\n\n<b@example.jp>:\nsaid: 552 full\n\n--- Below this line is a copy of the message.\n\nReturn-Path: <s@example.org>\n";
        let (report, original) = split_original(text);
        assert!(original.is_some_and(|o| o.starts_with("Return-Path")));
        let found = recipients(report, &["s@example.org".to_owned()]);
        assert_eq!(found.len(), 2);
        assert_eq!(found[0].address, "a@example.jp");
        assert!(found[0].text.contains("User Unknown"));
        assert!(found[1].text.contains("552 full"));
    }

    #[test]
    fn marker_words_inside_a_sentence_are_no_marker() {
        let text = "delete your own text from the attached returned message.\n\n<a@example.jp>: said: 550 x\n";
        assert_eq!(split_original(text), (text, None));
        let text = "<a@example.jp>: said: 550 x\n------ This is a copy of the message, including all the headers. ------\nReturn-Path: <s@example.org>\n";
        let (report, original) = split_original(text);
        assert_eq!(report, "<a@example.jp>: said: 550 x\n");
        assert!(original.is_some_and(|o| o.starts_with("Return-Path")));
    }

    #[test]
    fn transcript_lines_stay_with_their_recipient() {
        let report = "While talking to mx.example.org:\n>>> MAIL From:<s@example.org>\n<<< 501 no access from mail server\n554 <a@example.jp>... Remote protocol error\n";
        let found = recipients(report, &["s@example.org".to_owned()]);
        assert_eq!(found.len(), 1);
        assert!(
            found[0].text.starts_with(">>> MAIL From"),
            "{:?}",
            found[0].text
        );
    }
}
