//! A page of a channel's suppressions in entry order, from entries in any
//! order: one pass that keeps the `limit` smallest matching entries in a
//! bounded heap, O(n log limit), instead of sorting every entry.

use std::collections::BinaryHeap;

use domain::SuppressReason;

use crate::SuppressionQuery;

/// The page `query` asks for among `entries` (stored entries: addresses
/// lowercased).
pub(crate) fn page<'a>(
    entries: impl Iterator<Item = (&'a str, SuppressReason)>,
    query: &SuppressionQuery,
) -> Vec<(String, SuppressReason)> {
    let contains = query.contains.as_deref().map(str::to_lowercase);
    let after = query.after.as_deref().map(str::to_lowercase);
    let matching = entries.filter(|&(entry, why)| {
        after.as_deref().is_none_or(|a| entry > a)
            && contains.as_deref().is_none_or(|c| entry.contains(c))
            && query.reason.is_none_or(|r| r == why)
    });
    // A max-heap of the smallest entries seen: the largest leaves first.
    let mut smallest: BinaryHeap<(&str, SuppressReason)> = BinaryHeap::new();
    for (entry, why) in matching {
        if smallest.len() < query.limit {
            smallest.push((entry, why));
        } else if smallest.peek().is_some_and(|&(largest, _)| entry < largest) {
            smallest.pop();
            smallest.push((entry, why));
        }
    }
    smallest
        .into_sorted_vec()
        .into_iter()
        .map(|(entry, why)| (entry.to_owned(), why))
        .collect()
}
