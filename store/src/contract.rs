//! The contract every engine passes: what the pipeline relies on of the
//! store, as tests over the role traits alone. An engine's test file runs the
//! whole suite with [`contract_suite!`](crate::contract_suite) and a
//! [`Harness`] that opens its store (and opens it again, to check what is
//! durable); each contract is then a test of its own name.

use std::sync::Arc;

use async_trait::async_trait;
use domain::{
    CampaignDecl, CampaignState, ChannelKind, FactDetail, MessageNo, Outcome, Participant,
    ReceiptIn, ReceiptMatch, Status, Update,
};

use crate::{Store, StoreError};

mod addresses;
mod audience;
mod deletion;
mod fallback;
mod returned;
mod suppressions;
mod uploads;

pub use addresses::{
    answers_carry_each_address_and_replies_find_their_message,
    participants_of_many_messages_come_in_the_order_asked,
};
pub use audience::an_audience_read_page_by_page_is_the_whole_audience_in_number_order;
pub use deletion::{
    a_fallback_campaign_is_deleted_only_after_its_sources,
    an_ended_campaign_is_deleted_for_good_and_its_number_never_reused,
};
pub use fallback::a_fallback_takes_each_undelivered_participant_once;
pub use returned::a_returned_bounce_settles_only_a_message_waiting_for_it;
pub use suppressions::suppressions_are_listed_in_order_a_page_at_a_time;
pub use uploads::{
    a_declaration_on_the_participants_read_is_refused_once_more_came,
    a_large_batch_is_staged_and_published_whole,
    an_upload_abandoned_loses_no_customer_another_upload_staged,
    an_upload_never_doubles_a_customer_nor_lands_in_an_ended_campaign,
    uploads_are_seen_all_at_once_or_not_at_all,
};

/// The type of every fact in the feed, oldest first.
async fn fact_kinds(store: &dyn Store) -> Vec<&'static str> {
    let facts = store.events(0, 1000).await.expect("events");
    facts.iter().map(|f| f.kind.as_str()).collect()
}

/// The status of a message that exists.
async fn status_of(store: &dyn Store, msg: MessageNo) -> Status {
    store
        .message(msg)
        .await
        .expect("store answers")
        .expect("message")
        .status
}

/// How the suite gets an engine.
#[async_trait]
pub trait Harness: Send + Sync {
    /// A store over this harness's state: empty the first time, and the same
    /// state again once every store it gave before is dropped.
    async fn open(&self) -> Arc<dyn Store>;
}

/// Runs every contract as a test of its own, against the harness `$harness`
/// builds (an expression, evaluated once per test).
#[macro_export]
macro_rules! contract_suite {
    ($harness:expr) => {
        $crate::contract_suite!(@each $harness; everything_acknowledged_survives_a_reopen, concurrent_uploads_of_the_same_customers_add_each_once, unknown_campaigns_are_refused, receipts_settle_messages_by_upstream_id_after_a_reopen, a_receipt_is_read_in_another_base_only_where_it_cannot_be_mistaken, a_lease_that_ran_out_gives_back_nothing_of_the_claim_after_it, engagements_of_one_message_in_one_commit_keep_every_flag, claims_read_scattered_messages_and_keep_oldest_due_first, suppressions_decided_by_the_rules_are_durable_with_their_fact, a_fallback_takes_each_undelivered_participant_once, uploads_are_seen_all_at_once_or_not_at_all, an_upload_never_doubles_a_customer_nor_lands_in_an_ended_campaign, suppressions_are_listed_in_order_a_page_at_a_time, an_ended_campaign_is_deleted_for_good_and_its_number_never_reused, a_fallback_campaign_is_deleted_only_after_its_sources, a_returned_bounce_settles_only_a_message_waiting_for_it, answers_carry_each_address_and_replies_find_their_message, participants_of_many_messages_come_in_the_order_asked, a_conditional_value_is_written_only_over_what_it_expects, a_removed_value_stays_removed, a_state_changes_only_from_the_states_named, a_large_batch_is_staged_and_published_whole, an_upload_abandoned_loses_no_customer_another_upload_staged, a_declaration_on_the_participants_read_is_refused_once_more_came, leaving_is_recorded_once_a_message_however_often_its_notice_comes, an_audience_read_page_by_page_is_the_whole_audience_in_number_order);
    };
    (@each $harness:expr; $($name:ident),+) => {
        $(
            #[tokio::test(flavor = "multi_thread", worker_threads = 2)]
            async fn $name() {
                $crate::contract::$name(&$harness).await;
            }
        )+
    };
}

