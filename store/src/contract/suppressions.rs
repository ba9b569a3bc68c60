//! Listing a channel's suppressions: in entry order, a page at a time,
//! searched and filtered, as stored after a reopen.

use domain::{ChannelKind, SuppressReason};

use super::Harness;
use crate::SuppressionQuery;

/// Every page of `channel`'s suppressions matching `query`, followed from
/// the first by each page's last entry.
async fn all_pages(
    h: &dyn Harness,
    channel: ChannelKind,
    query: SuppressionQuery,
) -> Vec<Vec<(String, SuppressReason)>> {
    let store = h.open().await;
    let mut pages = Vec::new();
    let mut query = query;
    loop {
        let page = store
            .suppressions(channel, &query)
            .await
            .expect("store answers");
        let Some((last, _)) = page.last() else {
            return pages;
        };
        query.after = Some(last.clone());
        pages.push(page);
    }
}

pub async fn suppressions_are_listed_in_order_a_page_at_a_time(h: &dyn Harness) {
    {
        let store = h.open().await;
        let blacklisted: Vec<String> = (0..5).rev().map(|i| format!("B{i}@Example.org")).collect();
        store
            .suppress_many(ChannelKind::Email, blacklisted, SuppressReason::Blacklisted)
            .await
            .expect("blacklist");
        for address in ["a1@example.org", "c1@example.org"] {
            store
                .suppress(ChannelKind::Email, address, SuppressReason::OptedOut)
                .await
                .expect("opt out");
        }
        store
            .suppress_many(
                ChannelKind::Sms,
                vec!["+15550001".into()],
                SuppressReason::Blacklisted,
            )
            .await
            .expect("blacklist");
        assert!(
            store
                .unsuppress(ChannelKind::Email, "b2@example.org")
                .await
                .expect("lift")
        );
        // A claim's participants are looked up together: by address (any
        // case), else by customer id.
        store
            .suppress(ChannelKind::Email, "cust-9", SuppressReason::Unsubscribed)
            .await
            .expect("suppress a customer");
        let who = |customer: &str, address: &str| domain::Participant {
            customer: customer.into(),
            address: address.into(),
            segment: None,
            fields: Default::default(),
        };
        let claim = [
            who("x", "A1@example.org"),
            who("cust-9", "new@example.org"),
            who("y", "b2@example.org"),
        ];
        let found = store
            .participants_suppressions(ChannelKind::Email, &claim.iter().collect::<Vec<_>>())
            .await
            .expect("store answers");
        assert_eq!(
            found,
            [
                Some(SuppressReason::OptedOut),
                Some(SuppressReason::Unsubscribed),
                None
            ]
        );
        store
            .unsuppress(ChannelKind::Email, "cust-9")
            .await
            .expect("lift");
    }
    let entries = |page: &[(String, SuppressReason)]| -> Vec<String> {
        page.iter().map(|(e, _)| e.clone()).collect()
    };
    let pages = all_pages(
        h,
        ChannelKind::Email,
        SuppressionQuery {
            limit: 2,
            ..Default::default()
        },
    )
    .await;
    assert_eq!(
        pages.iter().map(|p| entries(p)).collect::<Vec<_>>(),
        [
            vec!["a1@example.org", "b0@example.org"],
            vec!["b1@example.org", "b3@example.org"],
            vec!["b4@example.org", "c1@example.org"],
        ],
        "lowercased, in order, the lifted one gone, a reopen later"
    );
    assert_eq!(pages[0][0].1, SuppressReason::OptedOut);
    assert_eq!(pages[0][1].1, SuppressReason::Blacklisted);

    let opted_out = all_pages(
        h,
        ChannelKind::Email,
        SuppressionQuery {
            reason: Some(SuppressReason::OptedOut),
            limit: 10,
            ..Default::default()
        },
    )
    .await;
    assert_eq!(
        opted_out.concat(),
        [
            ("a1@example.org".to_owned(), SuppressReason::OptedOut),
            ("c1@example.org".to_owned(), SuppressReason::OptedOut),
        ]
    );
    let searched = all_pages(
        h,
        ChannelKind::Email,
        SuppressionQuery {
            contains: Some("1@EX".into()),
            limit: 1,
            ..Default::default()
        },
    )
    .await;
    assert_eq!(
        entries(&searched.concat()),
        ["a1@example.org", "b1@example.org", "c1@example.org"],
        "found in any case, a page of one at a time"
    );
    let sms = all_pages(
        h,
        ChannelKind::Sms,
        SuppressionQuery {
            limit: 10,
            ..Default::default()
        },
    )
    .await;
    assert_eq!(
        sms.concat(),
        [("+15550001".to_owned(), SuppressReason::Blacklisted)],
        "each channel its own"
    );
}
