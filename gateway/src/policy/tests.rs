//! Load control across a restart: what was counted against a cap or a plan
//! hour before it is still counted after it.

use std::collections::BTreeMap;

use tempfile::TempDir;
use throttle::plan::{Plan, PlanHour};

use super::*;
use domain::CampaignState;

use store::embedded::Embedded;

const HOUR_MS: Millis = 3_600_000;
const BOTH: [ChannelKind; 2] = [ChannelKind::Email, ChannelKind::Sms];

fn campaign() -> CampaignRecord {
    CampaignRecord {
        id: "c".into(),
        seq: 0,
        state: CampaignState::Running,
        decl: serde_json::from_value(serde_json::json!({"channel": "email", "name": "c"}))
            .expect("declaration"),
    }
}

fn participant(n: u32) -> Participant {
    Participant {
        customer: format!("customer-{n}"),
        address: format!("c{n}@example.org"),
        segment: None,
        fields: BTreeMap::new(),
    }
}

/// A store in a fresh directory (kept alive by the `TempDir`).
fn store() -> (TempDir, Arc<dyn Store>) {
    let dir = tempfile::tempdir().expect("tempdir");
    let store = Arc::new(Embedded::open(dir.path()).expect("open"));
    (dir, store)
}

/// Limits with one cap of 3 a day in `tz`, and room to spare otherwise.
fn capped_at_3(tz: &str) -> Limits {
    serde_json::from_value(serde_json::json!(
        {"rate_per_sec": 1000, "burst": 1000, "tz": tz, "caps": [{"max": 3}]}
    ))
    .expect("limits")
}

/// `json` as limits.
fn limits(json: serde_json::Value) -> Limits {
    serde_json::from_value(json).expect("limits")
}

/// `ms` as an RFC 3339 instant.
fn instant(ms: Millis) -> String {
    Timestamp::from_millisecond(ms as i64)
        .expect("instant")
        .to_string()
}

/// Campaign `c` sending within `window`.
fn windowed(window: serde_json::Value) -> CampaignRecord {
    CampaignRecord {
        decl: serde_json::from_value(
            serde_json::json!({"channel": "email", "name": "c", "window": window}),
        )
        .expect("declaration"),
        ..campaign()
    }
}

/// The quota write of a Go and what it counted.
fn counted(verdict: Verdict) -> (QuotaWrite, Taken) {
    match verdict {
        Verdict::Go {
            quota: Some(q),
            taken,
        } => (q, taken),
        other => panic!("not sent with its quota counted: {other:?}"),
    }
}

/// Stores an e-mail plan giving campaign `c` two messages in `hour` and
/// two in the next.
async fn store_a_plan(store: &Arc<dyn Store>, hour: Millis) -> Plan {
    let plan = Plan {
        hours: [hour, hour + HOUR_MS]
            .into_iter()
            .map(|start| PlanHour {
                hour: Timestamp::from_millisecond(start as i64).expect("instant"),
                capacity: 100,
                allocated: [("c".to_owned(), 2)].into(),
            })
            .collect(),
        campaigns: BTreeMap::new(),
    };
    store
        .put_meta(
            &plan_key(ChannelKind::Email),
            serde_json::to_vec(&plan).expect("json"),
        )
        .await
        .expect("store the plan");
    plan
}

/// Admits participants `first`, `first + 1`, … until one is not sent;
/// returns how many went and what held the next back.
async fn sent_until_held(policy: &Policy, now: Millis, first: u32) -> (u32, Verdict) {
    let mut n = first;
    loop {
        match policy
            .admit(&campaign(), &participant(n), now)
            .await
            .expect("admit")
        {
            Verdict::Go { .. } => n += 1,
            held => return (n - first, held),
        }
    }
}

/// Why a verdict holds a message back.
fn reason(verdict: &Verdict) -> Option<&'static str> {
    match verdict {
        Verdict::Defer { reason, .. } => Some(reason),
        Verdict::Suppress { why } => Some(why),
        Verdict::Go { .. } => None,
    }
}

