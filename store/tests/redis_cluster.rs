//! The Redis engine on a Redis Cluster of three masters on loopback: the
//! whole store contract, and every key in the one slot its hash tag names
//! (so each script runs on one master).

mod support;

use std::sync::Arc;

use async_trait::async_trait;
use store::{Catalog, Intake, Store, contract::Harness};
use support::RedisCluster;

struct ClusterHarness(RedisCluster);

#[async_trait]
impl Harness for ClusterHarness {
    async fn open(&self) -> Arc<dyn Store> {
        Arc::new(
            self.0
                .open("contract")
                .await
                .expect("connect to the cluster"),
        )
    }
}

store::contract_suite!(ClusterHarness(RedisCluster::start()));

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn every_key_lives_in_the_slot_of_its_hash_tag() {
    let cluster = RedisCluster::start();
    let store = cluster.open("a").await.expect("connect");
    store
        .put_campaign(
            "c1",
            domain::CampaignDecl::new(domain::ChannelKind::Sms, "x"),
        )
        .await
        .expect("declare");
    let p = domain::Participant {
        customer: "c".into(),
        address: "+4915100000001".into(),
        segment: None,
        fields: Default::default(),
    };
    store.add_participants("c1", vec![p], 1).await.expect("add");
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
