//! What a tracking token says, and its byte layout.

/// The number the gateway gives each message it sends; the gateway maps it to
/// the campaign and the customer.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Hash, PartialOrd, Ord)]
pub struct MessageNo(pub u64);

/// The position of a link in its campaign's link table.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Hash, PartialOrd, Ord)]
pub struct LinkIndex(pub u16);

/// What following a token means.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Hash)]
pub enum Kind {
    /// A tracked link: `/c/{token}`.
    Click,
    /// The open pixel: `/o/{token}`.
    Open,
    /// The unsubscribe link and one-click header: `/u/{token}`.
    Unsubscribe,
}

impl Kind {
    fn code(self) -> u8 {
        match self {
            Kind::Click => 0,
            Kind::Open => 1,
            Kind::Unsubscribe => 2,
        }
    }
}

/// The authenticated content of a tracking token.
///
/// Minted and verified by [`Keyring`](crate::Keyring). Its text is `base64url(payload ‖ tag)` without padding, where
///
/// ```text
/// payload = header:u8  message:LEB128(u64)  [link:LEB128(u16), click tokens only]
/// header  = key_id << 2 | kind          (key_id 0..=63; kind 0 click, 1 open, 2 unsubscribe)
/// tag     = HMAC-SHA256(key, "sluice/clicktrack/v1\0" ‖ payload)[..10]
/// ```
///
/// The varints must be minimal and nothing may follow the tag, so every token
/// has exactly one spelling: any change to its text either stops it decoding or
/// changes the authenticated bytes. With message numbers below 2^35 a click
/// token is 23 or 24 characters; the longest possible token (message
/// `u64::MAX`, link `u16::MAX`) is 32.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Hash)]
pub enum Token {
    /// Link `link` of message `message` was followed.
    Click {
        /// The message the link was sent in.
        message: MessageNo,
        /// The link's index in the campaign's link table.
        link: LinkIndex,
    },
    /// Message `message` was displayed with images.
    Open {
        /// The message.
        message: MessageNo,
    },
    /// The recipient of message `message` unsubscribes.
    Unsubscribe {
        /// The message.
        message: MessageNo,
    },
}

impl Token {
    /// The token's kind.
    pub fn kind(&self) -> Kind {
        match self {
            Token::Click { .. } => Kind::Click,
            Token::Open { .. } => Kind::Open,
            Token::Unsubscribe { .. } => Kind::Unsubscribe,
        }
    }

    /// The message the token belongs to.
    pub fn message(&self) -> MessageNo {
        match *self {
            Token::Click { message, .. }
            | Token::Open { message }
            | Token::Unsubscribe { message } => message,
        }
    }
}

/// Length of the truncated HMAC tag, in bytes (80 bits).
pub(crate) const TAG_LEN: usize = 10;
/// Longest payload: header, 10-byte varint, 3-byte varint.
pub(crate) const MAX_PAYLOAD_LEN: usize = 1 + 10 + 3;
/// Longest token in bytes before base64.
pub(crate) const MAX_RAW_LEN: usize = MAX_PAYLOAD_LEN + TAG_LEN;
/// Longest token text: `ceil(24 * 4 / 3)`.
pub const MAX_TOKEN_LEN: usize = 32;
/// Shortest token text: header, one-byte message, tag (12 bytes → 16 chars).
pub(crate) const MIN_TOKEN_LEN: usize = 16;

/// Writes the payload of `token` signed by key `key_id` into `out`; returns
/// its length.
pub(crate) fn encode_payload(token: &Token, key_id: u8, out: &mut [u8; MAX_RAW_LEN]) -> usize {
    out[0] = (key_id << 2) | token.kind().code();
    let mut len = 1;
    len += put_varint(token.message().0, &mut out[len..]);
    if let Token::Click { link, .. } = token {
        len += put_varint(u64::from(link.0), &mut out[len..]);
    }
    len
}

/// Parses a payload (without tag) into its key id and token. `None` when the
/// bytes are not exactly one canonical payload.
pub(crate) fn decode_payload(payload: &[u8]) -> Option<(u8, Token)> {
    let (&header, rest) = payload.split_first()?;
    let key_id = header >> 2;
    let (message, rest) = get_varint(rest)?;
    let message = MessageNo(message);
    let (token, rest) = match header & 0b11 {
        0 => {
            let (link, rest) = get_varint(rest)?;
            let link = LinkIndex(u16::try_from(link).ok()?);
            (Token::Click { message, link }, rest)
        }
        1 => (Token::Open { message }, rest),
        2 => (Token::Unsubscribe { message }, rest),
        _ => return None,
    };
    rest.is_empty().then_some((key_id, token))
}

