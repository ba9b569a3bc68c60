//! Per-message Return-Path tokens (VERP style): `b+TOKEN@bounce-domain`,
//! where TOKEN carries the message number and an HMAC tag, so a bounce can be
//! traced back to its message and a forged or guessed address cannot.

use hmac::{Hmac, Mac};
use sha2::Sha256;

use domain::MessageNo;

/// Bytes of HMAC tag kept: 64 bits against guessing.
const TAG: usize = 8;
const ALPHABET: &[u8; 32] = b"abcdefghijklmnopqrstuvwxyz234567";

#[derive(Clone)]
pub struct ReturnPaths {
    /// Keyed once; cloned per token.
    mac: Hmac<Sha256>,
    domain: String,
}

impl std::fmt::Debug for ReturnPaths {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("ReturnPaths")
            .field("domain", &self.domain)
            .finish_non_exhaustive()
    }
}

impl ReturnPaths {
    pub fn new(key: &[u8], domain: &str) -> Self {
        let mac = Hmac::<Sha256>::new_from_slice(key).expect("HMAC accepts keys of any length");
        Self {
            mac,
            domain: domain.to_ascii_lowercase(),
        }
    }

    fn tag(&self, msg: MessageNo) -> [u8; TAG] {
        let mut mac = self.mac.clone();
        mac.update(&msg.as_u64().to_be_bytes());
        let full = mac.finalize().into_bytes();
        let mut tag = [0u8; TAG];
        tag.copy_from_slice(&full[..TAG]);
        tag
    }

    pub fn domain(&self) -> &str {
        &self.domain
    }

    /// The envelope sender for a message.
    pub fn address(&self, msg: MessageNo) -> String {
        let mut raw = Vec::with_capacity(8 + TAG);
        raw.extend_from_slice(&msg.as_u64().to_be_bytes());
        raw.extend_from_slice(&self.tag(msg));
        format!("b+{}@{}", base32(&raw), self.domain)
    }

    /// The message an address was made for, if it verifies.
    pub fn verify(&self, address: &str) -> Option<MessageNo> {
        let (local, domain) = address.trim_matches(['<', '>']).rsplit_once('@')?;
        if !domain.eq_ignore_ascii_case(&self.domain) {
            return None;
        }
        let token = local
            .strip_prefix("b+")
            .or_else(|| local.strip_prefix("B+"))?;
        let raw = unbase32(token)?;
        let (number, tag) = raw.split_at_checked(8)?;
        let msg = MessageNo::from_u64(u64::from_be_bytes(number.try_into().ok()?));
        let expected = self.tag(msg);
        (tag.len() == TAG
            && tag
                .iter()
                .zip(expected)
                .fold(0, |acc, (a, b)| acc | (a ^ b))
                == 0)
            .then_some(msg)
    }
}

fn base32(bytes: &[u8]) -> String {
    let mut out = String::with_capacity(bytes.len() * 8 / 5 + 1);
    let (mut acc, mut bits) = (0u32, 0u32);
    for &b in bytes {
        acc = (acc << 8) | u32::from(b);
        bits += 8;
        while bits >= 5 {
            bits -= 5;
            out.push(ALPHABET[((acc >> bits) & 31) as usize] as char);
        }
    }
    if bits > 0 {
        out.push(ALPHABET[((acc << (5 - bits)) & 31) as usize] as char);
    }
    out
}

fn unbase32(text: &str) -> Option<Vec<u8>> {
    let mut out = Vec::with_capacity(text.len() * 5 / 8);
    let (mut acc, mut bits) = (0u32, 0u32);
    for c in text.bytes() {
        let v = ALPHABET.iter().position(|&a| a == c.to_ascii_lowercase())? as u32;
        acc = ((acc << 5) | v) & 0xFFFF;
        bits += 5;
        if bits >= 8 {
            bits -= 8;
            out.push((acc >> bits) as u8);
        }
    }
    Some(out)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn addresses_verify_and_forgeries_do_not() {
        let paths = ReturnPaths::new(b"secret", "Bounces.Example.com");
        let msg = MessageNo {
            campaign: 3,
            participant: 123_456,
        };
        let addr = paths.address(msg);
        assert!(addr.ends_with("@bounces.example.com"), "{addr}");
        assert!(addr.len() < 64, "short enough for any MTA: {addr}");
        assert_eq!(paths.verify(&addr), Some(msg));
        assert_eq!(
            paths.verify(&addr.to_uppercase().replace("@BOUNCES", "@bounces")),
            Some(msg)
        );
        assert_eq!(paths.verify(&format!("<{addr}>")), Some(msg));
        let other = ReturnPaths::new(b"other", "bounces.example.com");
        assert_eq!(other.verify(&addr), None, "another key does not verify");
        let mut forged = addr.clone().into_bytes();
        forged[4] = if forged[4] == b'a' { b'b' } else { b'a' };
        assert_eq!(
            paths.verify(&String::from_utf8(forged).expect("ascii")),
            None
        );
        assert_eq!(paths.verify("b+@bounces.example.com"), None);
        assert_eq!(paths.verify("nobody@bounces.example.com"), None);
        assert_eq!(
            paths.verify(&addr.replace("bounces.example.com", "evil.example")),
            None
        );
    }
}
