//! SMS text encoding: GSM 03.38 or UCS-2, split into concatenated parts.
//!
//! Outbound, [`encode`] turns a text into the `short_message` of each
//! `submit_sm`: the GSM 03.38 default alphabet when every character has a
//! septet there (an extension-table character such as `€` or `{` takes two:
//! ESC + septet), UCS-2 (UTF-16BE) otherwise. GSM goes out unpacked, one septet
//! per octet, with `data_coding` 0x00, which is what SMSCs expect in an SMPP 3.4
//! `short_message`; they pack it for the air interface, so the limits are those
//! of 140 octets on air: 160 septets or 70 UTF-16 code units in one message,
//! 153 or 67 in each part of a concatenated one, whose 6-octet UDH
//! (`05 00 03 REF TOTAL SEQ`) takes the rest. Parts never split an ESC pair or
//! a surrogate pair. [`parts_needed`] and [`check`] count the parts without
//! building them, for rejecting a text when it is declared.
//!
//! Inbound, [`decode`] turns the `short_message` of a `deliver_sm` back into
//! text, dropping the UDH when the UDHI bit is set. Reassembling the parts of a
//! concatenated mobile-originated message is the caller's business.
//!
//! This module knows nothing of PDUs: the channel copies a [`Part`] into a
//! `SubmitSm` (`short_message`, `data_coding`, and the UDHI bit of `esm_class`).

use std::fmt;

use rusmpp::udhs::concatenation::ConcatenatedShortMessage8Bit;

/// Octets of user data one SMS carries on the air interface.
const AIR_OCTETS: usize = 140;
/// Octets of the concatenation UDH on every part: `05 00 03 REF TOTAL SEQ`.
const UDH_OCTETS: usize = ConcatenatedShortMessage8Bit::UDH_LENGTH;
/// The most parts a concatenated message can have: TOTAL is one octet.
const MAX_TOTAL: usize = u8::MAX as usize;
/// The escape to the GSM 03.38 extension table.
const ESC: u8 = 0x1B;

/// The alphabet a text is sent in.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
pub enum Coding {
    /// GSM 03.38 default alphabet and its extension table, unpacked.
    Gsm7,
    /// UCS-2, in fact UTF-16BE so that characters beyond the BMP survive.
    Ucs2,
}

impl Coding {
    /// The alphabet `text` is sent in: GSM if every character fits, UCS-2 if not.
    pub fn of(text: &str) -> Self {
        if text.chars().all(|ch| gsm_encode(ch).is_some()) {
            Self::Gsm7
        } else {
            Self::Ucs2
        }
    }

    /// The SMPP `data_coding` value.
    pub const fn data_coding(self) -> u8 {
        match self {
            Self::Gsm7 => 0x00,
            Self::Ucs2 => 0x08,
        }
    }

    /// Units (septets or UTF-16 code units) a single message holds: 160 or 70.
    pub const fn single_capacity(self) -> usize {
        self.units_in(AIR_OCTETS)
    }

    /// Units each part of a concatenated message holds: 153 or 67.
    pub const fn part_capacity(self) -> usize {
        self.units_in(AIR_OCTETS - UDH_OCTETS)
    }

    const fn units_in(self, octets: usize) -> usize {
        match self {
            // The UDH is padded to a septet boundary, hence the rounding down.
            Self::Gsm7 => octets * 8 / 7,
            Self::Ucs2 => octets / 2,
        }
    }

    /// Units `ch` takes: 1, or 2 for an extension character or a surrogate pair.
    fn units(self, ch: char) -> usize {
        match self {
            Self::Gsm7 => match gsm_encode(ch) {
                Some(Septets::Extended(_)) => 2,
                _ => 1,
            },
            Self::Ucs2 => ch.len_utf16(),
        }
    }

    /// Appends the octets of `text` to `out`.
    fn encode_into(self, text: &str, out: &mut Vec<u8>) {
        match self {
            Self::Gsm7 => {
                for ch in text.chars() {
                    match gsm_encode(ch) {
                        Some(Septets::Basic(septet)) => out.push(septet),
                        Some(Septets::Extended(septet)) => out.extend([ESC, septet]),
                        // Not reached: `Coding::of` chose GSM because every
                        // character has a septet.
                        None => out.push(b'?'),
                    }
                }
            }
            Self::Ucs2 => {
                for unit in text.encode_utf16() {
                    out.extend(unit.to_be_bytes());
                }
            }
        }
    }
}