/// The e-mail campaign every contract declares.
pub(crate) fn decl() -> CampaignDecl {
    CampaignDecl {
        expected_participants: 3,
        ..CampaignDecl::new(ChannelKind::Email, "spring")
    }
}

/// Customer `customer`, at `customer@example.org`, with no fields.
pub(crate) fn participant(customer: &str) -> Participant {
    Participant {
        customer: customer.into(),
        address: format!("{customer}@example.org"),
        segment: None,
        fields: Default::default(),
    }
}

pub async fn everything_acknowledged_survives_a_reopen(h: &dyn Harness) {
    let seq;
    {
        let store = h.open().await;
        let record = store.put_campaign("c1", decl()).await.expect("declare");
        seq = record.seq;
        let fresh = store
            .add_participants(
                "c1",
                vec![participant("a"), participant("b"), participant("a")],
                1_000,
            )
            .await
            .expect("add");
        assert_eq!(
            fresh,
            vec![true, true, false],
            "a customer is added once per campaign"
        );
        let again = store
            .add_participants("c1", vec![participant("b"), participant("c")], 2_000)
            .await
            .expect("add");
        assert_eq!(again, vec![false, true]);
        store
            .set_state("c1", CampaignState::Running)
            .await
            .expect("state");
        let claims = store.claim(seq, 10_000, 2, 60_000).await.expect("claim");
        assert_eq!(claims.len(), 2);
        assert_eq!(claims[0].participant.customer, "a");
        let updates = vec![
            Update {
                msg: claims[0].msg,
                at: 11_000,
                outcome: Outcome::Submitted {
                    detail: FactDetail::default(),
                    upstream: None,
                },
            },
            Update {
                msg: claims[1].msg,
                at: 11_000,
                outcome: Outcome::Retry {
                    due: 99_000,
                    reason: "451 try later".into(),
                    detail: FactDetail::default(),
                },
            },
        ];
        store.record(updates).await.expect("record");
    }
    let store = h.open().await;
    let record = store
        .campaign("c1")
        .await
        .expect("store answers")
        .expect("campaign survives");
    assert_eq!(record.state, CampaignState::Running);
    let counts = store.counts("c1").await.expect("counts");
    assert_eq!(counts.participants, 3);
    assert_eq!(counts.by_status["submitted"], 1);
    assert_eq!(counts.by_status["pending"], 2);
    let claims = store.claim(seq, 20_000, 10, 500_000).await.expect("claim");
    let customers: Vec<_> = claims
        .iter()
        .map(|c| c.participant.customer.as_str())
        .collect();
    assert_eq!(
        customers,
        vec!["c"],
        "b waits for its retry time, a is done"
    );
    let later = store.claim(seq, 100_000, 10, 60_000).await.expect("claim");
    assert_eq!(later.len(), 1);
    assert_eq!(later[0].participant.customer, "b");
    assert_eq!(later[0].attempts, 1);

    let events = store.events(0, 100).await.expect("events");
    let kinds: Vec<_> = events.iter().map(|e| e.kind.as_str()).collect();
    assert_eq!(
        kinds,
        vec![
            "accepted",
            "accepted",
            "accepted",
            "submitted",
            "retry_scheduled"
        ]
    );
    let cursors: Vec<_> = events.iter().map(|e| e.cursor).collect();
    assert_eq!(cursors, vec![1, 2, 3, 4, 5]);
    assert_eq!(store.events(3, 1).await.expect("page")[0].cursor, 4);
    let audience = store.audience("c1", "delivered").await.expect("audience");
    assert_eq!(audience.len(), 1);
    assert_eq!(audience[0].customer, "a");
}

