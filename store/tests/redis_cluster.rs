//! The Redis engine on a Redis Cluster of three masters on loopback: the
//! whole store contract with the campaigns in three shards (one on each
//! master), and every key in the one slot its hash tag names (so each
//! script runs on one master).

mod support;

use std::sync::Arc;

use async_trait::async_trait;
use store::{Catalog, Intake, Ledger, Store, contract::Harness};
use support::RedisCluster;

struct ClusterHarness(RedisCluster);

#[async_trait]
impl Harness for ClusterHarness {
    async fn open(&self) -> Arc<dyn Store> {
        Arc::new(
            self.0
                .open_sharded("contract", 3)
                .await
                .expect("connect to the cluster"),
        )
    }
}

store::contract_suite!(ClusterHarness(RedisCluster::start()));

/// Declares SMS campaign `id` through `store`, with one participant.
async fn sms_campaign_of_one(store: &store::redis::Redis, id: &str) {
    store
        .put_campaign(id, domain::CampaignDecl::new(domain::ChannelKind::Sms, "x"))
        .await
        .expect("declare");
    let p = domain::Participant {
        customer: "c".into(),
        address: "+4915100000001".into(),
        segment: None,
        fields: Default::default(),
    };
    store.add_participants(id, vec![p], 1).await.expect("add");
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn every_key_lives_in_the_slot_of_its_hash_tag() {
    let cluster = RedisCluster::start();
    let store = cluster.open("a").await.expect("connect");
    sms_campaign_of_one(&store, "c1").await;
    let master = cluster.keys_master();
    let keys = std::process::Command::new("redis-cli")
        .args(["-p", &master.to_string(), "KEYS", "*"])
        .output()
        .expect("redis-cli");
    let keys = String::from_utf8_lossy(&keys.stdout);
    assert!(keys.lines().count() >= 8, "{keys}");
    assert!(
        keys.lines().all(|k| k.starts_with("sluice:{g}:")),
        "every key carries the tag: {keys}"
    );
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn campaigns_in_shards_spread_over_every_master() {
    let cluster = RedisCluster::start();
    let store = cluster.open_sharded("a", 3).await.expect("connect");
    let ids: Vec<String> = (1..=6).map(|n| format!("c{n}")).collect();
    for id in &ids {
        sms_campaign_of_one(&store, id).await;
    }
    let by_master = cluster.keys_by_master();
    assert_eq!(by_master.len(), 3, "{by_master:?}");
    for (port, keys) in &by_master {
        let shard_keys = keys.iter().filter(|k| k.starts_with("sluice:{s")).count();
        // Two campaigns' record, counts, participants, states, customers,
        // queue, and the shard's feed, its cursor, latest messages.
        assert!(shard_keys >= 12, "master {port} holds {keys:?}");
    }
    // The facts of every shard, in the one feed, each once.
    let facts = store.events(0, 100).await.expect("read the feed");
    let cursors: Vec<u64> = facts.iter().map(|f| f.cursor).collect();
    assert_eq!(cursors, (1..=6).collect::<Vec<_>>());
    let mut campaigns: Vec<&str> = facts.iter().map(|f| f.campaign.as_str()).collect();
    campaigns.sort_unstable();
    assert_eq!(campaigns, ids);
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_store_waiting_for_replicas_writes_on_after_a_replica_takes_over() {
    // Two replicas a master: one may go, and a write still reaches one.
    // (That a write is refused while no replica has it is
    // redis_replicas.rs's; here, that the node follows the failover.)
    let mut cluster = RedisCluster::start_with(2);
    let unwaited = cluster.open("unwaited").await.expect("connect");
    let warnings = unwaited.durability_warnings().await;
    assert!(
        warnings.iter().any(|w| w.contains("store.replicas is 0")),
        "every master's replicas are read: {warnings:?}"
    );
    drop(unwaited);
    let store = cluster.open_with("a", 1).await.expect("connect");
    assert_eq!(store.durability_warnings().await, Vec::<String>::new());
    let decl = || domain::CampaignDecl::new(domain::ChannelKind::Sms, "x");
    store.put_campaign("before", decl()).await.expect("declare");

    let master = cluster.keys_master();
    cluster.kill(master);
    let new_master = cluster.await_failover(std::time::Duration::from_secs(30));
    assert_ne!(new_master, master);

    let started = std::time::Instant::now();
    let after = loop {
        match store.put_campaign("after", decl()).await {
            Ok(record) => break record,
            Err(e) => {
                assert!(
                    started.elapsed() < std::time::Duration::from_secs(30),
                    "the store did not write again after the failover: {e}"
                );
                tokio::time::sleep(std::time::Duration::from_millis(200)).await;
            }
        }
    };
    let before = store.campaign("before").await.expect("read").expect("kept");
    assert_ne!(before.seq, after.seq);
    let all = store.campaigns().await.expect("read");
    assert_eq!(all.len(), 2, "{all:?}");
}
