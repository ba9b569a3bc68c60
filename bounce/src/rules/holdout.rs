//! What a leave-one-family-out measurement needs of the phrase table
//! (`tests/holdout.rs`, BENCHMARKS.md): which phrases a classification
//! matched, and a classification with some phrases left out. Unused, it
//! costs one thread-local read per phrase matched.

use std::{
    cell::RefCell,
    collections::{BTreeSet, HashSet},
};

use super::RULES;

/// One measurement on this thread: the phrases left out, and those matched.
struct Session {
    left_out: HashSet<usize>,
    matched: BTreeSet<usize>,
}

thread_local! {
    static SESSION: RefCell<Option<Session>> = const { RefCell::new(None) };
}

/// Every phrase of the table, then every term of the phrase families,
/// indexed as [`run`] names them.
pub fn phrases() -> Vec<&'static str> {
    RULES
        .iter()
        .flat_map(|rule| rule.phrases.iter().copied())
        .chain(super::families::terms())
        .collect()
}

/// Runs `classify` on this thread as if the phrases `left_out` (indexes of
/// [`phrases`]) were not in the table; returns its result and the phrases
/// it matched (left out or not).
pub fn run<R>(left_out: HashSet<usize>, classify: impl FnOnce() -> R) -> (R, BTreeSet<usize>) {
    SESSION.with(|s| {
        *s.borrow_mut() = Some(Session {
            left_out,
            matched: BTreeSet::new(),
        })
    });
    let result = classify();
    let session = SESSION.with(|s| s.borrow_mut().take());
    (result, session.map(|s| s.matched).unwrap_or_default())
}

/// Whether phrase `index` counts in this match (it is not left out),
/// noting that it matched.
pub(super) fn admits(index: usize) -> bool {
    SESSION.with(|s| match s.borrow_mut().as_mut() {
        None => true,
        Some(session) => {
            session.matched.insert(index);
            !session.left_out.contains(&index)
        }
    })
}
