//! SMTP codes: the RFC 3463 enhanced status (`5.1.1`) and the three-digit
//! reply code (`550`), how to find them in free text, and what an enhanced
//! status says about the reason when the text says nothing clearer.

use std::fmt;
use std::str::FromStr;

use serde::{Serialize, Serializer};

use crate::reason::Reason;

/// An RFC 3463 enhanced mail system status code, `class.subject.detail`.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
pub struct EnhancedStatus {
    /// 2 (success), 4 (persistent transient failure) or 5 (permanent failure).
    pub class: u8,
    /// The subject (0..=999).
    pub subject: u16,
    /// The detail (0..=999).
    pub detail: u16,
}

impl EnhancedStatus {
    /// True for class 4 (the condition may go away).
    pub fn is_temporary(self) -> bool {
        self.class == 4
    }

    /// True for class 5.
    pub fn is_permanent(self) -> bool {
        self.class == 5
    }

    /// True for the catch-all codes `X.0.0` that say nothing specific.
    pub fn is_generic(self) -> bool {
        self.subject == 0 && self.detail == 0
    }
}

impl fmt::Display for EnhancedStatus {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(f, "{}.{}.{}", self.class, self.subject, self.detail)
    }
}

impl Serialize for EnhancedStatus {
    fn serialize<S: Serializer>(&self, serializer: S) -> Result<S::Ok, S::Error> {
        serializer.collect_str(self)
    }
}

impl FromStr for EnhancedStatus {
    type Err = crate::Error;

    fn from_str(s: &str) -> crate::Result<Self> {
        let bytes = s.trim().as_bytes();
        match parse_status_at(bytes, 0) {
            Some((status, end)) if end == bytes.len() => Ok(status),
            _ => Err(crate::Error::BadStatus(s.to_owned())),
        }
    }
}

/// Parses `D.DDD.DDD` at `at`; returns the status and the end offset.
fn parse_status_at(b: &[u8], at: usize) -> Option<(EnhancedStatus, usize)> {
    let class = *b.get(at)?;
    if !matches!(class, b'2' | b'4' | b'5') || b.get(at + 1) != Some(&b'.') {
        return None;
    }
    let (subject, end) = parse_number(b, at + 2, 3)?;
    if b.get(end) != Some(&b'.') {
        return None;
    }
    let (detail, end) = parse_number(b, end + 1, 3)?;
    Some((
        EnhancedStatus {
            class: class - b'0',
            subject,
            detail,
        },
        end,
    ))
}

fn parse_number(b: &[u8], at: usize, max_digits: usize) -> Option<(u16, usize)> {
    let mut value: u16 = 0;
    let mut end = at;
    while let Some(d) = b.get(end).filter(|c| c.is_ascii_digit()) {
        if end - at == max_digits {
            return None;
        }
        value = value * 10 + u16::from(d - b'0');
        end += 1;
    }
    (end > at).then_some((value, end))
}

fn is_word_byte(c: u8) -> bool {
    c.is_ascii_alphanumeric() || c == b'.' || c == b'_'
}

/// Finds the first enhanced status in `text` that stands alone as a word
/// (not part of an IP address, a version number or a date).
pub fn find_status(text: &str) -> Option<EnhancedStatus> {
    let b = text.as_bytes();
    let mut i = 0;
    while i < b.len() {
        if matches!(b[i], b'2' | b'4' | b'5')
            && (i == 0 || !is_word_byte(b[i - 1]))
            && let Some((status, end)) = parse_status_at(b, i)
        {
            let glued = match b.get(end).copied() {
                Some(c) if c.is_ascii_alphanumeric() || c == b'_' => true,
                Some(b'.') => b.get(end + 1).is_some_and(|c| c.is_ascii_digit()),
                _ => false,
            };
            if !glued {
                return Some(status);
            }
        }
        i += 1;
    }
    None
}

