//! The contract of staged uploads: a request's participants are seen by
//! nothing until it is published, then all at once; an upload abandoned or
//! never published leaves nothing, and its customers are free again. A
//! participant added at once (a fallback) is never refused for a customer
//! an upload has only staged: the staged one becomes the duplicate.

use domain::{CampaignState, FactKind};

use super::{Harness, decl, participant};
use crate::Store;

/// What a campaign shows the outside: participants counted, claimable,
/// in the feed as `accepted`.
async fn seen(store: &dyn Store, id: &str, seq: u32) -> (u64, usize, usize) {
    let counts = store.counts(id).await.expect("counts").participants;
    let claims = store.claim(seq, 0, 1000, 1).await.expect("claim");
    let msgs: Vec<_> = claims.iter().map(|c| c.msg).collect();
    store.release(&msgs).await.expect("release");
    let accepted = store
        .events(0, 1000)
        .await
        .expect("events")
        .iter()
        .filter(|f| f.kind == FactKind::Accepted && f.campaign == id)
        .count();
    (counts, claims.len(), accepted)
}

fn customers(names: &[&str]) -> Vec<domain::Participant> {
    names.iter().map(|n| participant(n)).collect()
}

pub async fn uploads_are_seen_all_at_once_or_not_at_all(h: &dyn Harness) {
    let seq;
    {
        let store = h.open().await;
        seq = store.put_campaign("c1", decl()).await.expect("declare").seq;
        store
            .set_state("c1", CampaignState::Running)
            .await
            .expect("run");
        let first = store.new_upload();
        let fresh = store
            .stage("c1", first, customers(&["a", "b"]))
            .await
            .expect("stage");
        assert_eq!(fresh, vec![true, true]);
        let fresh = store
            .stage("c1", first, customers(&["b", "c"]))
            .await
            .expect("stage");
        assert_eq!(fresh, vec![false, true], "a customer is staged once");
        assert_eq!(
            seen(&*store, "c1", seq).await,
            (0, 0, 0),
            "staged is unseen"
        );
        let counts = store.counts("c1").await.expect("counts");
        assert_eq!(counts.staged, 3, "the campaign knows an upload is coming");

        let second = store.new_upload();
        assert_ne!(first, second);
        let fresh = store
            .stage("c1", second, customers(&["c", "d"]))
            .await
            .expect("stage");
        assert_eq!(
            fresh,
            vec![false, true],
            "a customer staged by another upload is taken"
        );
        assert_eq!(
            store
                .add_participants("c1", customers(&["a"]), 1)
                .await
                .expect("add"),
            vec![true],
            "a customer only staged does not keep out one added at once"
        );
        assert_eq!(seen(&*store, "c1", seq).await, (1, 1, 1));

        assert_eq!(
            store.publish(first, 5_000).await.expect("publish"),
            2,
            "the staged copy of a customer added meanwhile is a duplicate"
        );
        assert_eq!(seen(&*store, "c1", seq).await, (3, 3, 3), "all at once");
        assert_eq!(store.counts("c1").await.expect("counts").staged, 1);
        let message = store
            .message(domain::MessageNo {
                campaign: seq,
                participant: 1,
            })
            .await
            .expect("message")
            .expect("published");
        assert_eq!(message.customer, "b");

        // The retry right behind the abandon (often in the same commit).
        let again = store.new_upload();
        let (abandoned, fresh) = tokio::join!(
            store.abandon(second),
            store.stage("c1", again, customers(&["d"]))
        );
        abandoned.expect("abandon");
        assert_eq!(
            fresh.expect("stage"),
            vec![true],
            "an abandoned upload frees its customers at once"
        );
        assert_eq!(seen(&*store, "c1", seq).await, (3, 3, 3));
        assert_eq!(store.counts("c1").await.expect("counts").staged, 1);
        assert_eq!(store.publish(again, 6_000).await.expect("publish"), 1);

        let empty = store.new_upload();
        let fresh = store
            .stage("c1", empty, customers(&["a"]))
            .await
            .expect("stage");
        assert_eq!(fresh, vec![false]);
        assert_eq!(
            store.publish(empty, 7_000).await.expect("publish"),
            0,
            "an upload of duplicates publishes nothing"
        );

        let cut_off = store.new_upload();
        store
            .stage("c1", cut_off, customers(&["e", "f"]))
            .await
            .expect("stage");
        // A durable write after it: the staged records are on disk too.
        store.put_meta("k", b"v".to_vec()).await.expect("meta");
    }
    let store = h.open().await;
    assert_eq!(
        seen(&*store, "c1", seq).await,
        (4, 4, 4),
        "an upload never published is gone after a reopen, the rest kept"
    );
    let retry = store.new_upload();
    let fresh = store
        .stage("c1", retry, customers(&["e", "f", "a"]))
        .await
        .expect("stage");
    assert_eq!(fresh, vec![true, true, false], "a retry converges");
    assert_eq!(store.publish(retry, 8_000).await.expect("publish"), 2);
    let claims = store.claim(seq, 0, 1000, 1).await.expect("claim");
    let mut names: Vec<String> = claims
        .iter()
        .map(|c| c.participant.customer.clone())
        .collect();
    names.sort();
    assert_eq!(
        names,
        ["a", "b", "c", "d", "e", "f"],
        "claims read the right records around the numbers of dropped uploads"
    );
}