pub async fn concurrent_uploads_of_the_same_customers_add_each_once(h: &dyn Harness) {
    let store = h.open().await;
    store.put_campaign("c1", decl()).await.expect("declare");
    let mut tasks = Vec::new();
    for _ in 0..8 {
        let store = store.clone();
        tasks.push(tokio::spawn(async move {
            let batch = (0..500).map(|i| participant(&format!("cust{i}"))).collect();
            store.add_participants("c1", batch, 1).await.expect("add")
        }));
    }
    let mut fresh = 0;
    for t in tasks {
        fresh += t.await.expect("join").into_iter().filter(|&b| b).count();
    }
    assert_eq!(fresh, 500);
    assert_eq!(store.counts("c1").await.expect("counts").participants, 500);
}

pub async fn unknown_campaigns_are_refused(h: &dyn Harness) {
    let store = h.open().await;
    let err = store
        .add_participants("nope", vec![participant("a")], 1)
        .await;
    assert!(matches!(err, Err(StoreError::UnknownCampaign(_))));
}

/// A receipt from SMSC `smsc` for id `id`.
pub fn receipt(smsc: u16, id: &str, delivered: Option<bool>) -> ReceiptIn {
    ReceiptIn {
        smsc,
        id: id.into(),
        readings: domain::IdReadings::Unmistakable,
        delivered,
        at: 20_000,
        detail: FactDetail::default(),
    }
}

/// `msg` submitted to SMSC `smsc`, which gave it `ids` (one per part).
pub fn submitted(msg: MessageNo, smsc: u16, ids: &[&str]) -> Update {
    Update {
        msg,
        at: 11_000,
        outcome: Outcome::Submitted {
            detail: FactDetail::default(),
            upstream: Some(domain::Upstream {
                smsc,
                ids: ids.iter().map(|s| s.to_string()).collect(),
            }),
        },
    }
}

pub async fn receipts_settle_messages_by_upstream_id_after_a_reopen(h: &dyn Harness) {
    let seq;
    let claims;
    {
        let store = h.open().await;
        seq = store.put_campaign("s", decl()).await.expect("declare").seq;
        let people = ["a", "b", "c"].map(participant).to_vec();
        store
            .add_participants("s", people, 1_000)
            .await
            .expect("add");
        claims = store.claim(seq, 10_000, 3, 60_000).await.expect("claim");
        // A receipt that overtakes its submit_sm_resp is not known yet.
        assert_eq!(
            store
                .receipts(vec![receipt(0, "1A", Some(true))])
                .await
                .expect("receipts"),
            vec![ReceiptMatch::Unknown(Box::new(receipt(
                0,
                "1A",
                Some(true)
            )))]
        );
        store
            .record(vec![
                submitted(claims[0].msg, 0, &["1A"]),
                submitted(claims[1].msg, 0, &["p1", "p2"]),
                submitted(claims[2].msg, 1, &["1A"]),
            ])
            .await
            .expect("record");
    }
    let store = h.open().await;
    let matched = store
        .receipts(vec![
            // Decimal 26 is hex 1A; the same id at another SMSC is another message.
            receipt(0, "26", Some(true)),
            receipt(0, "P1", None),
            receipt(0, "p1", Some(true)),
            receipt(1, "1a", Some(false)),
            receipt(0, "nobody", Some(true)),
        ])
        .await
        .expect("receipts");
    use ReceiptMatch::{Matched, MatchedInOtherBase, Unknown};
    let unknown = Unknown(Box::new(receipt(0, "nobody", Some(true))));
    assert_eq!(
        matched,
        vec![MatchedInOtherBase, Matched, Matched, Matched, unknown]
    );
    assert_eq!(
        status_of(store.as_ref(), claims[0].msg).await,
        Status::Delivered
    );
    assert_eq!(
        status_of(store.as_ref(), claims[1].msg).await,
        Status::Submitted,
        "one part of two delivered is not delivered"
    );
    assert_eq!(
        status_of(store.as_ref(), claims[2].msg).await,
        Status::Failed
    );
    store
        .receipts(vec![receipt(0, "p2", Some(true))])
        .await
        .expect("receipts");
    assert_eq!(
        status_of(store.as_ref(), claims[1].msg).await,
        Status::Delivered
    );
    assert_eq!(
        store
            .receipts(vec![receipt(0, "p2", Some(true))])
            .await
            .expect("receipts"),
        vec![Unknown(Box::new(receipt(0, "p2", Some(true))))],
        "an id is settled once"
    );
    let kinds: Vec<&str> = fact_kinds(store.as_ref())
        .await
        .into_iter()
        .filter(|k| *k == "delivered" || *k == "failed")
        .collect();
    assert_eq!(kinds, ["delivered", "failed", "delivered"]);
}

