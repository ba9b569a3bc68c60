//! Deleting an ended campaign.

use domain::{
    CampaignDecl, CampaignState, ChannelKind, Engaged, Engagement, FactDetail, Fallback, MessageNo,
    Outcome, Update,
};

use super::{Harness, decl, fact_kinds, participant};
use crate::StoreError;

/// Only an ended campaign is deleted; then its record, participants,
/// statuses and engagements are gone for good (a reopen brings none back),
/// its facts stay in the feed, and its number is never given again, even
/// after a reopen, so that tokens in mail already sent never name another
/// campaign's messages.
pub async fn an_ended_campaign_is_deleted_for_good_and_its_number_never_reused(h: &dyn Harness) {
    let (old_seq, msg);
    {
        let store = h.open().await;
        old_seq = store
            .put_campaign("old", decl())
            .await
            .expect("declare")
            .seq;
        store
            .add_participants("old", vec![participant("a"), participant("b")], 1_000)
            .await
            .expect("add");
        store
            .set_state("old", CampaignState::Running)
            .await
            .expect("start");
        let claims = store.claim(old_seq, 2_000, 1, 60_000).await.expect("claim");
        msg = claims[0].msg;
        let sent = Update {
            msg,
            at: 3_000,
            outcome: Outcome::Submitted {
                detail: FactDetail::default(),
                upstream: None,
            },
        };
        store.record(vec![sent]).await.expect("record");
        store
            .engage(vec![Engaged {
                msg,
                at: 4_000,
                kind: Engagement::Opened,
                detail: FactDetail::default(),
            }])
            .await
            .expect("engage");

        match store.delete_campaign("old").await {
            Err(StoreError::Open { state, .. }) => assert_eq!(state, "running"),
            other => panic!("a running campaign is not deleted: {other:?}"),
        }
        assert!(matches!(
            store.delete_campaign("ghost").await,
            Err(StoreError::UnknownCampaign(_))
        ));
        store
            .set_state("old", CampaignState::Cancelled)
            .await
            .expect("cancel");
        let deleted = store.delete_campaign("old").await.expect("delete");
        assert_eq!(deleted.seq, old_seq);
        assert_gone(&*store, msg).await;
    }
    let store = h.open().await;
    assert_gone(&*store, msg).await;
    assert_eq!(
        fact_kinds(&*store).await,
        vec!["accepted", "accepted", "submitted", "opened"],
        "the facts stay in the feed"
    );
    let again = store.put_campaign("old", decl()).await.expect("declare");
    assert!(
        again.seq > old_seq,
        "number {} given again (deleted: {old_seq})",
        again.seq
    );
    assert_eq!(again.state, CampaignState::Declared);
    assert_eq!(store.counts("old").await.expect("counts").participants, 0);
}

/// A campaign another one falls back to is not deleted before that one:
/// a late bounce of the source would lose its participant.
pub async fn a_fallback_campaign_is_deleted_only_after_its_sources(h: &dyn Harness) {
    let store = h.open().await;
    let sms = CampaignDecl::new(ChannelKind::Sms, "sms");
    store.put_campaign("sms", sms).await.expect("declare");
    let mail = CampaignDecl {
        fallback: Some(Fallback::to("sms")),
        ..decl()
    };
    store.put_campaign("mail", mail).await.expect("declare");
    for id in ["sms", "mail"] {
        store
            .set_state(id, CampaignState::Cancelled)
            .await
            .expect("cancel");
    }
    match store.delete_campaign("sms").await {
        Err(StoreError::FallbackOf {
            campaign,
            source_campaign,
        }) => assert_eq!(
            (campaign.as_str(), source_campaign.as_str()),
            ("sms", "mail")
        ),
        other => panic!("deleted while `mail` falls back to it: {other:?}"),
    }
    assert!(store.campaign("sms").await.expect("answers").is_some());
    store
        .delete_campaign("mail")
        .await
        .expect("delete the source");
    store
        .delete_campaign("sms")
        .await
        .expect("then the fallback");
}

async fn assert_gone(store: &dyn crate::Store, msg: MessageNo) {
    assert_eq!(store.campaign("old").await.expect("answers"), None);
    assert_eq!(
        store.campaign_by_seq(msg.campaign).await.expect("answers"),
        None
    );
    assert!(store.campaigns().await.expect("answers").is_empty());
    assert!(!store.exists(msg).await.expect("answers"));
    assert_eq!(store.participant(msg).await.expect("answers"), None);
    assert!(store.message(msg).await.expect("answers").is_none());
    assert!(matches!(
        store.counts("old").await,
        Err(StoreError::UnknownCampaign(_))
    ));
}
