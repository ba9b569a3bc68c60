//! Click-through end to end: an HTML+text campaign goes to a real SMTP
//! server, the links are taken out of the received message as a mail client
//! would (MIME-decoded by mail-parser), followed over HTTP, and the clicks,
//! opens and one-click unsubscribes come back as facts.

#![allow(clippy::unwrap_used)]

use std::time::{Duration, Instant};

use mail_parser::MessageParser;
use serde_json::json;
use sluice_e2e::{Daemon, SmtpPeer, must_reach_end, request, wait_until};

const OFFER: &str = "https://telco.example/offer?plan=unlimited&src=mail";

fn links(text: &str, base: &str, route: &str) -> Vec<String> {
    let prefix = format!("{base}{route}");
    text.match_indices(&prefix)
        .map(|(i, _)| {
            text[i..]
                .chars()
                .take_while(|c| c.is_ascii_alphanumeric() || ":/._-".contains(*c))
                .collect()
        })
        .collect()
}

fn path_of(url: &str) -> &str {
    let after_scheme = url.split_once("//").unwrap().1;
    &after_scheme[after_scheme.find('/').unwrap()..]
}

fn wait_for_fact(daemon: &Daemon, kind: &str, customer: &str) -> serde_json::Value {
    let start = Instant::now();
    loop {
        if let Some(e) = daemon
            .all_events()
            .into_iter()
            .find(|e| e["type"] == kind && e["customer"] == customer)
        {
            return e;
        }
        assert!(
            start.elapsed() < Duration::from_secs(10),
            "no {kind} fact for {customer}"
        );
        std::thread::sleep(Duration::from_millis(50));
    }
}

/// The daemon relaying to `peer`, its tracking listener on a port known in
/// advance so that tracked links point to it: the daemon, the links' base
/// URL and the listener's address.
fn daemon_with_tracking(dir: &std::path::Path, peer: &SmtpPeer) -> (Daemon, String, String) {
    let port = sluice_e2e::free_port();
    let tracking = format!("127.0.0.1:{port}");
    let base = format!("http://{tracking}");
    let daemon = Daemon::start_with_env(
        dir,
        &format!(
            "[[email.relays]]\nhost = \"127.0.0.1\"\nport = {}\n",
            peer.port
        ),
        &[
            ("SLUICE_LISTEN__TRACKING", &tracking),
            ("SLUICE_TRACKING__BASE_URL", &base),
        ],
    );
    (daemon, base, tracking)
}

