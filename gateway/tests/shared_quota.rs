//! Per-segment quotas on a store several nodes share (a real
//! `redis-server`): a send a node counted whose quota write lost to
//! another node's did not happen, and never counts against the customer
//! nor against a shared load cap.

#[path = "../../store/tests/support/mod.rs"]
mod support;

use std::sync::Arc;

use domain::{CampaignDecl, CampaignRecord, CampaignState, ChannelKind, Participant, now_ms};
use gateway::policy::{Policy, QuotaWrite, Verdict};
use store::Store;
use support::RedisServer;

/// The quota write of a `Go`.
fn quota_of(verdict: Verdict) -> QuotaWrite {
    match verdict {
        Verdict::Go { quota: Some(q) } => q,
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

/// Makes a node's quota write durable as the dispatcher does: only over
/// the state it was decided on.
async fn write(store: &dyn Store, q: &QuotaWrite) -> bool {
    let over = q.over.clone().expect("decided on a shared store");
    store
        .put_meta_if(&q.key, over.as_deref(), q.state.clone())
        .await
        .expect("store answers")
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_send_whose_quota_write_lost_does_not_count() {
    let redis = RedisServer::start();
    let a: Arc<dyn Store> = Arc::new(redis.open("a").await.expect("a"));
    let b: Arc<dyn Store> = Arc::new(redis.open("b").await.expect("b"));
    let now = now_ms();
    let on_a = Policy::load(a.clone(), [ChannelKind::Sms], now)
        .await
        .expect("a loads");
    let limits = serde_json::from_value(serde_json::json!(
        {"rate_per_sec": 1000, "tz": "UTC", "quotas": {"promo": {"max": 2, "per": "P7D"}}}
    ))
    .expect("limits");
    on_a.set_limits(ChannelKind::Sms, limits, now)
        .await
        .expect("limits");
    let on_b = Policy::load(b.clone(), [ChannelKind::Sms], now)
        .await
        .expect("b loads");
    a.put_campaign("c", CampaignDecl::new(ChannelKind::Sms, "c"))
        .await
        .expect("declare");
    let campaign = a.set_state("c", CampaignState::Running).await.expect("run");
    let customer = Participant {
        customer: "c1".into(),
        address: "+4915100000001".into(),
        segment: Some("promo".into()),
        fields: Default::default(),
    };

    // Both nodes decide a message of the customer at once; b's write lands.
    let mine = quota_of(admit(&on_a, &campaign, &customer).await);
    let theirs = quota_of(admit(&on_b, &campaign, &customer).await);
    assert!(write(b.as_ref(), &theirs).await, "b's write lands");
    assert!(!write(a.as_ref(), &mine).await, "a's loses: not sent");

    // a decides its message again: one send in the week, two allowed.
    let again = admit(&on_a, &campaign, &customer).await;
    assert!(
        write(a.as_ref(), &quota_of(again)).await,
        "the second send of the week goes"
    );
    let third = admit(&on_b, &campaign, &customer).await;
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
    let redis = RedisServer::start();
    let a: Arc<dyn Store> = Arc::new(redis.open("a").await.expect("a"));
    let b: Arc<dyn Store> = Arc::new(redis.open("b").await.expect("b"));
    let now = now_ms();
    let limits: throttle::Limits = serde_json::from_value(serde_json::json!(
        {"rate_per_sec": 1000, "tz": "UTC", "caps": [{"max": 2}],
         "quotas": {"promo": {"max": 5, "per": "P7D"}}}
    ))
    .expect("limits");
    let on_a = Policy::load(a.clone(), [ChannelKind::Sms], now)
        .await
        .expect("a loads");
    on_a.set_limits(ChannelKind::Sms, limits.clone(), now)
        .await
        .expect("limits");
    let on_b = Policy::load(b.clone(), [ChannelKind::Sms], now)
        .await
        .expect("b loads");
    on_b.set_limits(ChannelKind::Sms, limits, now)
        .await
        .expect("limits");
    a.put_campaign("c", CampaignDecl::new(ChannelKind::Sms, "c"))
        .await
        .expect("declare");
    let campaign = a.set_state("c", CampaignState::Running).await.expect("run");
    let customer = |n: u32| Participant {
        customer: format!("c{n}"),
        address: format!("+49151000000{n:02}"),
        segment: Some("promo".into()),
        fields: Default::default(),
    };
    // Both nodes decide a message of c1 at once (each takes one of the
    // cap's two sends); b's quota write lands, a's loses.
    let mine = quota_of(admit(&on_a, &campaign, &customer(1)).await);
    let theirs = quota_of(admit(&on_b, &campaign, &customer(1)).await);
    assert!(
        on_b.make_quota_durable(ChannelKind::Sms, &customer(1), theirs)
            .await
            .expect("b writes")
    );
    assert!(
        !on_a
            .make_quota_durable(ChannelKind::Sms, &customer(1), mine)
            .await
            .expect("a writes"),
        "a's write loses: its message does not go"
    );

    // a's place in the cap is free again: c2 goes, c3 is over the cap.
    let next = admit(&on_a, &campaign, &customer(2)).await;
    assert!(
        matches!(next, Verdict::Go { .. }),
        "the cap's second send: {next:?}"
    );
    let over = admit(&on_a, &campaign, &customer(3)).await;
    assert!(
        matches!(over, Verdict::Defer { .. }),
        "a third send is over the cap: {over:?}"
    );
}