/// The policy loaded from `store`, then given `limits` on the e-mail channel.
async fn loaded_with(store: &Arc<dyn Store>, limits: Limits, now: Millis) -> Policy {
    let policy = Policy::load(store.clone(), BOTH, now).await.expect("load");
    policy
        .set_limits(ChannelKind::Email, limits, now)
        .await
        .expect("limits");
    policy
}

fn now() -> Millis {
    domain::now_ms()
}

/// The start of the current hour, from one reading of the clock: two
/// readings straddling the hour's turn gave an instant off the hour, which
/// no plan hour starts at.
fn this_hour() -> Millis {
    let now = now();
    now - now % HOUR_MS
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_full_cap_stays_full_after_a_restart() {
    let (_dir, store) = store();
    let now = now();
    let before = loaded_with(&store, capped_at_3("UTC"), now).await;
    let (sent, held) = sent_until_held(&before, now, 0).await;
    assert_eq!((sent, reason(&held)), (3, Some("cap_reached")));
    before.checkpoint(now).await.expect("checkpoint");

    let after = Policy::load(store, BOTH, now).await.expect("reload");
    let (sent, held) = sent_until_held(&after, now, 3).await;
    assert_eq!(
        (sent, reason(&held)),
        (0, Some("cap_reached")),
        "the cap was counted from zero again"
    );
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn counters_of_another_time_zone_are_not_restored() {
    let (_dir, store) = store();
    let now = now();
    let before = loaded_with(&store, capped_at_3("UTC"), now).await;
    assert_eq!(sent_until_held(&before, now, 0).await.0, 3);
    before.checkpoint(now).await.expect("checkpoint");
    // Other days from now on; a crash comes before the next checkpoint.
    before
        .set_limits(ChannelKind::Email, capped_at_3("Pacific/Kiritimati"), now)
        .await
        .expect("limits");

    let after = Policy::load(store, BOTH, now).await.expect("reload");
    assert_eq!(
        sent_until_held(&after, now, 3).await.0,
        3,
        "as set_limits does, a new zone's days start at zero"
    );
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_used_plan_hour_stays_used_after_a_restart_and_a_new_plan() {
    let (_dir, store) = store();
    let now = now();
    let hour = now - now % HOUR_MS;
    let plan = store_a_plan(&store, hour).await;
    let before = Policy::load(store.clone(), BOTH, now).await.expect("load");
    let (sent, held) = sent_until_held(&before, now, 0).await;
    assert_eq!(sent, 2);
    assert_eq!(
        held,
        Verdict::Defer {
            reason: "plan",
            until: hour + HOUR_MS
        }
    );
    // Planning again within the hour does not hand the hour out twice.
    before.follow(ChannelKind::Email, &plan, now);
    assert_eq!(sent_until_held(&before, now, 2).await.0, 0);
    before.checkpoint(now).await.expect("checkpoint");

    let after = Policy::load(store, BOTH, now).await.expect("reload");
    let (sent, held) = sent_until_held(&after, now, 2).await;
    assert_eq!(
        (sent, reason(&held)),
        (0, Some("plan")),
        "the plan hour was counted from zero again"
    );
}

/// A send whose quota state could not be made durable did not happen: the
/// customer's message, decided again, goes; it is not suppressed for it.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_send_whose_quota_state_was_not_written_does_not_count() {
    use std::sync::atomic::{AtomicU64, Ordering};

    let dir = tempfile::tempdir().expect("tempdir");
    let free = Arc::new(AtomicU64::new(1 << 30));
    let options = store::embedded::Options::disk_of(free.clone());
    let store: Arc<dyn Store> = Arc::new(Embedded::open_with(dir.path(), options).expect("open"));
    let limits = limits(serde_json::json!(
        {"rate_per_sec": 1000, "tz": "UTC", "quotas": {"promo": {"max": 1, "per": "P7D"}}}
    ));
    let now = now();
    let policy = loaded_with(&store, limits, now).await;
    let customer = Participant {
        segment: Some("promo".into()),
        ..participant(1)
    };
    let campaign = campaign();
    let decide = |at: Millis| policy.admit(&campaign, &customer, at);

    let first = counted(decide(now).await.expect("admit"));
    free.store(1000, Ordering::SeqCst); // the disk fills up
    assert!(
        policy
            .make_quota_durable(&customer, &first.0, &first.1)
            .await
            .is_err(),
        "a full disk refuses the write"
    );
    free.store(1 << 30, Ordering::SeqCst);

    // Claimed again later: it goes, counted this time.
    let again = counted(decide(now + 1_000).await.expect("admit"));
    assert!(
        policy
            .make_quota_durable(&customer, &again.0, &again.1)
            .await
            .expect("written")
    );
    let third = decide(now + 2_000).await.expect("admit");
    assert_eq!(reason(&third), Some("quota_exceeded"), "{third:?}");
}

/// A plan made late in an hour gives that hour only its remaining seconds:
/// a campaign planned a second before the hour ends is not handed a full
/// hour's messages it has no time left to send, to wait for its next
/// planned hour with the rest.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_plan_gives_the_current_hour_only_its_remaining_seconds() {
    let (_dir, store) = store();
    let hour = this_hour();
    let limits = limits(serde_json::json!({"rate_per_sec": 2, "tz": "UTC"}));
    let policy = loaded_with(&store, limits, hour).await;
    for (late, first_hour) in [(HOUR_MS / 2, 3600), (HOUR_MS - 1000, 2)] {
        let plan = policy
            .plan(
                ChannelKind::Email,
                &[(campaign(), 20_000)],
                None,
                hour + late,
            )
            .expect("plan");
        assert_eq!(
            (plan.hours[0].capacity, plan.hours[0].allocated["c"]),
            (first_hour, first_hour),
            "{late} ms into the hour"
        );
        assert_eq!(plan.hours[1].allocated["c"], 7200, "the next hour whole");
    }
}

/// The plan's hours reach the last campaign's end even when neither the
/// plan nor that end falls on an hour: a campaign that fits exactly, to
/// its last quarter hour, is planned whole.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_plan_made_mid_hour_reaches_a_campaign_end_mid_hour() {
    let (_dir, store) = store();
    let hour = this_hour();
    let limits = limits(serde_json::json!({"rate_per_sec": 1, "tz": "UTC"}));
    let policy = loaded_with(&store, limits, hour).await;
    let (from, end) = (hour + HOUR_MS / 2, hour + 30 * HOUR_MS + HOUR_MS / 4);
    let campaign = windowed(serde_json::json!({"end": instant(end)}));
    let seconds = (end - from) / 1000;
    let plan = policy
        .plan(ChannelKind::Email, &[(campaign, seconds)], None, from)
        .expect("plan");
    let c = &plan.campaigns["c"];
    assert_eq!(
        (c.planned, c.feasible),
        (seconds, true),
        "every second from the plan to the end carries one: {c:?}"
    );
}

