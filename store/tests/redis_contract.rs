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

/// What shards add: how nodes agree on their count, a deletion cut off
/// between its two halves, and one feed read by several nodes at once.
mod shards {
    use std::collections::BTreeSet;

    use domain::{CampaignDecl, ChannelKind, Participant};
    use store::{Catalog, Intake, Ledger, StoreError};

    use super::*;

    fn decl() -> CampaignDecl {
        CampaignDecl::new(ChannelKind::Sms, "x")
    }

    fn customers(from: usize, n: usize) -> Vec<Participant> {
        (from..from + n)
            .map(|i| Participant {
                customer: format!("c{i}"),
                address: format!("+49151{i:08}"),
                segment: None,
                fields: Default::default(),
            })
            .collect()
    }

    #[tokio::test(flavor = "multi_thread", worker_threads = 2)]
    async fn every_node_of_a_store_has_the_count_of_shards_it_was_made_with() {
        let server = RedisServer::start();
        let first = server.open_sharded("a", 4).await.expect("made with 4");
        let refused = server.open_sharded("b", 2).await.err();
        let why = refused.map(|e| e.to_string()).unwrap_or_default();
        assert!(
            why.starts_with("store.shards: ") && why.contains("made with 4 shards"),
            "{why}"
        );
        drop(first);
        assert!(server.open_sharded("b", 4).await.is_ok());

        // A store made before there were shards has one.
        let old = RedisServer::start();
        old.cli(&["SET", "sluice:{g}:next_campaign", "3"]);
        let why = old.open_sharded("a", 4).await.err().map(|e| e.to_string());
        assert!(
            why.as_deref()
                .is_some_and(|w| w.contains("made with 1 shards")),
            "{why:?}"
        );
    }

    /// A node that dies between removing a campaign (in its shard) and
    /// forgetting its name (in the global slot) leaves the name leading
    /// to a number marked deleted: the campaign is gone all the same, and
    /// declaring the name again makes a new campaign under a new number.
    #[tokio::test(flavor = "multi_thread", worker_threads = 2)]
    async fn a_deletion_cut_off_before_its_name_went_leaves_the_campaign_gone() {
        let server = RedisServer::start();
        let store = server.open_sharded("a", 3).await.expect("open");
        let old = store.put_campaign("c1", decl()).await.expect("declare");
        store
            .set_state("c1", domain::CampaignState::Cancelled)
            .await
            .expect("cancel");
        let seq = old.seq.to_string();
        let record = server.cli(&["KEYS", &format!("sluice:*:c:{seq}")]);
        let record = record.trim();
        assert!(record.starts_with("sluice:{s"), "in its shard: {record}");
        store.delete_campaign("c1").await.expect("delete");
        // As the cut-off deletion left it: the mark, and the name.
        server.cli(&["HSET", record, "deleted", "1"]);
        server.cli(&["HSET", "sluice:{g}:campaigns", "c1", &seq]);

        assert!(store.campaign("c1").await.expect("read").is_none());
        assert!(store.campaigns().await.expect("list").is_empty());
        assert!(matches!(
            store.add_participants("c1", customers(0, 1), 1).await,
            Err(StoreError::UnknownCampaign(_))
        ));
        // Deleting it again (the CRM's retry) finishes the deletion: its
        // name and mark go, and it counts for the leftovers' sweep.
        let counted = || server.cli(&["HGET", "sluice:{g}:meta", "campaigns_deleted"]);
        assert_eq!(counted().trim(), "1");
        assert!(matches!(
            store.delete_campaign("c1").await,
            Err(StoreError::UnknownCampaign(_))
        ));
        assert_eq!(counted().trim(), "2");
        assert_eq!(
            server
                .cli(&["HEXISTS", "sluice:{g}:campaigns", "c1"])
                .trim(),
            "0"
        );
        assert_eq!(server.cli(&["EXISTS", record]).trim(), "0");
        // And cut off again, for the declaration below.
        server.cli(&["HSET", record, "deleted", "1"]);
        server.cli(&["HSET", "sluice:{g}:campaigns", "c1", &seq]);
        let again = store
            .put_campaign("c1", decl())
            .await
            .expect("declare again");
        assert_ne!(again.seq, old.seq, "a number is never used twice");
        assert_eq!(again.state, domain::CampaignState::Declared);
        assert_eq!(store.campaigns().await.expect("list").len(), 1);
    }

    /// Writers in every shard and two nodes reading the feed at once (each
    /// read moves facts): each node reads every fact once, in the same
    /// order, under cursors 1, 2, 3, ...
    #[tokio::test(flavor = "multi_thread", worker_threads = 2)]
    async fn nodes_reading_the_feed_while_shards_write_see_each_fact_once_in_one_order() {
        const CAMPAIGNS: usize = 6;
        const BATCHES: usize = 20;
        const BATCH: usize = 10;
        let server = RedisServer::start();
        let a = Arc::new(server.open_sharded("a", 3).await.expect("open a"));
        let b = Arc::new(server.open_sharded("b", 3).await.expect("open b"));
        for c in 0..CAMPAIGNS {
            a.put_campaign(&format!("c{c}"), decl())
                .await
                .expect("declare");
        }
        let total = CAMPAIGNS * BATCHES * BATCH;
        let writers: Vec<_> = (0..CAMPAIGNS)
            .map(|c| {
                let node = if c % 2 == 0 { a.clone() } else { b.clone() };
                tokio::spawn(async move {
                    for batch in 0..BATCHES {
                        let from = (c * BATCHES + batch) * BATCH;
                        let fresh = node
                            .add_participants(&format!("c{c}"), customers(from, BATCH), 1)
                            .await
                            .expect("add");
                        assert!(fresh.iter().all(|f| *f));
                    }
                })
            })
            .collect();
        let readers: Vec<_> = [a.clone(), b.clone()]
            .into_iter()
            .map(|node| {
                tokio::spawn(async move {
                    let mut read = Vec::new();
                    while read.len() < total {
                        let after = read.last().map_or(0, |(cursor, _)| *cursor);
                        for fact in node.events(after, 37).await.expect("read") {
                            read.push((fact.cursor, fact.customer));
                        }
                        tokio::task::yield_now().await;
                    }
                    read
                })
            })
            .collect();
        for writer in writers {
            writer.await.expect("writer");
        }
        let mut seen = Vec::new();
        for reader in readers {
            seen.push(reader.await.expect("reader"));
        }
        let cursors: Vec<u64> = seen[0].iter().map(|(c, _)| *c).collect();
        assert_eq!(cursors, (1..=total as u64).collect::<Vec<_>>());
        assert_eq!(seen[0], seen[1], "one feed, one order");
        let customers: BTreeSet<&String> = seen[0].iter().map(|(_, c)| c).collect();
        assert_eq!(customers.len(), total, "each fact once");
        let left: u64 = server
            .cli(&["EVAL", "local n = 0 for _, k in ipairs(redis.call('KEYS', 'sluice:{s*}:feed')) do n = n + redis.call('XLEN', k) end return n", "0"])
            .trim()
            .parse()
            .expect("a count");
        assert_eq!(left, 0, "the shards' feeds are trimmed once moved");
    }
}
