//! HMAC keys and the keyring that mints and verifies tokens.

use base64::Engine as _;
use base64::engine::general_purpose::URL_SAFE_NO_PAD;
use hmac::{Hmac, Mac};
use sha2::Sha256;

use crate::token::{
    self, MAX_RAW_LEN, MAX_TOKEN_LEN, MIN_TOKEN_LEN, TAG_LEN, Token, decode_payload,
    encode_payload, payload_len,
};
use crate::{Error, Result};

/// Domain separation: a key shared by mistake with another use of
/// HMAC-SHA256 never produces tags valid here.
const CONTEXT: &[u8] = b"sluice/clicktrack/v1\0";

/// The shortest secret a [`Key`] accepts, in bytes.
pub const MIN_SECRET_LEN: usize = 16;

/// The largest key id (the token header has six bits for it).
pub const MAX_KEY_ID: u8 = 63;

/// One HMAC-SHA256 key and its id. Its `Debug` shows the id only.
#[derive(Clone)]
pub struct Key {
    id: u8,
    /// HMAC state after the key and [`CONTEXT`], cloned for each token so the
    /// key schedule is computed once.
    mac: Hmac<Sha256>,
}

impl Key {
    /// A key with id `id` (`0..=63`) from secret bytes (at least
    /// [`MIN_SECRET_LEN`]; 32 random bytes is the right size).
    pub fn new(id: u8, secret: &[u8]) -> Result<Self> {
        if id > MAX_KEY_ID {
            return Err(Error::KeyId(id));
        }
        if secret.len() < MIN_SECRET_LEN {
            return Err(Error::ShortSecret {
                id,
                len: secret.len(),
                min: MIN_SECRET_LEN,
            });
        }
        let mut mac =
            <Hmac<Sha256> as Mac>::new_from_slice(secret).map_err(|_| Error::ShortSecret {
                id,
                len: secret.len(),
                min: MIN_SECRET_LEN,
            })?;
        mac.update(CONTEXT);
        Ok(Key { id, mac })
    }

    /// The key's id.
    pub fn id(&self) -> u8 {
        self.id
    }
}

impl std::fmt::Debug for Key {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("Key")
            .field("id", &self.id)
            .finish_non_exhaustive()
    }
}

/// One current key that signs new tokens, and older keys that still verify
/// tokens already sent.
///
/// To rotate: give the new secret a new id, make it current, and keep the old
/// key as a verifying key for as long as links sent under it should work.
#[derive(Clone, Debug)]
pub struct Keyring {
    current: Key,
    verifying: Vec<Key>,
}

impl Keyring {
    /// A keyring that signs and verifies with `current` only.
    pub fn new(current: Key) -> Self {
        Keyring {
            current,
            verifying: Vec::new(),
        }
    }

    /// Shorthand for `Keyring::new(Key::new(id, secret)?)`.
    pub fn from_secret(id: u8, secret: &[u8]) -> Result<Self> {
        Ok(Keyring::new(Key::new(id, secret)?))
    }

    /// A keyring from a configuration string: comma-separated `ID:SECRET`
    /// entries, `SECRET` being base64 (standard or URL-safe, padding
    /// optional) of at least [`MIN_SECRET_LEN`] bytes. The first entry signs;
    /// the others only verify. Example: `"2:<new secret>,1:<old secret>"`.
    /// Errors name the entry by position, never its secret.
    pub fn from_spec(spec: &str) -> Result<Self> {
        let mut entries = spec.split(',').map(str::trim).enumerate();
        let parse = |(i, entry): (usize, &str)| -> Result<Key> {
            let refuse = |reason| Error::KeySpec {
                entry: i + 1,
                reason,
            };
            let (id, secret) = entry
                .split_once(':')
                .ok_or_else(|| refuse("expected ID:SECRET"))?;
            let id: u8 = id
                .trim()
                .parse()
                .map_err(|_| refuse("ID is not a number 0..=63"))?;
            let secret =
                decode_secret(secret.trim()).ok_or_else(|| refuse("SECRET is not base64"))?;
            Key::new(id, &secret)
        };
        let first = entries.next().ok_or(Error::KeySpec {
            entry: 1,
            reason: "empty",
        })?;
        let mut ring = Keyring::new(parse(first)?);
        for entry in entries {
            ring = ring.with_verifying(parse(entry)?)?;
        }
        Ok(ring)
    }

