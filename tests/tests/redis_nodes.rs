//! Several sluice nodes on one real `redis-server`, against the npm SMPP
//! peer: they share one campaign at the channel's rate, a node killed with
//! `kill -9` loses its leases to the other, and a quota, a load cap and the
//! plan count across nodes; nodes on a Redis Cluster ride out a failover.

#![allow(clippy::unwrap_used)]

// The store's tests' Redis processes, a Cluster among them.
#[allow(dead_code)]
#[path = "../../store/tests/support/processes.rs"]
mod processes;

use std::{
    collections::{BTreeMap, HashMap},
    path::Path,
    time::Duration,
};

use serde_json::json;
use sluice_e2e::{
    Daemon, HOUR, MustReachEnd, Post, Response, WebhookReceiver, clear_of_boundary, free_port,
    must_reach_end,
    npm_smsc::{NpmSmsc, NpmSubmit},
    redis_server::RedisServer,
    request, wait_until,
};

/// submit_sm outstanding per bind: the SMS channel then sends at most
/// 4 × WINDOW at once per node.
const WINDOW: usize = 16;

/// A `redis-server` and the npm SMSC peer of a test, their files under
/// `dir`.
fn redis_and_smsc(end: &MustReachEnd, dir: &Path) -> (RedisServer, NpmSmsc) {
    (
        RedisServer::start(end, &dir.join("redis")),
        NpmSmsc::start(end),
    )
}

/// A node named `node` on `redis`, sending to `smsc`, its files in
/// `dir/node`.
fn node(dir: &Path, node: &str, redis: &RedisServer, smsc: &NpmSmsc) -> Daemon {
    node_on(dir, node, &redis.store_config(node), &[], smsc)
}

/// A node named `node` whose configuration begins with `sections` (its
/// `[store]`, and any other), with environment `envs`, sending to `smsc`,
/// its files in `dir/node`.
fn node_on(
    dir: &Path,
    node: &str,
    sections: &str,
    envs: &[(&str, &str)],
    smsc: &NpmSmsc,
) -> Daemon {
    let dir = dir.join(node);
    std::fs::create_dir_all(&dir).unwrap();
    let config = format!(
        "{sections}\n[dispatch]\nlease_secs = 4\n\n[[sms.smsc]]\nhost = \"127.0.0.1\"\nport = {}\nsystem_id = \"sluice\"\nwindow = {WINDOW}\nresponse_timeout_secs = 2\n",
        smsc.port
    );
    let daemon = Daemon::start_with_env(&dir, &config, envs);
    wait_until(
        &format!("{node}'s /readyz 200"),
        Duration::from_secs(10),
        || daemon.get("/readyz").status == 200,
    );
    daemon
}

fn phone(i: usize) -> String {
    format!("+4915100{i:06}")
}

fn sms_campaign(daemon: &Daemon, id: &str) {
    daemon.declare(
        id,
        &json!({"channel": "sms", "name": id,
                "content": {"sms": {"from": "Telco", "text": "Hi {{customer}}"}}}),
    );
}

/// Uploads customers `c{from}..c{to}` in segment `segment`.
fn upload(daemon: &Daemon, id: &str, customers: std::ops::Range<usize>, segment: &str) {
    let rows: Vec<_> = customers
        .map(|i| json!({"customer": format!("c{i}"), "address": phone(i), "segment": segment}))
        .collect();
    let r = daemon.upload(id, &rows);
    assert_eq!(r["accepted"], rows.len(), "{r}");
}

/// Uploads customers `c0..c{n}` to campaign `id` through `to` in one
/// NDJSON request of the test's own, and returns once `seen_from` shows
/// their publish begun; the request answers when it ends.
fn upload_until_published(
    to: &Daemon,
    seen_from: &Daemon,
    id: &str,
    n: usize,
) -> std::thread::JoinHandle<Response> {
    let body: String = (0..n)
        .map(|i| {
            format!(
                "{}\n",
                json!({"customer": format!("c{i}"), "address": phone(i)})
            )
        })
        .collect();
    let (api, path) = (to.api.clone(), format!("/v1/campaigns/{id}/participants"));
    let uploading = std::thread::spawn(move || {
        request(
            "POST",
            &api,
            &path,
            &[("content-type", "application/x-ndjson")],
            body.as_bytes(),
        )
    });
    wait_until("the publish begun", Duration::from_secs(60), || {
        seen_from.get(&format!("/v1/campaigns/{id}")).json()["participants"]
            .as_u64()
            .unwrap()
            > 0
    });
    uploading
}

/// Sends campaign `id` of 20 customers through `node` to its end: each
/// customer gets a text.
fn texts_twenty(node: &Daemon, smsc: &NpmSmsc, id: &str) {
    sms_campaign(node, id);
    upload(node, id, 0..20, "all");
    node.start_campaign(id);
    wait_until("the campaign finished", Duration::from_secs(30), || {
        node.get(&format!("/v1/campaigns/{id}")).json()["state"] == "finished"
    });
    assert_eq!(
        per_number(&smsc.submits()).len(),
        20,
        "every customer got a text"
    );
}

/// Every one of `numbers` numbers got a text, and no more got two than
/// the two `nodes` had in flight; both are ready.
fn texted_each_once_but_in_flight(smsc: &NpmSmsc, numbers: usize, nodes: [&Daemon; 2]) {
    let texted = per_number(&smsc.submits());
    assert_eq!(texted.len(), numbers, "every number texted");
    let twice = texted.values().filter(|&&n| n > 1).count();
    assert!(
        twice <= 2 * 4 * WINDOW,
        "{twice} numbers texted twice: more than the two nodes had in flight"
    );
    for node in nodes {
        assert_eq!(node.get("/readyz").status, 200);
    }
}

/// Sets the SMS channel's rate through `node` (UTC, no other limit).
/// The feed as `a` reads it, after checking that `b` reads the same one
/// and that its cursors are 1, 2, 3, ... without a gap.
fn one_feed(a: &Daemon, b: &Daemon) -> Vec<serde_json::Value> {
    let facts = a.all_events();
    assert_eq!(facts, b.all_events(), "one feed");
    let cursors: Vec<u64> = facts
        .iter()
        .map(|f| f["cursor"].as_u64().unwrap())
        .collect();
    assert_eq!(cursors, (1..=facts.len() as u64).collect::<Vec<_>>());
    facts
}

