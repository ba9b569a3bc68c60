//! The bounce corpus (testdata/, BSD-2-Clause, see testdata/README.md) as a
//! test: every file is classified and compared per recipient with
//! expected.tsv. Prints kind and reason agreement; asserts kind agreement.
//! Set `BOUNCE_CORPUS_VERBOSE=1` to print every disagreement.
//!
//! `.config/nextest.toml` shows this test's output even when it passes, so
//! the agreement figures reach the CI log.

use std::fs;

mod common;
use common::{agreement, assert_not_bounces, corpus, expected};

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
    let testdata = corpus("testdata");
    let expected = expected(&testdata);
    let mut missed = Vec::new();
    for entry in fs::read_dir(testdata.join("eml")).expect("eml dir") {
        let path = entry.expect("entry").path();
        let raw = fs::read(&path).expect("read");
        let bounce = bounce::classify(&raw).expect("classify");
        // Serialises for the gateway's NDJSON output.
        serde_json::to_string(&bounce).expect("serialise");
        let name = path
            .file_name()
            .and_then(|n| n.to_str())
            .unwrap_or_default();
        let listed = expected.keys().any(|(file, _)| file == name);
        if listed && !bounce.is_bounce {
            missed.push(name.to_owned());
        }
    }
    println!("bounce corpus: files not recognised as reports: {missed:?}");
    // Two mailing-list manager notices (fml) are not bounces to us.
    assert!(missed.len() <= 2, "not recognised as reports: {missed:?}");
}

#[test]
fn not_bounces_are_not_bounces() {
    assert_not_bounces(&corpus("testdata"));
}
