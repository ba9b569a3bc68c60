//! The shipped Grafana dashboard (`deploy/grafana/sluice.json`) only asks
//! for metrics the daemon exposes, and no metric carries a customer or
//! message id as a label.

#![allow(clippy::unwrap_used)]

use std::collections::BTreeSet;

use std::{io::Write, process::Stdio};

use serde_json::json;
use sluice_e2e::{
    Daemon, must_reach_end, peers, request,
    smsc::{FakeSmsc, SmscBehaviour},
};

/// A daemon with every family of metrics: an SMSC bound (the per-bind SMPP
/// metrics), a relay (its health, here down) and an e-mail limit (the rate
/// gauge).
fn daemon_with_every_metric(dir: &std::path::Path) -> (Daemon, FakeSmsc) {
    let smsc = FakeSmsc::start(SmscBehaviour::default());
    let daemon = Daemon::start(
        dir,
        &format!(
            "[[sms.smsc]]\nhost = \"127.0.0.1\"\nport = {}\nsystem_id = \"sluice\"\n\n\
             [[email.relays]]\nname = \"main\"\nhost = \"127.0.0.1\"\nport = {}\n",
            smsc.port(),
            sluice_e2e::free_port()
        ),
    );
    daemon.put_json(
        "/v1/channels/email/limits",
        &json!({"rate_per_sec": 5, "tz": "UTC"}),
    );
    std::thread::sleep(std::time::Duration::from_millis(300));
    (daemon, smsc)
}

/// Runs `checker` with `input` on its standard input; its exit status and
/// everything it printed.
fn check(mut checker: std::process::Command, input: &str) -> (bool, String) {
    let mut child = checker
        .stdin(Stdio::piped())
        .stdout(Stdio::piped())
        .stderr(Stdio::piped())
        .spawn()
        .unwrap();
    child
        .stdin
        .take()
        .unwrap()
        .write_all(input.as_bytes())
        .unwrap();
    let out = child.wait_with_output().unwrap();
    let printed = format!(
        "{}{}",
        String::from_utf8_lossy(&out.stdout),
        String::from_utf8_lossy(&out.stderr)
    );
    (out.status.success(), printed)
}

/// The classic text format passes `promtool check metrics` with nothing to
/// say, and the OpenMetrics one (what Prometheus asks for) parses with the
/// strict OpenMetrics parser of the Python client, ending in `# EOF`.
#[test]
fn both_expositions_pass_the_prometheus_checkers() {
    let end = must_reach_end();
    let dir = tempfile::tempdir().unwrap();
    let (daemon, _smsc) = daemon_with_every_metric(dir.path());

    let classic = daemon.get("/metrics");
    assert!(
        classic
            .header("content-type")
            .unwrap()
            .starts_with("text/plain; version=0.0.4"),
        "{:?}",
        classic.header("content-type")
    );
    let classic = classic.text();
    assert!(classic.contains("process_cpu_seconds_total"), "{classic}");
    assert!(classic.contains("sluice_build_info{version="), "{classic}");
    let mut promtool = peers::promtool(&end);
    promtool.args(["check", "metrics"]);
    let (clean, said) = check(promtool, &classic);
    assert!(
        clean && said.trim().is_empty(),
        "promtool: {said}\n{classic}"
    );

    let openmetrics = request(
        "GET",
        &daemon.api,
        "/metrics",
        &[("accept", "application/openmetrics-text;version=1.0.0")],
        b"",
    );
    assert!(
        openmetrics
            .header("content-type")
            .unwrap()
            .starts_with("application/openmetrics-text; version=1.0.0"),
        "{:?}",
        openmetrics.header("content-type")
    );
    let openmetrics = openmetrics.text();
    assert!(openmetrics.ends_with("# EOF\n"), "{openmetrics}");
    let mut parser = peers::python_with_prometheus_client(&end);
    parser.args([
        "-c",
        "import sys\n\
         from prometheus_client.openmetrics.parser import text_string_to_metric_families\n\
         families = list(text_string_to_metric_families(sys.stdin.read()))\n\
         print(len(families), 'families')",
    ]);
    let (parsed, said) = check(parser, &openmetrics);
    assert!(parsed, "the OpenMetrics parser: {said}");
    let families: usize = said.split_whitespace().next().unwrap().parse().unwrap();
    assert!(families >= 20, "{said}");
    end.reached();
}

#[test]
fn every_dashboard_query_names_an_exposed_metric() {
    let dir = tempfile::tempdir().unwrap();
    let (daemon, _smsc) = daemon_with_every_metric(dir.path());
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
        // One unit per panel, and none overridden per series.
        assert!(
            panel["fieldConfig"]["defaults"]["unit"].is_string(),
            "panel {} has no unit",
            panel["title"]
        );
        assert!(
            panel["fieldConfig"]["overrides"]
                .as_array()
                .is_none_or(|o| o.is_empty()),
            "panel {} overrides its unit",
            panel["title"]
        );
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
