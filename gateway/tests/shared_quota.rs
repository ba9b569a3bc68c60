//! Per-segment quotas on a store several nodes share (a real
//! `redis-server`): a send a node counted whose quota write lost to
//! another node's did not happen, and never counts against the customer
//! nor against a shared load cap.

#[path = "../../store/tests/support/mod.rs"]
mod support;

use std::sync::Arc;

use domain::{CampaignDecl, CampaignRecord, CampaignState, ChannelKind, Participant, now_ms};
use gateway::policy::{Policy, QuotaWrite, Taken, Verdict};
use store::Store;
use support::RedisServer;

/// The quota write of a `Go`, with what it counted.
fn quota_of(verdict: Verdict) -> (QuotaWrite, Taken) {
    match verdict {
        Verdict::Go {
            quota: Some(q),
            taken,
        } => (q, taken),
        other => panic!("not sent with a quota write: {other:?}"),
    }
}

/// A node's verdict on `p` once the shared bandwidth has a slot for it.
async fn admit(policy: &Policy, campaign: &CampaignRecord, p: &Participant) -> Verdict {
    loop {
        match policy.admit(campaign, p, now_ms()).await.expect("admits") {
            Verdict::Defer {
                reason: "rate_limited",
                until,
            } => {
                let wait = until.saturating_sub(now_ms()).max(1);
                tokio::time::sleep(std::time::Duration::from_millis(wait)).await;
            }
            verdict => return verdict,
        }
    }
}

/// Two nodes on one Redis, SMS limited by `limits`, a running campaign.
struct TwoNodes {
    _redis: RedisServer,
    a: Policy,
    b: Policy,
    campaign: CampaignRecord,
}

async fn two_nodes(limits: serde_json::Value) -> TwoNodes {
    let redis = RedisServer::start();
    let on_a: Arc<dyn Store> = Arc::new(redis.open("a").await.expect("a"));
    let on_b: Arc<dyn Store> = Arc::new(redis.open("b").await.expect("b"));
    let now = now_ms();
    let a = Policy::load(on_a.clone(), [ChannelKind::Sms], now)
        .await
        .expect("a loads");
    let limits = serde_json::from_value(limits).expect("limits");
    a.set_limits(ChannelKind::Sms, limits, now)
        .await
        .expect("limits");
    // Loaded after: b reads the limits a stored.
    let b = Policy::load(on_b, [ChannelKind::Sms], now)
        .await
        .expect("b loads");
    on_a.put_campaign("c", CampaignDecl::new(ChannelKind::Sms, "c"))
        .await
        .expect("declare");
    let campaign = on_a
        .set_state("c", CampaignState::Running)
        .await
        .expect("run");
    TwoNodes {
        _redis: redis,
        a,
        b,
        campaign,
    }
}

/// Customer `c{n}` of segment `promo`.
fn customer(n: u32) -> Participant {
    Participant {
        customer: format!("c{n}"),
        address: format!("+49151000000{n:02}"),
        segment: Some("promo".into()),
        fields: Default::default(),
    }
}

/// Makes a node's quota write durable as the dispatcher does: `false`
/// when the message must not go.
async fn durable(node: &Policy, p: &Participant, (q, taken): (QuotaWrite, Taken)) -> bool {
    node.make_quota_durable(p, &q, &taken)
        .await
        .expect("store answers")
}

/// Both nodes decide a message of `p` at once; b's quota write lands,
/// a's loses (its message does not go).
async fn a_loses_the_race(nodes: &TwoNodes, p: &Participant) {
    let mine = quota_of(admit(&nodes.a, &nodes.campaign, p).await);
    let theirs = quota_of(admit(&nodes.b, &nodes.campaign, p).await);
    assert!(durable(&nodes.b, p, theirs).await, "b's write lands");
    assert!(!durable(&nodes.a, p, mine).await, "a's loses: not sent");
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_send_whose_quota_write_lost_does_not_count() {
    let nodes = two_nodes(serde_json::json!(
        {"rate_per_sec": 1000, "tz": "UTC", "quotas": {"promo": {"max": 2, "per": "P7D"}}}
    ))
    .await;
    let (a, b, campaign, c1) = (&nodes.a, &nodes.b, &nodes.campaign, customer(1));

    a_loses_the_race(&nodes, &c1).await;

    // a decides its message again: one send in the week, two allowed.
    let again = quota_of(admit(a, campaign, &c1).await);
    assert!(
        durable(a, &c1, again).await,
        "the second send of the week goes"
    );
    let third = admit(b, campaign, &c1).await;
    assert!(
        matches!(third, Verdict::Suppress { .. }),
        "a third is over the quota: {third:?}"
    );
}

/// What a send whose quota write lost took of a shared load cap is given
/// back: the node sends another message in its place, and the nodes
/// together still send no more than the cap.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_send_whose_quota_write_lost_gives_its_place_in_a_cap_back() {
    let nodes = two_nodes(serde_json::json!(
        {"rate_per_sec": 1000, "tz": "UTC", "caps": [{"max": 2}],
         "quotas": {"promo": {"max": 5, "per": "P7D"}}}
    ))
    .await;
    let (a, campaign, c1) = (&nodes.a, &nodes.campaign, customer(1));

    // Each node took one of the cap's two sends for c1.
    a_loses_the_race(&nodes, &c1).await;

    // a's place in the cap is free again: c2 goes, c3 is over the cap.
    let next = admit(a, campaign, &customer(2)).await;
    assert!(
        matches!(next, Verdict::Go { .. }),
        "the cap's second send: {next:?}"
    );
    let over = admit(a, campaign, &customer(3)).await;
    assert!(
        matches!(over, Verdict::Defer { .. }),
        "a third send is over the cap: {over:?}"
    );
}
