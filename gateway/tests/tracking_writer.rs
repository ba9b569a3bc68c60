//! The tracking writer on a store that cannot record one event of a batch
//! for good (a real `redis-server` holding a corrupt participant record):
//! the batch's other clicks are recorded all the same.

#[path = "../../store/tests/support/mod.rs"]
mod support;

use std::{sync::Arc, time::Duration};

use clicktrack::{EventKind, LinkIndex, TrackingEvent};
use domain::{CampaignDecl, ChannelKind, Participant};
use gateway::{engagements::EngagementLog, metrics::Metrics, tracking::write_events};
use store::Store;
use support::RedisServer;
use tokio::sync::mpsc;

fn click(campaign: u32, participant: u32) -> TrackingEvent {
    TrackingEvent {
        at: std::time::SystemTime::now(),
        message: clicktrack::MessageNo(
            domain::MessageNo {
                campaign,
                participant,
            }
            .as_u64(),
        ),
        kind: EventKind::Clicked {
            link: LinkIndex(0),
            url: "https://example.org/".into(),
        },
    }
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_click_that_cannot_be_recorded_loses_none_of_its_batch() {
    let redis = RedisServer::start();
    let store: Arc<dyn Store> = Arc::new(redis.open("a").await.expect("open"));
    let decl = CampaignDecl::new(ChannelKind::Email, "e");
    let seq = store.put_campaign("e", decl).await.expect("declare").seq;
    let people = (0..3)
        .map(|i| Participant {
            customer: format!("c{i}"),
            address: format!("c{i}@example.org"),
            segment: None,
            fields: Default::default(),
        })
        .collect();
    store.add_participants("e", people, 1).await.expect("add");
    // The record of participant 1 is corrupt.
    let records = redis.cli(&["--scan", "--pattern", &format!("*p:{seq}")]);
    let key = records.lines().next().expect("the records' hash");
    redis.cli(&["HSET", key, "0000000001", "not a record"]);

    let (queue, events) = mpsc::channel(16);
    let log = EngagementLog::new(store.clone(), Arc::new(Metrics::default()));
    let writer = tokio::spawn(write_events(events, log));
    for participant in 0..3 {
        queue.send(click(seq, participant)).await.expect("queued");
    }
    drop(queue);
    tokio::time::timeout(Duration::from_secs(10), writer)
        .await
        .expect("the writer ends")
        .expect("writer");

    let mut clicked: Vec<String> = store
        .audience("e", "clicked")
        .await
        .expect("audience")
        .into_iter()
        .map(|m| m.customer)
        .collect();
    clicked.sort();
    assert_eq!(clicked, ["c0", "c2"], "the clicks beside the one lost");
}
