//! `GET /v1/blacklist/{channel}`: the blocked entries in order, searched,
//! filtered by why, a page at a time, the same after a restart.

#![allow(clippy::unwrap_used)]

use serde_json::{Value, json};
use sluice_e2e::Daemon;

fn list(daemon: &Daemon, query: &str) -> Value {
    let r = daemon.get(&format!("/v1/blacklist/email{query}"));
    assert_eq!(r.status, 200, "{}", r.text());
    r.json()
}

fn entries(page: &Value) -> Vec<&str> {
    page["entries"]
        .as_array()
        .unwrap()
        .iter()
        .map(|e| e["entry"].as_str().unwrap())
        .collect()
}

#[test]
fn the_blacklist_is_listed_in_order_searched_and_paged_across_a_restart() {
    let dir = tempfile::tempdir().unwrap();
    let mut daemon = Daemon::start(dir.path(), "");
    let added = daemon.put_json(
        "/v1/blacklist/email",
        &json!([
            "Zed@Example.org",
            "ann@example.org",
            "cust-7",
            "bob@shop.example"
        ]),
    );
    assert_eq!(added.status, 200, "{}", added.text());
    let on_sms = daemon.put_json("/v1/blacklist/sms", &json!(["+15550001"]));
    assert_eq!(on_sms.status, 200, "{}", on_sms.text());
    let lifted = daemon.delete("/v1/blacklist/email/cust-7");
    assert_eq!(lifted.status, 204, "{}", lifted.text());

    assert!(daemon.terminate(), "clean shutdown");
    daemon.restart();

    let first = list(&daemon, "?limit=2");
    assert_eq!(entries(&first), ["ann@example.org", "bob@shop.example"]);
    assert_eq!(first["entries"][0]["why"], "blacklisted");
    assert_eq!(first["next"], "bob@shop.example");
    let second = list(&daemon, "?limit=2&after=bob%40shop.example");
    assert_eq!(
        entries(&second),
        ["zed@example.org"],
        "lowercased, the lifted one gone"
    );
    assert_eq!(second.get("next"), None, "the last page says no next");

    let searched = list(&daemon, "?q=EXAMPLE.ORG");
    assert_eq!(entries(&searched), ["ann@example.org", "zed@example.org"]);
    assert_eq!(
        entries(&list(&daemon, "?why=hard_bounce")),
        Vec::<&str>::new()
    );
    let sms = daemon.get("/v1/blacklist/sms").json();
    assert_eq!(entries(&sms), ["+15550001"], "each channel its own");

    let refused = daemon.get("/v1/blacklist/email?why=spam");
    assert_eq!(refused.status, 400, "{}", refused.text());
    assert_eq!(refused.json()["field"], "why");
}