/// A campaign whose window is over, or opens past the plan's horizon, is
/// left out of the plan; the others are planned as before.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn campaigns_outside_the_horizon_are_left_out_of_the_plan() {
    let (_dir, store) = store();
    let now = now();
    let limits = limits(serde_json::json!({"rate_per_sec": 1, "tz": "UTC"}));
    let policy = loaded_with(&store, limits, now).await;
    let declared = |id: &str, window: serde_json::Value| CampaignRecord {
        id: id.into(),
        state: CampaignState::Declared,
        ..windowed(window)
    };
    let campaigns = [
        (
            declared("ended", serde_json::json!({"end": instant(now - HOUR_MS)})),
            10,
        ),
        (
            declared(
                "far",
                serde_json::json!({"start": instant(now + 200 * 24 * HOUR_MS)}),
            ),
            10,
        ),
        (campaign(), 10),
    ];
    let plan = policy
        .plan(ChannelKind::Email, &campaigns, None, now)
        .expect("a plan despite the two");
    assert_eq!(
        plan.campaigns.keys().collect::<Vec<_>>(),
        ["c"],
        "only the plannable one"
    );
    assert!(plan.campaigns["c"].feasible);
}

/// A message admitted but not sent after all (no upstream took it) gives
/// back its place in the caps and its quota send, in memory and stored:
/// decided again, it goes, and the stored state counts it once.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_send_given_back_takes_no_place_in_caps_or_quota() {
    let (_dir, store) = store();
    let now = now();
    let limits = limits(serde_json::json!({"rate_per_sec": 1000, "tz": "UTC",
        "caps": [{"max": 1}], "quotas": {"*": {"max": 1, "per": "P7D"}}}));
    let policy = loaded_with(&store, limits, now).await;
    let (campaign, customer) = (campaign(), participant(1));
    let stored_sends = || async {
        let raw = store.meta(&quota_key_of(&customer)).await.expect("meta");
        QuotaState::from_bytes(&raw.expect("a stored state"))
            .expect("state")
            .sends
            .len()
    };

    let (first, taken) = counted(
        policy
            .admit(&campaign, &customer, now)
            .await
            .expect("admit"),
    );
    assert!(
        policy
            .make_quota_durable(&customer, &first, &taken)
            .await
            .expect("written")
    );
    assert_eq!(stored_sends().await, 1);
    policy
        .give_back(&customer, &taken, Some(&first), true)
        .await
        .expect("given back");
    assert_eq!(stored_sends().await, 0, "the stored state without it");

    // Counted but given back before its state was written (its turn ran
    // out): not stored, and forgotten in memory too.
    let (unwritten, taken) = counted(
        policy
            .admit(&campaign, &customer, now + 500)
            .await
            .expect("admit"),
    );
    policy
        .give_back(&customer, &taken, Some(&unwritten), false)
        .await
        .expect("given back");
    assert_eq!(stored_sends().await, 0, "nothing stored for it");

    let (again, taken) = counted(
        policy
            .admit(&campaign, &customer, now + 1_000)
            .await
            .expect("admit"),
    );
    assert!(
        policy
            .make_quota_durable(&customer, &again, &taken)
            .await
            .expect("written")
    );
    assert_eq!(stored_sends().await, 1, "counted once");
    let other = policy
        .admit(&campaign, &participant(2), now + 2_000)
        .await
        .expect("admit");
    assert_eq!(
        reason(&other),
        Some("cap_reached"),
        "the cap counts it once: {other:?}"
    );
}

