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
                0x1B, 0x28, 0x1B, 0x3C, 0x1B, 0x3D, 0x1B, 0x3E, 0x1B, 0x29, 0x1B, 0x2F, 0x1B, 0x14,
                0x1B, 0x40,
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
