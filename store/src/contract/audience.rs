//! The contract of audience pages: read page by page, an audience is the
//! whole audience, in number order, and a page of a rare outcome looks at
//! a bounded run of numbers rather than the whole campaign.

use domain::{Engaged, Engagement, FactDetail, MessageNo};

use super::{Harness, decl, participant};
use crate::{AUDIENCE_SCAN_PER_MEMBER, AudiencePage, Store, StoreError};

/// Every page of `outcome` from number 0 on, `limit` members at most each.
async fn pages(store: &dyn Store, outcome: &str, limit: usize) -> Vec<AudiencePage> {
    let mut pages = Vec::new();
    let mut from = 0;
    loop {
        let page = store
            .audience_page("e", outcome, from, limit)
            .await
            .expect("page");
        let next = page.next;
        pages.push(page);
        match next {
            Some(next) => {
                assert!(next > from, "paging moves on: {from} then {next}");
                from = next;
            }
            None => return pages,
        }
    }
}

/// The participant numbers of `pages`, in order.
fn numbers(pages: &[AudiencePage]) -> Vec<u32> {
    pages
        .iter()
        .flat_map(|p| p.members.iter().map(|m| m.msg.participant))
        .collect()
}

pub async fn an_audience_read_page_by_page_is_the_whole_audience_in_number_order(h: &dyn Harness) {
    const N: u32 = 50;
    let store = h.open().await;
    let seq = store.put_campaign("e", decl()).await.expect("declare").seq;
    let people = (0..N).map(|i| participant(&format!("p{i}"))).collect();
    store
        .add_participants("e", people, 1_000)
        .await
        .expect("add");
    // Two clicks, far apart: a rare outcome.
    for participant in [0, 40] {
        let click = Engaged {
            msg: MessageNo {
                campaign: seq,
                participant,
            },
            at: 2_000,
            kind: Engagement::Clicked,
            detail: FactDetail::default(),
        };
        store.engage(vec![click]).await.expect("click");
    }

    let pending = pages(&*store, "pending", 7).await;
    assert_eq!(numbers(&pending), (0..N).collect::<Vec<_>>());
    assert!(pending.iter().all(|p| p.members.len() <= 7));
    let whole = store.audience("e", "pending").await.expect("audience");
    let paged: Vec<_> = pending.into_iter().flat_map(|p| p.members).collect();
    assert_eq!(paged, whole, "pages carry what the whole audience does");
    assert!(
        paged
            .iter()
            .all(|m| m.address == format!("{}@example.org", m.customer)),
        "each with its own address"
    );

    let clicked = pages(&*store, "clicked", 1).await;
    assert_eq!(numbers(&clicked), vec![0, 40]);
    let looked_at = AUDIENCE_SCAN_PER_MEMBER as u32;
    assert!(
        clicked
            .iter()
            .any(|p| p.members.is_empty() && p.next.is_some_and(|n| n <= 1 + looked_at)),
        "a page between the clicks ends after its share of numbers: {clicked:?}"
    );

    // Numbers given to an upload still being read are looked at as
    // numbers: a page does not walk a large staged upload whole.
    let staged = (0..40).map(|i| participant(&format!("s{i}"))).collect();
    store
        .stage("e", store.new_upload(), staged)
        .await
        .expect("stage");
    let among_staged = store
        .audience_page("e", "pending", N, 1)
        .await
        .expect("page");
    assert!(among_staged.members.is_empty(), "{among_staged:?}");
    assert_eq!(among_staged.next, Some(N + looked_at));

    let past_the_end = store
        .audience_page("e", "pending", N + 100, 10)
        .await
        .expect("page");
    assert_eq!(past_the_end, AudiencePage::default());
    assert!(matches!(
        store.audience_page("nobody", "pending", 0, 10).await,
        Err(StoreError::UnknownCampaign(_))
    ));
}
