//! The machine-readable part of a delivery status notification
//! (`message/delivery-status`, RFC 3464): per-message and per-recipient
//! fields.

/// One per-recipient block of a DSN.
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct RecipientFields {
    /// `Final-Recipient` address (type prefix removed).
    pub final_recipient: Option<String>,
    /// `Original-Recipient` address (type prefix removed).
    pub original_recipient: Option<String>,
    /// `Action`, lowercase.
    pub action: Option<String>,
    /// `Status`, as written.
    pub status: Option<String>,
    /// `Diagnostic-Code`, type prefix removed, white space folded.
    pub diagnostic: Option<String>,
    /// `Remote-MTA`, type prefix removed.
    pub remote_mta: Option<String>,
}

impl RecipientFields {
    fn has_recipient(&self) -> bool {
        self.final_recipient.is_some() || self.original_recipient.is_some()
    }
}

/// Parses the body of a `message/delivery-status` part. Tolerates missing
/// blank lines between blocks, folded fields and junk lines.
pub fn parse(body: &str) -> Vec<RecipientFields> {
    let mut out = Vec::new();
    let mut current = RecipientFields::default();
    for (name, value) in fields(body) {
        if out.len() > crate::prose::MAX_RECIPIENTS {
            break;
        }
        let name = name.to_ascii_lowercase();
        match name.as_str() {
            // Only a hint; keep it when nothing better is known.
            "x-actual-recipient" if current.final_recipient.is_none() => {
                current.final_recipient = Some(strip_type(&value));
            }
            "" => {
                // A blank line ends a block that names a recipient; a block
                // without one (the per-message fields) is dropped.
                if current.has_recipient() {
                    out.push(std::mem::take(&mut current));
                } else {
                    current = RecipientFields::default();
                }
            }
            "final-recipient" => {
                if current.final_recipient.is_some() {
                    out.push(std::mem::take(&mut current));
                }
                current.final_recipient = Some(strip_type(&value));
            }
            "original-recipient" => {
                if current.original_recipient.is_some() {
                    out.push(std::mem::take(&mut current));
                }
                current.original_recipient = Some(strip_type(&value));
            }
            "action" => current.action = Some(value.trim().to_ascii_lowercase()),
            "status" => current.status = Some(value.trim().to_owned()),
            "diagnostic-code" => current.diagnostic = Some(strip_type(&value)),
            "remote-mta" => current.remote_mta = Some(strip_type(&value)),
            _ => {}
        }
    }
    if current.has_recipient() {
        out.push(current);
    }
    out
}

/// Splits `body` into (name, value) fields, unfolding continuation lines.
fn fields(body: &str) -> Vec<(String, String)> {
    let mut out: Vec<(String, String)> = Vec::new();
    let mut open = false;
    for line in body.lines() {
        if line.trim().is_empty() {
            if open {
                out.push((String::new(), String::new()));
            }
            open = false;
            continue;
        }
        if line.starts_with([' ', '\t']) {
            if let (true, Some(last)) = (open, out.last_mut()) {
                last.1.push(' ');
                last.1
                    .push_str(crate::status::strip_reply_prefix(line).trim());
            }
            continue;
        }
        match line.split_once(':') {
            Some((name, value))
                if !name.is_empty()
                    && name
                        .bytes()
                        .all(|c| c.is_ascii_alphanumeric() || c == b'-' || c == b'_') =>
            {
                out.push((name.to_owned(), value.trim().to_owned()));
                open = true;
            }
            _ => open = false,
        }
    }
    out
}

/// Removes the `type;` prefix of a typed field (`rfc822; a@b`, `smtp; 550`).
fn strip_type(value: &str) -> String {
    let value = value.trim();
    let rest = match value.split_once(';') {
        Some((kind, rest))
            if !kind.is_empty()
                && kind.len() <= 24
                && kind
                    .bytes()
                    .all(|c| c.is_ascii_alphanumeric() || c == b'-' || c == b'_') =>
        {
            rest
        }
        _ => value,
    };
    let mut folded = String::with_capacity(rest.len());
    crate::rules::fold(rest.trim(), &mut folded);
    crate::status::drop_repeated_prefix(folded.trim_end())
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn parses_blocks() {
        let body = "Reporting-MTA: dns; mx.example.org\r\n\r\n\
            Final-Recipient: rfc822; a@example.jp\r\n\
            Action: failed\r\n\
            Status: 5.1.1\r\n\
            Diagnostic-Code: smtp; 550 5.1.1 <a@example.jp>:\r\n  User unknown\r\n\
            Final-Recipient: RFC822; <b@example.jp>\r\n\
            Action: delayed\r\nStatus: 4.4.7\r\n";
        let r = parse(body);
        assert_eq!(r.len(), 2);
        assert_eq!(r[0].final_recipient.as_deref(), Some("a@example.jp"));
        assert_eq!(
            r[0].diagnostic.as_deref(),
            Some("550 5.1.1 <a@example.jp>: User unknown")
        );
        assert_eq!(r[1].action.as_deref(), Some("delayed"));
    }
}