/// An id of digits only is one id in decimal and another in hex: a
/// receipt finds a message by its other reading only once the SMSC is
/// known to mix bases (`IdReadings::Any`), so a foreign or early receipt
/// "16" does not settle the message whose id is hex "10".
pub async fn a_receipt_is_read_in_another_base_only_where_it_cannot_be_mistaken(h: &dyn Harness) {
    let store = h.open().await;
    let seq = store.put_campaign("b", decl()).await.expect("declare").seq;
    let people = ["a", "b"].map(participant).to_vec();
    store
        .add_participants("b", people, 1_000)
        .await
        .expect("add");
    let claims = store.claim(seq, 10_000, 2, 60_000).await.expect("claim");
    store
        .record(vec![
            submitted(claims[0].msg, 0, &["10"]),
            submitted(claims[1].msg, 0, &["1f"]),
        ])
        .await
        .expect("record");
    let ambiguous = receipt(0, "16", Some(true));
    assert_eq!(
        store
            .receipts(vec![ambiguous.clone(), receipt(0, "31", Some(true))])
            .await
            .expect("receipts"),
        vec![
            ReceiptMatch::Unknown(Box::new(ambiguous.clone())),
            ReceiptMatch::MatchedInOtherBase,
        ],
        "hex 10 may not be decimal 16; hex 1f can only be decimal 31"
    );
    assert_eq!(
        status_of(store.as_ref(), claims[0].msg).await,
        Status::Submitted
    );
    let mixing = ReceiptIn {
        readings: domain::IdReadings::Any,
        ..ambiguous
    };
    assert_eq!(
        store.receipts(vec![mixing]).await.expect("receipts"),
        vec![ReceiptMatch::MatchedInOtherBase]
    );
    for claim in &claims {
        assert_eq!(
            status_of(store.as_ref(), claim.msg).await,
            Status::Delivered
        );
    }
}

/// A claim whose lease ran out (its node stalled) and whose message
/// another claim took since gives back nothing: the message stays with
/// the later claim, which alone may give it back.
pub async fn a_lease_that_ran_out_gives_back_nothing_of_the_claim_after_it(h: &dyn Harness) {
    let store = h.open().await;
    let seq = store.put_campaign("l", decl()).await.expect("declare").seq;
    store
        .add_participants("l", vec![participant("a")], 1_000)
        .await
        .expect("add");
    let first = store.claim(seq, 1_000, 1, 1_000).await.expect("claim");
    let second = store.claim(seq, 3_000, 1, 60_000).await.expect("claim");
    assert_eq!(
        second.iter().map(|c| c.msg).collect::<Vec<_>>(),
        first.iter().map(|c| c.msg).collect::<Vec<_>>(),
        "the lease ran out: claimed again"
    );
    store.release(&[first[0].lease()]).await.expect("release");
    store.defer(first[0].lease(), 0).await.expect("defer");
    assert!(
        store
            .claim(seq, 4_000, 1, 60_000)
            .await
            .expect("claim")
            .is_empty(),
        "still leased by the second claim"
    );
    store.release(&[second[0].lease()]).await.expect("release");
    assert_eq!(
        store
            .claim(seq, 5_000, 1, 60_000)
            .await
            .expect("claim")
            .len(),
        1
    );
}