impl fmt::Display for Coding {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(match self {
            Self::Gsm7 => "GSM 7-bit",
            Self::Ucs2 => "UCS-2",
        })
    }
}

/// The `short_message` of one `submit_sm`, with the fields that go with it.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Part {
    /// SMPP `data_coding`: 0x00 (GSM 03.38, unpacked) or 0x08 (UCS-2).
    pub data_coding: u8,
    /// Set the UDHI bit (0x40) of `esm_class`: `short_message` opens with a UDH.
    pub esm_class_udhi: bool,
    /// UDH (for a concatenated message) followed by the encoded text.
    pub short_message: Vec<u8>,
}

/// A text needs more parts than allowed.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
#[error("text needs {needed} parts in {coding}, at most {max} allowed")]
pub struct TooManyParts {
    /// The alphabet the text needs: one non-GSM character makes it UCS-2.
    pub coding: Coding,
    /// Parts the text takes.
    pub needed: usize,
    /// Parts allowed.
    pub max: usize,
}

/// An inbound `short_message` that cannot be read as text.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum DecodeError {
    #[error("data_coding {0:#04x} is not a text alphabet")]
    UnsupportedDataCoding(u8),
    #[error("UDH of {udh} octets does not fit in a short_message of {len}")]
    TruncatedUdh { udh: usize, len: usize },
}

/// The alphabet of `text` and how many parts it takes (1 for a single message,
/// including the empty text). Builds nothing.
pub fn parts_needed(text: &str) -> (Coding, usize) {
    let coding = Coding::of(text);
    let units: usize = text.chars().map(|ch| coding.units(ch)).sum();
    let parts = if units <= coding.single_capacity() {
        1
    } else {
        split(text, coding).count()
    };
    (coding, parts)
}

/// [`parts_needed`], failing when `text` needs more than `max_parts` (capped
/// at 255, the most a UDH can number).
pub fn check(text: &str, max_parts: usize) -> Result<(Coding, usize), TooManyParts> {
    let (coding, needed) = parts_needed(text);
    let max = max_parts.min(MAX_TOTAL);
    if needed > max {
        return Err(TooManyParts {
            coding,
            needed,
            max,
        });
    }
    Ok((coding, needed))
}

/// The parts to submit for `text`, in order. `reference` goes into the UDH of
/// every part of a concatenated message; pick one per destination so that the
/// handset does not mix two messages.
///
/// `reference` is asked for only when the text needs more than one part.
pub fn encode(
    text: &str,
    reference: impl FnOnce() -> u8,
    max_parts: usize,
) -> Result<Vec<Part>, TooManyParts> {
    let (coding, count) = check(text, max_parts)?;
    let data_coding = coding.data_coding();
    if count == 1 {
        let mut short_message = Vec::new();
        coding.encode_into(text, &mut short_message);
        return Ok(vec![Part {
            data_coding,
            esm_class_udhi: false,
            short_message,
        }]);
    }
    let Ok(total) = u8::try_from(count) else {
        // Not reached: `check` caps the count at 255.
        return Err(TooManyParts {
            coding,
            needed: count,
            max: MAX_TOTAL,
        });
    };
    let reference = reference();
    let parts = split(text, coding)
        .zip(1..=total)
        .map(|(chunk, seq)| {
            let udh = ConcatenatedShortMessage8Bit::new_unchecked(reference, total, seq);
            let mut short_message = Vec::new();
            short_message.extend(udh.udh_bytes());
            coding.encode_into(chunk, &mut short_message);
            Part {
                data_coding,
                esm_class_udhi: true,
                short_message,
            }
        })
        .collect();
    Ok(parts)
}