/// Finds an SMTP reply code (4xx or 5xx, or 2xx when `allow_success`) in
/// free text. A code counts when it starts a line or follows `:`, `;`, `(`
/// or `<<<`, and is followed by a space, `-`, or the end of the text.
/// A code directly followed by an enhanced status wins over others.
pub fn find_reply_code(text: &str, allow_success: bool) -> Option<u16> {
    let b = text.as_bytes();
    let mut first = None;
    let mut i = 0;
    while i + 3 <= b.len() {
        let c = b[i];
        let wanted = matches!(c, b'4' | b'5') || (allow_success && c == b'2');
        if wanted
            && b[i + 1].is_ascii_digit()
            && b[i + 2].is_ascii_digit()
            && b[i + 1] <= b'5'
            && starts_reply(b, i)
        {
            let after = b.get(i + 3).copied();
            if matches!(after, None | Some(b' ' | b'-' | b'\r' | b'\n' | b'\t')) {
                let code = u16::from(c - b'0') * 100
                    + u16::from(b[i + 1] - b'0') * 10
                    + u16::from(b[i + 2] - b'0');
                let status_follows = parse_status_at(b, i + 4).is_some();
                if status_follows {
                    return Some(code);
                }
                first.get_or_insert(code);
            }
        }
        i += 1;
    }
    first
}

fn starts_reply(b: &[u8], i: usize) -> bool {
    let mut j = i;
    while j > 0 && matches!(b[j - 1], b' ' | b'\t') {
        j -= 1;
    }
    if j == 0 {
        return true;
    }
    match b[j - 1] {
        b'\n' | b'\r' | b':' | b';' | b'(' | b'<' | b'"' | b'[' => true,
        // "said: 550", "smtp; 550" handled above; "... 550 Host unknown" too
        b'.' => j >= 3 && &b[j - 3..j] == b"...",
        _ => false,
    }
}

/// Removes a leading reply code and enhanced status (`550-5.7.1 `,
/// `550 `) from a line of a multi-line reply.
pub fn strip_reply_prefix(line: &str) -> &str {
    let trimmed = line.trim_start();
    let b = trimmed.as_bytes();
    let is_code = b.len() >= 4
        && matches!(b[0], b'2' | b'4' | b'5')
        && b[1].is_ascii_digit()
        && b[2].is_ascii_digit()
        && matches!(b[3], b'-' | b' ');
    if !is_code {
        return line;
    }
    let rest = trimmed.get(4..).unwrap_or_default();
    match parse_status_at(rest.as_bytes(), 0) {
        Some((_, end)) if rest.as_bytes().get(end).is_none_or(|c| *c == b' ') => {
            rest.get(end..).unwrap_or_default().trim_start()
        }
        _ => rest,
    }
}

/// Removes the repeats of a reply's leading `code status` that some MTAs
/// leave inside the text when they join a multi-line reply into one
/// (`550-5.7.1 Messages with multiple 550 5.7.1 addresses ...`).
pub fn drop_repeated_prefix(text: &str) -> String {
    let b = text.as_bytes();
    let has_code = b.len() >= 4
        && matches!(b[0], b'4' | b'5')
        && b[1].is_ascii_digit()
        && b[2].is_ascii_digit()
        && matches!(b[3], b'-' | b' ');
    let end = match has_code.then(|| parse_status_at(b, 4)).flatten() {
        Some((_, end)) => end,
        None => return text.to_owned(),
    };
    let code = text.get(..3).unwrap_or_default();
    let status = text.get(4..end).unwrap_or_default();
    let mut body = text.get(end..).unwrap_or_default().to_owned();
    for sep in [' ', '-'] {
        let needle = format!(" {code}{sep}{status} ");
        if body.contains(&needle) {
            body = body.replace(&needle, " ");
        }
    }
    let mut out = String::with_capacity(text.len());
    out.push_str(text.get(..end).unwrap_or_default());
    out.push_str(&body);
    out
}

/// What an enhanced status alone says about the reason. `None` where the
/// code is too broad to tell (e.g. `5.7.1` is used for almost anything).
pub fn reason_of_status(status: EnhancedStatus) -> Option<Reason> {
    use Reason::*;
    let reason = match (status.subject, status.detail) {
        // 2xx success
        _ if status.class == 2 => Delivered,
        // X.1: addressing
        (1, 0) | (1, 1) | (1, 3) => UserUnknown,
        // RFC 7505: the domain has a null MX, it takes no mail.
        (1, 10) => NotAccept,
        (1, 2) => HostUnknown,
        (1, 6) => HasMoved,
        (1, 7) | (1, 8) => Rejected,
        // X.2: mailbox
        (2, 1) => Suspend,
        (2, 2) => MailboxFull,
        (2, 3) => ExceedLimit,
        (2, 4) => MailerError,
        // X.3: mail system
        (3, 1) => SystemFull,
        (3, 2) => NotAccept,
        (3, 4) => MesgTooBig,
        (3, 0) | (3, 3) | (3, 5) => SystemError,
        // X.4: network and routing
        (4, 1) | (4, 2) | (4, 6) | (4, 0) => NetworkError,
        (4, 3) => SystemError,
        (4, 4) => HostUnknown,
        (4, 5) => SystemFull,
        (4, 7) => Expired,
        // X.5: protocol
        (5, 3) => ExceedLimit,
        (5, 1) | (5, 2) | (5, 4) => SyntaxError,
        // X.6: content
        (6, _) => ContentError,
        // X.7: security and policy
        (7, 23) | (7, 20) | (7, 21) | (7, 22) | (7, 24) | (7, 26) => AuthFailure,
        (7, 25) => RequirePtr,
        (7, 27) => NotAccept,
        (7, 13) => Suspend,
        (7, 4) | (7, 6) | (7, 7) | (7, 8) | (7, 9) | (7, 11) | (7, 5) => SecurityError,
        (7, 10) => FailedStartTls,
        (7, 28) => Speeding,
        (7, 2) | (7, 3) => PolicyViolation,
        _ => return None,
    };
    Some(reason)
}