fn set_rate(node: &Daemon, rate_per_sec: f64) {
    let r = node.put_json(
        "/v1/channels/sms/limits",
        &json!({"rate_per_sec": rate_per_sec, "tz": "UTC"}),
    );
    assert_eq!(r.status, 200, "{}", r.text());
}

/// Nodes `a` and `b` on one Redis, sending to the npm SMSC, and campaign
/// `spring` of customers `c0..c{n}` declared and uploaded through `a`, at
/// `rate` texts a second; not started.
fn two_nodes_and_a_campaign(
    end: &MustReachEnd,
    dir: &Path,
    n: usize,
    rate: f64,
) -> (RedisServer, NpmSmsc, Daemon, Daemon) {
    let (redis, smsc) = redis_and_smsc(end, dir);
    let a = node(dir, "a", &redis, &smsc);
    let b = node(dir, "b", &redis, &smsc);
    sms_campaign(&a, "spring");
    upload(&a, "spring", 0..n, "retail");
    set_rate(&a, rate);
    (redis, smsc, a, b)
}

/// Texts at the SMSC per second from the first text; checks that every
/// whole second after the first held at most `rate` plus 5%.
fn rate_held_after_the_first_second(submits: &[NpmSubmit], rate: usize) -> BTreeMap<u64, usize> {
    let first = submits.iter().map(|s| s.at_ms).min().unwrap();
    let mut per_second: BTreeMap<u64, usize> = BTreeMap::new();
    for s in submits {
        *per_second.entry((s.at_ms - first) / 1_000).or_default() += 1;
    }
    // The last second is partial: left out.
    let whole_seconds = per_second.keys().last().copied().unwrap_or(0).max(1);
    let most = rate + rate / 20;
    for (&second, &count) in per_second.range(1..whole_seconds) {
        assert!(
            count <= most,
            "{count} texts in second {second} at the SMSC (at most {most}): {per_second:?}"
        );
    }
    per_second
}

/// Texts received per number.
fn per_number(submits: &[NpmSubmit]) -> HashMap<String, usize> {
    let mut seen = HashMap::new();
    for s in submits {
        *seen.entry(s.destination_addr.clone()).or_default() += 1;
    }
    seen
}

#[test]
fn two_nodes_share_a_campaign_at_the_rate_and_finish_it_when_one_is_killed() {
    const N: usize = 20_000;
    const RATE: usize = 1_000;
    let end = must_reach_end();
    let dir = tempfile::tempdir().unwrap();
    let (redis, smsc) = redis_and_smsc(&end, dir.path());
    let a = node(dir.path(), "a", &redis, &smsc);
    let mut b = node(dir.path(), "b", &redis, &smsc);
    // Limits set on one node hold on the other within a second.
    set_rate(&a, RATE as f64);
    sms_campaign(&a, "spring");
    // The CRM may talk to any node.
    upload(&b, "spring", 0..N, "retail");
    std::thread::sleep(Duration::from_millis(1_500));
    a.start_campaign("spring");

    // Half-way, node b dies without a word.
    smsc.wait_for_submits(N / 2, Duration::from_secs(60));
    b.kill9();

    wait_until("every number texted", Duration::from_secs(90), || {
        per_number(&smsc.submits()).len() == N
    });
    wait_until("the campaign finished", Duration::from_secs(30), || {
        a.get("/v1/campaigns/spring").json()["state"] == "finished"
    });
    let submits = smsc.submits();
    let texts = per_number(&submits);
    let on_the_wire = |i| phone(i).trim_start_matches('+').to_owned();
    assert!(texts.contains_key(&on_the_wire(0)) && texts.contains_key(&on_the_wire(N - 1)));
    // Sent twice: only what b had sent but not recorded when it died.
    let duplicates = submits.len() - N;
    assert!(
        duplicates <= 2 * 4 * WINDOW,
        "{duplicates} duplicates; b had at most {} sends in flight",
        2 * 4 * WINDOW
    );

    let per_second = rate_held_after_the_first_second(&submits, RATE);
    // Receipts come after the texts: every one answered is matched. Those
    // the SMSC was sending to b when it died are lost (this peer does not
    // send them again): at most b's last sends.
    let counts = || a.get("/v1/campaigns/spring").json()["counts"].clone();
    let lost_at_most = (4 * WINDOW) as u64;
    wait_until("the receipts matched", Duration::from_secs(30), || {
        counts()["delivered"].as_u64().unwrap() + lost_at_most >= N as u64
    });
    let counts = counts();
    let (delivered, submitted) = (
        counts["delivered"].as_u64().unwrap(),
        counts["submitted"].as_u64().unwrap(),
    );
    assert_eq!(delivered + submitted, N as u64, "{counts}");
    eprintln!(
        "{N} texts from two nodes, one killed half-way: {duplicates} sent twice, {submitted} receipts lost with the node, busiest second {} at the SMSC",
        // Whole seconds after the first: the last is partial.
        per_second
            .values()
            .skip(1)
            .rev()
            .skip(1)
            .max()
            .unwrap_or(&0)
    );
    end.reached();
}