#[test]
fn links_redirect_and_clicks_opens_and_unsubscribes_become_facts() {
    let end = must_reach_end();
    let dir = tempfile::tempdir().unwrap();
    let peer = SmtpPeer::start(&end, dir.path());
    let (daemon, base, tracking) = daemon_with_tracking(dir.path(), &peer);
    let decl = json!({"channel": "email", "name": "clicks", "content": {"email": {
        "from": "o@telco.test", "subject": "Go unlimited, {{customer}}",
        "text": format!("See {OFFER} today."),
        "html": "<p><a href=\"https://telco.example/offer?plan=unlimited&amp;src=mail\">Offer</a> \
                 <a data-untracked href=\"https://telco.example/privacy\">Privacy</a></p>"}}});
    daemon.declare("clicks", &decl);
    let people = [
        json!({"customer": "ann", "address": "ann@example.org"}),
        json!({"customer": "bob", "address": "bob@example.org"}),
    ];
    daemon.upload("clicks", &people);
    daemon.start_campaign("clicks");
    daemon.wait_for_campaign("clicks", Duration::from_secs(60), |v| {
        v["state"] == "finished"
    });

    let received = peer.received();
    let ann = received
        .iter()
        .find(|m| m.rcpt_tos[0] == "ann@example.org")
        .unwrap();
    let message = MessageParser::default().parse(ann.data.as_bytes()).unwrap();
    let html = message.body_html(0).unwrap().into_owned();
    let text = message.body_text(0).unwrap().into_owned();
    assert!(!text.contains(OFFER), "the text link is tracked: {text}");
    assert!(
        html.contains("href=\"https://telco.example/privacy\""),
        "untracked links stay: {html}"
    );
    let html_clicks = links(&html, &base, "/c/");
    let text_clicks = links(&text, &base, "/c/");
    assert_eq!(html_clicks.len(), 1, "{html}");
    assert_eq!(
        text_clicks, html_clicks,
        "the same URL has the same link in both bodies"
    );
    let pixel = links(&html, &base, "/o/");
    assert_eq!(pixel.len(), 1, "an open pixel: {html}");
    let unsubscribe = message
        .header_raw("List-Unsubscribe")
        .unwrap()
        .trim()
        .to_owned();
    assert!(
        unsubscribe.starts_with(&format!("<{base}/u/")),
        "{unsubscribe}"
    );
    assert_eq!(
        message.header_raw("List-Unsubscribe-Post").unwrap().trim(),
        "List-Unsubscribe=One-Click"
    );
    assert!(
        html_clicks[0].len() - base.len() - 3 <= 40,
        "short tokens: {}",
        html_clicks[0]
    );

    // Follow the link like a browser: a 302 to the original URL, and a fact.
    let click = request("GET", &tracking, path_of(&html_clicks[0]), &[], b"");
    assert_eq!(click.status, 302);
    assert_eq!(click.header("location"), Some(OFFER));
    let clicked = wait_for_fact(&daemon, "clicked", "ann");
    assert_eq!(clicked["url"], OFFER);
    assert_eq!(clicked["campaign"], "clicks");
    let open = request("GET", &tracking, path_of(&pixel[0]), &[], b"");
    assert_eq!(open.status, 200);
    assert_eq!(open.header("content-type"), Some("image/gif"));
    wait_for_fact(&daemon, "opened", "ann");

    // Tampered or unknown tokens never redirect.
    let path = path_of(&html_clicks[0]).to_owned();
    let mut tampered = path.clone().into_bytes();
    let last = tampered.len() - 1;
    tampered[last] = if tampered[last] == b'A' { b'B' } else { b'A' };
    let bad = request(
        "GET",
        &tracking,
        std::str::from_utf8(&tampered).unwrap(),
        &[],
        b"",
    );
    assert_eq!(bad.status, 404);
    assert_eq!(bad.header("location"), None);
    assert_eq!(
        request("GET", &tracking, "/c/garbage", &[], b"").status,
        404
    );

    let clicked: Vec<serde_json::Value> = daemon
        .get("/v1/campaigns/clicks/participants?outcome=clicked")
        .text()
        .lines()
        .map(|l| serde_json::from_str(l).unwrap())
        .collect();
    assert_eq!(clicked.len(), 1);
    assert_eq!(clicked[0]["customer"], "ann");

    // One-click unsubscribe (RFC 8058) blacklists Ann for later campaigns:
    // by the time the page says so, the address is suppressed and the fact
    // is in the feed, both durable (no waiting: a campaign started right
    // after the answer must not mail her).
    let unsubscribe_path = path_of(unsubscribe.trim_matches(['<', '>'])).to_owned();
    let r = request(
        "POST",
        &tracking,
        &unsubscribe_path,
        &[("content-type", "application/x-www-form-urlencoded")],
        b"List-Unsubscribe=One-Click",
    );
    assert_eq!(r.status, 200, "{}", r.text());
    let blocked = daemon.get("/v1/blacklist/email/ann@example.org");
    assert_eq!(blocked.status, 200, "{}", blocked.text());
    assert_eq!(blocked.json()["why"], "unsubscribed");
    assert!(
        daemon
            .all_events()
            .iter()
            .any(|e| e["type"] == "unsubscribed" && e["customer"] == "ann"),
        "the unsubscribe is a fact when it is answered"
    );
    let again = json!({"channel": "email", "name": "next", "content": {"email": {"from": "o@telco.test", "subject": "s", "text": "t"}}});
    daemon.declare("next", &again);
    daemon.upload("next", &people);
    daemon.start_campaign("next");
    daemon.wait_for_campaign("next", Duration::from_secs(60), |v| {
        v["state"] == "finished"
    });
    let next: Vec<_> = daemon
        .all_events()
        .into_iter()
        .filter(|e| e["campaign"] == "next" && e["customer"] == "ann")
        .collect();
    assert!(
        next.iter()
            .any(|e| e["type"] == "suppressed" && e["why"] == "unsubscribed"),
        "{next:?}"
    );
    assert_eq!(
        peer.received()
            .iter()
            .filter(|m| m.rcpt_tos[0] == "ann@example.org")
            .count(),
        1
    );
    // What was recorded is counted, by kind.
    let metrics = daemon.get("/metrics").text();
    for kind in ["clicked", "opened", "unsubscribed"] {
        let line = format!("sluice_engagements_total{{kind=\"{kind}\"}} ");
        let count: f64 = metrics
            .lines()
            .find_map(|l| l.strip_prefix(line.as_str()))
            .unwrap_or_else(|| panic!("no {line} in {metrics}"))
            .parse()
            .unwrap();
        assert!(count >= 1.0, "{line}{count}");
    }
    end.reached();
}

