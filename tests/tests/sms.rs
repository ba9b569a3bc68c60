//! SMS campaigns end to end: the real daemon against the project's fake SMSC
//! (real SMPP 3.4 over loopback) and against the npm `smpp` server.

use std::time::Duration;

use serde_json::json;
use sluice_e2e::{
    Daemon,
    smsc::{FakeSmsc, FinalState, SmscBehaviour},
};

fn smsc_config(smsc: &FakeSmsc, extra: &str) -> String {
    format!(
        "[[sms.smsc]]\nhost = \"127.0.0.1\"\nport = {}\nsystem_id = \"sluice\"\npassword_env = \"SMSC_PASSWORD\"\nreconnect_min_ms = 50\nreconnect_max_secs = 1\nthrottle_pause_ms = 50\n{extra}",
        smsc.port()
    )
}

fn start(dir: &std::path::Path, smsc: &FakeSmsc, extra: &str) -> Daemon {
    Daemon::start_with_env(
        dir,
        &smsc_config(smsc, extra),
        &[("SMSC_PASSWORD", "secret")],
    )
}

fn sms_campaign(daemon: &Daemon, id: &str, text: &str, numbers: &[&str]) {
    let decl = json!({"channel": "sms", "name": id, "expected_participants": numbers.len(),
        "content": {"sms": {"from": "Sluice", "text": text}}});
    let r = daemon.put_json(&format!("/v1/campaigns/{id}"), &decl);
    assert_eq!(r.status, 200, "{}", r.text());
    let body: String = numbers
        .iter()
        .enumerate()
        .map(|(i, n)| {
            format!(
                "{{\"customer\":\"c{i}\",\"address\":\"{n}\",\"fields\":{{\"name\":\"N{i}\"}}}}\n"
            )
        })
        .collect();
    let r = daemon.post(
        &format!("/v1/campaigns/{id}/participants"),
        "application/x-ndjson",
        body.as_bytes(),
    );
    assert_eq!(r.json()["accepted"], numbers.len(), "{}", r.text());
    let r = daemon.post(
        &format!("/v1/campaigns/{id}/start"),
        "application/json",
        b"",
    );
    assert_eq!(r.status, 200, "{}", r.text());
}

fn facts(daemon: &Daemon, kind: &str) -> Vec<serde_json::Value> {
    daemon
        .all_events()
        .into_iter()
        .filter(|e| e["type"] == kind)
        .collect()
}

fn wait_facts(daemon: &Daemon, kind: &str, count: usize) -> Vec<serde_json::Value> {
    let start = std::time::Instant::now();
    loop {
        let f = facts(daemon, kind);
        if f.len() >= count {
            return f;
        }
        assert!(
            start.elapsed() < Duration::from_secs(30),
            "{} `{kind}` facts of {count}: {:?}",
            f.len(),
            daemon.all_events()
        );
        std::thread::sleep(Duration::from_millis(100));
    }
}

#[test]
fn every_message_reaches_the_smsc_and_every_receipt_becomes_a_fact() {
    let dir = tempfile::tempdir().unwrap();
    let smsc = FakeSmsc::start(
        SmscBehaviour::default()
            .account("sluice", "secret")
            .final_state("4915100000001", FinalState::Undeliverable),
    );
    let daemon = start(dir.path(), &smsc, "");
    sms_campaign(
        &daemon,
        "s1",
        "Hello {{name}}, your offer is ready.",
        &["+4915100000000", "+4915100000001", "+4915100000002"],
    );
    let received = smsc.wait_for(3, Duration::from_secs(20));
    let mut bodies: Vec<(String, Vec<u8>)> = received
        .iter()
        .map(|r| (r.destination_addr.clone(), r.short_message.clone()))
        .collect();
    bodies.sort();
    assert_eq!(bodies[0].1, b"Hello N0, your offer is ready.");
    assert_eq!(bodies[1].0, "4915100000001");
    assert!(
        received
            .iter()
            .all(|r| r.data_coding == 0 && r.dest_ton == 1)
    );
    let delivered = wait_facts(&daemon, "delivered", 2);
    let failed = wait_facts(&daemon, "failed", 1);
    assert_eq!(delivered.len(), 2);
    assert_eq!(failed[0]["customer"], "c1");
    assert!(
        failed[0]["reason"]
            .as_str()
            .unwrap_or_default()
            .contains("UNDELIV"),
        "{failed:?}"
    );
}
