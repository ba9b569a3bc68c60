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

    use domain::{CampaignDecl, ChannelKind, MessageNo, Participant, ReceiptMatch, Status};
    use store::{
        Catalog, Intake, Ledger, Queue, StoreError,
        contract::{receipt, submitted},
        redis::Redis,
    };

    use super::*;

    fn decl() -> CampaignDecl {
        CampaignDecl::new(ChannelKind::Sms, "x")
    }

    /// Campaigns `ids` declared through `store`, one participant each
    /// (customer `c{k}` for the `k`-th), claimed: their messages.
    async fn claimed_messages<const N: usize>(store: &Redis, ids: [&str; N]) -> Vec<MessageNo> {
        let mut msgs = Vec::with_capacity(N);
        for (k, id) in ids.into_iter().enumerate() {
            let seq = store.put_campaign(id, decl()).await.expect("declare").seq;
            store
                .add_participants(id, customers(k, 1), 1_000)
                .await
                .expect("add");
            let claims = store.claim(seq, 10_000, 1, 60_000).await.expect("claim");
            msgs.push(claims[0].msg);
        }
        msgs
    }

    /// The status of message `msg`, read through `store`.
    async fn status(store: &Redis, msg: MessageNo) -> Status {
        let message = store.message(msg).await.expect("read");
        message.expect("message").status
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
        assert_eq!(
            server.cli(&["HGET", record, "deleted"]).trim(),
            "1",
            "the mark of its deletion stays"
        );
        // As the cut-off deletion left it: the name too.
        server.cli(&["HSET", "sluice:{g}:campaigns", "c1", &seq]);

        assert!(store.campaign("c1").await.expect("read").is_none());
        assert!(store.campaigns().await.expect("list").is_empty());
        assert!(matches!(
            store.add_participants("c1", customers(0, 1), 1).await,
            Err(StoreError::UnknownCampaign(_))
        ));
        // Deleting it again (the CRM's retry) finishes the deletion: its
        // name goes, and it counts (once) for the leftovers' sweep.
        let counted = || server.cli(&["HGET", "sluice:{g}:meta", "campaigns_deleted"]);
        assert_eq!(counted().trim(), "1");
        for _ in 0..2 {
            assert!(matches!(
                store.delete_campaign("c1").await,
                Err(StoreError::UnknownCampaign(_))
            ));
        }
        assert_eq!(counted().trim(), "2");
        assert_eq!(
            server
                .cli(&["HEXISTS", "sluice:{g}:campaigns", "c1"])
                .trim(),
            "0"
        );
        // And cut off again, for the declaration below.
        server.cli(&["HSET", "sluice:{g}:campaigns", "c1", &seq]);
        let again = store
            .put_campaign("c1", decl())
            .await
            .expect("declare again");
        assert_ne!(again.seq, old.seq, "a number is never used twice");
        assert_eq!(again.state, domain::CampaignState::Declared);
        assert_eq!(store.campaigns().await.expect("list").len(), 1);
    }

    /// An SMSC that gives an id again while the older message's receipt
    /// never came: the older link stays in its campaign's shard, the
    /// newer in another. A node that wrote neither link matches the
    /// receipt to the later campaign's message, as one hash keeping the
    /// last link did.
    #[tokio::test(flavor = "multi_thread", worker_threads = 2)]
    async fn a_receipt_for_an_id_given_again_settles_the_later_campaigns_message() {
        let server = RedisServer::start();
        let a = server.open_sharded("a", 3).await.expect("open a");
        let msgs = claimed_messages(&a, ["older", "newer"]).await;
        assert_ne!(msgs[0].campaign % 3, msgs[1].campaign % 3, "two shards");
        a.record(vec![submitted(msgs[0], 0, &["7F"])])
            .await
            .expect("older");
        a.record(vec![submitted(msgs[1], 0, &["7F"])])
            .await
            .expect("newer");

        let b = server.open_sharded("b", 3).await.expect("open b");
        assert_eq!(
            b.receipts(vec![receipt(0, "7F", Some(true))])
                .await
                .expect("receipts"),
            vec![ReceiptMatch::Matched]
        );
        assert_eq!(status(&b, msgs[1]).await, Status::Delivered);
        assert_eq!(status(&b, msgs[0]).await, Status::Submitted);
    }

    /// A node routes a receipt by the id as the SMSC gave it. Another
    /// reading of the id (hex "52" of decimal 82) that this node linked
    /// to an older message, settled since by another node, does not send
    /// the receipt to that message's shard.
    #[tokio::test(flavor = "multi_thread", worker_threads = 2)]
    async fn a_receipt_goes_to_its_ids_shard_not_to_another_readings() {
        let server = RedisServer::start();
        let a = server.open_sharded("a", 3).await.expect("open a");
        let b = server.open_sharded("b", 3).await.expect("open b");
        let msgs = claimed_messages(&a, ["first", "second"]).await;
        let submitted = |msg, id| submitted(msg, 0, &[id]);
        // From an SMSC known to mix bases: every reading is looked up.
        let receipt = |id| domain::ReceiptIn {
            readings: domain::IdReadings::Any,
            ..receipt(0, id, Some(true))
        };
        // Node a links "52"; node b settles it.
        a.record(vec![submitted(msgs[0], "52")])
            .await
            .expect("first");
        assert_eq!(
            b.receipts(vec![receipt("52")]).await.expect("receipts"),
            vec![ReceiptMatch::Matched]
        );
        // Node b links "82" in the other shard; its receipt reaches a.
        b.record(vec![submitted(msgs[1], "82")])
            .await
            .expect("second");
        assert_eq!(
            a.receipts(vec![receipt("82")]).await.expect("receipts"),
            vec![ReceiptMatch::Matched],
            "matched at once"
        );
        assert_eq!(status(&a, msgs[1]).await, Status::Delivered);
    }

    /// A shard's master that lost writes (a failover before they reached a
    /// replica) counts its facts again from further back than they were
    /// moved into the feed: its later facts reach the feed all the same.
    #[tokio::test(flavor = "multi_thread", worker_threads = 2)]
    async fn facts_of_a_shard_that_lost_writes_still_reach_the_feed() {
        let server = RedisServer::start();
        let store = server.open_sharded("a", 3).await.expect("open");
        store.put_campaign("c1", decl()).await.expect("declare");
        store
            .add_participants("c1", customers(0, 3), 1)
            .await
            .expect("add");
        assert_eq!(store.events(0, 100).await.expect("read").len(), 3);
        // The shard's count and feed as the replica that took over had
        // them: before any of these facts.
        let cursor = server.cli(&["KEYS", "sluice:{s1.*}:cursor"]);
        let cursor = cursor.trim();
        assert!(!cursor.is_empty(), "campaign 1 writes in shard 1");
        server.cli(&["SET", cursor, "0"]);
        server.cli(&["DEL", &cursor.replace(":cursor", ":feed")]);

        store
            .add_participants("c1", customers(3, 2), 1)
            .await
            .expect("add");
        let later: Vec<(u64, String)> = store
            .events(3, 100)
            .await
            .expect("read")
            .into_iter()
            .map(|f| (f.cursor, f.customer))
            .collect();
        assert_eq!(later, [(4, "c3".to_owned()), (5, "c4".to_owned())]);
    }

    /// A fallback lives in its sources' shard. An e-mail campaign whose
    /// declaration was cut off after it was named (its name leads to a
    /// number in another shard, without a record) is named again in its
    /// fallback's shard; one recorded there already is refused.
    #[tokio::test(flavor = "multi_thread", worker_threads = 2)]
    async fn a_campaign_is_placed_in_its_fallbacks_shard() {
        let server = RedisServer::start();
        let store = server.open_sharded("a", 3).await.expect("open");
        let sms = store.put_campaign("sms", decl()).await.expect("sms").seq;
        let mail = || CampaignDecl {
            fallback: Some(domain::Fallback::to("sms")),
            ..CampaignDecl::new(ChannelKind::Email, "stage 1")
        };
        let first = store.put_campaign("mail", mail()).await.expect("mail");
        assert_eq!(first.seq % 3, sms % 3, "in the fallback's shard");

        // Named in another shard, never recorded.
        server.cli(&["SET", "sluice:{g}:next_campaign", "9"]);
        server.cli(&["HSET", "sluice:{g}:campaigns", "cut", "9"]);
        assert_ne!(9 % 3, sms % 3);
        let cut = store
            .put_campaign("cut", mail())
            .await
            .expect("named again");
        assert_eq!(cut.seq % 3, sms % 3);
        assert_eq!(store.campaign("cut").await.expect("read"), Some(cut));

        // Recorded in another shard: refused.
        let plain = store
            .put_campaign("plain", CampaignDecl::new(ChannelKind::Email, "x"))
            .await
            .expect("plain");
        assert_ne!(plain.seq % 3, sms % 3, "numbered on: {}", plain.seq);
        assert!(matches!(
            store.put_campaign("plain", mail()).await,
            Err(StoreError::FallbackElsewhere { .. })
        ));
    }

    /// Retention forgets the facts of shards whose feed nobody reads.
    #[tokio::test(flavor = "multi_thread", worker_threads = 2)]
    async fn retention_forgets_shards_facts_that_nobody_read() {
        let server = RedisServer::start();
        let store = server.open_sharded("a", 3).await.expect("open");
        for c in 0..3 {
            let id = format!("c{c}");
            store.put_campaign(&id, decl()).await.expect("declare");
            store
                .add_participants(&id, customers(c * 2, 2), 1)
                .await
                .expect("add");
        }
        let forgotten = store
            .forget_before(domain::now_ms() + 60_000, &[])
            .await
            .expect("sweep");
        assert_eq!(forgotten.facts, 6);
        let held = server.cli(&[
            "EVAL",
            "local n = 0 for _, k in ipairs(redis.call('KEYS', 'sluice:*:feed')) do n = n + redis.call('XLEN', k) end return n",
            "0",
        ]);
        assert_eq!(held.trim(), "0", "no feed holds them");
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