    /// Adds an older key that verifies but no longer signs. Refuses an id the
    /// keyring already holds.
    pub fn with_verifying(mut self, key: Key) -> Result<Self> {
        if self.key(key.id).is_some() {
            return Err(Error::DuplicateKeyId(key.id));
        }
        self.verifying.push(key);
        Ok(self)
    }

    /// The id of the key that signs new tokens.
    pub fn current_id(&self) -> u8 {
        self.current.id
    }

    /// The token text for `token`, signed with the current key.
    pub fn mint(&self, token: Token) -> String {
        let mut out = String::with_capacity(MAX_TOKEN_LEN);
        self.mint_into(token, &mut out);
        out
    }

    /// Appends the token text for `token` to `out` (no allocation when `out`
    /// has room).
    pub fn mint_into(&self, token: Token, out: &mut String) {
        let mut raw = [0u8; MAX_RAW_LEN];
        let len = encode_payload(&token, self.current.id, &mut raw);
        let mut mac = self.current.mac.clone();
        mac.update(&raw[..len]);
        let tag = mac.finalize().into_bytes();
        raw[len..len + TAG_LEN].copy_from_slice(&tag[..TAG_LEN]);
        URL_SAFE_NO_PAD.encode_string(&raw[..len + TAG_LEN], out);
    }

    /// The token `text` stands for, if it is a well-formed token whose tag
    /// verifies under the key its header names. Every failure is
    /// [`Error::InvalidToken`]. Cost is bounded: text longer than
    /// [`MAX_TOKEN_LEN`] is refused before decoding.
    pub fn verify(&self, text: &str) -> Result<Token> {
        self.verify_inner(text.as_bytes())
            .ok_or(Error::InvalidToken)
    }

    fn verify_inner(&self, text: &[u8]) -> Option<Token> {
        if !(MIN_TOKEN_LEN..=MAX_TOKEN_LEN).contains(&text.len()) {
            return None;
        }
        // Room for the decoder's rounded-up estimate of 32 characters.
        let mut raw = [0u8; MAX_RAW_LEN + 3];
        let len = URL_SAFE_NO_PAD.decode_slice(text, &mut raw).ok()?;
        let raw = &raw[..len];
        let plen = payload_len(raw)?;
        if len != plen + TAG_LEN {
            return None;
        }
        let (payload, tag) = raw.split_at(plen);
        let (key_id, token) = decode_payload(payload)?;
        let mut mac = self.key(key_id)?.mac.clone();
        mac.update(payload);
        mac.verify_truncated_left(tag).ok()?;
        Some(token)
    }

    fn key(&self, id: u8) -> Option<&Key> {
        if self.current.id == id {
            return Some(&self.current);
        }
        self.verifying.iter().find(|k| k.id == id)
    }
}

fn decode_secret(text: &str) -> Option<Vec<u8>> {
    use base64::engine::general_purpose::{STANDARD_NO_PAD, URL_SAFE_NO_PAD};
    let text = text.trim_end_matches('=');
    STANDARD_NO_PAD
        .decode(text)
        .or_else(|_| URL_SAFE_NO_PAD.decode(text))
        .ok()
}

// Keep the constant referenced from the docs in one place.
const _: () = assert!(token::MAX_TOKEN_LEN == (MAX_RAW_LEN * 4).div_ceil(3));

#[cfg(test)]
mod tests {
    use super::*;
    use crate::token::{LinkIndex, MessageNo};
    use proptest::prelude::*;

    const SECRET_A: &[u8] = b"0123456789abcdef0123456789abcdef";
    const SECRET_B: &[u8] = b"fedcba9876543210fedcba9876543210";