/// Engagements of one message in one commit keep every flag, and the
/// audience of an engagement has the time it first happened.
pub async fn engagements_of_one_message_in_one_commit_keep_every_flag(h: &dyn Harness) {
    use domain::{Engaged, Engagement};
    let store = h.open().await;
    store.put_campaign("e", decl()).await.expect("declare");
    let people: Vec<_> = (0..20).map(|i| participant(&format!("p{i}"))).collect();
    store
        .add_participants("e", people, 1_000)
        .await
        .expect("add");
    let seq = store
        .campaign("e")
        .await
        .expect("store answers")
        .expect("campaign")
        .seq;
    let engaged = |participant, kind, at| {
        vec![Engaged {
            msg: MessageNo {
                campaign: seq,
                participant,
            },
            at,
            kind,
            detail: FactDetail::default(),
        }]
    };
    // A click and an open of the same message, queued together so the
    // committer takes them into one group.
    for n in 0..20 {
        let (a, b) = tokio::join!(
            store.engage(engaged(n, Engagement::Clicked, 2_000)),
            store.engage(engaged(n, Engagement::Opened, 3_000)),
        );
        a.expect("click");
        b.expect("open");
    }
    // A second click later keeps the first one's time.
    store
        .engage(engaged(0, Engagement::Clicked, 9_000))
        .await
        .expect("click again");
    drop(store);
    let store = h.open().await;
    for (outcome, at) in [("clicked", 2_000), ("opened", 3_000)] {
        let audience = store.audience("e", outcome).await.expect("audience");
        assert_eq!(audience.len(), 20, "{outcome}: {audience:?}");
        assert!(
            audience.iter().all(|m| m.at == Some(at)),
            "each {outcome} row has the time of its first {outcome}: {audience:?}"
        );
    }
}

/// Clicks and opens are recorded each time; a recipient's leaving once a
/// message, however often its notice comes (also in one commit).
pub async fn leaving_is_recorded_once_a_message_however_often_its_notice_comes(h: &dyn Harness) {
    use domain::{Engaged, Engagement};
    let store = h.open().await;
    let seq = store.put_campaign("e", decl()).await.expect("declare").seq;
    store
        .add_participants("e", vec![participant("a")], 1_000)
        .await
        .expect("add");
    let engaged = |kind, at| Engaged {
        msg: MessageNo {
            campaign: seq,
            participant: 0,
        },
        at,
        kind,
        detail: FactDetail::default(),
    };
    for kind in [
        Engagement::Clicked,
        Engagement::Complained,
        Engagement::Unsubscribed,
        Engagement::OptedOut,
        Engagement::Opened,
    ] {
        store
            .engage(vec![engaged(kind, 2_000), engaged(kind, 2_001)])
            .await
            .expect("engage");
        store
            .engage(vec![engaged(kind, 3_000)])
            .await
            .expect("engage again");
    }
    let kinds = fact_kinds(&*store).await;
    let count = |kind: &str| kinds.iter().filter(|&&k| k == kind).count();
    assert_eq!(
        [
            count("clicked"),
            count("opened"),
            count("complained"),
            count("unsubscribed"),
            count("opted_out")
        ],
        [3, 3, 1, 1, 1],
        "{kinds:?}"
    );
}

pub async fn claims_read_scattered_messages_and_keep_oldest_due_first(h: &dyn Harness) {
    let store = h.open().await;
    let seq = store.put_campaign("c1", decl()).await.expect("declare").seq;
    let people: Vec<Participant> = ["a", "b", "c", "d", "e", "f"]
        .into_iter()
        .map(participant)
        .collect();
    store
        .add_participants("c1", people, 1_000)
        .await
        .expect("add");
    let all = store.claim(seq, 10_000, 6, 1_000_000).await.expect("claim");
    assert_eq!(all.len(), 6);
    // Three come back, due in an order that is not their key order: two
    // neighbours (b, c) and one apart (e).
    for (i, due) in [(4, 50_000), (1, 60_000), (2, 70_000)] {
        store
            .defer(all[i].lease(), due)
            .await
            .expect("store answers");
    }
    let again = store.claim(seq, 100_000, 6, 60_000).await.expect("claim");
    let customers: Vec<&str> = again
        .iter()
        .map(|c| c.participant.customer.as_str())
        .collect();
    assert_eq!(customers, ["e", "b", "c"], "oldest due first");
    let msgs: Vec<MessageNo> = again.iter().map(|c| c.msg).collect();
    assert_eq!(msgs, [all[4].msg, all[1].msg, all[2].msg]);
}