#[test]
fn a_personalised_link_is_tracked_and_redirects_to_its_recipients_url() {
    let end = must_reach_end();
    let dir = tempfile::tempdir().unwrap();
    let peer = SmtpPeer::start(&end, dir.path());
    let (daemon, base, tracking) = daemon_with_tracking(dir.path(), &peer);
    let decl = json!({"channel": "email", "name": "personal", "content": {"email": {
        "from": "o@telco.test", "subject": "Your plan",
        "text": "Your page: https://telco.example/me/{{customer}}?plan={{plan}} and https://telco.example/faq"}}});
    daemon.declare("personal", &decl);
    daemon.upload(
        "personal",
        &[
            json!({"customer": "ann", "address": "ann@example.org", "fields": {"plan": "xl"}}),
            json!({"customer": "bob", "address": "bob@example.org", "fields": {"plan": "s"}}),
        ],
    );
    daemon.start_campaign("personal");
    daemon.wait_for_campaign("personal", Duration::from_secs(60), |v| {
        v["state"] == "finished"
    });
    for (customer, plan) in [("ann", "xl"), ("bob", "s")] {
        let mail = peer
            .received()
            .into_iter()
            .find(|m| m.rcpt_tos[0] == format!("{customer}@example.org"))
            .unwrap();
        let message = MessageParser::default()
            .parse(mail.data.as_bytes())
            .unwrap();
        let text = message.body_text(0).unwrap().into_owned();
        assert!(
            !text.contains("telco.example"),
            "every link tracked: {text}"
        );
        let tracked = links(&text, &base, "/c/");
        assert_eq!(tracked.len(), 2, "{text}");
        let click = request("GET", &tracking, path_of(&tracked[0]), &[], b"");
        assert_eq!(click.status, 302);
        let url = format!("https://telco.example/me/{customer}?plan={plan}");
        assert_eq!(click.header("location"), Some(url.as_str()));
        assert_eq!(wait_for_fact(&daemon, "clicked", customer)["url"], url);
    }
    end.reached();
}

#[test]
fn clicks_answered_before_a_kill_9_are_facts_after_the_restart() {
    let end = must_reach_end();
    const CLICKS: usize = 200;
    let dir = tempfile::tempdir().unwrap();
    let peer = SmtpPeer::start(&end, dir.path());
    let (mut daemon, base, tracking) = daemon_with_tracking(dir.path(), &peer);
    let decl = json!({"channel": "email", "name": "burst", "content": {"email": {
        "from": "o@telco.test", "subject": "s", "text": format!("Go {OFFER}")}}});
    daemon.declare("burst", &decl);
    daemon.upload(
        "burst",
        &[json!({"customer": "bob", "address": "bob@example.org"})],
    );
    daemon.start_campaign("burst");
    daemon.wait_for_campaign("burst", Duration::from_secs(60), |v| {
        v["state"] == "finished"
    });
    let mail = peer.received().pop().unwrap();
    let message = MessageParser::default()
        .parse(mail.data.as_bytes())
        .unwrap();
    let link = links(&message.body_text(0).unwrap(), &base, "/c/").remove(0);
    for _ in 0..CLICKS {
        let click = request("GET", &tracking, path_of(&link), &[], b"");
        assert_eq!(click.status, 302);
    }
    let clicks = |daemon: &Daemon| {
        daemon
            .all_events()
            .into_iter()
            .filter(|e| e["type"] == "clicked" && e["customer"] == "bob")
            .count()
    };
    // Clicks are answered before their group commit (ARCHITECTURE.md,
    // "Clicks and opens"); how long the commit takes is the disk's business,
    // so the plug is pulled once the feed shows them, which it does only for
    // durable facts.
    wait_until(
        "every answered click in the feed",
        Duration::from_secs(30),
        || clicks(&daemon) >= CLICKS,
    );
    daemon.kill9();
    daemon.restart();
    assert_eq!(
        clicks(&daemon),
        CLICKS,
        "every answered click is a fact, once"
    );
    end.reached();
}

