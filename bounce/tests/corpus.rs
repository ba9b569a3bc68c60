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
