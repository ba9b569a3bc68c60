//! An operator stops and starts one SMTP relay: stopped, it takes no
//! message and mail waits for it (not an attempt, nothing fails, no limit
//! counted); started, everything goes.

#![allow(clippy::unwrap_used)]

use std::time::Duration;

use serde_json::json;
use sluice_e2e::{
    DAY, Daemon, SmtpPeer, clear_of_boundary, must_reach_end, relay_config, wait_until,
};

const T: Duration = Duration::from_secs(30);

/// A daemon with one e-mail relay, `peer`, once it is ready, and the
/// relay's name.
fn daemon_with_a_relay(dir: &std::path::Path, peer: &SmtpPeer) -> (Daemon, String) {
    let daemon = Daemon::start(dir, &relay_config(peer));
    wait_until("/readyz 200", T, || daemon.get("/readyz").status == 200);
    let name = daemon.get("/v1/channels").json()["channels"][0]["connectors"][0]["name"]
        .as_str()
        .unwrap()
        .to_owned();
    (daemon, name)
}

/// Stops or starts (`action`) the relay `name`; its state after.
fn switch(daemon: &Daemon, name: &str, action: &str) -> String {
    let r = daemon.post(
        &format!("/v1/channels/email/connectors/{name}/{action}"),
        "application/json",
        b"",
    );
    assert_eq!(r.status, 200, "{}", r.text());
    r.json()["state"].as_str().unwrap().to_owned()
}

#[test]
fn a_stopped_relay_takes_no_mail_until_it_is_started() {
    let end = must_reach_end();
    let dir = tempfile::tempdir().unwrap();
    let peer = SmtpPeer::start(&end, dir.path());
    let (daemon, name) = daemon_with_a_relay(dir.path(), &peer);
    assert_eq!(switch(&daemon, &name, "stop"), "stopped");
    assert_eq!(daemon.get("/readyz").status, 503);

    daemon.email_campaign("held", None, 5);
    daemon.start_campaign("held");
    std::thread::sleep(Duration::from_secs(1));
    assert_eq!(peer.received().len(), 0, "nothing sent while stopped");
    let held = daemon.get("/v1/campaigns/held").json();
    assert_eq!(held["counts"]["pending"], 5, "{held}");
    assert_eq!(held["counts"]["failed"], 0, "{held}");

    assert_ne!(switch(&daemon, &name, "start"), "stopped");
    let done = daemon.wait_for_campaign("held", T, |v| v["state"] == "finished");
    assert_eq!(done["counts"]["submitted"], 5, "{done}");
    assert_eq!(peer.received().len(), 5);
    end.reached();
}

/// Mail that waits for a stopped relay is tried again every few seconds;
/// no try counts against the customers' quota or the channel's cap, so
/// once the relay starts every message goes, none suppressed or deferred.
#[test]
fn mail_waiting_for_a_relay_takes_no_quota_nor_cap() {
    let end = must_reach_end();
    let dir = tempfile::tempdir().unwrap();
    let peer = SmtpPeer::start(&end, dir.path());
    let (daemon, name) = daemon_with_a_relay(dir.path(), &peer);
    // The cap is a day's: a new day would empty it, rightly.
    clear_of_boundary(DAY, Duration::from_secs(30));
    let limits = json!({"rate_per_sec": 100, "tz": "UTC", "caps": [{"max": 5}],
        "quotas": {"*": {"max": 1, "per": "P7D"}}});
    let r = daemon.put_json("/v1/channels/email/limits", &limits);
    assert_eq!(r.status, 200, "{}", r.text());
    assert_eq!(switch(&daemon, &name, "stop"), "stopped");

    daemon.email_campaign("held", None, 5);
    daemon.start_campaign("held");
    // Long enough for every message to be tried twice (every 5 s).
    std::thread::sleep(Duration::from_secs(7));
    let held = daemon.get("/v1/campaigns/held").json();
    assert_eq!(held["counts"]["pending"], 5, "{held}");

    assert_ne!(switch(&daemon, &name, "start"), "stopped");
    let done = daemon.wait_for_campaign("held", T, |v| v["state"] == "finished");
    assert_eq!(done["counts"]["submitted"], 5, "{done}");
    assert_eq!(done["counts"]["suppressed"], 0, "{done}");
    assert_eq!(peer.received().len(), 5);
    end.reached();
}