/// Whether `status` names its cause so precisely that the text cannot say
/// otherwise: the codes registered for one cause (RFC 7372's
/// authentication results X.7.20-X.7.26, X.7.28 for a flood, X.2.2 a full
/// mailbox, X.3.4 a message too big for the system, X.1.10 the recipient's
/// null MX). Not X.7.27, the sender's null MX: a fault of ours, which the
/// text may say better than the code's hard reading.
/// Their words ("blocked", "rejected") are only the receiver's
/// summary; the code says why.
pub fn decides(status: EnhancedStatus) -> bool {
    status.class != 2
        && matches!(
            (status.subject, status.detail),
            (7, 20..=26) | (7, 28) | (2, 2) | (3, 4) | (1, 10)
        )
}

/// What a reply code alone says: only the 50x family (command syntax and
/// sequence errors, RFC 5321 section 4.2.2) is specific enough.
pub fn reason_of_reply_code(code: u16) -> Option<Reason> {
    matches!(code, 500..=504).then_some(Reason::SyntaxError)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn parses_status() {
        let s: EnhancedStatus = "5.7.26".parse().expect("valid");
        assert_eq!(s.to_string(), "5.7.26");
        assert!("5.1".parse::<EnhancedStatus>().is_err());
        assert!("6.1.1".parse::<EnhancedStatus>().is_err());
    }

    #[test]
    fn finds_status_in_text() {
        assert_eq!(
            find_status("Remote host said: 550 5.2.2 <a@b.c>... Mailbox Full")
                .map(|s| s.to_string()),
            Some("5.2.2".into())
        );
        assert_eq!(find_status("from [192.0.2.153] at 4.4.2014"), None);
        assert_eq!(find_status("version 5.1.1a"), None);
        assert_eq!(
            find_status("550-5.7.26 DMARC").map(|s| s.to_string()),
            Some("5.7.26".into())
        );
    }

    #[test]
    fn strips_continuation_prefix() {
        assert_eq!(
            strip_reply_prefix("550-5.7.26 DMARC policy"),
            "DMARC policy"
        );
        assert_eq!(
            strip_reply_prefix(" 550 5.7.1 addresses in"),
            "addresses in"
        );
        assert_eq!(strip_reply_prefix("554-No SMTP service"), "No SMTP service");
        assert_eq!(strip_reply_prefix("2024 was a year"), "2024 was a year");
    }

    #[test]
    fn drops_repeated_prefix() {
        assert_eq!(
            drop_repeated_prefix(
                "550-5.7.1 [x] Messages with multiple 550 5.7.1 addresses in From:"
            ),
            "550-5.7.1 [x] Messages with multiple addresses in From:"
        );
        assert_eq!(drop_repeated_prefix("550 user unknown"), "550 user unknown");
    }

    #[test]
    fn finds_reply_code() {
        assert_eq!(
            find_reply_code("Remote host said: 550 5.1.1 <x>", false),
            Some(550)
        );
        assert_eq!(find_reply_code("smtp; 452 4.2.2 full", false), Some(452));
        assert_eq!(find_reply_code("from 192.0.2.153 port 25", false), None);
        assert_eq!(
            find_reply_code("<<< 550 Requested action", false),
            Some(550)
        );
        assert_eq!(find_reply_code("250 ok", false), None);
        assert_eq!(find_reply_code("250 ok", true), Some(250));
    }
}