#[test]
fn a_quota_of_one_a_week_holds_across_campaigns_started_on_different_nodes() {
    const N: usize = 300;
    let end = must_reach_end();
    let dir = tempfile::tempdir().unwrap();
    let (redis, smsc) = redis_and_smsc(&end, dir.path());
    let a = node(dir.path(), "a", &redis, &smsc);
    let b = node(dir.path(), "b", &redis, &smsc);
    let limits = json!({"rate_per_sec": 5_000, "tz": "UTC",
                        "quotas": {"promo": {"max": 1, "per": "P7D"}}});
    let r = a.put_json("/v1/channels/sms/limits", &limits);
    assert_eq!(r.status, 200, "{}", r.text());
    sms_campaign(&a, "first");
    sms_campaign(&b, "second");
    upload(&a, "first", 0..N, "promo");
    upload(&b, "second", 0..N, "promo");
    std::thread::sleep(Duration::from_millis(1_500));
    // Both at once, one on each node.
    a.start_campaign("first");
    b.start_campaign("second");
    let finished =
        |d: &Daemon, id: &str| d.get(&format!("/v1/campaigns/{id}")).json()["state"] == "finished";
    wait_until("both campaigns finished", Duration::from_secs(60), || {
        finished(&a, "first") && finished(&b, "second")
    });
    let texts = per_number(&smsc.submits());
    assert_eq!(texts.len(), N, "every customer got a text");
    let twice: Vec<_> = texts.iter().filter(|&(_, &n)| n > 1).collect();
    assert!(twice.is_empty(), "texted twice within the week: {twice:?}");
    let suppressed = |d: &Daemon, id: &str| {
        d.get(&format!("/v1/campaigns/{id}")).json()["counts"]["suppressed"]
            .as_u64()
            .unwrap()
    };
    assert_eq!(
        suppressed(&a, "first") + suppressed(&b, "second"),
        N as u64,
        "the other campaign's message of each customer was suppressed"
    );
    end.reached();
}

#[test]
fn a_daily_load_cap_holds_for_two_nodes_together() {
    const CAP: usize = 200;
    let end = must_reach_end();
    let dir = tempfile::tempdir().unwrap();
    let (redis, smsc) = redis_and_smsc(&end, dir.path());
    let a = node(dir.path(), "a", &redis, &smsc);
    let b = node(dir.path(), "b", &redis, &smsc);
    let limits = json!({"rate_per_sec": 5_000, "tz": midday_zone(), "caps": [{"max": CAP}]});
    let r = a.put_json("/v1/channels/sms/limits", &limits);
    assert_eq!(r.status, 200, "{}", r.text());
    sms_campaign(&a, "first");
    sms_campaign(&b, "second");
    upload(&a, "first", 0..300, "all");
    upload(&b, "second", 300..600, "all");
    std::thread::sleep(Duration::from_millis(1_500));
    a.start_campaign("first");
    b.start_campaign("second");
    wait_until(
        "the cap's texts at the SMSC",
        Duration::from_secs(30),
        || smsc.submits().len() >= CAP,
    );
    // Time for any text past the cap to arrive.
    std::thread::sleep(Duration::from_secs(3));
    assert_eq!(smsc.submits().len(), CAP, "the nodes together send the cap");
    let pending = |d: &Daemon, id: &str| {
        d.get(&format!("/v1/campaigns/{id}")).json()["counts"]["pending"]
            .as_u64()
            .unwrap()
    };
    assert_eq!(
        pending(&a, "first") + pending(&b, "second"),
        (600 - CAP) as u64,
        "the rest wait for the next day"
    );
    end.reached();
}

#[test]
fn a_plan_made_on_one_node_holds_for_both() {
    let end = must_reach_end();
    let dir = tempfile::tempdir().unwrap();
    let (redis, smsc) = redis_and_smsc(&end, dir.path());
    let a = node(dir.path(), "a", &redis, &smsc);
    let b = node(dir.path(), "b", &redis, &smsc);
    // Not across an hour's end: the plan's first hour is the current one.
    clear_of_boundary(HOUR, Duration::from_secs(30));
    // Planned at 180 an hour; then the bandwidth is raised, and the plan
    // alone holds the campaign to its hour.
    set_rate(&a, 0.05);
    b.declare(
        "planned",
        &json!({"channel": "sms", "name": "planned", "expected_participants": 600,
                "content": {"sms": {"from": "Telco", "text": "Hi {{customer}}"}}}),
    );
    upload(&b, "planned", 0..600, "all");
    let plan = a.post("/v1/channels/sms/plan", "application/json", b"{}");
    assert_eq!(plan.status, 200, "{}", plan.text());
    let plan = plan.json();
    let this_hour = plan["hours"][0]["allocated"]["planned"]
        .as_u64()
        .unwrap_or(0) as usize;
    assert!((1..600).contains(&this_hour), "{plan}");
    set_rate(&a, 5_000.0);
    // Both nodes take up the new limits and the plan within a second.
    std::thread::sleep(Duration::from_millis(1_500));
    b.start_campaign("planned");
    wait_until(
        "the hour's texts at the SMSC",
        Duration::from_secs(30),
        || smsc.submits().len() >= this_hour,
    );
    std::thread::sleep(Duration::from_secs(3));
    assert_eq!(
        smsc.submits().len(),
        this_hour,
        "the nodes together send the plan's hour"
    );
    end.reached();
}

/// A fixed-offset zone where it is about noon now: a day's cap is not
/// crossed by midnight during the test.
fn midday_zone() -> String {
    let utc_hour = std::time::SystemTime::now()
        .duration_since(std::time::UNIX_EPOCH)
        .unwrap()
        .as_secs()
        / 3600
        % 24;
    let ahead = 12 - utc_hour as i64;
    // POSIX-style names: `Etc/GMT-5` is five hours ahead of UTC.
    if ahead >= 0 {
        format!("Etc/GMT-{ahead}")
    } else {
        format!("Etc/GMT+{}", -ahead)
    }
}

