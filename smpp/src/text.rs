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
                // A septet a character, but for the few escaped ones.
                out.reserve(text.len());
                for ch in text.chars() {
                    match gsm_encode(ch) {
                        Some(septets) => septets.append_to(out),
                        // Not reached: `Coding::of` chose GSM because every
                        // character has a septet.
                        None => out.push(b'?'),
                    }
                }
            }
            Self::Ucs2 => {
                // No more UTF-16 units than UTF-8 bytes.
                out.reserve(2 * text.len());
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
    if max_parts >= 1
        && let Some(short_message) = single_gsm_part(text)
    {
        return Ok(vec![Part {
            data_coding: Coding::Gsm7.data_coding(),
            esm_class_udhi: false,
            short_message,
        }]);
    }
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

/// `text` as one GSM part, encoded in the same pass that finds it fits
/// (most SMS are): `None` if a character has no septet or the text needs
/// more than one part, and [`encode`] then works it out in full.
fn single_gsm_part(text: &str) -> Option<Vec<u8>> {
    let capacity = Coding::Gsm7.single_capacity();
    let mut out = Vec::with_capacity(text.len().min(capacity));
    for ch in text.chars() {
        gsm_encode(ch)?.append_to(&mut out);
        if out.len() > capacity {
            return None;
        }
    }
    Some(out)
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

impl Septets {
    fn append_to(self, out: &mut Vec<u8>) {
        match self {
            Self::Basic(septet) => out.push(septet),
            Self::Extended(septet) => out.extend([ESC, septet]),
        }
    }
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
mod tests;