/// The rules' suppressions are written with the fact that causes them: when
/// `record` or `engage` resolves, the address is suppressed, also after a
/// reopen, and a blacklist entry keeps its reason.
pub async fn suppressions_decided_by_the_rules_are_durable_with_their_fact(h: &dyn Harness) {
    use domain::{Engaged, Engagement, SuppressReason};
    {
        let store = h.open().await;
        let seq = store.put_campaign("c1", decl()).await.expect("declare").seq;
        let people = ["hard", "soft", "unsub", "clicker", "complainer"]
            .map(participant)
            .to_vec();
        store
            .add_participants("c1", people, 1_000)
            .await
            .expect("add");
        let msg = |participant| MessageNo {
            campaign: seq,
            participant,
        };
        let bounced = |n, hard| Update {
            msg: msg(n),
            at: 5_000,
            outcome: Outcome::Bounced {
                hard,
                retry: None,
                detail: FactDetail::default(),
                returned: false,
            },
        };
        store
            .record(vec![bounced(0, true), bounced(1, false)])
            .await
            .expect("record");
        assert_eq!(
            store
                .suppressed(ChannelKind::Email, "HARD@example.org")
                .await
                .expect("store answers"),
            Some(SuppressReason::HardBounce),
            "a hard bounce suppresses its address in the same write"
        );
        assert_eq!(
            store
                .suppressed(ChannelKind::Email, "soft@example.org")
                .await
                .expect("store answers"),
            None
        );
        let engaged = |n, kind| Engaged {
            msg: msg(n),
            at: 6_000,
            kind,
            detail: FactDetail::default(),
        };
        store
            .engage(vec![
                engaged(2, Engagement::Unsubscribed),
                engaged(3, Engagement::Clicked),
                engaged(4, Engagement::Complained),
            ])
            .await
            .expect("engage");
        assert_eq!(
            store
                .suppressed(ChannelKind::Email, "unsub@example.org")
                .await
                .expect("store answers"),
            Some(SuppressReason::Unsubscribed)
        );
        assert_eq!(
            store
                .suppressed(ChannelKind::Email, "clicker@example.org")
                .await
                .expect("store answers"),
            None
        );
        assert_eq!(
            store
                .suppressed(ChannelKind::Sms, "unsub@example.org")
                .await
                .expect("store answers"),
            None,
            "only on the campaign's channel"
        );
        store
            .suppress_many(
                ChannelKind::Sms,
                vec!["+15550001".into()],
                SuppressReason::Blacklisted,
            )
            .await
            .expect("blacklist");
    }
    let store = h.open().await;
    for (channel, address, why) in [
        (
            ChannelKind::Email,
            "hard@example.org",
            SuppressReason::HardBounce,
        ),
        (
            ChannelKind::Email,
            "unsub@example.org",
            SuppressReason::Unsubscribed,
        ),
        (
            ChannelKind::Email,
            "complainer@example.org",
            SuppressReason::Complained,
        ),
        (ChannelKind::Sms, "+15550001", SuppressReason::Blacklisted),
    ] {
        assert_eq!(
            store
                .suppressed(channel, address)
                .await
                .expect("store answers"),
            Some(why),
            "{address}"
        );
    }
    let kinds = fact_kinds(store.as_ref()).await;
    assert_eq!(
        kinds[5..],
        [
            "bounced",
            "bounced",
            "unsubscribed",
            "clicked",
            "complained"
        ],
        "each suppression's fact is in the feed"
    );
    let counts = store.counts("c1").await.expect("counts").by_status;
    assert_eq!(
        (
            counts["unsubscribed"],
            counts["complained"],
            counts["opted_out"]
        ),
        (1, 1, 0)
    );
}