#[test]
fn losing_redis_pauses_a_node_and_it_resumes_by_itself_when_redis_is_back() {
    const N: usize = 2_000;
    let end = must_reach_end();
    let dir = tempfile::tempdir().unwrap();
    let (mut redis, smsc) = redis_and_smsc(&end, dir.path());
    let a = node(dir.path(), "a", &redis, &smsc);
    set_rate(&a, 200.0);
    sms_campaign(&a, "spring");
    upload(&a, "spring", 0..N, "retail");
    a.start_campaign("spring");
    smsc.wait_for_submits(200, Duration::from_secs(30));

    redis.kill9();
    wait_until("/readyz 503 naming Redis", Duration::from_secs(10), || {
        let r = a.get("/readyz");
        r.status == 503 && r.text().contains("Redis")
    });
    let refused = a.post(
        "/v1/campaigns/spring/participants",
        "application/x-ndjson",
        b"{\"customer\": \"late\", \"address\": \"+4915199999999\"}\n",
    );
    assert_eq!(refused.status, 503, "{}", refused.text());
    assert!(refused.json()["detail"].is_string(), "{}", refused.text());
    // Sending has paused: at most what was in flight still goes out.
    let paused_at = smsc.submits().len();
    std::thread::sleep(Duration::from_secs(2));
    let during = smsc.submits().len() - paused_at;
    assert!(during <= 4 * WINDOW, "{during} texts sent without Redis");

    redis.restart(&end);
    wait_until("/readyz 200 again", Duration::from_secs(15), || {
        a.get("/readyz").status == 200
    });
    wait_until("every number texted", Duration::from_secs(60), || {
        per_number(&smsc.submits()).len() == N
    });
    wait_until("the campaign finished", Duration::from_secs(30), || {
        a.get("/v1/campaigns/spring").json()["state"] == "finished"
    });
    let r = a.get("/v1/campaigns/spring");
    assert_eq!(r.json()["participants"], N, "{}", r.text());
    end.reached();
}

/// The most arguments one write script carried in what `redis` logged
/// (every command, once `log_every_command` ran) since the log was
/// emptied: a logged command keeps its first 31 arguments, then says how
/// many more it had.
fn largest_write(end: &MustReachEnd, redis: &RedisServer) -> usize {
    let log = redis.cli(end, &["SLOWLOG", "GET", "-1"]);
    log.as_array()
        .unwrap()
        .iter()
        .map(|entry| entry[3].as_array().unwrap())
        .filter(|args| args[0].as_str().unwrap().eq_ignore_ascii_case("evalsha"))
        .map(|args| {
            let last = args.last().unwrap().as_str().unwrap();
            match last
                .strip_prefix("... (")
                .and_then(|rest| rest.split(' ').next()?.parse::<usize>().ok())
            {
                Some(more) => args.len() - 1 + more,
                None => args.len(),
            }
        })
        .max()
        .unwrap_or(0)
}

#[test]
fn a_large_audience_joins_the_next_stage_in_writes_no_larger_than_a_small_ones() {
    // One write for the whole audience held Redis (and so every node) for
    // about 10 µs per participant.
    let end = must_reach_end();
    let dir = tempfile::tempdir().unwrap();
    let (redis, smsc) = redis_and_smsc(&end, dir.path());
    let a = node(dir.path(), "a", &redis, &smsc);
    for (id, customers) in [("small", 0..1_000), ("large", 0..12_000)] {
        sms_campaign(&a, id);
        upload(&a, id, customers, "*");
        sms_campaign(&a, &format!("next-{id}"));
    }
    redis.cli(&end, &["CONFIG", "SET", "slowlog-log-slower-than", "0"]);
    redis.cli(&end, &["CONFIG", "SET", "slowlog-max-len", "100000"]);
    let mut largest = HashMap::new();
    for (id, members) in [("small", 1_000), ("large", 12_000)] {
        redis.cli(&end, &["SLOWLOG", "RESET"]);
        let added = a.post(
            &format!("/v1/campaigns/next-{id}/participants/from"),
            "application/json",
            json!({"campaign": id, "outcome": "pending"})
                .to_string()
                .as_bytes(),
        );
        assert_eq!(added.status, 200, "{}", added.text());
        assert_eq!(added.json()["accepted"], members, "{}", added.text());
        largest.insert(id, largest_write(&end, &redis));
    }
    assert!(largest["small"] > 1_000, "the log holds the writes");
    assert!(
        largest["large"] <= largest["small"] + largest["small"] / 10,
        "12,000 members joined in a script of {} arguments, 1,000 in one of {}",
        largest["large"],
        largest["small"]
    );
    let next = a.get("/v1/campaigns/next-large").json();
    assert_eq!(next["participants"], 12_000, "{next}");
    end.reached();
}

#[test]
fn an_upload_whose_node_is_killed_while_it_publishes_is_completed_by_the_other() {
    const N: usize = 60_000;
    let end = must_reach_end();
    let dir = tempfile::tempdir().unwrap();
    let (redis, smsc) = redis_and_smsc(&end, dir.path());
    let mut a = node(dir.path(), "a", &redis, &smsc);
    let b = node(dir.path(), "b", &redis, &smsc);
    sms_campaign(&a, "spring");
    // The CRM's request: it gets no answer (the node dies under it).
    let uploading = upload_until_published(&a, &b, "spring", N);
    let view = || b.get("/v1/campaigns/spring").json();
    a.kill9();
    assert!(uploading.join().is_err(), "the upload was never answered");
    let seen = view();
    let live = seen["participants"].as_u64().unwrap();
    assert!(live < N as u64, "killed mid-publish: {seen}");
    assert_eq!(
        live + seen["uploading"].as_u64().unwrap(),
        N as u64,
        "the rest is still to publish: {seen}"
    );

    wait_until("b completed the publish", Duration::from_secs(30), || {
        view()["participants"].as_u64().unwrap() == N as u64
    });
    let accepted = b
        .all_events()
        .iter()
        .filter(|e| e["type"] == "accepted")
        .count();
    assert_eq!(accepted, N, "each participant accepted once");
    assert_eq!(view()["uploading"], 0);
    end.reached();
}

