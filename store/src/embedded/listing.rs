//! A page of the embedded engine's suppressions index (a hash map: lookups
//! are the hot path), through the engines' common page (`crate::listing`).

use std::collections::HashMap;

use domain::{ChannelKind, SuppressReason};

use super::suppression_key;
use crate::SuppressionQuery;

pub(super) fn suppressions_page(
    suppressed: &HashMap<String, SuppressReason>,
    channel: ChannelKind,
    query: &SuppressionQuery,
) -> Vec<(String, SuppressReason)> {
    let prefix = suppression_key(channel, "");
    let entries = suppressed
        .iter()
        .filter_map(|(key, &why)| Some((key.strip_prefix(prefix.as_str())?, why)));
    crate::listing::page(entries, query)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn a_page_is_the_first_matching_entries_after_the_cursor_in_order() {
        let mut index = HashMap::new();
        for (i, why) in [SuppressReason::Blacklisted, SuppressReason::HardBounce]
            .into_iter()
            .cycle()
            .take(20)
            .enumerate()
        {
            index.insert(
                suppression_key(ChannelKind::Email, &format!("u{i:02}@x.org")),
                why,
            );
        }
        index.insert(
            suppression_key(ChannelKind::Sms, "u00@x.org"),
            SuppressReason::Blacklisted,
        );
        let page = |query: SuppressionQuery| -> Vec<String> {
            suppressions_page(&index, ChannelKind::Email, &query)
                .into_iter()
                .map(|(e, _)| e)
                .collect()
        };
        assert_eq!(
            page(SuppressionQuery {
                limit: 3,
                ..Default::default()
            }),
            ["u00@x.org", "u01@x.org", "u02@x.org"]
        );
        assert_eq!(
            page(SuppressionQuery {
                after: Some("U02@x.org".into()),
                reason: Some(SuppressReason::HardBounce),
                limit: 2,
                ..Default::default()
            }),
            ["u03@x.org", "u05@x.org"]
        );
        assert_eq!(
            page(SuppressionQuery {
                contains: Some("1@X".into()),
                limit: 10,
                ..Default::default()
            }),
            ["u01@x.org", "u11@x.org"]
        );
        assert_eq!(
            suppressions_page(
                &index,
                ChannelKind::Sms,
                &SuppressionQuery {
                    limit: 10,
                    ..Default::default()
                }
            ),
            [("u00@x.org".to_owned(), SuppressReason::Blacklisted)]
        );
    }
}
