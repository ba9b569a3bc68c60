//! A data directory as the first release wrote it (JSON records, no version
//! byte) opens with this release and keeps working: campaigns, participants,
//! statuses, engagement, suppressions and the feed read back as they were,
//! and new writes continue it. A record of an unknown version stops the open
//! with an error naming it and the directory.

use std::path::Path;

use domain::{
    CampaignState, Engaged, Engagement, FactDetail, FactKind, MessageNo, Outcome, SuppressReason,
    Update,
};
use fjall::PersistMode;

use super::*;
use crate::{Catalog, Ledger, Queue, Suppressions};

/// Writes the first release's records, byte for byte as its `serde_json`
/// encoding made them, straight into the keyspaces.
fn first_release_data(dir: &Path) {
    let db = Database::builder(dir).open().expect("fjall");
    let ks = |name: &str| {
        db.keyspace(name, KeyspaceCreateOptions::default)
            .expect("keyspace")
    };
    let message = |n: u32| {
        codec::message_key(MessageNo {
            campaign: 0,
            participant: n,
        })
    };
    ks("campaigns")
        .insert(
            "spring",
            r#"{"id":"spring","seq":0,"state":"running","decl":{"channel":"email","name":"Spring","expected_participants":3,"content":{"email":{"from":"o@telco.example","subject":"Hi {{name}}","text":"Hello {{name}}, {{gb}} GB"}}}}"#,
        )
        .expect("campaign");
    let participants = ks("participants");
    for (n, (customer, gb)) in [("ann", "21.5"), ("bob", "3"), ("cy", "null")]
        .iter()
        .enumerate()
    {
        let json = format!(
            r#"{{"customer":"{customer}","address":"{customer}@example.org","fields":{{"name":"{customer}","gb":{gb}}}}}"#
        );
        participants
            .insert(message(n as u32), json)
            .expect("participant");
    }
    let status = ks("status");
    status
        .insert(message(0), r#"{"s":"submitted","a":1,"d":1000,"t":5000}"#)
        .expect("status");
    status
        .insert(
            message(1),
            r#"{"s":"bounced_hard","a":1,"d":1000,"t":6000}"#,
        )
        .expect("status");
    ks("engagement")
        .insert(message(0), [Engagement::Clicked.bit()])
        .expect("engaged");
    ks("suppressions")
        .insert("email\u{0}bob@example.org", "hard_bounce")
        .expect("suppression");
    ks("facts")
        .insert(
            codec::cursor_key(1),
            concat!(
                r#"[{"cursor":1,"at":"1970-01-01T00:00:01Z","campaign":"spring","customer":"ann","type":"accepted"},"#,
                r#"{"cursor":2,"at":"1970-01-01T00:00:01Z","campaign":"spring","customer":"bob","type":"accepted"},"#,
                r#"{"cursor":3,"at":"1970-01-01T00:00:01Z","campaign":"spring","customer":"cy","type":"accepted"},"#,
                r#"{"cursor":4,"at":"1970-01-01T00:00:05Z","campaign":"spring","customer":"ann","type":"submitted","reply":"250 ok"},"#,
                r#"{"cursor":5,"at":"1970-01-01T00:00:06Z","campaign":"spring","customer":"bob","type":"bounced","bounce":"hard","reason":"userunknown","replycode":550,"status":"5.1.1"},"#,
                r#"{"cursor":6,"at":"1970-01-01T00:00:07Z","campaign":"spring","customer":"ann","type":"clicked","url":"https://shop.example/"}]"#
            ),
        )
        .expect("facts");
    db.persist(PersistMode::SyncAll).expect("persist");
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_data_directory_of_the_first_release_opens_and_keeps_working() {
    let dir = tempfile::tempdir().expect("tempdir");
    first_release_data(dir.path());
    let store = Embedded::open(dir.path()).expect("the first release's data opens");

    let campaign = store
        .campaign("spring")
        .await
        .expect("store answers")
        .expect("campaign");
    assert_eq!(campaign.state, CampaignState::Running);
    assert_eq!(
        campaign.decl.email().expect("content").subject,
        "Hi {{name}}"
    );
    let counts = store.counts("spring").await.expect("counts");
    assert_eq!(counts.participants, 3);
    assert_eq!(counts.by_status["submitted"], 1);
    assert_eq!(counts.by_status["bounced_hard"], 1);
    assert_eq!(counts.by_status["pending"], 1);
    assert_eq!(
        store
            .suppressed(ChannelKind::Email, "bob@example.org")
            .await
            .expect("store answers"),
        Some(SuppressReason::HardBounce)
    );
    let clicked = store.audience("spring", "clicked").await.expect("audience");
    assert_eq!(clicked.len(), 1);
    assert_eq!(clicked[0].customer, "ann");

    let facts = store.events(0, 100).await.expect("feed");
    assert_eq!(facts.len(), 6);
    assert_eq!(facts[4].kind, FactKind::Bounced);
    assert_eq!(facts[4].detail.replycode, Some(550));
    assert_eq!(facts[4].at, 6_000);
    assert_eq!(
        facts[5].detail.url.as_deref(),
        Some("https://shop.example/")
    );

    // The pending participant is claimed with its fields as written.
    let claims = store.claim(0, 10_000, 10, 60_000).await.expect("claim");
    assert_eq!(claims.len(), 1);
    let cy = &claims[0].participant;
    assert_eq!(cy.customer, "cy");
    assert_eq!(cy.fields["gb"], domain::FieldValue::Null);
    let ann = store
        .participant(MessageNo {
            campaign: 0,
            participant: 0,
        })
        .await
        .expect("read")
        .expect("ann");
    assert_eq!(ann.fields["gb"].render(), "21.5");

    // New records continue the old ones: the feed, a new campaign's number,
    // a status rewritten in the new format.
    store
        .record(vec![Update {
            msg: claims[0].msg,
            at: 20_000,
            outcome: Outcome::Submitted {
                detail: FactDetail::default(),
                upstream: None,
            },
        }])
        .await
        .expect("record");
    store
        .engage(vec![Engaged {
            msg: claims[0].msg,
            at: 21_000,
            kind: Engagement::Unsubscribed,
            detail: FactDetail::default(),
        }])
        .await
        .expect("engage");
    let next = store
        .put_campaign("summer", campaign.decl.clone())
        .await
        .expect("declare");
    assert_eq!(next.seq, 1);
    drop(store);

    let store = Embedded::open(dir.path()).expect("reopen");
    let cursors: Vec<u64> = store
        .events(0, 100)
        .await
        .expect("feed")
        .iter()
        .map(|f| f.cursor)
        .collect();
    assert_eq!(cursors, [1, 2, 3, 4, 5, 6, 7, 8]);
    assert_eq!(
        store.counts("spring").await.expect("counts").by_status["submitted"],
        2
    );
    assert_eq!(
        store
            .suppressed(ChannelKind::Email, "cy@example.org")
            .await
            .expect("store answers"),
        Some(SuppressReason::Unsubscribed)
    );
}

#[tokio::test]
async fn a_record_of_an_unknown_version_stops_the_open_with_its_name() {
    let dir = tempfile::tempdir().expect("tempdir");
    {
        let db = Database::builder(dir.path()).open().expect("fjall");
        let campaigns = db
            .keyspace("campaigns", KeyspaceCreateOptions::default)
            .expect("keyspace");
        campaigns.insert("future", [9u8, 1, 2, 3]).expect("insert");
        db.persist(PersistMode::SyncAll).expect("persist");
    }
    let err = Embedded::open(dir.path()).err().expect("refused");
    let message = err.to_string();
    for part in [
        "campaign",
        "unknown record version 9",
        &dir.path().display().to_string(),
    ] {
        assert!(message.contains(part), "`{part}` missing from: {message}");
    }
}