/// Deleting an ended campaign removes it for good (a restart brings nothing
/// back); its facts stay in the feed; its links, even one just clicked (and
/// so cached), lead nowhere afterwards: a 404, never a redirect or an
/// unsubscribe page that records nothing. A campaign still running is not
/// deleted.
#[test]
fn a_deleted_campaign_is_gone_with_its_links_and_its_facts_stay() {
    let end = must_reach_end();
    let dir = tempfile::tempdir().unwrap();
    let peer = SmtpPeer::start(&end, dir.path());
    let (mut daemon, base, tracking) = daemon_with_tracking(dir.path(), &peer);
    let decl = json!({"channel": "email", "name": "old", "content": {"email": {
        "from": "o@telco.test", "subject": "Old offer", "text": format!("See {OFFER}")}}});
    daemon.declare("old", &decl);
    daemon.upload(
        "old",
        &[json!({"customer": "ann", "address": "ann@example.org"})],
    );
    daemon.start_campaign("old");
    daemon.wait_for_campaign("old", Duration::from_secs(60), |v| v["state"] == "finished");
    let mail = &peer.received()[0];
    let message = MessageParser::default()
        .parse(mail.data.as_bytes())
        .unwrap();
    let click = links(&message.body_text(0).unwrap(), &base, "/c/")[0].clone();
    let unsubscribe = message
        .header_raw("List-Unsubscribe")
        .unwrap()
        .trim()
        .trim_matches(['<', '>'])
        .to_owned();
    let follow = || request("GET", &tracking, path_of(&click), &[], b"");
    assert_eq!(follow().status, 302, "the link works before");
    // Clicks are written a few milliseconds after their redirect: one still
    // on its way when the campaign goes is dropped with it.
    wait_for_fact(&daemon, "clicked", "ann");

    daemon.email_campaign("busy", None, 1);
    daemon.start_campaign("busy");
    let busy = daemon.delete("/v1/campaigns/busy");
    if busy.status != 409 {
        // It may have finished already: then it is deleted like any other.
        assert_eq!(busy.status, 204, "{}", busy.text());
    } else {
        assert!(
            busy.text().contains("only a finished or cancelled"),
            "{}",
            busy.text()
        );
    }

    let deleted = daemon.delete("/v1/campaigns/old");
    assert_eq!(deleted.status, 204, "{}", deleted.text());
    assert!(deleted.text().is_empty());
    let gone = |daemon: &Daemon| {
        assert_eq!(daemon.get("/v1/campaigns/old").status, 404);
        let listed = daemon.get("/v1/campaigns").json();
        assert!(
            !listed["campaigns"]
                .as_array()
                .unwrap()
                .iter()
                .any(|c| c["id"] == "old"),
            "{listed}"
        );
        assert_eq!(follow().status, 404, "no redirect for a deleted campaign");
        let r = request(
            "POST",
            &tracking,
            path_of(&unsubscribe),
            &[("content-type", "application/x-www-form-urlencoded")],
            b"List-Unsubscribe=One-Click",
        );
        assert_eq!(r.status, 404, "{}", r.text());
        let facts: Vec<_> = daemon
            .all_events()
            .into_iter()
            .filter(|e| e["campaign"] == "old")
            .map(|e| e["type"].as_str().unwrap().to_owned())
            .collect();
        assert!(
            facts.contains(&"accepted".to_owned()) && facts.contains(&"clicked".to_owned()),
            "the facts stay: {facts:?}"
        );
    };
    gone(&daemon);
    assert_eq!(daemon.delete("/v1/campaigns/old").status, 404);
    assert!(daemon.terminate(), "a clean stop");
    daemon.restart();
    gone(&daemon);
    daemon.declare("old", &decl);
    let again = daemon.get("/v1/campaigns/old").json();
    assert_eq!(again["state"], "declared", "{again}");
    assert_eq!(again["participants"], 0, "{again}");
    end.reached();
}
