//! Finding e-mail addresses in free text and telling recipients from the
//! addresses of mail systems.

/// Bytes allowed in a local part found in free text (a practical subset of
/// RFC 5322 `atext` plus dots).
fn is_local_byte(c: u8) -> bool {
    c.is_ascii_alphanumeric() || b".!#$%&'*+-/=?^_{|}~".contains(&c)
}

fn is_domain_byte(c: u8) -> bool {
    c.is_ascii_alphanumeric() || c == b'.' || c == b'-'
}

/// An address found in text, with its byte range.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Found<'a> {
    /// The address as written.
    pub address: &'a str,
    /// Byte offset of its first character.
    pub start: usize,
    /// Byte offset just past its last character.
    pub end: usize,
}

/// Every plausible address in `text`, in order. A domain must contain a dot;
/// addresses glued to `=` or `/` (query strings, URLs) are skipped.
pub fn find_addresses(text: &str) -> Vec<Found<'_>> {
    let b = text.as_bytes();
    let mut found = Vec::new();
    let mut from = 0;
    while let Some(rel) = b
        .get(from..)
        .and_then(|rest| rest.iter().position(|&c| c == b'@'))
    {
        let at = from + rel;
        from = at + 1;
        let mut start = at;
        while start > 0 && is_local_byte(b[start - 1]) {
            start -= 1;
        }
        let mut end = at + 1;
        while end < b.len() && is_domain_byte(b[end]) {
            end += 1;
        }
        // Trim punctuation that ends sentences or starts quotes.
        while end > at + 1 && matches!(b[end - 1], b'.' | b'-') {
            end -= 1;
        }
        while start < at && matches!(b[start], b'.' | b'\'' | b'=' | b'/' | b'|') {
            start += 1;
        }
        if start == at || end <= at + 1 {
            continue;
        }
        let domain = &b[at + 1..end];
        if !domain.contains(&b'.') || domain.starts_with(b".") || domain.contains(&b'@') {
            continue;
        }
        if start > 0 && matches!(b[start - 1], b'=' | b'/') {
            continue;
        }
        if let Some(address) = text.get(start..end) {
            found.push(Found {
                address,
                start,
                end,
            });
            from = end;
        }
    }
    found
}

/// The first address in `text`, if any.
pub fn first_address(text: &str) -> Option<&str> {
    find_addresses(text).into_iter().next().map(|f| f.address)
}

/// True for the local parts that name a mail system rather than a person
/// (they write bounces; they are not the failed recipients).
pub fn is_system_mailbox(address: &str) -> bool {
    let local = address.split('@').next().unwrap_or_default();
    let local = local.to_ascii_lowercase();
    const SYSTEM: &[&str] = &[
        "mailer-daemon",
        "mailer_daemon",
        "mail-daemon",
        "maildaemon",
        "mailerdaemon",
        "postmaster",
        "post_master",
        "mail.daemon",
        "no-reply",
        "noreply",
        "abuse",
        "hostmaster",
        "root",
    ];
    SYSTEM.contains(&local.as_str())
}

/// Compares two addresses the way mail routing does in practice
/// (case-insensitively).
pub fn same_address(a: &str, b: &str) -> bool {
    a.eq_ignore_ascii_case(b)
}

#[cfg(test)]
mod tests {
    use super::*;

    fn addrs(text: &str) -> Vec<&str> {
        find_addresses(text)
            .into_iter()
            .map(|f| f.address)
            .collect()
    }

    #[test]
    fn finds_addresses() {
        assert_eq!(addrs("<user@example.jp>: 550 no"), vec!["user@example.jp"]);
        assert_eq!(
            addrs("to kijitora@example.com. Then b+x@y.example.org"),
            vec!["kijitora@example.com", "b+x@y.example.org"]
        );
        assert_eq!(addrs("user@localhost and @ alone"), Vec::<&str>::new());
        assert_eq!(
            addrs("visit https://x/?Endpoint=a@b.example"),
            Vec::<&str>::new()
        );
        assert_eq!(addrs("'quoted@example.com'"), vec!["quoted@example.com"]);
    }

    #[test]
    fn system_mailboxes() {
        assert!(is_system_mailbox("MAILER-DAEMON@example.com"));
        assert!(!is_system_mailbox("kijitora@example.com"));
    }
}
