//! What the nodes on one Redis share, beyond the store's contract: their
//! names, the channels' bandwidth and load caps, the lead of a task, the
//! leases of a node that stops answering, and retention.

mod support;

use std::time::Instant;

use domain::{
    CampaignDecl, CampaignState, ChannelKind, Fallback, MessageNo, Outcome, Participant,
    SuppressReason, Update, now_ms,
};
use store::{
    Catalog, Intake, Ledger, LimitState, Paced, Queue, Shared, Store, StoreError, SuppressionQuery,
    Suppressions, redis::Forgotten,
};
use support::RedisServer;

/// Customers `c0..c{n}` at `u{i}@example.org`.
fn people(n: usize) -> Vec<Participant> {
    (0..n)
        .map(|i| Participant {
            customer: format!("c{i}"),
            address: format!("u{i}@example.org"),
            segment: None,
            fields: Default::default(),
        })
        .collect()
}

/// Node `a` on `redis`, with e-mail campaign `c1` declared (its number).
async fn node_with_c1(redis: &RedisServer) -> (store::redis::Redis, u32) {
    let a = redis.open("a").await.expect("a");
    let decl = CampaignDecl::new(ChannelKind::Email, "spring");
    let seq = a.put_campaign("c1", decl).await.expect("declare").seq;
    (a, seq)
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_second_node_of_the_same_name_is_refused_until_the_first_closes() {
    let redis = RedisServer::start();
    let first = redis.open("node-a").await.expect("first node");
    let Err(StoreError::Unopened(why)) = redis.open("node-a").await else {
        panic!("a second node-a was let in");
    };
    assert!(why.contains("store.node `node-a`"), "{why}");
    redis.open("node-b").await.expect("another name is fine");
    drop(first);
    redis
        .open("node-a")
        .await
        .expect("the name is free once closed");
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn nodes_together_never_take_more_than_the_rate() {
    let redis = RedisServer::start();
    let a = redis.open("a").await.expect("a");
    let b = redis.open("b").await.expect("b");
    let started = Instant::now();
    let mut granted = 0u64;
    // Both nodes ask as fast as they can for 1.5 s, 20 slots at a time.
    while started.elapsed().as_millis() < 1_500 {
        let (x, y) = tokio::join!(a.pace("sms", 1_000.0, 20), b.pace("sms", 1_000.0, 20));
        granted += u64::from(x.expect("a paces").granted + y.expect("b paces").granted);
    }
    let elapsed = started.elapsed().as_secs_f64();
    // At most the rate over the time, plus one burst of 20.
    let most = (1_000.0 * elapsed) as u64 + 20;
    assert!(granted <= most, "{granted} slots in {elapsed:.3} s");
    assert!(
        granted >= most * 9 / 10,
        "only {granted} slots in {elapsed:.3} s"
    );
    let refused = a.pace("sms", 1_000.0, 20).await.expect("paces");
    assert!(refused.granted < 20 && refused.retry_ms >= 1, "{refused:?}");
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_change_of_limits_on_one_node_shows_in_the_others_next_ask() {
    let redis = RedisServer::start();
    let a = redis.open("a").await.expect("a");
    let b = redis.open("b").await.expect("b");
    let version = |paced: store::Result<Paced>| paced.expect("paces").limits_version;
    assert_eq!(version(b.pace("sms", 1_000.0, 1).await), 0, "never changed");
    a.limits_changed("sms").await.expect("a tells");
    assert_eq!(version(b.pace("sms", 1_000.0, 1).await), 1);
    a.limits_changed("sms").await.expect("a tells again");
    assert_eq!(version(a.pace("sms", 1_000.0, 1).await), 2);
    assert_eq!(
        version(b.pace("email", 1_000.0, 1).await),
        0,
        "another channel's limits did not change"
    );
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn nodes_together_never_count_past_a_caps_max() {
    let redis = RedisServer::start();
    let a = redis.open("a").await.expect("a");
    let b = redis.open("b").await.expect("b");
    let mut counted = 0;
    // Both ask at once, 7 at a time, until the cap of 100 is spent.
    for _ in 0..10 {
        let (x, y) = tokio::join!(
            a.count_up_to("cap:sms:day", 100, 7, 60_000),
            b.count_up_to("cap:sms:day", 100, 7, 60_000)
        );
        counted += x.expect("a counts") + y.expect("b counts");
    }
    assert_eq!(counted, 100, "exactly the cap, never past it");
    assert_eq!(
        a.count_up_to("cap:sms:day", 100, 1, 60_000)
            .await
            .expect("a"),
        0
    );
    assert_eq!(
        a.count_up_to("cap:sms:other", 100, 1, 60_000)
            .await
            .expect("another cap counts apart"),
        1
    );
    assert_eq!(
        a.count_up_to("cap:sms:brief", 5, 5, 100).await.expect("a"),
        5
    );
    tokio::time::sleep(std::time::Duration::from_millis(300)).await;
    assert_eq!(
        b.count_up_to("cap:sms:brief", 5, 5, 100).await.expect("b"),
        5,
        "a counter past its keeping time starts again"
    );
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn one_node_leads_a_task_until_it_stops_asking() {
    let redis = RedisServer::start();
    let a = redis.open("a").await.expect("a");
    let b = redis.open("b").await.expect("b");
    // A lead of 3 s: each ask comes well within it on a loaded machine.
    const LEAD_MS: u64 = 3_000;
    assert!(a.lead("webhook:crm", LEAD_MS).await.expect("a asks"));
    assert!(!b.lead("webhook:crm", LEAD_MS).await.expect("b asks"));
    assert!(a.lead("webhook:crm", LEAD_MS).await.expect("a keeps it"));
    tokio::time::sleep(std::time::Duration::from_millis(LEAD_MS + 500)).await;
    assert!(
        b.lead("webhook:crm", LEAD_MS)
            .await
            .expect("b takes it over")
    );
    assert!(!a.lead("webhook:crm", LEAD_MS).await.expect("a asks again"));
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_dead_nodes_claims_go_to_another_once_their_lease_runs_out() {
    let redis = RedisServer::start();
    let a = redis.open("a").await.expect("a");
    let b = redis.open("b").await.expect("b");
    let decl = CampaignDecl::new(ChannelKind::Email, "spring");
    let seq = a.put_campaign("c1", decl).await.expect("declare").seq;
    a.add_participants("c1", people(10), 1).await.expect("add");
    a.set_state("c1", CampaignState::Running)
        .await
        .expect("run");
    let taken = a.claim(seq, 1_000, 6, 5_000).await.expect("a claims");
    assert_eq!(taken.len(), 6);
    drop(a);
    let rest = b.claim(seq, 2_000, 10, 5_000).await.expect("b claims");
    assert_eq!(rest.len(), 4, "a's leases still run");
    let after = b
        .claim(seq, 6_001, 10, 5_000)
        .await
        .expect("b claims later");
    let mut again: Vec<_> = after.iter().map(|c| c.msg).collect();
    let mut lost: Vec<_> = taken.iter().map(|c| c.msg).collect();
    again.sort_unstable_by_key(|m| m.participant);
    lost.sort_unstable_by_key(|m| m.participant);
    assert_eq!(
        again, lost,
        "exactly a's messages, once their lease ran out"
    );
}

/// A node decides on the state its claim read only while Redis still
/// holds it: a returned bounce that arrives at the node whose claim saw
/// the message pending, after another node recorded its send, bounces it.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn an_outcome_is_decided_on_the_state_redis_holds_not_on_the_claims() {
    let redis = RedisServer::start();
    let a = redis.open("a").await.expect("a");
    let b = redis.open("b").await.expect("b");
    let decl = CampaignDecl::new(ChannelKind::Email, "spring");
    let seq = a.put_campaign("c1", decl).await.expect("declare").seq;
    a.add_participants("c1", people(1), 1).await.expect("add");
    a.set_state("c1", CampaignState::Running)
        .await
        .expect("run");
    let mine = a.claim(seq, 1_000, 1, 5_000).await.expect("a claims");
    let msg = mine[0].msg;
    let sent = Update {
        msg,
        at: 2_000,
        outcome: Outcome::Submitted {
            detail: Default::default(),
            upstream: None,
        },
    };
    b.record(vec![sent]).await.expect("b records the send");
    let returned = Update {
        msg,
        at: 3_000,
        outcome: Outcome::Bounced {
            hard: true,
            retry: None,
            detail: Default::default(),
            returned: true,
        },
    };
    a.record(vec![returned])
        .await
        .expect("a records the bounce");
    let status = a
        .message(msg)
        .await
        .expect("answers")
        .expect("message")
        .status;
    assert_eq!(status, domain::Status::BouncedHard, "settled by the bounce");
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn an_ended_campaign_keeps_no_queue_in_redis() {
    let redis = RedisServer::start();
    let (a, seq) = node_with_c1(&redis).await;
    a.add_participants("c1", people(3), 1).await.expect("add");
    a.set_state("c1", CampaignState::Running)
        .await
        .expect("run");
    a.claim(seq, 1_000, 1, 5_000).await.expect("claim one");
    let queue = [
        format!("sluice:{{g}}:due:{seq}"),
        format!("sluice:{{g}}:lease:{seq}"),
    ];
    assert_eq!(redis.exists(&queue), 2, "queued and leased");
    a.set_state("c1", CampaignState::Cancelled)
        .await
        .expect("cancel");
    assert_eq!(
        redis.exists(&queue),
        0,
        "a cancelled campaign's queue is gone"
    );
    assert!(
        a.claim(seq, 10_000, 10, 5_000)
            .await
            .expect("claim")
            .is_empty()
    );
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn what_ended_before_the_retention_time_is_forgotten() {
    let redis = RedisServer::start();
    let store = redis.open("a").await.expect("open");
    let sms = CampaignDecl::new(ChannelKind::Sms, "sms");
    let mail = CampaignDecl {
        fallback: Some(Fallback::to("sms")),
        ..CampaignDecl::new(ChannelKind::Email, "mail")
    };
    let running = CampaignDecl::new(ChannelKind::Email, "running");
    for (id, decl) in [("sms", sms), ("mail", mail), ("running", running)] {
        store.put_campaign(id, decl).await.expect("declare");
        store
            .add_participants(id, people(10), 1_000)
            .await
            .expect("add");
    }
    for id in ["sms", "mail"] {
        store
            .set_state(id, CampaignState::Cancelled)
            .await
            .expect("cancel");
    }
    let cutoff = now_ms() + 1;
    // A fact after the cut-off stays, with every fact after it.
    store
        .add_participants("running", people(11).split_off(10), cutoff + 1)
        .await
        .expect("add");

    let first = store.forget_before(cutoff, &[]).await.expect("sweep");
    assert_eq!(
        first,
        Forgotten {
            campaigns: 1,
            facts: 30,
            leftovers: 0
        },
        "`mail` goes (its addresses' latest messages are `running`'s), \
         `sms` waits for its source, `running` runs"
    );
    assert!(store.campaign("mail").await.expect("answers").is_none());
    assert!(store.campaign("sms").await.expect("answers").is_some());
    let left = store.events(0, 100).await.expect("events");
    assert_eq!(left.len(), 1, "{left:?}");
    assert_eq!(left[0].cursor, 31, "cursors stay as they were");

    let second = store.forget_before(cutoff, &[]).await.expect("sweep");
    assert_eq!(second.campaigns, 1, "then the fallback campaign");
    assert_eq!(second.leftovers, 10, "and its addresses' latest messages");
    assert!(store.campaign("sms").await.expect("answers").is_none());
    assert!(store.campaign("running").await.expect("answers").is_some());
    assert_eq!(
        store.forget_before(cutoff, &[]).await.expect("sweep"),
        Forgotten::default()
    );
}

/// Facts past the retention time that a webhook has not delivered stay
/// (its receiver may be down for longer); once it has, they go.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn facts_a_webhook_has_not_delivered_outlast_the_retention_time() {
    let redis = RedisServer::start();
    let store = redis.open("a").await.expect("open");
    store
        .put_campaign("c", CampaignDecl::new(ChannelKind::Email, "c"))
        .await
        .expect("declare");
    store
        .add_participants("c", people(10), 1_000)
        .await
        .expect("add");
    let cutoff = now_ms() + 1;
    let readers = [
        "webhook:0:https://crm.example/a".to_owned(),
        "webhook:1:https://crm.example/b".to_owned(),
    ];
    store
        .put_meta(&readers[0], b"10".to_vec())
        .await
        .expect("a read all");
    // The other has read nothing yet: everything stays.
    let kept = store.forget_before(cutoff, &readers).await.expect("sweep");
    assert_eq!(kept.facts, 0);
    store
        .put_meta(&readers[1], b"4".to_vec())
        .await
        .expect("b read 4");
    let some = store.forget_before(cutoff, &readers).await.expect("sweep");
    assert!(some.facts <= 4, "{some:?}");
    let left = store.events(0, 100).await.expect("events");
    assert!(left.iter().all(|f| f.cursor > some.facts), "{left:?}");
    assert_eq!(left.last().map(|f| f.cursor), Some(10));
    assert!(
        left.iter().any(|f| f.cursor == 5),
        "the first fact b lacks stays"
    );
    store
        .put_meta(&readers[1], b"10".to_vec())
        .await
        .expect("b read all");
    let rest = store.forget_before(cutoff, &readers).await.expect("sweep");
    assert_eq!(some.facts + rest.facts, 10);
    assert!(store.events(0, 100).await.expect("events").is_empty());
}

/// Submitted with SMSC ids `ids` (several: the parts of one text).
fn submitted(msg: MessageNo, ids: &[&str]) -> Update {
    Update {
        msg,
        at: now_ms(),
        outcome: Outcome::Submitted {
            detail: Default::default(),
            upstream: Some(domain::Upstream {
                smsc: 0,
                ids: ids.iter().map(|id| id.to_string()).collect(),
            }),
        },
    }
}

fn delivered(id: &str) -> domain::ReceiptIn {
    domain::ReceiptIn {
        at: now_ms(),
        ..store::contract::receipt(0, id, Some(true))
    }
}

/// Fields of hash `key` (without its `sluice:{g}:` prefix).
async fn hash_len(con: &mut redis::aio::MultiplexedConnection, key: &str) -> u64 {
    redis::cmd("HLEN")
        .arg(format!("sluice:{{g}}:{key}"))
        .query_async(con)
        .await
        .expect("HLEN")
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_deleted_campaign_leaves_no_links_nor_latest_messages_behind() {
    let redis = RedisServer::start();
    let a = redis.open("a").await.expect("a");
    let mut con = redis_connection(&redis).await;
    let mut msgs = Vec::new();
    for (id, people) in [("old", people(3)), ("kept", people(6).split_off(3))] {
        let decl = CampaignDecl::new(ChannelKind::Sms, id);
        let seq = a.put_campaign(id, decl).await.expect("declare").seq;
        a.add_participants(id, people, 1).await.expect("add");
        a.set_state(id, CampaignState::Running).await.expect("run");
        let claimed = a.claim(seq, now_ms(), 3, 60_000).await.expect("claim");
        msgs.push(claimed.iter().map(|c| c.msg).collect::<Vec<_>>());
    }
    let (old, kept) = (&msgs[0], &msgs[1]);
    // One text of two parts, one of which was delivered: a progress key.
    a.record(vec![
        submitted(old[0], &["o0"]),
        submitted(old[1], &["o1"]),
        submitted(old[2], &["o2a", "o2b"]),
        submitted(kept[0], &["k0"]),
        submitted(kept[1], &["k1"]),
    ])
    .await
    .expect("record");
    a.receipts(vec![delivered("o2a")]).await.expect("receipts");
    a.set_state("old", CampaignState::Cancelled)
        .await
        .expect("cancel");
    a.delete_campaign("old").await.expect("delete");
    // The SMSC gives a used id to a new text: that link stays.
    a.record(vec![submitted(kept[2], &["o0"])])
        .await
        .expect("record");
    assert_eq!(hash_len(&mut con, "upstream").await, 6, "before the sweep");
    assert_eq!(hash_len(&mut con, "last:sms").await, 6, "before the sweep");
    // What a retention sweep that listed `old` just before its deletion
    // could leave: its hash with no record. The campaign is still gone.
    let _: () = redis::cmd("HSET")
        .arg(format!("sluice:{{g}}:c:{}", old[0].campaign))
        .arg("ended")
        .arg(1)
        .query_async(&mut con)
        .await
        .expect("HSET");

    let removed = a.forget_leftovers().await.expect("sweep");
    assert_eq!(removed, 3 + 3, "o1, o2b and the progress key; 3 addresses");
    assert_eq!(hash_len(&mut con, "upstream").await, 3, "k0, k1, o0");
    assert_eq!(
        hash_len(&mut con, "last:sms").await,
        3,
        "the kept addresses"
    );
    let matched = a
        .receipts(vec![delivered("k0"), delivered("k1"), delivered("o0")])
        .await
        .expect("receipts");
    assert!(
        matched.iter().all(|m| *m == domain::ReceiptMatch::Matched),
        "{matched:?}"
    );

    let before = a.requests().expect("a count of requests");
    assert_eq!(a.forget_leftovers().await.expect("sweep"), 0);
    assert_eq!(
        a.requests().expect("requests") - before,
        1,
        "with no deletion since, a sweep reads no hash"
    );
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn an_upload_is_published_and_abandoned_in_a_few_requests_whatever_its_size() {
    let redis = RedisServer::start();
    let (a, _) = node_with_c1(&redis).await;

    let kept = a.new_upload();
    a.stage("c1", kept, people(2_000)).await.expect("stage");
    let before = a.requests().expect("a count of requests");
    assert_eq!(a.publish(kept, 5).await.expect("publish"), 2_000);
    let publishing = a.requests().expect("requests") - before;
    assert!(
        publishing <= 10,
        "publishing 2,000 participants took {publishing} requests"
    );

    let dropped = a.new_upload();
    a.stage("c1", dropped, people(4_000)[2_000..].to_vec())
        .await
        .expect("stage");
    let before = a.requests().expect("requests");
    a.abandon(dropped).await.expect("abandon");
    let abandoning = a.requests().expect("requests") - before;
    assert!(
        abandoning <= 10,
        "abandoning 2,000 participants took {abandoning} requests"
    );
    assert_eq!(a.counts("c1").await.expect("counts").staged, 0);
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_write_after_redis_forgot_its_scripts_loads_them_again() {
    // As after a restart of Redis, or a failover to a replica that never
    // ran them.
    let redis = RedisServer::start();
    let (a, _) = node_with_c1(&redis).await;
    let mut con = redis_connection(&redis).await;
    let _: () = redis::cmd("SCRIPT")
        .arg("FLUSH")
        .query_async(&mut con)
        .await
        .expect("script flush");
    a.add_participants("c1", people(3), 1)
        .await
        .expect("added once the script is loaded again");
    assert_eq!(a.counts("c1").await.expect("counts").participants, 3);
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_receipt_whose_link_only_redis_knows_yet_is_matched_in_one_write() {
    // `a` claimed the message; its outcome was written (here by `b`; on
    // one node, by `a`'s own write whose answer `a` has not read yet), so
    // `a` knows the message as its claim left it. A receipt that soon
    // finds the link in Redis: the message's state is read there too, not
    // taken from what `a` knew, which made the write conflict and `a`
    // forget everything it knew.
    let redis = RedisServer::start();
    let (a, seq) = node_with_c1(&redis).await;
    let b = redis.open("b").await.expect("b");
    a.add_participants("c1", people(1), 1).await.expect("add");
    a.set_state("c1", CampaignState::Running)
        .await
        .expect("run");
    let claimed = a.claim(seq, now_ms(), 1, 60_000).await.expect("claim");
    let msg = claimed[0].msg;
    b.record(vec![submitted(msg, &["id-1"])])
        .await
        .expect("record");

    let before = a.requests().expect("a count of requests");
    let matched = a.receipts(vec![delivered("id-1")]).await.expect("receipts");
    assert_eq!(matched, vec![domain::ReceiptMatch::Matched]);
    let requests = a.requests().expect("requests") - before;
    assert_eq!(
        requests, 3,
        "the link, the message and one write; a conflict takes more"
    );
    let counts = a.counts("c1").await.expect("counts");
    assert_eq!(counts.by_status.get("delivered"), Some(&1), "{counts:?}");
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn participants_of_many_messages_are_read_in_a_few_requests() {
    let redis = RedisServer::start();
    let (a, seq) = node_with_c1(&redis).await;
    a.add_participants("c1", people(2_000), 1)
        .await
        .expect("add");
    let msgs: Vec<MessageNo> = (0..2_000)
        .map(|participant| MessageNo {
            campaign: seq,
            participant,
        })
        .collect();
    let before = a.requests().expect("a count of requests");
    let read = a.participants(&msgs).await.expect("participants");
    let reading = a.requests().expect("requests") - before;
    assert_eq!(read.iter().flatten().count(), 2_000);
    assert!(reading <= 2, "2,000 participants took {reading} requests");
}

/// The most arguments one write script carried in what Redis logged since
/// the log was emptied (every command is logged: `slowlog-log-slower-than
/// 0`). A logged command keeps its first 31 arguments and then says how
/// many more it had.
async fn largest_write(con: &mut redis::aio::MultiplexedConnection) -> usize {
    type Entry = (u64, u64, u64, Vec<Vec<u8>>, String, String);
    let log: Vec<Entry> = redis::cmd("SLOWLOG")
        .arg("GET")
        .arg(-1)
        .query_async(con)
        .await
        .expect("slowlog");
    log.into_iter()
        .map(|(_, _, _, args, _, _)| args)
        .filter(|args| {
            args.first()
                .is_some_and(|c| c.eq_ignore_ascii_case(b"evalsha"))
        })
        .map(|args| {
            let more = String::from_utf8_lossy(args.last().expect("a command"))
                .strip_prefix("... (")
                .and_then(|rest| rest.split(' ').next()?.parse::<usize>().ok());
            match more {
                Some(more) => args.len() - 1 + more,
                None => args.len(),
            }
        })
        .max()
        .unwrap_or(0)
}

/// Empties Redis's log of commands.
async fn reset_log(con: &mut redis::aio::MultiplexedConnection) {
    let _: () = redis::cmd("SLOWLOG")
        .arg("RESET")
        .query_async(con)
        .await
        .expect("reset");
}

/// Stages an upload of `n` participants of campaign `c1` (taken from
/// `people` after `offset`) in one call, then publishes or abandons it;
/// the most arguments one write script carried while it was staged, and
/// while it was published or abandoned.
async fn largest_writes(
    a: &store::redis::Redis,
    con: &mut redis::aio::MultiplexedConnection,
    offset: usize,
    n: usize,
    publish: bool,
) -> (usize, usize) {
    let upload = a.new_upload();
    reset_log(con).await;
    a.stage("c1", upload, people(offset + n)[offset..].to_vec())
        .await
        .expect("stage");
    let staging = largest_write(con).await;
    reset_log(con).await;
    if publish {
        assert_eq!(a.publish(upload, 5).await.expect("publish"), n as u64);
    } else {
        a.abandon(upload).await.expect("abandon");
    }
    (staging, largest_write(con).await)
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn no_write_of_a_large_upload_holds_redis_longer_than_that_of_a_smaller_one() {
    // One script for a whole upload held Redis about 7 µs per participant:
    // 20 s for 1,000,000, every node answered `BUSY` meanwhile.
    let redis = RedisServer::start();
    let (a, _) = node_with_c1(&redis).await;
    let mut con = redis_connection(&redis).await;
    for (name, value) in [
        ("slowlog-log-slower-than", "0"),
        ("slowlog-max-len", "100000"),
    ] {
        let _: () = redis::cmd("CONFIG")
            .arg("SET")
            .arg(name)
            .arg(value)
            .query_async(&mut con)
            .await
            .expect("config");
    }

    let (staged, published) = largest_writes(&a, &mut con, 0, 5_000, true).await;
    assert!(
        staged > 1_000 && published > 1_000,
        "the log holds the writes: {staged}, {published} arguments"
    );
    let (staged_thrice, published_thrice) = largest_writes(&a, &mut con, 5_000, 15_000, true).await;
    assert!(
        staged_thrice <= staged + staged / 10,
        "staging 15,000 participants wrote {staged_thrice} arguments in one script, 5,000 wrote {staged}"
    );
    assert!(
        published_thrice <= published + published / 10,
        "publishing 15,000 participants wrote {published_thrice} arguments in one script, 5,000 wrote {published}"
    );
    let (_, abandoned) = largest_writes(&a, &mut con, 20_000, 15_000, false).await;
    assert!(
        abandoned <= published,
        "abandoning 15,000 participants wrote {abandoned} arguments in one script, publishing 5,000 wrote {published}"
    );
    let counts = a.counts("c1").await.expect("counts");
    assert_eq!((counts.participants, counts.staged), (20_000, 0));
}

/// Counts of campaign `c1` once two reads in a row agree (a step of a
/// stopped call may still land just after it stopped).
async fn settled_counts(node: &store::redis::Redis) -> store::Counts {
    let mut last = node.counts("c1").await.expect("counts");
    loop {
        tokio::time::sleep(std::time::Duration::from_millis(50)).await;
        let now = node.counts("c1").await.expect("counts");
        if (now.participants, now.staged) == (last.participants, last.staged) {
            return now;
        }
        last = now;
    }
}

/// Nodes `a` and `b` on `redis`, and an upload of `n` participants of
/// campaign `c1` that `a` staged and then began to publish, its call
/// stopped between two steps (seen from `b`).
async fn a_publish_stopped_midway(
    redis: &RedisServer,
    n: usize,
) -> (
    std::sync::Arc<store::redis::Redis>,
    store::redis::Redis,
    store::UploadId,
) {
    let (a, _) = node_with_c1(redis).await;
    let b = redis.open("b").await.expect("b");
    let a = std::sync::Arc::new(a);
    let upload = a.new_upload();
    a.stage("c1", upload, people(n)).await.expect("stage");
    let publishing = tokio::spawn({
        let a = a.clone();
        async move { a.publish(upload, 5).await }
    });
    loop {
        if b.counts("c1").await.expect("counts").participants > 0 {
            publishing.abort();
            break;
        }
    }
    assert!(publishing.await.is_err(), "the publish was stopped");
    (a, b, upload)
}

/// Campaign `c1` has its `n` participants live, none staged, and each
/// accepted once.
async fn each_live_once(node: &store::redis::Redis, n: usize) {
    let counts = node.counts("c1").await.expect("counts");
    assert_eq!((counts.participants, counts.staged), (n as u64, 0));
    assert_eq!(accepted(node).await, n, "each participant accepted once");
}

/// Every accepted fact in the feed.
async fn accepted(node: &store::redis::Redis) -> usize {
    node.events(0, 1_000_000)
        .await
        .expect("events")
        .iter()
        .filter(|f| f.kind == domain::FactKind::Accepted)
        .count()
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_publish_whose_node_died_midway_is_completed_whole_by_the_others() {
    let n = 30_000;
    let redis = RedisServer::start();
    // `a` dies while it publishes: its call stops between two steps.
    let (a, b, upload) = a_publish_stopped_midway(&redis, n).await;
    drop(a);
    let seq = b
        .set_state("c1", CampaignState::Running)
        .await
        .expect("run")
        .seq;
    let counts = settled_counts(&b).await;
    let live = counts.participants;
    assert!(
        live < n as u64,
        "the publish was stopped midway ({live} live)"
    );
    assert_eq!(
        live + counts.staged,
        n as u64,
        "the rest stays staged though its node died"
    );

    // Begun, it ends whole: not dropped, its customers not free, its
    // campaign not finished when everything live has been sent.
    b.abandon(upload).await.expect("abandon");
    let other = b.new_upload();
    let fresh = b
        .stage("c1", other, people(n)[n - 1_000..].to_vec())
        .await
        .expect("stage");
    assert!(fresh.iter().all(|&f| !f), "its customers are its own");
    b.abandon(other).await.expect("abandon");
    let sent: Vec<Update> = b
        .claim(seq, now_ms(), n, 60_000)
        .await
        .expect("claim")
        .into_iter()
        .map(|claim| Update {
            msg: claim.msg,
            at: now_ms(),
            outcome: Outcome::Submitted {
                detail: Default::default(),
                upstream: None,
            },
        })
        .collect();
    assert_eq!(sent.len() as u64, live);
    b.record(sent).await.expect("record");
    b.set_state("c1", CampaignState::Finished)
        .await
        .expect("finish");
    assert_eq!(
        b.campaign("c1").await.expect("campaign").map(|c| c.state),
        Some(CampaignState::Running),
        "a campaign with participants still to publish does not finish"
    );

    // Two nodes sweep at once: one carries it on, the other leaves it.
    let c = redis.open("c").await.expect("c");
    let (by_b, by_c) = tokio::join!(b.complete_publishes(), c.complete_publishes());
    assert_eq!(by_b.expect("sweep") + by_c.expect("sweep"), 1);
    assert_eq!(b.complete_publishes().await.expect("sweep"), 0);
    each_live_once(&b, n).await;
    let due = b.claim(seq, now_ms(), n + 1, 60_000).await.expect("claim");
    assert_eq!(due.len() as u64, n as u64 - live, "the rest due, once each");
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn an_upload_of_a_node_taken_for_dead_counts_again_once_its_heartbeat_is_back() {
    let n = 100;
    let redis = RedisServer::start();
    let (a, b, mut con, a_alive) = a_and_b(&redis).await;
    let upload = a.new_upload();
    a.stage("c1", upload, people(n)).await.expect("stage");
    assert_eq!(b.counts("c1").await.expect("counts").staged, n as u64);

    // Its heartbeat lapses (Redis paused for longer than its expiry, say):
    // what it stages is not counted while it seems dead.
    lapse(&mut con, &a_alive).await;
    assert_eq!(b.counts("c1").await.expect("counts").staged, 0);
    // Its next heartbeat (every 2 s) says it lives.
    while instance_keys(&mut con).await.len() < 2 {
        tokio::time::sleep(std::time::Duration::from_millis(100)).await;
    }
    assert_eq!(
        b.counts("c1").await.expect("counts").staged,
        n as u64,
        "its upload counts again"
    );
    assert_eq!(a.publish(upload, 5).await.expect("publish"), n as u64);
}

/// An upload of a node whose heartbeat lapsed keeps its copy of a customer
/// that another node's upload then stages too: if that other upload is
/// abandoned, the first still adds the customer once its node is back.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_customer_staged_by_a_node_taken_for_dead_is_kept_beside_another_nodes_twin() {
    let n = 10;
    let redis = RedisServer::start();
    let (a, b, mut con, a_alive) = a_and_b(&redis).await;
    let first = a.new_upload();
    a.stage("c1", first, people(n)).await.expect("stage");
    lapse(&mut con, &a_alive).await;
    let retry = b.new_upload();
    let fresh = b.stage("c1", retry, people(n)).await.expect("stage");
    assert!(
        fresh.iter().all(|&f| f),
        "the retry stages twins: {fresh:?}"
    );
    b.abandon(retry).await.expect("abandon");
    assert_eq!(
        a.publish(first, 5).await.expect("publish"),
        n as u64,
        "the first upload's copies were dropped while its node seemed dead"
    );
    each_live_once(&b, n).await;
}

/// Nodes `a` (with campaign `c1` declared) and `b` on `redis`, a
/// connection of the test's own, and `a`'s key of being alive.
async fn a_and_b(
    redis: &RedisServer,
) -> (
    store::redis::Redis,
    store::redis::Redis,
    redis::aio::MultiplexedConnection,
    String,
) {
    let (a, _) = node_with_c1(redis).await;
    let mut con = redis_connection(redis).await;
    let mut alive = instance_keys(&mut con).await;
    assert_eq!(alive.len(), 1, "only a is open: {alive:?}");
    let b = redis.open("b").await.expect("b");
    (a, b, con, alive.remove(0))
}

/// The heartbeat whose key of being alive is `alive` lapses (as if Redis
/// had been paused past its expiry).
async fn lapse(con: &mut redis::aio::MultiplexedConnection, alive: &str) {
    let _: () = redis::cmd("DEL")
        .arg(alive)
        .query_async(con)
        .await
        .expect("the heartbeat lapses");
}

/// A connection of the test's own to `redis`.
async fn redis_connection(redis: &RedisServer) -> redis::aio::MultiplexedConnection {
    redis::Client::open(redis.url())
        .expect("client")
        .get_multiplexed_async_connection()
        .await
        .expect("connection")
}

/// The keys saying which stores are alive.
async fn instance_keys(con: &mut redis::aio::MultiplexedConnection) -> Vec<String> {
    redis::cmd("KEYS")
        .arg("sluice:*:instance:*")
        .query_async(con)
        .await
        .expect("keys")
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_publish_another_node_carries_on_meanwhile_answers_every_participant_made_live() {
    // A node whose heartbeat lapsed (Redis paused for longer than its
    // expiry, say) is taken for dead: another node's sweep carries on its
    // publish while its own call goes on.
    let n = 30_000;
    let redis = RedisServer::start();
    let (a, b, mut con, a_alive) = a_and_b(&redis).await;
    let a = std::sync::Arc::new(a);
    let upload = a.new_upload();
    a.stage("c1", upload, people(n)).await.expect("stage");
    let publishing = tokio::spawn({
        let a = a.clone();
        async move { a.publish(upload, 5).await }
    });
    while b.counts("c1").await.expect("counts").participants == 0 {}
    lapse(&mut con, &a_alive).await;
    assert_eq!(
        b.complete_publishes().await.expect("sweep"),
        1,
        "b took a for dead and carried its publish on"
    );
    let answered = publishing.await.expect("joined").expect("publish");
    each_live_once(&b, n).await;
    assert_eq!(
        answered, n as u64,
        "the call answers every participant of its upload made live, by whichever node"
    );
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_publish_whose_call_was_dropped_is_completed_by_its_own_node() {
    let n = 20_000;
    let redis = RedisServer::start();
    // Its request cut off mid-publish: the node lives on.
    let (a, b, upload) = a_publish_stopped_midway(&redis, n).await;
    let counts = settled_counts(&b).await;
    assert!(counts.staged > 0, "stopped midway");
    assert_eq!(
        b.complete_publishes().await.expect("sweep"),
        0,
        "another node leaves a live node's upload"
    );
    assert_eq!(a.complete_publishes().await.expect("sweep"), 1);
    each_live_once(&a, n).await;
    assert_eq!(
        a.publish(upload, 5).await.expect("publish"),
        n as u64,
        "a publish that finds its upload ended answers what all its steps made live"
    );
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_publish_that_meets_its_campaign_cancelled_drops_the_rest_and_says_so() {
    let n = 20_000;
    let redis = RedisServer::start();
    let (a, b, upload) = a_publish_stopped_midway(&redis, n).await;
    let live = settled_counts(&b).await.participants;
    b.set_state("c1", CampaignState::Cancelled)
        .await
        .expect("cancel");
    assert!(matches!(
        a.publish(upload, 5).await,
        Err(StoreError::Closed {
            state: "cancelled",
            ..
        })
    ));
    let counts = b.counts("c1").await.expect("counts");
    assert_eq!((counts.participants, counts.staged), (live, 0));
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_publish_completed_after_its_campaign_was_deleted_leaves_none_of_its_keys() {
    let n = 20_000;
    let redis = RedisServer::start();
    let (a, b, _) = a_publish_stopped_midway(&redis, n).await;
    b.set_state("c1", CampaignState::Cancelled)
        .await
        .expect("cancel");
    b.delete_campaign("c1").await.expect("delete");
    assert_eq!(a.complete_publishes().await.expect("sweep"), 1);
    let mut con = redis_connection(&redis).await;
    // Its counts, its uploads, the upload's numbers (its count is kept a
    // while: `upl:`).
    for pattern in ["sluice:*:n:*", "sluice:*:uploads:*", "sluice:*:upn:*"] {
        let left: Vec<String> = redis::cmd("KEYS")
            .arg(pattern)
            .query_async(&mut con)
            .await
            .expect("keys");
        assert!(left.is_empty(), "left behind: {left:?}");
    }
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn an_abandon_frees_its_customers_with_its_first_step() {
    let n = 5_000;
    let redis = RedisServer::start();
    let (a, _) = node_with_c1(&redis).await;
    let upload = a.new_upload();
    a.stage("c1", upload, people(n)).await.expect("stage");
    // Its first step alone, as a call cut off after it leaves it.
    let a = std::sync::Arc::new(a);
    let abandoning = tokio::spawn({
        let a = a.clone();
        async move { a.abandon(upload).await }
    });
    loop {
        if a.counts("c1").await.expect("counts").staged < n as u64 {
            abandoning.abort();
            break;
        }
    }
    let _ = abandoning.await;
    let b = redis.open("b").await.expect("b");
    let again = b.new_upload();
    let fresh = b.stage("c1", again, people(n)).await.expect("stage");
    assert!(fresh.iter().all(|&f| f), "every customer is free again");
    assert_eq!(b.publish(again, 6).await.expect("publish"), n as u64);
    assert_eq!(
        a.publish(upload, 7).await.expect("publish"),
        0,
        "nothing of an abandoned upload is published"
    );
    let counts = b.counts("c1").await.expect("counts");
    assert_eq!((counts.participants, counts.staged), (n as u64, 0));
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_deleted_campaigns_large_keys_are_freed_in_the_background() {
    // `DEL` of a hash of 1,000,000 fields held Redis 385 ms: a campaign's
    // participants, states and customers are three such.
    let redis = RedisServer::start();
    let (a, _) = node_with_c1(&redis).await;
    a.add_participants("c1", people(1_000), 1)
        .await
        .expect("add");
    a.set_state("c1", CampaignState::Cancelled)
        .await
        .expect("cancel");
    a.delete_campaign("c1").await.expect("delete");
    // Its queue (at the cancel), participants, states and customers. Redis
    // counts an object once its background thread has freed it, which
    // may come after the answer to `UNLINK`.
    let deadline = Instant::now() + std::time::Duration::from_secs(10);
    while redis.lazyfreed() < 4 && Instant::now() < deadline {
        tokio::time::sleep(std::time::Duration::from_millis(10)).await;
    }
    assert!(
        redis.lazyfreed() >= 4,
        "freed in the background: {}",
        redis.lazyfreed()
    );
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn audiences_blacklist_pages_and_imports_go_a_slice_at_a_time() {
    // One `HGETALL` of a hash of 1,000,000 fields held Redis 240 ms.
    let n = 25_000;
    let redis = RedisServer::start();
    let (a, _) = node_with_c1(&redis).await;
    a.add_participants("c1", people(n), 1).await.expect("add");
    let entries: Vec<String> = (0..n).map(|i| format!("u{i}@example.org")).collect();
    a.suppress_many(ChannelKind::Email, entries, SuppressReason::Blacklisted)
        .await
        .expect("suppress");

    assert_eq!(redis.calls("EXEC"), 0, "no transaction holds Redis");
    let (scans, reads) = (redis.calls("HSCAN"), redis.calls("HMGET"));
    let audience = a.audience("c1", "pending").await.expect("audience");
    assert_eq!(audience.len(), n);
    assert_eq!(
        redis.calls("HMGET") - reads,
        2 * 3,
        "the states and records of 25,000 participants, 10,000 at a time (no flags for a status)"
    );
    let query = SuppressionQuery {
        contains: Some("u2499".into()),
        reason: None,
        after: None,
        limit: 100,
    };
    let page = a
        .suppressions(ChannelKind::Email, &query)
        .await
        .expect("page");
    assert_eq!(
        page.iter().map(|(e, _)| e.as_str()).collect::<Vec<_>>(),
        (0..10)
            .map(|d| format!("u2499{d}@example.org"))
            .chain(["u2499@example.org".to_owned()])
            .collect::<Vec<_>>(),
        "matching entries in order ('0' sorts before '@')"
    );
    assert_eq!(redis.calls("HGETALL"), 0, "no hash read whole");
    assert!(
        redis.calls("HSCAN") - scans >= 3,
        "a blacklist of 25,000 entries, at most 10,000 at a time: {} scans",
        redis.calls("HSCAN") - scans
    );
}
