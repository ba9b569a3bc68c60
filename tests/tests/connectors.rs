//! An operator stops and starts one SMTP relay: stopped, it takes no
//! message and mail waits for it (not an attempt, nothing fails); started,
//! everything goes.

#![allow(clippy::unwrap_used)]

use std::time::Duration;

use sluice_e2e::{Daemon, SmtpPeer, must_reach_end, relay_config, wait_until};

const T: Duration = Duration::from_secs(30);

#[test]
fn a_stopped_relay_takes_no_mail_until_it_is_started() {
    let end = must_reach_end();
    let dir = tempfile::tempdir().unwrap();
    let peer = SmtpPeer::start(&end, dir.path());
    let daemon = Daemon::start(dir.path(), &relay_config(&peer));
    wait_until("/readyz 200", T, || daemon.get("/readyz").status == 200);
    let name = daemon.get("/v1/channels").json()["channels"][0]["connectors"][0]["name"]
        .as_str()
        .unwrap()
        .to_owned();
    let stopped = daemon.post(
        &format!("/v1/channels/email/connectors/{name}/stop"),
        "application/json",
        b"",
    );
    assert_eq!(stopped.status, 200, "{}", stopped.text());
    assert_eq!(stopped.json()["state"], "stopped");
    assert_eq!(daemon.get("/readyz").status, 503);

    daemon.email_campaign("held", None, 5);
    daemon.start_campaign("held");
    std::thread::sleep(Duration::from_secs(1));
    assert_eq!(peer.received().len(), 0, "nothing sent while stopped");
    let held = daemon.get("/v1/campaigns/held").json();
    assert_eq!(held["counts"]["pending"], 5, "{held}");
    assert_eq!(held["counts"]["failed"], 0, "{held}");

    let started = daemon.post(
        &format!("/v1/channels/email/connectors/{name}/start"),
        "application/json",
        b"",
    );
    assert_eq!(started.status, 200, "{}", started.text());
    let done = daemon.wait_for_campaign("held", T, |v| v["state"] == "finished");
    assert_eq!(done["counts"]["submitted"], 5, "{done}");
    assert_eq!(peer.received().len(), 5);
    end.reached();
}
