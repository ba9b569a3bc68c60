//! Campaign lifecycle and delivery of facts: pause takes effect within a
//! second, a window's start is respected, and signed webhooks deliver every
//! fact, retrying until the endpoint answers 2xx, over https to an endpoint
//! whose certificate chains to the configured CA and to no other.

#![allow(clippy::unwrap_used)]

use std::time::{Duration, Instant};

use hmac::{Hmac, Mac};
use serde_json::json;
use sha2::Sha256;
use sluice_e2e::{
    Daemon, Post, SmtpPeer, WebhookReceiver, must_reach_end, relay_config, tls_proxy::TlsProxy,
};

#[test]
fn pause_stops_sending_within_a_second_and_resume_finishes() {
    let end = must_reach_end();
    let dir = tempfile::tempdir().unwrap();
    let peer = SmtpPeer::start(&end, dir.path());
    let config = format!(
        "[dispatch]\nconcurrency = 4\nclaim_batch = 4\n\n[[email.relays]]\nhost = \"127.0.0.1\"\nport = {}\nconnections = 2\n",
        peer.port
    );
    let daemon = Daemon::start(dir.path(), &config);
    daemon.email_campaign("p", None, 3000);
    daemon.start_campaign("p");
    while peer.received().len() < 20 {
        std::thread::sleep(Duration::from_millis(10));
    }
    let paused = daemon.post("/v1/campaigns/p/pause", "application/json", b"");
    assert_eq!(paused.status, 200);
    assert_eq!(paused.json()["state"], "paused");
    std::thread::sleep(Duration::from_secs(1));
    let settled = peer.received().len();
    std::thread::sleep(Duration::from_millis(1500));
    assert_eq!(
        peer.received().len(),
        settled,
        "nothing is sent a second after pause"
    );
    assert!(settled < 3000, "pause came before the end");
    assert_eq!(
        daemon
            .post("/v1/campaigns/p/pause", "application/json", b"")
            .status,
        409
    );
    assert_eq!(
        daemon
            .post("/v1/campaigns/p/resume", "application/json", b"")
            .status,
        200
    );
    let state =
        daemon.wait_for_campaign("p", Duration::from_secs(120), |v| v["state"] == "finished");
    assert_eq!(state["counts"]["submitted"], 3000);
    assert_eq!(
        daemon
            .post("/v1/campaigns/p/cancel", "application/json", b"")
            .status,
        409,
        "finished"
    );
    end.reached();
}

#[test]
fn nothing_is_sent_before_the_window_opens() {
    let end = must_reach_end();
    let dir = tempfile::tempdir().unwrap();
    let peer = SmtpPeer::start(&end, dir.path());
    let config = relay_config(&peer);
    let daemon = Daemon::start(dir.path(), &config);
    let opens = jiff::Timestamp::now() + jiff::SignedDuration::from_secs(2);
    daemon.email_campaign("w", Some(json!({"start": opens.to_string()})), 5);
    daemon.start_campaign("w");
    std::thread::sleep(Duration::from_millis(500));
    assert!(peer.received().is_empty(), "sent before the window opened");
    daemon.wait_for_campaign("w", Duration::from_secs(30), |v| v["state"] == "finished");
    assert_eq!(peer.received().len(), 5);
    for fact in daemon
        .all_events()
        .iter()
        .filter(|e| e["type"] == "submitted")
    {
        let at: jiff::Timestamp = fact["at"].as_str().unwrap().parse().unwrap();
        assert!(at >= opens, "submitted at {at}, window opens at {opens}");
    }
    end.reached();
}

/// A start and a cancel sent at once, both decided on `declared`: a
/// cancel answered 200 is what the campaign ends as, never undone by the
/// start written after it.
#[test]
fn a_cancel_answered_is_never_undone_by_a_start_sent_with_it() {
    let end = must_reach_end();
    let dir = tempfile::tempdir().unwrap();
    let peer = SmtpPeer::start(&end, dir.path());
    let daemon = Daemon::start(dir.path(), &relay_config(&peer));
    let mut both = 0;
    for round in 0..30 {
        let id = format!("race{round}");
        daemon.email_campaign(&id, None, 1);
        let control = |action: &'static str| {
            let (daemon, id) = (&daemon, &id);
            move || {
                let path = format!("/v1/campaigns/{id}/{action}");
                daemon.post(&path, "application/json", b"").status
            }
        };
        let (start, cancel) = std::thread::scope(|s| {
            let start = s.spawn(control("start"));
            let cancel = s.spawn(control("cancel"));
            (start.join().unwrap(), cancel.join().unwrap())
        });
        let state = daemon.get(&format!("/v1/campaigns/{id}")).json()["state"].clone();
        if cancel == 200 {
            assert_eq!(state, "cancelled", "round {round}: start answered {start}");
        }
        both += usize::from(start == 200 && cancel == 200);
    }
    println!("{both} of 30 rounds: both answered 200 (the start applied first)");
    end.reached();
}