    fn ring() -> Keyring {
        Keyring::from_secret(1, SECRET_A).unwrap()
    }

    fn click(message: u64, link: u16) -> Token {
        Token::Click {
            message: MessageNo(message),
            link: LinkIndex(link),
        }
    }

    #[test]
    fn tokens_round_trip_and_are_short() {
        let keys = ring();
        for token in [
            click(0, 0),
            click(123_456_789, 3),
            click(u64::MAX, u16::MAX),
            Token::Open {
                message: MessageNo(42),
            },
            Token::Unsubscribe {
                message: MessageNo(u64::MAX),
            },
        ] {
            let text = keys.mint(token);
            assert!(text.len() <= MAX_TOKEN_LEN, "{text}");
            assert!(
                text.bytes()
                    .all(|b| b.is_ascii_alphanumeric() || b == b'-' || b == b'_')
            );
            assert_eq!(keys.verify(&text).unwrap(), token);
        }
        // A realistic message number (< 2^35) gives 24 characters.
        assert_eq!(keys.mint(click(30_000_000_000, 200)).len(), 24);
        assert_eq!(
            keys.mint(Token::Open {
                message: MessageNo(1)
            })
            .len(),
            16
        );
    }

    #[test]
    fn minting_is_deterministic_and_kind_is_authenticated() {
        let keys = ring();
        assert_eq!(keys.mint(click(7, 1)), keys.mint(click(7, 1)));
        let open = keys.mint(Token::Open {
            message: MessageNo(7),
        });
        let unsub = keys.mint(Token::Unsubscribe {
            message: MessageNo(7),
        });
        assert_ne!(open, unsub);
        assert_eq!(
            keys.verify(&unsub).unwrap().kind(),
            crate::Kind::Unsubscribe
        );
    }

    #[test]
    fn rotation_keeps_old_links_working_and_forgets_dropped_keys() {
        let old = Keyring::from_secret(1, SECRET_A).unwrap();
        let sent_before = old.mint(click(99, 2));

        let rotated = Keyring::from_secret(2, SECRET_B)
            .unwrap()
            .with_verifying(Key::new(1, SECRET_A).unwrap())
            .unwrap();
        assert_eq!(rotated.current_id(), 2);
        assert_eq!(rotated.verify(&sent_before).unwrap(), click(99, 2));
        let sent_after = rotated.mint(click(99, 2));
        assert_ne!(sent_after, sent_before);
        assert_eq!(rotated.verify(&sent_after).unwrap(), click(99, 2));

        // The old deployment does not know key 2.
        assert!(old.verify(&sent_after).is_err());
        // Once key 1 is retired, its links stop verifying.
        let retired = Keyring::from_secret(2, SECRET_B).unwrap();
        assert!(retired.verify(&sent_before).is_err());
        // Same id, different secret: refused.
        let impostor = Keyring::from_secret(1, SECRET_B).unwrap();
        assert!(impostor.verify(&sent_before).is_err());
    }

    #[test]
    fn bad_keys_are_refused() {
        assert!(matches!(Key::new(64, SECRET_A), Err(Error::KeyId(64))));
        assert!(matches!(
            Key::new(0, b"short"),
            Err(Error::ShortSecret { id: 0, len: 5, .. })
        ));
        let dup = ring().with_verifying(Key::new(1, SECRET_B).unwrap());
        assert!(matches!(dup, Err(Error::DuplicateKeyId(1))));
        let shown = format!("{:?}", ring());
        assert!(!shown.contains("0123456789abcdef"), "{shown}");
    }

