//! The Redis engine with `store.replicas`: a write is answered only once
//! the master's replica has it, so that a replica taking over loses
//! nothing acknowledged. Against a real `redis-server` and its replica.

mod support;

use std::{
    sync::Arc,
    time::{Duration, Instant},
};

use async_trait::async_trait;
use domain::{CampaignDecl, ChannelKind};
use store::{Catalog, Store, StoreError, contract::Harness};
use support::RedisServer;

/// A master and its replica; the store waits for the replica.
struct Replicated {
    master: RedisServer,
    replica: RedisServer,
}

impl Replicated {
    fn start() -> Self {
        let master = RedisServer::start();
        let replica = master.start_replica();
        Self { master, replica }
    }
}

#[async_trait]
impl Harness for Replicated {
    async fn open(&self) -> Arc<dyn Store> {
        Arc::new(
            self.master
                .open_with("contract", 1)
                .await
                .expect("connect to redis-server"),
        )
    }
}

store::contract_suite!(Replicated::start());

fn decl() -> CampaignDecl {
    CampaignDecl::new(ChannelKind::Sms, "spring")
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_write_is_refused_while_its_replica_hangs_until_a_write_reaches_it_again() {
    let servers = Replicated::start();
    let store = servers.master.open_with("a", 1).await.expect("open");
    store.put_campaign("first", decl()).await.expect("declare");

    servers.replica.pause();
    let started = Instant::now();
    let refused = store.put_campaign("second", decl()).await;
    assert!(
        matches!(&refused, Err(StoreError::Unavailable(why)) if why.contains("0 of the 1 replicas")),
        "{refused:?}"
    );
    assert!(started.elapsed() >= Duration::from_millis(900), "it waited");
    assert!(
        store
            .campaign("first")
            .await
            .expect("reads go on")
            .is_some(),
        "a read waits for no replica"
    );
    // Also the one read by a script (`EVAL_RO`).
    assert_eq!(store.campaigns().await.expect("reads go on").len(), 1);
    // The read succeeded; writes are still not acknowledged.
    let refusal = store.write_refusal().expect("writes refused");
    assert!(refusal.contains("replicas"), "{refusal}");
    // Nor sent: each would hold the connection for a second.
    assert!(store.put_campaign("third", decl()).await.is_err());
    let sent = servers
        .master
        .cli(&["HEXISTS", "sluice:{g}:campaigns", "third"]);
    assert_eq!(
        sent.trim(),
        "0",
        "a write while the replica lags is not sent"
    );

    servers.replica.resume();
    let started = Instant::now();
    let second = loop {
        match store.put_campaign("second", decl()).await {
            Ok(record) => break record,
            Err(e) => {
                assert!(started.elapsed() < Duration::from_secs(10), "{e}");
                tokio::time::sleep(Duration::from_millis(100)).await;
            }
        }
    };
    assert_eq!(second.id, "second");
    assert_eq!(store.write_refusal(), None);
    assert_eq!(store.campaigns().await.expect("read").len(), 2);
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_store_asking_for_more_replicas_than_redis_has_does_not_open() {
    let servers = Replicated::start();
    let refused = servers.master.open_with("a", 2).await.err();
    let why = refused.map(|e| e.to_string()).unwrap_or_default();
    assert!(
        why.starts_with("store.replicas: ") && why.contains("has 1 replicas connected"),
        "{why}"
    );
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn replicas_not_waited_for_or_too_few_to_lose_one_are_warned_of() {
    let servers = Replicated::start();
    let unwaited = servers.master.open("a").await.expect("open");
    let warnings = unwaited.durability_warnings().await;
    assert!(
        warnings.iter().any(|w| w.contains("store.replicas is 0")),
        "{warnings:?}"
    );
    // Without store.replicas no write waits.
    unwaited.put_campaign("c", decl()).await.expect("declare");
    assert_eq!(servers.master.calls("wait"), 0);
    drop(unwaited);

    let waiting = servers.master.open_with("b", 1).await.expect("open");
    let warnings = waiting.durability_warnings().await;
    assert!(
        warnings
            .iter()
            .any(|w| w.contains("give each master 2 replicas")),
        "one replica, and one asked for: {warnings:?}"
    );

    let alone = RedisServer::start();
    let store = alone.open("c").await.expect("open");
    assert_eq!(store.durability_warnings().await, Vec::<String>::new());
}
