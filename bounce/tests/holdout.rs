//! Leave one family out: the honest estimate of how the classifier does on
//! mail from a mail system it was never tuned on. The corpus's families are
//! its file names' prefixes (`lhost-exim`, `rhost-google`, `arf`, ...).
//! Every phrase of the rule table that matches in the mails of exactly one
//! family exists, as far as the corpus can tell, only for that family; each
//! family is classified with those phrases left out. (The table has no rule
//! keyed on a vendor: what else decides, the enhanced status code, the
//! reply code, the SMTP phase and the DSN fields, holds for every vendor.)
//!
//! Prints a line per family and the overall figures (BENCHMARKS.md keeps
//! them); asserts the overall figures stay above their floors.

use std::collections::{BTreeMap, BTreeSet, HashSet};
use std::fs;

use bounce::rules::holdout;

mod common;
use common::{agrees, corpus, expected, miss};

/// Floors, in percent: the figures when last measured, rounded down, so a
/// change that generalises worse fails here even if the corpus test passes.
const MIN_KIND: f64 = 95.5;
const MIN_REASON: f64 = 77.5;

/// `lhost-exim-04.eml` → `lhost-exim`.
fn family(file: &str) -> &str {
    let stem = file.strip_suffix(".eml").unwrap_or(file);
    stem.rsplit_once('-').map_or(stem, |(family, _)| family)
}

#[derive(Default)]
struct Tally {
    recipients: usize,
    kind: usize,
    reason: usize,
    left_out: usize,
}

#[test]
fn each_family_classified_without_the_phrases_only_it_has() {
    let testdata = corpus("testdata");
    let expected = expected(&testdata);
    let files: BTreeSet<&str> = expected.keys().map(|(file, _)| file.as_str()).collect();
    let raw = |file: &str| fs::read(testdata.join("eml").join(file)).expect("corpus file");

    // Which families each phrase matches in.
    let mut families_of: BTreeMap<usize, BTreeSet<&str>> = BTreeMap::new();
    for &file in &files {
        let (_, matched) = holdout::run(HashSet::new(), || bounce::classify(&raw(file)));
        for phrase in matched {
            families_of.entry(phrase).or_default().insert(family(file));
        }
    }
    let only_in = |fam: &str| -> HashSet<usize> {
        families_of
            .iter()
            .filter(|(_, families)| families.len() == 1 && families.contains(fam))
            .map(|(&phrase, _)| phrase)
            .collect()
    };

    let mut tallies: BTreeMap<&str, Tally> = BTreeMap::new();
    let verbose = std::env::var_os("BOUNCE_CORPUS_VERBOSE").is_some();
    let phrases = holdout::phrases();
    for ((file, rcpt), want) in &expected {
        let fam = family(file);
        let left_out = only_in(fam);
        let tally = tallies.entry(fam).or_default();
        tally.left_out = left_out.len();
        let (bounce, _) = holdout::run(left_out, || bounce::classify(&raw(file)));
        let bounce = bounce.expect("classify");
        let (kind_ok, reason_ok) = agrees(&bounce, *rcpt, want);
        tally.recipients += 1;
        tally.kind += usize::from(kind_ok);
        tally.reason += usize::from(reason_ok);
        if verbose && (!kind_ok || !reason_ok) {
            eprintln!("HELD-OUT MISS {}", miss(file, *rcpt, want, &bounce));
        }
    }
    if verbose {
        for (phrase, families) in &families_of {
            if families.len() == 1 {
                eprintln!("only in {:?}: {:?}", families, phrases[*phrase]);
            }
        }
    }

    let pct = |n: usize, of: usize| 100.0 * n as f64 / of as f64;
    println!("family                  recipients  left out  kind     reason");
    let mut all = Tally::default();
    for (fam, t) in &tallies {
        println!(
            "{fam:<24}{:>10}{:>10}  {:>6.1}%  {:>6.1}%",
            t.recipients,
            t.left_out,
            pct(t.kind, t.recipients),
            pct(t.reason, t.recipients)
        );
        all.recipients += t.recipients;
        all.kind += t.kind;
        all.reason += t.reason;
    }
    let (kind, reason) = (
        pct(all.kind, all.recipients),
        pct(all.reason, all.recipients),
    );
    println!(
        "held out, overall: {} recipients: kind {}/{} = {kind:.1}%, reason {}/{} = {reason:.1}%",
        all.recipients, all.kind, all.recipients, all.reason, all.recipients
    );
    assert!(
        kind >= MIN_KIND,
        "held-out kind agreement {kind:.1}% < {MIN_KIND}%"
    );
    assert!(
        reason >= MIN_REASON,
        "held-out reason agreement {reason:.1}% < {MIN_REASON}%"
    );
}