/// Cuts `text` into the pieces that fill each part of a concatenated message,
/// at character boundaries so that ESC pairs and surrogate pairs stay whole.
fn split(text: &str, coding: Coding) -> impl Iterator<Item = &str> {
    let capacity = coding.part_capacity();
    let mut rest = text;
    std::iter::from_fn(move || {
        if rest.is_empty() {
            return None;
        }
        let mut used = 0;
        let mut end = rest.len();
        for (at, ch) in rest.char_indices() {
            used += coding.units(ch);
            if used > capacity {
                end = at;
                break;
            }
        }
        let (chunk, tail) = rest.split_at(end);
        rest = tail;
        Some(chunk)
    })
}

/// The text of an inbound `short_message`. With `udhi` (the UDHI bit of
/// `esm_class`) the leading UDH is dropped. Understood `data_coding`s: 0x00
/// and 0xF0–0xF3 GSM 03.38 unpacked, 0x01 IA5 (ASCII), 0x03 Latin-1, 0x08
/// UCS-2 (UTF-16BE), and 0x10–0x1F with a GSM or UCS-2 alphabet. Octets that
/// mean nothing in the alphabet become U+FFFD.
pub fn decode(short_message: &[u8], data_coding: u8, udhi: bool) -> Result<String, DecodeError> {
    let payload = if udhi {
        let udh = short_message.first().map_or(1, |&len| usize::from(len) + 1);
        short_message.get(udh..).ok_or(DecodeError::TruncatedUdh {
            udh,
            len: short_message.len(),
        })?
    } else {
        short_message
    };
    let text = match data_coding {
        0x00 | 0xF0..=0xF3 => gsm_decode(payload),
        0x01 => payload
            .iter()
            .map(|&b| {
                if b.is_ascii() {
                    char::from(b)
                } else {
                    char::REPLACEMENT_CHARACTER
                }
            })
            .collect(),
        0x03 => payload.iter().map(|&b| char::from(b)).collect(),
        0x08 => ucs2_decode(payload),
        // General data coding group, uncompressed: bits 3-2 name the alphabet.
        0x10..=0x1F if data_coding & 0x0C == 0x00 => gsm_decode(payload),
        0x10..=0x1F if data_coding & 0x0C == 0x08 => ucs2_decode(payload),
        _ => return Err(DecodeError::UnsupportedDataCoding(data_coding)),
    };
    Ok(text)
}

fn ucs2_decode(octets: &[u8]) -> String {
    let pairs = octets.chunks_exact(2);
    let odd = !pairs.remainder().is_empty();
    let units = pairs.map(|pair| u16::from_be_bytes([pair[0], pair[1]]));
    let mut text: String = char::decode_utf16(units)
        .map(|unit| unit.unwrap_or(char::REPLACEMENT_CHARACTER))
        .collect();
    if odd {
        text.push(char::REPLACEMENT_CHARACTER);
    }
    text
}

/// GSM 03.38 default alphabet, indexed by septet. 0x1B is ESC, never a
/// character of its own.
const GSM_BASIC: [char; 128] = [
    '@', '£', '$', '¥', 'è', 'é', 'ù', 'ì', 'ò', 'Ç', '\n', 'Ø', 'ø', '\r', 'Å', 'å', //
    'Δ', '_', 'Φ', 'Γ', 'Λ', 'Ω', 'Π', 'Ψ', 'Σ', 'Θ', 'Ξ', '\u{1B}', 'Æ', 'æ', 'ß', 'É', //
    ' ', '!', '"', '#', '¤', '%', '&', '\'', '(', ')', '*', '+', ',', '-', '.', '/', //
    '0', '1', '2', '3', '4', '5', '6', '7', '8', '9', ':', ';', '<', '=', '>', '?', //
    '¡', 'A', 'B', 'C', 'D', 'E', 'F', 'G', 'H', 'I', 'J', 'K', 'L', 'M', 'N', 'O', //
    'P', 'Q', 'R', 'S', 'T', 'U', 'V', 'W', 'X', 'Y', 'Z', 'Ä', 'Ö', 'Ñ', 'Ü', '§', //
    '¿', 'a', 'b', 'c', 'd', 'e', 'f', 'g', 'h', 'i', 'j', 'k', 'l', 'm', 'n', 'o', //
    'p', 'q', 'r', 's', 't', 'u', 'v', 'w', 'x', 'y', 'z', 'ä', 'ö', 'ñ', 'ü', 'à', //
];

