//! SMS campaigns end to end: the real daemon against the project's fake SMSC
//! (real SMPP 3.4 over loopback) and against the npm `smpp` server.
//!
//! Every test waits on what the peer or the daemon reports (polling with a
//! deadline), never on a fixed sleep, and asserts exact outcomes: the octets
//! the SMSC received, the facts in the feed, the metrics.

#![allow(clippy::unwrap_used)] // a failed unwrap is a failed test

use std::{
    collections::{BTreeMap, BTreeSet},
    time::{Duration, Instant},
};

use serde_json::{Value, json};
use sluice_e2e::{
    Daemon, must_reach_end,
    npm_smsc::NpmSmsc,
    smsc::{
        BindMode, DeliverKind, FakeSmsc, FinalState, Garbage, MessageIds, ReceiptFormat,
        ReceivedSm, SmscBehaviour, status,
    },
    wait_until,
};

/// Longest wait for anything in these tests.
const T: Duration = Duration::from_secs(20);

/// The account the daemon binds with.
const SYSTEM_ID: &str = "sluice";
const PASSWORD: &str = "secret";

/// A fake SMSC that lets the daemon's account in.
fn our_smsc() -> SmscBehaviour {
    SmscBehaviour::default().account(SYSTEM_ID, PASSWORD)
}

fn smsc_config(port: u16, extra: &str) -> String {
    format!(
        "[[sms.smsc]]\nhost = \"127.0.0.1\"\nport = {port}\nsystem_id = \"{SYSTEM_ID}\"\npassword_env = \"SMSC_PASSWORD\"\nreconnect_min_ms = 50\nreconnect_max_secs = 1\nthrottle_pause_ms = 50\n{extra}"
    )
}

/// Starts the daemon with `[sms]` settings `sms` and `[[sms.smsc]]` settings
/// `extra` (our account), without waiting for the bind.
fn start_unready(dir: &std::path::Path, port: u16, sms: &str, extra: &str) -> Daemon {
    Daemon::start_with_env(
        dir,
        &format!("[sms]\n{sms}\n{}", smsc_config(port, extra)),
        &[("SMSC_PASSWORD", PASSWORD)],
    )
}

/// Starts the daemon and waits until its bind is up (`/readyz` 200), so that
/// no message of a campaign started next meets an unbound SMSC.
fn start(dir: &std::path::Path, smsc: &FakeSmsc, extra: &str) -> Daemon {
    start_with(dir, smsc, "", extra)
}

fn start_with(dir: &std::path::Path, smsc: &FakeSmsc, sms: &str, extra: &str) -> Daemon {
    let daemon = start_unready(dir, smsc.port(), sms, extra);
    wait_ready(&daemon);
    daemon
}

fn wait_ready(daemon: &Daemon) {
    wait_until("/readyz 200", T, || daemon.get("/readyz").status == 200);
}

fn number(i: usize) -> String {
    format!("+49151000000{i:02}")
}

fn numbers(n: usize) -> Vec<String> {
    (0..n).map(number).collect()
}

fn declare(daemon: &Daemon, id: &str, text: &str, participants: usize) {
    let decl = json!({"channel": "sms", "name": id, "expected_participants": participants,
        "content": {"sms": {"from": "Sluice", "text": text}}});
    daemon.declare(id, &decl);
}

/// A campaign to customers `c0..` at `numbers`, each with field `name` = `N{i}`.
fn sms_campaign(daemon: &Daemon, id: &str, text: &str, numbers: &[String]) {
    declare(daemon, id, text, numbers.len());
    let lines: Vec<Value> = numbers
        .iter()
        .enumerate()
        .map(|(i, n)| json!({"customer": format!("c{i}"), "address": n, "fields": {"name": format!("N{i}")}}))
        .collect();
    let r = daemon.upload(id, &lines);
    assert_eq!(r["accepted"], numbers.len(), "{r}");
    daemon.start_campaign(id);
}

fn facts(daemon: &Daemon, kind: &str) -> Vec<Value> {
    daemon
        .all_events()
        .into_iter()
        .filter(|e| e["type"] == kind)
        .collect()
}

fn wait_facts(daemon: &Daemon, kind: &str, count: usize) -> Vec<Value> {
    let start = Instant::now();
    loop {
        let f = facts(daemon, kind);
        if f.len() >= count {
            return f;
        }
        assert!(
            start.elapsed() < T,
            "{} `{kind}` facts of {count}: {:?}",
            f.len(),
            daemon.all_events()
        );
        std::thread::sleep(Duration::from_millis(50));
    }
}

/// The customers of `facts`, sorted, duplicates kept.
fn customers(facts: &[Value]) -> Vec<String> {
    let mut c: Vec<String> = facts
        .iter()
        .map(|f| f["customer"].as_str().unwrap().to_owned())
        .collect();
    c.sort();
    c
}

fn customer_ids(n: usize) -> Vec<String> {
    let mut c: Vec<String> = (0..n).map(|i| format!("c{i}")).collect();
    c.sort();
    c
}

/// The sum of a metric's samples whose labels contain `labels`.
fn metric(daemon: &Daemon, name: &str, labels: &str) -> f64 {
    daemon
        .get("/metrics")
        .text()
        .lines()
        .filter(|l| !l.starts_with('#'))
        .filter_map(|l| {
            let (key, value) = l.rsplit_once(' ')?;
            let (n, rest) = key.split_once('{').unwrap_or((key, ""));
            (n == name && rest.contains(labels))
                .then(|| value.parse::<f64>().ok())
                .flatten()
        })
        .sum()
}

/// Waits until every submit the fake accepted has had its receipt sent and
/// acknowledged: from then on, the facts the receipts make are in the feed.
fn wait_receipts_settled(smsc: &FakeSmsc) {
    smsc.wait_until("every receipt acknowledged", T, |o| {
        let accepted = o.received.iter().filter(|r| r.message_id.is_some()).count();
        let receipts: Vec<_> = o.receipts().collect();
        receipts.len() == accepted && receipts.iter().all(|d| d.response.is_some())
    });
}

/// How many submits to each destination the fake accepted (gave an id).
fn accepted_per_destination(received: &[ReceivedSm]) -> BTreeMap<String, usize> {
    let mut m = BTreeMap::new();
    for r in received.iter().filter(|r| r.message_id.is_some()) {
        *m.entry(r.destination_addr.clone()).or_insert(0) += 1;
    }
    m
}

/// `number(i)` as the SMSC sees it (no `+`).
fn wire(number: &str) -> String {
    number.trim_start_matches('+').to_owned()
}

mod priorities;
mod receipts_and_faults;
mod texts_and_sessions;
