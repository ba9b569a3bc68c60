//! Bad input: random bytes, mutated and truncated corpus mail, oversized
//! input. The classifier must never panic and must say clearly what it did.

use std::fs;
use std::path::Path;
use std::sync::OnceLock;

use bounce::{Classifier, Error};
use proptest::prelude::*;

fn corpus() -> &'static [Vec<u8>] {
    static CORPUS: OnceLock<Vec<Vec<u8>>> = OnceLock::new();
    CORPUS.get_or_init(|| {
        let dir = Path::new(env!("CARGO_MANIFEST_DIR")).join("testdata/eml");
        let mut files: Vec<_> = fs::read_dir(dir)
            .expect("eml dir")
            .map(|e| e.expect("entry").path())
            .collect();
        files.sort();
        files.iter().map(|p| fs::read(p).expect("read")).collect()
    })
}

/// Classifies and checks the invariants that hold for any input.
fn check(raw: &[u8]) {
    match bounce::classify(raw) {
        Ok(bounce) => {
            if !bounce.is_bounce {
                assert!(bounce.recipients.is_empty());
            }
            for r in &bounce.recipients {
                assert_eq!(
                    r.kind,
                    r.reason.kind(
                        r.status.is_some_and(|s| s.is_temporary())
                            || r.reply_code.is_some_and(|c| (400..500).contains(&c))
                    )
                );
            }
        }
        Err(Error::Empty) => assert!(raw.iter().all(u8::is_ascii_whitespace)),
        Err(e) => panic!("unexpected error {e}"),
    }
}

proptest! {
    #![proptest_config(ProptestConfig::with_cases(512))]

    #[test]
    fn random_bytes_do_not_panic(raw in proptest::collection::vec(any::<u8>(), 0..4096)) {
        check(&raw);
    }

    #[test]
    fn header_like_garbage_does_not_panic(
        lines in proptest::collection::vec("[ -~]{0,80}", 0..60),
        ct in prop::sample::select(vec![
            "multipart/report; report-type=delivery-status; boundary=\"b\"",
            "multipart/report; report-type=feedback-report; boundary=b",
            "multipart/mixed; boundary=b",
            "message/delivery-status",
            "text/plain; charset=iso-2022-jp",
        ]),
    ) {
        let mut raw = format!("From: MAILER-DAEMON@example.org\r\nContent-Type: {ct}\r\n\r\n--b\r\nContent-Type: message/delivery-status\r\n\r\n");
        for line in lines {
            raw.push_str(&line);
            raw.push_str("\r\n");
        }
        check(raw.as_bytes());
    }

    #[test]
    fn mutated_corpus_does_not_panic(
        index in any::<prop::sample::Index>(),
        cut in any::<prop::sample::Index>(),
        flips in proptest::collection::vec((any::<prop::sample::Index>(), any::<u8>()), 0..32),
    ) {
        let files = corpus();
        let mut raw = files[index.index(files.len())].clone();
        for (at, byte) in flips {
            let i = at.index(raw.len());
            raw[i] = byte;
        }
        let keep = cut.index(raw.len() + 1);
        raw.truncate(keep);
        check(&raw);
    }
}

#[test]
fn every_truncation_of_a_dsn_is_fine() {
    let raw = corpus()
        .iter()
        .find(|r| r.windows(15).any(|w| w == b"delivery-status"))
        .expect("a DSN in the corpus");
    for keep in (0..raw.len()).step_by(97) {
        check(&raw[..keep]);
    }
}

#[test]
fn eight_bit_garbage_is_not_a_bounce() {
    let raw: Vec<u8> = (0..8192u32).map(|i| (i * 131 % 251) as u8 | 0x80).collect();
    let bounce = bounce::classify(&raw).expect("classify");
    assert!(!bounce.is_bounce);
}

#[test]
fn oversized_input_is_refused() {
    // A 50 MiB "attachment": refused before any parsing.
    let raw = vec![b'A'; 50 * 1024 * 1024];
    match bounce::classify(&raw) {
        Err(Error::TooLarge { size, limit }) => {
            assert_eq!(size, raw.len());
            assert_eq!(limit, bounce::DEFAULT_MAX_SIZE);
        }
        other => panic!("expected TooLarge, got {other:?}"),
    }
    let small = Classifier::new().with_max_size(100);
    let err = small.classify(&[b'x'; 101]).expect_err("over the limit");
    assert_eq!(
        err.to_string(),
        "message is 101 bytes, above the limit of 100 bytes"
    );
    assert!(small.classify(&[b'x'; 100]).is_ok());
}

#[test]
fn empty_input_is_an_error() {
    assert!(matches!(bounce::classify(b""), Err(Error::Empty)));
    assert!(matches!(bounce::classify(b" \r\n"), Err(Error::Empty)));
}

#[test]
fn broken_mime_boundaries_still_give_recipients() {
    // Declares a boundary that never appears.
    let raw = b"From: MAILER-DAEMON@mx.example.org\r\n\
Subject: Undelivered Mail Returned to Sender\r\n\
Content-Type: multipart/report; report-type=delivery-status; boundary=\"nope\"\r\n\r\n\
Final-Recipient: rfc822; kim@example.jp\r\nAction: failed\r\nStatus: 5.1.1\r\n\
Diagnostic-Code: smtp; 550 5.1.1 user unknown\r\n";
    let bounce = bounce::classify(raw).expect("classify");
    assert!(bounce.is_bounce);
    assert_eq!(bounce.recipients.len(), 1);
    assert_eq!(bounce.recipients[0].address, "kim@example.jp");
    assert_eq!(bounce.recipients[0].reason, bounce::Reason::UserUnknown);
}