/// GSM 03.38 extension table: the septet that follows ESC, and its character.
const GSM_EXTENDED: [(u8, char); 10] = [
    (0x0A, '\u{0C}'), // form feed
    (0x14, '^'),
    (0x28, '{'),
    (0x29, '}'),
    (0x2F, '\\'),
    (0x3C, '['),
    (0x3D, '~'),
    (0x3E, ']'),
    (0x40, '|'),
    (0x65, '€'),
];

/// How a character is written in GSM 03.38.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
enum Septets {
    /// One septet of the default alphabet.
    Basic(u8),
    /// ESC, then this septet of the extension table.
    Extended(u8),
}

/// Basic-alphabet septets of the ASCII characters (0xFF: not there), so the
/// common case is one lookup rather than a table search.
const ASCII_SEPTETS: [u8; 128] = {
    let mut table = [0xFF; 128];
    let mut septet = 0;
    while septet < GSM_BASIC.len() {
        let ch = GSM_BASIC[septet] as usize;
        if ch < 128 && septet != ESC as usize {
            table[ch] = septet as u8;
        }
        septet += 1;
    }
    table
};

fn gsm_encode(ch: char) -> Option<Septets> {
    if let Some(&septet) = ASCII_SEPTETS.get(ch as usize)
        && septet != 0xFF
    {
        return Some(Septets::Basic(septet));
    }
    if let Some(septet) = (0..)
        .zip(GSM_BASIC)
        .find_map(|(s, c)| (c == ch && s != ESC).then_some(s))
    {
        return Some(Septets::Basic(septet));
    }
    GSM_EXTENDED
        .iter()
        .find_map(|&(s, c)| (c == ch).then_some(Septets::Extended(s)))
}

fn gsm_decode(septets: &[u8]) -> String {
    let basic = |s: u8| match GSM_BASIC.get(usize::from(s)) {
        Some(&ch) if s != ESC => ch,
        _ => char::REPLACEMENT_CHARACTER,
    };
    let mut text = String::with_capacity(septets.len());
    let mut septets = septets.iter().copied();
    while let Some(s) = septets.next() {
        let ch = if s == ESC {
            match septets.next() {
                // An unknown extension shows the default-alphabet character
                // (3GPP TS 23.038 6.2.1.1); a lone ESC shows as a space.
                Some(ext) => GSM_EXTENDED
                    .iter()
                    .find_map(|&(e, ch)| (e == ext).then_some(ch))
                    .unwrap_or_else(|| basic(ext)),
                None => ' ',
            }
        } else {
            basic(s)
        };
        text.push(ch);
    }
    text
}

#[cfg(test)]
mod tests {
    use super::*;
    use proptest::prelude::*;
    use rusmpp::extra::encoding::gsm7bit::Gsm7BitUnpacked;
    use rusmpp::values::DataCoding;

    const REF: u8 = 0xA7;

    fn single(text: &str) -> Part {
        let parts = encode(text, || REF, 10).expect("fits");
        assert_eq!(parts.len(), 1, "{text:?}");
        parts.into_iter().next().expect("one part")
    }

    fn udh(total: u8, seq: u8) -> [u8; 6] {
        [0x05, 0x00, 0x03, REF, total, seq]
    }

    #[test]
    fn gsm_vectors() {
        for (text, octets) in [
            ("hello", &[0x68, 0x65, 0x6C, 0x6C, 0x6F][..]),
            ("€", &[0x1B, 0x65]),
            ("@£$", &[0x00, 0x01, 0x02]),
            (
                "{[~]}\\^|",
                &[
                    0x1B, 0x28, 0x1B, 0x3C, 0x1B, 0x3D, 0x1B, 0x3E, 0x1B, 0x29, 0x1B, 0x2F, 0x1B,
                    0x14, 0x1B, 0x40,
                ],
            ),
            (
                "ΔΩ_ÄÖÑÜ§¿à\r\n",
                &[
                    0x10, 0x15, 0x11, 0x5B, 0x5C, 0x5D, 0x5E, 0x5F, 0x60, 0x7F, 0x0D, 0x0A,
                ],
            ),
            ("", &[]),
        ] {
            let part = single(text);
            assert_eq!(
                part,
                Part {
                    data_coding: 0x00,
                    esm_class_udhi: false,
                    short_message: octets.to_vec()
                }
            );
            assert_eq!(decode(octets, 0x00, false).as_deref(), Ok(text));
        }
    }

