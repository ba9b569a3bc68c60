//! Campaigns sharing a channel take its bandwidth in priority order.

use super::*;

/// Declares, fills and starts an SMS campaign of `priority` to `numbers`.
fn campaign_with_priority(daemon: &Daemon, id: &str, priority: u8, numbers: &[String]) {
    let decl = json!({"channel": "sms", "name": id, "priority": priority,
        "content": {"sms": {"from": "Sluice", "text": "Hi"}}});
    daemon.declare(id, &decl);
    let lines: Vec<Value> = numbers
        .iter()
        .map(|n| json!({"customer": format!("{id}-{}", wire(n)), "address": n}))
        .collect();
    assert_eq!(daemon.upload(id, &lines)["accepted"], numbers.len());
    daemon.start_campaign(id);
}

#[test]
fn a_higher_priority_campaign_takes_the_bandwidth_first() {
    let dir = tempfile::tempdir().unwrap();
    let smsc = FakeSmsc::start(our_smsc());
    let daemon = start(dir.path(), &smsc, "");
    let limits = daemon.put_json(
        "/v1/channels/sms/limits",
        &json!({"rate_per_sec": 20, "burst": 1, "tz": "UTC"}),
    );
    assert_eq!(limits.status, 200, "{}", limits.text());
    let all = numbers(40);
    let (low, high) = all.split_at(20);
    // The low one starts first and still waits once the high one runs.
    campaign_with_priority(&daemon, "low", 1, low);
    campaign_with_priority(&daemon, "high", 9, high);
    smsc.wait_until("40 submits", T, |o| o.received.len() >= 40);
    let order: Vec<String> = smsc
        .received()
        .into_iter()
        .map(|r| r.destination_addr)
        .collect();
    let high: Vec<String> = high.iter().map(|n| wire(n)).collect();
    let last_high = order
        .iter()
        .rposition(|d| high.contains(d))
        .expect("high sent");
    let low_before = order[..last_high]
        .iter()
        .filter(|d| !high.contains(d))
        .count();
    assert!(
        low_before <= 3,
        "{low_before} low-priority texts went before the last high-priority one: {order:?}"
    );
}