pub async fn a_state_changes_only_from_the_states_named(h: &dyn Harness) {
    use CampaignState::*;
    {
        let store = h.open().await;
        store.put_campaign("c1", decl()).await.expect("declare");
        let refused = store.change_state("c1", &[Paused], Running).await;
        assert!(
            matches!(
                &refused,
                Err(StoreError::StateChanged { campaign, state: "declared" }) if campaign == "c1"
            ),
            "{refused:?}"
        );
        let started = store.change_state("c1", &[Declared], Running).await;
        assert_eq!(started.expect("started").state, Running);
        // A pause and a cancel decided on the same `running`: one applies.
        let (paused, cancelled) = tokio::join!(
            store.change_state("c1", &[Running], Paused),
            store.change_state("c1", &[Running], Cancelled)
        );
        assert!(
            paused.is_ok() ^ cancelled.is_ok(),
            "{paused:?} {cancelled:?}"
        );
        let lost = if paused.is_ok() { cancelled } else { paused };
        assert!(
            matches!(lost, Err(StoreError::StateChanged { .. })),
            "{lost:?}"
        );
        let unknown = store.change_state("nope", &[Running], Paused).await;
        assert!(
            matches!(unknown, Err(StoreError::UnknownCampaign(_))),
            "{unknown:?}"
        );
        // A declaration and a cancel at once: neither undoes the other.
        store.put_campaign("c2", decl()).await.expect("declare");
        let renamed = CampaignDecl {
            name: "renamed".into(),
            ..decl()
        };
        let (declared, cancelled) = tokio::join!(
            store.put_campaign("c2", renamed),
            store.change_state("c2", &[Declared], Cancelled)
        );
        let c2 = store.campaign("c2").await.expect("read").expect("kept");
        assert_eq!(c2.state, Cancelled, "{cancelled:?}");
        match declared {
            Ok(_) => assert_eq!(c2.decl.name, "renamed"),
            Err(StoreError::StateChanged { .. }) => assert_eq!(c2.decl.name, "spring"),
            Err(e) => panic!("{e}"),
        }
    }
    let store = h.open().await;
    let state = store
        .campaign("c1")
        .await
        .expect("read")
        .expect("kept")
        .state;
    assert!(matches!(state, Paused | Cancelled), "{state:?}");
}

pub async fn a_removed_value_stays_removed(h: &dyn Harness) {
    {
        let store = h.open().await;
        for key in ["parked:1", "parked:2"] {
            store.put_meta(key, b"v".to_vec()).await.expect("written");
        }
        store.delete_meta("parked:1").await.expect("removed");
        store
            .delete_meta("parked:none")
            .await
            .expect("removing nothing is no error");
        assert_eq!(store.meta("parked:1").await.expect("answers"), None);
        assert!(
            store
                .put_meta_if("parked:1", None, b"again".to_vec())
                .await
                .expect("answers"),
            "a removed key holds nothing"
        );
        store.delete_meta("parked:1").await.expect("removed");
    }
    let store = h.open().await;
    let left = store.meta_prefix("parked:").await.expect("answers");
    assert_eq!(left, vec![("parked:2".to_owned(), b"v".to_vec())]);
}

pub async fn a_conditional_value_is_written_only_over_what_it_expects(h: &dyn Harness) {
    {
        let store = h.open().await;
        let put = |expected: Option<&'static [u8]>, value: &'static [u8]| {
            let store = store.clone();
            async move {
                store
                    .put_meta_if("quota:sms:c1", expected, value.to_vec())
                    .await
                    .expect("store answers")
            }
        };
        assert!(put(None, b"one").await, "written where there was none");
        assert!(!put(None, b"two").await, "not over a value");
        assert!(!put(Some(b"two"), b"three").await, "not over another value");
        assert!(
            put(Some(b"one"), b"four").await,
            "over the value it expects"
        );
        // Two writers that read the same value: one wins.
        let (x, y) = tokio::join!(put(Some(b"four"), b"x"), put(Some(b"four"), b"y"));
        assert!(x ^ y, "exactly one of two writers on the same value wins");
    }
    let store = h.open().await;
    let kept = store.meta("quota:sms:c1").await.expect("answers");
    assert!(
        matches!(kept.as_deref(), Some(b"x" | b"y")),
        "the winner is durable: {kept:?}"
    );
}