    #[test]
    fn ucs2_vectors() {
        // `ç` is not in GSM 03.38 (only `Ç` is), so the whole text goes UCS-2.
        let part = single("ça€");
        assert_eq!(part.data_coding, 0x08);
        assert!(!part.esm_class_udhi);
        assert_eq!(part.short_message, [0x00, 0xE7, 0x00, 0x61, 0x20, 0xAC]);
        assert_eq!(single("😀").short_message, [0xD8, 0x3D, 0xDE, 0x00]);
        // ESC as a character has no septet of its own.
        assert_eq!(single("\u{1B}").data_coding, 0x08);
    }

    #[test]
    fn gsm_160_is_one_part_161_is_two() {
        let part = single(&"a".repeat(160));
        assert_eq!(part.short_message, [0x61; 160]);

        let parts = encode(&"a".repeat(161), || REF, 10).expect("fits");
        assert_eq!(parts.len(), 2);
        assert!(
            parts
                .iter()
                .all(|p| p.esm_class_udhi && p.data_coding == 0x00)
        );
        assert_eq!(parts[0].short_message[..6], udh(2, 1));
        assert_eq!(parts[0].short_message[6..], [0x61; 153]);
        assert_eq!(parts[1].short_message[..6], udh(2, 2));
        assert_eq!(parts[1].short_message[6..], [0x61; 8]);
        assert_eq!(parts_needed(&"a".repeat(161)), (Coding::Gsm7, 2));
    }

    #[test]
    fn extension_chars_count_two_septets() {
        // 80 `€` are 160 septets: one message. One more character: two parts.
        assert_eq!(parts_needed(&"€".repeat(80)), (Coding::Gsm7, 1));
        assert_eq!(parts_needed(&"€".repeat(81)), (Coding::Gsm7, 2));
        assert_eq!(
            parts_needed(&format!("{}a", "€".repeat(80))),
            (Coding::Gsm7, 2)
        );
    }

    #[test]
    fn ucs2_70_is_one_part_71_is_two() {
        let part = single(&"ж".repeat(70));
        assert_eq!(part.short_message.len(), 140);

        let parts = encode(&"ж".repeat(71), || REF, 10).expect("fits");
        assert_eq!(parts.len(), 2);
        assert!(
            parts
                .iter()
                .all(|p| p.esm_class_udhi && p.data_coding == 0x08)
        );
        assert_eq!(parts[0].short_message[..6], udh(2, 1));
        assert_eq!(parts[0].short_message.len(), 6 + 67 * 2);
        assert_eq!(parts[1].short_message[..6], udh(2, 2));
        assert_eq!(
            parts[1].short_message[6..],
            [0x04, 0x36, 0x04, 0x36, 0x04, 0x36, 0x04, 0x36]
        );
    }

    #[test]
    fn extension_pair_is_not_split_at_153() {
        // `€` would take septets 153 and 154: it moves whole to part 2.
        let text = format!("{}€{}", "a".repeat(152), "b".repeat(10));
        let parts = encode(&text, || REF, 10).expect("fits");
        assert_eq!(parts.len(), 2);
        assert_eq!(parts[0].short_message[6..], [0x61; 152]);
        assert_eq!(parts[1].short_message[6..9], [0x1B, 0x65, 0x62]);
        // One septet earlier it fits exactly.
        let text = format!("{}€{}", "a".repeat(151), "b".repeat(10));
        let parts = encode(&text, || REF, 10).expect("fits");
        assert_eq!(parts[0].short_message.len(), 6 + 153);
        assert_eq!(parts[0].short_message[6 + 151..], [0x1B, 0x65]);
        assert_eq!(parts[1].short_message[6..], [0x62; 10]);
    }