/// The length of the payload at the start of `raw` (header and varints), so
/// the tag can be split off before verifying. `None` if malformed.
pub(crate) fn payload_len(raw: &[u8]) -> Option<usize> {
    let header = *raw.first()?;
    let mut len = 1 + varint_len(raw.get(1..)?)?;
    if header & 0b11 == 0 {
        len += varint_len(raw.get(len..)?)?;
    }
    Some(len)
}

fn put_varint(mut value: u64, out: &mut [u8]) -> usize {
    let mut i = 0;
    loop {
        // Truncation intended: the low seven bits.
        let byte = (value & 0x7f) as u8;
        value >>= 7;
        if value == 0 {
            out[i] = byte;
            return i + 1;
        }
        out[i] = byte | 0x80;
        i += 1;
    }
}

fn varint_len(bytes: &[u8]) -> Option<usize> {
    let end = bytes.iter().take(10).position(|b| b & 0x80 == 0)?;
    Some(end + 1)
}

/// Reads a minimal LEB128 `u64`; `None` on overflow, truncation or a
/// non-minimal encoding.
fn get_varint(bytes: &[u8]) -> Option<(u64, &[u8])> {
    let len = varint_len(bytes)?;
    let (digits, rest) = bytes.split_at(len);
    // A trailing zero group is a non-minimal spelling (except the value 0).
    if len > 1 && digits[len - 1] == 0 {
        return None;
    }
    let mut value: u64 = 0;
    for (i, b) in digits.iter().enumerate() {
        let group = u64::from(b & 0x7f);
        let shift = 7 * i as u32;
        if shift == 63 && group > 1 {
            return None;
        }
        value |= group << shift;
    }
    Some((value, rest))
}

#[cfg(test)]
mod tests {
    use super::*;

    fn roundtrip(token: Token, key_id: u8) {
        let mut buf = [0u8; MAX_RAW_LEN];
        let len = encode_payload(&token, key_id, &mut buf);
        assert_eq!(payload_len(&buf[..len]), Some(len));
        assert_eq!(decode_payload(&buf[..len]), Some((key_id, token)));
    }

    #[test]
    fn payloads_round_trip_at_the_edges() {
        for message in [0, 1, 127, 128, 1 << 35, u64::MAX - 1, u64::MAX] {
            for link in [0, 1, 127, 128, 16383, 16384, u16::MAX] {
                roundtrip(
                    Token::Click {
                        message: MessageNo(message),
                        link: LinkIndex(link),
                    },
                    63,
                );
            }
            roundtrip(
                Token::Open {
                    message: MessageNo(message),
                },
                0,
            );
            roundtrip(
                Token::Unsubscribe {
                    message: MessageNo(message),
                },
                17,
            );
        }
    }

    #[test]
    fn non_minimal_and_overlong_varints_are_refused() {
        assert_eq!(get_varint(&[0x80, 0x00]), None);
        assert_eq!(get_varint(&[0x81, 0x80, 0x00]), None);
        assert_eq!(get_varint(&[0xff; 10]), None);
        assert_eq!(
            get_varint(&[0xff, 0xff, 0xff, 0xff, 0xff, 0xff, 0xff, 0xff, 0xff, 0x02]),
            None
        );
        assert_eq!(
            get_varint(&[0xff, 0xff, 0xff, 0xff, 0xff, 0xff, 0xff, 0xff, 0xff, 0x01]),
            Some((u64::MAX, &[][..]))
        );
        assert_eq!(get_varint(&[0x80]), None);
    }

    #[test]
    fn link_over_u16_and_unknown_kind_and_trailing_bytes_are_refused() {
        // Click, message 1, link 65536 (3-byte varint 0x80 0x80 0x04).
        assert_eq!(decode_payload(&[0, 1, 0x80, 0x80, 0x04]), None);
        assert_eq!(decode_payload(&[3, 1]), None);
        assert_eq!(decode_payload(&[1, 1, 0]), None);
        assert_eq!(decode_payload(&[]), None);
    }
}
