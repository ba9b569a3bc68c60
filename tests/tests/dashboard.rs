//! The shipped Grafana dashboard (`deploy/grafana/sluice.json`) only asks
//! for metrics the daemon exposes, and no metric carries a customer or
//! message id as a label.

#![allow(clippy::unwrap_used)]

use std::collections::BTreeSet;

use serde_json::json;
use sluice_e2e::{
    Daemon,
    smsc::{FakeSmsc, SmscBehaviour},
};

#[test]
fn every_dashboard_query_names_an_exposed_metric() {
    let dir = tempfile::tempdir().unwrap();
    // An SMSC, so the per-bind SMPP metrics exist too.
    let smsc = FakeSmsc::start(SmscBehaviour::default());
    let daemon = Daemon::start(
        dir.path(),
        &format!(
            "[[sms.smsc]]\nhost = \"127.0.0.1\"\nport = {}\nsystem_id = \"sluice\"\n",
            smsc.port()
        ),
    );
    daemon.put_json(
        "/v1/channels/email/limits",
        &json!({"rate_per_sec": 5, "tz": "UTC"}),
    );
    std::thread::sleep(std::time::Duration::from_millis(300));
    let exposition = daemon.get("/metrics").text();
    let families: BTreeSet<&str> = exposition
        .lines()
        .filter_map(|l| l.strip_prefix("# TYPE "))
        .filter_map(|l| l.split_whitespace().next())
        .collect();
    assert!(families.len() >= 10, "{exposition}");

    let path =
        std::path::Path::new(env!("CARGO_MANIFEST_DIR")).join("../deploy/grafana/sluice.json");
    let dashboard: serde_json::Value =
        serde_json::from_str(&std::fs::read_to_string(path).unwrap()).unwrap();
    let mut queried = BTreeSet::new();
    for panel in dashboard["panels"].as_array().unwrap() {
        for target in panel["targets"].as_array().unwrap() {
            let expr = target["expr"].as_str().unwrap();
            for (i, _) in expr.match_indices("sluice_") {
                let name: String = expr[i..]
                    .chars()
                    .take_while(|c| c.is_ascii_lowercase() || *c == '_')
                    .collect();
                queried.insert(name);
            }
        }
    }
    // Bounces are labelled by reason, so that family appears with the first bounce.
    let first_seen_later = ["sluice_bounces_total"];
    for name in queried
        .iter()
        .filter(|n| !first_seen_later.contains(&n.as_str()))
    {
        let family = ["_total", "_bucket", "_sum", "_count"]
            .iter()
            .find_map(|suffix| name.strip_suffix(suffix).filter(|f| families.contains(f)))
            .unwrap_or(name);
        assert!(
            families.contains(family),
            "the dashboard queries {name}, which the daemon does not expose"
        );
    }
    for line in exposition.lines().filter(|l| !l.starts_with('#')) {
        assert!(
            !line.contains("customer=") && !line.contains("message="),
            "an id in a label: {line}"
        );
    }
}
