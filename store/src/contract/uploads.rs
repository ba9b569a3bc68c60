//! The contract of staged uploads: a request's participants are seen by
//! nothing until it is published, then all at once; an upload abandoned or
//! never published leaves nothing, and its customers are free again.
//! Uploads read at the same time each stage a customer they share (twins),
//! and the first published is kept: an upload abandoned never loses a
//! customer another one counted. A participant added at once (a fallback)
//! is never refused for a customer an upload has only staged: the staged
//! one becomes the duplicate.

use std::sync::Arc;

use domain::{CampaignDecl, CampaignState, FactDetail, FactKind, Outcome, Update};

use super::{Harness, decl, participant};
use crate::{Claim, Store, StoreError};

/// What a campaign shows the outside: participants counted, claimable,
/// in the feed as `accepted`.
async fn seen(store: &dyn Store, id: &str, seq: u32) -> (u64, usize, usize) {
    let counts = store.counts(id).await.expect("counts").participants;
    let claims = store.claim(seq, 0, 1000, 1).await.expect("claim");
    let leases: Vec<_> = claims.iter().map(Claim::lease).collect();
    store.release(&leases).await.expect("release");
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
            .stage("c1", first, customers(&["a", "b", "a"]))
            .await
            .expect("stage");
        assert_eq!(
            fresh,
            vec![true, true, false],
            "a customer twice in an upload's first batch is new once"
        );
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
            vec![true, true],
            "a customer staged by another upload is staged again, a twin"
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
        assert_eq!(
            store.counts("c1").await.expect("counts").staged,
            2,
            "the second upload's twin of `c` and its `d`"
        );
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

/// Races around a publish: a customer added at once in the same commit as
/// its staged copy is published is there once; a running campaign with an
/// upload staged does not finish; a publish to a campaign cancelled
/// meanwhile is refused, and abandoning it frees its customers.
pub async fn an_upload_never_doubles_a_customer_nor_lands_in_an_ended_campaign(h: &dyn Harness) {
    let store = h.open().await;
    let seq = store.put_campaign("c1", decl()).await.expect("declare").seq;
    store
        .set_state("c1", CampaignState::Running)
        .await
        .expect("run");
    for round in 0..20 {
        let x = format!("x{round}");
        let upload = store.new_upload();
        store
            .stage("c1", upload, customers(&[&x]))
            .await
            .expect("stage");
        // A large write first keeps the committer busy, so that the publish
        // and the add often share a commit.
        let (_, published, added) = tokio::join!(
            store.put_meta("ballast", vec![0; 100 << 10]),
            store.publish(upload, 1_000),
            store.add_participants("c1", customers(&[&x]), 1_000)
        );
        let (published, added) = (published.expect("publish"), added.expect("add"));
        assert_eq!(
            published + u64::from(added[0]),
            1,
            "round {round}: {x} published {published}, added {added:?}"
        );
    }
    let claims = store.claim(seq, 0, 1000, 1).await.expect("claim");
    assert_eq!(claims.len(), 20, "each customer is there once");

    let upload = store.new_upload();
    store
        .stage("c1", upload, customers(&["late"]))
        .await
        .expect("stage");
    let msgs: Vec<_> = claims.iter().map(|c| c.msg).collect();
    let sent: Vec<Update> = msgs
        .iter()
        .map(|&msg| Update {
            msg,
            at: 2_000,
            outcome: Outcome::Submitted {
                detail: FactDetail::default(),
                upstream: None,
            },
        })
        .collect();
    store.record(sent).await.expect("record");
    let record = store
        .set_state("c1", CampaignState::Finished)
        .await
        .expect("state");
    assert_eq!(
        record.state,
        CampaignState::Running,
        "a campaign with an upload being read is not finished"
    );

    store
        .set_state("c1", CampaignState::Cancelled)
        .await
        .expect("cancel");
    let refused = store.publish(upload, 3_000).await;
    assert!(
        matches!(
            refused,
            Err(StoreError::Closed {
                state: "cancelled",
                ..
            })
        ),
        "{refused:?}"
    );
    store.abandon(upload).await.expect("abandon");
    let counts = store.counts("c1").await.expect("counts");
    assert_eq!((counts.participants, counts.staged), (20, 0));
}

/// Two uploads of the same customers read at the same time (a CRM's retry
/// beside its first try that timed out, a dry run beside the real upload):
/// whichever is abandoned, the other adds every customer; both published,
/// each customer is there once, counted by the first published.
pub async fn an_upload_abandoned_loses_no_customer_another_upload_staged(h: &dyn Harness) {
    let store = h.open().await;
    let seq = store.put_campaign("c1", decl()).await.expect("declare").seq;
    store
        .set_state("c1", CampaignState::Running)
        .await
        .expect("run");

    let first = store.new_upload();
    let retry = store.new_upload();
    let staged = |upload, names: &'static [&'static str]| {
        let store = store.clone();
        async move {
            store
                .stage("c1", upload, customers(names))
                .await
                .expect("stage")
        }
    };
    assert_eq!(staged(first, &["a", "b"]).await, vec![true, true]);
    assert_eq!(
        staged(retry, &["a", "b", "c"]).await,
        vec![true, true, true],
        "the retry stages its own copy of what the first try staged"
    );
    assert_eq!(
        staged(retry, &["a", "c"]).await,
        vec![false, false],
        "twice in one upload: a duplicate"
    );
    assert_eq!(store.counts("c1").await.expect("counts").staged, 5);
    store.abandon(first).await.expect("abandon");
    assert_eq!(
        store.publish(retry, 1_000).await.expect("publish"),
        3,
        "the first try abandoned, the retry adds everyone"
    );
    assert_eq!(seen(&*store, "c1", seq).await, (3, 3, 3));

    // Both published: the first published counts the customer.
    let (one, other) = (store.new_upload(), store.new_upload());
    assert_eq!(staged(one, &["d"]).await, vec![true]);
    assert_eq!(staged(other, &["d", "e"]).await, vec![true, true]);
    assert_eq!(store.publish(other, 2_000).await.expect("publish"), 2);
    assert_eq!(
        store.publish(one, 2_000).await.expect("publish"),
        0,
        "its twin was published first: a duplicate"
    );
    assert_eq!(seen(&*store, "c1", seq).await, (5, 5, 5));

    // One added at once supersedes every staged twin.
    let (one, other) = (store.new_upload(), store.new_upload());
    assert_eq!(staged(one, &["f"]).await, vec![true]);
    assert_eq!(staged(other, &["f"]).await, vec![true]);
    let added = store
        .add_participants("c1", customers(&["f"]), 3_000)
        .await
        .expect("add");
    assert_eq!(added, vec![true]);
    assert_eq!(store.publish(one, 3_000).await.expect("publish"), 0);
    assert_eq!(store.publish(other, 3_000).await.expect("publish"), 0);

    // Staged together (in one commit, often, on the embedded engine; in
    // any order on Redis): the same.
    let (one, other) = (store.new_upload(), store.new_upload());
    let (first, twin, again) = tokio::join!(
        staged(one, &["g"]),
        staged(other, &["g"]),
        staged(one, &["g"])
    );
    assert_eq!(twin, [true], "another upload's copy is a twin");
    assert_ne!(first, again, "one upload's two copies: one is a duplicate");
    store.abandon(one).await.expect("abandon");
    assert_eq!(store.publish(other, 4_000).await.expect("publish"), 1);

    let claims = store.claim(seq, 0, 1000, 1).await.expect("claim");
    let mut names: Vec<String> = (claims.iter())
        .map(|c| c.participant.customer.clone())
        .collect();
    names.sort();
    assert_eq!(
        names,
        ["a", "b", "c", "d", "e", "f", "g"],
        "each customer once"
    );
    let counts = store.counts("c1").await.expect("counts");
    assert_eq!((counts.participants, counts.staged), (7, 0));
}

