//! The Redis engine passes the store's contract, against a real
//! `redis-server` started for each test (`support`).

mod support;

use std::sync::Arc;

use async_trait::async_trait;
use store::{Store, contract::Harness};
use support::RedisServer;

struct RedisHarness(RedisServer);

#[async_trait]
impl Harness for RedisHarness {
    async fn open(&self) -> Arc<dyn Store> {
        Arc::new(
            self.0
                .open("contract")
                .await
                .expect("connect to redis-server"),
        )
    }
}

store::contract_suite!(RedisHarness(RedisServer::start()));

/// A Redis user of its own (ACL): the user in the URL, its password from
/// `store.password_env`, as managed Redis services hand them out.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_store_logs_in_as_the_user_its_url_names() {
    use store::{
        Catalog,
        redis::{Options, Redis, Servers},
    };
    let server = RedisServer::start();
    server.cli(&["ACL", "SETUSER", "sluice", "on", ">s3cret", "~*", "+@all"]);
    server.cli(&["ACL", "SETUSER", "default", "off"]);
    let options = |password: &str| Options {
        servers: Servers::One(format!("redis://sluice@127.0.0.1:{}/0", server.port)),
        password: Some(password.into()),
        node: "acl".into(),
        replicas: 0,
        certificates: Default::default(),
        shards: 1,
    };
    let store = Redis::open(options("s3cret")).await.expect("logged in");
    let decl = domain::CampaignDecl::new(domain::ChannelKind::Sms, "x");
    store
        .put_campaign("c1", decl)
        .await
        .expect("written as sluice");
    drop(store);
    let refused = Redis::open(options("wrong")).await.err();
    let why = refused.map(|e| e.to_string()).unwrap_or_default();
    assert!(why.contains("store.url"), "{why}");
}

/// The same contract with the campaigns spread over three shards: their
/// facts move into the one feed, and receipts, suppressions and replies
/// are looked up in every shard.
mod sharded {
    use super::*;

    struct ShardedHarness(RedisServer);

    #[async_trait]
    impl Harness for ShardedHarness {
        async fn open(&self) -> Arc<dyn Store> {
            Arc::new(
                self.0
                    .open_sharded("contract", 3)
                    .await
                    .expect("connect to redis-server"),
            )
        }
    }

    store::contract_suite!(ShardedHarness(RedisServer::start()));
}