    #[test]
    fn surrogate_pair_is_not_split_at_67() {
        // The emoji would take code units 67 and 68: it moves whole to part 2.
        let text = format!("{}😀{}", "ж".repeat(66), "ж".repeat(10));
        let parts = encode(&text, || REF, 10).expect("fits");
        assert_eq!(parts.len(), 2);
        assert_eq!(parts[0].short_message.len(), 6 + 66 * 2);
        assert_eq!(parts[1].short_message[6..10], [0xD8, 0x3D, 0xDE, 0x00]);
        assert_eq!(
            decode(&parts[1].short_message, 0x08, true)
                .expect("text")
                .chars()
                .next(),
            Some('😀')
        );
    }

    #[test]
    fn too_many_parts_names_the_count() {
        // 11 full parts of 153 septets and one more septet.
        let text = "a".repeat(153 * 11 + 1);
        assert_eq!(parts_needed(&text), (Coding::Gsm7, 12));
        let err = encode(&text, || REF, 6).expect_err("too long");
        assert_eq!(
            err,
            TooManyParts {
                coding: Coding::Gsm7,
                needed: 12,
                max: 6
            }
        );
        assert_eq!(
            err.to_string(),
            "text needs 12 parts in GSM 7-bit, at most 6 allowed"
        );
        assert_eq!(check(&text, 6), Err(err));
        assert_eq!(check(&text, 12), Ok((Coding::Gsm7, 12)));
        assert_eq!(encode(&text, || REF, 12).expect("fits").len(), 12);
        // One UCS-2 character makes the same length need 26 parts.
        let err = encode(&format!("{text}ж"), || REF, 6).expect_err("too long");
        assert_eq!(
            err.to_string(),
            "text needs 26 parts in UCS-2, at most 6 allowed"
        );
        // A UDH cannot number more than 255 parts, whatever the configuration.
        let err = check(&"a".repeat(153 * 256), 1000).expect_err("too long");
        assert_eq!((err.needed, err.max), (256, 255));
    }

    #[test]
    fn decode_inbound() {
        assert_eq!(
            decode(b"\x1B\x65 5\x00", 0x00, false).as_deref(),
            Ok("€ 5@")
        );
        assert_eq!(
            decode(b"\x00\x61\xD8\x3D\xDE\x00", 0x08, false).as_deref(),
            Ok("a😀")
        );
        assert_eq!(decode(b"caf\xE9", 0x03, false).as_deref(), Ok("café"));
        assert_eq!(decode(b"STOP", 0x01, false).as_deref(), Ok("STOP"));
        assert_eq!(decode(b"hi", 0xF1, false).as_deref(), Ok("hi"));
        assert_eq!(decode(b"\x00\x68", 0x18, false).as_deref(), Ok("h"));
        // UDH-prefixed: a concatenation UDH, then one that also carries a
        // national-language shift element (IEI 0x24).
        assert_eq!(
            decode(b"\x05\x00\x03\x01\x02\x01hello", 0x00, true).as_deref(),
            Ok("hello")
        );
        assert_eq!(
            decode(b"\x08\x00\x03\x01\x02\x02\x24\x01\x00\x20\xAC", 0x08, true).as_deref(),
            Ok("€")
        );
        // UDHI clear: the same octets are text.
        assert_eq!(
            decode(b"\x05hello", 0x03, false).as_deref(),
            Ok("\u{5}hello")
        );
    }

    #[test]
    fn decode_malformed_is_lossy_or_an_error() {
        // Octets above 0x7F, an unknown extension, a trailing ESC.
        assert_eq!(
            decode(b"a\x80\x1B\x41\x1B", 0x00, false).as_deref(),
            Ok("a\u{FFFD}A ")
        );
        assert_eq!(decode(b"a\xFF", 0x01, false).as_deref(), Ok("a\u{FFFD}"));
        // A lone surrogate and an odd trailing octet.
        assert_eq!(
            decode(b"\xD8\x3D\x00\x61\x00", 0x08, false).as_deref(),
            Ok("\u{FFFD}a\u{FFFD}")
        );
        assert_eq!(
            decode(b"\x09\x00\x03", 0x00, true),
            Err(DecodeError::TruncatedUdh { udh: 10, len: 3 })
        );
        assert_eq!(
            decode(b"", 0x00, true),
            Err(DecodeError::TruncatedUdh { udh: 1, len: 0 })
        );
        assert_eq!(decode(b"\x00", 0x00, true).as_deref(), Ok(""));
        assert_eq!(
            decode(b"\x01\x02", 0x04, false),
            Err(DecodeError::UnsupportedDataCoding(0x04))
        );
        assert_eq!(
            DecodeError::UnsupportedDataCoding(0x04).to_string(),
            "data_coding 0x04 is not a text alphabet"
        );
    }