/// The meta key of `p`'s e-mail quota state.
fn quota_key_of(p: &Participant) -> String {
    format!("{}{}", quota_prefix(ChannelKind::Email), p.customer)
}

/// The plan holds a campaign back to its hours, never past its end: held
/// until then, what is left is suppressed at its end, as without a plan.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn the_plan_holds_a_campaign_no_longer_than_its_end() {
    let (_dir, store) = store();
    // Ten minutes into the hour: its end comes before the next hour.
    let hour = this_hour();
    let now = hour + 10 * 60_000;
    store_a_plan(&store, hour).await;
    let policy = Policy::load(store, BOTH, now).await.expect("load");
    let end = now + 60_000;
    let ending = windowed(serde_json::json!({"end": instant(end)}));
    let verdict = |n: u32, at: Millis| {
        let (policy, ending) = (&policy, &ending);
        async move {
            policy
                .admit(ending, &participant(n), at)
                .await
                .expect("admit")
        }
    };
    assert!(matches!(verdict(0, now).await, Verdict::Go { .. }));
    assert!(matches!(verdict(1, now).await, Verdict::Go { .. }));
    assert_eq!(
        verdict(2, now).await,
        Verdict::Defer {
            reason: "plan",
            until: end
        },
        "held until its end, not its next planned hour"
    );
    assert_eq!(
        verdict(2, end).await,
        Verdict::Suppress {
            why: "campaign_ended"
        }
    );
}