/// Polls `hook` until its posts after the first `skip` carry the fact with
/// cursor `last`; returns the posts and, in order, the cursors they carry.
fn wait_for_cursor(hook: &WebhookReceiver, skip: usize, last: u64) -> (Vec<Post>, Vec<u64>) {
    let started = Instant::now();
    loop {
        let posts = hook.posts();
        let cursors: Vec<u64> = posts.iter().skip(skip).flat_map(Post::cursors).collect();
        if cursors.contains(&last) {
            return (posts, cursors);
        }
        assert!(
            started.elapsed() < Duration::from_secs(30),
            "webhooks incomplete: {cursors:?}"
        );
        std::thread::sleep(Duration::from_millis(100));
    }
}

#[test]
fn webhooks_deliver_every_fact_signed_and_retry_until_accepted() {
    let end = must_reach_end();
    let dir = tempfile::tempdir().unwrap();
    let peer = SmtpPeer::start(&end, dir.path());
    let hook = WebhookReceiver::start(&end, dir.path(), 2);
    let config = format!(
        "[[email.relays]]\nhost = \"127.0.0.1\"\nport = {}\n\n[[webhooks]]\nurl = \"http://127.0.0.1:{}/sluice\"\nsecret_env = \"HOOK_SECRET\"\nbatch = 50\n",
        peer.port, hook.port
    );
    let daemon = Daemon::start_with_env(dir.path(), &config, &[("HOOK_SECRET", "s3cret")]);
    daemon.email_campaign("h", None, 30);
    daemon.start_campaign("h");
    daemon.wait_for_campaign("h", Duration::from_secs(60), |v| v["state"] == "finished");
    let facts = daemon.all_events();
    assert_eq!(facts.len(), 60, "30 accepted + 30 submitted");

    // The first two posts were answered 500.
    let (posts, cursors) = wait_for_cursor(&hook, 2, 60);
    // A refused batch is sent again from the same cursor (it may have grown
    // meanwhile, up to the batch size).
    let first_cursor = |post: &Post| {
        serde_json::from_str::<serde_json::Value>(&post.body).unwrap()["events"][0]["cursor"]
            .as_u64()
    };
    assert_eq!(first_cursor(&posts[0]), Some(1));
    assert_eq!(
        first_cursor(&posts[1]),
        Some(1),
        "resent after the first 500"
    );
    assert_eq!(
        first_cursor(&posts[2]),
        Some(1),
        "resent after the second 500"
    );
    let mut sorted = cursors.clone();
    sorted.dedup();
    assert_eq!(
        sorted,
        (1..=60).collect::<Vec<u64>>(),
        "every fact once, in order, after the retries"
    );
    for post in &posts {
        let mut mac = Hmac::<Sha256>::new_from_slice(b"s3cret").unwrap();
        mac.update(post.body.as_bytes());
        assert_eq!(
            post.signature,
            format!("sha256={}", hex::encode(mac.finalize().into_bytes()))
        );
    }
    end.reached();
}

#[test]
fn webhooks_over_https_trust_the_configured_ca_and_no_other() {
    let end = must_reach_end();
    let dir = tempfile::tempdir().unwrap();
    let peer = SmtpPeer::start(&end, dir.path());
    let hook = WebhookReceiver::start(&end, dir.path(), 0);
    let tls = TlsProxy::start(&end, dir.path(), hook.port);
    // The second endpoint is the same server, checked against the system's
    // trust store, which does not know the test CA: nothing may reach it.
    let config = format!(
        "{}\n[[webhooks]]\nurl = \"https://127.0.0.1:{port}/trusted\"\nsecret_env = \"HOOK_SECRET\"\nca_file = \"{ca}\"\n\n\
         [[webhooks]]\nurl = \"https://localhost:{port}/untrusted\"\nsecret_env = \"HOOK_SECRET\"\n",
        relay_config(&peer),
        port = tls.port,
        ca = tls.ca.display(),
    );
    let daemon = Daemon::start_with_env(dir.path(), &config, &[("HOOK_SECRET", "s3cret")]);
    daemon.email_campaign("tls", None, 3);
    daemon.start_campaign("tls");
    daemon.wait_for_campaign("tls", Duration::from_secs(60), |v| v["state"] == "finished");

    let (_, cursors) = wait_for_cursor(&hook, 0, 6);
    assert_eq!(
        cursors,
        (1..=6).collect::<Vec<u64>>(),
        "once each, from one endpoint"
    );
    // The untrusted endpoint fails its TLS handshake, which may come after
    // the trusted one has every fact: wait for it rather than race it.
    let failed_batches = || {
        daemon
            .get("/metrics")
            .text()
            .lines()
            .find(|l| {
                l.starts_with("sluice_webhook_batches_total") && l.contains("outcome=\"failed\"")
            })
            .and_then(|l| l.rsplit(' ').next()?.parse::<f64>().ok())
            .unwrap_or(0.0)
    };
    let deadline = std::time::Instant::now() + Duration::from_secs(10);
    let mut failed = failed_batches();
    while failed < 1.0 && std::time::Instant::now() < deadline {
        std::thread::sleep(Duration::from_millis(50));
        failed = failed_batches();
    }
    assert!(
        failed >= 1.0,
        "the untrusted endpoint's batches fail: {failed}"
    );
    end.reached();
}
