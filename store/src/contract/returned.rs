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

/// A returned bounce settles a message handed over and waiting for its
/// outcome; while its resend is due, only a hard one (the final failure
/// after a delay notice) does. A copy arriving once the message is settled
/// or while its resend is due, or a report for a message never sent,
/// changes nothing.
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

    // A delay notice (soft) schedules a resend, its copy does not count
    // another attempt; the final failure after it still counts; its
    // copies, in the same commit and later, do not.
    store
        .record(vec![returned(sent, false, Some(90_000), 4_000)])
        .await
        .expect("record");
    assert_eq!(status_of(&*store, sent).await, Status::Pending);
    store
        .record(vec![returned(sent, false, Some(95_000), 4_500)])
        .await
        .expect("record");
    let info = store
        .message(sent)
        .await
        .expect("answers")
        .expect("message");
    assert_eq!((info.status, info.attempts), (Status::Pending, 1));
    let hard = returned(sent, true, None, 5_000);
    store
        .record(vec![hard.clone(), hard.clone()])
        .await
        .expect("record");
    store.record(vec![hard]).await.expect("record");
    store
        .record(vec![returned(never_sent, true, None, 6_000)])
        .await
        .expect("record");
    assert_eq!(status_of(&*store, sent).await, Status::BouncedHard);
    assert_eq!(status_of(&*store, never_sent).await, Status::Pending);
    assert_eq!(
        fact_kinds(&*store).await,
        vec!["accepted", "accepted", "submitted", "bounced", "bounced"],
        "the delay and the failure, nothing for the copies nor the message never sent"
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
