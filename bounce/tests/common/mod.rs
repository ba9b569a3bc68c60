//! A corpus of bounces with their expected classification, as the corpus
//! tests read it (`testdata/README.md` describes the layout).

// Each test binary compiles this module and uses a part of it.
#![allow(dead_code)]

use std::collections::BTreeMap;
use std::fs;
use std::path::{Path, PathBuf};

use bounce::{Bounce, Reason};

/// What a recipient of a corpus mail should be classified as.
pub struct Expected {
    pub reason: Reason,
    pub kind: String,
}

/// The corpus directory `name` of this crate (`testdata`, ...).
pub fn corpus(name: &str) -> PathBuf {
    Path::new(env!("CARGO_MANIFEST_DIR")).join(name)
}

/// `expected.tsv` of `corpus`: (file, 1-based recipient) → expectation.
pub fn expected(corpus: &Path) -> BTreeMap<(String, usize), Expected> {
    let text = fs::read_to_string(corpus.join("expected.tsv")).expect("expected.tsv");
    let mut out = BTreeMap::new();
    for line in text.lines().skip(1) {
        let cols: Vec<&str> = line.split('\t').collect();
        assert!(cols.len() >= 4, "bad row {line:?}");
        let reason: Reason = cols[2].parse().expect("known reason");
        out.insert(
            (cols[0].to_owned(), cols[1].parse().expect("rcpt")),
            Expected {
                reason,
                kind: cols[3].to_owned(),
            },
        );
    }
    out
}

/// Kind and reason agreement over `corpus`, in percent: every row of its
/// `expected.tsv` classified and compared, the figures printed under
/// `label` (`BOUNCE_CORPUS_VERBOSE=1` prints every disagreement).
pub fn agreement(corpus: &Path, label: &str) -> (f64, f64) {
    let expected = expected(corpus);
    assert!(
        !expected.is_empty(),
        "{} lists no recipient",
        corpus.display()
    );
    let verbose = std::env::var_os("BOUNCE_CORPUS_VERBOSE").is_some();
    let (mut kind_ok, mut reason_ok) = (0usize, 0usize);
    for ((file, rcpt), want) in &expected {
        let raw = fs::read(corpus.join("eml").join(file)).expect("corpus file");
        let bounce = bounce::classify(&raw).expect("classify");
        let (kind_match, reason_match) = agrees(&bounce, *rcpt, want);
        kind_ok += usize::from(kind_match);
        reason_ok += usize::from(reason_match);
        if verbose && (!kind_match || !reason_match) {
            eprintln!("MISMATCH {}", miss(file, *rcpt, want, &bounce));
        }
    }
    let total = expected.len();
    let pct = |n: usize| 100.0 * n as f64 / total as f64;
    println!(
        "{label}: {total} recipients: kind agreement {kind_ok}/{total} = {:.1}%, reason agreement {reason_ok}/{total} = {:.1}%",
        pct(kind_ok),
        pct(reason_ok)
    );
    (pct(kind_ok), pct(reason_ok))
}

/// Classifies every mail of `corpus`'s `eml/` (each must classify and
/// serialise for the gateway's NDJSON output); returns, sorted, the files
/// listed in `expected.tsv` that were not recognised as reports.
pub fn listed_but_not_reports(corpus: &Path) -> Vec<String> {
    let expected = expected(corpus);
    let mut missed = Vec::new();
    for entry in fs::read_dir(corpus.join("eml")).expect("eml dir") {
        let path = entry.expect("entry").path();
        let raw = fs::read(&path).expect("read");
        let bounce = bounce::classify(&raw).expect("classify");
        serde_json::to_string(&bounce).expect("serialise");
        let name = path
            .file_name()
            .and_then(|n| n.to_str())
            .unwrap_or_default()
            .to_owned();
        if !bounce.is_bounce && expected.keys().any(|(file, _)| *file == name) {
            missed.push(name);
        }
    }
    missed.sort();
    missed
}

/// Asserts no mail of `corpus`'s `not-bounce/` is taken for a report.
pub fn assert_not_bounces(corpus: &Path) {
    let mut seen = 0;
    for entry in fs::read_dir(corpus.join("not-bounce")).expect("not-bounce dir") {
        let path = entry.expect("entry").path();
        let raw = fs::read(&path).expect("read");
        let bounce = bounce::classify(&raw).expect("classify");
        assert!(!bounce.is_bounce, "{} is not a bounce", path.display());
        assert!(bounce.recipients.is_empty(), "{}", path.display());
        seen += 1;
    }
    assert!(seen > 0, "no mail in {}/not-bounce", corpus.display());
}

/// Whether recipient `rcpt` (1-based) of `bounce` has the expected kind and
/// reason.
pub fn agrees(bounce: &Bounce, rcpt: usize, want: &Expected) -> (bool, bool) {
    match bounce.recipients.get(rcpt - 1) {
        Some(r) => (r.kind.as_str() == want.kind, r.reason == want.reason),
        None => (false, false),
    }
}

/// One line on a recipient classified otherwise than expected.
pub fn miss(file: &str, rcpt: usize, want: &Expected, bounce: &Bounce) -> String {
    let got = bounce.recipients.get(rcpt - 1);
    format!(
        "{file}#{rcpt}: want {}/{} got {:?} addr={:?} status={:?} diag={:?}",
        want.kind,
        want.reason,
        got.map(|r| (r.kind, r.reason)),
        got.map(|r| r.address.as_str()),
        got.and_then(|r| r.status).map(|s| s.to_string()),
        got.and_then(|r| r.diagnostic.as_deref())
            .map(|d| d.chars().take(200).collect::<String>()),
    )
}
