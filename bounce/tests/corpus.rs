//! The bounce corpus (testdata/, BSD-2-Clause, see testdata/README.md) as a
//! test: every file is classified and compared per recipient with
//! expected.tsv. Prints kind and reason agreement; asserts kind agreement.
//! Set `BOUNCE_CORPUS_VERBOSE=1` to print every disagreement.
//!
//! `.config/nextest.toml` shows this test's output even when it passes, so
//! the agreement figures reach the CI log.

use std::fs;

mod common;
use common::{agrees, corpus, expected, miss};

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
    let testdata = corpus("testdata");
    let expected = expected(&testdata);
    let verbose = std::env::var_os("BOUNCE_CORPUS_VERBOSE").is_some();
    let mut kind_ok = 0usize;
    let mut reason_ok = 0usize;
    let mut files = 0usize;
    for ((file, rcpt), want) in &expected {
        let raw = fs::read(testdata.join("eml").join(file)).expect("corpus file");
        let bounce = bounce::classify(&raw).expect("classify");
        files += 1;
        let (kind_match, reason_match) = agrees(&bounce, *rcpt, want);
        kind_ok += usize::from(kind_match);
        reason_ok += usize::from(reason_match);
        if verbose && (!kind_match || !reason_match) {
            eprintln!("MISMATCH {}", miss(file, *rcpt, want, &bounce));
        }
    }
    let total = expected.len();
    let kind_pct = 100.0 * kind_ok as f64 / total as f64;
    let reason_pct = 100.0 * reason_ok as f64 / total as f64;
    println!(
        "bounce corpus: {total} recipients: kind agreement {kind_ok}/{total} = {kind_pct:.1}%, reason agreement {reason_ok}/{total} = {reason_pct:.1}%"
    );
    assert!(files > 0);
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
    let mut seen = 0;
    let testdata = corpus("testdata");
    for entry in fs::read_dir(testdata.join("not-bounce")).expect("not-bounce dir") {
        let path = entry.expect("entry").path();
        let raw = fs::read(&path).expect("read");
        let bounce = bounce::classify(&raw).expect("classify");
        assert!(!bounce.is_bounce, "{} is not a bounce", path.display());
        assert!(bounce.recipients.is_empty());
        seen += 1;
    }
    assert!(seen > 0);
}
