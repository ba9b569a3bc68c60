//! `/readyz` says why the gateway cannot send, and the log names the
//! upstream and its address: an SMTP relay nobody listens on, until it does.

#![allow(clippy::unwrap_used)]

use std::time::{Duration, Instant};

use sluice_e2e::{Daemon, SmtpPeer, must_reach_end};

fn wait_until(what: &str, done: impl Fn() -> bool) {
    let start = Instant::now();
    while !done() {
        assert!(start.elapsed() < Duration::from_secs(30), "{what}");
        std::thread::sleep(Duration::from_millis(100));
    }
}

#[test]
fn an_unreachable_relay_is_named_by_readyz_and_the_log_until_it_answers() {
    let end = must_reach_end();
    let dir = tempfile::tempdir().unwrap();
    let port = std::net::TcpListener::bind("127.0.0.1:0")
        .unwrap()
        .local_addr()
        .unwrap()
        .port();
    let daemon = Daemon::start(
        dir.path(),
        &format!("[[email.relays]]\nname = \"main\"\nhost = \"127.0.0.1\"\nport = {port}\n"),
    );
    let upstream = format!("SMTP relay main (127.0.0.1:{port})");
    wait_until("/readyz 503", || daemon.get("/readyz").status == 503);
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
    wait_until("the log names the relay", || {
        daemon.log().contains(&upstream)
    });

    let _relay = SmtpPeer::start_on(&end, dir.path(), port);
    wait_until("/readyz 200 once the relay answers", || {
        daemon.get("/readyz").status == 200
    });
    let ready = daemon.get("/readyz").json();
    assert_eq!(ready, serde_json::json!({"ready": true, "reasons": []}));
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
