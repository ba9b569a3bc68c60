//! The embedded engine against a real data directory: durability across
//! reopen, idempotent uploads, claims, outcomes and the feed.

use super::*;
use domain::ChannelKind;

fn decl() -> CampaignDecl {
    CampaignDecl {
        channel: ChannelKind::Email,
        name: "spring".into(),
        segment: None,
        priority: None,
        expected_participants: 3,
        window: None,
        content: None,
        fallback: None,
    }
}

fn participant(customer: &str) -> Participant {
    Participant {
        customer: customer.into(),
        address: format!("{customer}@example.org"),
        segment: None,
        fields: Default::default(),
    }
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn everything_acknowledged_survives_a_reopen() {
    let dir = tempfile::tempdir().expect("tempdir");
    let seq;
    {
        let store = Embedded::open(dir.path()).expect("open");
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
        let claims = store.claim(seq, 10_000, 2, 60_000).expect("claim");
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
    let store = Embedded::open(dir.path()).expect("reopen");
    let record = store.campaign("c1").expect("campaign survives");
    assert_eq!(record.state, CampaignState::Running);
    let counts = store.counts("c1").expect("counts");
    assert_eq!(counts.participants, 3);
    assert_eq!(counts.by_status["submitted"], 1);
    assert_eq!(counts.by_status["pending"], 2);
    let claims = store.claim(seq, 20_000, 10, 500_000).expect("claim");
    let customers: Vec<_> = claims
        .iter()
        .map(|c| c.participant.customer.as_str())
        .collect();
    assert_eq!(
        customers,
        vec!["c"],
        "b waits for its retry time, a is done"
    );
    let later = store.claim(seq, 100_000, 10, 60_000).expect("claim");
    assert_eq!(later.len(), 1);
    assert_eq!(later[0].participant.customer, "b");
    assert_eq!(later[0].attempts, 1);

    let events = store.events(0, 100).expect("events");
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
    assert_eq!(store.events(3, 1).expect("page")[0].cursor, 4);
    let audience = store.audience("c1", "delivered").expect("audience");
    assert_eq!(audience.len(), 1);
    assert_eq!(audience[0].customer, "a");
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn concurrent_uploads_of_the_same_customers_add_each_once() {
    let dir = tempfile::tempdir().expect("tempdir");
    let store = Arc::new(Embedded::open(dir.path()).expect("open"));
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
    assert_eq!(store.counts("c1").expect("counts").participants, 500);
}

#[tokio::test]
async fn unknown_campaigns_are_refused() {
    let dir = tempfile::tempdir().expect("tempdir");
    let store = Embedded::open(dir.path()).expect("open");
    let err = store
        .add_participants("nope", vec![participant("a")], 1)
        .await;
    assert!(matches!(err, Err(StoreError::UnknownCampaign(_))));
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn the_feed_pages_across_fact_runs_and_survives_reopen() {
    let dir = tempfile::tempdir().expect("tempdir");
    let total = FACT_RUN + 904;
    {
        let store = Embedded::open(dir.path()).expect("open");
        store.put_campaign("c1", decl()).await.expect("declare");
        let batch = (0..total).map(|i| participant(&format!("p{i}"))).collect();
        store.add_participants("c1", batch, 1).await.expect("add");
        let page = store.events(FACT_RUN as u64 - 5, 10).expect("page");
        let cursors: Vec<u64> = page.iter().map(|e| e.cursor).collect();
        let expected: Vec<u64> = (FACT_RUN as u64 - 4..=FACT_RUN as u64 + 5).collect();
        assert_eq!(cursors, expected, "a page straddling two runs");
    }
    let store = Embedded::open(dir.path()).expect("reopen");
    assert!(store.events(total as u64, 10).expect("tail").is_empty());
    store
        .add_participants("c1", vec![participant("late")], 2)
        .await
        .expect("add");
    let tail = store.events(total as u64 - 1, 10).expect("tail");
    let cursors: Vec<u64> = tail.iter().map(|e| e.cursor).collect();
    assert_eq!(
        cursors,
        vec![total as u64, total as u64 + 1],
        "cursors continue after a reopen"
    );
    assert_eq!(tail[1].customer, "late");
}

fn receipt(smsc: u16, id: &str, delivered: Option<bool>) -> ReceiptIn {
    ReceiptIn {
        smsc,
        id: id.into(),
        delivered,
        at: 20_000,
        detail: FactDetail::default(),
    }
}

fn submitted(msg: MessageNo, smsc: u16, ids: &[&str]) -> Update {
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

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn receipts_settle_messages_by_upstream_id_after_a_reopen() {
    let dir = tempfile::tempdir().expect("tempdir");
    let seq;
    let claims;
    {
        let store = Embedded::open(dir.path()).expect("open");
        seq = store.put_campaign("s", decl()).await.expect("declare").seq;
        let people = ["a", "b", "c"].map(participant).to_vec();
        store
            .add_participants("s", people, 1_000)
            .await
            .expect("add");
        claims = store.claim(seq, 10_000, 3, 60_000).expect("claim");
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
    let store = Embedded::open(dir.path()).expect("reopen");
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
    use ReceiptMatch::{Matched, Unknown};
    let unknown = Unknown(Box::new(receipt(0, "nobody", Some(true))));
    assert_eq!(matched, vec![Matched, Matched, Matched, Matched, unknown]);
    let status = |i: usize| store.message(claims[i].msg).expect("message").status;
    assert_eq!(status(0), Status::Delivered);
    assert_eq!(
        status(1),
        Status::Submitted,
        "one part of two delivered is not delivered"
    );
    assert_eq!(status(2), Status::Failed);
    store
        .receipts(vec![receipt(0, "p2", Some(true))])
        .await
        .expect("receipts");
    assert_eq!(status(1), Status::Delivered);
    assert_eq!(
        store
            .receipts(vec![receipt(0, "p2", Some(true))])
            .await
            .expect("receipts"),
        vec![Unknown(Box::new(receipt(0, "p2", Some(true))))],
        "an id is settled once"
    );
    let kinds: Vec<String> = store
        .events(0, 100)
        .expect("events")
        .into_iter()
        .map(|e| e.kind.as_str().to_owned())
        .filter(|k| k == "delivered" || k == "failed")
        .collect();
    assert_eq!(kinds, ["delivered", "failed", "delivered"]);
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn engagements_of_one_message_in_one_commit_keep_every_flag() {
    use domain::{Engaged, Engagement};
    let dir = tempfile::tempdir().expect("tempdir");
    let store = Embedded::open(dir.path()).expect("open");
    store.put_campaign("e", decl()).await.expect("declare");
    let people: Vec<_> = (0..20).map(|i| participant(&format!("p{i}"))).collect();
    store
        .add_participants("e", people, 1_000)
        .await
        .expect("add");
    let seq = store.campaign("e").expect("campaign").seq;
    let engaged = |participant, kind| {
        vec![Engaged {
            msg: MessageNo {
                campaign: seq,
                participant,
            },
            at: 2_000,
            kind,
            detail: FactDetail::default(),
        }]
    };
    // A click and an open of the same message, queued together so the
    // committer takes them into one group.
    for n in 0..20 {
        let (a, b) = tokio::join!(
            store.engage(engaged(n, Engagement::Clicked)),
            store.engage(engaged(n, Engagement::Opened)),
        );
        a.expect("click");
        b.expect("open");
    }
    drop(store);
    let store = Embedded::open(dir.path()).expect("reopen");
    for outcome in ["clicked", "opened"] {
        let audience = store.audience("e", outcome).expect("audience");
        assert_eq!(audience.len(), 20, "{outcome}: {audience:?}");
    }
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn claims_read_scattered_messages_and_keep_oldest_due_first() {
    let dir = tempfile::tempdir().expect("tempdir");
    let store = Embedded::open(dir.path()).expect("open");
    let seq = store.put_campaign("c1", decl()).await.expect("declare").seq;
    let people: Vec<Participant> = ["a", "b", "c", "d", "e", "f"]
        .into_iter()
        .map(participant)
        .collect();
    store
        .add_participants("c1", people, 1_000)
        .await
        .expect("add");
    let all = store.claim(seq, 10_000, 6, 1_000_000).expect("claim");
    assert_eq!(all.len(), 6);
    // Three come back, due in an order that is not their key order: two
    // neighbours (b, c) and one apart (e).
    for (i, due) in [(4, 50_000), (1, 60_000), (2, 70_000)] {
        store.defer(all[i].msg, due);
    }
    let again = store.claim(seq, 100_000, 6, 60_000).expect("claim");
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
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn suppressions_decided_by_the_rules_are_durable_with_their_fact() {
    use domain::{Engaged, Engagement, SuppressReason};
    let dir = tempfile::tempdir().expect("tempdir");
    {
        let store = Embedded::open(dir.path()).expect("open");
        let seq = store.put_campaign("c1", decl()).await.expect("declare").seq;
        let people = ["hard", "soft", "unsub", "clicker"]
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
            },
        };
        store
            .record(vec![bounced(0, true), bounced(1, false)])
            .await
            .expect("record");
        assert_eq!(
            store.suppressed(ChannelKind::Email, "HARD@example.org"),
            Some(SuppressReason::HardBounce),
            "a hard bounce suppresses its address in the same write"
        );
        assert_eq!(
            store.suppressed(ChannelKind::Email, "soft@example.org"),
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
            ])
            .await
            .expect("engage");
        assert_eq!(
            store.suppressed(ChannelKind::Email, "unsub@example.org"),
            Some(SuppressReason::Unsubscribed)
        );
        assert_eq!(
            store.suppressed(ChannelKind::Email, "clicker@example.org"),
            None
        );
        assert_eq!(
            store.suppressed(ChannelKind::Sms, "unsub@example.org"),
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
    let store = Embedded::open(dir.path()).expect("reopen");
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
        (ChannelKind::Sms, "+15550001", SuppressReason::Blacklisted),
    ] {
        assert_eq!(store.suppressed(channel, address), Some(why), "{address}");
    }
    let kinds: Vec<String> = store
        .events(0, 100)
        .expect("events")
        .into_iter()
        .map(|e| e.kind.as_str().to_owned())
        .collect();
    assert_eq!(
        kinds[4..],
        ["bounced", "bounced", "unsubscribed", "clicked"],
        "each suppression's fact is in the feed"
    );
}