#[test]
fn redis_paused_for_longer_than_a_heartbeat_lasts_loses_no_participant_and_sends_on() {
    // Every node's heartbeat lapses while Redis is paused for 8 s (they
    // last 6 s): when it answers again, a node may take the other for
    // dead for a moment and carry on its publish under way, and the
    // leases of what was in flight have run out.
    const N: usize = 60_000;
    const TEXTS: usize = 3_000;
    let end = must_reach_end();
    let dir = tempfile::tempdir().unwrap();
    let (redis, smsc) = redis_and_smsc(&end, dir.path());
    let a = node(dir.path(), "a", &redis, &smsc);
    let b = node(dir.path(), "b", &redis, &smsc);
    set_rate(&a, 300.0);
    sms_campaign(&a, "summer");
    upload(&a, "summer", N..N + TEXTS, "retail");
    a.start_campaign("summer");
    smsc.wait_for_submits(300, Duration::from_secs(30));

    sms_campaign(&a, "spring");
    let uploading = upload_until_published(&a, &b, "spring", N);
    let view = || b.get("/v1/campaigns/spring").json();
    let before = view()["participants"].as_u64().unwrap();
    redis.pause(Duration::from_secs(8));

    let answer = uploading.join().unwrap();
    eprintln!(
        "paused with {before} of {N} live; answered {}",
        answer.text()
    );
    assert_eq!(answer.status, 200, "{}", answer.text());
    assert_eq!(answer.json()["accepted"], N, "{}", answer.text());
    wait_until("every participant live", Duration::from_secs(30), || {
        view()["participants"].as_u64().unwrap() == N as u64
    });
    let accepted = b
        .all_events()
        .iter()
        .filter(|e| e["type"] == "accepted" && e["campaign"] == "spring")
        .count();
    assert_eq!(accepted, N, "each participant accepted once");

    wait_until("the texts sent on", Duration::from_secs(60), || {
        a.get("/v1/campaigns/summer").json()["state"] == "finished"
    });
    texted_each_once_but_in_flight(&smsc, TEXTS, [&a, &b]);
    end.reached();
}

#[test]
fn an_upload_published_for_longer_than_a_sweep_answers_each_participant_accepted() {
    // The node's sweep for publishes to carry on runs every 2 s: it must
    // leave the one its own call is making (it once took a share of it,
    // which the answer then counted as duplicates).
    const N: usize = 150_000;
    let end = must_reach_end();
    let dir = tempfile::tempdir().unwrap();
    let (redis, smsc) = redis_and_smsc(&end, dir.path());
    let a = node(dir.path(), "a", &redis, &smsc);
    sms_campaign(&a, "spring");
    let started = std::time::Instant::now();
    upload(&a, "spring", 0..N, "retail");
    eprintln!("{N} participants uploaded in {:?}", started.elapsed());
    let seen = a.get("/v1/campaigns/spring").json();
    assert_eq!(seen["participants"], N, "{seen}");
    end.reached();
}

#[test]
fn a_node_reaches_redis_over_tls_with_its_password_and_a_wrong_password_stops_it() {
    let end = must_reach_end();
    let dir = tempfile::tempdir().unwrap();
    let redis = RedisServer::start_tls(&end, &dir.path().join("redis"));
    let smsc = NpmSmsc::start(&end);
    redis.cli(&end, &["CONFIG", "SET", "requirepass", "s3cret"]);
    let ca = redis.tls().unwrap().ca.to_str().unwrap().to_owned();
    let store = |node: &str| {
        format!(
            "[store]\nengine = \"redis\"\nurl = \"{}\"\npassword_env = \"SLUICE_REDIS_PASSWORD\"\nnode = \"{node}\"\n",
            redis.tls_url()
        )
    };
    // The CA is trusted the way an operator's would be: the system's
    // certificate store, here the file `SSL_CERT_FILE` names.
    let a = node_on(
        dir.path(),
        "a",
        &store("a"),
        &[("SLUICE_REDIS_PASSWORD", "s3cret"), ("SSL_CERT_FILE", &ca)],
        &smsc,
    );
    texts_twenty(&a, &smsc, "tls");

    let said = refused_start(
        &dir.path().join("b"),
        &store("b"),
        &[("SLUICE_REDIS_PASSWORD", "wrong"), ("SSL_CERT_FILE", &ca)],
    );
    assert!(said.contains("store.url"), "{said}");
    end.reached();
}

#[test]
fn a_node_whose_redis_cannot_be_reached_does_not_start_and_says_so() {
    let end = must_reach_end();
    let dir = tempfile::tempdir().unwrap();
    // A port nothing listens on.
    let url = format!("redis://127.0.0.1:{}/0", free_port());
    let store = format!("[store]\nengine = \"redis\"\nurl = \"{url}\"\n");
    let said = refused_start(dir.path(), &store, &[]);
    assert!(
        said.contains(&format!("cannot reach Redis at store.url `{url}`")),
        "{said}"
    );
    end.reached();
}

/// Runs `sluice serve` with `[store]` section `store` and environment
/// `envs`, its files in `dir`, and answers what it said on stderr once it
/// stopped; fails the test if it exited zero or still runs after 20 s.
fn refused_start(dir: &Path, store: &str, envs: &[(&str, &str)]) -> String {
    std::fs::create_dir_all(dir).unwrap();
    let config = dir.join("sluice.toml");
    std::fs::write(
        &config,
        format!("[listen]\napi = \"127.0.0.1:0\"\n\n{store}"),
    )
    .unwrap();
    let mut run = std::process::Command::new(sluice_e2e::sluice_bin())
        .args(["serve", "--config"])
        .arg(&config)
        .arg("--data")
        .arg(dir.join("data"))
        .envs(envs.iter().copied())
        .stdout(std::process::Stdio::null())
        .stderr(std::process::Stdio::piped())
        .spawn()
        .unwrap();
    let started = std::time::Instant::now();
    let status = loop {
        if let Some(status) = run.try_wait().unwrap() {
            break Some(status);
        }
        if started.elapsed() > Duration::from_secs(20) {
            let _ = run.kill();
            let _ = run.wait();
            break None;
        }
        std::thread::sleep(Duration::from_millis(50));
    };
    let mut said = String::new();
    std::io::Read::read_to_string(&mut run.stderr.take().unwrap(), &mut said).unwrap();
    assert!(
        status.is_some_and(|s| !s.success()),
        "it started ({status:?}): {said}"
    );
    said
}

/// `sluice check-config` on `config`: whether it passed, and what it said
/// on stderr.
fn check_config(config: &std::path::Path) -> (bool, String) {
    let out = std::process::Command::new(sluice_e2e::sluice_bin())
        .arg("check-config")
        .arg(config)
        .output()
        .unwrap();
    (
        out.status.success(),
        String::from_utf8_lossy(&out.stderr).into_owned(),
    )
}

