//! Returned bounces (DSNs) against the state of their message.

use domain::{CampaignState, FactDetail, MessageNo, Outcome, Status, Update};

use super::{Harness, decl, fact_kinds, participant, status_of};

fn returned(msg: MessageNo, hard: bool, retry: Option<u64>, at: u64) -> Update {
    Update {
        msg,
        at,
        outcome: Outcome::Bounced {
            hard,
            retry,
            detail: FactDetail::default(),
            returned: true,
        },
    }
}

/// A returned bounce settles only a message handed over and waiting for its
/// outcome: the same report twice (in one commit or two), or one for a
/// message rescheduled or never sent, changes nothing.
pub async fn a_returned_bounce_settles_only_a_message_waiting_for_it(h: &dyn Harness) {
    let store = h.open().await;
    let seq = store.put_campaign("c1", decl()).await.expect("declare").seq;
    store
        .add_participants("c1", vec![participant("a"), participant("b")], 1_000)
        .await
        .expect("add");
    store
        .set_state("c1", CampaignState::Running)
        .await
        .expect("start");
    let claims = store.claim(seq, 2_000, 1, 60_000).await.expect("claim");
    let sent = claims[0].msg;
    let never_sent = MessageNo {
        campaign: seq,
        participant: 1,
    };
    let submitted = Update {
        msg: sent,
        at: 3_000,
        outcome: Outcome::Submitted {
            detail: FactDetail::default(),
            upstream: None,
        },
    };
    store.record(vec![submitted]).await.expect("record");

    // A soft bounce schedules a resend; its copy in the same commit and a
    // replay later change nothing.
    let soft = returned(sent, false, Some(90_000), 4_000);
    store
        .record(vec![soft.clone(), soft.clone()])
        .await
        .expect("record");
    store.record(vec![soft]).await.expect("record");
    store
        .record(vec![returned(never_sent, true, None, 5_000)])
        .await
        .expect("record");
    assert_eq!(status_of(&*store, sent).await, Status::Pending);
    assert_eq!(status_of(&*store, never_sent).await, Status::Pending);
    assert_eq!(
        fact_kinds(&*store).await,
        vec!["accepted", "accepted", "submitted", "bounced"],
        "one bounce, nothing for the copies nor the message never sent"
    );
    assert_eq!(
        store
            .suppressed(domain::ChannelKind::Email, "b@example.org")
            .await
            .expect("answers"),
        None,
        "a bounce for a message never sent suppresses nobody"
    );
}
