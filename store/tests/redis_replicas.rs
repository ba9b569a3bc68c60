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
async fn a_write_is_answered_once_its_replica_has_it_and_fails_while_the_replica_hangs() {
    let servers = Replicated::start();
    let store = servers.master.open_with("a", 1).await.expect("open");
    let waits = servers.master.calls("wait");
    store.put_campaign("first", decl()).await.expect("declare");
    assert!(
        servers.master.calls("wait") > waits,
        "the write waited for its replica"
    );
    let kept = servers
        .replica
        .cli(&["HEXISTS", "sluice:{g}:campaigns", "first"]);
    assert_eq!(
        kept.trim(),
        "1",
        "the replica had the write when it was answered"
    );

    servers.replica.pause();
    let started = Instant::now();
    let refused = store.put_campaign("second", decl()).await;
    assert!(
        matches!(&refused, Err(StoreError::Unavailable(why)) if why.contains("0 of the 1 replicas")),
        "{refused:?}"
    );
    assert!(started.elapsed() >= Duration::from_millis(900), "it waited");
    let refusal = store.write_refusal().expect("writes refused");
    assert!(refusal.contains("replicas"), "{refusal}");
    assert!(
        store
            .campaign("first")
            .await
            .expect("reads go on")
            .is_some(),
        "a read waits for no replica"
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
    assert_eq!(store.campaigns().await.expect("read").len(), 2);
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_store_asking_for_more_replicas_than_redis_has_does_not_open() {
    let servers = Replicated::start();
    let refused = servers.master.open_with("a", 2).await.err();
    let why = refused.map(|e| e.to_string()).unwrap_or_default();
    assert!(
        why.contains("store.replicas") && why.contains("1 of the 2 replicas"),
        "{why}"
    );
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn replicas_a_write_does_not_wait_for_are_warned_of() {
    let servers = Replicated::start();
    let unwaited = servers.master.open("a").await.expect("open");
    let warnings = unwaited.durability_warnings().await;
    assert!(
        warnings.iter().any(|w| w.contains("store.replicas is 0")),
        "{warnings:?}"
    );
    drop(unwaited);
    let waiting = servers.master.open_with("b", 1).await.expect("open");
    assert_eq!(waiting.durability_warnings().await, Vec::<String>::new());

    let alone = RedisServer::start();
    let store = alone.open("c").await.expect("open");
    assert_eq!(store.durability_warnings().await, Vec::<String>::new());
}