#[test]
fn check_config_warns_when_redis_may_lose_an_acknowledged_write() {
    let end = must_reach_end();
    let dir = tempfile::tempdir().unwrap();
    let redis = RedisServer::start(&end, &dir.path().join("redis"));
    let config = dir.path().join("sluice.toml");
    std::fs::write(&config, redis.store_config("check")).unwrap();
    let check = || {
        let (passed, said) = check_config(&config);
        assert!(passed, "{said}");
        said
    };
    // The test's server fsyncs every write before it answers.
    assert!(!check().contains("warning: store.url"), "{}", check());
    assert_eq!(
        redis.cli(&end, &["KEYS", "*"]),
        json!([]),
        "check-config writes nothing"
    );
    redis.cli(&end, &["CONFIG", "SET", "appendfsync", "everysec"]);
    let said = check();
    assert!(
        said.contains("warning: store.url: the Redis at")
            && said.contains("appendonly yes, appendfsync everysec"),
        "{said}"
    );
    end.reached();
}

/// What `serve` would stop at, `check-config` fails on: a store made with
/// one shard, asked for two.
#[test]
fn check_config_fails_where_serve_would_on_the_store_it_finds() {
    let end = must_reach_end();
    let dir = tempfile::tempdir().unwrap();
    let redis = RedisServer::start(&end, &dir.path().join("redis"));
    // A node makes the store, with one shard.
    let node_dir = dir.path().join("a");
    std::fs::create_dir(&node_dir).unwrap();
    drop(Daemon::start(&node_dir, &redis.store_config("a")));
    let config = dir.path().join("sluice.toml");
    std::fs::write(&config, redis.store_config("check") + "shards = 2\n").unwrap();
    let (passed, said) = check_config(&config);
    assert!(
        !passed
            && said.contains("store.shards: the store at")
            && said.contains("made with 1 shards"),
        "{said}"
    );
    end.reached();
}

#[test]
fn a_number_blacklisted_on_one_node_gets_no_text_from_the_other() {
    let end = must_reach_end();
    let dir = tempfile::tempdir().unwrap();
    let (redis, smsc) = redis_and_smsc(&end, dir.path());
    let a = node(dir.path(), "a", &redis, &smsc);
    let b = node(dir.path(), "b", &redis, &smsc);
    sms_campaign(&a, "c");
    upload(&a, "c", 0..10, "all");
    let r = b.put_json("/v1/blacklist/sms", &json!([phone(3), "c7"]));
    assert_eq!(r.status, 200, "{}", r.text());
    // Visible to every node within a second.
    std::thread::sleep(Duration::from_secs(1));
    a.start_campaign("c");
    wait_until("the campaign finished", Duration::from_secs(30), || {
        a.get("/v1/campaigns/c").json()["state"] == "finished"
    });
    let texts = per_number(&smsc.submits());
    assert_eq!(texts.len(), 8, "{texts:?}");
    assert!(!texts.contains_key(&phone(3)) && !texts.contains_key(&phone(7)));
    assert_eq!(a.get("/v1/campaigns/c").json()["counts"]["suppressed"], 2);
    end.reached();
}

#[test]
fn either_node_reads_the_same_feed_and_one_node_posts_each_webhook_batch() {
    const N: usize = 200;
    let end = must_reach_end();
    let dir = tempfile::tempdir().unwrap();
    let (redis, smsc) = redis_and_smsc(&end, dir.path());
    let hook = WebhookReceiver::start(&end, dir.path(), 0);
    let sections = |node: &str| {
        format!(
            "{}\n[[webhooks]]\nurl = \"http://127.0.0.1:{}/sluice\"\nsecret_env = \"HOOK_SECRET\"\nbatch = 50\n",
            redis.store_config(node),
            hook.port
        )
    };
    let envs = [("HOOK_SECRET", "s3cret")];
    let a = node_on(dir.path(), "a", &sections("a"), &envs, &smsc);
    let b = node_on(dir.path(), "b", &sections("b"), &envs, &smsc);
    sms_campaign(&a, "c");
    upload(&a, "c", 0..N, "all");
    b.start_campaign("c");
    wait_until("the campaign finished", Duration::from_secs(30), || {
        a.get("/v1/campaigns/c").json()["state"] == "finished"
    });
    // Accepted, submitted and delivered for each (a receipt may still be
    // on its way once the campaign has finished); the feed's cursors are
    // 1, 2, 3, ... from either node.
    wait_until("every receipt recorded", Duration::from_secs(30), || {
        a.all_events().len() >= 3 * N
    });
    let facts = one_feed(&a, &b);
    assert_eq!(facts.len(), 3 * N);
    let cursors: Vec<u64> = (1..=3 * N as u64).collect();

    let posted = || -> Vec<u64> { hook.posts().iter().flat_map(Post::cursors).collect() };
    wait_until("every fact posted", Duration::from_secs(30), || {
        posted().contains(&(3 * N as u64))
    });
    assert_eq!(posted(), cursors, "each fact posted once, in order");
    end.reached();
}

#[test]
fn a_second_node_of_a_running_nodes_name_does_not_start() {
    let end = must_reach_end();
    let dir = tempfile::tempdir().unwrap();
    let (redis, smsc) = redis_and_smsc(&end, dir.path());
    let _a = node(dir.path(), "a", &redis, &smsc);
    let said = refused_start(&dir.path().join("a-again"), &redis.store_config("a"), &[]);
    assert!(said.contains("store.node `a`"), "{said}");
    end.reached();
}