#[test]
fn many_recipients_are_capped_and_flagged() {
    let mut raw =
        String::from("From: MAILER-DAEMON@mx.example\r\nSubject: Undelivered Mail\r\n\r\n");
    let mut i = 0;
    while raw.len() < 2 * 1024 * 1024 {
        raw.push_str(&format!(
            "<user{i}@example.com>: 550 5.1.1 user unknown\r\n"
        ));
        i += 1;
    }
    let started = std::time::Instant::now();
    let b = bounce::classify(raw.as_bytes()).expect("classify");
    assert_eq!(b.recipients.len(), bounce::MAX_RECIPIENTS);
    assert!(b.truncated);
    assert_eq!(b.recipients[0].address, "user0@example.com");
    assert!(started.elapsed() < std::time::Duration::from_secs(30));
}

#[test]
fn one_huge_line_of_addresses_is_not_quadratic() {
    let mut raw =
        String::from("From: MAILER-DAEMON@mx.example\r\nSubject: Undelivered Mail\r\n\r\n");
    while raw.len() < 2 * 1024 * 1024 {
        raw.push_str("a@b.example x@y.example ");
    }
    let started = std::time::Instant::now();
    let b = bounce::classify(raw.as_bytes()).expect("classify");
    assert!(b.is_bounce);
    assert!(!b.truncated);
    assert!(started.elapsed() < std::time::Duration::from_secs(30));
}

#[test]
fn ten_thousand_mime_parts_are_read_within_bounds() {
    let mut raw = String::from(
        "From: MAILER-DAEMON@mx.example\r\nSubject: Undelivered Mail Returned to Sender\r\n\
Content-Type: multipart/mixed; boundary=\"b\"\r\n\r\n",
    );
    raw.push_str(
        "--b\r\nContent-Type: text/plain\r\n\r\n<kim@example.jp>: 550 5.1.1 user unknown\r\n",
    );
    for i in 0..10_000 {
        raw.push_str(&format!(
            "--b\r\nContent-Type: application/octet-stream\r\n\r\npart {i}\r\n"
        ));
    }
    raw.push_str("--b--\r\n");
    let b = bounce::classify(raw.as_bytes()).expect("classify");
    assert!(b.is_bounce);
    assert_eq!(b.recipients[0].address, "kim@example.jp");
    assert_eq!(b.recipients[0].reason, bounce::Reason::UserUnknown);
}

#[test]
fn a_dsn_with_a_thousand_recipients_lists_each() {
    let mut fields = String::new();
    for i in 0..1_000 {
        let (status, text) = if i % 2 == 0 {
            ("5.1.1", "550 5.1.1 user unknown")
        } else {
            ("4.2.2", "452 4.2.2 mailbox full")
        };
        fields.push_str(&format!(
            "Final-Recipient: rfc822; u{i}@example.jp\r\nAction: failed\r\nStatus: {status}\r\n\
Diagnostic-Code: smtp; {text}\r\n\r\n"
        ));
    }
    let raw = format!(
        "From: MAILER-DAEMON@mx.example\r\nSubject: Undelivered Mail Returned to Sender\r\n\
MIME-Version: 1.0\r\n\
Content-Type: multipart/report; report-type=delivery-status; boundary=\"r\"\r\n\r\n\
--r\r\nContent-Type: text/plain\r\n\r\nThe mail could not be delivered.\r\n\
--r\r\nContent-Type: message/delivery-status\r\n\r\nReporting-MTA: dns; mx.example\r\n\r\n\
{fields}--r--\r\n"
    );
    let b = bounce::classify(raw.as_bytes()).expect("classify");
    assert_eq!(b.recipients.len(), 1_000);
    assert!(!b.truncated);
    assert_eq!(b.recipients[0].reason, bounce::Reason::UserUnknown);
    assert_eq!(b.recipients[0].kind, bounce::Kind::Hard);
    assert_eq!(b.recipients[999].address, "u999@example.jp");
    assert_eq!(b.recipients[999].reason, bounce::Reason::MailboxFull);
    assert_eq!(b.recipients[999].kind, bounce::Kind::Soft);
}

/// Nothing says a mail without headers is a report (no sender, no subject,
/// no report part): it is taken as no bounce, never guessed into one.
#[test]
fn a_mail_without_headers_is_no_bounce() {
    let raw = b"\r\n<kim@example.jp>: 550 5.1.1 user unknown\r\n";
    let b = bounce::classify(raw).expect("classify");
    assert!(!b.is_bounce);
    assert!(b.recipients.is_empty());
}

/// Words of the phrase families repeated over a whole report: read in a
/// bounded number of steps (the families read a bounded number of terms).
#[test]
fn a_report_repeating_the_refusal_words_is_not_quadratic() {
    let mut raw =
        String::from("From: MAILER-DAEMON@mx.example\r\nSubject: Undelivered Mail\r\n\r\n");
    raw.push_str("<kim@example.jp>: 550 delivery failed\r\n");
    while raw.len() < 1024 * 1024 {
        raw.push_str(
            "recipient mailbox domain header attempts invalid exceeded giving up duplicate ",
        );
    }
    let b = bounce::classify(raw.as_bytes()).expect("classify");
    assert!(b.is_bounce);
    assert_eq!(b.recipients[0].address, "kim@example.jp");
}