    #[test]
    fn keyrings_are_parsed_from_a_spec() {
        use base64::engine::general_purpose::STANDARD;
        let spec = format!(
            " 2:{} , 1:{}",
            STANDARD.encode(SECRET_B),
            URL_SAFE_NO_PAD.encode(SECRET_A)
        );
        let ring = Keyring::from_spec(&spec).unwrap();
        assert_eq!(ring.current_id(), 2);
        assert_eq!(ring.verify(&ring.mint(click(1, 1))).unwrap(), click(1, 1));
        let old = Keyring::from_secret(1, SECRET_A).unwrap();
        assert_eq!(ring.verify(&old.mint(click(1, 1))).unwrap(), click(1, 1));
        let secret = STANDARD.encode(SECRET_A);
        for (bad, entry) in [
            (String::new(), 1),
            ("1".to_string(), 1),
            (format!("x:{secret}"), 1),
            (format!("1:{secret},2:not base64!"), 2),
        ] {
            match Keyring::from_spec(&bad) {
                Err(Error::KeySpec { entry: e, .. }) => assert_eq!(e, entry, "{bad}"),
                other => panic!("{bad}: {other:?}"),
            }
        }
        assert!(matches!(
            Keyring::from_spec(&format!("64:{secret}")),
            Err(Error::KeyId(64))
        ));
        assert!(matches!(
            Keyring::from_spec("1:c2hvcnQ="),
            Err(Error::ShortSecret { .. })
        ));
        assert!(matches!(
            Keyring::from_spec(&format!("1:{secret},1:{secret}")),
            Err(Error::DuplicateKeyId(1))
        ));
        let err = Keyring::from_spec(&format!("1:{secret},2:not base64!"))
            .unwrap_err()
            .to_string();
        assert!(!err.contains(&secret), "{err}");
    }

    #[test]
    fn garbage_truncated_and_oversized_tokens_are_refused() {
        let keys = ring();
        let good = keys.mint(click(5, 5));
        for bad in [
            String::new(),
            "a".into(),
            "not a token at all".into(),
            good[..good.len() - 1].to_string(),
            good[1..].to_string(),
            format!("{good}A"),
            format!("{good}="),
            format!("{good}AAAA"),
            "A".repeat(8 * 1024),
            "A".repeat(MAX_TOKEN_LEN),
            "/".repeat(24),
            good.replace('-', "+").replace('_', "/") + "+/",
            format!("{}é", &good[..good.len() - 2]),
        ] {
            assert!(keys.verify(&bad).is_err(), "{bad:?} verified");
        }
    }

    proptest! {
        #[test]
        fn every_single_bit_flip_is_rejected(
            message in any::<u64>(), link in any::<u16>(), kind in 0u8..3
        ) {
            let keys = ring();
            let token = match kind {
                0 => click(message, link),
                1 => Token::Open { message: MessageNo(message) },
                _ => Token::Unsubscribe { message: MessageNo(message) },
            };
            let text = keys.mint(token);
            prop_assert_eq!(keys.verify(&text).unwrap(), token);

            // Flip every bit of the text.
            for i in 0..text.len() {
                for bit in 0..8 {
                    let mut bytes = text.clone().into_bytes();
                    bytes[i] ^= 1 << bit;
                    if let Ok(s) = std::str::from_utf8(&bytes) {
                        prop_assert!(keys.verify(s).is_err(), "text flip {} {} accepted", i, bit);
                    }
                }
            }
            // Flip every bit of the decoded bytes (re-encoded canonically).
            let raw = URL_SAFE_NO_PAD.decode(&text).unwrap();
            for i in 0..raw.len() {
                for bit in 0..8 {
                    let mut flipped = raw.clone();
                    flipped[i] ^= 1 << bit;
                    let s = URL_SAFE_NO_PAD.encode(&flipped);
                    prop_assert!(keys.verify(&s).is_err(), "byte flip {} {} accepted", i, bit);
                }
            }
        }

        #[test]
        fn arbitrary_text_never_verifies_or_panics(s in "\\PC{0,64}") {
            prop_assert!(ring().verify(&s).is_err());
        }

        #[test]
        fn arbitrary_alphabet_text_never_verifies(s in "[A-Za-z0-9_-]{16,32}") {
            prop_assert!(ring().verify(&s).is_err());
        }
    }
}