/// With `store.replicas = 1` a node answers a write only once the Redis's
/// replica has it: while the replica hangs, an upload answers 503,
/// `/readyz` names the replicas and sending pauses; all goes on by itself
/// once the replica answers, and every number gets its text.
#[test]
fn a_hung_replica_pauses_a_node_that_waits_for_it_and_it_resumes_by_itself() {
    const N: usize = 2_000;
    let end = must_reach_end();
    let dir = tempfile::tempdir().unwrap();
    let (redis, smsc) = redis_and_smsc(&end, dir.path());
    let replica = redis.start_replica(&end, &dir.path().join("replica"));
    let store = format!("{}replicas = 1\n", redis.store_config("a"));
    let a = node_on(dir.path(), "a", &store, &[], &smsc);
    set_rate(&a, 200.0);
    sms_campaign(&a, "spring");
    upload(&a, "spring", 0..N, "retail");
    a.start_campaign("spring");
    smsc.wait_for_submits(200, Duration::from_secs(30));

    let hung = std::thread::spawn(move || {
        replica.pause(Duration::from_secs(10));
        replica
    });
    wait_until(
        "/readyz 503 naming the replicas",
        Duration::from_secs(8),
        || {
            let r = a.get("/readyz");
            r.status == 503 && r.text().contains("replicas")
        },
    );
    let writable = |a: &Daemon| {
        let metrics = a.get("/metrics").text();
        (metrics.lines())
            .find_map(|l| l.strip_prefix("sluice_store_writable "))
            .map(str::to_owned)
    };
    assert_eq!(
        writable(&a).as_deref(),
        Some("0"),
        "the store refuses writes"
    );
    let refused = a.post(
        "/v1/campaigns/spring/participants",
        "application/x-ndjson",
        b"{\"customer\": \"late\", \"address\": \"+4915199999999\"}\n",
    );
    assert_eq!(refused.status, 503, "{}", refused.text());
    assert!(
        refused.json()["detail"]
            .as_str()
            .is_some_and(|d| d.contains("replicas")),
        "{}",
        refused.text()
    );
    // Sending has paused: at most what was in flight still goes out.
    let paused_at = smsc.submits().len();
    std::thread::sleep(Duration::from_secs(2));
    let during = smsc.submits().len() - paused_at;
    assert!(
        during <= 4 * WINDOW,
        "{during} texts sent, unacknowledged by the replica"
    );

    let _replica = hung.join().unwrap();
    wait_until("/readyz 200 again", Duration::from_secs(15), || {
        a.get("/readyz").status == 200
    });
    assert_eq!(writable(&a).as_deref(), Some("1"), "the store takes writes");
    wait_until("the campaign finished", Duration::from_secs(60), || {
        a.get("/v1/campaigns/spring").json()["state"] == "finished"
    });
    assert_eq!(per_number(&smsc.submits()).len(), N, "every number texted");
    end.reached();
}

/// A Redis that asks each client for a certificate (`tls-auth-clients
/// yes`, its default with TLS): a node with one (`store.tls_cert_file`,
/// `tls_key_file`) and the private CA in `store.tls_ca_file`, not in the
/// environment, reaches it and sends; one without is refused at start.
#[test]
fn a_node_shows_its_client_certificate_to_a_redis_that_asks_for_one() {
    let end = must_reach_end();
    let dir = tempfile::tempdir().unwrap();
    let redis = RedisServer::start_tls_asking_clients(&end, &dir.path().join("redis"));
    let smsc = NpmSmsc::start(&end);
    let tls = redis.tls().unwrap();
    let (cert, key) = tls.client.clone().unwrap();
    let store = |node: &str, client: &str| {
        format!(
            "[store]\nengine = \"redis\"\nurl = \"{}\"\nnode = \"{node}\"\ntls_ca_file = \"{}\"\n{client}",
            redis.tls_url(),
            tls.ca.display()
        )
    };
    let client = format!(
        "tls_cert_file = \"{}\"\ntls_key_file = \"{}\"\n",
        cert.display(),
        key.display()
    );
    let a = node_on(dir.path(), "a", &store("a", &client), &[], &smsc);
    texts_twenty(&a, &smsc, "mtls");

    let said = refused_start(&dir.path().join("b"), &store("b", ""), &[]);
    assert!(said.contains("cannot reach Redis at store.url"), "{said}");
    end.reached();
}

/// The `[store]` of node `node` on `cluster`, its campaigns in `shards`
/// shards.
fn cluster_store(cluster: &processes::RedisCluster, node: &str, shards: u16) -> String {
    let urls: Vec<String> = cluster.seeds().iter().map(|u| format!("\"{u}\"")).collect();
    format!(
        "[store]\nengine = \"redis\"\nurls = [{}]\nnode = \"{node}\"\nshards = {shards}\n",
        urls.join(", ")
    )
}

/// Two nodes on a Redis Cluster of three masters with a replica each
/// (`store.urls`) send a campaign; the master of the engine's keys is
/// killed midway, a replica takes over, and the nodes follow it by
/// themselves: the campaign finishes, every number gets its text, and
/// duplicates stay within what the nodes had in flight.
#[test]
fn nodes_on_a_cluster_finish_a_campaign_when_its_master_fails_over() {
    const N: usize = 2_000;
    let end = must_reach_end();
    let dir = tempfile::tempdir().unwrap();
    let mut cluster = processes::RedisCluster::start_with(1);
    let smsc = NpmSmsc::start(&end);
    let store = |node| cluster_store(&cluster, node, 1);
    let a = node_on(dir.path(), "a", &store("a"), &[], &smsc);
    let b = node_on(dir.path(), "b", &store("b"), &[], &smsc);
    set_rate(&a, 200.0);
    sms_campaign(&a, "spring");
    upload(&a, "spring", 0..N, "retail");
    // Node b takes the limits up within a second.
    std::thread::sleep(Duration::from_millis(1_500));
    a.start_campaign("spring");
    smsc.wait_for_submits(200, Duration::from_secs(30));

    let master = cluster.keys_master();
    cluster.kill(master);
    let sent_before = smsc.submits().len();
    assert!(sent_before < N / 2, "killed midway: {sent_before} sent");
    let taken_over = cluster.await_failover(Duration::from_secs(30));
    eprintln!(
        "master {master} killed after {sent_before} texts, {taken_over} took over after {}",
        smsc.submits().len()
    );

    wait_until("the campaign finished", Duration::from_secs(90), || {
        b.get("/v1/campaigns/spring").json()["state"] == "finished"
    });
    texted_each_once_but_in_flight(&smsc, N, [&a, &b]);
    end.reached();
}

