//! The bounce corpus (testdata/, BSD-2-Clause, see testdata/README.md) as a
//! test: every file is classified and compared per recipient with
//! expected.tsv. Prints kind and reason agreement; asserts kind agreement.
//! Set `BOUNCE_CORPUS_VERBOSE=1` to print every disagreement.
//!
//! `.config/nextest.toml` shows this test's output even when it passes, so
//! the agreement figures reach the CI log.

mod common;
use common::{agreement, assert_not_bounces, corpus, listed_but_not_reports};

/// The floor this test enforces for kind agreement, in percent: the
/// issue's target.
///
/// The rows still missed are mostly ones the corpus labels differently for
/// the same wording (the same "This user doesn't have a ... account" is
/// `userunknown` from one MTA and `filtered` from another; the same Postfix
/// "Malformed or unexpected name server reply" with 5.4.4 is `networkerror`
/// once and `notaccept` once), mailing-list notices that are not bounces to
/// us, and one report whose single recipient the corpus counts twice. They
/// are left missed rather than matched by rules tuned to single files.
const MIN_KIND_AGREEMENT: f64 = 97.0;

/// The floor for reason agreement, in percent (reported, and guarded
/// against regressions; 89.8% when last raised).
const MIN_REASON_AGREEMENT: f64 = 89.5;

#[test]
fn corpus_agreement() {
    let (kind_pct, reason_pct) = agreement(&corpus("testdata"), "bounce corpus");
    assert!(
        reason_pct >= MIN_REASON_AGREEMENT,
        "reason agreement {reason_pct:.1}% is below {MIN_REASON_AGREEMENT}%"
    );
    assert!(
        kind_pct >= MIN_KIND_AGREEMENT,
        "kind agreement {kind_pct:.1}% is below {MIN_KIND_AGREEMENT}%"
    );
}

#[test]
fn every_corpus_file_classifies() {
    let missed = listed_but_not_reports(&corpus("testdata"));
    println!("bounce corpus: files not recognised as reports: {missed:?}");
    // Two mailing-list manager notices (fml) are not bounces to us.
    assert!(missed.len() <= 2, "not recognised as reports: {missed:?}");
}

#[test]
fn not_bounces_are_not_bounces() {
    assert_not_bounces(&corpus("testdata"));
}

/// The reports of both corpora written as free text that say delivery is
/// still being tried, named by file.
fn free_text_delay_notices() -> Vec<String> {
    let mut found = Vec::new();
    for name in ["testdata", "testdata2"] {
        for entry in std::fs::read_dir(corpus(name).join("eml")).expect("eml dir") {
            let path = entry.expect("entry").path();
            let bounce = bounce::classify(&std::fs::read(&path).expect("read")).expect("classify");
            let delayed = bounce
                .recipients
                .iter()
                .any(|r| r.action.as_deref() == Some("delayed"));
            if bounce.format == bounce::Format::Text && delayed {
                let file = path
                    .file_name()
                    .and_then(|n| n.to_str())
                    .unwrap_or_default();
                found.push(format!("{name}/{file}"));
            }
        }
    }
    found.sort();
    found
}

/// Exim's "Warning: message ... delayed", Gmail's "(Delay)" and the like
/// say the message is still being tried, as a DSN's `Action: delayed` does:
/// the gateway must not send it again. No failure notice reads as one.
#[test]
fn free_text_delay_notices_are_delays_and_no_failure_is() {
    let delays = [
        "testdata/lhost-exim-38.eml",
        "testdata/lhost-gmail-06.eml",
        "testdata/lhost-gmail-08.eml",
        "testdata/lhost-gmail-17.eml",
        "testdata2/bounceemail-gmail-04.eml",
        "testdata2/bounceemail-gmail-05.eml",
        "testdata2/bounceemail-gmail-06.eml",
        "testdata2/flufl-exim-01.eml",
        "testdata2/flufl-gmail-02.eml",
        "testdata2/flufl-kundenserver-03.eml",
        "testdata2/flufl-songbird-01.eml",
        "testdata2/flufl-symantec-01.eml",
        "testdata2/flufl-unknown-01.eml",
    ];
    assert_eq!(free_text_delay_notices(), delays);
}