    /// Our table against rusmpp's independent one: same septets for every
    /// character either knows, except form feed, which rusmpp lacks.
    #[test]
    fn gsm_table_agrees_with_rusmpp() {
        let rusmpp = Gsm7BitUnpacked::new();
        let chars = (0..=0x2FFF_u32)
            .chain(0x1F600..0x1F650)
            .filter_map(char::from_u32);
        for ch in chars.filter(|&ch| ch != '\u{0C}') {
            let ours = gsm_encode(ch).map(|septets| match septets {
                Septets::Basic(s) => vec![s],
                Septets::Extended(s) => vec![ESC, s],
            });
            assert_eq!(ours, rusmpp.encode_to_vec(&ch.to_string()).ok(), "{ch:?}");
        }
        assert_eq!(gsm_encode('\u{0C}'), Some(Septets::Extended(0x0A)));
        assert_eq!(Coding::Gsm7.data_coding(), u8::from(DataCoding::McSpecific));
        assert_eq!(Coding::Ucs2.data_coding(), u8::from(DataCoding::Ucs2));
    }

    #[test]
    fn every_septet_round_trips() {
        for s in (0..0x80_u8).filter(|&s| s != ESC) {
            let text = decode(&[s], 0x00, false).expect("GSM");
            assert_eq!(single(&text).short_message, [s]);
        }
        for (s, ch) in GSM_EXTENDED {
            assert_eq!(single(&ch.to_string()).short_message, [ESC, s]);
            assert_eq!(
                decode(&[ESC, s], 0x00, false).as_deref(),
                Ok(ch.to_string().as_str())
            );
        }
    }

    fn texts() -> impl Strategy<Value = String> {
        let gsm: Vec<char> = GSM_BASIC
            .iter()
            .copied()
            .filter(|&ch| ch != '\u{1B}')
            .chain(GSM_EXTENDED.iter().map(|&(_, ch)| ch))
            .collect();
        let gsm_char = proptest::sample::select(gsm);
        prop_oneof![
            proptest::collection::vec(gsm_char.clone(), 0..1300),
            proptest::collection::vec(
                prop_oneof![8 => gsm_char, 1 => any::<char>(), 1 => Just('😀')],
                0..700
            ),
        ]
        .prop_map(|chars| chars.into_iter().collect())
    }

    proptest! {
        #[test]
        fn encode_decode_round_trips(text in texts(), reference in any::<u8>()) {
            let parts = encode(&text, || reference, 255).expect("under 255 parts");
            let (coding, needed) = parts_needed(&text);
            prop_assert_eq!(parts.len(), needed);
            prop_assert_eq!(coding, Coding::of(&text));
            let limit = match coding {
                Coding::Gsm7 => 160,
                Coding::Ucs2 => 140,
            };
            let mut decoded = String::new();
            for (seq, part) in (1..).zip(&parts) {
                prop_assert!(part.short_message.len() <= limit);
                prop_assert_eq!(part.data_coding, coding.data_coding());
                prop_assert_eq!(part.esm_class_udhi, parts.len() > 1);
                if part.esm_class_udhi {
                    let total = u8::try_from(parts.len()).expect("at most 255");
                    prop_assert_eq!(
                        &part.short_message[..6],
                        &[0x05, 0x00, 0x03, reference, total, seq][..]
                    );
                }
                decoded += &decode(&part.short_message, part.data_coding, part.esm_class_udhi)
                    .expect("our own coding");
            }
            prop_assert_eq!(decoded, text);
        }

        #[test]
        fn decode_never_panics(
            octets in proptest::collection::vec(any::<u8>(), 0..300),
            data_coding in any::<u8>(),
            udhi in any::<bool>(),
        ) {
            let _ = decode(&octets, data_coding, udhi);
        }
    }
}
