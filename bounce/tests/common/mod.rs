//! A corpus of bounces with their expected classification, as the corpus
//! tests read it (`testdata/README.md` describes the layout).

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