/// Two nodes on a Redis Cluster of three masters with the campaigns in
/// three shards (`store.shards`), one shard on each master: campaigns in
/// every shard, started on either node, are each sent whole with every
/// receipt matched, and both nodes read the same one feed.
#[test]
fn nodes_on_a_cluster_spread_campaigns_over_its_masters_and_read_one_feed() {
    const N: usize = 100;
    let end = must_reach_end();
    let dir = tempfile::tempdir().unwrap();
    let cluster = processes::RedisCluster::start();
    let smsc = NpmSmsc::start(&end);
    let store = |node| cluster_store(&cluster, node, 3);
    let a = node_on(dir.path(), "a", &store("a"), &[], &smsc);
    let b = node_on(dir.path(), "b", &store("b"), &[], &smsc);
    let ids = ["one", "two", "three"];
    for (i, id) in ids.iter().enumerate() {
        sms_campaign(&a, id);
        upload(&b, id, i * N..(i + 1) * N, "all");
    }
    for (id, node) in ids.iter().zip([&a, &b, &a]) {
        node.start_campaign(id);
    }
    wait_until("every campaign finished", Duration::from_secs(60), || {
        ids.iter()
            .all(|id| b.get(&format!("/v1/campaigns/{id}")).json()["state"] == "finished")
    });
    texted_each_once_but_in_flight(&smsc, 3 * N, [&a, &b]);
    for (port, keys) in cluster.keys_by_master() {
        assert!(
            keys.iter().any(|k| k.starts_with("sluice:{s")),
            "master {port} holds a shard: {keys:?}"
        );
    }
    // Accepted, submitted and delivered (its receipt matched) for each;
    // a receipt may come after its campaign finished.
    wait_until("every receipt in the feed", Duration::from_secs(30), || {
        a.all_events().len() == 9 * N
    });
    let facts = one_feed(&a, &b);
    assert_eq!(facts.len(), 9 * N);
    for id in ids {
        let delivered = facts
            .iter()
            .filter(|f| f["campaign"] == id && f["type"] == "delivered")
            .count();
        assert_eq!(delivered, N, "every receipt of `{id}` matched");
    }
    end.reached();
}

/// Limits set through one node hold on the other for a campaign started
/// right after, before that node's once-a-second look at the limits: it
/// looks again as it sees a campaign start.
#[test]
fn limits_set_on_one_node_hold_on_the_other_for_a_campaign_started_at_once() {
    const N: usize = 1_000;
    const RATE: usize = 200;
    let end = must_reach_end();
    let dir = tempfile::tempdir().unwrap();
    let (_redis, smsc, a, _b) = two_nodes_and_a_campaign(&end, dir.path(), N, RATE as f64);
    a.start_campaign("spring");
    wait_until("every number texted", Duration::from_secs(30), || {
        per_number(&smsc.submits()).len() == N
    });

    let per_second = rate_held_after_the_first_second(&smsc.submits(), RATE);
    let most = RATE + RATE / 20;
    assert!(
        per_second[&0] <= 2 * most,
        "the first second, both nodes: {per_second:?}"
    );
    end.reached();
}

/// A rate lowered through one node holds on the other from its next ask
/// for bandwidth (a fiftieth of a second), not from its next
/// once-a-second look at the limits.
#[test]
fn a_rate_lowered_through_one_node_holds_on_the_other_at_once() {
    const N: usize = 2_000;
    const FAST: usize = 1_000;
    const SLOW: usize = 100;
    let end = must_reach_end();
    let dir = tempfile::tempdir().unwrap();
    let (_redis, smsc, a, b) = two_nodes_and_a_campaign(&end, dir.path(), N, FAST as f64);
    a.start_campaign("spring");
    wait_until("a fifth texted", Duration::from_secs(30), || {
        smsc.submits().len() >= N / 5
    });
    set_rate(&a, SLOW as f64);
    let lowered = std::time::SystemTime::now()
        .duration_since(std::time::UNIX_EPOCH)
        .unwrap()
        .as_millis() as u64;
    std::thread::sleep(Duration::from_millis(1_300));
    set_rate(&a, FAST as f64);
    wait_until("every number texted", Duration::from_secs(30), || {
        per_number(&smsc.submits()).len() == N
    });

    // From a tenth of a second on (what either node had taken slots for
    // went out by then), the two together keep to the new rate.
    let second = lowered + 100..lowered + 1_100;
    let texted = smsc
        .submits()
        .iter()
        .filter(|s| second.contains(&s.at_ms))
        .count();
    assert!(
        texted <= SLOW + SLOW / 20,
        "{texted} texts in the second after the rate was lowered to {SLOW} a second"
    );
    assert!(texted >= SLOW / 2, "only {texted} texts in that second");
    texted_each_once_but_in_flight(&smsc, N, [&a, &b]);
    end.reached();
}

/// Limits a node cannot read (as a newer node might store them, with a
/// field this one does not know) leave it sending on those it has, at its
/// next ask as at its once-a-second look. Before, a change it could not
/// read stopped its sends.
#[test]
fn limits_a_node_cannot_read_leave_it_sending_on_those_it_has() {
    const N: usize = 600;
    const RATE: usize = 400;
    let end = must_reach_end();
    let dir = tempfile::tempdir().unwrap();
    let (redis, smsc, a, b) = two_nodes_and_a_campaign(&end, dir.path(), N, RATE as f64);
    a.start_campaign("spring");
    wait_until("a sixth texted", Duration::from_secs(30), || {
        smsc.submits().len() >= N / 6
    });
    let unreadable = json!({"rate_per_sec": 10, "tz": "UTC", "from_a_newer_node": 1}).to_string();
    redis.cli(
        &end,
        &["HSET", "sluice:{g}:meta", "limits:sms", &unreadable],
    );
    redis.cli(&end, &["INCR", "sluice:{g}:limits:sms"]);
    wait_until("every number texted", Duration::from_secs(30), || {
        per_number(&smsc.submits()).len() == N
    });
    rate_held_after_the_first_second(&smsc.submits(), RATE);
    texted_each_once_but_in_flight(&smsc, N, [&a, &b]);
    end.reached();
}