/// A declaration conditional on the participants read (a new content
/// checked against them) is written only if none came since, staged or
/// added at once.
pub async fn a_declaration_on_the_participants_read_is_refused_once_more_came(h: &dyn Harness) {
    let store = h.open().await;
    store.put_campaign("c1", decl()).await.expect("declare");
    let numbered = |store: Arc<dyn Store>| async move {
        Some(store.counts("c1").await.expect("counts").numbered)
    };
    let before = numbered(store.clone()).await;
    store
        .add_participants("c1", customers(&["a"]), 1)
        .await
        .expect("add");
    let came = store.put_campaign_if("c1", decl(), before).await;
    assert!(
        matches!(&came, Err(StoreError::ParticipantsCame { campaign }) if campaign == "c1"),
        "{came:?}"
    );

    let read = numbered(store.clone()).await;
    let renamed = CampaignDecl {
        name: "renamed".into(),
        ..decl()
    };
    let record = store
        .put_campaign_if("c1", renamed, read)
        .await
        .expect("nobody came");
    assert_eq!(record.decl.name, "renamed");

    let upload = store.new_upload();
    store
        .stage("c1", upload, customers(&["b"]))
        .await
        .expect("stage");
    let came = store.put_campaign_if("c1", decl(), read).await;
    assert!(
        matches!(came, Err(StoreError::ParticipantsCame { .. })),
        "a staged participant came: {came:?}"
    );
    assert_eq!(
        store
            .campaign("c1")
            .await
            .expect("read")
            .expect("c1")
            .decl
            .name,
        "renamed"
    );
    store
        .put_campaign_if("c1", decl(), None)
        .await
        .expect("unconditional");
}

/// A batch far larger than the API's (4,096) is staged and published
/// whole, each participant once.
pub async fn a_large_batch_is_staged_and_published_whole(h: &dyn Harness) {
    const LARGE: usize = 20_000;
    let store = h.open().await;
    let seq = store.put_campaign("c1", decl()).await.expect("declare").seq;
    store
        .set_state("c1", CampaignState::Running)
        .await
        .expect("run");
    let names: Vec<String> = (0..LARGE).map(|i| format!("p{i}")).collect();
    let people: Vec<_> = names.iter().map(|n| participant(n)).collect();
    let upload = store.new_upload();
    let fresh = store.stage("c1", upload, people).await.expect("stage");
    assert!(fresh.iter().all(|&f| f), "every one new");
    assert_eq!(
        store.counts("c1").await.expect("counts").staged,
        LARGE as u64
    );
    assert_eq!(
        store.publish(upload, 1_000).await.expect("publish"),
        LARGE as u64
    );
    let counts = store.counts("c1").await.expect("counts");
    assert_eq!((counts.participants, counts.staged), (LARGE as u64, 0));
    let claims = store.claim(seq, 0, 2 * LARGE, 1).await.expect("claim");
    assert_eq!(claims.len(), LARGE);
    let mut accepted = 0;
    let mut after = 0;
    loop {
        let page = store.events(after, 1_000).await.expect("events");
        let Some(last) = page.last() else { break };
        after = last.cursor;
        accepted += page.iter().filter(|f| f.kind == FactKind::Accepted).count();
    }
    assert_eq!(accepted, LARGE, "one accepted fact each");
}
