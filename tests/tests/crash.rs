//! Crash safety: `kill -9` in the middle of a 20,000-participant campaign,
//! restart on the same data, and every participant is delivered at least
//! once, with duplicates no more than what was in flight (being sent, or
//! answered and not yet durable).

#![allow(clippy::unwrap_used)]

use std::{collections::HashMap, time::Duration};

use sluice_e2e::{Daemon, SmtpPeer, must_reach_end, relay_config};

const PARTICIPANTS: usize = 20_000;
const CONCURRENCY: usize = 32;

#[test]
fn kill_9_mid_campaign_loses_nothing() {
    let end = must_reach_end();
    let dir = tempfile::tempdir().unwrap();
    let peer = SmtpPeer::start(&end, dir.path());
    let config = format!(
        "[dispatch]\nconcurrency = {CONCURRENCY}\nclaim_batch = {CONCURRENCY}\n\n\
         [[email.relays]]\nhost = \"127.0.0.1\"\nport = {}\ntls = \"none\"\nconnections = 8\n",
        peer.port
    );
    let mut daemon = Daemon::start(dir.path(), &config);
    daemon.email_campaign("big", None, PARTICIPANTS);
    daemon.start_campaign("big");

    // Let a part of the campaign go out, then pull the plug.
    let start = std::time::Instant::now();
    while peer.received().len() < PARTICIPANTS / 5 {
        assert!(
            start.elapsed() < Duration::from_secs(120),
            "sending did not get going"
        );
        std::thread::sleep(Duration::from_millis(50));
    }
    daemon.kill9();
    let before_restart = peer.received().len();
    assert!(
        before_restart < PARTICIPANTS,
        "the kill came too late to test anything"
    );

    daemon.restart();
    let state = daemon.wait_for_campaign("big", Duration::from_secs(300), |v| {
        v["state"] == "finished"
    });
    assert_eq!(state["counts"]["submitted"], PARTICIPANTS, "{state}");

    let mut copies: HashMap<String, usize> = HashMap::new();
    for m in peer.received() {
        *copies.entry(m.rcpt_tos[0].clone()).or_default() += 1;
    }
    let missing: Vec<String> = (0..PARTICIPANTS)
        .map(|i| format!("u{i}@example.org"))
        .filter(|a| !copies.contains_key(a))
        .collect();
    assert!(
        missing.is_empty(),
        "{} participants never received their message: {:?}",
        missing.len(),
        &missing[..missing.len().min(5)]
    );
    let duplicates: usize = copies.values().map(|n| n - 1).sum();
    // In flight: being sent (CONCURRENCY), or answered and waiting for its
    // outcome to be durable (as many again: the dispatcher's bound, however
    // slow the disk).
    let bound = 2 * CONCURRENCY;
    eprintln!(
        "kill -9 after {before_restart} deliveries: {duplicates} duplicate(s), bound {bound}"
    );
    assert!(
        duplicates <= bound,
        "{duplicates} duplicates exceed what was in flight ({bound})"
    );

    let submitted = daemon
        .all_events()
        .iter()
        .filter(|e| e["type"] == "submitted")
        .count();
    assert!(
        submitted >= PARTICIPANTS,
        "every delivery is a fact: {submitted}"
    );
    end.reached();
}

#[test]
fn sigterm_finishes_in_flight_sends_and_exits_cleanly() {
    let end = must_reach_end();
    let dir = tempfile::tempdir().unwrap();
    let peer = SmtpPeer::start(&end, dir.path());
    let config = relay_config(&peer);
    let mut daemon = Daemon::start(dir.path(), &config);
    daemon.email_campaign("t", None, 2000);
    daemon.start_campaign("t");
    while peer.received().is_empty() {
        std::thread::sleep(Duration::from_millis(20));
    }
    assert!(daemon.terminate(), "SIGTERM exits 0");
    let sent = peer.received().len();
    daemon.restart();
    let state =
        daemon.wait_for_campaign("t", Duration::from_secs(120), |v| v["state"] == "finished");
    assert_eq!(state["counts"]["submitted"], 2000);
    let total = peer.received().len();
    assert_eq!(
        total, 2000,
        "a graceful stop records every send it made: {sent} before, {total} in all"
    );
    end.reached();
}
