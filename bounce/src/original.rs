//! What a report tells about the original message: its Message-ID, its
//! Return-Path, its sender and recipients, and sluice's token.

use mail_parser::Message;

use crate::address::find_addresses;
use crate::mime::{PARSER, header_values};

/// The header sluice puts on every message it sends.
pub const TOKEN_HEADER: &str = "X-Sluice-Token";

/// Headers of the original message, as far as the report carries them.
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct Original {
    /// `Message-ID`, without angle brackets.
    pub message_id: Option<String>,
    /// `Return-Path` address.
    pub return_path: Option<String>,
    /// `From` address.
    pub from: Option<String>,
    /// `To` and `Cc` addresses.
    pub to: Vec<String>,
    /// `X-Sluice-Token` value.
    pub token: Option<String>,
}

impl Original {
    /// Reads the headers of a parsed message.
    pub fn of_message(message: &Message<'_>) -> Self {
        const NAMES: [&str; 6] = [
            "Message-ID",
            "Return-Path",
            "From",
            "To",
            "Cc",
            TOKEN_HEADER,
        ];
        let values = header_values(message, &NAMES);
        let raw = |index: usize| {
            values
                .get(index)
                .copied()
                .flatten()
                .map(str::trim)
                .filter(|v| !v.is_empty())
        };
        let first = |index: usize| {
            raw(index).and_then(|v| {
                find_addresses(v)
                    .into_iter()
                    .next()
                    .map(|f| f.address.to_owned())
            })
        };
        let mut to = Vec::new();
        for index in [3, 4] {
            if let Some(value) = raw(index) {
                to.extend(
                    find_addresses(value)
                        .into_iter()
                        .map(|f| f.address.to_owned()),
                );
            }
        }
        Original {
            message_id: message
                .message_id()
                .map(str::to_owned)
                .or_else(|| raw(0).map(|v| v.trim_matches(['<', '>']).to_owned())),
            return_path: first(1),
            from: first(2),
            to,
            token: raw(5).map(str::to_owned),
        }
    }

    /// Reads the headers of a copy of the message given as text (a
    /// `text/rfc822-headers` part, or the copy after a marker line).
    pub fn of_text(text: &str) -> Self {
        // Only the header block matters; skip parsing the body.
        let end = [text.find("\r\n\r\n"), text.find("\n\n")]
            .into_iter()
            .flatten()
            .min()
            .map_or(text.len(), |at| at + 1);
        let head = text.get(..end).unwrap_or(text);
        match PARSER.parse(head.as_bytes()) {
            Some(message) => Original::of_message(&message),
            None => Original::default(),
        }
    }

    /// Fills the gaps of `self` from `other`.
    pub fn merge(&mut self, other: Original) {
        self.message_id = self.message_id.take().or(other.message_id);
        self.return_path = self.return_path.take().or(other.return_path);
        self.from = self.from.take().or(other.from);
        if self.to.is_empty() {
            self.to = other.to;
        }
        self.token = self.token.take().or(other.token);
    }
}

/// The `+detail` of a VERP address (`b+TOKEN@bounce.example` gives `TOKEN`).
pub fn verp_detail(address: &str) -> Option<&str> {
    let (local, _) = address.rsplit_once('@')?;
    let (_, detail) = local.split_once('+')?;
    (!detail.is_empty()).then_some(detail)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn reads_headers_from_text() {
        let o = Original::of_text(
            "Return-Path: <b+tok123@bounce.example>\r\nMessage-ID: <m1@example.org>\r\nTo: a@example.jp\r\nX-Sluice-Token: abc\r\n\r\nbody",
        );
        assert_eq!(o.message_id.as_deref(), Some("m1@example.org"));
        assert_eq!(o.return_path.as_deref(), Some("b+tok123@bounce.example"));
        assert_eq!(o.to, vec!["a@example.jp".to_owned()]);
        assert_eq!(o.token.as_deref(), Some("abc"));
        assert_eq!(verp_detail("b+tok123@bounce.example"), Some("tok123"));
        assert_eq!(verp_detail("plain@bounce.example"), None);
    }
}
