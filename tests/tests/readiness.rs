//! `/readyz` says why the gateway cannot send, and the log names the
//! upstream and its address: an SMTP relay nobody listens on, until it does.

#![allow(clippy::unwrap_used)]

use std::time::Duration;

use sluice_e2e::{Daemon, SmtpPeer, must_reach_end, wait_until};

/// Longest wait for anything in these tests.
const T: Duration = Duration::from_secs(30);

#[test]
fn an_unreachable_relay_is_named_by_readyz_and_the_log_until_it_answers() {
    let end = must_reach_end();
    let dir = tempfile::tempdir().unwrap();
    let port = sluice_e2e::free_port();
    let daemon = Daemon::start(
        dir.path(),
        &format!("[[email.relays]]\nname = \"main\"\nhost = \"127.0.0.1\"\nport = {port}\n"),
    );
    let upstream = format!("SMTP relay main (127.0.0.1:{port})");
    wait_until("/readyz 503", T, || daemon.get("/readyz").status == 503);
    let readyz = daemon.get("/readyz");
    assert_eq!(readyz.json()["ready"], false, "{}", readyz.text());
    let reasons = readyz.json()["reasons"].clone();
    let reasons = reasons.as_array().unwrap();
    assert_eq!(reasons.len(), 1, "{reasons:?}");
    assert!(
        reasons[0]
            .as_str()
            .unwrap()
            .starts_with(&format!("{upstream}: ")),
        "{reasons:?}"
    );
    wait_until("the log names the relay", T, || {
        daemon.log().contains(&upstream)
    });
    let relay_up = "sluice_relay_up{relay=\"main\"} ";
    let up = |daemon: &Daemon| {
        let metrics = daemon.get("/metrics").text();
        metrics
            .lines()
            .find_map(|l| l.strip_prefix(relay_up))
            .map(str::to_owned)
    };
    assert_eq!(
        up(&daemon).as_deref(),
        Some("0"),
        "the relay's health gauge"
    );
    let relay = |daemon: &Daemon| daemon.get("/v1/channels").json()["channels"][0].clone();
    let failing = relay(&daemon);
    assert_eq!(failing["channel"], "email", "{failing}");
    let health = &failing["connectors"][0];
    assert_eq!(
        (&health["kind"], &health["name"], &health["state"]),
        (
            &serde_json::json!("smtp_relay"),
            &serde_json::json!("main"),
            &serde_json::json!("failing")
        ),
        "{failing}"
    );
    assert_eq!(health["address"], format!("127.0.0.1:{port}"), "{failing}");
    assert!(health["last_error"].is_string(), "{failing}");
    assert!(health["last_error_at"].is_string(), "{failing}");

    let _relay = SmtpPeer::start_on(&end, dir.path(), port);
    wait_until("/readyz 200 once the relay answers", T, || {
        daemon.get("/readyz").status == 200
    });
    let ready = daemon.get("/readyz").json();
    assert_eq!(ready, serde_json::json!({"ready": true, "reasons": []}));
    assert_eq!(
        up(&daemon).as_deref(),
        Some("1"),
        "the relay's health gauge"
    );
    let reached = relay(&daemon);
    assert_eq!(reached["connectors"][0]["state"], "up", "{reached}");
    assert_eq!(
        reached["connectors"][0]["last_error"], health["last_error"],
        "the last error stays after recovery: {reached}"
    );
    assert!(
        daemon.log().contains("upstream reached again"),
        "{}",
        daemon.log()
    );
    end.reached();
}

#[test]
fn without_any_upstream_readyz_says_what_to_configure() {
    let dir = tempfile::tempdir().unwrap();
    let daemon = Daemon::start(dir.path(), "");
    let readyz = daemon.get("/readyz");
    assert_eq!(readyz.status, 503);
    assert_eq!(
        readyz.json()["reasons"],
        serde_json::json!(["no upstream configured: add [[email.relays]] or [[sms.smsc]]"])
    );
}

/// A disk below `store.min_free_bytes` (here: a reserve no disk has) stops
/// every write with 507 naming the cause, `/readyz` says why, sending
/// pauses; what was stored before is still served. (Writes resuming once
/// space is back: `store` crate, `a_full_disk_refuses_writes_until_space_is_back`.)
#[test]
fn a_full_disk_is_named_by_every_refused_write_and_by_readyz() {
    let dir = tempfile::tempdir().unwrap();
    let mut daemon = Daemon::start(dir.path(), "");
    daemon.declare(
        "before",
        &serde_json::json!({"channel": "email", "name": "b"}),
    );
    assert!(daemon.terminate(), "clean shutdown");

    daemon.set_env("SLUICE_STORE__MIN_FREE_BYTES", "1000000000000000000");
    daemon.restart();
    let refused = daemon.put_json(
        "/v1/campaigns/after",
        &serde_json::json!({"channel": "email", "name": "a"}),
    );
    assert_eq!(refused.status, 507, "{}", refused.text());
    let detail = refused.json()["detail"].as_str().unwrap().to_owned();
    assert!(detail.starts_with("disk full: "), "{detail}");
    assert!(detail.contains("store.min_free_bytes"), "{detail}");
    let readyz = daemon.get("/readyz");
    assert_eq!(readyz.status, 503);
    let reasons = readyz.json()["reasons"].clone();
    assert!(
        reasons
            .as_array()
            .unwrap()
            .iter()
            .any(|r| r.as_str().unwrap().starts_with("store: disk full: ")),
        "{reasons}"
    );
    assert_eq!(daemon.get("/v1/campaigns/before").status, 200);
    wait_until("the log says sending paused", T, || {
        daemon.log().contains("sending paused")
    });
    let metrics = daemon.get("/metrics").text();
    assert!(
        metrics.lines().any(|l| l == "sluice_store_writable 0"),
        "{metrics}"
    );
}
